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

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
            Event::RingVisit { regenerated } => {
                self.metrics.ring_visit(*regenerated);
                let now = Instant::now();
                self.recent_visits.push_back(now);
                while self.recent_visits.front().is_some_and(|t| now.duration_since(*t).as_secs() >= ROTATION_WINDOW_S)
                {
                    self.recent_visits.pop_front();
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
}
