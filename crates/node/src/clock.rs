//! This bank's wall clock: every wall-clock time the node uses — ledger times, signature
//! timestamps, ring message stamps — is read here.
//!
//! One test-only setting shifts it: `bank node --clock-offset-ms` (hidden), so a test or the
//! torture nemesis can run a bank whose clock disagrees with its peers' without touching the
//! machine's clock. The monotonic clock (`Instant`, used for every timeout) is never shifted, as
//! when a real machine's wall clock is wrong.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static TEST_OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Shifts this process's wall clock by `offset_ms` (tests and fault injection only).
pub fn set_test_offset_ms(offset_ms: i64) {
    TEST_OFFSET_MS.store(offset_ms, Ordering::Relaxed);
}

/// The shift set by [`set_test_offset_ms`] (0 normally).
pub fn test_offset_ms() -> i64 {
    TEST_OFFSET_MS.load(Ordering::Relaxed)
}

/// Milliseconds since the Unix epoch by this bank's wall clock.
pub fn wall_ms() -> i64 {
    let system = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    system + test_offset_ms()
}
