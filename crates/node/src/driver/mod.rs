//! The driver of cross-bank transactions: carries the two-phase commit's messages between this
//! bank's protocol machines and its peers.
//!
//! The machines themselves ([`bank_core::twopc::Coordinator`] and
//! [`bank_core::twopc::Participant`]) live in the ledger writer thread beside the ledger, so
//! every state change they make is committed by the same group commit as the money, and every
//! output is carried out only after that commit (write-ahead: a vote never leaves before its
//! holds are durable, a decision never before it is recorded). This module does the I/O:
//!
//! - **Outboxes**: one task per peer, fed by a bounded queue. It sends everything queued for that
//!   peer in one signed `POST /interbank/v1/messages` (up to [`BATCH_MESSAGES_MAX`]), and feeds the
//!   answers the peer carried back (votes, acks, outcomes) to the machines. A full queue or an
//!   unreachable peer drops messages: the protocol re-sends them (the coordinator re-sends
//!   prepares and decisions, participants re-ask), so losing one is safe.
//! - **Fail fast**: a `Prepare` that cannot reach its bank is answered, locally, by a no vote
//!   (`bank_unavailable`) in that bank's name. Aborting is always safe before a decision, so the
//!   customer learns at once instead of at the expiry.
//! - **Inbound**: messages from a peer are fed to the machines; outputs addressed to that peer go
//!   back in the same HTTP answer, the rest through the outboxes.
//! - **Ticks**: every [`TICK_MS`] the machines' timers run (re-sends, expiries, outcome queries).
//! - **Waiters**: a customer's request waits for its transaction's decision and delivery, up to
//!   the response deadline; past it the answer is `pending`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bank_core::ids::{BankId, TimestampMs, TransferId};
use bank_core::ledger::{Decision, Vote};
use bank_core::ring::RingMessage;
use bank_core::twopc::Message;
use tokio::sync::{mpsc, watch};

use crate::peer::client::PeerClient;
use crate::peer::{
    BATCH_MESSAGES_MAX, Envelope, MESSAGES_PATH, OUTBOX_LEN_MAX, RING_BATCH_MAX, RING_OUTBOX_LEN_MAX, RING_PATH,
    RingEnvelope, StampedRingMessage,
};
use crate::storage::writer::{ProtocolOutput, WriterHandle};

/// Period of the protocol timers.
pub const TICK_MS: u64 = 100;

/// Where a transaction stands, as its waiters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Preparing,
    Decided(Decision),
    Finished(Decision),
}

/// The driver. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Coordination {
    self_id: BankId,
    writer: WriterHandle,
    outboxes: HashMap<BankId, mpsc::Sender<Message>>,
    ring_outboxes: HashMap<BankId, mpsc::Sender<(TimestampMs, RingMessage)>>,
    waiters: Mutex<HashMap<TransferId, watch::Sender<Progress>>>,
    /// Why watched transactions were aborted (the first refusal's code and detail).
    refusals: Mutex<HashMap<TransferId, (String, String)>>,
    /// How each peer answered its last request: `Some(true)` up, `Some(false)` unreachable.
    peers: Mutex<HashMap<BankId, PeerSeen>>,
}

/// The last time this bank heard from a peer: an answer to one of its requests, or a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerSeen {
    /// Whether the last request reached it.
    pub up: Option<bool>,
    /// When it last answered (Unix ms), if ever.
    pub last_answer_ms: Option<i64>,
}

