//! What every area of the ledger tests shares: fixtures, operations that must succeed or be
//! refused without a trace, and the imports of the ledger's public API.

pub use std::collections::{BTreeMap, BTreeSet};
pub use std::fmt::Debug;
pub use std::sync::atomic::{AtomicU64, Ordering};

pub use bank_core::account::{Account, AccountKind, Holder, NewAccount};
pub use bank_core::contact::{Email, Phone};
pub use bank_core::document::{Cnpj, Cpf, Document};
pub use bank_core::ids::{AccountNumber, BankId, EntryId, Fingerprint, IdempotencyKey, TimestampMs, TransferId};
pub use bank_core::ledger::{
    AccountRef, BALANCE_MAX_CENTS, Change, DESCRIPTION_LEN_MAX, DepositMethod, Destination, Entry, EntryKind, Failure,
    HoldSet, IdempotencyRecord, KEYS_PER_ACCOUNT_MAX, KeyClaim, KeyRequest, LEGS_MAX, Ledger, LegEnd, LegRequest,
    Outcome, OutcomeRef, PixLeg, Plan, REFUND_WINDOW_MS, RefundOf, RefundRequest, Settlement, Status, Transfer,
    TransferLeg, TransferRequest,
};
pub use bank_core::pixkey::PixKey;
pub use bank_core::twopc::{Decision, Vote};
pub use bank_core::{Amount, Error, ErrorCode};
pub use uuid::Uuid;

pub const BANK: BankId = BankId(1);
pub const OTHER_BANK: BankId = BankId(2);
pub const NOW: TimestampMs = TimestampMs(1_700_000_000_000);
pub const FP: Fingerprint = Fingerprint([7; 32]);
pub const OTHER_FP: Fingerprint = Fingerprint([8; 32]);

/// Idempotency keys for helper operations that are not about idempotency: always fresh.
static NEXT_KEY: AtomicU64 = AtomicU64::new(1_000_000);

pub fn fresh_key() -> IdempotencyKey {
    IdempotencyKey(Uuid::from_u128(u128::from(NEXT_KEY.fetch_add(1, Ordering::Relaxed))))
}

pub fn key(n: u128) -> IdempotencyKey {
    IdempotencyKey(Uuid::from_u128(n))
}

pub fn tx(n: u128) -> TransferId {
    TransferId(Uuid::from_u128(0xABCD_0000 + n))
}

pub fn cpf(n: u64) -> Document {
    Document::Cpf(Cpf::from_base(n))
}

pub fn cnpj(n: u64) -> Document {
    Document::Cnpj(Cnpj::from_base(n))
}

pub fn key_of(doc: &Document) -> PixKey {
    match doc {
        Document::Cpf(c) => PixKey::Cpf(c.clone()),
        Document::Cnpj(c) => PixKey::Cnpj(c.clone()),
    }
}

pub fn email(local: &str) -> Email {
    Email::parse(&format!("{local}@example.com")).expect("valid e-mail")
}

pub fn phone() -> Phone {
    Phone::parse("+5575999991234").expect("valid phone")
}

pub fn cents(c: i64) -> Amount {
    Amount::from_cents(c).expect("valid amount")
}

pub fn new_account(kind: AccountKind, holders: &[(&str, Document)], mail: &str) -> NewAccount {
    NewAccount {
        kind,
        holders: holders
            .iter()
            .map(|(name, document)| Holder { name: name.to_string(), document: document.clone() })
            .collect(),
        email: email(mail),
        phone: phone(),
        password_hash: "x".into(),
    }
}

pub fn individual(name: &str, base: u64, mail: &str) -> NewAccount {
    new_account(AccountKind::Individual, &[(name, cpf(base))], mail)
}

pub fn company(name: &str, base: u64, mail: &str) -> NewAccount {
    new_account(AccountKind::Company, &[(name, cnpj(base))], mail)
}

pub fn joint(holders: &[(&str, u64)], mail: &str) -> NewAccount {
    let holders: Vec<(&str, Document)> = holders.iter().map(|(name, base)| (*name, cpf(*base))).collect();
    new_account(AccountKind::Joint, &holders, mail)
}

pub fn open(ledger: &mut Ledger, new: NewAccount) -> AccountNumber {
    let mut changes = Vec::new();
    let opened = ledger.open_account(new, NOW, &mut changes).expect("account opens");
    ledger.assert_invariants();
    opened.account.number
}

pub fn deposit(ledger: &mut Ledger, account: &AccountNumber, amount_cents: i64) {
    let mut changes = Vec::new();
    ledger
        .deposit(account, cents(amount_cents), DepositMethod::Cash, (fresh_key(), FP), NOW, &mut changes)
        .expect("deposit applies");
    ledger.assert_invariants();
}

