//! The torture run's checker: pure functions of the history ([`Op`]s) and the banks' final
//! state ([`FinalState`]). Any violation is an [`Anomaly`] naming the operations involved.
//!
//! What is checked:
//! - **Money conserved**: for the consortium, Σ posted = Σ deposits − Σ withdrawals (the banks'
//!   own totals), and those totals equal what the history says was deposited and withdrawn; per
//!   bank, Σ posted equals the history's deposits − withdrawals ± the legs of committed transfers.
//! - **Every account's final balance** equals exactly its deposits − withdrawals ± the legs of
//!   the transfers that committed (the client's answer, or for an unknown/pending one the banks'
//!   decisions). A transfer posted twice, or lost, shows here.
//! - **No negative available balance** at the end, **no hold left**.
//! - **Decisions**: a transfer the client saw `completed` was aborted by no bank; one it saw
//!   `failed` was committed by none; every transfer is decided the same way by every bank that
//!   decided it (else it is torn).
//! - **Reads**: no balance read during the run is negative, below what had certainly been
//!   posted before the read began (stale), or above what could have been credited by the time it
//!   ended (impossible). Only movements the read's bank applies when it answers the client count
//!   toward the lower bound: a participant may apply a committed leg a little after the
//!   coordinator answered.
//! - **Keys**: every key the client saw registered is, at the end, in its bank's directory
//!   naming its account, and no directory names another account for it; no lookup named another
//!   bank. (A lookup may miss a key that has not reached the bank asked yet: not an anomaly.)
//! - **The token**, from each bank's ring visit log: no two banks held the token at the same
//!   position `(epoch, hop)` — one holder per position, so at most one bank ran cross-bank work
//!   under it — and each bank's positions only grew (a restarted bank never resumes a token).
//! - `bank audit`'s own problems, if any.
//!
//! Operations whose effect stays unknown (no answer, and nothing the banks recorded tells) make
//! the balances of the accounts they touch impossible to judge: those accounts are named in
//! [`Checked::unjudged`] instead of being checked.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use super::history::{AccountKey, FinalState, Op, OpKind, Outcome, TransferStatus};

/// Most anomalies listed in full (the count is still exact).
pub const ANOMALIES_SHOWN_MAX: usize = 200;

/// The kinds of anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// Σ posted ≠ Σ deposits − Σ withdrawals, or the banks' deposit/withdrawal totals disagree
    /// with the history.
    MoneyNotConserved,
    /// An account's or a bank's final balance is not what the history makes it.
    WrongBalance,
    NegativeBalance,
    HoldLeft,
    /// The client saw `completed`, a bank aborted it.
    CompletedNotPosted,
    /// The client saw `failed`, a bank committed it.
    FailedButMoved,
    /// Committed at one bank, aborted at another.
    Torn,
    /// A read below what had certainly been posted before it began.
    StaleRead,
    /// A read above what could have been credited by the time it ended.
    ImpossibleRead,
    NegativeRead,
    /// A registered key is missing from its bank's directory at the end, or a directory names
    /// another account for it.
    KeyLost,
    /// A lookup named another bank than the one the key was registered at.
    KeyWrongOwner,
    /// Two banks held the token at the same position `(epoch, hop)`.
    TwoHolders,
    /// A bank's ring positions went back (or repeated) from one visit to the next.
    EpochWentBack,
    /// `bank audit` reported a violation or could not conclude.
    Audit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    /// Indexes of the operations involved.
    pub ops: Vec<usize>,
    pub detail: String,
}

/// The checker's verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Checked {
    pub anomalies: Vec<Anomaly>,
    pub anomalies_total: usize,
    /// Operations whose effect stayed unknown.
    pub unresolved: Vec<usize>,
    /// Accounts not judged because an unresolved operation touched them.
    pub unjudged: Vec<AccountKey>,
}

