//! `bank audit`: reads every bank of a consortium through its operator-signed audit route
//! (`GET /interbank/v1/audit`, see [`bank_node::interbank::audit`]) and checks the invariants of
//! DESIGN.md §8 that live data can show:
//!
//! 1. **conservation** — Σ posted over all banks = Σ deposits − Σ withdrawals, once nothing is in
//!    flight;
//! 2. **no negative available money** — every account has `held ≥ 0` and `posted − held ≥ 0`;
//! 3. **all-or-nothing** — every bank that decided a transaction decided it the same way, and no
//!    bank both holds and has decided one;
//! 5. **decided the same way everywhere** — a coordinator's decision agrees with every
//!    participant's, and no participant still holds a transaction its coordinator has finished;
//! 7. **one account per Pix key** — every key names one (bank, account), that account exists, and
//!    every bank's directory agrees (with the consortium-wide directory column; without it, no
//!    key is owned by accounts of two banks), and no account has more than
//!    [`KEYS_PER_ACCOUNT_MAX`] keys. A key missing from some directory is named and
//!    waited for, but is "cannot tell", not a violation: a registration reaches the banks one by
//!    one, and nothing read says whether one is still on its way.
//! 8. **no Pix refunded beyond its amount** (issue 12) — at the receiver's bank, every leg's
//!    completed refunds plus refunds in flight fit its amount, and the refunds posted anywhere
//!    (each counted once, however many banks keep it) add up to no more than the leg's amount.
//!
//! # Reading a live consortium
//!
//! Banks are read concurrently, each answer from one read transaction of that bank. The checks
//! are pure ([`check`] over [`BankSnapshot`]s) and the reading around them makes their verdict
//! sound against a consortium that keeps working:
//!
//! - **In-flight work** (holds, coordinator records not finished) makes conservation unknowable
//!   (a leg may be posted at one bank and not yet at another): the audit re-reads every bank until
//!   nothing is in flight or `--wait-s` has passed, then names what is still in flight.
//! - **A consistent cut.** Banks are read one after the other in time, and a cross-bank transfer
//!   could complete between two reads. So once a round shows nothing in flight, every bank's
//!   totals are read again: when no bank's cross-bank net (Σ posted − Σ deposits + Σ withdrawals),
//!   decision count or hold count changed, and no bank holds anything at either read, there was an
//!   instant between the rounds when every bank was in the state read — conservation is judged
//!   on that. (A hold placed and released between the reads would have added a decision.)
//!   Deposits, withdrawals and in-bank transfers do not change the net, so in-bank traffic does
//!   not stop the audit from concluding.
//! - **Read order.** A hold at bank P for a transaction its coordinator C has finished is a
//!   violation only if P was read after C (else P may have released it since); when the reads
//!   overlapped, P is read again. Likewise a key naming an account its bank lacks (the account
//!   may have been opened since that bank was read), and a bank's hold of a transaction it has
//!   decided (exact only when its holds and decisions came from one read, not from pages read
//!   at different times).
//!
//! Exit status: 0 when every invariant holds; [`EXIT_VIOLATED`] when one is violated;
//! [`EXIT_CANNOT_TELL`] when none is violated but some cannot be judged (a bank unreachable, work
//! still in flight). `--json` prints the same verdict as one JSON object.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bank_core::ids::BankId;
use bank_core::ledger::KEYS_PER_ACCOUNT_MAX;
use bank_core::money::format_brl;
use bank_node::consortium::{ConsortiumConfig, Member, SigningKey, read_signing_key};
use bank_node::interbank::audit::{
    AuditAccount, AuditCoordinatorRecord, AuditHold, AuditList, AuditPixKey, AuditPixLeg, AuditQuery, AuditSnapshot,
    AuditTotals,
};
use bank_node::interbank::sign::{OPERATOR, fresh_nonce, sign, unix_now_ms};
use serde::Serialize;

use crate::args::AuditArgs;

/// Exit status when an invariant is violated (as `bank bench` when money is not conserved).
pub const EXIT_VIOLATED: u8 = 3;
/// Exit status when no invariant is violated but some cannot be judged.
pub const EXIT_CANNOT_TELL: u8 = 4;
/// Largest answer read from one bank, in bytes (a page of 100,000 rows is a few MiB).
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Most problems listed per invariant (the total is still counted).
pub const PROBLEMS_SHOWN_MAX: usize = 20;
/// Longest wait for one answer: a bank answers 503 after its own request timeout (10 s by
/// default), and a page of 100,000 rows takes well under a second to read.
const REQUEST_TIMEOUT_S: u64 = 11;
/// Pause between two rounds of reads while waiting for in-flight work.
const POLL_MS: u64 = 300;

// ---- What the checks read: plain data, one per bank ----

/// One bank as the audit read it: its data, or why it could not be read.
#[derive(Debug, Clone)]
pub struct BankSnapshot {
    pub id: BankId,
    pub name: String,
    pub url: String,
    pub read: std::result::Result<BankData, String>,
}

/// Everything read from one bank.
#[derive(Debug, Clone, Default)]
pub struct BankData {
    /// When the read started and ended, in ms of the audit's own clock (for read order).
    pub started_ms: u64,
    pub finished_ms: u64,
    /// Totals, from the same read transaction as the holds and coordinator records (the first
    /// page).
    pub totals: AuditTotals,
    /// The totals read again after every bank's read (see the module documentation); `None` until
    /// then.
    pub reread: Option<AuditTotals>,
    pub accounts: Vec<AuditAccount>,
    pub holds: Vec<HoldView>,
    /// Transfer id → this bank's decision.
    pub decisions: BTreeMap<String, Outcome>,
    /// `None` when this bank has no coordinator records table.
    pub coordinator_records: Option<Vec<CoordinatorView>>,
    pub pix_keys: Vec<AuditPixKey>,
    /// Posted Pix legs kept by this bank (empty for a bank from before refunds).
    pub pix_legs: Vec<AuditPixLeg>,
    /// The Pix keys are the consortium-wide directory (a `bank_id` column), not only this bank's.
    pub directory: bool,
    /// Everything came from one answer, hence one read transaction (no list needed a second
    /// page): comparisons between this bank's lists are then exact.
    pub one_read: bool,
}

/// A decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Committed,
    Aborted,
}

impl Outcome {
    pub fn parse(text: &str) -> Option<Outcome> {
        match text.trim().to_ascii_lowercase().as_str() {
            "committed" | "commit" => Some(Outcome::Committed),
            "aborted" | "abort" => Some(Outcome::Aborted),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Committed => "committed",
            Outcome::Aborted => "aborted",
        }
    }
}

/// A hold as the audit needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldView {
    pub transfer_id: String,
    /// The coordinating bank, when the stored hold names it.
    pub coordinator: Option<BankId>,
}

impl HoldView {
    /// Reads the stored hold leniently (`coordinator` may be absent in older rows).
    pub fn from_wire(hold: &AuditHold) -> HoldView {
        let coordinator =
            hold.body.get("coordinator").and_then(serde_json::Value::as_u64).and_then(|id| u32::try_from(id).ok());
        HoldView { transfer_id: hold.transfer_id.clone(), coordinator: coordinator.map(BankId) }
    }
}

/// Where a transaction stands at its coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Preparing,
    Decided(Outcome),
    Finished(Outcome),
    /// A state this audit does not know (shown, and treated as not finished).
    Unknown(String),
}

impl Phase {
    pub fn describe(&self) -> String {
        match self {
            Phase::Preparing => "preparing".into(),
            Phase::Decided(d) => format!("decided {}, delivering", d.as_str()),
            Phase::Finished(d) => format!("finished ({})", d.as_str()),
            Phase::Unknown(state) => format!("in state {state:?}"),
        }
    }
}

/// A coordinator record as the audit needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorView {
    pub tx: String,
    pub phase: Phase,
}

impl CoordinatorView {
    /// Reads a stored record leniently: the state from the `state` column or the body's tag
    /// (`{"finished": {"decision": …}}`), the decision from the body.
    pub fn from_wire(record: &AuditCoordinatorRecord) -> CoordinatorView {
        const TAGS: [&str; 3] = ["preparing", "decided", "finished"];
        let tagged = record.body.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next());
        let (tag, inner) = match tagged {
            Some((tag, inner)) if TAGS.contains(&tag.to_ascii_lowercase().as_str()) => {
                (Some(tag.to_ascii_lowercase()), inner)
            }
            _ => (None, &record.body),
        };
        let state = record.state.as_deref().map(|s| s.trim().to_ascii_lowercase()).or(tag).unwrap_or_default();
        let decision = inner.get("decision").and_then(serde_json::Value::as_str).and_then(Outcome::parse);
        let phase = match (state.as_str(), decision) {
            ("preparing", _) => Phase::Preparing,
            ("decided", Some(d)) => Phase::Decided(d),
            ("finished", Some(d)) => Phase::Finished(d),
            _ => Phase::Unknown(state),
        };
        CoordinatorView { tx: record.tx.clone(), phase }
    }
}

