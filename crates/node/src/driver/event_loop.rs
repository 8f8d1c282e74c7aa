//! The driver's one task: a `select!` loop over the stop signal, the completions of the work it
//! started, the inbox (inbound peer batches and outputs to carry out), and the two tick
//! intervals. The loop itself never awaits a writer command or a peer: it starts them as tasks in
//! its own [`JoinSet`] and handles their results as they complete, so a slow peer or a busy
//! writer never holds up the rest. Dropping the loop aborts every task it owns.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bank_core::Error;
use bank_core::ErrorCode;
use bank_core::ids::{BankId, TimestampMs};
use bank_core::ring::RingMessage;
use bank_core::twopc::Message;
use bank_core::twopc::Vote;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{Interval, MissedTickBehavior};

use super::waiters::{Progress, Reach, Shared};
use crate::peer::client::PeerClient;
use crate::peer::{
    BATCH_MESSAGES_MAX, Envelope, MESSAGES_PATH, OUTBOX_LEN_MAX, RING_BATCH_MAX, RING_OUTBOX_LEN_MAX, RING_PATH,
    RingEnvelope, StampedRingMessage,
};
use crate::storage::writer::{ProtocolOutput, WriterHandle};

/// What handlers hand the loop.
#[derive(Debug)]
pub enum Inbound {
    /// Two-phase commit messages a peer sent; the reply carries this bank's answers to it.
    Messages { from: BankId, messages: Vec<Message>, reply: oneshot::Sender<Result<Vec<Message>, Error>> },
    /// Token-ring messages a peer sent; the reply carries this bank's ring answers to it.
    Ring {
        from: BankId,
        messages: Vec<(TimestampMs, RingMessage)>,
        reply: oneshot::Sender<Result<Vec<StampedRingMessage>, Error>>,
    },
    /// Messages for peers that a customer's operation produced.
    Outputs(Vec<ProtocolOutput>),
}

/// The two ways to a peer; each has at most one request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LaneKind {
    TwoPhaseCommit,
    Ring,
}

/// Which timer fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TickKind {
    Protocol,
    Ring,
}

/// A finished piece of work the loop started.
#[derive(Debug)]
enum Done {
    Tick(TickKind, Result<Vec<ProtocolOutput>, Error>),
    /// An inbound batch was delivered (its answer already sent); these outputs remain.
    Delivered(Vec<ProtocolOutput>),
    /// A request to `peer` on `lane` ended; what its answers produced.
    Exchanged {
        peer: BankId,
        lane: LaneKind,
        reach: Reach,
        outputs: Vec<ProtocolOutput>,
    },
}

/// A bounded queue of messages for one peer, and whether a request is in flight.
#[derive(Debug)]
struct Lane<T> {
    queue: VecDeque<T>,
    busy: bool,
    len_max: usize,
}

impl<T> Lane<T> {
    fn new(len_max: usize) -> Self {
        Lane { queue: VecDeque::new(), busy: false, len_max }
    }

    /// Queues `item`; hands it back when the queue is full.
    fn push(&mut self, item: T) -> Result<(), T> {
        if self.queue.len() >= self.len_max {
            return Err(item);
        }
        self.queue.push_back(item);
        Ok(())
    }

    /// The next batch to send (up to `batch_max`), unless a request is in flight or nothing waits.
    fn take_batch(&mut self, batch_max: usize) -> Option<Vec<T>> {
        if self.busy || self.queue.is_empty() {
            return None;
        }
        self.busy = true;
        let len = self.queue.len().min(batch_max);
        Some(self.queue.drain(..len).collect())
    }
}

/// The two lanes to one peer.
#[derive(Debug)]
struct Outbox {
    messages: Lane<Message>,
    ring: Lane<(TimestampMs, RingMessage)>,
}

