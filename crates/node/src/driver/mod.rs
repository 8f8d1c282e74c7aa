//! The driver of cross-bank work: carries the two-phase commit's and the token ring's messages
//! between this bank's protocol machines and its peers, and tells waiting customers how their
//! transactions went.
//!
//! The machines themselves ([`bank_core::twopc::Coordinator`], [`bank_core::twopc::Participant`],
//! the ring) live in the ledger writer thread beside the ledger, so every state change they make
//! is committed by the same group commit as the money, and every output is carried out only after
//! that commit (write-ahead: a vote never leaves before its holds are durable, a decision never
//! before it is recorded). This module does the I/O, as **one task** ([`event_loop`]) running one
//! `select!` loop that owns all of its state. Handlers hold a cheap [`Driver`] handle (the loop's
//! bounded inbox and the read-mostly [`waiters::Shared`]), which refers to nothing of theirs: no
//! reference cycle, and [`DriverTask::stop`] ends the loop and every task it started.
//!
//! - **Outboxes**: per peer two lanes (two-phase commit, token ring), each a bounded queue
//!   ([`OUTBOX_LEN_MAX`](crate::peer::OUTBOX_LEN_MAX),
//!   [`RING_OUTBOX_LEN_MAX`](crate::peer::RING_OUTBOX_LEN_MAX)) with at most one request in
//!   flight. A lane sends everything queued meanwhile in one signed `POST /interbank/v1/messages`
//!   (up to [`BATCH_MESSAGES_MAX`](crate::peer::BATCH_MESSAGES_MAX); the ring's go to
//!   `/interbank/v1/ring`, up to [`RING_BATCH_MAX`](crate::peer::RING_BATCH_MAX)), and feeds the
//!   answers the peer carried back (votes, acks, outcomes) to the machines.
//! - **Fail fast**: a `Prepare` that cannot reach its bank is answered, locally, by a no vote
//!   (`bank_unavailable`) in that bank's name. Aborting is always safe before a decision, so the
//!   customer learns at once instead of at the expiry.
//! - **Inbound**: a handler hands a peer's batch to the loop with a oneshot; the batch is fed to
//!   the machines, outputs addressed to that peer go back in the same HTTP answer, the rest
//!   through the outboxes.
//! - **Ticks**: every [`TICK_MS`] the machines' timers run (re-sends, expiries, outcome queries),
//!   and the ring's at its own period; a tick still running when the next is due skips it.
//! - **Waiters**: a customer's request waits for its transaction's decision and delivery, up to
//!   the response deadline; past it the answer is `pending`.
//!
//! The loop never awaits a writer command or a peer itself: each runs as a task of the loop's
//! `JoinSet` and comes back as a completion, so one slow peer delays no one else.
//!
//! Not handled here: retries (a full queue or an unreachable peer drops messages, and the
//! protocol re-sends them: the coordinator re-sends prepares and decisions, participants re-ask,
//! the ring re-sends or regenerates), and messages a bank sends itself (the writer delivers them
//! inside the batch that produced them, `loopback`, so they never reach the driver).

mod event_loop;
pub mod waiters;

use std::collections::HashMap;
use std::sync::Arc;

use bank_core::ids::{BankId, TimestampMs, TransferId};
use bank_core::ring::RingMessage;
use bank_core::twopc::Message;
use bank_core::twopc::{Decision, Refusal};
use tokio::sync::{mpsc, oneshot, watch};

use crate::peer::StampedRingMessage;
use crate::peer::client::PeerClient;
use crate::storage::writer::{ProtocolOutput, WriterHandle};
use event_loop::{EventLoop, Inbound};
pub use waiters::{PeerSeen, Progress};

/// Period of the protocol timers.
pub const TICK_MS: u64 = 100;
/// Inbound batches and output lists waiting for the loop; a sender waits when it is full (the
/// loop never blocks, so the wait is short).
pub const INBOX_LEN_MAX: usize = 4_096;

/// The handlers' handle on the driver. Cheap to clone; holds no reference to the loop's state.
#[derive(Debug, Clone)]
pub struct Driver {
    inbox: mpsc::Sender<Inbound>,
    shared: Arc<waiters::Shared>,
}

