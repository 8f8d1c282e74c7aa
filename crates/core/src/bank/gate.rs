//! The token ring's gate on cross-bank work: this bank's [`RingNode`], the queue of planned
//! transactions waiting for the token, and the visit under way. See the [module essay](super).

use std::collections::{BTreeSet, VecDeque};

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

/// The work of the current visit.
#[derive(Debug, Clone)]
struct Visit {
    budget_left: u32,
    started: u32,
    undecided: BTreeSet<TransferId>,
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
        visit.undecided.extend(taken.iter().map(|q| q.tx));
        taken
    }

    /// A transaction this bank coordinates is decided.
    pub fn decided(&mut self, tx: &TransferId) {
        if let Some(visit) = &mut self.visit {
            visit.undecided.remove(tx);
        }
    }

    /// Tells the ring how the visit is going: done once every transaction begun in it is decided,
    /// or nothing to do yet.
    pub fn drive(&mut self, now: Tick) -> Vec<RingOutput> {
        match &self.visit {
            Some(v) if v.started > 0 && v.undecided.is_empty() => {
                let started = v.started;
                self.node.batch_done(now, started)
            }
            Some(v) if v.started == 0 && self.queue.is_empty() => self.node.batch_done(now, 0),
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
                    self.visit = Some(Visit { budget_left: *budget_ops, started: 0, undecided: BTreeSet::new() });
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
