//! The single ledger writer, with group commit: storage's half of the bank.
//!
//! One OS thread owns the pure [`Bank`] (ledger, two-phase commit, key directory, ring gate) and
//! the writer connection. It waits for a command, then takes every command already queued (up to
//! `batch_len_max`), feeds each to the bank in order — a rejected command changes nothing and
//! simply gets its error — writes what each step asks to persist in one SQLite transaction,
//! commits (one fsync for the whole batch), and only then answers every waiter and hands the
//! steps' outputs (messages, decisions) back to the driver. Under load, batches grow, so the cost
//! of an fsync is shared by many operations; an idle bank commits single commands at once.
//!
//! This module does no protocol work: it applies [`Effects`] (raft-rs's `Ready`: persist, then
//! send). Forgotten decisions are read back for the bank within the batch ([`Recall`]).
//!
//! The queue in front of it is bounded: when it is full, [`WriterHandle`] answers
//! [`Error::Overloaded`] at once instead of letting memory grow.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Instant;

use bank_core::Error;
use bank_core::account::NewAccount;
use bank_core::bank::{Bank, Effects, Input, Now, Output, Persist, Recall, Reply as BankReply};
use bank_core::ids::{AccountNumber, BankId, Fingerprint, IdempotencyKey, TimestampMs, TransferId};
use bank_core::ledger::{
    DepositMethod, IdempotencyRecord, KeyRequest, Opened, Outcome, RefundOf, Refundable, Settlement, TransferRequest,
};
use bank_core::money::Amount;
use bank_core::pixkey::PixKey;
use bank_core::ring::{RingMessage, Tick};
use bank_core::twopc::{Decision, Message};
use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::ring::RingMonitor;
use super::{BatchWriter, LastEntries, LiveBalance, LiveBalances};
use crate::config::Limits;
use crate::metrics::Metrics;

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What the bank asks the driver to do, once its state is durable.
pub type ProtocolOutput = Output;

/// Where the answer to a bank command goes, typed by what the caller waits for.
#[derive(Debug)]
pub enum Responder {
    Opened(Reply<Opened>),
    Key(Reply<PixKey>),
    Outcome(Reply<Outcome>),
    /// A transfer's outcome with the protocol's first outputs (a cross-bank one's prepares).
    Transfer(Reply<(Outcome, Vec<ProtocolOutput>)>),
    Claim(Reply<(TransferId, PixKey, Vec<ProtocolOutput>)>),
    /// Messages and timers: their outputs.
    Outputs(Reply<Vec<ProtocolOutput>>),
}

/// A request to the writer. Each carries the channel its answer goes back on.
#[derive(Debug)]
pub enum Command {
    /// An input for the bank's state machine.
    Bank {
        input: Input,
        reply: Responder,
    },
    CreateSession {
        token_hash: [u8; 32],
        account: AccountNumber,
        expires_at: TimestampMs,
        reply: Reply<()>,
    },
    RevokeSession {
        token_hash: [u8; 32],
        reply: Reply<()>,
    },
    /// Finish everything queued before it, then stop.
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// The async side's handle on the writer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WriterHandle {
    tx: SyncSender<Command>,
    queue_len: Arc<AtomicI64>,
}