impl BankData {
    /// Gathers the pages of one bank (the first answer, with totals, then the further pages).
    pub fn from_pages(pages: &[AuditSnapshot], started_ms: u64, finished_ms: u64) -> BankData {
        let mut data = BankData { started_ms, finished_ms, one_read: pages.len() == 1, ..BankData::default() };
        let mut has_coordinator_table = false;
        for page in pages {
            if let Some(totals) = &page.totals {
                data.totals = totals.clone();
            }
            data.directory |= page.schema.directory();
            has_coordinator_table |= page.schema.coordinator_records;
            if let Some(p) = &page.accounts {
                data.accounts.extend(p.items.iter().cloned());
            }
            if let Some(p) = &page.holds {
                data.holds.extend(p.items.iter().map(HoldView::from_wire));
            }
            if let Some(p) = &page.decisions {
                for d in &p.items {
                    // The schema allows only these two; anything else is shown as a violation
                    // of nothing, but is not taken for a decision.
                    if let Some(outcome) = Outcome::parse(&d.decision) {
                        data.decisions.insert(d.transfer_id.clone(), outcome);
                    }
                }
            }
            if let Some(p) = &page.coordinator_records {
                data.coordinator_records
                    .get_or_insert_with(Vec::new)
                    .extend(p.items.iter().map(CoordinatorView::from_wire));
            }
            if let Some(p) = &page.pix_keys {
                data.pix_keys.extend(p.items.iter().cloned());
            }
            if let Some(p) = &page.pix_legs {
                data.pix_legs.extend(p.items.iter().cloned());
            }
        }
        if !has_coordinator_table {
            data.coordinator_records = None;
        } else if data.coordinator_records.is_none() {
            data.coordinator_records = Some(Vec::new());
        }
        data
    }
}

// ---- The verdict ----

/// The verdict on one invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Holds,
    Violated,
    CannotTell,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Holds => "holds",
            Status::Violated => "VIOLATED",
            Status::CannotTell => "cannot tell",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct InvariantVerdict {
    /// The invariant's number in DESIGN.md §8.
    pub number: u8,
    pub title: &'static str,
    pub status: Status,
    /// One line: what was found (over the banks that could be read).
    pub summary: String,
    /// Why it cannot tell, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cannot_tell: Option<String>,
    /// The first [`PROBLEMS_SHOWN_MAX`] violations.
    pub problems: Vec<String>,
    pub problems_total: usize,
}

/// Why something is not settled yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InFlightKind {
    /// A transaction held somewhere or not finished by its coordinator.
    Transfer,
    /// A bank's cross-bank state changed between two reads.
    Activity,
    /// A Pix key missing from some banks (a registration in progress, or a directory behind).
    Key,
}

/// Work in flight: what, where, and how it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InFlight {
    pub kind: InFlightKind,
    /// The transfer id, key or bank concerned.
    pub subject: String,
    pub banks: BTreeSet<BankId>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreachable {
    pub bank_id: BankId,
    pub name: String,
    pub url: String,
    pub reason: String,
}

/// What [`check`] concludes.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub invariants: Vec<InvariantVerdict>,
    pub unreachable: Vec<Unreachable>,
    pub in_flight: Vec<InFlight>,
    /// Banks to read again: they hold transactions their coordinators had finished when read,
    /// but were not read after them (see the module documentation).
    #[serde(skip)]
    pub recheck: BTreeSet<BankId>,
}

impl Verdict {
    pub fn violated(&self) -> bool {
        self.invariants.iter().any(|i| i.status == Status::Violated)
    }

    pub fn all_hold(&self) -> bool {
        self.invariants.iter().all(|i| i.status == Status::Holds)
    }

    /// Transfers still in flight (not key registrations).
    pub fn transfers_in_flight(&self) -> bool {
        self.in_flight.iter().any(|f| f.kind != InFlightKind::Key)
    }

    /// Whether reading again later may change the verdict.
    pub fn worth_waiting(&self) -> bool {
        !self.unreachable.is_empty() || !self.in_flight.is_empty() || !self.recheck.is_empty()
    }

    /// One word for the whole verdict.
    pub fn overall(&self) -> &'static str {
        if self.violated() {
            "violated"
        } else if self.all_hold() {
            "all invariants hold"
        } else {
            "cannot tell"
        }
    }

    pub fn exit_code(&self) -> u8 {
        if self.violated() {
            EXIT_VIOLATED
        } else if self.all_hold() {
            0
        } else {
            EXIT_CANNOT_TELL
        }
    }
}

/// Collects the problems of one invariant, keeping the first few.
#[derive(Debug, Default)]
struct Problems {
    shown: Vec<String>,
    total: usize,
}

impl Problems {
    fn push(&mut self, problem: String) {
        self.total += 1;
        if self.shown.len() < PROBLEMS_SHOWN_MAX {
            self.shown.push(problem);
        }
    }
}

/// `1 account`, `2 accounts`.
fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

fn banks_list(ids: impl IntoIterator<Item = BankId>) -> String {
    ids.into_iter().map(|id| id.to_string()).collect::<Vec<_>>().join(", ")
}

/// Adds `note` about `subject` to the in-flight list, merging notes of the same subject.
fn note(in_flight: &mut Vec<InFlight>, kind: InFlightKind, subject: &str, banks: &[BankId], note: String) {
    if let Some(existing) = in_flight.iter_mut().find(|f| f.kind == kind && f.subject == subject) {
        existing.banks.extend(banks.iter().copied());
        if !existing.notes.contains(&note) {
            existing.notes.push(note);
        }
        return;
    }
    in_flight.push(InFlight {
        kind,
        subject: subject.to_string(),
        banks: banks.iter().copied().collect(),
        notes: vec![note],
    });
}

/// The cross-bank part of a bank's totals: what only a cross-bank transaction changes.
fn cut_fingerprint(t: &AuditTotals) -> (i128, u64, u64) {
    let net = i128::from(t.posted_cents) - i128::from(t.deposits_cents) + i128::from(t.withdrawals_cents);
    (net, t.decisions.values().sum(), t.holds)
}

