//! What the cluster tests know about customers and money: accounts at several banks, transfer
//! requests, balances, and the book of what every account must hold.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// One account of a customer, with the customer's session at that account's bank.
#[derive(Debug, Clone)]
pub struct Account {
    pub bank: u32,
    pub number: String,
    pub token: String,
    /// The customer's CPF base (who owns it).
    pub owner: u64,
}

impl Account {
    /// The account as a transfer names it.
    pub fn at(&self) -> Value {
        json!({ "bank_id": self.bank, "number": self.number })
    }

    pub fn key(&self) -> (u32, String) {
        (self.bank, self.number.clone())
    }
}

/// A person (one CPF) with an individual account at several banks.
#[derive(Debug, Clone)]
pub struct Customer {
    pub cpf: u64,
    pub name: String,
    pub accounts: BTreeMap<u32, Account>,
}

impl Customer {
    /// The account at `bank` (and the session there).
    #[track_caller]
    pub fn at(&self, bank: u32) -> &Account {
        self.accounts.get(&bank).unwrap_or_else(|| panic!("{} has no account at bank {bank}", self.name))
    }
}

/// A leg moving `cents` from `from` to `to`.
pub fn leg(from: &Account, to: &Account, cents: i64) -> Value {
    json!({ "from": from.at(), "to": to.at(), "amount_cents": cents })
}

/// A transfer request as a customer sends it: at the bank of `session`, under its own
/// Idempotency-Key (so it can be asked again after a crash).
#[derive(Debug, Clone)]
pub struct Request {
    pub session: Account,
    pub key: String,
    pub legs: Vec<Value>,
}

impl Request {
    pub fn new(session: &Account, legs: Vec<Value>) -> Request {
        Request { session: session.clone(), key: uuid::Uuid::new_v4().to_string(), legs }
    }
}

/// The `status` of a transfer answer.
pub fn status(transfer: &Value) -> &str {
    transfer["status"].as_str().unwrap_or("<no status>")
}

/// The `failure.code` of a transfer answer.
pub fn failure_code(transfer: &Value) -> &str {
    transfer["failure"]["code"].as_str().unwrap_or("<no failure code>")
}

/// An account's balances as `GET /api/v1/me` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    pub posted: i64,
    pub held: i64,
    pub available: i64,
}

/// A settled balance: `posted`, nothing held.
pub fn settled(posted: i64) -> Balance {
    Balance { posted, held: 0, available: posted }
}

/// What every account must hold: deposits in, completed transfers moved (each all legs or none).
#[derive(Debug, Default, Clone)]
pub struct Book {
    accounts: BTreeMap<(u32, String), (Account, i64)>,
    pub deposits: i64,
}

impl Book {
    /// Starts following `account` (at zero).
    pub fn track(&mut self, account: &Account) {
        self.accounts.entry(account.key()).or_insert_with(|| (account.clone(), 0));
    }

    pub fn track_all(&mut self, customer: &Customer) {
        for account in customer.accounts.values() {
            self.track(account);
        }
    }

    #[track_caller]
    pub fn expected(&self, account: &Account) -> i64 {
        self.accounts.get(&account.key()).map(|(_, cents)| *cents).expect("an account of the book")
    }

    #[track_caller]
    pub(crate) fn add(&mut self, key: (u32, String), cents: i64) {
        let entry = self.accounts.get_mut(&key).unwrap_or_else(|| panic!("account {key:?} is not in the book"));
        entry.1 += cents;
    }

    /// Applies a transfer answer: every leg when it is `completed`, nothing otherwise.
    #[track_caller]
    pub fn apply(&mut self, transfer: &Value) {
        match status(transfer) {
            "completed" => self.apply_legs(transfer),
            "failed" => {}
            other => panic!("only a final transfer can be booked, not {other}: {transfer}"),
        }
    }

    /// Applies every leg of `transfer`, whatever its status says.
    #[track_caller]
    pub fn apply_legs(&mut self, transfer: &Value) {
        for leg in transfer["legs"].as_array().expect("legs") {
            let cents = leg["amount_cents"].as_i64().expect("amount_cents");
            let end = |v: &Value| {
                (
                    u32::try_from(v["bank_id"].as_u64().expect("bank_id")).expect("bank id"),
                    v["number"].as_str().expect("number").to_string(),
                )
            };
            self.add(end(&leg["from"]), -cents);
            self.add(end(&leg["to"]), cents);
        }
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values().map(|(a, _)| a)
    }
}
