//! Tests of the ledger state machine through the public API of `bank_core` only.
//!
//! Every operation is checked for its exact balances and the exact [`Change`]s it emits; every
//! rejection is checked to leave the ledger equal to its clone from before and to emit nothing
//! (STYLE.md §11); the property tests at the end run random sequences of operations against a
//! small reference model and check the invariants of DESIGN.md §8 after every step.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};

use bank_core::account::{Account, AccountKind, Holder, NewAccount};
use bank_core::contact::{Email, Phone};
use bank_core::document::{Cnpj, Cpf, Document};
use bank_core::ids::{AccountNumber, BankId, EntryId, Fingerprint, IdempotencyKey, TimestampMs, TransferId};
use bank_core::ledger::{
    AccountRef, BALANCE_MAX_CENTS, Change, DESCRIPTION_LEN_MAX, DepositMethod, Destination, Entry, EntryKind, Failure,
    HoldSet, IdempotencyRecord, KEYS_PER_ACCOUNT_MAX, KeyRequest, LEGS_MAX, Ledger, LegEnd, LegRequest, Outcome,
    OutcomeRef, Status, Transfer, TransferLeg, TransferRequest,
};
use bank_core::pixkey::PixKey;
use bank_core::twopc::{Decision, Vote};
use bank_core::{Amount, Error};
use proptest::prelude::*;
use uuid::Uuid;

/// The ledger's hold answers in the protocol's words (vote, decision), as the participant reads
/// them: these tests were written against the participant's view of the ledger.
trait ProtocolWords {
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
        self.forget_settlements_before(bound)
    }
    fn decisions_remembered(&self) -> usize {
        self.settlements_remembered()
    }
}

// ----- helpers ----------------------------------------------------------------------------------

const BANK: BankId = BankId(1);
const OTHER_BANK: BankId = BankId(2);
const NOW: TimestampMs = TimestampMs(1_700_000_000_000);
const FP: Fingerprint = Fingerprint([7; 32]);
const OTHER_FP: Fingerprint = Fingerprint([8; 32]);

/// Idempotency keys for helper operations that are not about idempotency: always fresh.
static NEXT_KEY: AtomicU64 = AtomicU64::new(1_000_000);

fn fresh_key() -> IdempotencyKey {
    IdempotencyKey(Uuid::from_u128(u128::from(NEXT_KEY.fetch_add(1, Ordering::Relaxed))))
}

fn key(n: u128) -> IdempotencyKey {
    IdempotencyKey(Uuid::from_u128(n))
}

fn tx(n: u128) -> TransferId {
    TransferId(Uuid::from_u128(0xABCD_0000 + n))
}

fn cpf(n: u64) -> Document {
    Document::Cpf(Cpf::from_base(n))
}

fn cnpj(n: u64) -> Document {
    Document::Cnpj(Cnpj::from_base(n))
}

fn key_of(doc: &Document) -> PixKey {
    match doc {
        Document::Cpf(c) => PixKey::Cpf(c.clone()),
        Document::Cnpj(c) => PixKey::Cnpj(c.clone()),
    }
}

fn email(local: &str) -> Email {
    Email::parse(&format!("{local}@example.com")).expect("valid e-mail")
}

fn phone() -> Phone {
    Phone::parse("+5575999991234").expect("valid phone")
}

fn cents(c: i64) -> Amount {
    Amount::from_cents(c).expect("valid amount")
}

fn new_account(kind: AccountKind, holders: &[(&str, Document)], mail: &str) -> NewAccount {
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

fn individual(name: &str, base: u64, mail: &str) -> NewAccount {
    new_account(AccountKind::Individual, &[(name, cpf(base))], mail)
}

fn company(name: &str, base: u64, mail: &str) -> NewAccount {
    new_account(AccountKind::Company, &[(name, cnpj(base))], mail)
}

fn joint(holders: &[(&str, u64)], mail: &str) -> NewAccount {
    let holders: Vec<(&str, Document)> = holders.iter().map(|(name, base)| (*name, cpf(*base))).collect();
    new_account(AccountKind::Joint, &holders, mail)
}

fn open(ledger: &mut Ledger, new: NewAccount) -> AccountNumber {
    let mut changes = Vec::new();
    let opened = ledger.open_account(new, NOW, &mut changes).expect("account opens");
    ledger.assert_invariants();
    opened.account.number
}

fn deposit(ledger: &mut Ledger, account: &AccountNumber, amount_cents: i64) {
    let mut changes = Vec::new();
    ledger
        .deposit(account, cents(amount_cents), DepositMethod::Cash, (fresh_key(), FP), NOW, &mut changes)
        .expect("deposit applies");
    ledger.assert_invariants();
}

/// The hold set of a transaction coordinated by another bank, placed at `placed_at`.
fn holding(
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
    }
}

/// (posted, held) of an account.
fn balance(ledger: &Ledger, account: &AccountNumber) -> (i64, i64) {
    let acc = ledger.account(account).expect("account exists");
    (acc.posted_cents, acc.held_cents)
}

fn available(ledger: &Ledger, account: &AccountNumber) -> i64 {
    ledger.account(account).expect("account exists").available_cents()
}

fn here(number: &AccountNumber) -> AccountRef {
    AccountRef { bank_id: BANK, number: number.clone() }
}

fn to_account(number: &AccountNumber) -> Destination {
    Destination::Account(here(number))
}

fn leg(from: Option<&AccountNumber>, to: Destination, amount_cents: i64) -> LegRequest {
    LegRequest { from: from.map(here), to, amount: cents(amount_cents) }
}

