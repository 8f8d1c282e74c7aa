//! Bank `bank node` processes of a [`Cluster`] over HTTP: customers, money, transfers, the
//! operator's signed reads.

use std::collections::BTreeMap;
use std::time::Instant;

use bank_core::ids::BankId;
use bank_node::interbank::audit::AUDIT_PATH;
use serde_json::{Value, json};

use super::book::{Account, Balance, Book, Customer, Request, status};
use super::{Cluster, POLL, SETTLE};
use crate::http::{Body, Call};
use crate::signer::{OPERATOR, sign_now};

impl Cluster {
    /// One request to bank `bank`; `Err` when the bank could not be reached or answer.
    pub async fn try_call(
        &self,
        bank: u32,
        method: &str,
        path: &str,
        token: Option<&str>,
        idem: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Result<(u16, Value)> {
        let call = Call::new(method, format!("{}{path}", self.url(bank))).token(token).idem(idem);
        Ok(call.json(body.cloned()).try_send(&self.http).await?.pair())
    }

    /// `POST path` to bank `to`, signed by bank `from` (or by the operator, `from` = 0) with its
    /// key from the consortium's key directory.
    pub async fn signed_post(&self, from: u32, to: u32, path: &str, body: &Value) -> (u16, Value) {
        let key = self.key(from);
        let bytes = serde_json::to_string(body).expect("json");
        let signature = sign_now(&key, BankId(from), BankId(to), "POST", path, bytes.as_bytes());
        let call = Call::new("POST", format!("{}{path}", self.url(to))).signed(Some(&signature));
        call.body(Body::Raw(bytes)).send(&self.http).await.pair()
    }

    /// Throws bank `id`'s fault switch (the bank runs with `--fault-switch`).
    pub async fn cut_off(&self, id: u32, cut_off: bool) {
        let (code, answer) =
            self.signed_post(OPERATOR.0, id, "/interbank/v1/fault", &json!({ "cut_off": cut_off })).await;
        assert_eq!(code, 200, "fault switch of bank {id}: {answer}");
    }

    /// `GET /api/v1/consortium/status` of bank `id`.
    pub async fn ring_status(&self, id: u32) -> Value {
        let (code, status) = self.call(id, "GET", "/api/v1/consortium/status", None, None).await;
        assert_eq!(code, 200, "{status}");
        status
    }

    /// A counter or gauge of bank `id`'s `/metrics` (0 if absent).
    pub async fn metric(&self, id: u32, name: &str) -> f64 {
        crate::http::metric(&self.http, self.url(id), name).await
    }

    #[track_caller]
    pub fn call<'a>(
        &'a self,
        bank: u32,
        method: &'a str,
        path: &'a str,
        token: Option<&'a str>,
        body: Option<&'a Value>,
    ) -> impl Future<Output = (u16, Value)> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            match self.try_call(bank, method, path, token, None, body).await {
                Ok(answer) => answer,
                Err(e) => panic!("{method} {path} at bank {bank} ({caller}): {e}"),
            }
        }
    }

    /// Opens an individual account for CPF base `cpf` at each of `banks` and signs in at each.
    pub async fn customer(&self, cpf: u64, name: &str, banks: &[u32]) -> Customer {
        let mut accounts = BTreeMap::new();
        for &bank in banks {
            let (token, account) = crate::http::open_and_sign_in(&self.http, self.url(bank), cpf, name).await;
            let number = account["number"].as_str().expect("an account number").to_string();
            accounts.insert(bank, Account { bank, number, token, owner: cpf });
        }
        Customer { cpf, name: name.to_string(), accounts }
    }

    /// The cast of most packet scenarios: Ana with an account at banks 1 and 2, funded with
    /// `ana_cents` (a zero deposits nothing), Bia with an empty account at bank 3, and their book.
    pub async fn ana_and_bia(&self, ana_cents: [i64; 2]) -> (Customer, Customer, Book) {
        let ana = self.customer(1, "Ana Souza", &[1, 2]).await;
        let bia = self.customer(2, "Bia Lima", &[3]).await;
        let mut book = Book::default();
        book.track_all(&ana);
        book.track_all(&bia);
        for (bank, cents) in [1, 2].into_iter().zip(ana_cents).filter(|(_, cents)| *cents != 0) {
            self.deposit(&mut book, ana.at(bank), cents).await;
        }
        (ana, bia, book)
    }

    /// A cash deposit into `account`, booked.
    pub async fn deposit(&self, book: &mut Book, account: &Account, cents: i64) {
        let body = json!({ "amount_cents": cents, "method": "cash" });
        let key = uuid::Uuid::new_v4().to_string();
        let answer = self
            .try_call(account.bank, "POST", "/api/v1/deposits", Some(&account.token), Some(&key), Some(&body))
            .await
            .expect("deposit");
        assert_eq!(answer.0, 201, "deposit at bank {}: {}", account.bank, answer.1);
        book.track(account);
        book.add(account.key(), cents);
        book.deposits += cents;
    }

    pub async fn balance(&self, account: &Account) -> Balance {
        let (code, me) = self.call(account.bank, "GET", "/api/v1/me", Some(&account.token), None).await;
        assert_eq!(code, 200, "GET /me at bank {}: {me}", account.bank);
        let b = &me["balance"];
        Balance {
            posted: b["posted_cents"].as_i64().expect("posted_cents"),
            held: b["held_cents"].as_i64().expect("held_cents"),
            available: b["available_cents"].as_i64().expect("available_cents"),
        }
    }

    /// The statement lines of `account` (newest first, first page).
    pub async fn statement(&self, account: &Account) -> Vec<Value> {
        let (code, page) =
            self.call(account.bank, "GET", "/api/v1/statement?limit=100", Some(&account.token), None).await;
        assert_eq!(code, 200, "statement at bank {}: {page}", account.bank);
        page["entries"].as_array().expect("entries").clone()
    }

    /// POSTs a transfer at the bank of `session` under Idempotency-Key `key`.
    pub async fn try_transfer(&self, session: &Account, key: &str, legs: &[Value]) -> reqwest::Result<(u16, Value)> {
        let body = json!({ "legs": legs });
        self.try_call(session.bank, "POST", "/api/v1/transfers", Some(&session.token), Some(key), Some(&body)).await
    }

    /// POSTs a transfer (fresh key) at the bank of `session`; it must execute (201).
    pub async fn transfer(&self, session: &Account, legs: &[Value]) -> Value {
        let request = Request::new(session, legs.to_vec());
        let (code, answer) = match self.send(&request).await {
            Ok(answer) => answer,
            Err(e) => panic!("POST /api/v1/transfers at bank {}: {e}", session.bank),
        };
        assert_eq!(code, 201, "transfer at bank {}: {answer}", session.bank);
        answer
    }

    /// Sends (or sends again) `request`.
    pub async fn send(&self, request: &Request) -> reqwest::Result<(u16, Value)> {
        self.try_transfer(&request.session, &request.key, &request.legs).await
    }

    /// The final form of `request`'s answer, like [`Cluster::finish`]; when the bank will not show
    /// the transfer to its own customer (404, see the test of that), it is followed by sending
    /// the request again under its key instead, which answers the recorded transfer.
    pub async fn finish_request(&self, request: &Request, answer: Value) -> Value {
        if status(&answer) != "pending" {
            return answer;
        }
        let id = answer["id"].as_str().expect("id").to_string();
        let session = &request.session;
        let deadline = Instant::now() + SETTLE;
        loop {
            let (code, now) = self.get_transfer(session, &id).await;
            let now = match code {
                200 => now,
                404 => {
                    println!("GET of pending transfer {id} at bank {}: 404 to its own customer", session.bank);
                    let (code, now) = self.send(request).await.expect("the request again");
                    assert_eq!(code, 201, "the request again: {now}");
                    assert_eq!(now["id"].as_str(), Some(id.as_str()), "the same transfer: {now}");
                    now
                }
                _ => panic!("GET transfer {id} at bank {}: {code} {now}", session.bank),
            };
            if status(&now) != "pending" {
                return now;
            }
            assert!(Instant::now() < deadline, "transfer {id} still pending after {SETTLE:?}: {now}");
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn get_transfer(&self, session: &Account, id: &str) -> (u16, Value) {
        self.call(session.bank, "GET", &format!("/api/v1/transfers/{id}"), Some(&session.token), None).await
    }

    /// The final form of a transfer answer: itself unless `pending`, else polled with
    /// `GET /api/v1/transfers/{id}` at the same bank until it is `completed` or `failed`.
    pub async fn finish(&self, session: &Account, transfer: Value) -> Value {
        if status(&transfer) != "pending" {
            return transfer;
        }
        let id = transfer["id"].as_str().expect("id").to_string();
        let deadline = Instant::now() + SETTLE;
        loop {
            let (code, now) = self.get_transfer(session, &id).await;
            assert_eq!(code, 200, "GET transfer {id} at bank {}: {now}", session.bank);
            if status(&now) != "pending" {
                return now;
            }
            assert!(Instant::now() < deadline, "transfer {id} still pending after {SETTLE:?}: {now}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls until every account shows its wanted balance.
    pub async fn wait_balances(&self, what: &str, want: &[(&Account, Balance)]) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let mut seen = Vec::new();
            for (account, _) in want {
                seen.push(self.balance(account).await);
            }
            if want.iter().zip(&seen).all(|((_, w), s)| w == s) {
                return;
            }
            if Instant::now() > deadline {
                let lines: Vec<String> = want
                    .iter()
                    .zip(&seen)
                    .map(|((a, w), s)| format!("  bank {} account {}: want {w:?}, got {s:?}", a.bank, a.number))
                    .collect();
                panic!("{what}: balances did not converge within {SETTLE:?}:\n{}", lines.join("\n"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The operator's signed read of bank `bank` (`GET /interbank/v1/audit[?query]`).
    pub async fn audit_read(&self, bank: u32, query: &str) -> Value {
        let path = if query.is_empty() { AUDIT_PATH.to_string() } else { format!("{AUDIT_PATH}?{query}") };
        let signature = sign_now(&self.operator, OPERATOR, BankId(bank), "GET", &path, b"");
        let call = Call::new("GET", format!("{}{path}", self.url(bank))).signed(Some(&signature));
        let (code, body) = call.send(&self.http).await.pair();
        assert_eq!(code, 200, "audit read of bank {bank}: {body}");
        body
    }

    /// The ids of the transactions bank `bank` holds money for.
    pub async fn held_transactions(&self, bank: u32) -> Vec<String> {
        let page = self.audit_read(bank, "list=holds").await;
        page["holds"]["items"]
            .as_array()
            .expect("holds")
            .iter()
            .map(|h| h["transfer_id"].as_str().expect("transfer_id").to_string())
            .collect()
    }
}