/// Checks invariants 1, 2, 3, 5 and 7 over what was read of every bank. Pure.
pub fn check(snapshots: &[BankSnapshot]) -> Verdict {
    let reachable: Vec<(BankId, &BankData)> =
        snapshots.iter().filter_map(|s| s.read.as_ref().ok().map(|d| (s.id, d))).collect();
    let by_id: BTreeMap<BankId, &BankData> = reachable.iter().copied().collect();
    let unreachable: Vec<Unreachable> = snapshots
        .iter()
        .filter_map(|s| {
            s.read.as_ref().err().map(|reason| Unreachable {
                bank_id: s.id,
                name: s.name.clone(),
                url: s.url.clone(),
                reason: reason.clone(),
            })
        })
        .collect();
    let unreachable_note = (!unreachable.is_empty())
        .then(|| format!("bank {} not read", banks_list(unreachable.iter().map(|u| u.bank_id))));
    let mut in_flight = Vec::new();
    let mut recheck = BTreeSet::new();

    // ---- Transactions: decisions, holds, coordinator records ----
    let mut decisions: BTreeMap<&str, BTreeMap<BankId, Outcome>> = BTreeMap::new();
    for (id, data) in &reachable {
        for (tx, outcome) in &data.decisions {
            decisions.entry(tx.as_str()).or_default().insert(*id, *outcome);
        }
    }
    let mut records: BTreeMap<&str, Vec<(BankId, &Phase)>> = BTreeMap::new();
    for (id, data) in &reachable {
        for record in data.coordinator_records.iter().flatten() {
            records.entry(record.tx.as_str()).or_default().push((*id, &record.phase));
        }
    }
    let mut inv3 = Problems::default();
    let mut inv5 = Problems::default();

    for (tx, by_bank) in &decisions {
        let committed: Vec<BankId> =
            by_bank.iter().filter(|(_, o)| **o == Outcome::Committed).map(|(b, _)| *b).collect();
        let aborted: Vec<BankId> = by_bank.iter().filter(|(_, o)| **o == Outcome::Aborted).map(|(b, _)| *b).collect();
        if !committed.is_empty() && !aborted.is_empty() {
            inv3.push(format!(
                "transaction {tx}: committed at bank {} but aborted at bank {}",
                banks_list(committed),
                banks_list(aborted)
            ));
        }
    }
    for (tx, coordinators) in &records {
        if coordinators.len() > 1 {
            inv5.push(format!(
                "transaction {tx} has coordinator records at several banks ({})",
                banks_list(coordinators.iter().map(|(b, _)| *b))
            ));
        }
        for (coordinator, phase) in coordinators {
            let decided = match phase {
                Phase::Decided(d) | Phase::Finished(d) => Some(*d),
                Phase::Preparing | Phase::Unknown(_) => None,
            };
            if let Some(decided) = decided {
                for (participant, outcome) in decisions.get(tx).into_iter().flatten() {
                    if *outcome != decided {
                        inv5.push(format!(
                            "transaction {tx}: its coordinator bank {coordinator} decided {}, bank {participant} {}",
                            decided.as_str(),
                            outcome.as_str()
                        ));
                    }
                }
            }
            if !matches!(phase, Phase::Finished(_)) {
                note(
                    &mut in_flight,
                    InFlightKind::Transfer,
                    tx,
                    &[*coordinator],
                    format!("coordinator bank {coordinator}: {}", phase.describe()),
                );
            }
        }
    }
    for (holder, data) in &reachable {
        for hold in &data.holds {
            let tx = hold.transfer_id.as_str();
            if let Some(outcome) = data.decisions.get(tx) {
                // Exact only within one read: a decision page read after the hold's page may
                // show a decision taken since.
                if data.one_read {
                    inv3.push(format!(
                        "transaction {tx}: bank {holder} still holds funds for it although it has {} it",
                        outcome.as_str()
                    ));
                } else {
                    let detail =
                        format!("held at bank {holder}, which has {} it since (read in pages)", outcome.as_str());
                    note(&mut in_flight, InFlightKind::Transfer, tx, &[*holder], detail);
                }
            }
            // The coordinator: named by the hold, else whoever has a record of it.
            let coordinator = hold.coordinator.or_else(|| records.get(tx).and_then(|r| r.first()).map(|(b, _)| *b));
            let phase = coordinator.and_then(|c| {
                records.get(tx).and_then(|r| r.iter().find(|(b, _)| *b == c)).map(|(_, phase)| (*phase).clone())
            });
            let status = match (coordinator, &phase) {
                (Some(c), Some(phase)) => format!("coordinator bank {c}: {}", phase.describe()),
                (Some(c), None) if !by_id.contains_key(&c) => format!("coordinator bank {c} not read"),
                (Some(c), None) if by_id[&c].coordinator_records.is_none() => {
                    format!("coordinator bank {c} keeps no coordinator records")
                }
                (Some(c), None) => format!("coordinator bank {c} has no record of it (in doubt)"),
                (None, _) => "coordinator unknown".into(),
            };
            if let (Some(c), Some(Phase::Finished(d))) = (coordinator, &phase) {
                let coordinator_data = by_id[&c];
                // Decisive only if the holder was read after the coordinator (or in the same read).
                if c == *holder || data.started_ms >= coordinator_data.finished_ms {
                    inv5.push(format!(
                        "transaction {tx}: bank {holder} still holds funds for it, but its coordinator bank {c} has \
                         finished it ({})",
                        d.as_str()
                    ));
                    continue;
                }
                recheck.insert(*holder);
            }
            note(&mut in_flight, InFlightKind::Transfer, tx, &[*holder], format!("held at bank {holder} ({status})"));
        }
    }
    let transactions = records.len();
    let transfers_in_flight = in_flight.iter().filter(|f| f.kind == InFlightKind::Transfer).count();

    // ---- Invariant 1: conservation, on a consistent cut ----
    let inv1 = {
        let posted: i128 = reachable.iter().map(|(_, d)| i128::from(d.totals.posted_cents)).sum();
        let deposits: i128 = reachable.iter().map(|(_, d)| i128::from(d.totals.deposits_cents)).sum();
        let withdrawals: i128 = reachable.iter().map(|(_, d)| i128::from(d.totals.withdrawals_cents)).sum();
        let mut problems = Problems::default();
        let changed: Vec<BankId> = reachable
            .iter()
            .filter(|(_, d)| d.reread.as_ref().is_some_and(|r| cut_fingerprint(r) != cut_fingerprint(&d.totals)))
            .map(|(id, _)| *id)
            .collect();
        let unconfirmed = reachable.iter().any(|(_, d)| d.reread.is_none());
        for id in &changed {
            note(
                &mut in_flight,
                InFlightKind::Activity,
                &format!("bank {id}"),
                &[*id],
                "its cross-bank balance, decisions or holds changed between two reads".into(),
            );
        }
        let brl = |cents: i128| format_brl(i64::try_from(cents).unwrap_or(i64::MAX));
        let sums =
            format!("Σ posted {} vs Σ deposits {} − Σ withdrawals {}", brl(posted), brl(deposits), brl(withdrawals));
        let cannot_tell = if let Some(why) = &unreachable_note {
            Some(why.clone())
        } else if transfers_in_flight > 0 {
            Some(format!("{} in flight", plural(transfers_in_flight, "transaction")))
        } else if !changed.is_empty() {
            Some(format!("bank {} kept changing (cross-bank work)", banks_list(changed)))
        } else if unconfirmed {
            Some("the totals were not confirmed by a second read".into())
        } else {
            None
        };
        let status = if cannot_tell.is_some() {
            Status::CannotTell
        } else if posted == deposits - withdrawals {
            Status::Holds
        } else {
            problems.push(format!("{sums}: a difference of {}", brl(posted - (deposits - withdrawals))));
            Status::Violated
        };
        let summary = match status {
            Status::Holds => {
                format!("Σ posted {} = Σ deposits {} − Σ withdrawals {}", brl(posted), brl(deposits), brl(withdrawals))
            }
            _ => sums,
        };
        InvariantVerdict {
            number: 1,
            title: "money is conserved",
            status,
            summary,
            cannot_tell,
            problems: problems.shown,
            problems_total: problems.total,
        }
    };

    // ---- Invariant 2: no negative available money ----
    let inv2 = {
        let mut problems = Problems::default();
        let mut accounts = 0usize;
        for (id, data) in &reachable {
            for a in &data.accounts {
                accounts += 1;
                if a.held_cents < 0 {
                    problems.push(format!(
                        "bank {id} account {}: held {} is negative",
                        a.number,
                        format_brl(a.held_cents)
                    ));
                } else if i128::from(a.posted_cents) - i128::from(a.held_cents) < 0 {
                    problems.push(format!(
                        "bank {id} account {}: available {} (posted {}, held {})",
                        a.number,
                        format_brl(a.posted_cents.saturating_sub(a.held_cents)),
                        format_brl(a.posted_cents),
                        format_brl(a.held_cents)
                    ));
                }
            }
            if data.accounts.len() as u64 != data.totals.accounts {
                // Pages read at different times: accounts opened meanwhile. Not a violation.
                tracing::debug!(bank = %id, listed = data.accounts.len(), counted = data.totals.accounts, "account count moved");
            }
        }
        let violations = problems.total;
        finish(2, "no account has negative available money", problems, &unreachable_note, None, || {
            if violations == 0 {
                format!("{}, none below zero", plural(accounts, "account"))
            } else {
                format!("{violations} of {} below zero", plural(accounts, "account"))
            }
        })
    };

    // ---- Invariants 3 and 5 ----
    let pending =
        (transfers_in_flight > 0).then(|| format!("{} in flight", plural(transfers_in_flight, "transaction")));
    let inv3_total = inv3.total;
    let inv3 = finish(3, "every transaction is all-or-nothing", inv3, &unreachable_note, pending.clone(), || {
        if inv3_total == 0 {
            format!("{} decided; every bank that decided one agrees", plural(decisions.len(), "transaction"))
        } else {
            format!("{inv3_total} transactions decided differently or half applied")
        }
    });
    let inv5_total = inv5.total;
    let inv5 =
        finish(5, "every transaction is decided the same way everywhere", inv5, &unreachable_note, pending, || {
            if inv5_total == 0 {
                format!("{} coordinated; coordinators and participants agree", plural(transactions, "transaction"))
            } else {
                format!("{inv5_total} disagreements between coordinators and participants")
            }
        });

    // ---- Invariant 7: Pix keys ----
    let inv7 = {
        let mut problems = Problems::default();
        // key → claims (reporting bank, owner bank, account)
        let mut claims: BTreeMap<&str, Vec<(BankId, BankId, &str)>> = BTreeMap::new();
        for (id, data) in &reachable {
            for k in &data.pix_keys {
                claims.entry(k.key.as_str()).or_default().push((*id, k.bank_id, k.account.as_str()));
            }
        }
        let accounts: BTreeMap<BankId, BTreeSet<&str>> =
            reachable.iter().map(|(id, d)| (*id, d.accounts.iter().map(|a| a.number.as_str()).collect())).collect();
        let directories: Vec<BankId> = reachable.iter().filter(|(_, d)| d.directory).map(|(id, _)| *id).collect();
        let mut gaps = 0usize;
        // Keys per (owner bank, account); each key is counted once, wherever it was listed.
        let mut per_account: BTreeMap<(BankId, &str), usize> = BTreeMap::new();
        for (key, list) in &claims {
            let owners: BTreeSet<(BankId, &str)> = list.iter().map(|(_, owner, account)| (*owner, *account)).collect();
            if owners.len() > 1 {
                let said: Vec<String> = list
                    .iter()
                    .map(|(reporter, owner, account)| format!("bank {reporter} says bank {owner} account {account}"))
                    .collect();
                problems.push(format!("key {key} names more than one account: {}", said.join("; ")));
                continue;
            }
            let Some(&(owner, account)) = owners.iter().next() else { continue };
            *per_account.entry((owner, account)).or_default() += 1;
            if let Some(owned) = accounts.get(&owner)
                && !owned.contains(account)
            {
                // Accounts are never deleted, so the account is missing for good only if the owner's
                // accounts were read after some bank listed the key.
                let owner_data = by_id[&owner];
                let decisive = list.iter().any(|(reporter, _, _)| {
                    if *reporter == owner {
                        owner_data.one_read
                    } else {
                        by_id[reporter].finished_ms <= owner_data.started_ms
                    }
                });
                if decisive {
                    problems
                        .push(format!("key {key} names account {account} of bank {owner}, which has no such account"));
                } else {
                    if list.iter().any(|(reporter, _, _)| *reporter != owner) {
                        recheck.insert(owner);
                    }
                    let detail = format!("names account {account} of bank {owner}, not among the accounts read there");
                    note(&mut in_flight, InFlightKind::Key, key, &[owner], detail);
                }
            }
            // Who must list it: every directory, and its owner.
            let listed: BTreeSet<BankId> = list.iter().map(|(reporter, _, _)| *reporter).collect();
            let mut missing: Vec<BankId> = directories.iter().copied().filter(|d| !listed.contains(d)).collect();
            if by_id.contains_key(&owner) && !listed.contains(&owner) && !missing.contains(&owner) {
                missing.push(owner);
            }
            if !missing.is_empty() {
                // Not a violation by itself: a registration reaches the banks one by one, and a
                // bank that was down catches up later. Named, and waited for.
                missing.sort();
                gaps += 1;
                let detail = format!(
                    "registered for bank {owner} account {account}, missing from the directory of bank {}",
                    banks_list(missing.iter().copied())
                );
                note(&mut in_flight, InFlightKind::Key, key, &missing, detail);
            }
        }
        // Keys are never removed, so a count past the limit is one for good, whenever it was read.
        for ((owner, account), n) in per_account {
            if n > KEYS_PER_ACCOUNT_MAX {
                problems.push(format!(
                    "account {account} of bank {owner} has {n} Pix keys, more than the limit of {KEYS_PER_ACCOUNT_MAX}"
                ));
            }
        }
        let pending = (gaps > 0).then(|| format!("directories disagree on {}", plural(gaps, "key")));
        let keys = claims.len();
        let total = problems.total;
        let mode = if directories.is_empty() {
            "each bank's own keys".to_string()
        } else if directories.len() == reachable.len() {
            "every bank's directory".to_string()
        } else {
            format!("directories of bank {}", banks_list(directories.iter().copied()))
        };
        finish(7, "a Pix key names one account; directories agree", problems, &unreachable_note, pending, || {
            if total == 0 {
                format!("{}, one account each ({mode})", plural(keys, "key"))
            } else {
                format!("{} over {} ({mode})", plural(total, "problem"), plural(keys, "key"))
            }
        })
    };

    let inv8 = check_refunds(&reachable, &unreachable_note);
    Verdict { invariants: vec![inv1, inv2, inv3, inv5, inv7, inv8], unreachable, in_flight, recheck }
}

