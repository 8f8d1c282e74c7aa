//! One whole bank as one pure state machine: the ledger, the two-phase commit's coordinator and
//! participant, the Pix key directory and the token ring's gate, composed.
//!
//! # The problem
//!
//! Each protocol is a pure machine of its own ([`crate::ledger`], [`crate::twopc`],
//! [`crate::ring`]), tested alone. A bank is their composition, and the composition has rules of
//! its own that no single machine sees: a cross-bank transfer is planned by the ledger, waits for
//! the token in the gate, is begun by the coordinator, prepared by this bank's own participant in
//! the same batch, and settled in the transfer's record when the coordinator decides; a visit of
//! the token ends as soon as its batch is begun (the coordinator records, the dequeues and the
//! ring's pass are in one step: the pass leaves only after the batch that begins the work is
//! durable), so the token moves on while the two-phase commits run — the ring orders the *start*
//! of cross-bank work, and never two banks start at once (`gate.rs`, `tests/sim_bank.rs`). Written inside the storage
//! layer, that glue could only be tested with SQLite and real time underneath. Here it is a
//! function of its inputs, so the whole bank runs under the deterministic simulator
//! (`tests/sim_bank.rs`), several banks at once, with faults.
//!
//! # Interface
//!
//! [`Bank::step`] takes the time ([`Now`]: the wall clock for expiries and ages, the monotonic
//! tick for the ring) and one [`Input`] — a customer's command, a batch of peer messages, or a
//! timer — and returns a [`Stepped`]: the answer for whoever asked, and the [`Effects`]:
//!
//! - `persist`: what storage must write, in order, in the current batch (ledger changes,
//!   coordinator records, the ring's durable state, the token queue);
//! - `outputs`: what to carry out once the batch is durable (messages to peers, decisions and
//!   finished transactions to wake waiters);
//! - `failpoints` reached, and `events` for metrics and logs.
//!
//! The driver's contract is raft-rs's `Ready`: write `persist`, commit, *then* carry out
//! `outputs` and answer. Everything the machines' write-ahead rules demand (a yes vote after its
//! holds, a decision after its record, a ring grant after its vote) follows from that one rule,
//! because a step's outputs never leave before its batch commits.
//!
//! Messages a bank addresses to itself (its coordinator to its own participant and back) are
//! delivered inside the same step ("loopback"): they commit with what produced them, and a
//! cross-bank transfer costs fewer commits. The driver never sees them.
//!
//! Memory keeps finished decisions for a window only (`decision_memory_ms`); a message about an
//! older transaction is answered from storage through [`Recall`], read within the batch, so the
//! answers are those of a machine that never forgot. Transfers coordinated here are held in
//! memory only while in flight (`open`), to settle their record without reading storage.
//!
//! # What it does not handle
//!
//! Sessions, reads (statements, lookups) and the replay of an idempotent request's first outcome
//! are storage's business: they change no protocol state. Time, randomness (the ids of key
//! registrations) and I/O come from the driver.

mod gate;

use std::collections::{BTreeMap, BTreeSet};

use crate::Error;
use crate::account::NewAccount;
use crate::error::ErrorCode;
use crate::ids::{AccountNumber, BankId, Fingerprint, IdempotencyKey, TimestampMs, TransferId};
use crate::ledger::{
    Change, DepositMethod, Failure, IdempotencyRecord, KeyRequest, Ledger, Legs, LegsByBank, Opened, Outcome, Plan,
    RefundOf, RefundRequest, Refundable, Settlement, Status, Transfer, TransferRequest,
};
use crate::money::Amount;
use crate::pixkey::PixKey;
use crate::ring::{RingDurable, RingMessage, RingOutput, RingStatus, Tick};
use crate::twopc::{
    Coordinator, CoordinatorOutput, CoordinatorRecord, Decision, Message, Participant, ParticipantOutput, Refusal,
    RetryPolicy, Role, TxPhase, Vote,
};

pub use gate::{Arrival, Gate, GateSettings, QueuedTx};

/// The time of a step: the wall clock (Unix ms; expiries, message ages, records) and the
/// monotonic tick the token ring counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub wall: TimestampMs,
    pub tick: Tick,
}

