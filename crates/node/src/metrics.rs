//! Prometheus metrics of one node. Each node has its own registry, so several nodes can live in
//! one test process.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
    pub outcome: &'static str,
}

/// A kind of what memory keeps of the finished past (`bank_remembered`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RememberedLabels {
    pub kind: &'static str,
}

/// Why the listener closed a connection at once, without serving it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RefusedReason {
    /// `Limits::connections_max` connections were already open.
    ListenerFull,
    /// `Limits::connections_per_address_max` were already open from the client's address.
    AddressFull,
}

/// Which timeout closed a connection.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ConnectionTimeout {
    /// The request head was not complete in `Limits::header_read_timeout_ms`.
    HeaderRead,
    /// No byte moved for `Limits::idle_timeout_ms`.
    Idle,
}

impl RefusedReason {
    fn label(self) -> &'static str {
        match self {
            RefusedReason::ListenerFull => "listener_full",
            RefusedReason::AddressFull => "address_full",
        }
    }
}

impl ConnectionTimeout {
    fn label(self) -> &'static str {
        match self {
            ConnectionTimeout::HeaderRead => "header_read",
            ConnectionTimeout::Idle => "idle",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimeoutLabels {
    timeout: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    batches: Counter,
    batch_commands: Histogram,
    commit_seconds: Histogram,
    fsync_seconds: Histogram,
    operations: Family<OperationLabels, Counter>,
    sessions: Gauge,
    idempotency_cached: Gauge,
    remembered: Family<RememberedLabels, Gauge>,
    idempotency_expired: Counter,
    sessions_expired: Counter,
    balance_checkpoint_rows: Counter,
    balance_checkpoint_seconds: Histogram,
    live_balances: Gauge,
    ring_visits: Counter,
    ring_passes: Counter,
    ring_regenerations: Counter,
    ring_stale_refused: Counter,
    ring_messages_dropped: Counter,
    key_lookup_misses: Counter,
    ring_token_wait_seconds: Histogram,
    ring_message_age_seconds: Histogram,
    ring_epoch: Gauge,
    ring_queue_len: Gauge,
    connections_open: Gauge,
    connections_refused: Family<RefusedLabels, Counter>,
    connections_timed_out: Family<TimeoutLabels, Counter>,
    accept_errors: Counter,
    peer_clock_offset_ms: Family<PeerLabels, Gauge>,
    peer_clock_disagrees: Family<PeerLabels, Gauge>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bank");
        let batches = Counter::default();
        registry.register("writer_batches", "Batches committed by the ledger writer", batches.clone());
        let batch_commands = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "writer_batch_commands",
            "Commands per committed batch (group commit)",
            batch_commands.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register("writer_batch_seconds", "Time to apply and durably commit one batch", commit_seconds.clone());
        let fsync_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "writer_commit_seconds",
            "Time of the COMMIT alone (the durable write: fsync of the WAL)",
            fsync_seconds.clone(),
        );
        let operations = Family::<OperationLabels, Counter>::default();
        registry.register("operations", "Customer operations by kind and outcome", operations.clone());
        let sessions = Gauge::default();
        registry.register("sessions", "Live sessions in the cache", sessions.clone());
        let idempotency_cached = Gauge::default();
        registry.register(
            "idempotency_cached",
            "Idempotency records in memory (bounded by idempotency_cache_max; older ones are read from disk)",
            idempotency_cached.clone(),
        );
        let remembered = Family::<RememberedLabels, Gauge>::default();
        registry.register(
            "remembered",
            "Finished decisions, settlements and received Pix legs kept in memory, by kind (each bounded \
             by decision_memory_max and the decision_memory_ms window; older ones are read from disk)",
            remembered.clone(),
        );
        let sessions_expired = Counter::default();
        registry.register(
            "sessions_expired",
            "Sessions deleted from disk after their lifetime",
            sessions_expired.clone(),
        );
        let idempotency_expired = Counter::default();
        registry.register(
            "idempotency_expired",
            "Idempotency records deleted from disk after their retention period",
            idempotency_expired.clone(),
        );
        let balance_checkpoint_rows = Counter::default();
        registry.register(
            "writer_balance_checkpoint_rows",
            "Balance rows copied by the writer's checkpoints (batches write no balance rows)",
            balance_checkpoint_rows.clone(),
        );
        let balance_checkpoint_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "writer_balance_checkpoint_seconds",
            "Time to copy the changed balances into their rows, per checkpoint (before its batch's commit)",
            balance_checkpoint_seconds.clone(),
        );
        let live_balances = Gauge::default();
        registry.register(
            "live_balances",
            "Accounts whose committed balance readers take from memory (bounded by the accounts)",
            live_balances.clone(),
        );
        let ring_visits = Counter::default();
        registry.register("ring_visits", "Visits of the token to this bank (one per rotation)", ring_visits.clone());
        let ring_passes = Counter::default();
        registry.register("ring_token_passes", "Visits this bank ended by passing the token on", ring_passes.clone());
        let ring_regenerations = Counter::default();
        registry.register(
            "ring_regenerations",
            "Tokens this bank created by winning an election after the first",
            ring_regenerations.clone(),
        );
        let ring_stale_refused = Counter::default();
        registry.register(
            "ring_stale_tokens_refused",
            "Tokens refused here as older than what this bank accepted or voted for",
            ring_stale_refused.clone(),
        );
        let ring_messages_dropped = Counter::default();
        registry.register(
            "ring_messages_dropped",
            "Ring messages dropped on arrival as older than the hop timeout allows",
            ring_messages_dropped.clone(),
        );
        let key_lookup_misses = Counter::default();
        registry.register(
            "key_lookup_misses",
            "Lookups of Pix keys that no account has (a walk of the directory misses almost always)",
            key_lookup_misses.clone(),
        );
        let ring_token_wait_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "ring_token_wait_seconds",
            "Time a cross-bank transaction waited for the token before it began",
            ring_token_wait_seconds.clone(),
        );
        let ring_message_age_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 12));
        registry.register(
            "ring_message_age_seconds",
            "Age of ring messages when they reach the ring (sender's clock to this bank's): how close \
             they come to the hop timeout the ring relies on",
            ring_message_age_seconds.clone(),
        );
        let ring_epoch = Gauge::default();
        registry.register("ring_epoch", "The highest token epoch this bank knows", ring_epoch.clone());
        let ring_queue_len = Gauge::default();
        registry.register("ring_queue_len", "Cross-bank transactions waiting for the token", ring_queue_len.clone());
        let connections_open = Gauge::default();
        registry.register("connections_open", "HTTP connections open on the listener", connections_open.clone());
        let connections_refused = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections closed at once because a connection limit was reached, by limit",
            connections_refused.clone(),
        );
        let connections_timed_out = Family::<TimeoutLabels, Counter>::default();
        registry.register(
            "connections_timed_out",
            "Connections closed by the header-read or the idle timeout",
            connections_timed_out.clone(),
        );
        let accept_errors = Counter::default();
        registry.register(
            "accept_errors",
            "Failed accepts the listener backed off from (e.g. out of file descriptors)",
            accept_errors.clone(),
        );
        let peer_clock_offset_ms = Family::<PeerLabels, Gauge>::default();
        registry.register(
            "peer_clock_offset_ms",
            "Each peer's clock minus this bank's, from its newest answer (positive: ahead)",
            peer_clock_offset_ms.clone(),
        );
        let peer_clock_disagrees = Family::<PeerLabels, Gauge>::default();
        registry.register(
            "peer_clock_disagrees",
            "1 while a peer's clock is surely further from this bank's than the consortium allows \
             (cross-bank work with it is refused)",
            peer_clock_disagrees.clone(),
        );
        Metrics {
            registry,
            batches,
            batch_commands,
            commit_seconds,
            fsync_seconds,
            operations,
            sessions,
            idempotency_cached,
            remembered,
            idempotency_expired,
            sessions_expired,
            balance_checkpoint_rows,
            balance_checkpoint_seconds,
            live_balances,
            ring_visits,
            ring_passes,
            ring_regenerations,
            ring_stale_refused,
            ring_messages_dropped,
            key_lookup_misses,
            ring_token_wait_seconds,
            ring_message_age_seconds,
            ring_epoch,
            ring_queue_len,
            connections_open,
            connections_refused,
            connections_timed_out,
            accept_errors,
            peer_clock_offset_ms,
            peer_clock_disagrees,
        }
    }

    /// A peer's clock as last read (`peer::clock`).
    pub fn set_peer_clock(&self, peer: u32, offset_ms: i64, disagrees: bool) {
        self.peer_clock_offset_ms.get_or_create(&PeerLabels { peer }).set(offset_ms);
        self.peer_clock_disagrees.get_or_create(&PeerLabels { peer }).set(i64::from(disagrees));
    }

    pub fn observe_commit(&self, elapsed: Duration) {
        self.fsync_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn observe_batch(&self, commands: usize, elapsed: Duration) {
        self.batches.inc();
        self.batch_commands.observe(commands as f64);
        self.commit_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn operation(&self, operation: &'static str, outcome: &'static str) {
        self.operations.get_or_create(&OperationLabels { operation, outcome }).inc();
    }

    pub fn set_idempotency_cached(&self, n: usize) {
        self.idempotency_cached.set(n as i64);
    }

    /// What memory keeps of the finished past: coordinated decisions, participants' settlements,
    /// received Pix legs.
    pub fn set_remembered(&self, decisions: usize, settlements: usize, pix_legs: usize) {
        for (kind, n) in [("decisions", decisions), ("settlements", settlements), ("pix_legs", pix_legs)] {
            self.remembered.get_or_create(&RememberedLabels { kind }).set(n as i64);
        }
    }

    pub fn observe_balance_checkpoint(&self, rows: usize, elapsed: Duration) {
        self.balance_checkpoint_rows.inc_by(rows as u64);
        self.balance_checkpoint_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn set_live_balances(&self, n: usize) {
        self.live_balances.set(n as i64);
    }

    pub fn idempotency_expired(&self, n: usize) {
        self.idempotency_expired.inc_by(n as u64);
    }

    pub fn sessions_expired(&self, n: usize) {
        self.sessions_expired.inc_by(n as u64);
    }

    pub fn set_sessions(&self, n: usize) {
        self.sessions.set(n as i64);
    }

    /// The token visited this bank; `regenerated` when this bank created it by election.
    pub fn ring_visit(&self, regenerated: bool) {
        self.ring_visits.inc();
        if regenerated {
            self.ring_regenerations.inc();
        }
    }

    pub fn ring_pass(&self) {
        self.ring_passes.inc();
    }

    pub fn ring_refused_stale(&self) {
        self.ring_stale_refused.inc();
    }

    pub fn observe_ring_message_age(&self, seconds: f64) {
        self.ring_message_age_seconds.observe(seconds.max(0.0));
    }

    pub fn key_lookup_missed(&self) {
        self.key_lookup_misses.inc();
    }

    pub fn ring_message_dropped(&self) {
        self.ring_messages_dropped.inc();
    }

    pub fn observe_token_wait(&self, seconds: f64) {
        self.ring_token_wait_seconds.observe(seconds);
    }

    pub fn set_ring(&self, epoch: u64, queue_len: usize) {
        self.ring_epoch.set(epoch as i64);
        self.ring_queue_len.set(queue_len as i64);
    }

    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    pub fn connection_refused(&self, reason: RefusedReason) {
        self.connections_refused.get_or_create(&RefusedLabels { reason: reason.label() }).inc();
    }

    pub fn connection_timed_out(&self, timeout: ConnectionTimeout) {
        self.connections_timed_out.get_or_create(&TimeoutLabels { timeout: timeout.label() }).inc();
    }

    pub fn accept_failed(&self) {
        self.accept_errors.inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