/// Everything the loop owns.
pub struct EventLoop {
    pub self_id: BankId,
    pub writer: WriterHandle,
    pub client: Option<PeerClient>,
    pub shared: Arc<Shared>,
    outboxes: BTreeMap<BankId, Outbox>,
    tasks: JoinSet<Done>,
    /// Whether a tick's writer command is still running (a late tick is skipped, not stacked).
    ticking: [bool; 2],
}

impl EventLoop {
    pub fn new(
        self_id: BankId,
        writer: WriterHandle,
        client: Option<PeerClient>,
        members: Vec<BankId>,
        shared: Arc<Shared>,
    ) -> Self {
        let outboxes = members
            .into_iter()
            .filter(|&m| m != self_id)
            .map(|peer| {
                let outbox = Outbox { messages: Lane::new(OUTBOX_LEN_MAX), ring: Lane::new(RING_OUTBOX_LEN_MAX) };
                (peer, outbox)
            })
            .collect();
        EventLoop { self_id, writer, client, shared, outboxes, tasks: JoinSet::new(), ticking: [false; 2] }
    }

    /// Runs until `stop` fires (or its sender is dropped) or every handle is gone; then drops
    /// every task it started.
    pub async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Inbound>,
        mut stop: oneshot::Receiver<()>,
        tick_ms: u64,
        ring_tick_ms: Option<u64>,
    ) {
        let mut protocol_ticks = interval_of(tick_ms);
        let mut ring_ticks = ring_tick_ms.map(interval_of);
        loop {
            tokio::select! {
                // In this order: a stop wins; timers are never starved by a busy inbox; work in
                // flight completes (freeing its lane) before new work is taken in.
                biased;
                _ = &mut stop => break,
                _ = protocol_ticks.tick() => self.tick(TickKind::Protocol),
                _ = next_tick(&mut ring_ticks) => self.tick(TickKind::Ring),
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => match done {
                    Ok(done) => self.completed(done),
                    Err(e) if e.is_panic() => tracing::error!(error = %e, "a driver task panicked"),
                    Err(_) => {}
                },
                inbound = inbox.recv() => match inbound {
                    Some(inbound) => self.inbound(inbound),
                    None => break,
                },
            }
            self.pump();
        }
        self.tasks.shutdown().await;
        tracing::debug!("driver stopped");
    }

    fn completed(&mut self, done: Done) {
        match done {
            Done::Tick(kind, result) => {
                self.ticking[kind as usize] = false;
                match result {
                    Ok(outputs) => self.route(outputs),
                    Err(e) => tracing::debug!(error = %e, "{kind:?} tick skipped"),
                }
            }
            Done::Delivered(outputs) => self.route(outputs),
            Done::Exchanged { peer, lane, reach, outputs } => {
                self.shared.saw(peer, reach);
                if let Some(outbox) = self.outboxes.get_mut(&peer) {
                    match lane {
                        LaneKind::TwoPhaseCommit => outbox.messages.busy = false,
                        LaneKind::Ring => outbox.ring.busy = false,
                    }
                }
                self.route(outputs);
            }
        }
    }

    fn tick(&mut self, kind: TickKind) {
        if std::mem::replace(&mut self.ticking[kind as usize], true) {
            return;
        }
        let writer = self.writer.clone();
        self.tasks.spawn(async move {
            let result = match kind {
                TickKind::Protocol => writer.protocol_tick().await,
                TickKind::Ring => writer.ring_tick().await,
            };
            Done::Tick(kind, result)
        });
    }

    /// Feeds a peer's batch to the writer in a task of its own; the answers addressed to the
    /// sender go straight back to its handler, the rest come back to the loop.
    fn inbound(&mut self, inbound: Inbound) {
        let writer = self.writer.clone();
        match inbound {
            Inbound::Outputs(outputs) => self.route(outputs),
            Inbound::Messages { from, messages, reply } => {
                self.shared.saw(from, Reach::Answered);
                self.tasks.spawn(async move {
                    let delivered = writer.protocol_deliver(from, messages).await;
                    let (back, rest) = split_answers(delivered, |output| match output {
                        ProtocolOutput::Send { to, msg } if to == from => Sorted::Back(msg),
                        other => Sorted::Rest(other),
                    });
                    let _ = reply.send(back);
                    Done::Delivered(rest)
                });
            }
            Inbound::Ring { from, messages, reply } => {
                self.shared.saw(from, Reach::Answered);
                self.tasks.spawn(async move {
                    let delivered = writer.ring_deliver(from, messages).await;
                    let (back, rest) = split_answers(delivered, |output| match output {
                        ProtocolOutput::Ring { to, sent_at, msg } if to == from => {
                            Sorted::Back(StampedRingMessage { sent_at_ms: sent_at.0, message: msg })
                        }
                        other => Sorted::Rest(other),
                    });
                    let _ = reply.send(back);
                    Done::Delivered(rest)
                });
            }
        }
    }

    /// Queues what goes to peers and wakes waiters. Every message this bank sends itself was
    /// already delivered by the writer within its batch (`loopback`), so none reaches here.
    fn route(&mut self, outputs: Vec<ProtocolOutput>) {
        for output in outputs {
            match output {
                ProtocolOutput::Send { to, msg } if to == self.self_id => {
                    debug_assert!(false, "the writer delivers a bank's messages to itself: {msg:?}");
                    tracing::error!(tx = %msg.tx(), "a message to this bank itself reached the driver; dropped");
                }
                ProtocolOutput::Send { to, msg } => self.enqueue(to, msg),
                ProtocolOutput::Ring { to, sent_at, msg } => self.enqueue_ring(to, sent_at, msg),
                ProtocolOutput::Decided { tx, decision, refusal } => self.shared.decided(tx, decision, refusal),
                ProtocolOutput::Finished { tx, decision } => self.shared.notify(tx, Progress::Finished(decision)),
            }
        }
    }

    fn enqueue(&mut self, to: BankId, msg: Message) {
        let Some(outbox) = self.outboxes.get_mut(&to) else {
            tracing::warn!(bank = %to, "message for a bank that is not a member dropped");
            return;
        };
        if let Err(msg) = outbox.messages.push(msg) {
            tracing::debug!(bank = %to, tx = %msg.tx(), "outbox full; message dropped (the protocol re-sends it)");
        }
    }

    fn enqueue_ring(&mut self, to: BankId, sent_at: TimestampMs, msg: RingMessage) {
        let Some(outbox) = self.outboxes.get_mut(&to) else {
            tracing::warn!(bank = %to, "ring message for a bank that is not a member dropped");
            return;
        };
        if outbox.ring.push((sent_at, msg)).is_err() {
            tracing::debug!(bank = %to, "ring outbox full; message dropped (the ring re-sends or regenerates)");
        }
    }

    /// Starts a request on every idle lane that has messages waiting: one batch of everything
    /// queued since its last request.
    fn pump(&mut self) {
        let Some(client) = &self.client else { return };
        for (&peer, outbox) in &mut self.outboxes {
            if let Some(batch) = outbox.messages.take_batch(BATCH_MESSAGES_MAX) {
                self.tasks.spawn(exchange(client.clone(), self.writer.clone(), peer, batch));
            }
            if let Some(batch) = outbox.ring.take_batch(RING_BATCH_MAX) {
                self.tasks.spawn(exchange_ring(client.clone(), self.writer.clone(), peer, batch));
            }
        }
    }
}