/// How a bank runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankConfig {
    /// The consortium's members (this bank alone when it has no consortium).
    pub members: BTreeSet<BankId>,
    /// How long a coordinator waits for votes.
    pub prepare_expiry_ms: i64,
    /// How long finished decisions stay in memory (older ones are read back through [`Recall`]).
    pub decision_memory_ms: i64,
    /// The most finished decisions — and, apart, the most settlements and received Pix legs —
    /// memory keeps, however busy the window (the newest; the others are read back through
    /// [`Recall`] like older ones). Checked at each tick, so between two ticks memory holds at most
    /// this many plus one tick's arrivals.
    pub decision_memory_max: usize,
    /// The token ring's gate; `None` in `concurrent` mode (and for a bank alone).
    pub gate: Option<GateSettings>,
}

/// What storage had at start-up, to rebuild a bank from.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub ledger: Ledger,
    /// Every unfinished coordinator record, and the finished ones within the memory window.
    pub coordinator_records: Vec<CoordinatorRecord>,
    pub ring_state: RingDurable,
    /// Transactions waiting for the token, oldest first.
    pub queue: Vec<QueuedTx>,
    /// The pending transfers this bank coordinates (their records, to settle on decision).
    pub open_transfers: Vec<Transfer>,
}

/// Reads back what memory forgot: decisions and settlements older than the memory window,
/// idempotency records beyond the ledger's bounded cache, and Pix legs received here before the
/// memory window (their refund figures).
///
/// Storage answers from within the current batch, so it also sees the batch's own writes: a
/// record written by an earlier step of the batch and already evicted from memory is found.
pub trait Recall {
    type Error;
    /// The decision of a transaction this bank coordinated and finished.
    fn coordinator_decision(&mut self, tx: &TransferId) -> Result<Option<Decision>, Self::Error>;
    /// How `tx`'s holds were settled here (as a participant).
    fn settlement(&mut self, tx: &TransferId) -> Result<Option<Settlement>, Self::Error>;
    /// The first outcome of the idempotent request `key` of account `scope`, if still retained.
    fn idempotency(
        &mut self,
        scope: &AccountNumber,
        key: IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, Self::Error>;
    /// The legs of transfer `tx` received here (refunds excluded), with their refund figures.
    fn received_legs(&mut self, tx: &TransferId) -> Result<Vec<(RefundOf, Refundable)>, Self::Error>;
}

/// A recall with nothing to read back (a bank whose memory window covers its whole history).
#[derive(Debug, Clone, Copy, Default)]
pub struct NothingForgotten;

impl Recall for NothingForgotten {
    type Error = std::convert::Infallible;
    fn coordinator_decision(&mut self, _: &TransferId) -> Result<Option<Decision>, Self::Error> {
        Ok(None)
    }
    fn settlement(&mut self, _: &TransferId) -> Result<Option<Settlement>, Self::Error> {
        Ok(None)
    }
    fn idempotency(&mut self, _: &AccountNumber, _: IdempotencyKey) -> Result<Option<IdempotencyRecord>, Self::Error> {
        Ok(None)
    }
    fn received_legs(&mut self, _: &TransferId) -> Result<Vec<(RefundOf, Refundable)>, Self::Error> {
        Ok(Vec::new())
    }
}

/// One input to a bank.
#[derive(Debug, Clone)]
pub enum Input {
    OpenAccount(Box<NewAccount>),
    /// Registers a key at this bank only (a bank alone).
    RegisterKey {
        account: AccountNumber,
        request: KeyRequest,
    },
    Deposit {
        account: AccountNumber,
        amount: Amount,
        method: DepositMethod,
        idem: (IdempotencyKey, Fingerprint),
    },
    Withdraw {
        account: AccountNumber,
        amount: Amount,
        idem: (IdempotencyKey, Fingerprint),
    },
    Transfer(Box<TransferRequest>),
    /// Refunds (part of) a Pix leg received here: a transfer back to its payer.
    Refund(Box<RefundRequest>),
    /// Registers a key consortium-wide (`request: None`: the account's CPF/CNPJ key), as the
    /// two-phase transaction `id` (chosen by the driver: the core has no randomness).
    ClaimKey {
        id: TransferId,
        account: AccountNumber,
        request: Option<KeyRequest>,
    },
    /// Two-phase commit messages from bank `from`.
    Deliver {
        from: BankId,
        messages: Vec<Message>,
    },
    /// Token-ring messages from bank `from`, each with the time it was produced there.
    RingDeliver {
        from: BankId,
        messages: Vec<(TimestampMs, RingMessage)>,
    },
    /// The two-phase commit's timers (re-sends, expiries, outcome queries).
    Tick,
    /// The token ring's timers.
    RingTick,
}

/// The answer to an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Opened(Opened),
    Key(PixKey),
    /// A money movement's outcome (a repeat answers [`Outcome::Replayed`]: storage reads the
    /// first outcome back). A cross-bank transfer answers its pending record.
    Outcome(Outcome),
    /// A consortium-wide key registration was begun as transaction `id`.
    Claim {
        id: TransferId,
        key: PixKey,
    },
    /// Messages and timers have no answer but their effects.
    Done,
}

