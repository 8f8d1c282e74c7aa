//! The token ring as the node runs it: its options, its tick clock, its metrics and status view.
//! The gate itself — the ring machine, the queue, the visit — is pure, inside
//! [`bank_core::bank::Bank`]; what follows describes how the two work together.
//!
//! In `token-ring` mode (DESIGN.md §5) a cross-bank transaction planned here is not begun at once:
//! it waits in a queue (durable: `ring_queue`, so a restart neither loses nor double-begins it)
//! until this bank holds the token. The gate owns this bank's ring node, and lives in the
//! writer thread beside the ledger and the two-phase commit, so a ring state change is committed
//! by the same group commit as the work it allows (write-ahead: `(epoch, hop)` is durable before
//! the acknowledgement leaves, and before any prepare sent under it).
//!
//! A visit: on `RingOutput::StartWork` the gate lets the writer begin queued transactions —
//! and ones planned during the visit — while the lease lasts, up to the visit's budget
//! (`ops_per_visit`). Once the visit's batch is begun — in the same step, so the pass leaves
//! after the batch that begins the work commits — the ring is told (`RingNode::batch_done`) and
//! passes the token on, while the batch's two-phase commits run; with nothing to do it passes
//! after the idle pause; at the lease's end at the latest. Intra-bank work never comes here.
//!
//! A transaction that waits longer than [`RingOptions::queue_wait_max_ms`] (the token is lost and
//! not yet regenerated, or this bank is cut off from a majority) fails without having held or
//! moved anything: nothing was begun, so failing it is purely local.
//!
//! Ticks: the ring counts logical ticks of [`RingOptions::tick_ms`] on this process's monotonic
//! clock. Ring messages carry the wall-clock time they were produced; one older than
//! [`RingOptions::message_age_max_ms`] when it reaches the machine is dropped, which is how the
//! driver upholds the ring's assumption A1 (a message arrives within the hop timeout, or never).
//!
//! The visit log: every visit this bank made — its position `(epoch, hop)`, when it began and
//! ended by this machine's clock — is appended to `DATA/ring-visits.log` ([`VisitLog`]) once the
//! batch that began it is committed, so an outside checker (`bank torture`) can see that no two
//! banks held the same position and that each bank's positions only grew. It is an observation,
//! not state: written without fsync (it survives a crash of the process, not of the machine), a
//! failed write (a full disk) loses a line and nothing else, and it is bounded by rotation.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bank_core::bank::{Event, GateSettings};
use bank_core::ids::BankId;
use bank_core::ring::{RingRole, RingSettings, RingStatus, Tick};

use crate::metrics::Metrics;

/// How cross-bank work is ordered (DESIGN.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CoordinationMode {
    /// A bank begins cross-bank transactions only while it holds the token.
    #[default]
    TokenRing,
    /// No gate: every bank begins its cross-bank transactions at once.
    Concurrent,
}

impl CoordinationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CoordinationMode::TokenRing => "token-ring",
            CoordinationMode::Concurrent => "concurrent",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "token-ring" => Ok(CoordinationMode::TokenRing),
            "concurrent" => Ok(CoordinationMode::Concurrent),
            other => Err(format!("coordination is `token-ring` or `concurrent`, not {other:?}")),
        }
    }
}

/// The ring's settings as the node runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingOptions {
    /// The ring's own settings, in ticks. Every bank of a consortium must use the same ones.
    pub settings: RingSettings,
    /// Length of a tick.
    pub tick_ms: u64,
    /// Cross-bank transactions waiting for the token; more are recorded failed (`overloaded`).
    pub queue_len_max: usize,
    /// Longest wait for the token; then the transaction fails, having moved nothing.
    pub queue_wait_max_ms: i64,
    /// A ring message older than this (by its sender's clock) is dropped on arrival: the hop
    /// timeout less the clock skew allowed between banks.
    pub message_age_max_ms: i64,
}