impl WriterHandle {
    fn submit<T, F: FnOnce(Reply<T>) -> Command>(&self, make: F) -> impl Future<Output = Result<T, Error>> + use<T, F> {
        let (reply, rx) = oneshot::channel();
        let sent = match self.tx.try_send(make(reply)) {
            Ok(()) => {
                self.queue_len.fetch_add(1, Ordering::Relaxed);
                // From here the command will be applied even if the request is given up.
                note_acceptance();
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(Error::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(Error::BankUnavailable("the bank is shutting down".into())),
        };
        async move {
            sent?;
            rx.await.map_err(|_| Error::BankUnavailable("the bank is shutting down".into()))?
        }
    }

    /// Feeds a message batch or a timer to the bank; its outputs come back.
    async fn outputs(&self, input: Input) -> Result<Vec<ProtocolOutput>, Error> {
        self.submit(|reply| Command::Bank { input, reply: Responder::Outputs(reply) }).await
    }

    pub async fn open_account(&self, new: NewAccount) -> Result<Opened, Error> {
        self.submit(|reply| Command::Bank { input: Input::OpenAccount(Box::new(new)), reply: Responder::Opened(reply) })
            .await
    }

    pub async fn register_key(&self, account: AccountNumber, request: KeyRequest) -> Result<PixKey, Error> {
        let input = Input::RegisterKey { account, request };
        self.submit(|reply| Command::Bank { input, reply: Responder::Key(reply) }).await
    }

    pub async fn deposit(
        &self,
        account: AccountNumber,
        amount: Amount,
        method: DepositMethod,
        idem: (IdempotencyKey, Fingerprint),
    ) -> Result<Outcome, Error> {
        let input = Input::Deposit { account, amount, method, idem };
        self.submit(|reply| Command::Bank { input, reply: Responder::Outcome(reply) }).await
    }

    pub async fn withdraw(
        &self,
        account: AccountNumber,
        amount: Amount,
        idem: (IdempotencyKey, Fingerprint),
    ) -> Result<Outcome, Error> {
        let input = Input::Withdraw { account, amount, idem };
        self.submit(|reply| Command::Bank { input, reply: Responder::Outcome(reply) }).await
    }

    /// Runs or begins a transfer. A cross-bank one comes back `pending`, with the protocol's
    /// first outputs (the prepares) for the driver to carry out.
    pub async fn transfer(&self, request: TransferRequest) -> Result<(Outcome, Vec<ProtocolOutput>), Error> {
        let input = Input::Transfer(Box::new(request));
        self.submit(|reply| Command::Bank { input, reply: Responder::Transfer(reply) }).await
    }

    /// Refunds (part of) a Pix leg received here (answered like a transfer).
    pub async fn refund(
        &self,
        request: bank_core::ledger::RefundRequest,
    ) -> Result<(Outcome, Vec<ProtocolOutput>), Error> {
        let input = Input::Refund(Box::new(request));
        self.submit(|reply| Command::Bank { input, reply: Responder::Transfer(reply) }).await
    }

    pub async fn protocol_deliver(&self, from: BankId, messages: Vec<Message>) -> Result<Vec<ProtocolOutput>, Error> {
        self.outputs(Input::Deliver { from, messages }).await
    }

    /// Begins the registration of a key (`None`: the account's CPF/CNPJ key) at every bank.
    pub async fn claim_key(
        &self,
        account: AccountNumber,
        request: Option<KeyRequest>,
    ) -> Result<(TransferId, PixKey, Vec<ProtocolOutput>), Error> {
        // The transaction's id is chosen here: the bank has no randomness.
        let input = Input::ClaimKey { id: TransferId(uuid::Uuid::now_v7()), account, request };
        self.submit(|reply| Command::Bank { input, reply: Responder::Claim(reply) }).await
    }

    pub async fn protocol_tick(&self) -> Result<Vec<ProtocolOutput>, Error> {
        self.outputs(Input::Tick).await
    }

    pub async fn ring_tick(&self) -> Result<Vec<ProtocolOutput>, Error> {
        self.outputs(Input::RingTick).await
    }

    pub async fn ring_deliver(
        &self,
        from: BankId,
        messages: Vec<(TimestampMs, RingMessage)>,
    ) -> Result<Vec<ProtocolOutput>, Error> {
        self.outputs(Input::RingDeliver { from, messages }).await
    }

    pub async fn create_session(
        &self,
        token_hash: [u8; 32],
        account: AccountNumber,
        expires_at: TimestampMs,
    ) -> Result<(), Error> {
        self.submit(|reply| Command::CreateSession { token_hash, account, expires_at, reply }).await
    }

    pub async fn revoke_session(&self, token_hash: [u8; 32]) -> Result<(), Error> {
        self.submit(|reply| Command::RevokeSession { token_hash, reply }).await
    }

    /// Asks the writer to finish what is queued and stop; waits until it has.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.clone();
        // A blocking send: shutdown must get in even when the queue is full.
        let sent = tokio::task::spawn_blocking(move || tx.send(Command::Shutdown { reply }).is_ok()).await;
        if matches!(sent, Ok(true)) {
            let _ = rx.await;
        }
    }
}

tokio::task_local! {
    /// Set while a request is served: whether it has handed a command to the writer.
    static ACCEPTED: Arc<AtomicBool>;
}

/// Runs `work` (a request being served), noting in `accepted` whether it hands a command to the
/// writer: from then on the command is applied whatever happens to the request, so a timeout must
/// not answer as if it was rejected (API.md: a rejected request changes nothing; `app` reads it).
pub async fn noting_acceptance<F: std::future::Future>(accepted: Arc<AtomicBool>, work: F) -> F::Output {
    ACCEPTED.scope(accepted, work).await
}

/// Notes that the request being served handed a command to the writer (outside a request: nothing).
fn note_acceptance() {
    let _ = ACCEPTED.try_with(|flag| flag.store(true, Ordering::Relaxed));
}

pub(crate) fn now_ms() -> TimestampMs {
    TimestampMs(crate::clock::wall_ms())
}

/// What the writer thread owns besides the connection.
#[derive(Debug)]
pub struct WriterState {
    pub bank: Bank,
    /// The ring's clock, metrics and status view; `None` without a ring.
    pub ring: Option<RingMonitor>,
    /// Failpoints reached in the current batch, hit once it is durable.
    failpoints: Vec<&'static str>,
}

impl WriterState {
    pub fn new(bank: Bank, ring: Option<RingMonitor>) -> Self {
        let mut state = WriterState { bank, ring, failpoints: Vec::new() };
        state.refresh_ring();
        state
    }

