//! Failpoints: a test-only way to crash the node at a named step of a protocol.
//!
//! Cluster tests start a `bank node` with `BANK_FAILPOINT=<name>[,<name>…]`; when the node
//! reaches that step it aborts the process on the spot (as `kill -9` would, but at an exact
//! point instead of by timing luck). Unset — always, outside tests — a check is one load of a
//! cached empty list.
//!
//! Steps (each hit right after the writer's batch is durable, before any message of it leaves):
//! - `coordinator_prepared`: the coordinator recorded a new transaction as preparing;
//! - `participant_voted_yes`: a participant's holds are durable, its yes vote not yet sent;
//! - `coordinator_decided_commit`: a commit decision is durable, not yet sent;
//! - `ring_batch_begun`: this bank, holding the token, began a batch of queued cross-bank
//!   transactions (recorded as preparing), none of their prepares sent yet.

use std::sync::OnceLock;

fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("BANK_FAILPOINT")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    })
}

/// Crashes the process if `name` is armed.
pub fn hit(name: &str) {
    if armed().iter().any(|a| a == name) {
        tracing::error!(failpoint = name, "failpoint reached: aborting the process");
        eprintln!("failpoint {name} reached: aborting");
        std::process::abort();
    }
}