/// Invariant 8 (issue 12): no Pix leg is refunded beyond its amount. At its receiver's bank,
/// refunded + reserved ≤ amount; and the refunds posted anywhere, each counted once (both ends
/// keep a posted leg), add up to no more than the amount of the leg they refund.
fn check_refunds(reachable: &[(BankId, &BankData)], unreachable_note: &Option<String>) -> InvariantVerdict {
    let mut problems = Problems::default();
    // (transfer, leg) → amount, from any bank that keeps the leg.
    let mut amounts: BTreeMap<(&str, u16), i64> = BTreeMap::new();
    // refund (transfer, leg) → (refunded transfer, leg, amount), each refund once.
    let mut refunds: BTreeMap<(&str, u16), (&str, u16, i64)> = BTreeMap::new();
    let mut legs = 0usize;
    for (id, data) in reachable {
        for leg in &data.pix_legs {
            match (&leg.refund_of, leg.refund_of_leg) {
                (Some(of), Some(of_leg)) => {
                    refunds.insert((leg.transfer_id.as_str(), leg.leg), (of.as_str(), of_leg, leg.amount_cents));
                }
                _ => {
                    amounts.insert((leg.transfer_id.as_str(), leg.leg), leg.amount_cents);
                    if leg.to_bank == *id {
                        legs += 1;
                        if leg.refunded_cents + leg.reserved_cents > leg.amount_cents {
                            problems.push(format!(
                                "Pix {} leg {} at bank {id}: {} refunded and {} being refunded of {}",
                                leg.transfer_id,
                                leg.leg,
                                format_brl(leg.refunded_cents),
                                format_brl(leg.reserved_cents),
                                format_brl(leg.amount_cents)
                            ));
                        }
                    }
                }
            }
        }
    }
    let mut refunded: BTreeMap<(&str, u16), i64> = BTreeMap::new();
    for (of, of_leg, cents) in refunds.values() {
        *refunded.entry((*of, *of_leg)).or_default() += cents;
    }
    for ((of, of_leg), sum) in &refunded {
        if let Some(&amount) = amounts.get(&(*of, *of_leg))
            && *sum > amount
        {
            problems.push(format!(
                "Pix {of} leg {of_leg}: refunds posted add up to {} of {}",
                format_brl(*sum),
                format_brl(amount)
            ));
        }
    }
    let total = problems.total;
    let count = refunds.len();
    finish(8, "no Pix is refunded beyond its amount", problems, unreachable_note, None, || {
        if total == 0 {
            format!("{} received, {} posted; none beyond its Pix", plural(legs, "Pix leg"), plural(count, "refund"))
        } else {
            format!("{} refunded beyond their amount", plural(total, "Pix leg"))
        }
    })
}

/// The verdict of an invariant from its problems: violated if any, else cannot tell when a bank
/// was not read or `pending` says why, else holds.
fn finish(
    number: u8,
    title: &'static str,
    problems: Problems,
    unreachable: &Option<String>,
    pending: Option<String>,
    summary: impl FnOnce() -> String,
) -> InvariantVerdict {
    let summary = summary();
    let cannot_tell = unreachable.clone().or(pending);
    let status = if problems.total > 0 {
        Status::Violated
    } else if cannot_tell.is_some() {
        Status::CannotTell
    } else {
        Status::Holds
    };
    InvariantVerdict {
        number,
        title,
        status,
        summary,
        cannot_tell,
        problems: problems.shown,
        problems_total: problems.total,
    }
}

// ---- Reading the banks ----

/// Signs and sends the operator's audit reads.
#[derive(Debug, Clone)]
pub struct OperatorClient {
    http: reqwest::Client,
    key: Arc<SigningKey>,
}