/// The running loop, owned by the node: stopping it ends every task it started.
#[derive(Debug)]
pub struct DriverTask {
    stop: oneshot::Sender<()>,
    join: tokio::task::JoinHandle<()>,
}

impl DriverTask {
    /// Stops the loop and waits until it and every task it owned are gone.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.join.await
            && e.is_panic()
        {
            tracing::error!(error = %e, "the driver panicked");
        }
    }
}

/// Starts the driver of bank `self_id`: its loop, with an outbox per peer in `members` when
/// `peers` can reach them; `ring_tick_ms` is the token ring's tick (`None`: no ring).
pub fn start(
    self_id: BankId,
    writer: WriterHandle,
    peers: Option<PeerClient>,
    members: Vec<BankId>,
    ring_tick_ms: Option<u64>,
) -> (Driver, DriverTask) {
    let shared = Arc::new(waiters::Shared::default());
    let (inbox, inbox_rx) = mpsc::channel(INBOX_LEN_MAX);
    let (stop, stop_rx) = oneshot::channel();
    let event_loop = EventLoop::new(self_id, writer, peers, members, shared.clone());
    let join = tokio::spawn(event_loop.run(inbox_rx, stop_rx, TICK_MS, ring_tick_ms));
    (Driver { inbox, shared }, DriverTask { stop, join })
}

/// The loop is gone: the node is stopping.
fn stopping() -> bank_core::Error {
    bank_core::Error::BankUnavailable("the bank is shutting down".into())
}

impl Driver {
    /// How each peer answered lately (for the status page).
    pub fn peers_seen(&self) -> HashMap<BankId, PeerSeen> {
        self.shared.peers_seen()
    }

    /// Registers interest in `tx` before it begins, so no progress is missed.
    pub fn watch(&self, tx: TransferId) -> watch::Receiver<Progress> {
        self.shared.watch(tx)
    }

    /// Why `tx` was aborted, if a bank refused it (taken once).
    pub fn take_refusal(&self, tx: TransferId) -> Option<Refusal> {
        self.shared.take_refusal(tx)
    }

    /// Forgets the waiter of `tx` (its customer stopped waiting).
    pub fn unwatch(&self, tx: TransferId) {
        self.shared.unwatch(tx)
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

    /// Carries out the outputs of a customer's operation: decisions wake waiters here and now,
    /// messages for peers go to the loop's outboxes. Best effort: a message lost (the node is
    /// stopping) is re-sent by the protocol.
    pub async fn dispatch(&self, outputs: Vec<ProtocolOutput>) {
        let mut for_peers = Vec::new();
        for output in outputs {
            match output {
                ProtocolOutput::Decided { tx, decision, refusal } => self.shared.decided(tx, decision, refusal),
                ProtocolOutput::Finished { tx, decision } => self.shared.notify(tx, Progress::Finished(decision)),
                other => for_peers.push(other),
            }
        }
        if !for_peers.is_empty() {
            let _ = self.inbox.send(Inbound::Outputs(for_peers)).await;
        }
    }

    /// Handles messages that peer `from` sent: returns the outputs addressed to `from` (carried
    /// back in the HTTP answer); the others go to the outboxes.
    pub async fn receive(&self, from: BankId, messages: Vec<Message>) -> Result<Vec<Message>, bank_core::Error> {
        let (reply, answer) = oneshot::channel();
        self.inbox.send(Inbound::Messages { from, messages, reply }).await.map_err(|_| stopping())?;
        answer.await.map_err(|_| stopping())?
    }

    /// Handles ring messages that peer `from` sent: returns the ring's answers to `from`.
    pub async fn receive_ring(
        &self,
        from: BankId,
        messages: Vec<(TimestampMs, RingMessage)>,
    ) -> Result<Vec<StampedRingMessage>, bank_core::Error> {
        let (reply, answer) = oneshot::channel();
        self.inbox.send(Inbound::Ring { from, messages, reply }).await.map_err(|_| stopping())?;
        answer.await.map_err(|_| stopping())?
    }
}