impl RingOptions {
    /// The node's defaults for a 10 ms tick (the consortium file's `[ring]` defaults: an 80 ms
    /// hop timeout, a 60 ms lease, 20 ms of clock skew): 20 ms idle pause, re-sends every 10 ms,
    /// 50 ms per priority rank, 64 operations per visit, ring messages older than 60 ms dropped.
    /// The lease only has to cover starting a batch (a visit ends once its batch is begun) and
    /// leave an idle visit slack for a late tick (a visit ended past its lease loses the token).
    /// Three banks notice a lost token after 600 ms (the loss timeout), five after 1.04 s.
    pub const DEFAULT: RingOptions = RingOptions {
        settings: RingSettings {
            lease_ticks: 6,
            hop_timeout_ticks: 8,
            idle_pause_ticks: 2,
            retry_ticks: 1,
            priority_stagger_ticks: 5,
            ops_per_visit: 64,
        },
        tick_ms: 10,
        queue_len_max: 65_536,
        queue_wait_max_ms: 10_000,
        message_age_max_ms: 60,
    };
}

impl RingOptions {
    /// The options for a consortium file's `[ring]` timing (validated there), with
    /// `ops_per_visit` operations per visit. Durations are rounded up to whole ticks; re-sends
    /// come five times per hop timeout, the priority stagger is two thirds of it, and the idle
    /// pause is a third of the lease, one to three ticks: an idle visit ends by its idle pause,
    /// on a tick, and the rest of the lease is the slack for a tick that comes late (measured:
    /// with a 40 ms lease and a 30 ms pause, a loaded 2-core machine lost the token about ten
    /// times a minute that way).
    pub fn from_timing(timing: &crate::consortium::RingTiming, ops_per_visit: u32) -> RingOptions {
        let tick_ms = RingOptions::DEFAULT.tick_ms;
        let ticks = |ms: u64| ms.div_ceil(tick_ms).max(1);
        let hop_timeout_ticks = ticks(timing.hop_timeout_ms);
        let lease_ticks = ticks(timing.lease_ms);
        RingOptions {
            settings: RingSettings {
                lease_ticks,
                hop_timeout_ticks,
                idle_pause_ticks: (lease_ticks / 3).clamp(1, 3),
                retry_ticks: (hop_timeout_ticks / 5).max(1),
                priority_stagger_ticks: (hop_timeout_ticks * 2 / 3).max(1),
                ops_per_visit,
            },
            message_age_max_ms: (timing.hop_timeout_ms - timing.clock_skew_ms) as i64,
            ..RingOptions::DEFAULT
        }
    }
}

impl RingOptions {
    /// The settings of the pure gate (`bank_core::bank::Gate`).
    pub fn gate_settings(&self) -> GateSettings {
        GateSettings {
            ring: self.settings,
            queue_len_max: self.queue_len_max,
            queue_wait_max_ms: self.queue_wait_max_ms,
            message_age_max_ms: self.message_age_max_ms,
        }
    }
}

impl Default for RingOptions {
    fn default() -> Self {
        RingOptions::DEFAULT
    }
}

/// The ring as this bank sees it, for the status route (refreshed by the writer).
#[derive(Debug, Clone, Default)]
pub struct RingSnapshot {
    pub epoch: u64,
    pub role: &'static str,
    pub holder: Option<BankId>,
    /// Milliseconds since this bank last held or passed the token.
    pub last_seen_ms: Option<u64>,
    /// Visits of the token to this bank per second, over the last ten seconds.
    pub rotations_per_s: f64,
    pub queue_len: usize,
    pub suspected: Vec<BankId>,
}

/// What the status route reads.
#[derive(Debug, Default)]
pub struct RingView {
    snapshot: Mutex<RingSnapshot>,
}

