//! The token ring's gate on cross-bank work: this bank's [`RingNode`], the queue of planned
//! transactions waiting for the token, and the visit under way. See the [module essay](super).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::ids::{BankId, TimestampMs, TransferId};
use crate::ledger::LegsByBank;
use crate::ring::{RingConfig, RingDurable, RingMessage, RingNode, RingOutput, RingSettings, RingStatus, Tick};

/// A cross-bank transaction planned here, waiting for the token to begin. Durable: queued and
/// dequeued in the same batch as the work that queues or begins it, so a restart neither loses
/// nor double-begins it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedTx {
    pub tx: TransferId,
    pub legs: LegsByBank,
    pub queued_at: TimestampMs,
}

/// The gate's settings (the ring's own, in ticks, plus the queue's bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateSettings {
    /// The ring's settings. Every bank of a consortium must use the same ones.
    pub ring: RingSettings,
    /// Cross-bank transactions waiting for the token; more are refused (`overloaded`).
    pub queue_len_max: usize,
    /// Longest wait for the token; then the transaction fails, having moved nothing.
    pub queue_wait_max_ms: i64,
    /// A ring message older than this (by its sender's clock) is dropped on arrival: the hop
    /// timeout less the clock skew allowed between banks (the ring's assumption A1).
    pub message_age_max_ms: i64,
}

/// The work of the current visit: how many more transactions it may begin, how many it began.
/// (What it began is not followed here: the visit ends once its batch is *begun*, and the
/// transactions finish under the two-phase commit's own timers, with no token needed.)
#[derive(Debug, Clone)]
struct Visit {
    budget_left: u32,
    started: u32,
}

/// What a ring message's arrival did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// Fed to the ring; these are its outputs.
    Stepped(Vec<RingOutput>),
    /// Older than the ring may rely on (or dated too far ahead): dropped.
    Dropped,
}

/// The gate: this bank's ring machine, its queue, and the visit under way.
#[derive(Debug, Clone)]
pub struct Gate {
    node: RingNode,
    settings: GateSettings,
    queue: VecDeque<QueuedTx>,
    visit: Option<Visit>,
}

impl Gate {
    /// The gate of bank `me` among `members`, from the ring's durable state and the queue as
    /// storage last had them. `now` is the tick the recovery happens at.
    pub fn recover(
        me: BankId,
        members: impl IntoIterator<Item = BankId>,
        settings: GateSettings,
        durable: RingDurable,
        queue: Vec<QueuedTx>,
        now: Tick,
    ) -> Result<Self, Error> {
        let config = RingConfig::new(me, members, settings.ring)?;
        Ok(Gate { node: RingNode::recover(config, durable, now), settings, queue: queue.into(), visit: None })
    }

    pub fn settings(&self) -> &GateSettings {
        &self.settings
    }

    /// The ring as this bank sees it at `now`, and how many transactions wait for the token.
    pub fn status(&self, now: Tick) -> (RingStatus, usize) {
        (self.node.status(now), self.queue.len())
    }

    /// Whether this bank may start cross-bank work at `now`: a visit is under way and its lease
    /// has not ended.
    pub fn may_start(&self, now: Tick) -> bool {
        self.visit.is_some() && self.node.work_permit(now).is_some()
    }

    /// Transactions waiting for the token.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Whether another transaction may wait in the queue.
    pub fn has_room(&self) -> bool {
        self.queue.len() < self.settings.queue_len_max
    }

    /// Queues a planned transaction (the caller persists it in the same batch).
    pub fn enqueue(&mut self, queued: QueuedTx) {
        self.queue.push_back(queued);
    }

    /// Takes the queued transactions that waited too long: they fail, never begun.
    pub fn expired(&mut self, now: TimestampMs) -> Vec<QueuedTx> {
        let max = self.settings.queue_wait_max_ms;
        let mut out = Vec::new();
        while self.queue.front().is_some_and(|q| now.0 - q.queued_at.0 > max) {
            out.extend(self.queue.pop_front());
        }
        out
    }

