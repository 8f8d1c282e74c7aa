//! The torture run's report: operations by kind and outcome, faults by kind, availability during
//! faults and after the heal, time from the heal to the first completed cross-bank transfer, and
//! the anomalies (which must be none). Written as JSON, printed as text.

use serde::Serialize;
use std::collections::BTreeMap;

use super::check::Checked;
use super::history::{Op, OpKind, TransferClass};
use super::nemesis::Injected;

/// Share of operations that succeeded among some, with how many.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Availability {
    pub ops: u64,
    pub ok: u64,
    /// `ok / ops`, 0 to 1 (1 when there was no operation).
    pub share: f64,
}

impl Availability {
    fn of<'a>(ops: impl Iterator<Item = &'a Op>) -> Availability {
        let (mut n, mut ok) = (0, 0);
        for op in ops {
            n += 1;
            ok += u64::from(op.outcome.class() == "ok");
        }
        let share = if n == 0 { 1.0 } else { (ok as f64 / n as f64 * 1000.0).round() / 1000.0 };
        Availability { ops: n, ok, share }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub seed: u64,
    pub banks: u32,
    pub duration_s: u64,
    pub tag: String,
    pub dir: String,
    /// Kind → outcome class (ok, failed, rejected, unknown) → count, as the client first saw it.
    pub ops: BTreeMap<String, BTreeMap<String, u64>>,
    pub ops_total: usize,
    pub faults_by_kind: BTreeMap<String, u64>,
    /// Coordinator crashes whose failpoint was reached (the others were killed at their end).
    pub failpoints_reached: u64,
    /// Full disks under which the bank stopped by itself (the others refused or kept going).
    pub stopped_on_full_disk: u64,
    /// Clock skews beyond the allowance, and those a peer's status page called disagreeing by
    /// the end of the hold.
    pub skews_beyond: u64,
    pub skews_beyond_seen: u64,
    /// Clock skews within the allowance a peer nevertheless called disagreeing (false alarms).
    pub skews_within_flagged: u64,
    pub faults: Vec<Injected>,
    /// Operations invoked while a fault was in place.
    pub availability_during_faults: Availability,
    /// Operations invoked between faults, before the final heal.
    pub availability_between_faults: Availability,
    /// Operations invoked after the final heal.
    pub availability_after_heal: Availability,
    pub heal_ms: u64,
    /// From the final heal to the first cross-bank transfer invoked after it that completed.
    pub heal_to_first_cross_bank_ms: Option<u64>,
    /// Banks whose process ended without the nemesis killing it, for no reason the run knows of.
    pub crashes: Vec<String>,
    /// Banks that stopped because their disk was full, noticed after the fill was repaired (by
    /// design: a bank that cannot write refuses to go on; not a crash).
    pub full_disk_stops: Vec<String>,
    /// Money movements whose effect stayed unknown.
    pub unresolved: usize,
    pub anomalies_total: usize,
    pub checked: Checked,
    pub run_time_s: u64,
}

fn cross_bank(op: &Op) -> bool {
    matches!(op.kind, OpKind::Transfer { class: TransferClass::Pix | TransferClass::Packet, .. })
}

/// What the report says of `history` and `faults`.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub seed: u64,
    pub banks: u32,
    pub duration_s: u64,
    pub tag: &'a str,
    pub dir: String,
    pub history: &'a [Op],
    pub faults: Vec<Injected>,
    pub heal_ms: u64,
    pub crashes: Vec<String>,
    pub full_disk_stops: Vec<String>,
    pub checked: Checked,
    pub run_time_s: u64,
}

