//! What this bank knows of its peers' clocks, read from their answers.
//!
//! Every inter-bank answer (refusals included) carries the answering bank's wall clock in the
//! [`CLOCK_HEADER`]. A request sent at `t0` and answered at `t1` (this bank's clock) with the
//! peer's time `p` tells `offset = p − (t0 + t1) / 2`, give or take `(t1 − t0) / 2`: the peer read
//! its clock at some instant of the round trip. A peer *disagrees* when even the most favourable
//! reading of that interval leaves it further than the allowed skew from this bank's clock —
//! so a slow network widens the doubt and never raises a false alarm.
//!
//! Why it matters: signatures and ring messages carry their sender's time, and a bank refuses
//! those too far from its own clock. Two banks whose clocks disagree therefore cannot finish a
//! cross-bank transaction; knowing it, a bank refuses such work at once with a clear reason
//! instead of leaving the customer's transfer pending until its deadline, and says so on its
//! status page, in `/metrics` and in its log.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bank_core::ids::BankId;

/// The response header with the answering bank's wall clock (Unix ms).
pub const CLOCK_HEADER: &str = "x-bank-clock-ms";

/// The newest reading of one peer's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// The peer's clock minus this bank's (positive: the peer is ahead), in ms.
    pub offset_ms: i64,
    /// Half the round trip the reading was taken in: the offset is right within this.
    pub uncertainty_ms: i64,
    /// When it was taken (this bank's clock, Unix ms).
    pub at_ms: i64,
}

impl Reading {
    /// Whether the clocks are surely further apart than `allowed_ms`.
    pub fn disagrees(&self, allowed_ms: i64) -> bool {
        self.offset_ms.abs() - self.uncertainty_ms > allowed_ms
    }
}

/// A change of a peer's agreement, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Disagrees(Reading),
    AgreesAgain(Reading),
}

/// The newest clock reading of each peer (one entry per member: bounded by the consortium file).
#[derive(Debug)]
pub struct ClockWatch {
    allowed_ms: i64,
    readings: Mutex<BTreeMap<BankId, Reading>>,
    /// A re-reading of disagreeing peers is under way (one at a time).
    rechecking: AtomicBool,
}

impl ClockWatch {
    /// A watch that calls a peer's clock wrong beyond `allowed_ms` (the consortium's clock skew).
    pub fn new(allowed_ms: i64) -> ClockWatch {
        ClockWatch { allowed_ms, readings: Mutex::new(BTreeMap::new()), rechecking: AtomicBool::new(false) }
    }

    /// Claims the one re-reading of disagreeing peers; false if one is under way.
    pub fn begin_recheck(&self) -> bool {
        !self.rechecking.swap(true, Ordering::AcqRel)
    }

    pub fn end_recheck(&self) {
        self.rechecking.store(false, Ordering::Release);
    }

    pub fn allowed_ms(&self) -> i64 {
        self.allowed_ms
    }

    /// Records an answer from `peer` to a request sent at `sent_ms` and answered at
    /// `received_ms`, carrying the peer's clock `peer_ms`; returns whether the peer's agreement
    /// changed.
    pub fn record(&self, peer: BankId, sent_ms: i64, received_ms: i64, peer_ms: i64) -> Option<Change> {
        let round_trip = (received_ms - sent_ms).max(0);
        let reading = Reading {
            offset_ms: peer_ms - (sent_ms + round_trip / 2),
            uncertainty_ms: round_trip / 2 + 1,
            at_ms: received_ms,
        };
        let mut readings = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        let before = readings.insert(peer, reading).is_some_and(|r| r.disagrees(self.allowed_ms));
        match (before, reading.disagrees(self.allowed_ms)) {
            (false, true) => Some(Change::Disagrees(reading)),
            (true, false) => Some(Change::AgreesAgain(reading)),
            _ => None,
        }
    }

    /// The newest reading of `peer`, if any.
    pub fn reading(&self, peer: BankId) -> Option<Reading> {
        self.readings.lock().unwrap_or_else(|p| p.into_inner()).get(&peer).copied()
    }

    /// The reading of `peer` when its clock disagrees with this bank's.
    pub fn disagreement(&self, peer: BankId) -> Option<Reading> {
        self.reading(peer).filter(|r| r.disagrees(self.allowed_ms))
    }

    /// Whether any peer's clock disagrees (cheap: checked before every cross-bank transfer).
    pub fn any_disagreement(&self) -> bool {
        self.readings.lock().unwrap_or_else(|p| p.into_inner()).values().any(|r| r.disagrees(self.allowed_ms))
    }

    /// Every peer's newest reading.
    pub fn readings(&self) -> Vec<(BankId, Reading)> {
        self.readings.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(b, r)| (*b, *r)).collect()
    }
}

/// The sentence a refused transfer and the log give.
pub fn describe(peer: BankId, reading: &Reading, allowed_ms: i64) -> String {
    let direction = if reading.offset_ms > 0 { "ahead of" } else { "behind" };
    format!(
        "bank {peer}'s clock is {} ms {direction} this bank's (±{} ms), more than the {allowed_ms} ms the consortium \
         allows; cross-bank work with it is refused until the clocks agree (check NTP on both machines)",
        reading.offset_ms.abs(),
        reading.uncertainty_ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_beyond_the_allowed_skew_plus_the_doubt_is_a_disagreement_and_its_end_is_seen() {
        let watch = ClockWatch::new(50);
        let peer = BankId(3);
        // Sent at 1,000, answered at 1,010: the peer read its clock at 1,005 ± 6.
        assert_eq!(watch.record(peer, 1_000, 1_010, 1_030), None, "25 ms ahead: within the skew");
        assert!(!watch.any_disagreement());
        let change = watch.record(peer, 2_000, 2_010, 5_005);
        assert!(matches!(change, Some(Change::Disagrees(r)) if r.offset_ms == 3_000), "{change:?}");
        assert!(watch.any_disagreement());
        assert_eq!(watch.disagreement(peer).map(|r| r.offset_ms), Some(3_000));
        assert_eq!(watch.record(peer, 3_000, 3_010, 6_005), None, "still ahead: no new change");
        assert!(matches!(watch.record(peer, 4_000, 4_010, 4_005), Some(Change::AgreesAgain(_))));
        assert_eq!(watch.disagreement(peer), None);
        assert!(watch.readings().len() == 1);
    }

    #[test]
    fn a_slow_round_trip_widens_the_doubt_instead_of_raising_a_false_alarm() {
        let watch = ClockWatch::new(50);
        // A 2 s round trip: the peer's answer 900 ms from the midpoint may be the network's doing.
        assert_eq!(watch.record(BankId(2), 0, 2_000, 1_900), None);
        assert_eq!(watch.disagreement(BankId(2)), None);
        let reading = watch.reading(BankId(2)).expect("recorded");
        assert_eq!((reading.offset_ms, reading.uncertainty_ms), (900, 1_001));
        // Behind by far more than the round trip explains.
        assert!(matches!(watch.record(BankId(2), 10_000, 10_100, 5_000), Some(Change::Disagrees(_))));
        let text = describe(BankId(2), &watch.reading(BankId(2)).expect("recorded"), 50);
        assert!(text.contains("bank 2's clock is 5050 ms behind"), "{text}");
    }
}