fn request(actor: &AccountNumber, legs: Vec<LegRequest>, idempotency_key: IdempotencyKey, id: u128) -> TransferRequest {
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

fn transfer_of(outcome: Outcome) -> Transfer {
    match outcome {
        Outcome::Transfer(t) => t,
        other => panic!("expected a transfer outcome, got {other:?}"),
    }
}

fn entry_of(outcome: Outcome) -> Entry {
    match outcome {
        Outcome::Entry(e) => e,
        other => panic!("expected an entry outcome, got {other:?}"),
    }
}

/// Runs a transfer that must apply and returns the executed transfer.
fn run_transfer(ledger: &mut Ledger, req: TransferRequest) -> Transfer {
    let mut changes = Vec::new();
    let transfer = transfer_of(ledger.transfer(req, &mut changes).expect("transfer executes"));
    ledger.assert_invariants();
    transfer
}

/// Runs an operation that must be rejected; proves it left the ledger exactly as it was and
/// emitted no change. Returns the error.
fn rejected<T: Debug>(
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

/// Runs an operation that must succeed without changing anything (a repeat); returns its result.
fn unchanged<T>(ledger: &mut Ledger, op: impl FnOnce(&mut Ledger, &mut Vec<Change>) -> T) -> T {
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
fn ledger_with_rich_account(posted_cents: i64) -> (Ledger, AccountNumber) {
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
struct World {
    ledger: Ledger,
    alice: AccountNumber,
    bob: AccountNumber,
    acme: AccountNumber,
    joint: AccountNumber,
    carla: AccountNumber,
}

fn world() -> World {
    let mut ledger = Ledger::new(BANK);
    let alice = open(&mut ledger, individual("Alice Souza", 1, "alice"));
    let bob = open(&mut ledger, individual("Bob Lima", 2, "bob"));
    let acme = open(&mut ledger, company("Acme Ltda", 10, "acme"));
    let joint = open(&mut ledger, joint(&[("Alice Souza", 1), ("Carla Dias", 3)], "casal"));
    let carla = open(&mut ledger, individual("Carla Dias", 3, "carla"));
    World { ledger, alice, bob, acme, joint, carla }
}

// ----- opening accounts -------------------------------------------------------------------------

#[test]
fn opening_an_individual_account_emits_account_opened_and_its_cpf_key() {
    let mut ledger = Ledger::new(BANK);
    let mut changes = Vec::new();
    let opened = ledger.open_account(individual("Alice Souza", 1, "alice"), NOW, &mut changes).expect("opens");

    let number = AccountNumber::from_seq(1);
    let expected = Account {
        number: number.clone(),
        kind: AccountKind::Individual,
        holders: vec![Holder { name: "Alice Souza".into(), document: cpf(1) }],
        email: email("alice"),
        phone: phone(),
        password_hash: "x".into(),
        created_at: NOW,
        posted_cents: 0,
        held_cents: 0,
    };
    let cpf_key = key_of(&cpf(1));
    assert_eq!(opened.account, expected);
    assert_eq!(opened.keys, vec![cpf_key.clone()]);
    assert!(opened.warnings.is_empty());
    assert_eq!(
        changes,
        vec![
            Change::AccountOpened(Box::new(expected.clone())),
            Change::KeyRegistered { key: cpf_key.clone(), account: number.clone() },
        ]
    );
    assert_eq!(ledger.account(&number), Some(&expected));
    assert_eq!(ledger.account_by_email("alice@example.com"), Some(&expected));
    assert_eq!(ledger.key_owner(&cpf_key), Some(&number));
    assert_eq!(ledger.keys_of(&number), std::slice::from_ref(&cpf_key));
    assert_eq!(ledger.spendable_by(&number), vec![number.clone()]);
    assert_eq!(ledger.total_posted_cents(), 0);
    ledger.assert_invariants();
}

#[test]
fn opening_a_company_account_emits_its_cnpj_key() {
    let mut ledger = Ledger::new(BANK);
    let mut changes = Vec::new();
    let opened = ledger.open_account(company("Acme Ltda", 10, "acme"), NOW, &mut changes).expect("opens");
    let cnpj_key = key_of(&cnpj(10));
    assert_eq!(opened.account.kind, AccountKind::Company);
    assert_eq!(opened.keys, vec![cnpj_key.clone()]);
    assert!(opened.warnings.is_empty());
    assert_eq!(
        changes,
        vec![
            Change::AccountOpened(Box::new(opened.account.clone())),
            Change::KeyRegistered { key: cnpj_key.clone(), account: opened.account.number.clone() },
        ]
    );
    assert_eq!(ledger.key_owner(&cnpj_key), Some(&opened.account.number));
}

#[test]
fn opening_a_joint_account_registers_no_automatic_key() {
    let mut ledger = Ledger::new(BANK);
    let mut changes = Vec::new();
    let opened = ledger
        .open_account(joint(&[("Alice Souza", 1), ("Carla Dias", 3)], "casal"), NOW, &mut changes)
        .expect("opens");
    assert_eq!(opened.account.kind, AccountKind::Joint);
    assert!(opened.keys.is_empty());
    assert!(opened.warnings.is_empty());
    assert_eq!(changes, vec![Change::AccountOpened(Box::new(opened.account.clone()))]);
    assert!(ledger.keys_of(&opened.account.number).is_empty());
    assert_eq!(ledger.key_owner(&key_of(&cpf(1))), None);
    assert_eq!(ledger.key_owner(&key_of(&cpf(3))), None);
}

#[test]
fn account_numbers_are_sequential_across_kinds() {
    let w = world();
    let numbers = [&w.alice, &w.bob, &w.acme, &w.joint, &w.carla];
    for (i, number) in numbers.iter().enumerate() {
        assert_eq!(**number, AccountNumber::from_seq(i as u64 + 1));
    }
    assert_eq!(w.ledger.accounts().count(), 5);
}

#[test]
fn a_rejected_opening_does_not_use_up_an_account_number() {
    let mut ledger = Ledger::new(BANK);
    open(&mut ledger, individual("Alice Souza", 1, "alice"));
    rejected(&mut ledger, |l, ch| l.open_account(individual("Alice Again", 1, "alice2"), NOW, ch));
    let next = open(&mut ledger, individual("Bob Lima", 2, "bob"));
    assert_eq!(next, AccountNumber::from_seq(2));
}

#[test]
fn an_individual_account_needs_exactly_one_holder_with_a_cpf() {
    let mut ledger = Ledger::new(BANK);
    let cases = [
        new_account(AccountKind::Individual, &[], "a"),
        new_account(AccountKind::Individual, &[("Acme", cnpj(10))], "b"),
        new_account(AccountKind::Individual, &[("Alice", cpf(1)), ("Bob", cpf(2))], "c"),
    ];
    for new in cases {
        let error = rejected(&mut ledger, |l, ch| l.open_account(new, NOW, ch));
        assert_eq!(error.code(), "invalid_input", "{error:?}");
    }
    assert_eq!(ledger.accounts().count(), 0);
}

#[test]
fn a_company_account_needs_exactly_one_holder_with_a_cnpj() {
    let mut ledger = Ledger::new(BANK);
    let cases = [
        new_account(AccountKind::Company, &[], "a"),
        new_account(AccountKind::Company, &[("Alice", cpf(1))], "b"),
        new_account(AccountKind::Company, &[("Acme", cnpj(10)), ("Beta", cnpj(11))], "c"),
    ];
    for new in cases {
        let error = rejected(&mut ledger, |l, ch| l.open_account(new, NOW, ch));
        assert_eq!(error.code(), "invalid_input", "{error:?}");
    }
}

#[test]
fn a_joint_account_needs_two_to_eight_distinct_cpf_holders() {
    let mut ledger = Ledger::new(BANK);
    let nine: Vec<(&str, u64)> = (1..=9).map(|n| ("Pessoa", n)).collect();
    let cases = [
        new_account(AccountKind::Joint, &[], "a"),
        new_account(AccountKind::Joint, &[("Alice", cpf(1))], "b"),
        new_account(AccountKind::Joint, &[("Alice", cpf(1)), ("Alice de novo", cpf(1))], "c"),
        new_account(AccountKind::Joint, &[("Alice", cpf(1)), ("Acme", cnpj(10))], "d"),
        joint(&nine, "e"),
    ];
    for new in cases {
        let error = rejected(&mut ledger, |l, ch| l.open_account(new, NOW, ch));
        assert_eq!(error.code(), "invalid_input", "{error:?}");
    }
    open(&mut ledger, joint(&[("Alice", 1), ("Bob", 2)], "two"));
    open(&mut ledger, joint(&nine[..8], "eight"));
    // The same pair may open another joint account: only individual/company accounts are unique.
    open(&mut ledger, joint(&[("Alice", 1), ("Bob", 2)], "again"));
}

#[test]
fn a_duplicate_email_is_a_conflict_whatever_the_kind() {
    let mut ledger = Ledger::new(BANK);
    open(&mut ledger, individual("Alice Souza", 1, "alice"));
    for new in [
        individual("Bob Lima", 2, "alice"),
        company("Acme", 10, "alice"),
        joint(&[("Bob", 2), ("Carla", 3)], "alice"),
        // E-mail is case-insensitive: it is stored lower-case.
        NewAccount { email: Email::parse("ALICE@Example.com").expect("valid"), ..individual("Bob Lima", 2, "x") },
    ] {
        let error = rejected(&mut ledger, |l, ch| l.open_account(new, NOW, ch));
        assert_eq!(error.code(), "conflict", "{error:?}");
    }
}

#[test]
fn a_second_individual_account_for_the_same_cpf_is_a_conflict() {
    let mut ledger = Ledger::new(BANK);
    open(&mut ledger, individual("Alice Souza", 1, "alice"));
    let error = rejected(&mut ledger, |l, ch| l.open_account(individual("Alice S.", 1, "alice2"), NOW, ch));
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    // A joint account with the same CPF is still allowed.
    open(&mut ledger, joint(&[("Alice Souza", 1), ("Bob Lima", 2)], "casal"));
}

#[test]
fn a_second_company_account_for_the_same_cnpj_is_a_conflict() {
    let mut ledger = Ledger::new(BANK);
    open(&mut ledger, company("Acme", 10, "acme"));
    let error = rejected(&mut ledger, |l, ch| l.open_account(company("Acme II", 10, "acme2"), NOW, ch));
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    open(&mut ledger, company("Beta", 11, "beta"));
}

#[test]
fn an_individual_whose_cpf_key_is_taken_opens_without_it_and_is_warned() {
    let mut ledger = Ledger::new(BANK);
    let alice = open(&mut ledger, individual("Alice Souza", 1, "alice"));
    // Bob's CPF key already names Alice's account (as storage may hold it).
    let bob_key = key_of(&cpf(2));
    ledger.restore_key(bob_key.clone(), alice.clone());

    let mut changes = Vec::new();
    let opened = ledger.open_account(individual("Bob Lima", 2, "bob"), NOW, &mut changes).expect("still opens");
    assert!(opened.keys.is_empty());
    assert_eq!(opened.warnings.len(), 1);
    assert!(opened.warnings[0].contains(&bob_key.normalized()), "{:?}", opened.warnings);
    assert_eq!(changes, vec![Change::AccountOpened(Box::new(opened.account.clone()))]);
    assert_eq!(ledger.key_owner(&bob_key), Some(&alice));
    assert!(ledger.keys_of(&opened.account.number).is_empty());
    ledger.assert_invariants();
}

#[test]
fn a_company_whose_cnpj_key_is_taken_opens_without_it_and_is_warned() {
    let mut ledger = Ledger::new(BANK);
    let alice = open(&mut ledger, individual("Alice Souza", 1, "alice"));
    ledger.restore_key(key_of(&cnpj(10)), alice.clone());
    let mut changes = Vec::new();
    let opened = ledger.open_account(company("Acme", 10, "acme"), NOW, &mut changes).expect("still opens");
    assert!(opened.keys.is_empty());
    assert_eq!(opened.warnings.len(), 1);
    assert_eq!(changes, vec![Change::AccountOpened(Box::new(opened.account.clone()))]);
    assert_eq!(ledger.key_owner(&key_of(&cnpj(10))), Some(&alice));
}

// ----- Pix keys -----------------------------------------------------------------------------------

#[test]
fn registering_email_phone_and_random_keys_emits_key_registered() {
    let mut w = world();
    let uuid = Uuid::from_u128(0x1234);
    for (request, expected) in [
        (KeyRequest::Email, PixKey::Email(email("alice"))),
        (KeyRequest::Phone, PixKey::Phone(phone())),
        (KeyRequest::Random(uuid), PixKey::Random(uuid)),
    ] {
        let mut changes = Vec::new();
        let key = w.ledger.register_key(&w.alice, request, &mut changes).expect("registers");
        assert_eq!(key, expected);
        assert_eq!(changes, vec![Change::KeyRegistered { key: expected.clone(), account: w.alice.clone() }]);
        assert_eq!(w.ledger.key_owner(&expected), Some(&w.alice));
    }
    assert_eq!(w.ledger.keys_of(&w.alice).len(), 4);
    w.ledger.assert_invariants();
}

#[test]
fn registering_a_taken_key_is_a_conflict() {
    let mut w = world();
    let uuid = Uuid::from_u128(0x1234);
    let mut changes = Vec::new();
    w.ledger.register_key(&w.alice, KeyRequest::Phone, &mut changes).expect("first phone key");
    w.ledger.register_key(&w.alice, KeyRequest::Random(uuid), &mut changes).expect("random key");
    // Phones need not be unique among accounts, but a phone key names one account only.
    let (alice, bob) = (w.alice.clone(), w.bob.clone());
    for (account, request) in [(&bob, KeyRequest::Phone), (&bob, KeyRequest::Random(uuid)), (&alice, KeyRequest::Phone)]
    {
        let error = rejected(&mut w.ledger, |l, ch| l.register_key(account, request, ch));
        assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    }
}

#[test]
fn registering_a_key_for_an_unknown_account_is_not_found() {
    let mut w = world();
    let error = rejected(&mut w.ledger, |l, ch| l.register_key(&AccountNumber::from_seq(99), KeyRequest::Email, ch));
    assert!(matches!(error, Error::NotFound(_)), "{error:?}");
}

#[test]
fn an_account_has_at_most_the_key_limit() {
    let mut w = world();
    let mut changes = Vec::new();
    // Alice already has her CPF key.
    for i in 1..KEYS_PER_ACCOUNT_MAX {
        w.ledger.register_key(&w.alice, KeyRequest::Random(Uuid::from_u128(i as u128)), &mut changes).expect("fits");
    }
    assert_eq!(w.ledger.keys_of(&w.alice).len(), KEYS_PER_ACCOUNT_MAX);
    let alice = w.alice.clone();
    let error = rejected(&mut w.ledger, |l, ch| l.register_key(&alice, KeyRequest::Random(Uuid::from_u128(999)), ch));
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
}

// ----- deposits and withdrawals -----------------------------------------------------------------

#[test]
fn a_deposit_credits_posted_and_emits_balance_entry_and_idempotency_record() {
    let mut w = world();
    let mut changes = Vec::new();
    let outcome = w
        .ledger
        .deposit(&w.alice, cents(12_345), DepositMethod::Boleto, (key(1), FP), TimestampMs(42), &mut changes)
        .expect("applies");
    let entry = Entry {
        id: EntryId(1),
        account: w.alice.clone(),
        transfer_id: None,
        kind: EntryKind::Deposit,
        method: Some(DepositMethod::Boleto),
        amount: cents(12_345),
        status: Status::Completed,
        counterparty: None,
        created_at: TimestampMs(42),
    };
    assert_eq!(outcome, Outcome::Entry(entry.clone()));
    assert_eq!(
        changes,
        vec![
            Change::Balance { account: w.alice.clone(), posted_cents: 12_345, held_cents: 0 },
            Change::EntryAdded(Box::new(entry.clone())),
            Change::IdempotencyRecorded {
                scope: w.alice.clone(),
                key: key(1),
                record: Box::new(IdempotencyRecord { fingerprint: FP, outcome: OutcomeRef::Entry(entry.id) }),
            },
        ]
    );
    assert_eq!(balance(&w.ledger, &w.alice), (12_345, 0));
    assert_eq!(w.ledger.total_posted_cents(), 12_345);
    w.ledger.assert_invariants();
}

#[test]
fn deposits_add_up_and_entry_ids_increase() {
    let mut w = world();
    let mut changes = Vec::new();
    let mut ids = Vec::new();
    for (i, c) in [100, 250, 1].into_iter().enumerate() {
        let e = entry_of(
            w.ledger.deposit(&w.bob, cents(c), DepositMethod::Qr, (key(i as u128), FP), NOW, &mut changes).expect("ok"),
        );
        ids.push(e.id);
    }
    assert_eq!(ids, vec![EntryId(1), EntryId(2), EntryId(3)]);
    assert_eq!(balance(&w.ledger, &w.bob), (351, 0));
}

#[test]
fn a_withdrawal_debits_posted_and_emits_balance_entry_and_idempotency_record() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    let outcome = w.ledger.withdraw(&w.alice, cents(400), (key(2), FP), NOW, &mut changes).expect("applies");
    let entry = Entry {
        id: EntryId(2),
        account: w.alice.clone(),
        transfer_id: None,
        kind: EntryKind::Withdrawal,
        method: None,
        amount: cents(400),
        status: Status::Completed,
        counterparty: None,
        created_at: NOW,
    };
    assert_eq!(outcome, Outcome::Entry(entry.clone()));
    assert_eq!(
        changes,
        vec![
            Change::Balance { account: w.alice.clone(), posted_cents: 600, held_cents: 0 },
            Change::EntryAdded(Box::new(entry.clone())),
            Change::IdempotencyRecorded {
                scope: w.alice.clone(),
                key: key(2),
                record: Box::new(IdempotencyRecord { fingerprint: FP, outcome: OutcomeRef::Entry(entry.id) }),
            },
        ]
    );
    assert_eq!(balance(&w.ledger, &w.alice), (600, 0));
}

#[test]
fn withdrawing_everything_leaves_zero() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    w.ledger.withdraw(&w.alice, cents(1_000), (fresh_key(), FP), NOW, &mut changes).expect("applies");
    assert_eq!(balance(&w.ledger, &w.alice), (0, 0));
}

#[test]
fn a_withdrawal_beyond_the_available_money_is_insufficient_funds() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let alice = w.alice.clone();
    let error = rejected(&mut w.ledger, |l, ch| l.withdraw(&alice, cents(1_001), (key(5), FP), NOW, ch));
    assert_eq!(
        error,
        Error::InsufficientFunds { account: alice.clone(), available_cents: 1_000, requested_cents: 1_001 }
    );
    // Rejections are not remembered: the key is free for a corrected request.
    let mut changes = Vec::new();
    w.ledger.withdraw(&alice, cents(1_000), (key(5), OTHER_FP), NOW, &mut changes).expect("corrected request");
    assert_eq!(balance(&w.ledger, &alice), (0, 0));
}

#[test]
fn a_withdrawal_cannot_take_held_money() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    let vote = w.ledger.vote(tx(1), holding(vec![(w.alice.clone(), cents(700))], vec![], NOW), &mut changes);
    assert_eq!(vote, Vote::Yes);
    let alice = w.alice.clone();
    let error = rejected(&mut w.ledger, |l, ch| l.withdraw(&alice, cents(301), (fresh_key(), FP), NOW, ch));
    assert_eq!(error, Error::InsufficientFunds { account: alice.clone(), available_cents: 300, requested_cents: 301 });
    w.ledger.withdraw(&alice, cents(300), (fresh_key(), FP), NOW, &mut changes).expect("the rest is available");
    assert_eq!(balance(&w.ledger, &alice), (700, 700));
    w.ledger.assert_invariants();
}