    /// The time of a step: the wall clock, and the ring's tick on this process's monotonic clock.
    fn now(&self) -> Now {
        Now { wall: now_ms(), tick: self.ring.as_ref().map_or(Tick(0), RingMonitor::now) }
    }

    fn refresh_ring(&mut self) {
        if let Some(monitor) = &mut self.ring {
            monitor.flush_visits();
            let tick = monitor.now();
            if let Some((status, queue_len)) = self.bank.ring_status(tick) {
                monitor.refresh(status, queue_len);
            }
        }
    }
}

/// Starts the writer thread over `conn` and the bank; it publishes committed balances to `live`.
pub fn spawn(
    conn: Connection,
    state: WriterState,
    bank_id: BankId,
    limits: &Limits,
    last_entries: LastEntries,
    live: Arc<LiveBalances>,
    metrics: Arc<Metrics>,
) -> std::io::Result<(WriterHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = sync_channel(limits.writer_queue_len_max);
    let queue_len = Arc::new(AtomicI64::new(0));
    let handle = WriterHandle { tx, queue_len: queue_len.clone() };
    let shared = Shared {
        batch_len_max: limits.batch_len_max,
        queue_len,
        last_entries,
        expiry: Expiry { retention_ms: limits.idempotency_retention_ms, due_ms: 0 },
        session_expiry: Expiry { retention_ms: (limits.session_ttl_s as i64).saturating_mul(1000), due_ms: 0 },
        checkpoint: Checkpoint { dirty: HashSet::new(), lines_since: 0, last_at: Instant::now() },
        live,
        metrics,
    };
    let thread = std::thread::Builder::new()
        .name(format!("ledger-writer-{bank_id}"))
        .spawn(move || run(conn, state, rx, shared))?;
    Ok((handle, thread))
}

/// A deferred answer: sent only after the batch is durable.
type Answer = Box<dyn FnOnce() + Send>;

fn answer<T: Send + 'static>(reply: Reply<T>, result: Result<T, Error>) -> Answer {
    Box::new(move || {
        // The waiter may have gone (client disconnected); the operation stands regardless.
        let _ = reply.send(result);
    })
}

/// What the writer loop keeps besides the bank, and shares with the rest of the node.
struct Shared {
    batch_len_max: usize,
    queue_len: Arc<AtomicI64>,
    last_entries: LastEntries,
    expiry: Expiry,
    /// The same for sessions past their lifetime (`retention_ms` is the session's lifetime).
    session_expiry: Expiry,
    checkpoint: Checkpoint,
    live: Arc<LiveBalances>,
    metrics: Arc<Metrics>,
}

/// The balance checkpoint (see [`super::write_balance_checkpoint`]): batches write no balance
/// rows, only a journal row ([`super::journal_balances`]); every so often one batch copies the
/// balances changed since the last checkpoint into their rows and empties the journal. Its cost
/// is bounded by the accounts, not by the batches (each row once per interval instead of once
/// per batch that touches it), and the journal a start reads holds at most one interval (a
/// couple of seconds, or [`CHECKPOINT_LINES_MAX`] lines plus one batch's).
#[derive(Debug)]
struct Checkpoint {
    /// Accounts whose balance or newest line changed since the last checkpoint.
    dirty: HashSet<AccountNumber>,
    /// Lines appended since the last checkpoint.
    lines_since: u64,
    last_at: Instant,
}

