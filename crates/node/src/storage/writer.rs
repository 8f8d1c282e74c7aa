//! The single ledger writer, with group commit.
//!
//! One OS thread owns the in-memory [`Ledger`] and the writer connection. It waits for a command,
//! then takes every command already queued (up to `batch_len_max`), applies each to the ledger in
//! order — a rejected command changes nothing and simply gets its error — writes all their
//! changes in one SQLite transaction, commits (one fsync for the whole batch), and only then
//! answers every waiter. Under load, batches grow, so the cost of an fsync is shared by many
//! operations; an idle bank commits single commands at once.
//!
//! The queue in front of it is bounded: when it is full, [`WriterHandle`] answers
//! [`Error::Overloaded`] at once instead of letting memory grow.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bank_core::Error;
use bank_core::account::NewAccount;
use bank_core::ids::{AccountNumber, BankId, Fingerprint, IdempotencyKey, TimestampMs, TransferId};
use bank_core::ledger::{
    Change, Decision, DepositMethod, KeyRequest, Ledger, Opened, Outcome, Plan, Status, TransferRequest, Vote,
};
use bank_core::money::Amount;
use bank_core::pixkey::PixKey;
use bank_core::ring::{RingMessage, RingOutput};
use bank_core::twopc::{
    Coordinator, CoordinatorOutput, CoordinatorRecord, Message, Participant, ParticipantOutput, RetryPolicy, Role,
};
use rusqlite::{Connection, params};
use std::collections::{BTreeSet, HashMap};
use tokio::sync::oneshot;

use super::ring::RingGate;
use super::{BatchWriter, EntryIndex};
use crate::metrics::Metrics;

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What the protocol machines ask the driver to do, once their state is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolOutput {
    Send {
        to: BankId,
        msg: Message,
    },
    /// A transaction this bank coordinates is decided (its transfer record says so); an abort
    /// carries the first refusal (code, detail).
    Decided {
        tx: TransferId,
        decision: Decision,
        refusal: Option<(String, String)>,
    },
    /// Every participant applied the decision.
    Finished {
        tx: TransferId,
        decision: Decision,
    },
    /// A message of the token ring, produced at `sent_at` (this bank's clock).
    Ring {
        to: BankId,
        sent_at: TimestampMs,
        msg: RingMessage,
    },
}

/// Everything the writer thread owns besides the connection: the ledger and the two-phase
/// commit's machines, so one group commit makes money and protocol state durable together.
#[derive(Debug)]
pub struct Machines {
    pub ledger: Ledger,
    pub coordinator: Coordinator,
    pub participant: Participant,
    /// The consortium's members (this bank alone when it has no consortium).
    pub members: BTreeSet<BankId>,
    /// How long a coordinator waits for votes.
    pub prepare_expiry_ms: i64,
    /// Why a transaction was refused, from its first no vote, for the customer's answer.
    refusals: HashMap<TransferId, (String, String)>,
    /// Failpoints reached in the current batch, hit once it is durable.
    failpoints: Vec<&'static str>,
    /// The token ring's gate on cross-bank work; `None` in `concurrent` mode (or alone).
    pub ring: Option<RingGate>,
    /// Transactions a `token-ring` run left queued, begun at the first tick of a `concurrent` one.
    pub unqueued: Vec<super::QueuedTx>,
    /// How long finished decisions stay in memory (see `Limits::decision_memory_ms`).
    pub decision_memory_ms: i64,
}

impl Machines {
    pub fn new(
        ledger: Ledger,
        records: Vec<CoordinatorRecord>,
        members: BTreeSet<BankId>,
        prepare_expiry_ms: i64,
        ring: Option<RingGate>,
    ) -> Self {
        let bank = ledger.bank_id();
        Machines {
            coordinator: Coordinator::recover(bank, RetryPolicy::DEFAULT, records),
            participant: Participant::new(bank, RetryPolicy::DEFAULT),
            ledger,
            members,
            prepare_expiry_ms,
            refusals: HashMap::new(),
            failpoints: Vec::new(),
            ring,
            unqueued: Vec::new(),
            decision_memory_ms: i64::MAX,
        }
    }
}