impl Checked {
    fn add(&mut self, kind: AnomalyKind, ops: Vec<usize>, detail: String) {
        self.anomalies_total += 1;
        if self.anomalies.len() < ANOMALIES_SHOWN_MAX {
            self.anomalies.push(Anomaly { kind, ops, detail });
        }
    }
}

/// Whether an operation moved money, as finally known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Moved,
    Nothing,
    Unknown,
}

/// The decisions the banks touched by transfer `id` recorded: (committed at, aborted at).
fn decisions(fin: &FinalState, id: &str, banks: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut committed = Vec::new();
    let mut aborted = Vec::new();
    for bank in banks {
        match fin.banks.get(bank).and_then(|b| b.decisions.get(id)) {
            Some(true) => committed.push(*bank),
            Some(false) => aborted.push(*bank),
            None => {}
        }
    }
    (committed, aborted)
}

/// What `op` finally did: the client's answer (or its resolution); for a pending transfer, the
/// banks' decisions.
pub fn effect(op: &Op, fin: &FinalState) -> Effect {
    if !op.kind.moves_money() {
        return Effect::Nothing;
    }
    match op.effective() {
        Outcome::Entry { completed: true } | Outcome::Transfer { status: TransferStatus::Completed, .. } => {
            Effect::Moved
        }
        Outcome::Entry { completed: false }
        | Outcome::Transfer { status: TransferStatus::Failed, .. }
        | Outcome::Rejected { .. } => Effect::Nothing,
        Outcome::Transfer { id, status: TransferStatus::Pending, .. } => match decisions(fin, id, &op.kind.banks()) {
            (committed, _) if !committed.is_empty() => Effect::Moved,
            (_, aborted) if !aborted.is_empty() => Effect::Nothing,
            _ => Effect::Unknown,
        },
        Outcome::Unknown { .. }
        | Outcome::Balance { .. }
        | Outcome::Statement { .. }
        | Outcome::Key { .. }
        | Outcome::KeyOwner { .. } => Effect::Unknown,
    }
}

/// The balance changes an operation makes if it moves money.
pub fn deltas(kind: &OpKind) -> Vec<(AccountKey, i64)> {
    match kind {
        OpKind::Deposit { account, cents } => vec![(account.clone(), *cents)],
        OpKind::Withdraw { account, cents } => vec![(account.clone(), -cents)],
        OpKind::Transfer { legs, .. } => {
            legs.iter().flat_map(|l| [(l.from.clone(), -l.cents), (l.to.clone(), l.cents)]).collect()
        }
        OpKind::ReadBalance { .. }
        | OpKind::Statement { .. }
        | OpKind::RegisterKey { .. }
        | OpKind::LookupKey { .. } => Vec::new(),
    }
}

/// Whether the bank of `account` applies `kind`'s change to it before answering the client:
/// deposits and withdrawals, and transfer legs at the coordinator.
fn applied_before_answer(kind: &OpKind, account: &AccountKey) -> bool {
    match kind {
        OpKind::Transfer { coordinator, .. } => account.0 == *coordinator,
        _ => true,
    }
}

/// Checks the history against the final state.
pub fn check(history: &[Op], fin: &FinalState) -> Checked {
    let mut out = Checked::default();
    let effects: Vec<Effect> = history.iter().map(|op| effect(op, fin)).collect();
    out.unresolved =
        history.iter().zip(&effects).filter(|(_, e)| **e == Effect::Unknown).map(|(o, _)| o.index).collect();
    check_balances(history, &effects, fin, &mut out);
    check_conservation(history, &effects, fin, &mut out);
    check_end_state(fin, &mut out);
    check_decisions(history, fin, &mut out);
    check_reads(history, &effects, &mut out);
    check_keys(history, fin, &mut out);
    check_ring(fin, &mut out);
    for problem in &fin.audit_problems {
        out.add(AnomalyKind::Audit, Vec::new(), problem.clone());
    }
    out
}