impl Coordination {
    /// Starts the outbox of every peer and the tick loops; `ring_tick_ms` is the token ring's
    /// tick (`None`: no ring, `concurrent` mode).
    pub fn start(
        self_id: BankId,
        writer: WriterHandle,
        peers: Option<PeerClient>,
        members: Vec<BankId>,
        ring_tick_ms: Option<u64>,
    ) -> Arc<Self> {
        let mut receivers = Vec::new();
        let mut ring_receivers = Vec::new();
        let mut outboxes = HashMap::new();
        let mut ring_outboxes = HashMap::new();
        for peer in members.into_iter().filter(|&m| m != self_id) {
            let (tx, rx) = mpsc::channel(OUTBOX_LEN_MAX);
            outboxes.insert(peer, tx);
            receivers.push((peer, rx));
            let (tx, rx) = mpsc::channel(RING_OUTBOX_LEN_MAX);
            ring_outboxes.insert(peer, tx);
            ring_receivers.push((peer, rx));
        }
        let this = Arc::new(Coordination {
            self_id,
            writer,
            outboxes,
            ring_outboxes,
            waiters: Mutex::new(HashMap::new()),
            refusals: Mutex::new(HashMap::new()),
            peers: Mutex::new(HashMap::new()),
        });
        if let Some(client) = peers {
            for (peer, rx) in receivers {
                tokio::spawn(outbox(this.clone(), client.clone(), peer, rx));
            }
            for (peer, rx) in ring_receivers {
                tokio::spawn(ring_outbox(this.clone(), client.clone(), peer, rx));
            }
        }
        if let Some(tick_ms) = ring_tick_ms {
            spawn_ticker(&this, tick_ms, "ring", |writer| Box::pin(async move { writer.ring_tick().await }));
        }
        spawn_ticker(&this, TICK_MS, "protocol", |writer| Box::pin(async move { writer.protocol_tick().await }));
        this
    }