/// Lines after which a checkpoint is due, whatever the time.
const CHECKPOINT_LINES_MAX: u64 = 65_536;
/// Time after which a checkpoint is due when anything changed.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

impl Checkpoint {
    fn due(&self) -> bool {
        !self.dirty.is_empty()
            && (self.lines_since >= CHECKPOINT_LINES_MAX || self.last_at.elapsed() >= CHECKPOINT_INTERVAL)
    }
}

/// The background expiry of idempotency records: a few with each batch, so it keeps pace with
/// any rate of new records without a batch of its own (and its fsync) or a long transaction.
#[derive(Debug)]
struct Expiry {
    retention_ms: i64,
    /// No record is old enough before this time (Unix ms).
    due_ms: i64,
}

/// The deliberately broken setting (`bank node --test-ack-before-commit-ms`, hidden): when not 0,
/// the writer answers a batch *before* committing it, then waits this long before the commit — a
/// bank that acknowledges what is not durable, so a crash loses acknowledged work. It exists only
/// so `bank torture` can prove it catches such a bank; never set otherwise.
static TEST_ACK_BEFORE_COMMIT_MS: AtomicU64 = AtomicU64::new(0);

/// Breaks this process's writer on purpose (see [`TEST_ACK_BEFORE_COMMIT_MS`]).
pub fn set_test_ack_before_commit_ms(ms: u64) {
    TEST_ACK_BEFORE_COMMIT_MS.store(ms, Ordering::Relaxed);
}

/// Records expired with a batch at most: twice a busy batch's new records, so expiry catches up.
const EXPIRED_PER_BATCH_MAX: usize = 2048;

fn run(mut conn: Connection, mut state: WriterState, rx: Receiver<Command>, mut shared: Shared) {
    let mut shutdown: Option<oneshot::Sender<()>> = None;
    while shutdown.is_none() {
        let Ok(first) = rx.recv() else { break };
        let mut batch = vec![first];
        while batch.len() < shared.batch_len_max {
            match rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        shared.queue_len.fetch_sub(batch.len() as i64, Ordering::Relaxed);
        let started = Instant::now();
        let batch_len = batch.len();
        let mut answers = Vec::with_capacity(batch_len);
        match commit_batch(&mut conn, &mut state, batch, &mut answers, &mut shutdown, &mut shared) {
            Ok(()) => {
                for name in state.failpoints.drain(..) {
                    crate::failpoint::hit(name);
                }
            }
            Err(e) => {
                // Memory is now ahead of disk; serving on would acknowledge what is not durable.
                tracing::error!(error = %e, "ledger commit failed; aborting so a restart rebuilds from disk");
                std::process::abort();
            }
        }
        state.refresh_ring();
        let (bank, metrics) = (&state.bank, &shared.metrics);
        metrics.set_idempotency_cached(bank.ledger().idempotency_cached());
        metrics.set_remembered(
            bank.coordinator().finished_remembered(),
            bank.ledger().settlements_remembered(),
            bank.ledger().refundable_remembered(),
        );
        shared.metrics.observe_batch(batch_len, started.elapsed());
        for ans in answers {
            ans();
        }
    }
    if let Err(e) = final_checkpoint(&mut conn, &state, &mut shared) {
        tracing::warn!(error = %e, "balance checkpoint at shutdown failed (the next start replays the lines)");
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "checkpoint at shutdown failed (the WAL is replayed at next start)");
    }
    tracing::info!("ledger writer stopped");
    if let Some(reply) = shutdown {
        let _ = reply.send(());
    }
}

/// Copies the balances changed since the last checkpoint, so a clean restart replays nothing.
fn final_checkpoint(conn: &mut Connection, state: &WriterState, shared: &mut Shared) -> super::Result<()> {
    if shared.checkpoint.dirty.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    super::write_balance_checkpoint(&tx, state.bank.ledger(), &shared.last_entries, &shared.checkpoint.dirty)?;
    tx.commit()?;
    shared.checkpoint.dirty.clear();
    Ok(())
}