impl OperatorClient {
    pub fn new(key: SigningKey) -> Result<OperatorClient> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(REQUEST_TIMEOUT_S))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(OperatorClient { http, key: Arc::new(key) })
    }

    /// One signed `GET` of the audit route of `member`.
    pub async fn get(&self, member: &Member, query: &AuditQuery) -> std::result::Result<AuditSnapshot, String> {
        let path = query.path_and_query();
        let nonce = fresh_nonce().map_err(|e| format!("no randomness for a nonce: {e}"))?;
        let signed = sign(&self.key, OPERATOR, member.id, "GET", &path, b"", unix_now_ms(), nonce);
        let mut request = self.http.get(format!("{}{path}", member.url));
        for (name, value) in signed.pairs() {
            request = request.header(name, value);
        }
        let mut response = request.send().await.map_err(|e| describe(&e))?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
            if bytes.len() + chunk.len() > RESPONSE_BYTES_MAX {
                return Err(format!("answer larger than {RESPONSE_BYTES_MAX} bytes"));
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let problem: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let detail = problem
                .get("detail")
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect(), str::to_owned);
            return Err(format!("refused the audit read: {status}: {detail}"));
        }
        let snapshot: AuditSnapshot =
            serde_json::from_slice(&bytes).map_err(|e| format!("answered something that is not an audit: {e}"))?;
        if snapshot.bank_id != member.id {
            return Err(format!("the bank at {} says it is bank {}", member.url, snapshot.bank_id));
        }
        Ok(snapshot)
    }

    /// Throws the fault switch of `member` (`POST /interbank/v1/fault`).
    pub async fn fault(&self, member: &Member, cut_off: bool) -> std::result::Result<(), String> {
        let path = bank_node::interbank::fault::FAULT_PATH;
        let body = serde_json::to_vec(&bank_node::interbank::fault::FaultRequest { cut_off })
            .map_err(|e| format!("cannot encode the request: {e}"))?;
        let nonce = fresh_nonce().map_err(|e| format!("no randomness for a nonce: {e}"))?;
        let signed = sign(&self.key, OPERATOR, member.id, "POST", path, &body, unix_now_ms(), nonce);
        let mut request = self.http.post(format!("{}{path}", member.url));
        for (name, value) in signed.pairs() {
            request = request.header(name, value);
        }
        let response =
            request.header("content-type", "application/json").body(body).send().await.map_err(|e| describe(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let problem: serde_json::Value = response.json().await.unwrap_or_default();
        let detail = problem.get("detail").and_then(serde_json::Value::as_str).unwrap_or("no detail").to_owned();
        Err(format!("bank {} refused: {status}: {detail}", member.id))
    }

    /// Reads one bank whole: the first answer, then every further page of every list.
    pub async fn read_bank(&self, member: &Member, clock: Instant) -> BankSnapshot {
        let started_ms = clock.elapsed().as_millis() as u64;
        let read = self.read_pages(member).await.map(|pages| {
            let finished_ms = clock.elapsed().as_millis() as u64;
            BankData::from_pages(&pages, started_ms, finished_ms)
        });
        BankSnapshot { id: member.id, name: member.name.clone(), url: member.url.clone(), read }
    }

    async fn read_pages(&self, member: &Member) -> std::result::Result<Vec<AuditSnapshot>, String> {
        let first = self.get(member, &AuditQuery::default()).await?;
        let mut cursors: Vec<(AuditList, String)> =
            AuditList::PAGED.into_iter().filter_map(|list| next_of(&first, list).map(|next| (list, next))).collect();
        let mut pages = vec![first];
        while let Some((list, after)) = cursors.pop() {
            let query = AuditQuery { list: Some(list), after: Some(after), limit: None };
            let page = self.get(member, &query).await?;
            if let Some(next) = next_of(&page, list) {
                cursors.push((list, next));
            }
            pages.push(page);
        }
        Ok(pages)
    }

    /// Reads the totals of `member` alone.
    pub async fn read_totals(&self, member: &Member) -> std::result::Result<AuditTotals, String> {
        let query = AuditQuery { list: Some(AuditList::Totals), ..AuditQuery::default() };
        self.get(member, &query).await?.totals.ok_or_else(|| "answered without totals".to_string())
    }
}

fn next_of(page: &AuditSnapshot, list: AuditList) -> Option<String> {
    match list {
        AuditList::Totals => None,
        AuditList::Accounts => page.accounts.as_ref().and_then(|p| p.next.clone()),
        AuditList::Holds => page.holds.as_ref().and_then(|p| p.next.clone()),
        AuditList::Decisions => page.decisions.as_ref().and_then(|p| p.next.clone()),
        AuditList::CoordinatorRecords => page.coordinator_records.as_ref().and_then(|p| p.next.clone()),
        AuditList::PixKeys => page.pix_keys.as_ref().and_then(|p| p.next.clone()),
        AuditList::PixLegs => page.pix_legs.as_ref().and_then(|p| p.next.clone()),
    }
}

fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "unreachable: no answer in time"
    } else if e.is_connect() {
        "unreachable: cannot connect"
    } else {
        "unreachable"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() { what.to_string() } else { format!("{what} ({cause})") }
}

/// Reads every member, concurrently.
async fn read_all(client: &OperatorClient, members: &[Member], clock: Instant) -> Vec<BankSnapshot> {
    futures::future::join_all(members.iter().map(|m| client.read_bank(m, clock))).await
}

/// Reads the banks until the verdict no longer depends on timing, or `wait` has passed.
pub async fn audit(client: &OperatorClient, members: &[Member], wait: Duration) -> (Vec<BankSnapshot>, Verdict) {
    let clock = Instant::now();
    let deadline = clock + wait;
    loop {
        let mut snapshots = read_all(client, members, clock).await;
        let mut verdict = check(&snapshots);
        if !verdict.recheck.is_empty() {
            // Read the holders again, now certainly after their coordinators.
            let again: Vec<&Member> = members.iter().filter(|m| verdict.recheck.contains(&m.id)).collect();
            let fresh = futures::future::join_all(again.into_iter().map(|m| client.read_bank(m, clock))).await;
            for snapshot in fresh {
                if let Some(slot) = snapshots.iter_mut().find(|s| s.id == snapshot.id) {
                    *slot = snapshot;
                }
            }
            verdict = check(&snapshots);
        }
        if !verdict.transfers_in_flight() && verdict.unreachable.is_empty() {
            // The consistent cut: every bank's totals once more, after every first read.
            let rereads = futures::future::join_all(members.iter().map(|m| client.read_totals(m))).await;
            for (snapshot, reread) in snapshots.iter_mut().zip(rereads) {
                match reread {
                    Ok(totals) => {
                        if let Ok(data) = snapshot.read.as_mut() {
                            data.reread = Some(totals);
                        }
                    }
                    Err(reason) => snapshot.read = Err(reason),
                }
            }
            verdict = check(&snapshots);
        }
        let now = Instant::now();
        if !verdict.worth_waiting() || now >= deadline {
            return (snapshots, verdict);
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS).min(deadline - now)).await;
    }
}

// ---- The command ----

/// The operator key file: `--operator-key`, else `keys/operator.key` beside the consortium file.
pub fn operator_key_path(consortium: &Path, given: Option<&Path>) -> PathBuf {
    match given {
        Some(path) => path.to_path_buf(),
        None => consortium.parent().unwrap_or(Path::new(".")).join("keys").join("operator.key"),
    }
}

/// The consortium file and the operator's client, the key checked against the file.
pub fn operator(consortium: &Path, given_key: Option<&Path>) -> Result<(ConsortiumConfig, OperatorClient)> {
    let config = ConsortiumConfig::load(consortium)?;
    let key_path = operator_key_path(consortium, given_key);
    let key = read_signing_key(&key_path).with_context(|| format!("the operator key {}", key_path.display()))?;
    if key.verifying_key() != config.operator_key {
        bail!(
            "{} is not the operator key that {} lists in [operator] (the banks would refuse its signature)",
            key_path.display(),
            consortium.display()
        );
    }
    Ok((config, OperatorClient::new(key)?))
}

/// `bank fault`.
pub async fn run_fault(args: crate::args::FaultArgs) -> Result<ExitCode> {
    let (config, client) = operator(&args.consortium, args.operator_key.as_deref())?;
    let Some(member) = config.members.get(&BankId(args.bank)) else {
        bail!("bank {} is not a member of {}", args.bank, args.consortium.display());
    };
    let cut_off = args.action == crate::args::FaultAction::CutOff;
    client.fault(member, cut_off).await.map_err(|e| anyhow::anyhow!(e))?;
    println!("bank {} is {}", member.id, if cut_off { "cut off from its peers" } else { "reconnected" });
    Ok(ExitCode::SUCCESS)
}