#[test]
fn deposits_and_withdrawals_on_unknown_accounts_are_not_found() {
    let mut w = world();
    let ghost = AccountNumber::from_seq(77);
    let error =
        rejected(&mut w.ledger, |l, ch| l.deposit(&ghost, cents(1), DepositMethod::Cash, (key(1), FP), NOW, ch));
    assert!(matches!(error, Error::NotFound(_)), "{error:?}");
    let error = rejected(&mut w.ledger, |l, ch| l.withdraw(&ghost, cents(1), (key(1), FP), NOW, ch));
    assert!(matches!(error, Error::NotFound(_)), "{error:?}");
}

#[test]
fn a_deposit_may_reach_but_not_exceed_the_balance_limit() {
    let (mut ledger, rich) = ledger_with_rich_account(BALANCE_MAX_CENTS - 100);
    let error = rejected(&mut ledger, |l, ch| l.deposit(&rich, cents(101), DepositMethod::Cash, (key(1), FP), NOW, ch));
    assert_eq!(error.code(), "invalid_input", "{error:?}");
    let mut changes = Vec::new();
    ledger.deposit(&rich, cents(100), DepositMethod::Cash, (key(1), OTHER_FP), NOW, &mut changes).expect("fits");
    assert_eq!(balance(&ledger, &rich), (BALANCE_MAX_CENTS, 0));
    let error = rejected(&mut ledger, |l, ch| l.deposit(&rich, cents(1), DepositMethod::Cash, (key(2), FP), NOW, ch));
    assert_eq!(error.code(), "invalid_input", "{error:?}");
    ledger.assert_invariants();
}

// ----- idempotency ------------------------------------------------------------------------------

#[test]
fn a_repeated_deposit_returns_the_first_outcome_and_changes_nothing() {
    let mut w = world();
    let mut changes = Vec::new();
    let first =
        w.ledger.deposit(&w.alice, cents(500), DepositMethod::Cash, (key(1), FP), NOW, &mut changes).expect("applies");
    let alice = w.alice.clone();
    let again = unchanged(&mut w.ledger, |l, ch| {
        l.deposit(&alice, cents(500), DepositMethod::Cash, (key(1), FP), TimestampMs(NOW.0 + 1), ch)
    });
    assert_eq!(again, Ok(Outcome::Replayed(first.reference())));
    // Also after the balance changed in between.
    deposit(&mut w.ledger, &alice, 10);
    let mut changes = Vec::new();
    w.ledger.withdraw(&alice, cents(510), (fresh_key(), FP), NOW, &mut changes).expect("empties the account");
    let again =
        unchanged(&mut w.ledger, |l, ch| l.deposit(&alice, cents(500), DepositMethod::Cash, (key(1), FP), NOW, ch));
    assert_eq!(again, Ok(Outcome::Replayed(first.reference())));
    assert_eq!(balance(&w.ledger, &alice), (0, 0));
}

#[test]
fn a_repeated_withdrawal_returns_the_first_outcome_even_when_it_would_now_fail() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 500);
    let mut changes = Vec::new();
    let first = w.ledger.withdraw(&w.alice, cents(500), (key(3), FP), NOW, &mut changes).expect("applies");
    let alice = w.alice.clone();
    let again = unchanged(&mut w.ledger, |l, ch| l.withdraw(&alice, cents(500), (key(3), FP), NOW, ch));
    assert_eq!(again, Ok(Outcome::Replayed(first.reference())));
    assert_eq!(balance(&w.ledger, &alice), (0, 0));
}

#[test]
fn a_key_reused_with_another_fingerprint_is_an_idempotency_mismatch() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    w.ledger.deposit(&w.alice, cents(5), DepositMethod::Cash, (key(1), FP), NOW, &mut changes).expect("applies");
    w.ledger.withdraw(&w.alice, cents(5), (key(2), FP), NOW, &mut changes).expect("applies");
    run_transfer(&mut w.ledger, request(&w.alice, vec![leg(None, to_account(&w.bob), 5)], key(3), 1));

    let (alice, bob) = (w.alice.clone(), w.bob.clone());
    let error =
        rejected(&mut w.ledger, |l, ch| l.deposit(&alice, cents(5), DepositMethod::Cash, (key(1), OTHER_FP), NOW, ch));
    assert_eq!(error, Error::IdempotencyMismatch);
    let error = rejected(&mut w.ledger, |l, ch| l.withdraw(&alice, cents(5), (key(2), OTHER_FP), NOW, ch));
    assert_eq!(error, Error::IdempotencyMismatch);
    let mut req = request(&alice, vec![leg(None, to_account(&bob), 5)], key(3), 2);
    req.fingerprint = OTHER_FP;
    let error = rejected(&mut w.ledger, |l, ch| l.transfer(req, ch));
    assert_eq!(error, Error::IdempotencyMismatch);
}

#[test]
fn idempotency_keys_are_scoped_per_account() {
    let mut w = world();
    let mut changes = Vec::new();
    w.ledger.deposit(&w.alice, cents(5), DepositMethod::Cash, (key(1), FP), NOW, &mut changes).expect("applies");
    w.ledger.deposit(&w.bob, cents(7), DepositMethod::Cash, (key(1), OTHER_FP), NOW, &mut changes).expect("applies");
    assert_eq!(balance(&w.ledger, &w.alice), (5, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (7, 0));
}

#[test]
fn a_repeated_transfer_returns_the_first_outcome_and_moves_nothing() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let req = request(&w.alice, vec![leg(None, to_account(&w.bob), 300)], key(9), 1);
    let first = run_transfer(&mut w.ledger, req.clone());
    assert_eq!(first.status, Status::Completed);
    // A repeat carries a fresh transfer id from the driver; the first outcome still wins.
    let mut repeat = req.clone();
    repeat.transfer_id = TransferId(Uuid::from_u128(2));
    let again = unchanged(&mut w.ledger, |l, ch| l.transfer(repeat, ch));
    assert_eq!(again, Ok(Outcome::Replayed(OutcomeRef::Transfer(first.id))));
    // Also after the balances changed in between.
    let mut changes = Vec::new();
    w.ledger.withdraw(&w.alice, cents(700), (fresh_key(), FP), NOW, &mut changes).expect("applies");
    let again = unchanged(&mut w.ledger, |l, ch| l.transfer(req, ch));
    assert_eq!(again, Ok(Outcome::Replayed(OutcomeRef::Transfer(first.id))));
    assert_eq!(balance(&w.ledger, &w.alice), (0, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (300, 0));
}

#[test]
fn a_rejected_transfer_is_not_remembered_under_its_key() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let alice = w.alice.clone();
    let bad = request(&alice, vec![leg(None, to_account(&alice), 300)], key(4), 1);
    rejected(&mut w.ledger, |l, ch| l.transfer(bad, ch));
    let mut good = request(&alice, vec![leg(None, to_account(&w.bob), 300)], key(4), 2);
    good.fingerprint = OTHER_FP;
    let t = run_transfer(&mut w.ledger, good);
    assert_eq!(t.status, Status::Completed);
}

// ----- transfers: happy paths -------------------------------------------------------------------

#[test]
fn a_transfer_by_key_moves_money_and_emits_every_change_in_order() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000); // entry 1
    let bob_key = key_of(&cpf(2));
    let mut req = request(&w.alice, vec![leg(None, Destination::Key(bob_key.clone()), 300)], key(1), 77);
    req.description = Some("  aluguel  ".into());
    let id = req.transfer_id;
    let mut changes = Vec::new();
    let outcome = w.ledger.transfer(req, &mut changes).expect("executes");

    let transfer = Transfer {
        id,
        status: Status::Completed,
        legs: vec![TransferLeg {
            from: here(&w.alice),
            from_name: "Alice Souza".into(),
            to: LegEnd { bank_id: BANK, number: w.bob.clone(), key: Some(bob_key), holder_name: "Bob Lima".into() },
            amount: cents(300),
            status: Status::Completed,
        }],
        failure: None,
        description: Some("aluguel".into()),
        actor: w.alice.clone(),
        created_at: NOW,
    };
    let out = Entry {
        id: EntryId(2),
        account: w.alice.clone(),
        transfer_id: Some(id),
        kind: EntryKind::TransferOut,
        method: None,
        amount: cents(300),
        status: Status::Completed,
        counterparty: Some(format!("Bob Lima ({})", w.bob)),
        created_at: NOW,
    };
    let inbound = Entry {
        id: EntryId(3),
        account: w.bob.clone(),
        kind: EntryKind::TransferIn,
        counterparty: Some(format!("Alice Souza ({})", w.alice)),
        ..out.clone()
    };
    assert_eq!(outcome, Outcome::Transfer(transfer.clone()));
    assert_eq!(
        changes,
        vec![
            Change::Balance { account: w.alice.clone(), posted_cents: 700, held_cents: 0 },
            Change::Balance { account: w.bob.clone(), posted_cents: 300, held_cents: 0 },
            Change::TransferRecorded(Box::new(transfer.clone())),
            Change::EntryAdded(Box::new(out)),
            Change::EntryAdded(Box::new(inbound)),
            Change::IdempotencyRecorded {
                scope: w.alice.clone(),
                key: key(1),
                record: Box::new(IdempotencyRecord { fingerprint: FP, outcome: OutcomeRef::Transfer(transfer.id) }),
            },
        ]
    );
    assert_eq!(balance(&w.ledger, &w.alice), (700, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (300, 0));
    assert_eq!(w.ledger.total_posted_cents(), 1_000);
    w.ledger.assert_invariants();
}

#[test]
fn a_transfer_by_account_number_has_no_key_on_its_leg() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let t = run_transfer(&mut w.ledger, request(&w.alice, vec![leg(None, to_account(&w.acme), 250)], key(1), 1));
    assert_eq!(t.legs[0].to.key, None);
    assert_eq!(t.legs[0].to.holder_name, "Acme Ltda");
    assert_eq!(t.description, None);
    assert_eq!(balance(&w.ledger, &w.acme), (250, 0));
}

#[test]
fn a_blank_description_is_dropped() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut req = request(&w.alice, vec![leg(None, to_account(&w.bob), 1)], key(1), 1);
    req.description = Some("   ".into());
    assert_eq!(run_transfer(&mut w.ledger, req).description, None);
}