/// What storage writes for a step, in order, in the current batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    Ledger(Change),
    /// The newest record of a coordinated transaction (replacing older ones).
    Coordinator(CoordinatorRecord),
    /// The ring's durable state (replacing the previous one).
    Ring(RingDurable),
    /// A transaction starts waiting for the token.
    Enqueued(QueuedTx),
    /// A transaction stops waiting (begun, or failed without beginning).
    Dequeued(TransferId),
}

/// What the driver carries out once the step's batch is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send {
        to: BankId,
        msg: Message,
    },
    /// A message of the token ring, produced at `sent_at` (this bank's clock).
    Ring {
        to: BankId,
        sent_at: TimestampMs,
        msg: RingMessage,
    },
    /// A transaction this bank coordinates is decided (its transfer record says so); an abort
    /// carries why.
    Decided {
        tx: TransferId,
        decision: Decision,
        refusal: Option<Refusal>,
    },
    /// Every participant applied the decision.
    Finished {
        tx: TransferId,
        decision: Decision,
    },
}

/// What happened, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A visit of the token began at its position `(epoch, hop)` (`regenerated`: the first visit
    /// of a new epoch after a loss).
    RingVisit { regenerated: bool, epoch: u64, hop: u64 },
    /// The visit at `(epoch, hop)` ended: this bank starts no more cross-bank work under it.
    RingVisitEnded { epoch: u64, hop: u64 },
    /// The token left this bank.
    RingPass,
    /// A stale token was refused.
    StaleTokenRefused,
    /// A queued transaction was begun after waiting this long for the token.
    TokenWait { waited_ms: i64 },
    /// A ring message arrived this old (by its sender's clock).
    RingMessageAge { from: BankId, age_ms: i64 },
    /// A ring message was too old (or dated too far ahead) and was dropped.
    RingMessageDropped { from: BankId, age_ms: i64 },
    /// A protocol message this bank will not carry out: a peer or this bank is broken.
    ProtocolRefused { from: BankId, tx: TransferId, reason: String },
}

/// Everything a step asks the driver to do. See the module essay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    pub persist: Vec<Persist>,
    pub outputs: Vec<Output>,
    pub failpoints: Vec<&'static str>,
    pub events: Vec<Event>,
}

/// A step's answer and effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stepped {
    pub reply: Result<Reply, Error>,
    pub effects: Effects,
}

/// Most rounds of in-step delivery of this bank's messages to itself (a transaction needs at
/// most a few: prepare → vote → decision → ack); a bug looping forever trips it.
const LOOPBACK_ROUNDS_MAX: usize = 16;

/// Most visits one step may start and end (a ring of one starts a new visit at once).
const RING_TURNS_MAX: usize = 4;

/// One bank: its ledger and its protocol machines. See the module essay.
#[derive(Debug, Clone)]
pub struct Bank {
    ledger: Ledger,
    coordinator: Coordinator,
    participant: Participant,
    gate: Option<Gate>,
    config: BankConfig,
    /// Why a transaction is being refused, from its first no vote, for the customer's answer.
    refusals: BTreeMap<TransferId, Refusal>,
    /// Pending transfers this bank coordinates, until their record is settled.
    open: BTreeMap<TransferId, Transfer>,
    /// Transactions a `token-ring` run left queued, begun at the first tick of a `concurrent` one.
    unqueued: Vec<QueuedTx>,
    /// The ledger's changes of the current call, moved to the effects after each call.
    changes: Vec<Change>,
}