impl RingView {
    pub fn snapshot(&self) -> RingSnapshot {
        self.snapshot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The writer's view of the ring, beside the pure gate inside [`bank_core::bank::Bank`]: it
/// counts ticks on this process's monotonic clock, turns the bank's ring events into metrics, and
/// publishes the status route's snapshot.
#[derive(Debug)]
pub struct RingMonitor {
    options: RingOptions,
    started_at: Instant,
    /// When recent visits began, for the rotation rate.
    recent_visits: VecDeque<Instant>,
    view: Arc<RingView>,
    metrics: Arc<Metrics>,
    visits: Option<VisitLog>,
}

/// The visit log's file in a data directory; the previous file is kept as `…log.1`.
pub const VISIT_LOG: &str = "ring-visits.log";
/// The visit log's file is rotated at this size: the log holds at most twice this (a line is
/// about 50 bytes, so the last ~40,000 visits at least).
pub const VISIT_LOG_BYTES_MAX: u64 = 1 << 20;
/// Visit records waiting for their batch's commit (a batch starts and ends a few visits; more
/// means a bug, and the oldest are dropped).
const VISITS_PENDING_MAX: usize = 64;

/// One line of the visit log: `epoch hop start_ms end_ms` (Unix ms by this machine's clock, not
/// the test clock offset; `end_ms` is 0 while the visit is open and written again when it ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitRecord {
    pub epoch: u64,
    pub hop: u64,
    pub start_ms: u64,
    pub end_ms: u64,
}

impl VisitRecord {
    /// Parses a line written by [`VisitLog`]: exactly four numbers. Anything else is not a
    /// record — e.g. the start of a line cut by a full disk, run together with the next line
    /// (`184 7 179643348192 1 1796433510853 0`), which must not pass for a visit.
    pub fn parse(line: &str) -> Option<VisitRecord> {
        let mut words = line.split_whitespace().map(str::parse::<u64>);
        let mut next = || words.next()?.ok();
        let record = VisitRecord { epoch: next()?, hop: next()?, start_ms: next()?, end_ms: next()? };
        words.next().is_none().then_some(record)
    }
}

/// Reads the visit log of `data_dir` (both files, oldest first); a visit's start and end lines
/// are merged into one record.
pub fn read_visit_log(data_dir: &Path) -> std::io::Result<Vec<VisitRecord>> {
    let mut records: Vec<VisitRecord> = Vec::new();
    for name in [format!("{VISIT_LOG}.1"), VISIT_LOG.to_string()] {
        let text = match std::fs::read_to_string(data_dir.join(name)) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for record in text.lines().filter_map(VisitRecord::parse) {
            match records.last_mut() {
                Some(last) if (last.epoch, last.hop, last.start_ms) == (record.epoch, record.hop, record.start_ms) => {
                    last.end_ms = record.end_ms;
                }
                _ => records.push(record),
            }
        }
    }
    Ok(records)
}

/// The append-only visit log (see the module essay).
#[derive(Debug)]
struct VisitLog {
    path: PathBuf,
    /// Lines of the batch being committed.
    pending: Vec<VisitRecord>,
    /// The visit open now, to date its end.
    open: Option<VisitRecord>,
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl VisitLog {
    fn note(&mut self, record: VisitRecord) {
        if self.pending.len() >= VISITS_PENDING_MAX {
            self.pending.remove(0);
        }
        self.pending.push(record);
    }

    fn started(&mut self, epoch: u64, hop: u64) {
        let record = VisitRecord { epoch, hop, start_ms: unix_ms(), end_ms: 0 };
        self.open = Some(record);
        self.note(record);
    }

    fn ended(&mut self, epoch: u64, hop: u64) {
        if let Some(mut record) = self.open.take().filter(|r| (r.epoch, r.hop) == (epoch, hop)) {
            record.end_ms = unix_ms().max(record.start_ms);
            self.note(record);
        }
    }

    /// Appends the committed batch's lines (one write), rotating a full file first.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let text: String =
            self.pending.drain(..).map(|r| format!("{} {} {} {}\n", r.epoch, r.hop, r.start_ms, r.end_ms)).collect();
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= VISIT_LOG_BYTES_MAX) {
            let _ = std::fs::rename(&self.path, self.path.with_extension("log.1"));
        }
        let written = std::fs::File::options().create(true).append(true).open(&self.path).and_then(|mut file| {
            let length = file.metadata()?.len();
            file.write_all(text.as_bytes()).inspect_err(|_| {
                // A full disk can take part of the text: cut it off, so the next batch's lines
                // do not run on from a torn one (cutting frees space, so it works on a full disk).
                let _ = file.set_len(length);
            })
        });
        if let Err(e) = written {
            tracing::debug!(error = %e, "a line of the ring visit log was lost");
        }
    }
}