#[test]
fn a_multi_leg_transfer_posts_every_leg_atomically() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    deposit(&mut w.ledger, &w.joint, 500);
    // Alice's session spends her own account and the joint account she holds, in one transfer.
    let legs = vec![
        leg(None, to_account(&w.bob), 100),
        leg(Some(&w.joint), Destination::Key(key_of(&cnpj(10))), 200),
        leg(Some(&w.alice), to_account(&w.carla), 300),
        leg(Some(&w.joint), to_account(&w.alice), 300),
    ];
    let mut changes = Vec::new();
    let t = transfer_of(w.ledger.transfer(request(&w.alice, legs, key(1), 1), &mut changes).expect("executes"));
    assert_eq!(t.status, Status::Completed);
    assert!(t.legs.iter().all(|l| l.status == Status::Completed));
    assert_eq!(t.legs[1].from_name, "Alice Souza e Carla Dias");
    assert_eq!(balance(&w.ledger, &w.alice), (1_000 - 100 - 300 + 300, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (100, 0));
    assert_eq!(balance(&w.ledger, &w.acme), (200, 0));
    assert_eq!(balance(&w.ledger, &w.carla), (300, 0));
    assert_eq!(balance(&w.ledger, &w.joint), (0, 0));
    assert_eq!(w.ledger.total_posted_cents(), 1_500);
    // One Balance per touched account (sorted), one transfer, two entries per leg, one record.
    let balances: Vec<&AccountNumber> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Balance { account, .. } => Some(account),
            _ => None,
        })
        .collect();
    assert_eq!(balances, vec![&w.alice, &w.bob, &w.acme, &w.joint, &w.carla]);
    let entries = changes.iter().filter(|c| matches!(c, Change::EntryAdded(_))).count();
    assert_eq!(entries, 8);
    assert_eq!(changes.iter().filter(|c| matches!(c, Change::TransferRecorded(_))).count(), 1);
    assert!(matches!(changes.last(), Some(Change::IdempotencyRecorded { .. })));
    w.ledger.assert_invariants();
}

#[test]
fn a_transfer_may_have_sixteen_legs() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 10_000);
    let legs = (0..LEGS_MAX).map(|_| leg(None, to_account(&w.bob), 10)).collect();
    let t = run_transfer(&mut w.ledger, request(&w.alice, legs, key(1), 1));
    assert_eq!(t.status, Status::Completed);
    assert_eq!(balance(&w.ledger, &w.bob), (160, 0));
}

#[test]
fn a_description_may_have_the_maximum_length_in_characters() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 10_000);
    let mut req = request(&w.alice, vec![leg(None, to_account(&w.bob), 10)], key(1), 1);
    let text = "é".repeat(DESCRIPTION_LEN_MAX);
    req.description = Some(text.clone());
    assert_eq!(run_transfer(&mut w.ledger, req).description, Some(text));
}

// ----- transfers: rejections --------------------------------------------------------------------

/// Checks that a transfer request is rejected with `code`, leaving no trace.
fn assert_transfer_rejected(ledger: &mut Ledger, req: TransferRequest, code: &str) -> Error {
    let error = rejected(ledger, |l, ch| l.transfer(req, ch));
    assert_eq!(error.code(), code, "{error:?}");
    error
}

#[test]
fn a_transfer_without_legs_is_invalid() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let req = request(&w.alice, vec![], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "invalid_input");
}

#[test]
fn a_transfer_with_seventeen_legs_is_invalid() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 10_000);
    let legs = (0..=LEGS_MAX).map(|_| leg(None, to_account(&w.bob), 10)).collect();
    let req = request(&w.alice, legs, key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "invalid_input");
}

#[test]
fn a_transfer_to_an_unknown_key_is_unknown_key() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let unknown = key_of(&cpf(555));
    let req = request(&w.alice, vec![leg(None, Destination::Key(unknown.clone()), 10)], key(1), 1);
    let error = assert_transfer_rejected(&mut w.ledger, req, "unknown_key");
    assert_eq!(error, Error::UnknownKey(unknown.normalized()));
    // One bad leg among good ones rejects the whole transfer.
    let legs =
        vec![leg(None, to_account(&w.bob), 10), leg(None, Destination::Key(PixKey::Random(Uuid::from_u128(5))), 10)];
    let req = request(&w.alice, legs, key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "unknown_key");
}

#[test]
fn a_transfer_to_an_unknown_account_is_not_found() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let req = request(&w.alice, vec![leg(None, to_account(&AccountNumber::from_seq(42)), 10)], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "not_found");
}

#[test]
fn a_transfer_naming_another_bank_is_not_found() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let elsewhere = AccountRef { bank_id: OTHER_BANK, number: w.bob.clone() };
    let req = request(&w.alice, vec![leg(None, Destination::Account(elsewhere.clone()), 10)], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "not_found");
    let mut from_elsewhere = leg(None, to_account(&w.bob), 10);
    from_elsewhere.from = Some(AccountRef { bank_id: OTHER_BANK, number: w.alice.clone() });
    let req = request(&w.alice, vec![from_elsewhere], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "not_found");
}

#[test]
fn a_transfer_from_an_account_not_held_is_forbidden() {
    let mut w = world();
    deposit(&mut w.ledger, &w.bob, 1_000);
    let req = request(&w.alice, vec![leg(Some(&w.bob), to_account(&w.carla), 10)], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "forbidden");
    // Naming a source that does not exist is forbidden too (it is not the customer's).
    let req = request(&w.alice, vec![leg(Some(&AccountNumber::from_seq(99)), to_account(&w.bob), 10)], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "forbidden");
}

#[test]
fn a_transfer_to_its_own_source_is_invalid() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let req = request(&w.alice, vec![leg(None, to_account(&w.alice), 10)], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "invalid_input");
    let req = request(&w.alice, vec![leg(None, Destination::Key(key_of(&cpf(1))), 10)], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "invalid_input");
}

#[test]
fn a_too_long_or_controlled_description_is_invalid() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    for text in ["a".repeat(DESCRIPTION_LEN_MAX + 1), "linha\nnova".to_string()] {
        let mut req = request(&w.alice, vec![leg(None, to_account(&w.bob), 10)], key(1), 1);
        req.description = Some(text);
        assert_transfer_rejected(&mut w.ledger, req, "invalid_input");
    }
}

#[test]
fn a_transfer_by_an_unknown_actor_is_unauthorized() {
    let mut w = world();
    let req = request(&AccountNumber::from_seq(99), vec![leg(None, to_account(&w.bob), 10)], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "unauthorized");
}

#[test]
fn a_transfer_that_would_push_a_receiver_over_the_balance_limit_is_rejected() {
    let (mut ledger, rich) = ledger_with_rich_account(BALANCE_MAX_CENTS - 5);
    let payer = open(&mut ledger, individual("Paula Pagadora", 2, "paula"));
    deposit(&mut ledger, &payer, 100);
    let req = request(&payer, vec![leg(None, to_account(&rich), 6)], key(1), 1);
    assert_transfer_rejected(&mut ledger, req, "invalid_input");
    let t = run_transfer(&mut ledger, request(&payer, vec![leg(None, to_account(&rich), 5)], key(2), 2));
    assert_eq!(t.status, Status::Completed);
    assert_eq!(balance(&ledger, &rich), (BALANCE_MAX_CENTS, 0));
}

// ----- who may spend what (API.md) --------------------------------------------------------------

#[test]
fn an_individual_session_may_spend_a_joint_account_it_holds() {
    let mut w = world();
    deposit(&mut w.ledger, &w.joint, 1_000);
    for (actor, id) in [(w.alice.clone(), 1), (w.carla.clone(), 2)] {
        let t = run_transfer(
            &mut w.ledger,
            request(&actor, vec![leg(Some(&w.joint), to_account(&w.bob), 100)], key(id), id),
        );
        assert_eq!(t.status, Status::Completed);
    }
    assert_eq!(balance(&w.ledger, &w.joint), (800, 0));
    assert_eq!(w.ledger.spendable_by(&w.alice), vec![w.alice.clone(), w.joint.clone()]);
    assert_eq!(w.ledger.spendable_by(&w.carla), vec![w.joint.clone(), w.carla.clone()]);
    // Bob holds no joint account: only his own.
    assert_eq!(w.ledger.spendable_by(&w.bob), vec![w.bob.clone()]);
}

#[test]
fn a_joint_session_may_spend_only_the_joint_account_itself() {
    let mut w = world();
    deposit(&mut w.ledger, &w.joint, 1_000);
    deposit(&mut w.ledger, &w.alice, 1_000);
    let t = run_transfer(&mut w.ledger, request(&w.joint, vec![leg(None, to_account(&w.bob), 100)], key(1), 1));
    assert_eq!(t.status, Status::Completed);
    let t =
        run_transfer(&mut w.ledger, request(&w.joint, vec![leg(Some(&w.joint), to_account(&w.bob), 100)], key(2), 2));
    assert_eq!(t.status, Status::Completed);
    // Not a holder's own account, although the holders' documents hold it.
    let req = request(&w.joint, vec![leg(Some(&w.alice), to_account(&w.bob), 100)], key(3), 3);
    assert_transfer_rejected(&mut w.ledger, req, "forbidden");
    assert_eq!(w.ledger.spendable_by(&w.joint), vec![w.joint.clone()]);
}

#[test]
fn a_company_session_may_spend_only_its_own_account() {
    let mut w = world();
    deposit(&mut w.ledger, &w.acme, 1_000);
    deposit(&mut w.ledger, &w.alice, 1_000);
    let t = run_transfer(&mut w.ledger, request(&w.acme, vec![leg(None, to_account(&w.alice), 100)], key(1), 1));
    assert_eq!(t.status, Status::Completed);
    for source in [w.alice.clone(), w.joint.clone()] {
        let req = request(&w.acme, vec![leg(Some(&source), to_account(&w.bob), 1)], key(2), 2);
        assert_transfer_rejected(&mut w.ledger, req, "forbidden");
    }
    assert_eq!(w.ledger.spendable_by(&w.acme), vec![w.acme.clone()]);
}

#[test]
fn a_session_may_not_spend_another_customers_account() {
    let mut w = world();
    for number in [w.alice.clone(), w.bob.clone(), w.acme.clone(), w.joint.clone(), w.carla.clone()] {
        deposit(&mut w.ledger, &number, 1_000);
    }
    let cases = [
        (w.bob.clone(), w.alice.clone()),
        (w.bob.clone(), w.joint.clone()),
        (w.bob.clone(), w.acme.clone()),
        (w.alice.clone(), w.carla.clone()),
        (w.alice.clone(), w.acme.clone()),
        (w.carla.clone(), w.alice.clone()),
    ];
    for (actor, source) in cases {
        let req = request(&actor, vec![leg(Some(&source), to_account(&w.bob), 1)], key(1), 1);
        assert_transfer_rejected(&mut w.ledger, req, "forbidden");
    }
    // A forbidden leg anywhere rejects the whole transfer, including its allowed legs.
    let legs = vec![leg(None, to_account(&w.carla), 1), leg(Some(&w.bob), to_account(&w.carla), 1)];
    let req = request(&w.alice, legs, key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "forbidden");
}

// ----- transfers that execute and fail ----------------------------------------------------------