    /// Takes the queued transactions this bank may begin now: within the lease and the visit's
    /// budget. The caller begins every one of them in this batch.
    pub fn startable(&mut self, now: Tick) -> Vec<QueuedTx> {
        let (Some(visit), Some(_permit)) = (&mut self.visit, self.node.work_permit(now)) else {
            return Vec::new();
        };
        let n = (visit.budget_left as usize).min(self.queue.len());
        let taken: Vec<QueuedTx> = self.queue.drain(..n).collect();
        visit.budget_left -= n as u32;
        visit.started += n as u32;
        taken
    }

    /// Tells the ring how the visit is going, once the caller has begun what [`Gate::startable`]
    /// gave it (in the same batch): done as soon as the visit began anything — its batch is
    /// begun, its coordinator records and prepares commit with this batch and leave with it, and
    /// the token may move on while they are decided — or nothing to do yet.
    ///
    /// Why the token need not wait for decisions (DESIGN.md §5): the ring orders the *start* of
    /// cross-bank work. Everything after the start — votes, the decision, retries, expiry — is
    /// the two-phase commit's, which never asks for the token, and money never relied on the
    /// ring (holds prevent overdraft and double spend). The visit still lies within the ring's
    /// `StartWork`..`StopWork`, so two banks never *start* work at once.
    pub fn drive(&mut self, now: Tick) -> Vec<RingOutput> {
        match &self.visit {
            Some(v) if v.started > 0 => {
                let started = v.started;
                self.node.batch_done(now, started)
            }
            Some(_) if self.queue.is_empty() => self.node.batch_done(now, 0),
            _ => Vec::new(),
        }
    }

    /// Runs the ring's timers.
    pub fn tick(&mut self, now: Tick) -> Vec<RingOutput> {
        self.node.tick(now)
    }

    /// A ring message from bank `from`, produced at `sent_at` by its clock, arriving at `wall`
    /// (this bank's clock) and tick `now`.
    pub fn step(
        &mut self,
        from: BankId,
        sent_at: TimestampMs,
        msg: RingMessage,
        wall: TimestampMs,
        now: Tick,
    ) -> Arrival {
        let age_ms = wall.0 - sent_at.0;
        if age_ms.abs() > self.settings.message_age_max_ms {
            return Arrival::Dropped;
        }
        Arrival::Stepped(self.node.step(from, msg, now))
    }

    /// Takes note of the ring's outputs before they are carried out: a visit begins or ends.
    pub fn observe(&mut self, outputs: &[RingOutput]) {
        for output in outputs {
            match output {
                RingOutput::StartWork { budget_ops, .. } => {
                    self.visit = Some(Visit { budget_left: *budget_ops, started: 0 });
                }
                RingOutput::StopWork { .. } => self.visit = None,
                RingOutput::Send { .. } | RingOutput::Persist(_) => {}
            }
        }
    }