impl Bank {
    /// Rebuilds a bank from what storage had, at time `now`.
    pub fn recover(config: BankConfig, recovered: Recovered, now: Now) -> Result<Bank, Error> {
        let Recovered { mut ledger, coordinator_records, ring_state, queue, open_transfers } = recovered;
        let me = ledger.bank_id();
        if config.members.len() > 1 {
            ledger.set_consortium_keys();
        }
        let (gate, unqueued) = match config.gate {
            Some(settings) => {
                let gate = Gate::recover(me, config.members.iter().copied(), settings, ring_state, queue, now.tick)?;
                (Some(gate), Vec::new())
            }
            None => (None, queue),
        };
        Ok(Bank {
            coordinator: Coordinator::recover(me, RetryPolicy::DEFAULT, coordinator_records),
            participant: Participant::new(me, RetryPolicy::DEFAULT),
            ledger,
            gate,
            config,
            refusals: BTreeMap::new(),
            open: open_transfers.into_iter().map(|t| (t.id, t)).collect(),
            unqueued,
            changes: Vec::new(),
        })
    }

    pub fn me(&self) -> BankId {
        self.ledger.bank_id()
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    pub fn config(&self) -> &BankConfig {
        &self.config
    }

    /// The ring as this bank sees it at `now`, and how many transactions wait for the token;
    /// `None` without a ring.
    pub fn ring_status(&self, now: Tick) -> Option<(RingStatus, usize)> {
        self.gate.as_ref().map(|g| g.status(now))
    }

    /// Whether this bank may start cross-bank work at `now` (always, without a ring).
    pub fn may_start_work(&self, now: Tick) -> bool {
        self.gate.as_ref().is_none_or(|g| g.may_start(now))
    }

    /// Transactions waiting for the token.
    pub fn queue_len(&self) -> usize {
        self.gate.as_ref().map_or(self.unqueued.len(), Gate::queue_len)
    }

    /// Transfers coordinated here whose record is not settled yet.
    pub fn open_transfers(&self) -> usize {
        self.open.len()
    }

    /// Feeds one input to the bank. See the module essay.
    pub fn step<R: Recall>(&mut self, now: Now, input: Input, recall: &mut R) -> Result<Stepped, R::Error> {
        let mut fx = Effects::default();
        let reply = match input {
            Input::OpenAccount(new) => self.ledger.open_account(*new, now.wall, &mut self.changes).map(Reply::Opened),
            Input::RegisterKey { account, request } => {
                self.ledger.register_key(&account, request, &mut self.changes).map(Reply::Key)
            }
            Input::Deposit { account, amount, method, idem } => {
                self.recall_idempotency(&account, idem.0, recall)?;
                let outcome = self.ledger.deposit(&account, amount, method, idem, now.wall, &mut self.changes);
                outcome.map(Reply::Outcome)
            }
            Input::Withdraw { account, amount, idem } => {
                self.recall_idempotency(&account, idem.0, recall)?;
                self.ledger.withdraw(&account, amount, idem, now.wall, &mut self.changes).map(Reply::Outcome)
            }
            Input::Transfer(request) => {
                self.recall_idempotency(&request.actor, request.idempotency_key, recall)?;
                self.transfer(now, *request, recall, &mut fx)?
            }
            Input::Refund(request) => {
                self.recall_idempotency(&request.actor, request.idempotency_key, recall)?;
                self.recall_received_legs(&request.original, request.leg, recall)?;
                let mut request = *request;
                request.now = now.wall;
                let plan = self.ledger.plan_refund(request, &self.config.members, &mut self.changes);
                self.run_plan(now, plan, recall, &mut fx)?
            }
            Input::ClaimKey { id, account, request } => self.claim_key(now, id, account, request, recall, &mut fx)?,
            Input::Deliver { from, messages } => {
                for msg in messages {
                    self.deliver(now, from, msg, recall, &mut fx)?;
                }
                self.after_protocol(now, recall, &mut fx)?;
                Ok(Reply::Done)
            }
            Input::RingDeliver { from, messages } => {
                for (sent_at, msg) in messages {
                    self.ring_message(now, from, sent_at, msg, &mut fx);
                }
                self.ring_turn(now, recall, &mut fx)?;
                Ok(Reply::Done)
            }
            Input::Tick => {
                self.tick(now, recall, &mut fx)?;
                Ok(Reply::Done)
            }
            Input::RingTick => {
                if let Some(gate) = &mut self.gate {
                    let out = gate.tick(now.tick);
                    self.carry_out_ring(now, out, &mut fx);
                }
                self.ring_turn(now, recall, &mut fx)?;
                Ok(Reply::Done)
            }
        };
        self.flush(&mut fx);
        Ok(Stepped { reply, effects: fx })
    }

    /// Before a request under an idempotency key: if memory no longer has the key, its record is
    /// read back from storage (within the batch), so the ledger answers as if it never forgot.
    fn recall_idempotency<R: Recall>(
        &mut self,
        scope: &AccountNumber,
        key: IdempotencyKey,
        recall: &mut R,
    ) -> Result<(), R::Error> {
        if !self.ledger.remembers(scope, key)
            && let Some(record) = recall.idempotency(scope, key)?
        {
            self.ledger.restore_idempotency(scope.clone(), key, record);
        }
        Ok(())
    }

    /// Reads back the legs of `tx` received here when memory forgot them (it keeps legs received
    /// within the memory window, and those with refunds in flight): a refund of an older Pix
    /// finds its leg and figures as storage has them, within the current batch.
    fn recall_received_legs<R: Recall>(
        &mut self,
        tx: &TransferId,
        leg: Option<u16>,
        recall: &mut R,
    ) -> Result<(), R::Error> {
        if leg.is_some_and(|leg| self.ledger.refundable(&RefundOf { transfer_id: *tx, leg }).is_some()) {
            return Ok(());
        }
        for (of, refundable) in recall.received_legs(tx)? {
            if self.ledger.refundable(&of).is_none() {
                self.ledger.restore_refundable(of, refundable);
            }
        }
        Ok(())
    }

    /// Moves the ledger's changes of the last call into the effects, in order.
    fn flush(&mut self, fx: &mut Effects) {
        fx.persist.extend(self.changes.drain(..).map(Persist::Ledger));
    }

    /// After protocol messages were delivered: this bank's messages to itself, then the ring.
    fn after_protocol<R: Recall>(&mut self, now: Now, recall: &mut R, fx: &mut Effects) -> Result<(), R::Error> {
        self.loopback(now, recall, fx)?;
        self.ring_turn(now, recall, fx)
    }

    /// Plans a transfer: an in-bank one runs now; a cross-bank one is recorded pending and
    /// begun at once (`concurrent`), or queued for the token.
    fn transfer<R: Recall>(
        &mut self,
        now: Now,
        mut request: TransferRequest,
        recall: &mut R,
        fx: &mut Effects,
    ) -> Result<Result<Reply, Error>, R::Error> {
        request.now = now.wall;
        let plan = self.ledger.plan_transfer(request, &self.config.members, &mut self.changes);
        self.run_plan(now, plan, recall, fx)
    }

    /// Carries out a planned transfer (or refund): an in-bank one is done; a cross-bank one is
    /// begun at once (`concurrent`) or queued for the token.
    fn run_plan<R: Recall>(
        &mut self,
        now: Now,
        plan: Result<Plan, Error>,
        recall: &mut R,
        fx: &mut Effects,
    ) -> Result<Result<Reply, Error>, R::Error> {
        let (transfer, legs) = match plan {
            Err(e) => return Ok(Err(e)),
            Ok(Plan::Done(outcome)) => return Ok(Ok(Reply::Outcome(outcome))),
            Ok(Plan::CrossBank { transfer, legs }) => (transfer, legs),
        };
        self.flush(fx);
        let id = transfer.id;
        self.open.insert(id, transfer.clone());
        match &mut self.gate {
            None => self.begin_cross_bank(now, id, legs, recall, fx)?,
            Some(gate) if gate.has_room() => {
                let queued = QueuedTx { tx: id, legs, queued_at: now.wall };
                fx.persist.push(Persist::Enqueued(queued.clone()));
                gate.enqueue(queued);
                self.ring_turn(now, recall, fx)?;
            }
            Some(_) => {
                let refusal = Refusal::new(ErrorCode::Overloaded, "too many transfers wait for the token");
                self.fail_unbegun(id, refusal, fx);
            }
        }
        Ok(Ok(Reply::Outcome(Outcome::Transfer(transfer))))
    }

    /// Begins a key registration: a transaction that reserves the key at every member.
    fn claim_key<R: Recall>(
        &mut self,
        now: Now,
        id: TransferId,
        account: AccountNumber,
        request: Option<KeyRequest>,
        recall: &mut R,
        fx: &mut Effects,
    ) -> Result<Result<Reply, Error>, R::Error> {
        let claim = match request {
            Some(request) => self.ledger.claim_key(&account, request).map(Some),
            None => self.ledger.claim_document_key(&account),
        };
        let claim = match claim {
            Err(e) => return Ok(Err(e)),
            Ok(None) => return Ok(Err(Error::invalid("a joint account has no CPF/CNPJ key"))),
            Ok(Some(claim)) => claim,
        };
        let key = claim.key.clone();
        let legs =
            self.config.members.iter().map(|&bank| (bank, Legs { keys: vec![claim.clone()], ..Legs::default() }));
        let expires_at = TimestampMs(now.wall.0 + self.config.prepare_expiry_ms);
        let out = self.coordinator.begin(id, legs.collect(), expires_at, now.wall);
        self.carry_out_coordinator(out, fx);
        self.loopback(now, recall, fx)?;
        Ok(Ok(Reply::Claim { id, key }))
    }

    /// The two-phase commit's timers, the forgetting of old decisions, and the transactions a
    /// `token-ring` run left queued.
    fn tick<R: Recall>(&mut self, now: Now, recall: &mut R, fx: &mut Effects) -> Result<(), R::Error> {
        // Memory keeps recent decisions only; `deliver` reads older ones back when needed.
        // Within the window, at most `decision_memory_max` of each (the newest).
        let bound = TransferId::first_at(now.wall.0.saturating_sub(self.config.decision_memory_ms));
        let max = self.config.decision_memory_max;
        self.coordinator.forget_finished(bound, max);
        self.ledger.forget_settlements(bound, max);
        // Received legs too: a refund of an older one reads it back (`recall_received_legs`).
        self.ledger.forget_refundable(TimestampMs(now.wall.0.saturating_sub(self.config.decision_memory_ms)), max);
        let out = self.coordinator.tick(now.wall);
        self.carry_out_coordinator(out, fx);
        let unqueued = std::mem::take(&mut self.unqueued);
        self.begin_queued(now, unqueued, recall, fx)?;
        let out = self.participant.tick(&self.ledger, now.wall);
        self.carry_out_participant(out, fx);
        self.after_protocol(now, recall, fx)
    }

    /// Begins coordinating a planned cross-bank transaction: its prepares go out after this batch.
    fn begin_cross_bank<R: Recall>(
        &mut self,
        now: Now,
        id: TransferId,
        legs: LegsByBank,
        recall: &mut R,
        fx: &mut Effects,
    ) -> Result<(), R::Error> {
        let expires_at = TimestampMs(now.wall.0 + self.config.prepare_expiry_ms);
        let out = self.coordinator.begin(id, legs, expires_at, now.wall);
        self.carry_out_coordinator(out, fx);
        self.loopback(now, recall, fx)
    }

    /// Takes queued transactions out of the durable queue and begins them, in this batch.
    fn begin_queued<R: Recall>(
        &mut self,
        now: Now,
        queued: Vec<QueuedTx>,
        recall: &mut R,
        fx: &mut Effects,
    ) -> Result<(), R::Error> {
        for q in queued {
            fx.persist.push(Persist::Dequeued(q.tx));
            self.begin_cross_bank(now, q.tx, q.legs, recall, fx)?;
        }
        Ok(())
    }

    /// Fails a planned cross-bank transaction that was never begun (it held and moved nothing):
    /// its record says why, and its waiter hears the abort.
    fn fail_unbegun(&mut self, id: TransferId, refusal: Refusal, fx: &mut Effects) {
        self.settle(id, Status::Failed, Some(refusal.clone()), fx);
        fx.outputs.push(Output::Decided { tx: id, decision: Decision::Aborted, refusal: Some(refusal) });
    }

    /// Feeds one message from bank `from` to the machine it is for.
    fn deliver<R: Recall>(
        &mut self,
        now: Now,
        from: BankId,
        msg: Message,
        recall: &mut R,
        fx: &mut Effects,
    ) -> Result<(), R::Error> {
        self.recall_forgotten(&msg, recall)?;
        match msg.addressee() {
            Role::Coordinator => {
                // Remember why, for the customer's answer — only while the vote can still decide
                // (a late refusal would stay in the map forever).
                if let Message::Vote { tx: id, vote: Vote::No { code, detail }, .. } = &msg
                    && self.coordinator.phase(id) == Some(TxPhase::Preparing)
                {
                    self.refusals.entry(*id).or_insert_with(|| Refusal::new(*code, detail.clone()));
                }
                let out = self.coordinator.step(from, msg, now.wall);
                self.carry_out_coordinator(out, fx);
            }
            Role::Participant => {
                let out = self.participant.step(&mut self.ledger, from, msg, now.wall, &mut self.changes);
                self.flush(fx);
                let voted_yes = out
                    .iter()
                    .any(|o| matches!(o, ParticipantOutput::Send { msg: Message::Vote { vote: Vote::Yes, .. }, .. }));
                if voted_yes {
                    fx.failpoints.push("participant_voted_yes");
                }
                self.carry_out_participant(out, fx);
            }
        }
        Ok(())
    }

    /// A transaction the machines forgot (memory keeps recent decisions only) is read back from
    /// storage first, so they answer as if they had never forgotten it.
    fn recall_forgotten<R: Recall>(&mut self, msg: &Message, recall: &mut R) -> Result<(), R::Error> {
        let id = msg.tx();
        match msg.addressee() {
            Role::Coordinator if self.coordinator.phase(&id).is_none() => {
                if let Some(decision) = recall.coordinator_decision(&id)? {
                    self.coordinator.recall_finished(id, decision);
                }
            }
            Role::Participant if !self.ledger.knows(&id) => {
                if let Some(settlement) = recall.settlement(&id)? {
                    self.ledger.restore_settlement(id, settlement);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Delivers the messages this bank addresses to itself right here, in the same step, until
    /// none is left: they commit together with what produced them.
    fn loopback<R: Recall>(&mut self, now: Now, recall: &mut R, fx: &mut Effects) -> Result<(), R::Error> {
        let me = self.me();
        for _ in 0..LOOPBACK_ROUNDS_MAX {
            let mut local = Vec::new();
            for output in std::mem::take(&mut fx.outputs) {
                match output {
                    Output::Send { to, msg } if to == me => local.push(msg),
                    other => fx.outputs.push(other),
                }
            }
            if local.is_empty() {
                return Ok(());
            }
            for msg in local {
                self.deliver(now, me, msg, recall, fx)?;
            }
        }
        panic!("local protocol messages still flowing after {LOOPBACK_ROUNDS_MAX} rounds: {:?}", fx.outputs);
    }

    fn carry_out_participant(&mut self, outputs: Vec<ParticipantOutput>, fx: &mut Effects) {
        for output in outputs {
            match output {
                ParticipantOutput::Send { to, msg } => fx.outputs.push(Output::Send { to, msg }),
                ParticipantOutput::Refused { from, tx, reason } => {
                    fx.events.push(Event::ProtocolRefused { from, tx, reason })
                }
            }
        }
    }

    /// Carries out a coordinator's outputs: records to persist (durable with the batch, before
    /// any output leaves), the transfer record following the decision, and what to send or tell.
    fn carry_out_coordinator(&mut self, outputs: Vec<CoordinatorOutput>, fx: &mut Effects) {
        for output in outputs {
            match output {
                CoordinatorOutput::Persist(record) => {
                    if matches!(record, CoordinatorRecord::Preparing { .. }) {
                        fx.failpoints.push("coordinator_prepared");
                    }
                    fx.persist.push(Persist::Coordinator(record));
                }
                CoordinatorOutput::Send { to, msg } => fx.outputs.push(Output::Send { to, msg }),
                CoordinatorOutput::Decided { tx, decision } => self.decided(tx, decision, fx),
                CoordinatorOutput::Finished { tx } => {
                    let decision = match self.coordinator.phase(&tx) {
                        Some(TxPhase::Finished(d)) => d,
                        other => unreachable!("finished transaction {tx} in phase {other:?}"),
                    };
                    if decision == Decision::Committed {
                        self.settle(tx, Status::Completed, None, fx);
                    }
                    // An aborted one was settled when decided; nothing of it stays open.
                    self.open.remove(&tx);
                    fx.outputs.push(Output::Finished { tx, decision });
                }
            }
        }
    }

    /// A transaction this bank coordinates is decided: an abort settles the
    /// transfer's record as failed (with the first refusal), and waiters are told.
    fn decided(&mut self, tx: TransferId, decision: Decision, fx: &mut Effects) {
        if decision == Decision::Committed {
            fx.failpoints.push("coordinator_decided_commit");
        }
        let refusal = self.refusals.remove(&tx);
        let refusal = match decision {
            Decision::Committed => None,
            Decision::Aborted => Some(refusal.unwrap_or_else(|| {
                Refusal::new(ErrorCode::BankUnavailable, "a bank did not answer before the deadline")
            })),
        };
        if let Some(refusal) = &refusal {
            self.settle(tx, Status::Failed, Some(refusal.clone()), fx);
        }
        fx.outputs.push(Output::Decided { tx, decision, refusal });
    }

    /// Updates a coordinated transfer's record to its final status (if it is a customer transfer,
    /// not a key registration). A failed transfer also leaves its lines, marked failed, in the
    /// statement here (API.md).
    fn settle(&mut self, id: TransferId, status: Status, failure: Option<Refusal>, fx: &mut Effects) {
        let Some(mut transfer) = self.open.remove(&id) else { return };
        transfer.status = status;
        for leg in &mut transfer.legs {
            leg.status = status;
        }
        transfer.failure = failure.map(|r| Failure { code: r.code, detail: r.detail });
        self.flush(fx);
        fx.persist.push(Persist::Ledger(Change::TransferRecorded(Box::new(transfer.clone()))));
        if status == Status::Failed {
            self.ledger.record_failed_lines(&transfer, &mut self.changes);
        }
        self.ledger.close_refund(id, status, &mut self.changes);
        self.flush(fx);
    }

    /// A ring message from `from`: fed to the gate, or dropped when too old.
    fn ring_message(&mut self, now: Now, from: BankId, sent_at: TimestampMs, msg: RingMessage, fx: &mut Effects) {
        let Some(gate) = &mut self.gate else { return };
        let age_ms = now.wall.0 - sent_at.0;
        fx.events.push(Event::RingMessageAge { from, age_ms });
        match gate.step(from, sent_at, msg, now.wall, now.tick) {
            Arrival::Stepped(out) => self.carry_out_ring(now, out, fx),
            Arrival::Dropped => fx.events.push(Event::RingMessageDropped { from, age_ms }),
        }
    }

    /// Moves the gate along: fails transactions that waited too long for the token, begins what
    /// the current visit allows, and tells the ring when the visit's batch is decided (which may
    /// pass the token, or — alone — start the next visit).
    fn ring_turn<R: Recall>(&mut self, now: Now, recall: &mut R, fx: &mut Effects) -> Result<(), R::Error> {
        for _ in 0..RING_TURNS_MAX {
            let Some(gate) = &mut self.gate else { return Ok(()) };
            let expired = gate.expired(now.wall);
            let wait_s = gate.settings().queue_wait_max_ms / 1000;
            let startable = gate.startable(now.tick);
            for queued in expired {
                fx.persist.push(Persist::Dequeued(queued.tx));
                let detail =
                    format!("the consortium's token did not reach this bank within {wait_s} s; nothing was moved");
                self.fail_unbegun(queued.tx, Refusal::new(ErrorCode::BankUnavailable, detail), fx);
            }
            if !startable.is_empty() {
                fx.failpoints.push("ring_batch_begun");
            }
            for q in &startable {
                fx.events.push(Event::TokenWait { waited_ms: (now.wall.0 - q.queued_at.0).max(0) });
            }
            self.begin_queued(now, startable, recall, fx)?;
            let Some(gate) = &mut self.gate else { return Ok(()) };
            let out = gate.drive(now.tick);
            let visit_started = out.iter().any(|o| matches!(o, RingOutput::StartWork { .. }));
            self.carry_out_ring(now, out, fx);
            if !visit_started {
                break;
            }
        }
        Ok(())
    }

    /// Carries out the ring's outputs: its durable state is persisted (committed before anything
    /// of the batch leaves), visits begin and end, messages are sent after the batch.
    fn carry_out_ring(&mut self, now: Now, outputs: Vec<RingOutput>, fx: &mut Effects) {
        let Some(gate) = &mut self.gate else { return };
        gate.observe(&outputs);
        for output in outputs {
            match output {
                RingOutput::Persist(durable) => fx.persist.push(Persist::Ring(durable)),
                RingOutput::Send { to, msg } => {
                    if matches!(msg, RingMessage::TokenRefused { .. }) {
                        fx.events.push(Event::StaleTokenRefused);
                    }
                    fx.outputs.push(Output::Ring { to, sent_at: now.wall, msg });
                }
                RingOutput::StartWork { epoch, hop, .. } => fx.events.push(Event::RingVisit {
                    regenerated: hop.0 == 0 && epoch.0 > 1,
                    epoch: epoch.0,
                    hop: hop.0,
                }),
                RingOutput::StopWork { epoch, hop } => {
                    fx.events.push(Event::RingVisitEnded { epoch: epoch.0, hop: hop.0 });
                    if gate.has_peers() {
                        fx.events.push(Event::RingPass);
                    }
                }
            }
        }
    }
}