#[test]
fn a_transfer_lacking_funds_executes_fails_and_is_remembered() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 100); // entry 1
    let req = request(&w.alice, vec![leg(None, Destination::Key(key_of(&cpf(2))), 101)], key(1), 5);
    let before = w.ledger.clone();
    let mut changes = Vec::new();
    let t = transfer_of(w.ledger.transfer(req.clone(), &mut changes).expect("executes"));
    assert_eq!(t.status, Status::Failed);
    assert!(t.legs.iter().all(|l| l.status == Status::Failed));
    let failure: &Failure = t.failure.as_ref().expect("a failure");
    assert_eq!(failure.code, bank_core::ErrorCode::InsufficientFunds);
    assert!(failure.detail.contains(w.alice.as_str()), "{}", failure.detail);
    assert_eq!(balance(&w.ledger, &w.alice), (100, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (0, 0));
    assert_eq!(w.ledger.total_posted_cents(), before.total_posted_cents());

    let out = Entry {
        id: EntryId(2),
        account: w.alice.clone(),
        transfer_id: Some(t.id),
        kind: EntryKind::TransferOut,
        method: None,
        amount: cents(101),
        status: Status::Failed,
        counterparty: Some(format!("Bob Lima ({})", w.bob)),
        created_at: NOW,
    };
    assert_eq!(
        changes,
        vec![
            Change::TransferRecorded(Box::new(t.clone())),
            Change::EntryAdded(Box::new(out)),
            Change::IdempotencyRecorded {
                scope: w.alice.clone(),
                key: key(1),
                record: Box::new(IdempotencyRecord { fingerprint: FP, outcome: OutcomeRef::Transfer(t.id) }),
            },
        ]
    );
    // Remembered: after Alice gets the money, the repeat still answers the failed transfer.
    deposit(&mut w.ledger, &w.alice, 1_000);
    let again = unchanged(&mut w.ledger, |l, ch| l.transfer(req, ch));
    assert_eq!(again, Ok(Outcome::Replayed(OutcomeRef::Transfer(t.id))));
    assert_eq!(balance(&w.ledger, &w.bob), (0, 0));
    w.ledger.assert_invariants();
}

#[test]
fn several_legs_from_one_source_are_summed_against_its_available_money() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    // Each leg fits alone; together they do not.
    let legs = vec![leg(None, to_account(&w.bob), 600), leg(None, to_account(&w.carla), 401)];
    let t = run_transfer(&mut w.ledger, request(&w.alice, legs, key(1), 1));
    assert_eq!(t.status, Status::Failed);
    assert_eq!(t.failure.as_ref().map(|f| f.code.as_str()), Some("insufficient_funds"));
    assert_eq!(balance(&w.ledger, &w.alice), (1_000, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (0, 0));
    assert_eq!(balance(&w.ledger, &w.carla), (0, 0));
    // Exactly the available money is enough.
    let legs = vec![leg(None, to_account(&w.bob), 600), leg(None, to_account(&w.carla), 400)];
    let t = run_transfer(&mut w.ledger, request(&w.alice, legs, key(2), 2));
    assert_eq!(t.status, Status::Completed);
    assert_eq!(balance(&w.ledger, &w.alice), (0, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (600, 0));
    assert_eq!(balance(&w.ledger, &w.carla), (400, 0));
}

#[test]
fn a_leg_cannot_spend_what_an_earlier_leg_of_the_same_transfer_credits() {
    let mut w = world();
    deposit(&mut w.ledger, &w.joint, 500);
    // Alice's own account is empty; the first leg fills it, the second would spend that.
    let legs = vec![leg(Some(&w.joint), to_account(&w.alice), 500), leg(Some(&w.alice), to_account(&w.bob), 500)];
    let t = run_transfer(&mut w.ledger, request(&w.alice, legs, key(1), 1));
    assert_eq!(t.status, Status::Failed);
    assert_eq!(t.failure.as_ref().map(|f| f.code.as_str()), Some("insufficient_funds"));
    assert_eq!(balance(&w.ledger, &w.joint), (500, 0));
    assert_eq!(balance(&w.ledger, &w.alice), (0, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (0, 0));
}

#[test]
fn a_transfer_cannot_spend_held_money() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    assert_eq!(
        w.ledger.vote(tx(1), holding(vec![(w.alice.clone(), cents(600))], vec![], NOW), &mut changes),
        Vote::Yes
    );
    let t = run_transfer(&mut w.ledger, request(&w.alice, vec![leg(None, to_account(&w.bob), 401)], key(1), 1));
    assert_eq!(t.status, Status::Failed);
    let t = run_transfer(&mut w.ledger, request(&w.alice, vec![leg(None, to_account(&w.bob), 400)], key(2), 2));
    assert_eq!(t.status, Status::Completed);
    assert_eq!(balance(&w.ledger, &w.alice), (600, 600));
    w.ledger.assert_invariants();
}

// ----- holds (the participant's side of 2PC) ----------------------------------------------------

#[test]
fn placing_holds_reserves_debits_and_emits_balance_and_holds_placed() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let debits = vec![(w.alice.clone(), cents(200)), (w.alice.clone(), cents(100))];
    let credits = vec![(w.bob.clone(), cents(300))];
    let mut changes = Vec::new();
    let vote = w.ledger.vote(tx(1), holding(debits.clone(), credits.clone(), TimestampMs(9)), &mut changes);
    assert_eq!(vote, Vote::Yes);
    let set = holding(debits, credits, TimestampMs(9));
    assert_eq!(
        changes,
        vec![
            Change::Balance { account: w.alice.clone(), posted_cents: 1_000, held_cents: 300 },
            Change::HoldsPlaced { transfer: tx(1), holds: Box::new(set.clone()) },
        ]
    );
    assert_eq!(balance(&w.ledger, &w.alice), (1_000, 300));
    assert_eq!(available(&w.ledger, &w.alice), 700);
    // Pending credits are not spendable and not posted.
    assert_eq!(balance(&w.ledger, &w.bob), (0, 0));
    assert_eq!(w.ledger.holds(&tx(1)), Some(&set));
    assert_eq!(w.ledger.decision(&tx(1)), None);
    w.ledger.assert_invariants();
}

/// Forgetting decisions only empties memory: a forgotten transaction is unknown until its
/// decision is restored (the driver's read-back), then answered exactly as before.
#[test]
fn forgotten_decisions_are_unknown_until_restored() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    let debits = vec![(w.alice.clone(), cents(300))];
    assert_eq!(w.ledger.vote(tx(1), holding(debits.clone(), vec![], NOW), &mut changes), Vote::Yes);
    w.ledger.post_holds(tx(1), &mut changes).expect("commit");
    w.ledger.release_holds(tx(2), &mut changes).expect("abort of an unknown transaction");
    assert_eq!(w.ledger.vote(tx(3), holding(debits.clone(), vec![], NOW), &mut changes), Vote::Yes);

    assert_eq!(w.ledger.forget_decisions_before(tx(3)), 2);
    assert!(!w.ledger.knows(&tx(1)) && !w.ledger.knows(&tx(2)));
    assert!(w.ledger.knows(&tx(3)), "a transaction holding money is never forgotten");
    assert_eq!(w.ledger.decisions_remembered(), 0);

    w.ledger.restore_decision(tx(1), Decision::Committed);
    let vote = unchanged(&mut w.ledger, |l, ch| l.vote(tx(1), holding(debits, vec![], NOW), ch));
    assert!(matches!(vote, Vote::No { ref code, .. } if *code == bank_core::ErrorCode::AlreadyDecided), "{vote:?}");
    assert_eq!(unchanged(&mut w.ledger, |l, ch| l.post_holds(tx(1), ch)), Ok(()));
    assert_eq!(balance(&w.ledger, &w.alice), (700, 300));
    w.ledger.assert_invariants();
}

#[test]
fn a_repeated_place_votes_yes_again_and_changes_nothing() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    let debits = vec![(w.alice.clone(), cents(300))];
    assert_eq!(w.ledger.vote(tx(1), holding(debits.clone(), vec![], NOW), &mut changes), Vote::Yes);
    let vote = unchanged(&mut w.ledger, |l, ch| l.vote(tx(1), holding(debits, vec![], NOW), ch));
    assert_eq!(vote, Vote::Yes);
    assert_eq!(balance(&w.ledger, &w.alice), (1_000, 300));
}

#[test]
fn placing_without_the_funds_votes_no_holds_nothing_and_is_remembered_as_aborted() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let before = w.ledger.clone();
    // Two debits that fit alone but not together.
    let debits = vec![(w.alice.clone(), cents(600)), (w.alice.clone(), cents(401))];
    let mut changes = Vec::new();
    let vote = w.ledger.vote(tx(1), holding(debits.clone(), vec![(w.bob.clone(), cents(1_001))], NOW), &mut changes);
    assert!(matches!(&vote, Vote::No { code, .. } if *code == bank_core::ErrorCode::InsufficientFunds), "{vote:?}");
    assert_eq!(changes, vec![Change::Settled { transfer: tx(1), settlement: Decision::Aborted.settlement() }]);
    assert_eq!(balance(&w.ledger, &w.alice), (1_000, 0));
    assert_eq!(w.ledger.holds(&tx(1)), None);
    assert_eq!(w.ledger.decision(&tx(1)), Some(Decision::Aborted));
    // Only the decision was added.
    let mut expected = before;
    expected.restore_decision(tx(1), Decision::Aborted);
    assert_eq!(w.ledger, expected);
    // A later place (even one that would now fit) votes no and places nothing.
    deposit(&mut w.ledger, &w.alice, 1_000);
    let vote = unchanged(&mut w.ledger, |l, ch| l.vote(tx(1), holding(debits, vec![], NOW), ch));
    assert!(matches!(vote, Vote::No { .. }), "{vote:?}");
    assert_eq!(balance(&w.ledger, &w.alice), (2_000, 0));
}

#[test]
fn placing_on_an_unknown_account_votes_no() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let ghost = AccountNumber::from_seq(50);
    let mut changes = Vec::new();
    let vote = w.ledger.vote(tx(1), holding(vec![(ghost.clone(), cents(1))], vec![], NOW), &mut changes);
    assert!(matches!(&vote, Vote::No { code, .. } if *code == bank_core::ErrorCode::NotFound), "{vote:?}");
    let vote =
        w.ledger.vote(tx(2), holding(vec![(w.alice.clone(), cents(1))], vec![(ghost, cents(1))], NOW), &mut changes);
    assert!(matches!(&vote, Vote::No { code, .. } if *code == bank_core::ErrorCode::NotFound), "{vote:?}");
    assert_eq!(
        changes,
        vec![
            Change::Settled { transfer: tx(1), settlement: Decision::Aborted.settlement() },
            Change::Settled { transfer: tx(2), settlement: Decision::Aborted.settlement() },
        ]
    );
    assert_eq!(balance(&w.ledger, &w.alice), (1_000, 0));
    w.ledger.assert_invariants();
}

#[test]
fn holds_of_two_transactions_add_up_against_the_available_money() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    assert_eq!(
        w.ledger.vote(tx(1), holding(vec![(w.alice.clone(), cents(600))], vec![], NOW), &mut changes),
        Vote::Yes
    );
    let vote = w.ledger.vote(tx(2), holding(vec![(w.alice.clone(), cents(401))], vec![], NOW), &mut changes);
    assert!(matches!(vote, Vote::No { .. }), "{vote:?}");
    assert_eq!(
        w.ledger.vote(tx(3), holding(vec![(w.alice.clone(), cents(400))], vec![], NOW), &mut changes),
        Vote::Yes
    );
    assert_eq!(balance(&w.ledger, &w.alice), (1_000, 1_000));
    assert_eq!(available(&w.ledger, &w.alice), 0);
    w.ledger.assert_invariants();
}

#[test]
fn pending_credits_cannot_be_spent_until_posted() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    let debits = vec![(w.alice.clone(), cents(500))];
    let credits = vec![(w.bob.clone(), cents(500))];
    assert_eq!(w.ledger.vote(tx(1), holding(debits, credits, NOW), &mut changes), Vote::Yes);
    let bob = w.bob.clone();
    let error = rejected(&mut w.ledger, |l, ch| l.withdraw(&bob, cents(1), (fresh_key(), FP), NOW, ch));
    assert_eq!(error.code(), "insufficient_funds");
    let mut changes = Vec::new();
    let vote = w.ledger.vote(tx(2), holding(vec![(bob.clone(), cents(1))], vec![], NOW), &mut changes);
    assert!(matches!(&vote, Vote::No { code, .. } if *code == bank_core::ErrorCode::InsufficientFunds), "{vote:?}");
    let mut changes = Vec::new();
    w.ledger.post_holds(tx(1), &mut changes).expect("posts");
    w.ledger.withdraw(&bob, cents(500), (fresh_key(), FP), NOW, &mut changes).expect("posted money is spendable");
    assert_eq!(balance(&w.ledger, &bob), (0, 0));
}