/// `bank audit`.
pub async fn run(args: AuditArgs) -> Result<ExitCode> {
    let (config, client) = operator(&args.consortium, args.operator_key.as_deref())?;
    let members: Vec<Member> = config.members.values().cloned().collect();
    let (snapshots, verdict) = audit(&client, &members, Duration::from_secs(args.wait_s)).await;
    if args.json {
        println!("{}", serde_json::to_string(&json_report(&snapshots, &verdict))?);
    } else {
        print!("{}", render(&snapshots, &verdict));
    }
    Ok(ExitCode::from(verdict.exit_code()))
}

/// One bank in the JSON report.
#[derive(Debug, Serialize)]
pub struct BankReport {
    pub bank_id: BankId,
    pub name: String,
    pub url: String,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totals: Option<AuditTotals>,
}

/// The whole JSON report.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub verdict: &'static str,
    pub exit_code: u8,
    pub banks: Vec<BankReport>,
    pub invariants: &'a [InvariantVerdict],
    pub unreachable: &'a [Unreachable],
    pub in_flight: &'a [InFlight],
}

pub fn json_report<'a>(snapshots: &[BankSnapshot], verdict: &'a Verdict) -> Report<'a> {
    Report {
        verdict: verdict.overall(),
        exit_code: verdict.exit_code(),
        banks: snapshots
            .iter()
            .map(|s| BankReport {
                bank_id: s.id,
                name: s.name.clone(),
                url: s.url.clone(),
                reachable: s.read.is_ok(),
                error: s.read.as_ref().err().cloned(),
                totals: s.read.as_ref().ok().map(|d| d.totals.clone()),
            })
            .collect(),
        invariants: &verdict.invariants,
        unreachable: &verdict.unreachable,
        in_flight: &verdict.in_flight,
    }
}