/// Every account's final posted balance against the history.
fn check_balances(history: &[Op], effects: &[Effect], fin: &FinalState, out: &mut Checked) {
    let mut expected: BTreeMap<AccountKey, i64> = BTreeMap::new();
    let mut touching: BTreeMap<AccountKey, Vec<usize>> = BTreeMap::new();
    let mut unjudged: BTreeSet<AccountKey> = BTreeSet::new();
    for (op, effect) in history.iter().zip(effects) {
        for (account, delta) in deltas(&op.kind) {
            touching.entry(account.clone()).or_default().push(op.index);
            match effect {
                Effect::Moved => *expected.entry(account).or_default() += delta,
                Effect::Nothing => {
                    expected.entry(account).or_default();
                }
                Effect::Unknown => {
                    unjudged.insert(account);
                }
            }
        }
    }
    for (account, want) in &expected {
        if unjudged.contains(account) {
            continue;
        }
        let got = fin.banks.get(&account.0).and_then(|b| b.accounts.get(&account.1)).map(|(posted, _)| *posted);
        if got != Some(*want) {
            let ops = suspects(history, account, got.unwrap_or(0) - want, &touching[account]);
            let got = got.map_or("no such account".to_string(), |g| format!("{g} centavos"));
            out.add(
                AnomalyKind::WrongBalance,
                ops,
                format!(
                    "account {} at bank {}: the history makes it {want} centavos, the bank has {got}",
                    account.1, account.0
                ),
            );
        }
    }
    out.unjudged = unjudged.into_iter().collect();
}

/// The operations on `account` whose amount explains a difference of `diff` (a movement lost or
/// applied twice); all of them when none does.
fn suspects(history: &[Op], account: &AccountKey, diff: i64, touching: &[usize]) -> Vec<usize> {
    let explains = |i: &usize| deltas(&history[*i].kind).iter().any(|(a, d)| a == account && d.abs() == diff.abs());
    let matching: Vec<usize> = touching.iter().copied().filter(explains).collect();
    if matching.is_empty() { touching.to_vec() } else { matching }
}