fn interval_of(period_ms: u64) -> Interval {
    let mut every = tokio::time::interval(Duration::from_millis(period_ms));
    every.set_missed_tick_behavior(MissedTickBehavior::Skip);
    every
}

/// The next tick of an optional interval; never, without one.
async fn next_tick(interval: &mut Option<Interval>) {
    match interval {
        Some(every) => {
            every.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Where one output of an inbound delivery goes.
enum Sorted<T> {
    /// Back to the sender, in the HTTP answer.
    Back(T),
    /// To the loop (other peers, waiters).
    Rest(ProtocolOutput),
}

/// Splits a delivery's outputs into the answers for the sender and the rest.
fn split_answers<T>(
    delivered: Result<Vec<ProtocolOutput>, Error>,
    answer: impl Fn(ProtocolOutput) -> Sorted<T>,
) -> (Result<Vec<T>, Error>, Vec<ProtocolOutput>) {
    let outputs = match delivered {
        Ok(outputs) => outputs,
        Err(e) => return (Err(e), Vec::new()),
    };
    let mut back = Vec::new();
    let mut rest = Vec::new();
    for output in outputs {
        match answer(output) {
            Sorted::Back(item) => back.push(item),
            Sorted::Rest(other) => rest.push(other),
        }
    }
    (Ok(back), rest)
}

/// One request of the two-phase commit lane: sends the batch, feeds the peer's answers (votes,
/// acks, outcomes) to the machines. An unreachable peer drops the batch — the protocol re-sends —
/// but fails fast: each prepare it could not receive becomes that bank's no vote, here.
async fn exchange(client: PeerClient, writer: WriterHandle, peer: BankId, messages: Vec<Message>) -> Done {
    let envelope = Envelope { messages };
    let (reach, answers) = match client.post_json::<Envelope, Envelope>(peer, MESSAGES_PATH, &envelope).await {
        Ok(answer) => (Reach::Answered, answer.messages),
        Err(e) => {
            tracing::debug!(bank = %peer, error = %e, messages = envelope.messages.len(), "peer unreachable");
            (Reach::Unreachable, unreachable_votes(peer, &envelope.messages))
        }
    };
    let mut outputs = Vec::new();
    if !answers.is_empty() {
        match writer.protocol_deliver(peer, answers).await {
            Ok(out) => outputs = out,
            Err(e) => tracing::debug!(error = %e, "answers from (or refusals for) bank {peer} dropped"),
        }
    }
    Done::Exchanged { peer, lane: LaneKind::TwoPhaseCommit, reach, outputs }
}

/// The no votes of `peer` for the prepares it could not be sent.
fn unreachable_votes(peer: BankId, sent: &[Message]) -> Vec<Message> {
    sent.iter()
        .filter_map(|m| match m {
            Message::Prepare { tx, .. } => Some(Message::Vote {
                tx: *tx,
                from: peer,
                vote: Vote::No {
                    code: ErrorCode::BankUnavailable,
                    detail: format!("bank {peer} could not be reached"),
                },
            }),
            _ => None,
        })
        .collect()
}

/// One request of the ring lane: sends the batch, feeds the answers (acknowledgements, votes)
/// back to the ring. A lost request is not retried here: the ring re-sends what it must.
async fn exchange_ring(
    client: PeerClient,
    writer: WriterHandle,
    peer: BankId,
    batch: Vec<(TimestampMs, RingMessage)>,
) -> Done {
    let messages = batch.into_iter().map(|(t, m)| StampedRingMessage { sent_at_ms: t.0, message: m }).collect();
    let (reach, outputs) =
        match client.post_json::<RingEnvelope, RingEnvelope>(peer, RING_PATH, &RingEnvelope { messages }).await {
            Ok(answer) if answer.messages.is_empty() => (Reach::Answered, Vec::new()),
            Ok(answer) => match writer.ring_deliver(peer, answer.into_pairs()).await {
                Ok(outputs) => (Reach::Answered, outputs),
                Err(e) => {
                    tracing::debug!(error = %e, "ring answers from bank {peer} dropped");
                    (Reach::Answered, Vec::new())
                }
            },
            Err(e) => {
                tracing::debug!(bank = %peer, error = %e, "ring message not delivered");
                (Reach::Unreachable, Vec::new())
            }
        };
    Done::Exchanged { peer, lane: LaneKind::Ring, reach, outputs }
}