/// The hold set of a transaction coordinated by another bank, placed at `placed_at`.
pub fn holding(
    debits: Vec<(AccountNumber, Amount)>,
    credits: Vec<(AccountNumber, Amount)>,
    placed_at: TimestampMs,
) -> HoldSet {
    HoldSet {
        debits,
        credits,
        placed_at,
        coordinator: OTHER_BANK,
        expires_at: TimestampMs(placed_at.0 + 5_000),
        keys: Vec::new(),
        pix: Vec::new(),
    }
}

/// Places the holds of `tx` (coordinated elsewhere, placed at [`NOW`]): `debits` and `credits`
/// as (account, cents); returns the vote, the ledger still keeping its invariants.
pub fn place(
    ledger: &mut Ledger,
    tx: TransferId,
    debits: &[(&AccountNumber, i64)],
    credits: &[(&AccountNumber, i64)],
) -> Vote {
    let lines = |side: &[(&AccountNumber, i64)]| side.iter().map(|(a, c)| ((*a).clone(), cents(*c))).collect();
    let mut changes = Vec::new();
    let vote = ledger.vote(tx, holding(lines(debits), lines(credits), NOW), &mut changes);
    ledger.assert_invariants();
    vote
}

/// (posted, held) of an account.
pub fn balance(ledger: &Ledger, account: &AccountNumber) -> (i64, i64) {
    let acc = ledger.account(account).expect("account exists");
    (acc.posted_cents, acc.held_cents)
}

pub fn available(ledger: &Ledger, account: &AccountNumber) -> i64 {
    ledger.account(account).expect("account exists").available_cents()
}

pub fn here(number: &AccountNumber) -> AccountRef {
    AccountRef { bank_id: BANK, number: number.clone() }
}

pub fn to_account(number: &AccountNumber) -> Destination {
    Destination::Account(here(number))
}

pub fn leg(from: Option<&AccountNumber>, to: Destination, amount_cents: i64) -> LegRequest {
    LegRequest { from: from.map(here), to, amount: cents(amount_cents) }
}

pub fn request(
    actor: &AccountNumber,
    legs: Vec<LegRequest>,
    idempotency_key: IdempotencyKey,
    id: u128,
) -> TransferRequest {
    TransferRequest {
        idempotency_key,
        fingerprint: FP,
        actor: actor.clone(),
        legs,
        description: None,
        transfer_id: TransferId(Uuid::from_u128(id)),
        now: NOW,
    }
}

pub fn transfer_of(outcome: Outcome) -> Transfer {
    match outcome {
        Outcome::Transfer(t) => t,
        other => panic!("expected a transfer outcome, got {other:?}"),
    }
}

pub fn entry_of(outcome: Outcome) -> Entry {
    match outcome {
        Outcome::Entry(e) => e,
        other => panic!("expected an entry outcome, got {other:?}"),
    }
}

/// Runs a transfer that must apply and returns the executed transfer.
pub fn run_transfer(ledger: &mut Ledger, req: TransferRequest) -> Transfer {
    let mut changes = Vec::new();
    let transfer = transfer_of(ledger.transfer(req, &mut changes).expect("transfer executes"));
    ledger.assert_invariants();
    transfer
}

/// Runs an operation that must be rejected; proves it left the ledger exactly as it was and
/// emitted no change. Returns the error.
pub fn rejected<T: Debug>(
    ledger: &mut Ledger,
    op: impl FnOnce(&mut Ledger, &mut Vec<Change>) -> Result<T, Error>,
) -> Error {
    let before = ledger.clone();
    let mut changes = Vec::new();
    let error = op(ledger, &mut changes).expect_err("operation is rejected");
    assert_eq!(*ledger, before, "a rejected operation changed the ledger ({error:?})");
    assert!(changes.is_empty(), "a rejected operation emitted changes: {changes:?}");
    ledger.assert_invariants();
    error
}

/// Checks that a transfer request is rejected with `code`, leaving no trace.
pub fn assert_transfer_rejected(ledger: &mut Ledger, req: TransferRequest, code: &str) -> Error {
    let error = rejected(ledger, |l, ch| l.transfer(req, ch));
    assert_eq!(error.code(), code, "{error:?}");
    error
}

/// Runs an operation that must succeed without changing anything (a repeat); returns its result.
pub fn unchanged<T>(ledger: &mut Ledger, op: impl FnOnce(&mut Ledger, &mut Vec<Change>) -> T) -> T {
    let before = ledger.clone();
    let mut changes = Vec::new();
    let result = op(ledger, &mut changes);
    assert_eq!(*ledger, before, "a repeated operation changed the ledger");
    assert!(changes.is_empty(), "a repeated operation emitted changes: {changes:?}");
    ledger.assert_invariants();
    result
}

/// A ledger with an account restored from storage at the given posted balance (the only way to
/// reach the balance limit without a hundred thousand deposits).
pub fn ledger_with_rich_account(posted_cents: i64) -> (Ledger, AccountNumber) {
    let mut scratch = Ledger::new(BANK);
    let number = open(&mut scratch, individual("Rica Rocha", 900, "rica"));
    let mut account: Account = scratch.account(&number).expect("opened").clone();
    account.posted_cents = posted_cents;
    let mut ledger = Ledger::new(BANK);
    ledger.restore_account(account);
    ledger.assert_invariants();
    (ledger, number)
}

