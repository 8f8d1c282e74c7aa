//! Property tests against a small reference model, invariants checked after every step.

use crate::support::*;
use proptest::prelude::*;

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