    /// Whether the ring has other members (a ring of one passes the token to itself).
    pub fn has_peers(&self) -> bool {
        self.node.config().members().len() > 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::Epoch;

    const A: BankId = BankId(1);
    const B: BankId = BankId(2);

    fn settings(ops_per_visit: u32) -> GateSettings {
        GateSettings {
            ring: RingSettings { ops_per_visit, ..RingSettings::DEFAULT },
            queue_len_max: 100,
            queue_wait_max_ms: 10_000,
            message_age_max_ms: 100,
        }
    }

    fn gate(me: BankId, ops_per_visit: u32) -> Gate {
        Gate::recover(me, [A, B], settings(ops_per_visit), RingDurable::default(), Vec::new(), Tick(0)).expect("gate")
    }

    fn queued(n: u64) -> QueuedTx {
        QueuedTx { tx: TransferId::first_at(1_000 + n as i64), legs: LegsByBank::default(), queued_at: TimestampMs(0) }
    }

    /// Carries `outputs` of bank `from` out: the gate observes them, messages reach the other
    /// gate (whose outputs are carried out in turn). Returns the tokens `from` passed.
    fn carry(gates: &mut [Gate; 2], from: BankId, outputs: Vec<RingOutput>, now: Tick) -> Vec<RingMessage> {
        let i = (from.0 - 1) as usize;
        gates[i].observe(&outputs);
        let mut passed = Vec::new();
        for output in outputs {
            if let RingOutput::Send { to, msg } = output {
                if matches!(msg, RingMessage::Token(_)) {
                    passed.push(msg.clone());
                }
                let j = (to.0 - 1) as usize;
                let wall = TimestampMs(now.0 as i64 * 10);
                if let Arrival::Stepped(out) = gates[j].step(from, wall, msg, wall, now) {
                    carry(gates, to, out, now);
                }
            }
        }
        passed
    }

    /// Runs both rings' timers until bank A holds the token (genesis: A is the lowest id).
    fn a_holds_the_token(ops_per_visit: u32) -> ([Gate; 2], Tick) {
        let mut gates = [gate(A, ops_per_visit), gate(B, ops_per_visit)];
        for t in 0..1_000 {
            let now = Tick(t);
            for id in [A, B] {
                let out = gates[(id.0 - 1) as usize].tick(now);
                carry(&mut gates, id, out, now);
            }
            if gates[0].may_start(now) {
                return (gates, now);
            }
        }
        panic!("bank A never held the token");
    }

    /// The token moves on as soon as the visit's batch is begun, while its transactions are still
    /// undecided (the old rule kept it until every one was decided).
    #[test]
    fn the_token_leaves_once_the_batch_is_begun_not_decided() {
        let (mut gates, now) = a_holds_the_token(64);
        for n in 0..3 {
            gates[0].enqueue(queued(n));
        }
        let begun = gates[0].startable(now);
        assert_eq!(begun.len(), 3);
        // Nothing of the batch is decided: no `decided` hook exists any more.
        let out = gates[0].drive(now);
        assert!(out.iter().any(|o| matches!(o, RingOutput::StopWork { .. })), "{out:?}");
        let passed = carry(&mut gates, A, out, now);
        assert!(matches!(passed.as_slice(), [RingMessage::Token(t)] if t.epoch == Epoch::GENESIS), "{passed:?}");
        assert!(!gates[0].may_start(now), "bank A still may start work");
        assert!(gates[1].may_start(now), "bank B did not take the token");
    }

    /// The ops-per-token budget still bounds what one visit starts: with 2 per visit and 5
    /// queued, the visit begins 2, passes the token, and the other 3 wait for the next visit.
    #[test]
    fn the_ops_per_token_budget_bounds_what_one_visit_begins() {
        let (mut gates, now) = a_holds_the_token(2);
        for n in 0..5 {
            gates[0].enqueue(queued(n));
        }
        assert_eq!(gates[0].startable(now).len(), 2);
        assert!(gates[0].startable(now).is_empty(), "the budget is spent");
        let out = gates[0].drive(now);
        carry(&mut gates, A, out, now);
        assert!(!gates[0].may_start(now));
        assert!(gates[0].startable(now).is_empty());
        assert_eq!(gates[0].queue_len(), 3);
    }

    /// A visit with nothing to do passes at once while the token has not gone a whole rotation
    /// without work; after that it keeps the token for the idle pause, so an idle ring does not
    /// spin; work queued meanwhile is begun under it, and then the token moves on.
    #[test]
    fn an_idle_visit_passes_at_once_until_a_whole_rotation_was_idle() {
        let (mut gates, now) = a_holds_the_token(64);
        let out = gates[0].drive(now);
        assert_eq!(carry(&mut gates, A, out, now).len(), 1, "A (first idle visit) kept the token");
        let out = gates[1].drive(now);
        assert_eq!(carry(&mut gates, B, out, now).len(), 1, "B (second idle visit) kept the token");
        assert!(gates[0].may_start(now));
        let out = gates[0].drive(now);
        assert!(carry(&mut gates, A, out, now).is_empty(), "an idle ring's holder passed at once");
        gates[0].enqueue(queued(0));
        assert_eq!(gates[0].startable(now).len(), 1);
        let out = gates[0].drive(now);
        assert_eq!(carry(&mut gates, A, out, now).len(), 1, "the token did not move on");
    }
}