#[test]
fn posting_holds_moves_the_money_and_emits_balances_then_decided() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    deposit(&mut w.ledger, &w.bob, 50);
    let mut changes = Vec::new();
    let debits = vec![(w.alice.clone(), cents(300)), (w.alice.clone(), cents(100))];
    let credits = vec![(w.bob.clone(), cents(250)), (w.carla.clone(), cents(150))];
    assert_eq!(w.ledger.vote(tx(1), holding(debits, credits, NOW), &mut changes), Vote::Yes);
    let total_before = w.ledger.total_posted_cents();

    let mut changes = Vec::new();
    w.ledger.post_holds(tx(1), &mut changes).expect("posts");
    assert_eq!(
        changes[..3],
        [
            Change::Balance { account: w.alice.clone(), posted_cents: 600, held_cents: 0 },
            Change::Balance { account: w.bob.clone(), posted_cents: 300, held_cents: 0 },
            Change::Balance { account: w.carla.clone(), posted_cents: 150, held_cents: 0 },
        ]
    );
    // Then one statement line per leg (debits out, credits in), then the decision.
    let lines: Vec<(AccountNumber, EntryKind, i64)> = changes[3..changes.len() - 1]
        .iter()
        .map(|c| match c {
            Change::EntryAdded(e) => {
                assert_eq!(e.transfer_id, Some(tx(1)));
                (e.account.clone(), e.kind, e.amount.cents())
            }
            other => panic!("expected a ledger line, got {other:?}"),
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (w.alice.clone(), EntryKind::TransferOut, 300),
            (w.alice.clone(), EntryKind::TransferOut, 100),
            (w.bob.clone(), EntryKind::TransferIn, 250),
            (w.carla.clone(), EntryKind::TransferIn, 150),
        ]
    );
    assert_eq!(
        changes.last(),
        Some(&Change::Settled { transfer: tx(1), settlement: Decision::Committed.settlement() })
    );
    assert_eq!(balance(&w.ledger, &w.alice), (600, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (300, 0));
    assert_eq!(balance(&w.ledger, &w.carla), (150, 0));
    assert_eq!(w.ledger.total_posted_cents(), total_before);
    assert_eq!(w.ledger.holds(&tx(1)), None);
    assert_eq!(w.ledger.decision(&tx(1)), Some(Decision::Committed));
    w.ledger.assert_invariants();

    // A repeated post is a no-op.
    let again = unchanged(&mut w.ledger, |l, ch| l.post_holds(tx(1), ch));
    assert_eq!(again, Ok(()));
    // A late place after the commit votes no and holds nothing.
    let alice = w.alice.clone();
    let vote = unchanged(&mut w.ledger, |l, ch| l.vote(tx(1), holding(vec![(alice, cents(1))], vec![], NOW), ch));
    assert!(matches!(vote, Vote::No { .. }), "{vote:?}");
}

#[test]
fn posting_one_sided_hold_sets_changes_the_bank_total_by_credits_minus_debits() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    // A remote payer's money arrives here (credit only) and a local payer's leaves (debit only).
    assert_eq!(w.ledger.vote(tx(1), holding(vec![], vec![(w.bob.clone(), cents(70))], NOW), &mut changes), Vote::Yes);
    assert_eq!(w.ledger.vote(tx(2), holding(vec![(w.alice.clone(), cents(30))], vec![], NOW), &mut changes), Vote::Yes);
    w.ledger.post_holds(tx(1), &mut changes).expect("posts");
    w.ledger.post_holds(tx(2), &mut changes).expect("posts");
    assert_eq!(w.ledger.total_posted_cents(), 1_000 + 70 - 30);
    assert_eq!(balance(&w.ledger, &w.alice), (970, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (70, 0));
    w.ledger.assert_invariants();
}

#[test]
fn releasing_holds_frees_the_money_and_emits_balance_then_decided() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    let debits = vec![(w.alice.clone(), cents(300)), (w.alice.clone(), cents(100))];
    assert_eq!(w.ledger.vote(tx(1), holding(debits, vec![(w.bob.clone(), cents(400))], NOW), &mut changes), Vote::Yes);
    let mut changes = Vec::new();
    w.ledger.release_holds(tx(1), &mut changes).expect("releases");
    assert_eq!(
        changes,
        vec![
            Change::Balance { account: w.alice.clone(), posted_cents: 1_000, held_cents: 0 },
            Change::Settled { transfer: tx(1), settlement: Decision::Aborted.settlement() },
        ]
    );
    assert_eq!(balance(&w.ledger, &w.alice), (1_000, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (0, 0));
    assert_eq!(w.ledger.holds(&tx(1)), None);
    assert_eq!(w.ledger.decision(&tx(1)), Some(Decision::Aborted));
    // A repeated release is a no-op.
    assert_eq!(unchanged(&mut w.ledger, |l, ch| l.release_holds(tx(1), ch)), Ok(()));
    w.ledger.assert_invariants();
}

#[test]
fn releasing_an_unknown_transaction_makes_a_late_place_vote_no() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    w.ledger.release_holds(tx(7), &mut changes).expect("presumed abort");
    assert_eq!(changes, vec![Change::Settled { transfer: tx(7), settlement: Decision::Aborted.settlement() }]);
    assert_eq!(w.ledger.decision(&tx(7)), Some(Decision::Aborted));
    let alice = w.alice.clone();
    let vote =
        unchanged(&mut w.ledger, |l, ch| l.vote(tx(7), holding(vec![(alice.clone(), cents(10))], vec![], NOW), ch));
    assert!(matches!(vote, Vote::No { .. }), "{vote:?}");
    assert_eq!(balance(&w.ledger, &alice), (1_000, 0));
    assert_eq!(w.ledger.holds(&tx(7)), None);
}

#[test]
fn posting_after_a_release_is_a_conflict() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    assert_eq!(w.ledger.vote(tx(1), holding(vec![(w.alice.clone(), cents(10))], vec![], NOW), &mut changes), Vote::Yes);
    w.ledger.release_holds(tx(1), &mut changes).expect("releases");
    let error = rejected(&mut w.ledger, |l, ch| l.post_holds(tx(1), ch));
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    // Also for a transaction refused at place time.
    let vote = w.ledger.vote(tx(2), holding(vec![(w.alice.clone(), cents(5_000))], vec![], NOW), &mut changes);
    assert!(matches!(vote, Vote::No { .. }), "{vote:?}");
    let error = rejected(&mut w.ledger, |l, ch| l.post_holds(tx(2), ch));
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
}

#[test]
fn releasing_after_a_post_is_a_conflict() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    assert_eq!(w.ledger.vote(tx(1), holding(vec![(w.alice.clone(), cents(10))], vec![], NOW), &mut changes), Vote::Yes);
    w.ledger.post_holds(tx(1), &mut changes).expect("posts");
    let error = rejected(&mut w.ledger, |l, ch| l.release_holds(tx(1), ch));
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    assert_eq!(balance(&w.ledger, &w.alice), (990, 0));
}

#[test]
fn posting_a_transaction_never_placed_is_a_conflict_and_decides_nothing() {
    let mut w = world();
    let error = rejected(&mut w.ledger, |l, ch| l.post_holds(tx(3), ch));
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    assert_eq!(w.ledger.decision(&tx(3)), None);
}

/// Found while writing these tests: `post_holds` clamps a credit at `BALANCE_MAX_CENTS`
/// (`saturating_add(..).min(BALANCE_MAX_CENTS)`) instead of refusing it at place time, so money
/// vanishes. A participant that voted yes cannot refuse the commit; the place must refuse.
#[test]
fn committing_a_hold_credit_at_the_balance_limit_never_destroys_money() {
    let (mut ledger, rich) = ledger_with_rich_account(BALANCE_MAX_CENTS - 50);
    let payer = open(&mut ledger, individual("Paula Pagadora", 2, "paula"));
    deposit(&mut ledger, &payer, 100);
    let total_before = ledger.total_posted_cents();
    let mut changes = Vec::new();
    let vote = ledger.vote(
        tx(1),
        holding(vec![(payer.clone(), cents(100))], vec![(rich.clone(), cents(100))], NOW),
        &mut changes,
    );
    if vote == Vote::Yes {
        ledger.post_holds(tx(1), &mut changes).expect("a yes vote must be committable");
        // The hold set's credits equal its debits: the bank's total must not move.
        assert_eq!(
            ledger.total_posted_cents(),
            total_before,
            "posting a balanced hold set changed Σ posted: payer {:?}, receiver {:?}",
            balance(&ledger, &payer),
            balance(&ledger, &rich)
        );
    } else {
        assert_eq!(balance(&ledger, &payer), (100, 0));
        assert_eq!(balance(&ledger, &rich), (BALANCE_MAX_CENTS - 50, 0));
    }
    ledger.assert_invariants();
}

/// Same bug, reached by a deposit between place and post: a placed credit that fitted when it was
/// placed must still fit when it is posted (or the deposit must be refused).
#[test]
fn a_deposit_between_place_and_post_cannot_make_a_placed_credit_destroy_money() {
    let (mut ledger, rich) = ledger_with_rich_account(BALANCE_MAX_CENTS - 100);
    let mut changes = Vec::new();
    // A credit from a remote payer: it fits under the limit when placed.
    assert_eq!(ledger.vote(tx(1), holding(vec![], vec![(rich.clone(), cents(100))], NOW), &mut changes), Vote::Yes);
    let mut external = ledger.total_posted_cents();
    if ledger.deposit(&rich, cents(50), DepositMethod::Cash, (key(1), FP), NOW, &mut changes).is_ok() {
        external += 50;
    }
    ledger.post_holds(tx(1), &mut changes).expect("a yes vote must be committable");
    external += 100;
    assert_eq!(ledger.total_posted_cents(), external, "Σ posted ≠ deposits + posted credits");
    ledger.assert_invariants();
}

// ----- property tests against a reference model -------------------------------------------------

/// People and companies of the property tests: 0..6 are CPFs, 6..9 are CNPJs.
const PEOPLE: usize = 6;
const DOCS: usize = 9;
const EMAILS: usize = 10;
/// Account slots: `from_seq(i + 1)`; the later ones may not exist.
const SLOTS: usize = 10;
const TXS: u8 = 6;

fn doc(i: usize) -> Document {
    if i < PEOPLE { cpf(1_000 + i as u64) } else { cnpj(2_000 + i as u64) }
}

fn slot(i: usize) -> AccountNumber {
    AccountNumber::from_seq(i as u64 + 1)
}

fn ptx(i: u8) -> TransferId {
    TransferId(Uuid::from_u128(0xF000 + u128::from(i)))
}

fn pkey(i: u8) -> IdempotencyKey {
    IdempotencyKey(Uuid::from_u128(0xE000 + u128::from(i)))
}

fn pfp(i: u8) -> Fingerprint {
    Fingerprint([i; 32])
}

