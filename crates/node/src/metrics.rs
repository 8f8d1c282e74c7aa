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

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    batches: Counter,
    batch_commands: Histogram,
    commit_seconds: Histogram,
    fsync_seconds: Histogram,
    operations: Family<OperationLabels, Counter>,
    sessions: Gauge,
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
        Metrics { registry, batches, batch_commands, commit_seconds, fsync_seconds, operations, sessions }
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

    pub fn set_sessions(&self, n: usize) {
        self.sessions.set(n as i64);
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