/// Alice (individual), Bob (individual), Acme (company), Alice+Carla (joint), Carla (individual).
pub struct World {
    pub ledger: Ledger,
    pub alice: AccountNumber,
    pub bob: AccountNumber,
    pub acme: AccountNumber,
    pub joint: AccountNumber,
    pub carla: AccountNumber,
}

pub fn world() -> World {
    let mut ledger = Ledger::new(BANK);
    let alice = open(&mut ledger, individual("Alice Souza", 1, "alice"));
    let bob = open(&mut ledger, individual("Bob Lima", 2, "bob"));
    let acme = open(&mut ledger, company("Acme Ltda", 10, "acme"));
    let joint = open(&mut ledger, joint(&[("Alice Souza", 1), ("Carla Dias", 3)], "casal"));
    let carla = open(&mut ledger, individual("Carla Dias", 3, "carla"));
    World { ledger, alice, bob, acme, joint, carla }
}

// ----- expectation builders -------------------------------------------------------------------
//
// Each builds a whole expected value with the defaults most tests share, so a test states only
// what it is about (with `..built` for structs). The tests still compare whole values, so they
// fail on a wrong field exactly as the written-out literals did.

/// A completed entry numbered `id` on `account`, at [`NOW`], with no transfer, method or
/// counterparty.
pub fn completed_entry(id: u64, account: &AccountNumber, kind: EntryKind, amount_cents: i64) -> Entry {
    Entry {
        id: EntryId(id),
        account: account.clone(),
        transfer_id: None,
        kind,
        method: None,
        amount: cents(amount_cents),
        status: Status::Completed,
        counterparty: None,
        created_at: NOW,
        refund_of: None,
    }
}

/// How an entry names the other side of a transfer: "Name · Bank" (a ledger with no bank
/// names says "bank 1"); the account number is for the detail page only.
pub fn counterparty(name: &str, _number: &AccountNumber) -> Option<String> {
    Some(format!("{name} · bank {BANK}"))
}

/// A completed transfer `id` by `actor` at [`NOW`], with no description and no failure.
pub fn completed_transfer(id: TransferId, actor: &AccountNumber, legs: Vec<TransferLeg>) -> Transfer {
    Transfer {
        id,
        status: Status::Completed,
        legs,
        failure: None,
        description: None,
        actor: actor.clone(),
        created_at: NOW,
        refund_of: None,
    }
}

/// `account`'s balances after an operation.
pub fn balance_now(account: &AccountNumber, posted_cents: i64, held_cents: i64) -> Change {
    Change::Balance { account: account.clone(), posted_cents, held_cents }
}

pub fn entry_added(entry: &Entry) -> Change {
    Change::EntryAdded(Box::new(entry.clone()))
}

/// The record that makes a repeat of `key` in `scope` (under [`FP`]) answer `outcome`.
pub fn remembered(scope: &AccountNumber, key: IdempotencyKey, outcome: OutcomeRef) -> Change {
    Change::IdempotencyRecorded {
        scope: scope.clone(),
        key,
        record: Box::new(IdempotencyRecord { fingerprint: FP, outcome }),
    }
}

/// The change that settles `transfer` here as `decision` says (commit posts, abort releases).
pub fn decided(transfer: TransferId, decision: Decision) -> Change {
    Change::Settled { transfer, settlement: decision.settlement() }
}

/// The ledger's hold answers in the protocol's words (vote, decision), as the participant reads
/// them: these tests were written against the participant's view of the ledger.
pub trait ProtocolWords {
    fn vote(&mut self, tx: TransferId, set: HoldSet, changes: &mut Vec<Change>) -> Vote;
    fn decision(&self, tx: &TransferId) -> Option<Decision>;
    fn restore_decision(&mut self, tx: TransferId, decision: Decision);
    fn forget_decisions_before(&mut self, bound: TransferId) -> usize;
    fn decisions_remembered(&self) -> usize;
}

impl ProtocolWords for Ledger {
    fn vote(&mut self, tx: TransferId, set: HoldSet, changes: &mut Vec<Change>) -> Vote {
        Vote::from(self.place_holds(tx, set, changes))
    }
    fn decision(&self, tx: &TransferId) -> Option<Decision> {
        self.settlement(tx).map(Decision::from)
    }
    fn restore_decision(&mut self, tx: TransferId, decision: Decision) {
        self.restore_settlement(tx, decision.settlement())
    }
    fn forget_decisions_before(&mut self, bound: TransferId) -> usize {
        self.forget_settlements(bound, usize::MAX)
    }
    fn decisions_remembered(&self) -> usize {
        self.settlements_remembered()
    }
}