    /// How each peer answered lately (for the status page).
    pub fn peers_seen(&self) -> HashMap<BankId, PeerSeen> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn saw(&self, peer: BankId, up: bool) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let seen = peers.entry(peer).or_default();
        seen.up = Some(up);
        if up {
            seen.last_answer_ms = Some(crate::storage::writer::now_ms().0);
        }
    }

    /// Registers interest in `tx` before it begins, so no progress is missed.
    pub fn watch(&self, tx: TransferId) -> watch::Receiver<Progress> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters.entry(tx).or_insert_with(|| watch::channel(Progress::Preparing).0).subscribe()
    }

    fn notify(&self, tx: TransferId, progress: Progress) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = waiters.get(&tx) {
            let _ = sender.send(progress);
            if matches!(progress, Progress::Finished(_)) || sender.receiver_count() == 0 {
                waiters.remove(&tx);
            }
        }
    }

    fn decided(&self, tx: TransferId, decision: Decision, refusal: Option<(String, String)>) {
        if let Some(refusal) = refusal {
            let watched = self.waiters.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&tx);
            if watched {
                self.refusals.lock().unwrap_or_else(|p| p.into_inner()).insert(tx, refusal);
            }
        }
        self.notify(tx, Progress::Decided(decision));
    }

    /// Why `tx` was aborted, if a bank refused it (taken once).
    pub fn take_refusal(&self, tx: TransferId) -> Option<(String, String)> {
        self.refusals.lock().unwrap_or_else(|p| p.into_inner()).remove(&tx)
    }

    /// Waits for `tx` to be finished (or aborted), up to `deadline`; returns the last progress.
    pub async fn wait(&self, mut progress: watch::Receiver<Progress>, deadline: tokio::time::Instant) -> Progress {
        loop {
            let now = *progress.borrow_and_update();
            if matches!(now, Progress::Finished(_) | Progress::Decided(Decision::Aborted)) {
                return now;
            }
            match tokio::time::timeout_at(deadline, progress.changed()).await {
                Ok(Ok(())) => continue,
                _ => return now,
            }
        }
    }

    /// Forgets the waiter of `tx` (its customer stopped waiting).
    pub fn unwatch(&self, tx: TransferId) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if waiters.get(&tx).is_some_and(|s| s.receiver_count() <= 1) {
            waiters.remove(&tx);
        }
    }

    /// Carries out the machines' outputs: local messages go back to the machines, the rest to
    /// the outboxes; decisions wake waiters. Returns nothing: every send is best effort.
    pub async fn dispatch(self: &Arc<Self>, outputs: Vec<ProtocolOutput>) {
        let mut local = self.route(outputs);
        // Local delivery loops until the machines are quiet (a begin's local prepare yields a
        // vote, which may yield a decision, which yields a local commit, ...).
        while !local.is_empty() {
            match self.writer.protocol_deliver(self.self_id, std::mem::take(&mut local)).await {
                Ok(outputs) => local = self.route(outputs),
                // Overloaded or shutting down: the timers re-send what was lost.
                Err(e) => tracing::debug!(error = %e, "local protocol delivery dropped"),
            }
        }
    }

    /// Queues what goes to peers and wakes waiters; returns the messages for this bank itself.
    fn route(&self, outputs: Vec<ProtocolOutput>) -> Vec<Message> {
        let mut local = Vec::new();
        for output in outputs {
            match output {
                ProtocolOutput::Send { to, msg } if to == self.self_id => local.push(msg),
                ProtocolOutput::Send { to, msg } => self.enqueue(to, msg),
                ProtocolOutput::Decided { tx, decision, refusal } => self.decided(tx, decision, refusal),
                ProtocolOutput::Finished { tx, decision } => self.notify(tx, Progress::Finished(decision)),
                ProtocolOutput::Ring { to, sent_at, msg } => self.enqueue_ring(to, sent_at, msg),
            }
        }
        local
    }

    fn enqueue(&self, to: BankId, msg: Message) {
        let Some(outbox) = self.outboxes.get(&to) else {
            tracing::warn!(bank = %to, "message for a bank that is not a member dropped");
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(msg)) = outbox.try_send(msg) {
            tracing::debug!(bank = %to, tx = %msg.tx(), "outbox full; message dropped (the protocol re-sends it)");
        }
    }

    fn enqueue_ring(&self, to: BankId, sent_at: TimestampMs, msg: RingMessage) {
        let Some(outbox) = self.ring_outboxes.get(&to) else {
            tracing::warn!(bank = %to, "ring message for a bank that is not a member dropped");
            return;
        };
        if outbox.try_send((sent_at, msg)).is_err() {
            tracing::debug!(bank = %to, "ring outbox full; message dropped (the ring re-sends or regenerates)");
        }
    }

    /// Handles ring messages that peer `from` sent: feeds them to the ring and returns its
    /// answers to `from` (carried back in the HTTP answer); the rest is dispatched.
    pub async fn receive_ring(
        self: &Arc<Self>,
        from: BankId,
        messages: Vec<(TimestampMs, RingMessage)>,
    ) -> Result<Vec<StampedRingMessage>, bank_core::Error> {
        self.saw(from, true);
        let outputs = self.writer.ring_deliver(from, messages).await?;
        let mut back = Vec::new();
        let mut rest = Vec::new();
        for output in outputs {
            match output {
                ProtocolOutput::Ring { to, sent_at, msg } if to == from => {
                    back.push(StampedRingMessage { sent_at_ms: sent_at.0, message: msg })
                }
                other => rest.push(other),
            }
        }
        if !rest.is_empty() {
            let this = self.clone();
            tokio::spawn(async move { this.dispatch(rest).await });
        }
        Ok(back)
    }

    /// Handles messages that peer `from` sent: feeds them to the machines and returns the
    /// outputs addressed to `from` (carried back in the HTTP answer); the others are dispatched.
    pub async fn receive(
        self: &Arc<Self>,
        from: BankId,
        messages: Vec<Message>,
    ) -> Result<Vec<Message>, bank_core::Error> {
        self.saw(from, true);
        let outputs = self.writer.protocol_deliver(from, messages).await?;
        let mut back = Vec::new();
        let mut rest = Vec::new();
        for output in outputs {
            match output {
                ProtocolOutput::Send { to, msg } if to == from => back.push(msg),
                other => rest.push(other),
            }
        }
        if !rest.is_empty() {
            let this = self.clone();
            tokio::spawn(async move { this.dispatch(rest).await });
        }
        Ok(back)
    }
}