/// Applies a batch of commands in one SQLite transaction (with a round of idempotency expiry
/// when one is due) and commits it; leaves the answers to send.
fn commit_batch(
    conn: &mut Connection,
    state: &mut WriterState,
    batch: Vec<Command>,
    answers: &mut Vec<Answer>,
    shutdown: &mut Option<oneshot::Sender<()>>,
    shared: &mut Shared,
) -> super::Result<()> {
    let tx = conn.transaction()?;
    let now = now_ms().0;
    let touched = {
        let mut writer = BatchWriter::new(&tx, &mut shared.last_entries, now);
        for cmd in batch {
            match cmd {
                Command::Shutdown { reply } => *shutdown = Some(reply),
                cmd => answers.push(apply(state, &tx, &mut writer, cmd)?),
            }
        }
        writer.finish()
    };
    let checkpoint = &mut shared.checkpoint;
    checkpoint.dirty.extend(touched.accounts.iter().cloned());
    checkpoint.lines_since += touched.lines;
    let checkpointed = checkpoint.due();
    let ledger = state.bank.ledger();
    if checkpointed {
        let started = Instant::now();
        let rows = super::write_balance_checkpoint(&tx, ledger, &shared.last_entries, &checkpoint.dirty)?;
        shared.metrics.observe_balance_checkpoint(rows, started.elapsed());
    } else {
        super::journal_balances(&tx, ledger, &shared.last_entries, &touched.accounts)?;
    }
    if now >= shared.expiry.due_ms {
        let expired = super::expire_idempotency(&tx, now, shared.expiry.retention_ms, EXPIRED_PER_BATCH_MAX)?;
        shared.expiry.due_ms = expired.next_due_ms;
        shared.metrics.idempotency_expired(expired.deleted);
    }
    if now >= shared.session_expiry.due_ms {
        let ttl_ms = shared.session_expiry.retention_ms;
        let expired = super::expire_sessions(&tx, now, ttl_ms, EXPIRED_PER_BATCH_MAX)?;
        shared.session_expiry.due_ms = expired.next_due_ms;
        shared.metrics.sessions_expired(expired.deleted);
    }
    let broken_ms = TEST_ACK_BEFORE_COMMIT_MS.load(Ordering::Relaxed);
    if broken_ms > 0 {
        for ans in answers.drain(..) {
            ans();
        }
        std::thread::sleep(std::time::Duration::from_millis(broken_ms));
    }
    let commit_started = Instant::now();
    tx.commit()?;
    shared.metrics.observe_commit(commit_started.elapsed());
    if checkpointed {
        let checkpoint = &mut shared.checkpoint;
        checkpoint.dirty.clear();
        checkpoint.lines_since = 0;
        checkpoint.last_at = Instant::now();
    }
    // Durable: readers may see it (before anyone is answered).
    let ledger = state.bank.ledger();
    let last = &shared.last_entries;
    shared.live.publish(touched.accounts.into_iter().filter_map(|number| {
        let account = ledger.account(&number)?;
        let live = LiveBalance {
            posted_cents: account.posted_cents,
            held_cents: account.held_cents,
            last_entry_id: last.get(&number),
        };
        Some((number, live))
    }));
    shared.metrics.set_live_balances(shared.live.len());
    Ok(())
}

/// Reads forgotten decisions and idempotency records back within the batch (it also sees the
/// batch's own rows).
/// What storage reads back for the bank within the batch's transaction (this bank's id beside).
struct StoredDecisions<'c>(&'c Connection, BankId);

impl Recall for StoredDecisions<'_> {
    type Error = super::StorageError;

    fn coordinator_decision(&mut self, tx: &TransferId) -> Result<Option<Decision>, Self::Error> {
        super::read_finished_decision(self.0, tx)
    }

    fn settlement(&mut self, tx: &TransferId) -> Result<Option<Settlement>, Self::Error> {
        super::read_settlement(self.0, tx)
    }

    fn idempotency(
        &mut self,
        scope: &AccountNumber,
        key: IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, Self::Error> {
        super::read_idempotency(self.0, scope, key)
    }

    fn received_legs(&mut self, tx: &TransferId) -> Result<Vec<(RefundOf, Refundable)>, Self::Error> {
        super::read_received_legs(self.0, self.1, tx)
    }
}