fn random_uuid(i: u8) -> Uuid {
    Uuid::from_u128(0xD000 + u128::from(i))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ModelKey {
    Doc(usize),
    Email(usize),
    Phone,
    Random(u8),
}

impl ModelKey {
    fn pix(self) -> PixKey {
        match self {
            ModelKey::Doc(d) => key_of(&doc(d)),
            ModelKey::Email(e) => PixKey::Email(email(&format!("u{e}"))),
            ModelKey::Phone => PixKey::Phone(phone()),
            ModelKey::Random(r) => PixKey::Random(random_uuid(r)),
        }
    }
}

#[derive(Debug, Clone)]
enum Src {
    Actor,
    Slot(usize),
    OtherBank,
}

#[derive(Debug, Clone)]
enum Dst {
    Slot(usize),
    Key(ModelKey),
    OtherBank,
}

#[derive(Debug, Clone)]
enum Op {
    Open { kind: AccountKind, docs: Vec<usize>, email: usize },
    RegisterKey { account: usize, which: u8 },
    Deposit { account: usize, amount: i64, key: u8, fp: u8 },
    Withdraw { account: usize, amount: i64, key: u8, fp: u8 },
    Transfer { actor: usize, legs: Vec<(Src, Dst, i64)>, key: u8, fp: u8 },
    Place { tx: u8, debits: Vec<(usize, i64)>, credits: Vec<(usize, i64)> },
    Post { tx: u8 },
    Release { tx: u8 },
}

#[derive(Debug, Clone)]
struct ModelAccount {
    kind: AccountKind,
    docs: Vec<usize>,
    email: usize,
    posted: i64,
    held: i64,
}

/// What the model expects of one operation.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Rejected with this error code.
    Rejected(&'static str),
    /// Applied, or (for holds) voted; the ledger changes.
    Applied,
    /// Returned without changing anything (a repeat).
    Unchanged,
}

/// (slot, amount) debits and credits of one transaction.
type ModelHoldSet = (Vec<(usize, i64)>, Vec<(usize, i64)>);

#[derive(Debug, Default)]
struct Model {
    accounts: Vec<ModelAccount>,
    keys: BTreeMap<ModelKey, usize>,
    /// (scope slot, key) → (fingerprint, first outcome).
    idempotency: BTreeMap<(usize, u8), (u8, Outcome)>,
    /// tx → (debits, credits).
    holds: BTreeMap<u8, ModelHoldSet>,
    decided: BTreeMap<u8, Decision>,
    /// deposits − withdrawals + Σ(credits − debits) of posted hold sets.
    external_cents: i64,
}

impl Model {
    fn get(&self, slot: usize) -> Option<&ModelAccount> {
        self.accounts.get(slot)
    }

    fn available(&self, slot: usize) -> i64 {
        let a = &self.accounts[slot];
        a.posted - a.held
    }

    fn may_spend(&self, actor: usize, source: usize) -> bool {
        let a = &self.accounts[actor];
        match a.kind {
            AccountKind::Joint => actor == source,
            _ => self.accounts[source].docs.contains(&a.docs[0]),
        }
    }

    fn valid_holders(kind: AccountKind, docs: &[usize]) -> bool {
        let distinct: BTreeSet<_> = docs.iter().collect();
        match kind {
            AccountKind::Individual => docs.len() == 1 && docs[0] < PEOPLE,
            AccountKind::Company => docs.len() == 1 && docs[0] >= PEOPLE,
            AccountKind::Joint => {
                (2..=8).contains(&docs.len()) && docs.iter().all(|&d| d < PEOPLE) && distinct.len() == docs.len()
            }
        }
    }

    fn replay(&self, scope: usize, key: u8, fp: u8) -> Option<Result<Outcome, &'static str>> {
        self.idempotency
            .get(&(scope, key))
            .map(|(first_fp, outcome)| if *first_fp == fp { Ok(outcome.clone()) } else { Err("idempotency_mismatch") })
    }
}

fn open_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..PEOPLE, 0..EMAILS).prop_map(|(p, email)| Op::Open { kind: AccountKind::Individual, docs: vec![p], email }),
        2 => (PEOPLE..DOCS, 0..EMAILS).prop_map(|(c, email)| Op::Open { kind: AccountKind::Company, docs: vec![c], email }),
        2 => (prop::collection::vec(0..PEOPLE, 2..=3), 0..EMAILS)
            .prop_map(|(docs, email)| Op::Open { kind: AccountKind::Joint, docs, email }),
        1 => (
            prop_oneof![Just(AccountKind::Individual), Just(AccountKind::Company), Just(AccountKind::Joint)],
            prop::collection::vec(0..DOCS, 0..=3),
            0..EMAILS
        )
            .prop_map(|(kind, docs, email)| Op::Open { kind, docs, email }),
    ]
}

/// An account slot, mostly one of the five every run opens first, sometimes a later (maybe
/// missing) one.
fn slot_index() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0..5usize, 2 => 5..SLOTS]
}

/// Idempotency keys from a small pool, so that repeats and mismatches happen often.
fn idem_key() -> impl Strategy<Value = u8> {
    0..12u8
}

fn model_key() -> impl Strategy<Value = ModelKey> {
    prop_oneof![
        3 => (0..DOCS).prop_map(ModelKey::Doc),
        1 => (0..EMAILS).prop_map(ModelKey::Email),
        1 => Just(ModelKey::Phone),
        1 => (0..4u8).prop_map(ModelKey::Random),
    ]
}

fn leg_op() -> impl Strategy<Value = (Src, Dst, i64)> {
    let from = prop_oneof![
        6 => Just(Src::Actor),
        3 => slot_index().prop_map(Src::Slot),
        1 => Just(Src::OtherBank),
    ];
    let to = prop_oneof![
        6 => slot_index().prop_map(Dst::Slot),
        3 => model_key().prop_map(Dst::Key),
        1 => Just(Dst::OtherBank),
    ];
    (from, to, 1..=8_000i64)
}

/// Mostly one to three legs; sometimes none or more than the limit allows.
fn transfer_legs() -> impl Strategy<Value = Vec<(Src, Dst, i64)>> {
    prop_oneof![
        12 => prop::collection::vec(leg_op(), 1..=3),
        1 => prop::collection::vec(leg_op(), 0..=LEGS_MAX + 1),
    ]
}

fn hold_legs() -> impl Strategy<Value = Vec<(usize, i64)>> {
    prop::collection::vec((slot_index(), 1..=8_000i64), 0..=2)
}

/// `weights`: (open, key, deposit, withdraw, transfer, place, post, release).
fn ops(weights: [u32; 8], len: usize) -> impl Strategy<Value = Vec<Op>> {
    let [w_open, w_key, w_dep, w_wd, w_tr, w_place, w_post, w_rel] = weights;
    let op = prop_oneof![
        w_open => open_op(),
        w_key => (slot_index(), 0..6u8).prop_map(|(account, which)| Op::RegisterKey { account, which }),
        w_dep => (slot_index(), 1..=20_000i64, idem_key(), 0..2u8)
            .prop_map(|(account, amount, key, fp)| Op::Deposit { account, amount, key, fp }),
        w_wd => (slot_index(), 1..=10_000i64, idem_key(), 0..2u8)
            .prop_map(|(account, amount, key, fp)| Op::Withdraw { account, amount, key, fp }),
        w_tr => (prop_oneof![9 => 0..5usize, 1 => 5..SLOTS], transfer_legs(), idem_key(), 0..2u8)
            .prop_map(|(actor, legs, key, fp)| Op::Transfer { actor, legs, key, fp }),
        w_place => (0..TXS, hold_legs(), hold_legs()).prop_map(|(tx, debits, credits)| Op::Place { tx, debits, credits }),
        w_post => (0..TXS).prop_map(|tx| Op::Post { tx }),
        w_rel => (0..TXS).prop_map(|tx| Op::Release { tx }),
    ];
    prop::collection::vec(op, 1..=len)
}

/// The accounts every run starts with, opened through the same step as the random ones.
fn prelude() -> Vec<Op> {
    vec![
        Op::Open { kind: AccountKind::Individual, docs: vec![0], email: 0 },
        Op::Open { kind: AccountKind::Individual, docs: vec![1], email: 1 },
        Op::Open { kind: AccountKind::Company, docs: vec![6], email: 2 },
        Op::Open { kind: AccountKind::Joint, docs: vec![0, 1], email: 3 },
        Op::Open { kind: AccountKind::Individual, docs: vec![2], email: 4 },
        Op::Deposit { account: 0, amount: 10_000, key: 200, fp: 0 },
        Op::Deposit { account: 1, amount: 10_000, key: 200, fp: 0 },
        Op::Deposit { account: 2, amount: 10_000, key: 200, fp: 0 },
        Op::Deposit { account: 3, amount: 10_000, key: 200, fp: 0 },
    ]
}

fn code_of<T>(result: &Result<T, Error>) -> Option<&'static str> {
    result.as_ref().err().map(Error::code)
}