/// The report for a person.
pub fn render(snapshots: &[BankSnapshot], verdict: &Verdict) -> String {
    use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
    let mut out = String::new();
    let mut banks = Table::new();
    banks.load_preset(UTF8_BORDERS_ONLY).set_header([
        "bank",
        "name",
        "read",
        "accounts",
        "posted",
        "held",
        "deposits − withdrawals",
        "holds",
        "decided",
    ]);
    for s in snapshots {
        match &s.read {
            Ok(d) => {
                let t = &d.totals;
                banks.add_row([
                    s.id.to_string(),
                    s.name.clone(),
                    "ok".into(),
                    t.accounts.to_string(),
                    format_brl(t.posted_cents),
                    format_brl(t.held_cents),
                    format_brl(t.deposits_cents.saturating_sub(t.withdrawals_cents)),
                    t.holds.to_string(),
                    t.decisions.values().sum::<u64>().to_string(),
                ]);
            }
            Err(_) => {
                banks.add_row([s.id.to_string(), s.name.clone(), "UNREACHABLE".into()]);
            }
        }
    }
    out.push_str(&format!("{banks}\n"));
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_header(["#", "invariant", "verdict", "found"]);
    for i in &verdict.invariants {
        let found = match &i.cannot_tell {
            Some(why) if i.status == Status::CannotTell => format!("{why}; the banks read: {}", i.summary),
            _ => i.summary.clone(),
        };
        table.add_row([i.number.to_string(), i.title.to_string(), i.status.as_str().to_string(), found]);
    }
    out.push_str(&format!("{table}\n"));
    for i in verdict.invariants.iter().filter(|i| i.status == Status::Violated) {
        out.push_str(&format!("invariant {} VIOLATED:\n", i.number));
        for p in &i.problems {
            out.push_str(&format!("  - {p}\n"));
        }
        if i.problems_total > i.problems.len() {
            out.push_str(&format!("  … and {} more\n", i.problems_total - i.problems.len()));
        }
    }
    if !verdict.unreachable.is_empty() {
        out.push_str("unreachable banks:\n");
        for u in &verdict.unreachable {
            out.push_str(&format!("  - bank {} ({}) at {}: {}\n", u.bank_id, u.name, u.url, u.reason));
        }
    }
    if !verdict.in_flight.is_empty() {
        out.push_str("still in flight:\n");
        for f in &verdict.in_flight {
            let what = match f.kind {
                InFlightKind::Transfer => format!("transaction {}", f.subject),
                InFlightKind::Activity => f.subject.clone(),
                InFlightKind::Key => format!("key {}", f.subject),
            };
            out.push_str(&format!(
                "  - {what} at bank {}: {}\n",
                banks_list(f.banks.iter().copied()),
                f.notes.join("; ")
            ));
        }
    }
    let line = match verdict.exit_code() {
        0 => "verdict: all invariants hold".to_string(),
        EXIT_VIOLATED => {
            let which: Vec<String> = verdict
                .invariants
                .iter()
                .filter(|i| i.status == Status::Violated)
                .map(|i| i.number.to_string())
                .collect();
            format!("verdict: VIOLATED (invariant {})", which.join(", "))
        }
        _ => {
            let mut why = Vec::new();
            if !verdict.unreachable.is_empty() {
                why.push(format!("bank {} unreachable", banks_list(verdict.unreachable.iter().map(|u| u.bank_id))));
            }
            if !verdict.in_flight.is_empty() {
                why.push(format!("{} item(s) still in flight", verdict.in_flight.len()));
            }
            format!("verdict: CANNOT TELL ({})", if why.is_empty() { "see above".into() } else { why.join("; ") })
        }
    };
    out.push_str(&line);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bank_node::interbank::audit::{AuditDecision, AuditSchema, Page};

    fn totals(posted: i64, deposits: i64, withdrawals: i64) -> AuditTotals {
        AuditTotals {
            posted_cents: posted,
            deposits_cents: deposits,
            withdrawals_cents: withdrawals,
            ..AuditTotals::default()
        }
    }

    /// A bank of accounts `(number, posted, held)`, with deposits equal to its posted money and
    /// keys `(key, account)`, read at `[10·id, 10·id + 5]`, reread unchanged.
    fn bank(id: u32, accounts: &[(&str, i64, i64)], keys: &[(&str, &str)]) -> BankSnapshot {
        let posted: i64 = accounts.iter().map(|a| a.1).sum();
        let mut t = totals(posted, posted, 0);
        t.accounts = accounts.len() as u64;
        t.pix_keys = keys.len() as u64;
        let data = BankData {
            started_ms: u64::from(id) * 10,
            finished_ms: u64::from(id) * 10 + 5,
            totals: t.clone(),
            reread: Some(t),
            accounts: accounts
                .iter()
                .map(|(n, p, h)| AuditAccount { number: (*n).into(), posted_cents: *p, held_cents: *h })
                .collect(),
            pix_keys: keys
                .iter()
                .map(|(k, a)| AuditPixKey {
                    key: (*k).into(),
                    key_type: "email".into(),
                    account: (*a).into(),
                    bank_id: BankId(id),
                })
                .collect(),
            coordinator_records: Some(Vec::new()),
            one_read: true,
            ..BankData::default()
        };
        BankSnapshot { id: BankId(id), name: format!("Bank {id}"), url: format!("http://b{id}"), read: Ok(data) }
    }

    fn data(s: &mut BankSnapshot) -> &mut BankData {
        s.read.as_mut().expect("read")
    }

    fn decide(s: &mut BankSnapshot, tx: &str, outcome: Outcome) {
        let d = data(s);
        d.decisions.insert(tx.into(), outcome);
        *d.totals.decisions.entry(outcome.as_str().into()).or_insert(0) += 1;
        d.reread = Some(d.totals.clone());
    }

    fn record(s: &mut BankSnapshot, tx: &str, phase: Phase) {
        data(s).coordinator_records.get_or_insert_with(Vec::new).push(CoordinatorView { tx: tx.into(), phase });
    }

    fn hold(s: &mut BankSnapshot, tx: &str, coordinator: u32) {
        let d = data(s);
        d.holds.push(HoldView { transfer_id: tx.into(), coordinator: Some(BankId(coordinator)) });
        d.totals.holds += 1;
        d.reread = Some(d.totals.clone());
    }

    /// Bank 1 paid 300 to bank 2 by a committed, finished cross-bank transfer.
    fn clean() -> Vec<BankSnapshot> {
        let mut one = bank(1, &[("000001-7", 700, 0), ("000002-4", 0, 0)], &[("a@x", "000001-7")]);
        let mut two = bank(2, &[("000001-7", 500, 100)], &[("b@x", "000001-7")]);
        data(&mut one).totals = totals(700, 1000, 0);
        data(&mut one).totals.accounts = 2;
        data(&mut one).reread = Some(data(&mut one).totals.clone());
        data(&mut two).totals = totals(500, 200, 0);
        data(&mut two).totals.accounts = 1;
        data(&mut two).reread = Some(data(&mut two).totals.clone());
        decide(&mut one, "t1", Outcome::Committed);
        decide(&mut two, "t1", Outcome::Committed);
        record(&mut one, "t1", Phase::Finished(Outcome::Committed));
        vec![one, two, bank(3, &[], &[])]
    }

    fn status(verdict: &Verdict, number: u8) -> Status {
        verdict.invariants.iter().find(|i| i.number == number).expect("invariant").status
    }

    fn problems(verdict: &Verdict, number: u8) -> String {
        verdict.invariants.iter().find(|i| i.number == number).expect("invariant").problems.join(" | ")
    }

    /// Leg `leg` of `tx`, paid from bank `from` to bank `to`; a refund names what it refunds.
    fn pix_leg(tx: &str, from: u32, to: u32, cents: i64, refund_of: Option<&str>, refunded: (i64, i64)) -> AuditPixLeg {
        AuditPixLeg {
            id: format!("{tx}:00"),
            transfer_id: tx.into(),
            leg: 0,
            from_bank: BankId(from),
            to_bank: BankId(to),
            amount_cents: cents,
            refund_of: refund_of.map(Into::into),
            refund_of_leg: refund_of.map(|_| 0),
            refunded_cents: refunded.0,
            reserved_cents: refunded.1,
        }
    }

    #[test]
    fn a_pix_refunded_beyond_its_amount_violates_invariant_8() {
        let mut banks = clean();
        // Bank 2 paid bank 1 R$ 10; bank 1 refunded R$ 6 (both ends keep both legs).
        for bank in banks.iter_mut().take(2) {
            data(bank).pix_legs.push(pix_leg("t1", 2, 1, 1_000, None, (600, 0)));
            data(bank).pix_legs.push(pix_leg("r1", 1, 2, 600, Some("t1"), (0, 0)));
        }
        let verdict = check(&banks);
        assert_eq!(status(&verdict, 8), Status::Holds, "{:?}", verdict.invariants);
        // A second R$ 6 refund posted at the payer's bank: R$ 12 of R$ 10.
        data(&mut banks[1]).pix_legs.push(pix_leg("r2", 1, 2, 600, Some("t1"), (0, 0)));
        let verdict = check(&banks);
        assert_eq!(status(&verdict, 8), Status::Violated);
        assert!(problems(&verdict, 8).contains("refunds posted add up to R$ 12,00 of R$ 10,00"), "{verdict:?}");
        // The receiver's own figures past the amount are a violation too.
        let mut banks = clean();
        data(&mut banks[0]).pix_legs.push(pix_leg("t1", 2, 1, 1_000, None, (600, 600)));
        assert_eq!(status(&check(&banks), 8), Status::Violated);
    }

    #[test]
    fn a_clean_consortium_holds_everything() {
        let verdict = check(&clean());
        for i in &verdict.invariants {
            assert_eq!(i.status, Status::Holds, "{i:?}");
        }
        assert!(verdict.all_hold() && !verdict.worth_waiting());
        assert_eq!(verdict.exit_code(), 0);
        assert_eq!(verdict.invariants.iter().map(|i| i.number).collect::<Vec<_>>(), [1, 2, 3, 5, 7, 8]);
        assert!(render(&clean(), &verdict).contains("verdict: all invariants hold"));
    }

    #[test]
    fn money_created_or_lost_violates_conservation() {
        let mut banks = clean();
        data(&mut banks[1]).totals.posted_cents += 1;
        data(&mut banks[1]).accounts[0].posted_cents += 1;
        data(&mut banks[1]).reread = Some(data(&mut banks[1]).totals.clone());
        let verdict = check(&banks);
        assert_eq!(status(&verdict, 1), Status::Violated);
        assert!(problems(&verdict, 1).contains("a difference of R$ 0,01"), "{}", problems(&verdict, 1));
        assert_eq!(verdict.exit_code(), EXIT_VIOLATED);
    }

    #[test]
    fn conservation_waits_for_in_flight_work_and_a_stable_second_read() {
        // A hold at bank 2 of a transaction bank 1 has decided but not finished delivering.
        let mut banks = clean();
        hold(&mut banks[1], "t2", 1);
        record(&mut banks[0], "t2", Phase::Decided(Outcome::Committed));
        let verdict = check(&banks);
        assert_eq!(status(&verdict, 1), Status::CannotTell);
        assert_eq!(status(&verdict, 5), Status::CannotTell);
        let t2 = verdict.in_flight.iter().find(|f| f.subject == "t2").expect("t2 in flight");
        assert_eq!(t2.banks, BTreeSet::from([BankId(1), BankId(2)]));
        assert!(t2.notes.iter().any(|n| n.contains("held at bank 2")), "{t2:?}");
        assert!(verdict.worth_waiting() && verdict.exit_code() == EXIT_CANNOT_TELL);

        // No second read yet, or a bank whose cross-bank state moved between the reads.
        let mut banks = clean();
        data(&mut banks[2]).reread = None;
        assert_eq!(status(&check(&banks), 1), Status::CannotTell);
        let mut banks = clean();
        data(&mut banks[2]).reread.as_mut().expect("reread").posted_cents += 5;
        let verdict = check(&banks);
        assert_eq!(status(&verdict, 1), Status::CannotTell);
        assert!(verdict.in_flight.iter().any(|f| f.kind == InFlightKind::Activity && f.banks.contains(&BankId(3))));
        // A deposit between the reads moves posted and deposits alike: still a consistent cut.
        let mut banks = clean();
        let reread = data(&mut banks[2]).reread.as_mut().expect("reread");
        reread.posted_cents += 5;
        reread.deposits_cents += 5;
        assert_eq!(status(&check(&banks), 1), Status::Holds);
    }

    #[test]
    fn a_negative_available_balance_is_a_violation() {
        let mut banks = clean();
        data(&mut banks[0]).accounts[1] =
            AuditAccount { number: "000002-4".into(), posted_cents: 100, held_cents: 150 };
        let verdict = check(&banks);
        assert_eq!(status(&verdict, 2), Status::Violated);
        assert!(
            problems(&verdict, 2).contains("bank 1 account 000002-4: available -R$ 0,50"),
            "{}",
            problems(&verdict, 2)
        );
        let mut banks = clean();
        data(&mut banks[0]).accounts[1].held_cents = -1;
        assert!(problems(&check(&banks), 2).contains("held -R$ 0,01 is negative"));
    }

    #[test]
    fn banks_deciding_a_transaction_differently_violate_all_or_nothing() {
        let mut banks = clean();
        decide(&mut banks[0], "t3", Outcome::Committed);
        decide(&mut banks[2], "t3", Outcome::Aborted);
        let verdict = check(&banks);
        assert_eq!(status(&verdict, 3), Status::Violated);
        assert!(problems(&verdict, 3).contains("t3: committed at bank 1 but aborted at bank 3"));
        // A bank holding a transaction it has decided.
        let mut banks = clean();
        hold(&mut banks[1], "t1", 1);
        assert!(problems(&check(&banks), 3).contains("bank 2 still holds funds for it although it has committed it"));
        // Unless the holds and the decisions were read in different transactions (pages).
        data(&mut banks[1]).one_read = false;
        let verdict = check(&banks);
        assert_eq!(status(&verdict, 3), Status::CannotTell);
        assert!(verdict.in_flight.iter().any(|f| f.subject == "t1"));
    }

    #[test]
    fn a_participant_disagreeing_with_its_coordinator_violates_invariant_5() {
        let mut banks = clean();
        record(&mut banks[0], "t4", Phase::Decided(Outcome::Aborted));
        decide(&mut banks[1], "t4", Outcome::Committed);
        let verdict = check(&banks);
        assert_eq!(status(&verdict, 5), Status::Violated);
        assert!(problems(&verdict, 5).contains("t4: its coordinator bank 1 decided aborted, bank 2 committed"));
    }

    #[test]
    fn a_hold_on_a_finished_transaction_is_a_violation_only_when_read_after_the_coordinator() {
        // Bank 2 read after bank 1 (its coordinator) finished t5, and still holds it.
        let mut banks = clean();
        record(&mut banks[0], "t5", Phase::Finished(Outcome::Committed));
        hold(&mut banks[1], "t5", 1);
        let verdict = check(&banks);
        assert_eq!(status(&verdict, 5), Status::Violated);
        assert!(
            problems(&verdict, 5).contains("bank 2 still holds funds for it, but its coordinator bank 1 has finished")
        );
        assert!(verdict.recheck.is_empty());
        // Bank 2 read while bank 1 was being read: it may have released it since; read it again.
        data(&mut banks[1]).started_ms = 11;
        let verdict = check(&banks);
        assert_eq!(status(&verdict, 5), Status::CannotTell);
        assert_eq!(verdict.recheck, BTreeSet::from([BankId(2)]));
        assert!(verdict.worth_waiting());
    }

    #[test]
    fn a_key_naming_two_accounts_or_missing_from_a_directory_violates_invariant_7() {
        // Without directories: the same key owned in two banks.
        let mut banks = clean();
        data(&mut banks[1]).pix_keys[0].key = "a@x".into();
        let verdict = check(&banks);
        assert_eq!(status(&verdict, 7), Status::Violated);
        assert!(problems(&verdict, 7).contains("key a@x names more than one account"), "{}", problems(&verdict, 7));
        // A key naming an account its bank does not have.
        let mut banks = clean();
        data(&mut banks[0]).pix_keys[0].account = "000009-5".into();
        assert!(problems(&check(&banks), 7).contains("which has no such account"));
        // Listed by bank 3, read before bank 1's accounts: the account is missing for good.
        let stray =
            AuditPixKey { key: "s@x".into(), key_type: "email".into(), account: "000009-5".into(), bank_id: BankId(1) };
        let mut banks = clean();
        data(&mut banks[2]).pix_keys.push(stray);
        data(&mut banks[2]).finished_ms = 9;
        assert!(problems(&check(&banks), 7).contains("key s@x names account 000009-5 of bank 1, which has no such"));
        // Read after bank 1: the account may be new; bank 1 is read again.
        data(&mut banks[2]).finished_ms = 35;
        let verdict = check(&banks);
        assert_eq!(status(&verdict, 7), Status::CannotTell);
        assert_eq!(verdict.recheck, BTreeSet::from([BankId(1)]));
        // Directories: every bank lists every key, with the same owner.
        let mut banks = clean();
        let all: Vec<AuditPixKey> =
            banks.iter().flat_map(|b| b.read.as_ref().expect("read").pix_keys.clone()).collect();
        for b in &mut banks {
            let d = data(b);
            d.directory = true;
            d.pix_keys = all.clone();
        }
        assert_eq!(status(&check(&banks), 7), Status::Holds);
        // A key missing from one directory: a registration on its way, or a directory behind.
        data(&mut banks[2]).pix_keys.retain(|k| k.key != "b@x");
        let verdict = check(&banks);
        assert_eq!(status(&verdict, 7), Status::CannotTell);
        let gap = verdict.in_flight.iter().find(|f| f.kind == InFlightKind::Key).expect("worth waiting");
        assert_eq!((gap.subject.as_str(), &gap.banks), ("b@x", &BTreeSet::from([BankId(3)])));
        assert!(gap.notes[0].contains("missing from the directory of bank 3"), "{gap:?}");
        data(&mut banks[2]).pix_keys.push(AuditPixKey {
            key: "b@x".into(),
            key_type: "email".into(),
            account: "000002-4".into(),
            bank_id: BankId(1),
        });
        assert!(problems(&check(&banks), 7).contains("bank 3 says bank 1 account 000002-4"));
    }

    #[test]
    fn an_account_with_more_keys_than_the_limit_violates_invariant_7() {
        let keys: Vec<String> = (0..=KEYS_PER_ACCOUNT_MAX).map(|i| format!("k{i}@x")).collect();
        let listed = |n: usize| keys[..n].iter().map(|k| (k.as_str(), "000001-7")).collect::<Vec<_>>();
        let at_limit = vec![bank(1, &[("000001-7", 0, 0)], &listed(KEYS_PER_ACCOUNT_MAX))];
        assert_eq!(status(&check(&at_limit), 7), Status::Holds);
        let past = vec![bank(1, &[("000001-7", 0, 0)], &listed(KEYS_PER_ACCOUNT_MAX + 1))];
        let verdict = check(&past);
        assert_eq!(status(&verdict, 7), Status::Violated);
        assert!(
            problems(&verdict, 7).contains("account 000001-7 of bank 1 has 21 Pix keys"),
            "{}",
            problems(&verdict, 7)
        );
    }

    #[test]
    fn an_unreachable_bank_means_cannot_tell_but_violations_still_show() {
        let mut banks = clean();
        banks[2].read = Err("unreachable: cannot connect".into());
        let verdict = check(&banks);
        assert_eq!(verdict.unreachable.len(), 1);
        assert_eq!(verdict.unreachable[0].bank_id, BankId(3));
        for i in &verdict.invariants {
            assert_eq!(i.status, Status::CannotTell, "{i:?}");
        }
        assert_eq!(verdict.exit_code(), EXIT_CANNOT_TELL);
        let text = render(&banks, &verdict);
        assert!(text.contains("bank 3 (Bank 3) at http://b3: unreachable: cannot connect"), "{text}");
        assert!(text.contains("verdict: CANNOT TELL (bank 3 unreachable"), "{text}");
        data(&mut banks[0]).accounts[0].held_cents = 800;
        let verdict = check(&banks);
        assert_eq!(status(&verdict, 2), Status::Violated);
        assert_eq!(verdict.exit_code(), EXIT_VIOLATED);
    }

    #[test]
    fn problems_are_capped_but_counted() {
        let mut banks = clean();
        let accounts: Vec<AuditAccount> =
            (0..50).map(|n| AuditAccount { number: format!("{n:06}-0"), posted_cents: 0, held_cents: 1 }).collect();
        data(&mut banks[2]).accounts = accounts;
        let verdict = check(&banks);
        let inv2 = &verdict.invariants[1];
        assert_eq!((inv2.problems.len(), inv2.problems_total), (PROBLEMS_SHOWN_MAX, 50));
        assert!(render(&banks, &verdict).contains("… and 30 more"));
    }

    #[test]
    fn wire_records_are_read_leniently() {
        let record = |state: Option<&str>, body: serde_json::Value| {
            CoordinatorView::from_wire(&AuditCoordinatorRecord { tx: "t".into(), state: state.map(Into::into), body })
                .phase
        };
        let finished = serde_json::json!({ "finished": { "tx": "t", "decision": "committed" } });
        assert_eq!(record(Some("finished"), finished.clone()), Phase::Finished(Outcome::Committed));
        assert_eq!(record(None, finished), Phase::Finished(Outcome::Committed), "state from the tag");
        assert_eq!(
            record(Some("Decided"), serde_json::json!({ "decision": "aborted" })),
            Phase::Decided(Outcome::Aborted)
        );
        assert_eq!(record(Some("preparing"), serde_json::Value::Null), Phase::Preparing);
        assert_eq!(record(Some("odd"), serde_json::Value::Null), Phase::Unknown("odd".into()));
        let hold = AuditHold {
            transfer_id: "t".into(),
            placed_at: 1,
            body: serde_json::json!({ "debits": [], "coordinator": 3 }),
        };
        assert_eq!(HoldView::from_wire(&hold).coordinator, Some(BankId(3)));
        // Pages gather into one bank.
        let page = |list: AuditList| AuditSnapshot {
            bank_id: BankId(1),
            bank_name: "x".into(),
            as_of_ms: 0,
            schema: AuditSchema { pix_keys_bank_id: true, ..AuditSchema::default() },
            totals: (list == AuditList::Totals).then(|| totals(1, 1, 0)),
            accounts: (list == AuditList::Accounts).then(|| Page {
                items: vec![AuditAccount { number: "n".into(), posted_cents: 1, held_cents: 0 }],
                next: None,
            }),
            holds: None,
            decisions: (list == AuditList::Decisions).then(|| Page {
                items: vec![AuditDecision { transfer_id: "t".into(), decision: "committed".into() }],
                next: None,
            }),
            coordinator_records: None,
            pix_keys: None,
            pix_legs: None,
            truncated: false,
        };
        let data = BankData::from_pages(
            &[
                page(AuditList::Totals),
                page(AuditList::Accounts),
                page(AuditList::Accounts),
                page(AuditList::Decisions),
            ],
            1,
            2,
        );
        assert_eq!((data.accounts.len(), data.decisions.len(), data.totals.posted_cents), (2, 1, 1));
        assert!(data.directory && data.coordinator_records.is_none());
    }

    #[test]
    fn the_operator_key_defaults_to_the_consortium_directory() {
        assert_eq!(operator_key_path(Path::new("/d/consortium.toml"), None), PathBuf::from("/d/keys/operator.key"));
        assert_eq!(operator_key_path(Path::new("c.toml"), Some(Path::new("/k"))), PathBuf::from("/k"));
    }
}