/// The window of the rotation rate.
const ROTATION_WINDOW_S: u64 = 10;

impl RingMonitor {
    pub fn new(options: RingOptions, metrics: Arc<Metrics>) -> Self {
        RingMonitor {
            options,
            started_at: Instant::now(),
            recent_visits: VecDeque::new(),
            view: Arc::new(RingView::default()),
            metrics,
            visits: None,
        }
    }

    /// Logs this bank's visits in `data_dir` (see the module essay).
    pub fn with_visit_log(mut self, data_dir: &Path) -> Self {
        self.visits = Some(VisitLog { path: data_dir.join(VISIT_LOG), pending: Vec::new(), open: None });
        self
    }

    /// Writes the visits of the batch just committed to the visit log.
    pub fn flush_visits(&mut self) {
        if let Some(log) = &mut self.visits {
            log.flush();
        }
    }

    pub fn view(&self) -> Arc<RingView> {
        self.view.clone()
    }

    /// This process's current tick.
    pub fn now(&self) -> Tick {
        Tick(self.started_at.elapsed().as_millis() as u64 / self.options.tick_ms)
    }

    /// Counts what the bank reports in metrics (and logs the unusual).
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::RingVisit { regenerated, epoch, hop } => {
                if let Some(log) = &mut self.visits {
                    log.started(*epoch, *hop);
                }
                self.metrics.ring_visit(*regenerated);
                let now = Instant::now();
                self.recent_visits.push_back(now);
                while self.recent_visits.front().is_some_and(|t| now.duration_since(*t).as_secs() >= ROTATION_WINDOW_S)
                {
                    self.recent_visits.pop_front();
                }
            }
            Event::RingVisitEnded { epoch, hop } => {
                if let Some(log) = &mut self.visits {
                    log.ended(*epoch, *hop);
                }
            }
            Event::RingPass => self.metrics.ring_pass(),
            Event::StaleTokenRefused => self.metrics.ring_refused_stale(),
            Event::TokenWait { waited_ms } => self.metrics.observe_token_wait(*waited_ms as f64 / 1000.0),
            Event::RingMessageAge { age_ms, .. } => self.metrics.observe_ring_message_age(*age_ms as f64 / 1000.0),
            Event::RingMessageDropped { from, age_ms } => {
                self.metrics.ring_message_dropped();
                tracing::debug!(bank = %from, age_ms, "ring message too old (or from the future): dropped");
            }
            Event::ProtocolRefused { from, tx, reason } => {
                tracing::error!(bank = %from, transfer_id = %tx, %reason, "protocol message refused: a peer or this bank is broken");
            }
        }
    }

    /// Publishes the ring's state for the status route and the gauges.
    pub fn refresh(&self, status: RingStatus, queue_len: usize) {
        let tick = self.now();
        let window_s = (self.started_at.elapsed().as_secs_f64()).clamp(1.0, ROTATION_WINDOW_S as f64);
        let snapshot = RingSnapshot {
            epoch: status.epoch.0,
            role: match status.role {
                RingRole::Idle => "idle",
                RingRole::Holding => "holding",
                RingRole::Passing => "passing",
                RingRole::PreCandidate => "pre-candidate",
                RingRole::Candidate => "candidate",
            },
            holder: status.holder,
            last_seen_ms: status.last_seen.map(|t| tick.0.saturating_sub(t.0) * self.options.tick_ms),
            rotations_per_s: self.recent_visits.len() as f64 / window_s,
            queue_len,
            suspected: status.suspected.into_iter().collect(),
        };
        self.metrics.set_ring(snapshot.epoch, snapshot.queue_len);
        *self.view.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consortium::RingTiming;

    #[test]
    fn the_default_timing_gives_the_default_options() {
        assert_eq!(RingOptions::from_timing(&RingTiming::default(), 64), RingOptions::DEFAULT);
    }

    #[test]
    fn a_wide_area_timing_scales_every_duration_and_stays_valid() {
        let timing = RingTiming { hop_timeout_ms: 1_000, lease_ms: 2_005, clock_skew_ms: 200 };
        let options = RingOptions::from_timing(&timing, 1);
        let s = options.settings;
        assert_eq!((s.hop_timeout_ticks, s.lease_ticks, s.retry_ticks, s.priority_stagger_ticks), (100, 201, 20, 66));
        assert_eq!((s.idle_pause_ticks, s.ops_per_visit, options.message_age_max_ms), (3, 1, 800));
        s.validate().expect("valid ring settings");
    }

    #[test]
    fn the_visit_log_records_each_committed_visit_once_with_its_end_and_rotates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut monitor = RingMonitor::new(RingOptions::DEFAULT, Arc::new(Metrics::new())).with_visit_log(dir.path());
        monitor.observe(&Event::RingVisit { regenerated: false, epoch: 3, hop: 7 });
        assert!(read_visit_log(dir.path()).expect("read").is_empty(), "nothing before the commit");
        monitor.flush_visits();
        monitor.observe(&Event::RingVisitEnded { epoch: 3, hop: 7 });
        monitor.observe(&Event::RingVisit { regenerated: true, epoch: 4, hop: 0 });
        monitor.flush_visits();
        let visits = read_visit_log(dir.path()).expect("read");
        assert_eq!(visits.iter().map(|v| (v.epoch, v.hop)).collect::<Vec<_>>(), vec![(3, 7), (4, 0)]);
        assert!(visits[0].end_ms >= visits[0].start_ms && visits[0].end_ms > 0, "{visits:?}");
        assert_eq!(visits[1].end_ms, 0, "still open");
        // A full file is rotated: the log stays under twice the limit, the newest lines kept.
        std::fs::write(dir.path().join(VISIT_LOG), "1 0 1 2\n".repeat(VISIT_LOG_BYTES_MAX as usize / 8 + 1))
            .expect("fill");
        monitor.observe(&Event::RingVisitEnded { epoch: 4, hop: 0 });
        monitor.flush_visits();
        assert!(dir.path().join(format!("{VISIT_LOG}.1")).exists());
        let last = read_visit_log(dir.path()).expect("read").pop().expect("a visit");
        assert_eq!((last.epoch, last.hop), (4, 0));
        assert!(last.end_ms > 0);
    }

    /// Found by a 30-minute torture run (seed 43): a full disk cut a visit's end line, the next
    /// batch's line ran on from it, and the run-together line read as a second visit of the same
    /// position — a false `epoch_went_back`. Such a line is no record.
    #[test]
    fn a_line_torn_by_a_full_disk_is_not_read_as_a_visit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = "184 4 1796433484198 1796433484198\n184 7 1796433484206 0\n184 7 179643348192 1 1796433510853 0\n\
                   192 1 1796433510853 1796433510853\n";
        std::fs::write(dir.path().join(VISIT_LOG), log).expect("write");
        let visits = read_visit_log(dir.path()).expect("read");
        let positions: Vec<(u64, u64)> = visits.iter().map(|v| (v.epoch, v.hop)).collect();
        assert_eq!(positions, vec![(184, 4), (184, 7), (192, 1)]);
        assert_eq!(VisitRecord::parse("1 2 3"), None);
        assert_eq!(VisitRecord::parse("1 2 3 4 5"), None);
        assert_eq!(VisitRecord::parse("1 2 3 4"), Some(VisitRecord { epoch: 1, hop: 2, start_ms: 3, end_ms: 4 }));
    }
}