/// Applies one operation to both the ledger and the model and checks that they agree.
fn step(ledger: &mut Ledger, model: &mut Model, op: &Op, step_no: usize) {
    let before = ledger.clone();
    let mut changes = Vec::new();
    let now = TimestampMs(step_no as i64);
    let expect = match op {
        Op::Open { kind, docs, email: e } => {
            let new = NewAccount {
                kind: *kind,
                holders: docs.iter().map(|&d| Holder { name: format!("Pessoa {d}"), document: doc(d) }).collect(),
                email: email(&format!("u{e}")),
                phone: phone(),
                password_hash: "x".into(),
            };
            let result = ledger.open_account(new, now, &mut changes);
            let expect = if !Model::valid_holders(*kind, docs) {
                Expect::Rejected("invalid_input")
            } else if model.accounts.iter().any(|a| {
                // E-mail is unique per bank; so is the individual/company account of a document.
                a.email == *e || (*kind != AccountKind::Joint && a.kind != AccountKind::Joint && a.docs[0] == docs[0])
            }) {
                Expect::Rejected("conflict")
            } else {
                let number = model.accounts.len();
                model.accounts.push(ModelAccount { kind: *kind, docs: docs.clone(), email: *e, posted: 0, held: 0 });
                let opened = result.as_ref().expect("model expects the opening to apply");
                assert_eq!(opened.account.number, slot(number));
                if *kind != AccountKind::Joint {
                    let k = ModelKey::Doc(docs[0]);
                    if let std::collections::btree_map::Entry::Vacant(v) = model.keys.entry(k) {
                        v.insert(number);
                        assert_eq!(opened.keys, vec![k.pix()]);
                    } else {
                        assert!(opened.keys.is_empty() && opened.warnings.len() == 1);
                    }
                } else {
                    assert!(opened.keys.is_empty() && opened.warnings.is_empty());
                }
                Expect::Applied
            };
            if let Expect::Rejected(code) = expect {
                assert_eq!(code_of(&result), Some(code), "{op:?}");
            }
            expect
        }
        Op::RegisterKey { account, which } => {
            let request = match which {
                0 => KeyRequest::Email,
                1 => KeyRequest::Phone,
                r => KeyRequest::Random(random_uuid(r - 2)),
            };
            let result = ledger.register_key(&slot(*account), request, &mut changes);
            let expect = match model.get(*account) {
                None => Expect::Rejected("not_found"),
                Some(acc) => {
                    let k = match which {
                        0 => ModelKey::Email(acc.email),
                        1 => ModelKey::Phone,
                        r => ModelKey::Random(r - 2),
                    };
                    if let std::collections::btree_map::Entry::Vacant(v) = model.keys.entry(k) {
                        v.insert(*account);
                        assert_eq!(result.as_ref().ok(), Some(&k.pix()));
                        Expect::Applied
                    } else {
                        Expect::Rejected("conflict")
                    }
                }
            };
            if let Expect::Rejected(code) = expect {
                assert_eq!(code_of(&result), Some(code), "{op:?}");
            }
            expect
        }
        Op::Deposit { account, amount, key, fp } => {
            let result = ledger.deposit(
                &slot(*account),
                cents(*amount),
                DepositMethod::Cash,
                (pkey(*key), pfp(*fp)),
                now,
                &mut changes,
            );
            let expect = if model.get(*account).is_none() {
                Expect::Rejected("not_found")
            } else {
                match model.replay(*account, *key, *fp) {
                    Some(Ok(first)) => {
                        assert_eq!(
                            result.as_ref().ok(),
                            Some(&Outcome::Replayed(first.reference())),
                            "a repeat names the first outcome"
                        );
                        Expect::Unchanged
                    }
                    Some(Err(code)) => Expect::Rejected(code),
                    None => {
                        model.accounts[*account].posted += amount;
                        model.external_cents += amount;
                        let outcome = result.as_ref().expect("model expects the deposit to apply").clone();
                        model.idempotency.insert((*account, *key), (*fp, outcome));
                        Expect::Applied
                    }
                }
            };
            if let Expect::Rejected(code) = expect {
                assert_eq!(code_of(&result), Some(code), "{op:?}");
            }
            expect
        }
        Op::Withdraw { account, amount, key, fp } => {
            let result = ledger.withdraw(&slot(*account), cents(*amount), (pkey(*key), pfp(*fp)), now, &mut changes);
            let expect = if model.get(*account).is_none() {
                Expect::Rejected("not_found")
            } else {
                match model.replay(*account, *key, *fp) {
                    Some(Ok(first)) => {
                        assert_eq!(
                            result.as_ref().ok(),
                            Some(&Outcome::Replayed(first.reference())),
                            "a repeat names the first outcome"
                        );
                        Expect::Unchanged
                    }
                    Some(Err(code)) => Expect::Rejected(code),
                    None if model.available(*account) < *amount => Expect::Rejected("insufficient_funds"),
                    None => {
                        model.accounts[*account].posted -= amount;
                        model.external_cents -= amount;
                        let outcome = result.as_ref().expect("model expects the withdrawal to apply").clone();
                        model.idempotency.insert((*account, *key), (*fp, outcome));
                        Expect::Applied
                    }
                }
            };
            if let Expect::Rejected(code) = expect {
                assert_eq!(code_of(&result), Some(code), "{op:?}");
            }
            expect
        }
        Op::Transfer { actor, legs, key, fp } => {
            let requests: Vec<LegRequest> = legs
                .iter()
                .map(|(from, to, amount)| LegRequest {
                    from: match from {
                        Src::Actor => None,
                        Src::Slot(s) => Some(here(&slot(*s))),
                        Src::OtherBank => Some(AccountRef { bank_id: OTHER_BANK, number: slot(0) }),
                    },
                    to: match to {
                        Dst::Slot(s) => to_account(&slot(*s)),
                        Dst::Key(k) => Destination::Key(k.pix()),
                        Dst::OtherBank => Destination::Account(AccountRef { bank_id: OTHER_BANK, number: slot(1) }),
                    },
                    amount: cents(*amount),
                })
                .collect();
            let req = TransferRequest {
                idempotency_key: pkey(*key),
                fingerprint: pfp(*fp),
                actor: slot(*actor),
                legs: requests,
                description: None,
                transfer_id: TransferId(Uuid::from_u128(0xC0_0000 + step_no as u128)),
                now,
            };
            let result = ledger.transfer(req, &mut changes);
            let expect = model_transfer(model, *actor, legs, *key, *fp, &result);
            if let Expect::Rejected(code) = expect {
                assert_eq!(code_of(&result), Some(code), "{op:?}");
            }
            expect
        }
        Op::Place { tx, debits, credits } => {
            let as_legs = |v: &[(usize, i64)]| v.iter().map(|(s, a)| (slot(*s), cents(*a))).collect::<Vec<_>>();
            let vote = ledger.vote(ptx(*tx), holding(as_legs(debits), as_legs(credits), now), &mut changes);
            let no = |code: &str| matches!(&vote, Vote::No { code: c, .. } if c.as_str() == code);
            if model.holds.contains_key(tx) {
                assert_eq!(vote, Vote::Yes, "a repeated place votes yes again");
                Expect::Unchanged
            } else if model.decided.contains_key(tx) {
                assert!(no("already_decided"), "{vote:?}");
                Expect::Unchanged
            } else if debits.iter().chain(credits).any(|(s, _)| model.get(*s).is_none()) {
                assert!(no("not_found"), "{vote:?}");
                model.decided.insert(*tx, Decision::Aborted);
                Expect::Applied
            } else {
                let mut sums: BTreeMap<usize, i64> = BTreeMap::new();
                for (s, a) in debits {
                    *sums.entry(*s).or_default() += a;
                }
                if sums.iter().any(|(s, sum)| model.available(*s) < *sum) {
                    assert!(no("insufficient_funds"), "{vote:?}");
                    model.decided.insert(*tx, Decision::Aborted);
                } else {
                    assert_eq!(vote, Vote::Yes);
                    for (s, sum) in sums {
                        model.accounts[s].held += sum;
                    }
                    model.holds.insert(*tx, (debits.clone(), credits.clone()));
                }
                Expect::Applied
            }
        }
        Op::Post { tx } => {
            let result = ledger.post_holds(ptx(*tx), &mut changes);
            match model.decided.get(tx) {
                Some(Decision::Committed) => {
                    assert_eq!(result, Ok(()));
                    Expect::Unchanged
                }
                Some(Decision::Aborted) => Expect::Rejected("conflict"),
                None => match model.holds.remove(tx) {
                    None => Expect::Rejected("conflict"),
                    Some((debits, credits)) => {
                        assert_eq!(result, Ok(()));
                        for (s, a) in &debits {
                            model.accounts[*s].posted -= a;
                            model.accounts[*s].held -= a;
                            model.external_cents -= a;
                        }
                        for (s, a) in &credits {
                            model.accounts[*s].posted += a;
                            model.external_cents += a;
                        }
                        model.decided.insert(*tx, Decision::Committed);
                        Expect::Applied
                    }
                },
            }
            .also_check(&result, op)
        }
        Op::Release { tx } => {
            let result = ledger.release_holds(ptx(*tx), &mut changes);
            match model.decided.get(tx) {
                Some(Decision::Aborted) => {
                    assert_eq!(result, Ok(()));
                    Expect::Unchanged
                }
                Some(Decision::Committed) => Expect::Rejected("conflict"),
                None => {
                    assert_eq!(result, Ok(()));
                    if let Some((debits, _)) = model.holds.remove(tx) {
                        for (s, a) in &debits {
                            model.accounts[*s].held -= a;
                        }
                    }
                    model.decided.insert(*tx, Decision::Aborted);
                    Expect::Applied
                }
            }
            .also_check(&result, op)
        }
    };

    // Whatever happened, the ledger's own invariants hold and it agrees with the model.
    ledger.assert_invariants();
    match expect {
        Expect::Rejected(_) | Expect::Unchanged => {
            assert_eq!(*ledger, before, "{op:?} ({expect:?}) changed the ledger");
            assert!(changes.is_empty(), "{op:?} ({expect:?}) emitted {changes:?}");
        }
        Expect::Applied => {
            assert!(!changes.is_empty(), "{op:?} applied without a change");
            // Storage replaying the changes gets the ledger's balances: the last Balance change of
            // an account is its balance, and every account whose balance moved has one.
            let mut last: BTreeMap<&AccountNumber, (i64, i64)> = BTreeMap::new();
            for change in &changes {
                if let Change::Balance { account, posted_cents, held_cents } = change {
                    last.insert(account, (*posted_cents, *held_cents));
                }
            }
            for acc in ledger.accounts() {
                let old = before.account(&acc.number).map(|a| (a.posted_cents, a.held_cents)).unwrap_or((0, 0));
                let now = (acc.posted_cents, acc.held_cents);
                match last.get(&acc.number) {
                    Some(written) => assert_eq!(*written, now, "{op:?}: Balance change of {}", acc.number),
                    None => assert_eq!(old, now, "{op:?}: {} moved without a Balance change", acc.number),
                }
            }
        }
    }
    assert_eq!(ledger.accounts().count(), model.accounts.len());
    for (i, m) in model.accounts.iter().enumerate() {
        let acc = ledger.account(&slot(i)).expect("model account exists in the ledger");
        assert_eq!((acc.posted_cents, acc.held_cents), (m.posted, m.held), "{op:?}: balance of {}", acc.number);
        assert!(acc.available_cents() >= 0);
    }
    assert_eq!(ledger.total_posted_cents(), model.external_cents, "{op:?}: money was created or lost");
    for tx in model.holds.keys() {
        assert!(ledger.holds(&ptx(*tx)).is_some());
    }
    for (tx, decision) in &model.decided {
        assert_eq!(ledger.decision(&ptx(*tx)), Some(*decision));
    }
}

trait AlsoCheck {
    fn also_check(self, result: &Result<(), Error>, op: &Op) -> Self;
}

impl AlsoCheck for Expect {
    fn also_check(self, result: &Result<(), Error>, op: &Op) -> Self {
        if let Expect::Rejected(code) = self {
            assert_eq!(code_of(result), Some(code), "{op:?}");
        }
        self
    }
}

/// The model of `Ledger::transfer`: checks in the ledger's order, then completed or failed.
fn model_transfer(
    model: &mut Model,
    actor: usize,
    legs: &[(Src, Dst, i64)],
    key: u8,
    fp: u8,
    result: &Result<Outcome, Error>,
) -> Expect {
    if model.get(actor).is_none() {
        return Expect::Rejected("unauthorized");
    }
    match model.replay(actor, key, fp) {
        Some(Ok(first)) => {
            assert_eq!(
                result.as_ref().ok(),
                Some(&Outcome::Replayed(first.reference())),
                "a repeat names the first outcome"
            );
            return Expect::Unchanged;
        }
        Some(Err(code)) => return Expect::Rejected(code),
        None => {}
    }
    if legs.is_empty() || legs.len() > LEGS_MAX {
        return Expect::Rejected("invalid_input");
    }
    let mut resolved = Vec::new();
    for (from, to, amount) in legs {
        let source = match from {
            Src::Actor => actor,
            Src::OtherBank => return Expect::Rejected("not_found"),
            Src::Slot(s) => *s,
        };
        if model.get(source).is_none() || !model.may_spend(actor, source) {
            return Expect::Rejected("forbidden");
        }
        let dest = match to {
            Dst::OtherBank => return Expect::Rejected("not_found"),
            Dst::Slot(s) if model.get(*s).is_none() => return Expect::Rejected("not_found"),
            Dst::Slot(s) => *s,
            Dst::Key(k) => match model.keys.get(k) {
                Some(owner) => *owner,
                None => return Expect::Rejected("unknown_key"),
            },
        };
        if dest == source {
            return Expect::Rejected("invalid_input");
        }
        resolved.push((source, dest, *amount));
    }
    let mut sums: BTreeMap<usize, i64> = BTreeMap::new();
    for (source, _, amount) in &resolved {
        *sums.entry(*source).or_default() += amount;
    }
    let enough = sums.iter().all(|(s, sum)| model.available(*s) >= *sum);
    let outcome = result.as_ref().expect("model expects the transfer to execute").clone();
    let transfer = transfer_of(outcome.clone());
    if enough {
        assert_eq!(transfer.status, Status::Completed);
        for (source, dest, amount) in resolved {
            model.accounts[source].posted -= amount;
            model.accounts[dest].posted += amount;
        }
    } else {
        assert_eq!(transfer.status, Status::Failed);
        assert_eq!(transfer.failure.as_ref().map(|f| f.code.as_str()), Some("insufficient_funds"));
    }
    assert_eq!(transfer.legs.len(), legs.len());
    model.idempotency.insert((actor, key), (fp, outcome));
    Expect::Applied
}

fn run(ops: &[Op]) {
    let mut ledger = Ledger::new(BANK);
    let mut model = Model::default();
    for (i, op) in prelude().iter().chain(ops).enumerate() {
        step(&mut ledger, &mut model, op, i);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Every kind of operation, mixed: the ledger agrees with the model after every step, its
    /// invariants hold, money is conserved and every rejection leaves no trace.
    #[test]
    fn random_operations_agree_with_the_model(ops in ops([2, 1, 4, 3, 5, 3, 2, 2], 60)) {
        run(&ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Holds-heavy runs: repeated, late and out-of-order place/post/release over few transactions.
    #[test]
    fn random_hold_sequences_agree_with_the_model(ops in ops([0, 0, 2, 1, 1, 6, 4, 4], 50)) {
        run(&ops);
    }

    /// Transfer-heavy runs: multi-leg transfers among random accounts and keys, many failing or
    /// rejected, with idempotency keys reused.
    #[test]
    fn random_transfer_sequences_agree_with_the_model(ops in ops([1, 1, 3, 1, 8, 1, 1, 1], 50)) {
        run(&ops);
    }
}