/// Conservation for the consortium and per bank.
fn check_conservation(history: &[Op], effects: &[Effect], fin: &FinalState, out: &mut Checked) {
    let posted: i64 = fin.banks.values().flat_map(|b| b.accounts.values()).map(|(p, _)| p).sum();
    let deposits: i64 = fin.banks.values().map(|b| b.deposits_cents).sum();
    let withdrawals: i64 = fin.banks.values().map(|b| b.withdrawals_cents).sum();
    if posted != deposits - withdrawals {
        out.add(
            AnomalyKind::MoneyNotConserved,
            Vec::new(),
            format!("Σ posted {posted} ≠ Σ deposits {deposits} − Σ withdrawals {withdrawals} over the consortium"),
        );
    }
    // Per bank: the banks' deposit and withdrawal totals against the history.
    let mut moved: BTreeMap<(u32, &'static str), (i64, bool)> = BTreeMap::new();
    for (op, effect) in history.iter().zip(effects) {
        let (bank, what, cents) = match &op.kind {
            OpKind::Deposit { account, cents } => (account.0, "deposits", *cents),
            OpKind::Withdraw { account, cents } => (account.0, "withdrawals", *cents),
            _ => continue,
        };
        let slot = moved.entry((bank, what)).or_insert((0, true));
        match effect {
            Effect::Moved => slot.0 += cents,
            Effect::Nothing => {}
            Effect::Unknown => slot.1 = false,
        }
    }
    for ((bank, what), (cents, known)) in moved {
        let Some(b) = fin.banks.get(&bank) else { continue };
        let total = if what == "deposits" { b.deposits_cents } else { b.withdrawals_cents };
        if known && total != cents {
            out.add(
                AnomalyKind::MoneyNotConserved,
                Vec::new(),
                format!("bank {bank} counts {total} centavos of {what}; the history's completed {what} sum to {cents}"),
            );
        }
    }
}

/// At the end: no negative available balance and nothing held.
fn check_end_state(fin: &FinalState, out: &mut Checked) {
    for bank in fin.banks.values() {
        for (number, (posted, held)) in &bank.accounts {
            if posted - held < 0 || *posted < 0 {
                out.add(
                    AnomalyKind::NegativeBalance,
                    Vec::new(),
                    format!("account {number} at bank {} ends with posted {posted}, held {held}", bank.id),
                );
            }
            if *held != 0 {
                out.add(
                    AnomalyKind::HoldLeft,
                    Vec::new(),
                    format!("account {number} at bank {} still holds {held}", bank.id),
                );
            }
        }
        if !bank.holds.is_empty() {
            out.add(
                AnomalyKind::HoldLeft,
                Vec::new(),
                format!("bank {} still holds money for transfers {}", bank.id, bank.holds.join(", ")),
            );
        }
    }
}

/// Every transfer with a known id is decided the same way everywhere, and as the client saw it.
fn check_decisions(history: &[Op], fin: &FinalState, out: &mut Checked) {
    for op in history {
        let Outcome::Transfer { id, status, .. } = op.effective() else { continue };
        let (committed, aborted) = decisions(fin, id, &op.kind.banks());
        if !committed.is_empty() && !aborted.is_empty() {
            out.add(
                AnomalyKind::Torn,
                vec![op.index],
                format!("transfer {id} committed at banks {committed:?} but aborted at banks {aborted:?}"),
            );
        }
        if *status == TransferStatus::Completed && !aborted.is_empty() {
            out.add(
                AnomalyKind::CompletedNotPosted,
                vec![op.index],
                format!("transfer {id} answered completed, but banks {aborted:?} aborted it"),
            );
        }
        if *status == TransferStatus::Failed && !committed.is_empty() {
            out.add(
                AnomalyKind::FailedButMoved,
                vec![op.index],
                format!("transfer {id} answered failed, but banks {committed:?} committed it"),
            );
        }
    }
}

/// Registered keys against the final directories, and lookups against the registrations.
fn check_keys(history: &[Op], fin: &FinalState, out: &mut Checked) {
    for op in history {
        match (&op.kind, &op.outcome) {
            (OpKind::RegisterKey { account }, Outcome::Key { key }) => {
                let key = key.to_lowercase();
                let home = fin.banks.get(&account.0).and_then(|b| b.keys.get(&key));
                if fin.banks.contains_key(&account.0) && home != Some(account) {
                    let detail = format!("key {key} registered for {account:?}: its bank's directory says {home:?}");
                    out.add(AnomalyKind::KeyLost, vec![op.index], detail);
                }
                for bank in fin.banks.values() {
                    if let Some(other) = bank.keys.get(&key).filter(|owner| *owner != account) {
                        let detail = format!("key {key} registered for {account:?}; bank {} names {other:?}", bank.id);
                        out.add(AnomalyKind::KeyLost, vec![op.index], detail);
                    }
                }
            }
            (OpKind::LookupKey { at, key, owner }, Outcome::KeyOwner { bank }) if *bank != owner.0 => {
                let detail = format!("key {key} of {owner:?} looked up at bank {at} named bank {bank}");
                out.add(AnomalyKind::KeyWrongOwner, vec![op.index], detail);
            }
            _ => {}
        }
    }
}

/// Bounds on the posted balance a read of `account` during [invoked, completed] may show.
fn read_bounds(history: &[Op], effects: &[Effect], account: &AccountKey, read: &Op) -> (i64, i64) {
    let (mut lower, mut upper) = (0i64, 0i64);
    for (op, effect) in history.iter().zip(effects) {
        if *effect == Effect::Nothing || op.invoked_ms > read.completed_ms {
            continue;
        }
        // Certainly applied before the read began: it moved, the client was told so before the
        // read was invoked, and the read's bank applies it before answering.
        let certain = *effect == Effect::Moved
            && op.resolved.is_none()
            && op.completed_ms < read.invoked_ms
            && applied_before_answer(&op.kind, account);
        for (a, delta) in deltas(&op.kind) {
            if &a != account {
                continue;
            }
            // A credit may be in the balance whenever it was invoked in time; a debit is
            // certainly in it only when certain.
            if delta > 0 {
                upper += delta;
                lower += if certain { delta } else { 0 };
            } else {
                lower += delta;
                upper += if certain { delta } else { 0 };
            }
        }
    }
    (lower, upper)
}

/// Every balance read against what the history allows.
fn check_reads(history: &[Op], effects: &[Effect], out: &mut Checked) {
    for read in history {
        let (OpKind::ReadBalance { account }, Outcome::Balance { posted, available, .. }) = (&read.kind, &read.outcome)
        else {
            continue;
        };
        if *available < 0 || *posted < 0 {
            out.add(
                AnomalyKind::NegativeRead,
                vec![read.index],
                format!("account {} at bank {} read posted {posted}, available {available}", account.1, account.0),
            );
        }
        let (lower, upper) = read_bounds(history, effects, account, read);
        if *posted < lower {
            out.add(
                AnomalyKind::StaleRead,
                vec![read.index],
                format!("account {} at bank {} read {posted}, below the {lower} already posted", account.1, account.0),
            );
        }
        if *posted > upper {
            out.add(
                AnomalyKind::ImpossibleRead,
                vec![read.index],
                format!(
                    "account {} at bank {} read {posted}, above the {upper} that could be posted",
                    account.1, account.0
                ),
            );
        }
    }
}

/// One holder per ring position, and each bank's positions growing.
fn check_ring(fin: &FinalState, out: &mut Checked) {
    let mut holders: BTreeMap<(u64, u64), u32> = BTreeMap::new();
    for (bank, visits) in &fin.visits {
        for pair in visits.windows(2) {
            let (before, after) = ((pair[0].epoch, pair[0].hop), (pair[1].epoch, pair[1].hop));
            if after <= before {
                out.add(
                    AnomalyKind::EpochWentBack,
                    Vec::new(),
                    format!("bank {bank} visited {after:?} (at {} ms) after {before:?}", pair[1].start_ms),
                );
            }
        }
        for visit in visits {
            let position = (visit.epoch, visit.hop);
            match holders.get(&position) {
                Some(other) if other != bank => out.add(
                    AnomalyKind::TwoHolders,
                    Vec::new(),
                    format!("banks {other} and {bank} both held the token at (epoch, hop) {position:?}"),
                ),
                _ => {
                    holders.insert(position, *bank);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torture::history::{FinalBank, LegSpec, TransferClass};

    fn acct(bank: u32, n: &str) -> AccountKey {
        (bank, n.to_string())
    }

    fn op(index: usize, kind: OpKind, at: (u64, u64), outcome: Outcome) -> Op {
        Op { index, worker: 0, kind, invoked_ms: at.0, completed_ms: at.1, outcome, resolved: None }
    }

    fn deposit(index: usize, account: AccountKey, cents: i64, at: (u64, u64)) -> Op {
        op(index, OpKind::Deposit { account, cents }, at, Outcome::Entry { completed: true })
    }

    fn pix(index: usize, from: AccountKey, to: AccountKey, cents: i64, outcome: Outcome) -> Op {
        let kind = OpKind::Transfer {
            class: TransferClass::Pix,
            coordinator: from.0,
            legs: vec![LegSpec { from, to, cents }],
        };
        op(index, kind, (20, 30), outcome)
    }

    fn transfer(id: &str, status: TransferStatus) -> Outcome {
        Outcome::Transfer { id: id.into(), status, failure: None }
    }

    /// Banks 1 and 2 with the given (account, posted) and decisions.
    fn state(accounts: &[(AccountKey, i64)], deposits: [i64; 2], decisions: &[(u32, &str, bool)]) -> FinalState {
        let mut fin = FinalState::default();
        for id in 1..=2 {
            let bank = FinalBank { id, deposits_cents: deposits[id as usize - 1], ..FinalBank::default() };
            fin.banks.insert(id, bank);
        }
        for (account, posted) in accounts {
            fin.banks.get_mut(&account.0).expect("bank").accounts.insert(account.1.clone(), (*posted, 0));
        }
        for (bank, id, committed) in decisions {
            fin.banks.get_mut(bank).expect("bank").decisions.insert((*id).into(), *committed);
        }
        fin
    }

    fn kinds(checked: &Checked) -> BTreeSet<AnomalyKind> {
        checked.anomalies.iter().map(|a| a.kind).collect()
    }

    /// Two deposits of 100 and a completed Pix of 30 from a to b.
    fn healthy() -> Vec<Op> {
        vec![
            deposit(0, acct(1, "a"), 100, (0, 10)),
            deposit(1, acct(2, "b"), 100, (0, 10)),
            pix(2, acct(1, "a"), acct(2, "b"), 30, transfer("t1", TransferStatus::Completed)),
        ]
    }

    #[test]
    fn a_consistent_history_has_no_anomaly() {
        let fin = state(&[(acct(1, "a"), 70), (acct(2, "b"), 130)], [100, 100], &[(1, "t1", true), (2, "t1", true)]);
        let checked = check(&healthy(), &fin);
        assert!(checked.anomalies.is_empty(), "{:?}", checked.anomalies);
        assert!(checked.unresolved.is_empty());
    }

    #[test]
    fn lost_money_is_reported() {
        // The credit at bank 2 never happened: 30 centavos vanished.
        let fin = state(&[(acct(1, "a"), 70), (acct(2, "b"), 100)], [100, 100], &[(1, "t1", true), (2, "t1", true)]);
        let checked = check(&healthy(), &fin);
        let found = kinds(&checked);
        assert!(found.contains(&AnomalyKind::MoneyNotConserved), "{found:?}");
        let wrong = checked.anomalies.iter().find(|a| a.kind == AnomalyKind::WrongBalance).expect("wrong balance");
        assert_eq!(wrong.ops, vec![2], "the Pix of 30 is the suspect: {wrong:?}");
    }

    #[test]
    fn a_double_post_is_reported() {
        // The Pix was credited twice at bank 2.
        let fin = state(&[(acct(1, "a"), 70), (acct(2, "b"), 160)], [100, 100], &[(1, "t1", true), (2, "t1", true)]);
        let checked = check(&healthy(), &fin);
        assert!(kinds(&checked).contains(&AnomalyKind::WrongBalance), "{:?}", checked.anomalies);
        assert!(kinds(&checked).contains(&AnomalyKind::MoneyNotConserved), "{:?}", checked.anomalies);
    }

    #[test]
    fn a_torn_packet_is_reported() {
        // A packet with legs from banks 1 and 2, pending for the client: bank 1 committed, bank 2 aborted.
        let legs = vec![
            LegSpec { from: acct(1, "a"), to: acct(2, "b"), cents: 10 },
            LegSpec { from: acct(2, "c"), to: acct(1, "d"), cents: 20 },
        ];
        let kind = OpKind::Transfer { class: TransferClass::Packet, coordinator: 1, legs };
        let history = vec![
            deposit(0, acct(1, "a"), 100, (0, 10)),
            deposit(1, acct(2, "c"), 100, (0, 10)),
            op(2, kind, (20, 30), transfer("p1", TransferStatus::Pending)),
        ];
        let accounts = [(acct(1, "a"), 90), (acct(1, "d"), 0), (acct(2, "b"), 10), (acct(2, "c"), 100)];
        let fin = state(&accounts, [100, 100], &[(1, "p1", true), (2, "p1", false)]);
        let checked = check(&history, &fin);
        assert!(kinds(&checked).contains(&AnomalyKind::Torn), "{:?}", checked.anomalies);
        assert!(kinds(&checked).contains(&AnomalyKind::WrongBalance), "{:?}", checked.anomalies);
    }

    #[test]
    fn a_stale_read_and_a_negative_read_are_reported() {
        let mut history = healthy();
        // After the deposit of 100 completed at 10, a read invoked at 15 sees 0.
        let read = OpKind::ReadBalance { account: acct(1, "a") };
        history.push(op(3, read.clone(), (15, 16), Outcome::Balance { posted: 0, held: 0, available: 0 }));
        history.push(op(4, read.clone(), (40, 41), Outcome::Balance { posted: 70, held: 80, available: -10 }));
        history.push(op(5, read, (40, 41), Outcome::Balance { posted: 70, held: 0, available: 70 }));
        let fin = state(&[(acct(1, "a"), 70), (acct(2, "b"), 130)], [100, 100], &[(1, "t1", true), (2, "t1", true)]);
        let checked = check(&history, &fin);
        let stale: Vec<&Anomaly> = checked.anomalies.iter().filter(|a| a.kind == AnomalyKind::StaleRead).collect();
        assert_eq!(stale.len(), 1, "{:?}", checked.anomalies);
        assert_eq!(stale[0].ops, vec![3]);
        let negative: Vec<&Anomaly> =
            checked.anomalies.iter().filter(|a| a.kind == AnomalyKind::NegativeRead).collect();
        assert_eq!(negative.len(), 1, "{:?}", checked.anomalies);
        assert_eq!(negative[0].ops, vec![4]);
    }

    #[test]
    fn a_read_of_money_never_credited_is_impossible() {
        let mut history = healthy();
        let read = OpKind::ReadBalance { account: acct(2, "b") };
        history.push(op(3, read, (40, 41), Outcome::Balance { posted: 500, held: 0, available: 500 }));
        let fin = state(&[(acct(1, "a"), 70), (acct(2, "b"), 130)], [100, 100], &[(1, "t1", true), (2, "t1", true)]);
        assert!(kinds(&check(&history, &fin)).contains(&AnomalyKind::ImpossibleRead));
    }

    #[test]
    fn a_failed_transfer_that_moved_and_a_completed_one_aborted_are_reported() {
        let mut history = healthy();
        history.push(pix(3, acct(1, "a"), acct(2, "b"), 5, transfer("t2", TransferStatus::Failed)));
        let decisions = [(1, "t1", false), (2, "t1", false), (1, "t2", true)];
        let fin = state(&[(acct(1, "a"), 70), (acct(2, "b"), 130)], [100, 100], &decisions);
        let found = kinds(&check(&history, &fin));
        assert!(found.contains(&AnomalyKind::CompletedNotPosted), "{found:?}");
        assert!(found.contains(&AnomalyKind::FailedButMoved), "{found:?}");
    }

    #[test]
    fn holds_and_negative_balances_left_at_the_end_are_reported() {
        let mut fin =
            state(&[(acct(1, "a"), 70), (acct(2, "b"), 130)], [100, 100], &[(1, "t1", true), (2, "t1", true)]);
        fin.banks.get_mut(&1).expect("bank").accounts.insert("a".into(), (70, 90));
        fin.banks.get_mut(&2).expect("bank").holds.push("t9".into());
        let found = kinds(&check(&healthy(), &fin));
        assert!(found.contains(&AnomalyKind::HoldLeft) && found.contains(&AnomalyKind::NegativeBalance), "{found:?}");
    }

    #[test]
    fn an_unknown_transfer_is_judged_by_the_banks_records_or_leaves_its_accounts_unjudged() {
        let mut history = healthy();
        history[2].outcome = transfer("t1", TransferStatus::Pending);
        let fin = state(&[(acct(1, "a"), 70), (acct(2, "b"), 130)], [100, 100], &[(1, "t1", true), (2, "t1", true)]);
        assert!(check(&history, &fin).anomalies.is_empty(), "committed by the banks: judged as moved");
        history[2].outcome = Outcome::Unknown { reason: "timeout".into() };
        let checked = check(&history, &fin);
        assert!(checked.anomalies.is_empty(), "{:?}", checked.anomalies);
        assert_eq!(checked.unresolved, vec![2]);
        assert_eq!(checked.unjudged, vec![acct(1, "a"), acct(2, "b")]);
    }

    #[test]
    fn a_lost_key_and_a_lookup_naming_another_bank_are_reported() {
        let register = |i, account: AccountKey, key: &str| {
            op(i, OpKind::RegisterKey { account }, (0, 1), Outcome::Key { key: key.into() })
        };
        let lookup = OpKind::LookupKey { at: 2, key: "k1".into(), owner: acct(1, "a") };
        let history = vec![
            register(0, acct(1, "a"), "k1"),
            register(1, acct(1, "a"), "k2"),
            op(2, lookup.clone(), (5, 6), Outcome::KeyOwner { bank: 1 }),
            op(3, lookup, (5, 6), Outcome::KeyOwner { bank: 2 }),
        ];
        let mut fin = state(&[], [0, 0], &[]);
        fin.banks.get_mut(&1).expect("bank").keys.insert("k1".into(), acct(1, "a"));
        fin.banks.get_mut(&2).expect("bank").keys.insert("k1".into(), acct(1, "a"));
        let checked = check(&history, &fin);
        let lost: Vec<&Anomaly> = checked.anomalies.iter().filter(|a| a.kind == AnomalyKind::KeyLost).collect();
        assert_eq!(lost.len(), 1, "k2 is missing: {:?}", checked.anomalies);
        assert_eq!(lost[0].ops, vec![1]);
        let wrong: Vec<&Anomaly> = checked.anomalies.iter().filter(|a| a.kind == AnomalyKind::KeyWrongOwner).collect();
        assert_eq!(wrong.len(), 1, "{:?}", checked.anomalies);
        assert_eq!(wrong[0].ops, vec![3]);
    }

    fn visit(epoch: u64, hop: u64) -> crate::torture::history::Visit {
        crate::torture::history::Visit { epoch, hop, start_ms: epoch * 1000 + hop, end_ms: epoch * 1000 + hop + 1 }
    }

    #[test]
    fn a_token_passed_round_the_ring_and_regenerated_has_no_anomaly() {
        let mut fin = FinalState::default();
        fin.visits.insert(1, vec![visit(1, 0), visit(1, 2), visit(2, 1)]);
        fin.visits.insert(2, vec![visit(1, 1), visit(2, 0), visit(2, 2)]);
        assert!(check(&[], &fin).anomalies.is_empty());
    }

    #[test]
    fn two_holders_in_one_epoch_are_reported() {
        // Banks 1 and 2 both began work at epoch 3, hop 0: two tokens of one epoch.
        let mut fin = FinalState::default();
        fin.visits.insert(1, vec![visit(2, 4), visit(3, 0)]);
        fin.visits.insert(2, vec![visit(2, 5), visit(3, 0)]);
        let checked = check(&[], &fin);
        assert_eq!(kinds(&checked), BTreeSet::from([AnomalyKind::TwoHolders]), "{:?}", checked.anomalies);
        assert!(checked.anomalies[0].detail.contains("(3, 0)"), "{:?}", checked.anomalies);
    }

    #[test]
    fn a_bank_whose_epochs_go_back_is_reported() {
        // Bank 1 held epoch 4, then (restarted) resumed a token of epoch 3.
        let mut fin = FinalState::default();
        fin.visits.insert(1, vec![visit(3, 0), visit(4, 0), visit(3, 2)]);
        assert_eq!(kinds(&check(&[], &fin)), BTreeSet::from([AnomalyKind::EpochWentBack]));
        fin.visits.insert(1, vec![visit(4, 0), visit(4, 0)]);
        assert_eq!(kinds(&check(&[], &fin)), BTreeSet::from([AnomalyKind::EpochWentBack]), "a position repeated");
    }

    #[test]
    fn audit_problems_are_anomalies() {
        let fin = FinalState { audit_problems: vec!["invariant 1 violated".into()], ..FinalState::default() };
        assert_eq!(kinds(&check(&[], &fin)), BTreeSet::from([AnomalyKind::Audit]));
    }
}