pub fn build(inputs: Inputs<'_>) -> Report {
    let history = inputs.history;
    let mut ops: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for op in history {
        *ops.entry(op.kind.name().into()).or_default().entry(op.outcome.class().into()).or_default() += 1;
    }
    let mut faults_by_kind = BTreeMap::new();
    for fault in &inputs.faults {
        *faults_by_kind.entry(fault.fault.name().to_string()).or_default() += 1;
    }
    let noted = |kind: &str, text: &str| {
        inputs.faults.iter().filter(|f| f.fault.name() == kind && f.notes.iter().any(|n| n.contains(text))).count()
            as u64
    };
    let failpoints_reached = noted("crash_coordinator", ": reached");
    let stopped_on_full_disk = noted("disk_full", "stopped by itself");
    let skews_beyond = noted("skew", "beyond the allowance");
    let skews_beyond_seen = noted("skew", "beyond the allowance: a peer says");
    let skews_within_flagged = noted("skew", "within the allowance: a peer says");
    let during = |op: &Op| inputs.faults.iter().any(|f| op.invoked_ms >= f.start_ms && op.invoked_ms < f.end_ms);
    // The setup's deposits (worker usize::MAX) are not part of the workload.
    let workload = || history.iter().filter(|op| op.worker != usize::MAX);
    let heal = inputs.heal_ms;
    let first = workload()
        .filter(|op| op.invoked_ms >= heal && cross_bank(op) && op.outcome.class() == "ok")
        .map(|op| op.completed_ms - heal)
        .min();
    let availability_during_faults = Availability::of(workload().filter(|op| during(op)));
    let availability_between_faults = Availability::of(workload().filter(|op| op.invoked_ms < heal && !during(op)));
    let availability_after_heal = Availability::of(workload().filter(|op| op.invoked_ms >= heal));
    Report {
        seed: inputs.seed,
        banks: inputs.banks,
        duration_s: inputs.duration_s,
        tag: inputs.tag.to_owned(),
        dir: inputs.dir,
        ops,
        ops_total: history.len(),
        faults_by_kind,
        failpoints_reached,
        stopped_on_full_disk,
        skews_beyond,
        skews_beyond_seen,
        skews_within_flagged,
        faults: inputs.faults,
        availability_during_faults,
        availability_between_faults,
        availability_after_heal,
        heal_ms: heal,
        heal_to_first_cross_bank_ms: first,
        crashes: inputs.crashes,
        full_disk_stops: inputs.full_disk_stops,
        unresolved: inputs.checked.unresolved.len(),
        anomalies_total: inputs.checked.anomalies_total,
        checked: inputs.checked,
        run_time_s: inputs.run_time_s,
    }
}

impl Report {
    /// The text a person reads at the end of the run.
    pub fn render(&self) -> String {
        let mut out = format!(
            "bank torture: seed {}, {} banks, {} s of load (tag {}, files in {})\n",
            self.seed, self.banks, self.duration_s, self.tag, self.dir
        );
        out.push_str(&format!("operations: {} recorded\n", self.ops_total));
        for (kind, outcomes) in &self.ops {
            let parts: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect();
            out.push_str(&format!("  {kind:<13} {}\n", parts.join(", ")));
        }
        let faults: Vec<String> = self.faults_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        out.push_str(&format!("faults: {} ({})\n", self.faults.len(), faults.join(", ")));
        out.push_str(&format!(
            "  coordinator failpoints reached: {}; banks that stopped on a full disk: {}\n",
            self.failpoints_reached, self.stopped_on_full_disk
        ));
        out.push_str(&format!(
            "  clock skews beyond the allowance a peer called disagreeing: {} of {}; within it, called so: {}\n",
            self.skews_beyond_seen, self.skews_beyond, self.skews_within_flagged
        ));
        let a = |x: &Availability| format!("{:.1}% of {}", x.share * 100.0, x.ops);
        out.push_str(&format!(
            "availability: during faults {}, between faults {}, after the heal {}\n",
            a(&self.availability_during_faults),
            a(&self.availability_between_faults),
            a(&self.availability_after_heal)
        ));
        match self.heal_to_first_cross_bank_ms {
            Some(ms) => out.push_str(&format!("first cross-bank transfer completed {ms} ms after the heal\n")),
            None => out.push_str("no cross-bank transfer completed after the heal\n"),
        }
        for crash in &self.crashes {
            out.push_str(&format!("crash: {crash}\n"));
        }
        for stop in &self.full_disk_stops {
            out.push_str(&format!("stopped on a full disk (by design): {stop}\n"));
        }
        out.push_str(&format!("unresolved money movements: {}\n", self.unresolved));
        out.push_str(&format!("anomalies: {}\n", self.anomalies_total));
        for anomaly in &self.checked.anomalies {
            out.push_str(&format!("  {:?} (ops {:?}): {}\n", anomaly.kind, anomaly.ops, anomaly.detail));
        }
        out.push_str(&format!("run time: {} s\n", self.run_time_s));
        out
    }
}