/// A request to the writer. Each carries the channel its answer goes back on.
#[derive(Debug)]
pub enum Command {
    OpenAccount {
        new: Box<NewAccount>,
        reply: Reply<Opened>,
    },
    RegisterKey {
        account: AccountNumber,
        request: KeyRequest,
        reply: Reply<PixKey>,
    },
    Deposit {
        account: AccountNumber,
        amount: Amount,
        method: DepositMethod,
        idem: (IdempotencyKey, Fingerprint),
        reply: Reply<Outcome>,
    },
    Withdraw {
        account: AccountNumber,
        amount: Amount,
        idem: (IdempotencyKey, Fingerprint),
        reply: Reply<Outcome>,
    },
    Transfer {
        request: Box<TransferRequest>,
        reply: Reply<(Outcome, Vec<ProtocolOutput>)>,
    },
    /// Messages from bank `from` for this bank's protocol machines.
    ProtocolDeliver {
        from: BankId,
        messages: Vec<Message>,
        reply: Reply<Vec<ProtocolOutput>>,
    },
    /// Registers a Pix key consortium-wide: a two-phase commit that reserves it at every bank.
    ClaimKey {
        account: AccountNumber,
        /// `None`: the account's CPF/CNPJ key.
        request: Option<KeyRequest>,
        reply: Reply<(TransferId, PixKey, Vec<ProtocolOutput>)>,
    },
    /// Runs the protocol machines' timers.
    ProtocolTick {
        reply: Reply<Vec<ProtocolOutput>>,
    },
    /// Runs the token ring's timers.
    RingTick {
        reply: Reply<Vec<ProtocolOutput>>,
    },
    /// Token-ring messages from bank `from`, each with the time it was produced there.
    RingDeliver {
        from: BankId,
        messages: Vec<(TimestampMs, RingMessage)>,
        reply: Reply<Vec<ProtocolOutput>>,
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

    pub async fn open_account(&self, new: NewAccount) -> Result<Opened, Error> {
        self.submit(|reply| Command::OpenAccount { new: Box::new(new), reply }).await
    }

    pub async fn register_key(&self, account: AccountNumber, request: KeyRequest) -> Result<PixKey, Error> {
        self.submit(|reply| Command::RegisterKey { account, request, reply }).await
    }

    pub async fn deposit(
        &self,
        account: AccountNumber,
        amount: Amount,
        method: DepositMethod,
        idem: (IdempotencyKey, Fingerprint),
    ) -> Result<Outcome, Error> {
        self.submit(|reply| Command::Deposit { account, amount, method, idem, reply }).await
    }

    pub async fn withdraw(
        &self,
        account: AccountNumber,
        amount: Amount,
        idem: (IdempotencyKey, Fingerprint),
    ) -> Result<Outcome, Error> {
        self.submit(|reply| Command::Withdraw { account, amount, idem, reply }).await
    }

    /// Runs or begins a transfer. A cross-bank one comes back `pending`, with the protocol's
    /// first outputs (the prepares) for the driver to carry out.
    pub async fn transfer(&self, request: TransferRequest) -> Result<(Outcome, Vec<ProtocolOutput>), Error> {
        self.submit(|reply| Command::Transfer { request: Box::new(request), reply }).await
    }

    pub async fn protocol_deliver(&self, from: BankId, messages: Vec<Message>) -> Result<Vec<ProtocolOutput>, Error> {
        self.submit(|reply| Command::ProtocolDeliver { from, messages, reply }).await
    }

    /// Begins the registration of a key (`None`: the account's CPF/CNPJ key) at every bank.
    pub async fn claim_key(
        &self,
        account: AccountNumber,
        request: Option<KeyRequest>,
    ) -> Result<(TransferId, PixKey, Vec<ProtocolOutput>), Error> {
        self.submit(|reply| Command::ClaimKey { account, request, reply }).await
    }

    pub async fn protocol_tick(&self) -> Result<Vec<ProtocolOutput>, Error> {
        self.submit(|reply| Command::ProtocolTick { reply }).await
    }

    pub async fn ring_tick(&self) -> Result<Vec<ProtocolOutput>, Error> {
        self.submit(|reply| Command::RingTick { reply }).await
    }

    pub async fn ring_deliver(
        &self,
        from: BankId,
        messages: Vec<(TimestampMs, RingMessage)>,
    ) -> Result<Vec<ProtocolOutput>, Error> {
        self.submit(|reply| Command::RingDeliver { from, messages, reply }).await
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

pub(crate) fn now_ms() -> TimestampMs {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    TimestampMs(ms)
}

/// Starts the writer thread over `conn` and `ledger`.
pub fn spawn(
    conn: Connection,
    machines: Machines,
    bank_id: BankId,
    queue_len_max: usize,
    batch_len_max: usize,
    entry_index: Arc<EntryIndex>,
    metrics: Arc<Metrics>,
) -> std::io::Result<(WriterHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = sync_channel(queue_len_max);
    let queue_len = Arc::new(AtomicI64::new(0));
    let handle = WriterHandle { tx, queue_len: queue_len.clone() };
    let thread = std::thread::Builder::new()
        .name(format!("ledger-writer-{bank_id}"))
        .spawn(move || run(conn, machines, rx, batch_len_max, queue_len, entry_index, metrics))?;
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

fn run(
    mut conn: Connection,
    mut machines: Machines,
    rx: Receiver<Command>,
    batch_len_max: usize,
    queue_len: Arc<AtomicI64>,
    entry_index: Arc<EntryIndex>,
    metrics: Arc<Metrics>,
) {
    let mut changes: Vec<Change> = Vec::with_capacity(64);
    let mut answers: Vec<Answer> = Vec::with_capacity(batch_len_max);
    let mut shutdown: Option<oneshot::Sender<()>> = None;
    while shutdown.is_none() {
        let Ok(first) = rx.recv() else { break };
        let mut batch = vec![first];
        while batch.len() < batch_len_max {
            match rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        queue_len.fetch_sub(batch.len() as i64, Ordering::Relaxed);
        let started = Instant::now();
        let batch_len = batch.len();
        let result = (|| -> super::Result<Vec<(AccountNumber, u64)>> {
            let tx = conn.transaction()?;
            let new_entries = {
                let mut writer = BatchWriter::new(&tx);
                let now = now_ms();
                for cmd in batch {
                    changes.clear();
                    if let Command::Shutdown { reply } = cmd {
                        shutdown = Some(reply);
                        continue;
                    }
                    let ans = apply(&mut machines, &tx, &mut writer, cmd, now, &mut changes)?;
                    answers.push(ans);
                }
                writer.finish()?;
                std::mem::take(&mut writer.new_entries)
            };
            let commit_started = Instant::now();
            tx.commit()?;
            metrics.observe_commit(commit_started.elapsed());
            Ok(new_entries)
        })();
        match result {
            // Durable: now readers may see the batch's lines.
            Ok(new_entries) => {
                entry_index.append(&new_entries);
                for name in machines.failpoints.drain(..) {
                    crate::failpoint::hit(name);
                }
            }
            Err(e) => {
                // Memory is now ahead of disk; serving on would acknowledge what is not durable.
                tracing::error!(error = %e, "ledger commit failed; aborting so a restart rebuilds from disk");
                std::process::abort();
            }
        }
        metrics.observe_batch(batch_len, started.elapsed());
        for ans in answers.drain(..) {
            ans();
        }
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "checkpoint at shutdown failed (the WAL is replayed at next start)");
    }
    tracing::info!("ledger writer stopped");
    if let Some(reply) = shutdown {
        let _ = reply.send(());
    }
}

/// Turns a replay into the first outcome, read back from storage.
fn resolve(tx: &rusqlite::Transaction<'_>, result: Result<Outcome, Error>) -> super::Result<Result<Outcome, Error>> {
    match result {
        Ok(Outcome::Replayed(reference)) => super::resolve(tx, reference).map(Ok),
        other => Ok(other),
    }
}

/// Writes the changes one command made, in order, and clears them.
fn flush(writer: &mut BatchWriter<'_>, changes: &mut Vec<Change>) -> super::Result<()> {
    for change in changes.drain(..) {
        writer.write(&change)?;
    }
    Ok(())
}

fn apply(
    m: &mut Machines,
    tx: &rusqlite::Transaction<'_>,
    writer: &mut BatchWriter<'_>,
    cmd: Command,
    now: TimestampMs,
    changes: &mut Vec<Change>,
) -> super::Result<Answer> {
    let ledger = &mut m.ledger;
    let answer = match cmd {
        Command::OpenAccount { new, reply } => answer(reply, ledger.open_account(*new, now, changes)),
        Command::RegisterKey { account, request, reply } => {
            answer(reply, ledger.register_key(&account, request, changes))
        }
        Command::Deposit { account, amount, method, idem, reply } => {
            answer(reply, resolve(tx, ledger.deposit(&account, amount, method, idem, now, changes))?)
        }
        Command::Withdraw { account, amount, idem, reply } => {
            answer(reply, resolve(tx, ledger.withdraw(&account, amount, idem, now, changes))?)
        }
        Command::Transfer { mut request, reply } => {
            request.now = now;
            match ledger.plan_transfer(*request, &m.members, changes) {
                Err(e) => answer(reply, Err(e)),
                Ok(Plan::Done(outcome)) => {
                    let outcome = resolve(tx, Ok(outcome))?;
                    answer(reply, outcome.map(|o| (o, Vec::new())))
                }
                Ok(Plan::CrossBank { transfer, legs }) => {
                    flush(writer, changes)?;
                    let outputs = match &mut m.ring {
                        None => begin_cross_bank(m, tx, writer, transfer.id, legs, now, changes)?,
                        Some(gate) if gate.has_room() => {
                            let queued = super::QueuedTx { tx: transfer.id, legs, queued_at: now };
                            super::enqueue_ring_tx(tx, &queued)?;
                            gate.enqueue(queued);
                            tracing::debug!(transfer_id = %transfer.id, "cross-bank transfer waits for the token");
                            ring_turn(m, tx, writer, now, changes)?
                        }
                        Some(_) => {
                            let reason = ("overloaded", "too many transfers wait for the token".to_string());
                            vec![fail_unbegun(m, tx, writer, transfer.id, reason)?]
                        }
                    };
                    answer(reply, Ok((Outcome::Transfer(transfer), outputs)))
                }
            }
        }
        Command::ProtocolDeliver { from, messages, reply } => {
            let mut outputs = Vec::new();
            for msg in messages {
                outputs.extend(deliver(m, tx, writer, from, msg, now, changes)?);
            }
            let mut outputs = loopback(m, tx, writer, outputs, now, changes)?;
            outputs.extend(ring_turn(m, tx, writer, now, changes)?);
            answer(reply, Ok(outputs))
        }
        Command::ClaimKey { account, request, reply } => {
            let claim = match request {
                Some(request) => ledger.claim_key(&account, request).map(Some),
                None => ledger.claim_document_key(&account),
            };
            match claim {
                Err(e) => answer(reply, Err(e)),
                Ok(None) => answer(reply, Err(Error::invalid("a joint account has no CPF/CNPJ key"))),
                Ok(Some(claim)) => {
                    let id = TransferId(uuid::Uuid::now_v7());
                    let key = claim.key.clone();
                    let legs = m
                        .members
                        .iter()
                        .map(|&bank| (bank, bank_core::twopc::Legs { keys: vec![claim.clone()], ..Default::default() }))
                        .collect();
                    let expires_at = TimestampMs(now.0 + m.prepare_expiry_ms);
                    let outputs = m.coordinator.begin(id, legs, expires_at, now);
                    let outputs = carry_out_coordinator(m, tx, writer, outputs)?;
                    let outputs = loopback(m, tx, writer, outputs, now, changes)?;
                    answer(reply, Ok((id, key, outputs)))
                }
            }
        }
        Command::ProtocolTick { reply } => {
            // Memory keeps recent decisions only; `deliver` reads older ones back when needed.
            let bound = super::transfer_id_at(now.0.saturating_sub(m.decision_memory_ms));
            m.coordinator.forget_finished_before(bound);
            m.ledger.forget_decisions_before(bound);
            let out = m.coordinator.tick(now);
            let mut outputs = carry_out_coordinator(m, tx, writer, out)?;
            let unqueued = std::mem::take(&mut m.unqueued);
            outputs.extend(begin_queued(m, tx, writer, unqueued, now, changes)?);
            outputs.extend(participant_outputs(m.participant.tick(&m.ledger, now)));
            let mut outputs = loopback(m, tx, writer, outputs, now, changes)?;
            outputs.extend(ring_turn(m, tx, writer, now, changes)?);
            answer(reply, Ok(outputs))
        }
        Command::RingTick { reply } => {
            let mut outputs = Vec::new();
            if let Some(gate) = &mut m.ring {
                let out = gate.tick();
                outputs = carry_out_ring(m, tx, out, now)?;
            }
            outputs.extend(ring_turn(m, tx, writer, now, changes)?);
            answer(reply, Ok(outputs))
        }
        Command::RingDeliver { from, messages, reply } => {
            let mut outputs = Vec::new();
            for (sent_at, msg) in messages {
                if let Some(gate) = &mut m.ring {
                    let out = gate.step(from, sent_at, msg, now);
                    outputs.extend(carry_out_ring(m, tx, out, now)?);
                }
            }
            outputs.extend(ring_turn(m, tx, writer, now, changes)?);
            answer(reply, Ok(outputs))
        }
        Command::CreateSession { token_hash, account, expires_at, reply } => {
            if ledger.account(&account).is_none() {
                answer(reply, Err(Error::Unauthorized("no such account".into())))
            } else {
                tx.prepare_cached(
                    "INSERT INTO sessions (token_hash, account, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![&token_hash[..], account.as_str(), now.0, expires_at.0])?;
                answer(reply, Ok(()))
            }
        }
        Command::RevokeSession { token_hash, reply } => {
            tx.prepare_cached("UPDATE sessions SET revoked = 1 WHERE token_hash = ?1")?.execute([&token_hash[..]])?;
            answer(reply, Ok(()))
        }
        Command::Shutdown { .. } => unreachable!("handled by the loop"),
    };
    flush(writer, changes)?;
    Ok(answer)
}

/// Begins coordinating a planned cross-bank transaction: its prepares go out after this batch.
#[allow(clippy::too_many_arguments)]
fn begin_cross_bank(
    m: &mut Machines,
    tx: &rusqlite::Transaction<'_>,
    writer: &mut BatchWriter<'_>,
    id: TransferId,
    legs: bank_core::twopc::LegsByBank,
    now: TimestampMs,
    changes: &mut Vec<Change>,
) -> super::Result<Vec<ProtocolOutput>> {
    let expires_at = TimestampMs(now.0 + m.prepare_expiry_ms);
    let outputs = m.coordinator.begin(id, legs, expires_at, now);
    let outputs = carry_out_coordinator(m, tx, writer, outputs)?;
    tracing::debug!(transfer_id = %id, "cross-bank transfer begun");
    loopback(m, tx, writer, outputs, now, changes)
}

/// Fails a planned cross-bank transaction that was never begun (it held and moved nothing):
/// its record says why, and its waiter hears the abort.
fn fail_unbegun(
    m: &mut Machines,
    tx: &rusqlite::Transaction<'_>,
    writer: &mut BatchWriter<'_>,
    id: TransferId,
    (code, detail): (&str, String),
) -> super::Result<ProtocolOutput> {
    let reason = (code.to_string(), detail);
    settle(m, tx, writer, id, Status::Failed, Some(reason.clone()))?;
    Ok(ProtocolOutput::Decided { tx: id, decision: Decision::Aborted, refusal: Some(reason) })
}

/// Takes queued transactions out of the durable queue and begins them, in this batch.
fn begin_queued(
    m: &mut Machines,
    tx: &rusqlite::Transaction<'_>,
    writer: &mut BatchWriter<'_>,
    queued: Vec<super::QueuedTx>,
    now: TimestampMs,
    changes: &mut Vec<Change>,
) -> super::Result<Vec<ProtocolOutput>> {
    let mut outputs = Vec::new();
    for q in queued {
        super::dequeue_ring_tx(tx, &q.tx)?;
        outputs.extend(begin_cross_bank(m, tx, writer, q.tx, q.legs, now, changes)?);
    }
    Ok(outputs)
}

/// Most visits one command may start and end (a ring of one starts a new visit at once).
const RING_TURNS_MAX: usize = 4;

/// Moves the token ring's gate along after a command: fails transactions that waited too long
/// for the token, begins what the current visit allows, and tells the ring when the visit's
/// batch is decided (which may pass the token, or — alone — start the next visit).
fn ring_turn(
    m: &mut Machines,
    tx: &rusqlite::Transaction<'_>,
    writer: &mut BatchWriter<'_>,
    now: TimestampMs,
    changes: &mut Vec<Change>,
) -> super::Result<Vec<ProtocolOutput>> {
    let mut outputs = Vec::new();
    if m.ring.is_none() {
        return Ok(outputs);
    }
    for _ in 0..RING_TURNS_MAX {
        let Some(gate) = &mut m.ring else { break };
        let expired = gate.expired(now);
        let wait_s = gate.options().queue_wait_max_ms / 1000;
        for queued in expired {
            super::dequeue_ring_tx(tx, &queued.tx)?;
            let detail = format!("the consortium's token did not reach this bank within {wait_s} s; nothing was moved");
            outputs.push(fail_unbegun(m, tx, writer, queued.tx, ("bank_unavailable", detail))?);
        }
        let Some(gate) = &mut m.ring else { break };
        let startable = gate.startable(now);
        if !startable.is_empty() {
            m.failpoints.push("ring_batch_begun");
        }
        outputs.extend(begin_queued(m, tx, writer, startable, now, changes)?);
        let Some(gate) = &mut m.ring else { break };
        let out = gate.drive();
        let visit_started = out.iter().any(|o| matches!(o, RingOutput::StartWork { .. }));
        outputs.extend(carry_out_ring(m, tx, out, now)?);
        if !visit_started {
            break;
        }
    }
    if let Some(gate) = &m.ring {
        gate.refresh_view();
    }
    Ok(outputs)
}

/// Carries out the ring's outputs inside the batch: its durable state is written (committed
/// before anything of the batch leaves), visits begin and end, messages are returned to send.
fn carry_out_ring(
    m: &mut Machines,
    tx: &rusqlite::Transaction<'_>,
    outputs: Vec<RingOutput>,
    now: TimestampMs,
) -> super::Result<Vec<ProtocolOutput>> {
    let Some(gate) = &mut m.ring else { return Ok(Vec::new()) };
    gate.observe(&outputs);
    let mut out = Vec::new();
    for output in outputs {
        match output {
            RingOutput::Persist(durable) => super::write_ring_state(tx, &durable)?,
            RingOutput::Send { to, msg } => out.push(ProtocolOutput::Ring { to, sent_at: now, msg }),
            RingOutput::StartWork { epoch, hop, .. } => tracing::trace!(%epoch, hop = hop.0, "token visit begins"),
            RingOutput::StopWork { epoch, hop } => tracing::trace!(%epoch, hop = hop.0, "token visit ends"),
        }
    }
    Ok(out)
}

/// Feeds one message from bank `from` to the machine it is for; returns what that produced.
#[allow(clippy::too_many_arguments)]
fn deliver(
    m: &mut Machines,
    tx: &rusqlite::Transaction<'_>,
    writer: &mut BatchWriter<'_>,
    from: BankId,
    msg: Message,
    now: TimestampMs,
    changes: &mut Vec<Change>,
) -> super::Result<Vec<ProtocolOutput>> {
    // A transaction the machines forgot (memory keeps recent decisions only) is read back from
    // storage first, so they answer as if they had never forgotten it.
    let id = msg.tx();
    match msg.addressee() {
        Role::Coordinator if m.coordinator.phase(&id).is_none() => {
            if let Some(decision) = super::read_finished_decision(tx, &id)? {
                m.coordinator.recall_finished(id, decision);
            }
        }
        Role::Participant if !m.ledger.knows(&id) => {
            if let Some(decision) = super::read_decision(tx, &id)? {
                m.ledger.restore_decision(id, decision);
            }
        }
        _ => {}
    }
    Ok(match msg.addressee() {
        Role::Coordinator => {
            // Remember why, for the customer's answer — only while the vote can still decide (a
            // late refusal would stay in the map forever).
            if let Message::Vote { tx: id, vote: Vote::No { code, detail }, .. } = &msg
                && m.coordinator.phase(id) == Some(bank_core::twopc::TxPhase::Preparing)
            {
                m.refusals.entry(*id).or_insert_with(|| (code.clone(), detail.clone()));
            }
            let out = m.coordinator.step(from, msg, now);
            carry_out_coordinator(m, tx, writer, out)?
        }
        Role::Participant => {
            let out = m.participant.step(&mut m.ledger, from, msg, now, changes);
            flush(writer, changes)?;
            let voted_yes = out
                .iter()
                .any(|o| matches!(o, ParticipantOutput::Send { msg: Message::Vote { vote: Vote::Yes, .. }, .. }));
            if voted_yes {
                m.failpoints.push("participant_voted_yes");
            }
            participant_outputs(out)
        }
    })
}

/// Most rounds of in-batch delivery of this bank's messages to itself (a transaction needs at
/// most a few: prepare → vote → decision → ack); a bug looping forever trips it.
const LOOPBACK_ROUNDS_MAX: usize = 16;

/// Delivers the messages this bank addresses to itself (its coordinator to its own participant
/// and back) right here, in the same batch, instead of through another writer command: they
/// commit together with what produced them, so write-ahead holds, and a cross-bank transfer
/// costs fewer commits. Returns the outputs left for the driver.
fn loopback(
    m: &mut Machines,
    tx: &rusqlite::Transaction<'_>,
    writer: &mut BatchWriter<'_>,
    mut outputs: Vec<ProtocolOutput>,
    now: TimestampMs,
    changes: &mut Vec<Change>,
) -> super::Result<Vec<ProtocolOutput>> {
    let me = m.ledger.bank_id();
    let mut done = Vec::with_capacity(outputs.len());
    for _ in 0..LOOPBACK_ROUNDS_MAX {
        let mut local = Vec::new();
        for output in outputs.drain(..) {
            match output {
                ProtocolOutput::Send { to, msg } if to == me => local.push(msg),
                other => done.push(other),
            }
        }
        if local.is_empty() {
            return Ok(done);
        }
        for msg in local {
            outputs.extend(deliver(m, tx, writer, me, msg, now, changes)?);
        }
    }
    panic!("local protocol messages still flowing after {LOOPBACK_ROUNDS_MAX} rounds: {outputs:?}");
}

fn participant_outputs(outputs: Vec<ParticipantOutput>) -> Vec<ProtocolOutput> {
    outputs
        .into_iter()
        .filter_map(|o| match o {
            ParticipantOutput::Send { to, msg } => Some(ProtocolOutput::Send { to, msg }),
            ParticipantOutput::Refused { from, tx, reason } => {
                tracing::error!(bank = %from, transfer_id = %tx, %reason, "protocol message refused: a peer or this bank is broken");
                None
            }
        })
        .collect()
}

/// Carries out a coordinator's outputs inside the batch: records are written (durable with the
/// batch, before any output leaves), the transfer record follows the decision, and what must be
/// sent or told is returned.
fn carry_out_coordinator(
    m: &mut Machines,
    tx: &rusqlite::Transaction<'_>,
    writer: &mut BatchWriter<'_>,
    outputs: Vec<CoordinatorOutput>,
) -> super::Result<Vec<ProtocolOutput>> {
    let mut out = Vec::new();
    for output in outputs {
        match output {
            CoordinatorOutput::Persist(record) => {
                if matches!(record, CoordinatorRecord::Preparing { .. }) {
                    m.failpoints.push("coordinator_prepared");
                }
                super::write_coordinator_record(tx, &record)?
            }
            CoordinatorOutput::Send { to, msg } => out.push(ProtocolOutput::Send { to, msg }),
            CoordinatorOutput::Decided { tx: id, decision } => {
                if decision == Decision::Committed {
                    m.failpoints.push("coordinator_decided_commit");
                }
                if let Some(gate) = &mut m.ring {
                    gate.decided(&id);
                }
                let refusal = m.refusals.remove(&id);
                let refusal = match decision {
                    Decision::Committed => None,
                    Decision::Aborted => Some(refusal.unwrap_or_else(|| {
                        ("bank_unavailable".into(), "a bank did not answer before the deadline".into())
                    })),
                };
                if let Some(reason) = &refusal {
                    settle(m, tx, writer, id, Status::Failed, Some(reason.clone()))?;
                }
                tracing::debug!(transfer_id = %id, ?decision, "decided");
                out.push(ProtocolOutput::Decided { tx: id, decision, refusal });
            }
            CoordinatorOutput::Finished { tx: id } => {
                let decision = match m.coordinator.phase(&id) {
                    Some(bank_core::twopc::TxPhase::Finished(d)) => d,
                    other => unreachable!("finished transaction {id} in phase {other:?}"),
                };
                if decision == Decision::Committed {
                    settle(m, tx, writer, id, Status::Completed, None)?;
                }
                out.push(ProtocolOutput::Finished { tx: id, decision });
            }
        }
    }
    Ok(out)
}

/// Updates a coordinated transfer's record to its final status (if it is a customer transfer).
/// A failed transfer also leaves its lines, marked failed, in the statement here (API.md).
fn settle(
    m: &mut Machines,
    tx: &rusqlite::Transaction<'_>,
    writer: &mut BatchWriter<'_>,
    id: TransferId,
    status: Status,
    failure: Option<(String, String)>,
) -> super::Result<()> {
    let Some(mut transfer) = super::read::transfer(tx, &id)? else { return Ok(()) };
    transfer.status = status;
    for leg in &mut transfer.legs {
        leg.status = status;
    }
    transfer.failure = failure.map(|(code, detail)| bank_core::ledger::Failure { code, detail });
    writer.write(&Change::TransferRecorded(Box::new(transfer.clone())))?;
    if status == Status::Failed {
        let mut changes = Vec::new();
        m.ledger.record_failed_lines(&transfer, &mut changes);
        for change in &changes {
            writer.write(change)?;
        }
    }
    Ok(())
}