/// A writer command that runs timers and returns their outputs.
type TickCommand =
    fn(WriterHandle) -> std::pin::Pin<Box<dyn Future<Output = Result<Vec<ProtocolOutput>, bank_core::Error>> + Send>>;

/// Runs `tick` every `period_ms` (late ticks are skipped, not bunched) and dispatches its
/// outputs, until the driver is dropped.
fn spawn_ticker(this: &Arc<Coordination>, period_ms: u64, what: &'static str, tick: TickCommand) {
    let ticker = Arc::downgrade(this);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(period_ms));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            let Some(this) = ticker.upgrade() else { return };
            match tick(this.writer.clone()).await {
                Ok(outputs) => this.dispatch(outputs).await,
                Err(e) => tracing::debug!(error = %e, "{what} tick skipped"),
            }
        }
    });
}

/// The outbox of one peer: batches what is queued into one request, feeds the answers back.
async fn outbox(this: Arc<Coordination>, client: PeerClient, peer: BankId, mut rx: mpsc::Receiver<Message>) {
    let mut batch = Vec::with_capacity(BATCH_MESSAGES_MAX);
    while rx.recv_many(&mut batch, BATCH_MESSAGES_MAX).await > 0 {
        let envelope = Envelope { messages: std::mem::take(&mut batch) };
        match client.post_json::<Envelope, Envelope>(peer, MESSAGES_PATH, &envelope).await {
            Ok(answer) => {
                this.saw(peer, true);
                if !answer.messages.is_empty() {
                    match this.writer.protocol_deliver(peer, answer.messages).await {
                        Ok(outputs) => this.dispatch(outputs).await,
                        Err(e) => tracing::debug!(error = %e, "answers from bank {peer} dropped"),
                    }
                }
            }
            Err(e) => {
                this.saw(peer, false);
                tracing::debug!(bank = %peer, error = %e, messages = envelope.messages.len(), "peer unreachable");
                // Fail fast: every prepare that could not be delivered is a no vote of that bank.
                let refusals: Vec<Message> = envelope
                    .messages
                    .iter()
                    .filter_map(|m| match m {
                        Message::Prepare { tx, .. } => Some(Message::Vote {
                            tx: *tx,
                            from: peer,
                            vote: Vote::No {
                                code: "bank_unavailable".into(),
                                detail: format!("bank {peer} could not be reached"),
                            },
                        }),
                        _ => None,
                    })
                    .collect();
                if !refusals.is_empty() {
                    match this.writer.protocol_deliver(peer, refusals).await {
                        Ok(outputs) => this.dispatch(outputs).await,
                        Err(e) => tracing::debug!(error = %e, "local refusal dropped"),
                    }
                }
            }
        }
    }
}

/// The outbox of one peer's ring messages: sends what is queued in one request, feeds the
/// answers (acknowledgements, votes) back to the ring. A lost request is not retried here: the
/// ring re-sends what it must.
async fn ring_outbox(
    this: Arc<Coordination>,
    client: PeerClient,
    peer: BankId,
    mut rx: mpsc::Receiver<(TimestampMs, RingMessage)>,
) {
    let mut batch = Vec::with_capacity(RING_BATCH_MAX);
    while rx.recv_many(&mut batch, RING_BATCH_MAX).await > 0 {
        let messages = batch.drain(..).map(|(t, m)| StampedRingMessage { sent_at_ms: t.0, message: m }).collect();
        match client.post_json::<RingEnvelope, RingEnvelope>(peer, RING_PATH, &RingEnvelope { messages }).await {
            Ok(answer) => {
                this.saw(peer, true);
                if !answer.messages.is_empty() {
                    match this.writer.ring_deliver(peer, answer.into_pairs()).await {
                        Ok(outputs) => this.dispatch(outputs).await,
                        Err(e) => tracing::debug!(error = %e, "ring answers from bank {peer} dropped"),
                    }
                }
            }
            Err(e) => {
                this.saw(peer, false);
                tracing::debug!(bank = %peer, error = %e, "ring message not delivered");
            }
        }
    }
}