fn apply(
    state: &mut WriterState,
    tx: &rusqlite::Transaction<'_>,
    writer: &mut BatchWriter<'_, '_>,
    cmd: Command,
) -> super::Result<Answer> {
    match cmd {
        Command::Bank { input, reply } => {
            let now = state.now();
            let bank_id = state.bank.ledger().bank_id();
            let stepped = state.bank.step(now, input, &mut StoredDecisions(tx, bank_id))?;
            let outputs = carry_out(state, tx, writer, stepped.effects)?;
            respond(tx, reply, stepped.reply, outputs)
        }
        Command::CreateSession { token_hash, account, expires_at, reply } => {
            if state.bank.ledger().account(&account).is_none() {
                return Ok(answer(reply, Err(Error::Unauthorized("no such account".into()))));
            }
            tx.prepare_cached(
                "INSERT INTO sessions (token_hash, account, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![&token_hash[..], account.as_str(), now_ms().0, expires_at.0])?;
            Ok(answer(reply, Ok(())))
        }
        Command::RevokeSession { token_hash, reply } => {
            tx.prepare_cached("UPDATE sessions SET revoked = 1 WHERE token_hash = ?1")?.execute([&token_hash[..]])?;
            Ok(answer(reply, Ok(())))
        }
        Command::Shutdown { .. } => unreachable!("handled by the batch loop"),
    }
}

/// Writes what a step asks to persist, in order; keeps its failpoints and events; returns the
/// outputs to carry out after the commit.
fn carry_out(
    state: &mut WriterState,
    tx: &rusqlite::Transaction<'_>,
    writer: &mut BatchWriter<'_, '_>,
    effects: Effects,
) -> super::Result<Vec<Output>> {
    for item in &effects.persist {
        match item {
            Persist::Ledger(change) => writer.write(change)?,
            Persist::Coordinator(record) => super::write_coordinator_record(tx, record)?,
            Persist::Ring(durable) => super::write_ring_state(tx, durable)?,
            Persist::Enqueued(queued) => super::enqueue_ring_tx(tx, queued)?,
            Persist::Dequeued(id) => super::dequeue_ring_tx(tx, id)?,
        }
    }
    state.failpoints.extend(effects.failpoints);
    if let Some(monitor) = &mut state.ring {
        for event in &effects.events {
            monitor.observe(event);
        }
    } else {
        for event in &effects.events {
            if let bank_core::bank::Event::ProtocolRefused { from, tx, reason } = event {
                tracing::error!(bank = %from, transfer_id = %tx, %reason, "protocol message refused: a peer or this bank is broken");
            }
        }
    }
    Ok(effects.outputs)
}

/// Shapes a step's reply for the waiter (a repeated request's first outcome is read back).
fn respond(
    tx: &rusqlite::Transaction<'_>,
    reply: Responder,
    result: Result<BankReply, Error>,
    outputs: Vec<Output>,
) -> super::Result<Answer> {
    let got = match result {
        Err(e) => return Ok(reply.fail(e)),
        Ok(got) => got,
    };
    Ok(match (reply, got) {
        (Responder::Opened(r), BankReply::Opened(opened)) => answer(r, Ok(opened)),
        (Responder::Key(r), BankReply::Key(key)) => answer(r, Ok(key)),
        (Responder::Outcome(r), BankReply::Outcome(outcome)) => answer(r, Ok(resolve(tx, outcome)?)),
        (Responder::Transfer(r), BankReply::Outcome(outcome)) => answer(r, Ok((resolve(tx, outcome)?, outputs))),
        (Responder::Claim(r), BankReply::Claim { id, key }) => answer(r, Ok((id, key, outputs))),
        (Responder::Outputs(r), BankReply::Done) => answer(r, Ok(outputs)),
        (reply, got) => unreachable!("the bank answered {got:?} to a command waiting for {reply:?}"),
    })
}

impl Responder {
    /// The answer of a refused command (a refused step has no outputs).
    fn fail(self, e: Error) -> Answer {
        match self {
            Responder::Opened(r) => answer(r, Err(e)),
            Responder::Key(r) => answer(r, Err(e)),
            Responder::Outcome(r) => answer(r, Err(e)),
            Responder::Transfer(r) => answer(r, Err(e)),
            Responder::Claim(r) => answer(r, Err(e)),
            Responder::Outputs(r) => answer(r, Err(e)),
        }
    }
}

/// Turns a replay into the first outcome, read back from storage.
fn resolve(tx: &rusqlite::Transaction<'_>, outcome: Outcome) -> super::Result<Outcome> {
    match outcome {
        Outcome::Replayed(reference) => super::resolve(tx, reference),
        other => Ok(other),
    }
}
