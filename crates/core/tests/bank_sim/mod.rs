//! A deterministic simulator of a whole consortium: several composite banks
//! ([`bank_core::bank::Bank`]: ledger, two-phase commit, key directory and token ring together),
//! a hostile network and crashing machines — all driven by one seeded [`Rng`], so a seed
//! replays exactly.
//!
//! # The world
//!
//! Each bank runs exactly the code the node runs; the simulator plays the node's driver and
//! storage. A step's [`Effects`] are applied as the node's writer does: `persist` goes to the
//! bank's [`Store`] (its SQLite, reduced to what a restart reads back), *then* its outputs go on
//! the wire. Customers submit cross-bank Pix, three-bank packets, in-bank transfers, deposits,
//! withdrawals and key registrations at random banks; timers tick (the 2PC's every 100 ms, the
//! ring's every 10 ms); messages are delayed (so reordered), lost and duplicated.
//!
//! A crash strikes between steps, or inside one: before its batch commits (the step left no
//! trace on disk: memory was ahead of disk, which is why the node aborts), or after it, having
//! sent only a prefix of its outputs. A crashed bank loses its memory and the messages in flight
//! to it; it restarts after a pause from its store alone ([`Bank::recover`]), with a memory window
//! for finished decisions that may be short, so late messages are answered through [`Recall`].
//!
//! # What is checked
//!
//! After every step: every up bank's ledger invariants (no negative available money, `held` equal
//! to its holds); no bank refused a protocol message; every durable decision of a transaction
//! (coordinator records, participants' ledgers) agrees with every other; at most one bank may
//! start cross-bank work at any time, and each token epoch is created once (DESIGN.md §8.6);
//! no Pix key is committed for two accounts (§8.7).
//!
//! At the end, after healing: every bank comes back, the network delivers, and within a bound the
//! consortium is quiet — nothing in flight, no hold, no queue. Then: every transfer decided the
//! same way everywhere (§8.5) and its record settled; every account's balance is exactly its
//! initial balance plus deposits minus withdrawals plus the legs of committed transfers (money is
//! conserved and every packet is all-or-nothing, §8.1–3); every acknowledged operation is in the
//! store (§8.4); every bank's directory agrees (§8.7).
//!
//! Refunds (devoluções): customers also refund Pix legs received, two or three refunds of about
//! 60 % of one leg at once, so they race, under the same crashes. After every step each ledger
//! asserts that a leg's refunded and reserved sums fit its amount; at the end, that the refunded
//! sum of every leg equals its completed refunds, never exceeds it, and nothing stays reserved.

use std::collections::{BTreeMap, BTreeSet};

use bank_core::Amount;
use bank_core::account::{AccountKind, Holder, NewAccount};
use bank_core::bank::{
    Bank, BankConfig, Effects, Event, GateSettings, Input, Now, Output, Persist, QueuedTx, Recall, Recovered, Reply,
};
use bank_core::contact::{Email, Phone};
use bank_core::document::{Cpf, Document};
use bank_core::ids::{AccountNumber, BankId, Fingerprint, IdempotencyKey, TimestampMs, TransferId};
use bank_core::ledger::{
    AccountRef, Change, DepositMethod, Destination, KEYS_PER_ACCOUNT_MAX, KeyRequest, LegRequest, Outcome, RefundOf,
    RefundRequest, Settlement, Status, TransferRequest,
};
use bank_core::pixkey::PixKey;
use bank_core::ring::{Epoch, RingDurable, RingMessage, RingSettings, Tick};
use bank_core::twopc::{CoordinatorRecord, Decision, Message};
use uuid::Uuid;

pub use crate::support::ledger_store::LedgerStore;
pub use crate::support::{Rng, Tally};

/// Length of a ring tick (as the node's default).
const TICK_MS: i64 = 10;
/// Period of the two-phase commit's timers (as the node's driver).
const PROTOCOL_TICK_MS: i64 = 100;

// ----- knobs --------------------------------------------------------------------------------------

/// Everything a seed varies.
#[derive(Debug, Clone)]
pub struct Knobs {
    pub banks: usize,
    pub accounts_per_bank: usize,
    /// Operations customers submit during the run.
    pub operations: usize,
    /// Chance per step (10 ms) that a customer submits one.
    pub submit_per_mille: u32,
    /// `token-ring` (a gate) or `concurrent`.
    pub ring: bool,
    pub delay_ms: (i64, i64),
    pub loss_per_mille: u32,
    pub duplicate_per_mille: u32,
    /// Chance per step that an up bank crashes between steps.
    pub crash_per_mille: u32,
    /// Chance per bank step that it crashes inside the step (before or after its commit).
    pub mid_step_crash_per_mille: u32,
    pub downtime_ms: (i64, i64),
    /// Each bank's wall clock is ahead of the world's by this much (within the ring's allowance).
    pub clock_skew_ms: (i64, i64),
    pub prepare_expiry_ms: i64,
    /// How long finished decisions stay in memory (short ones exercise [`Recall`]).
    pub decision_memory_ms: i64,
    /// How many finished decisions, settlements and received legs memory keeps (a tiny bound
    /// exercises [`Recall`] within a long window).
    pub decision_memory_max: usize,
    /// Key registrations race for one account: most operations claim a new random key for
    /// the first account of bank 1, many at once, past [`KEYS_PER_ACCOUNT_MAX`] (issue 16).
    pub key_race: KeyRace,
}

/// Whether a seed races many key registrations for one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRace {
    Off,
    OneAccount,
}

impl Knobs {
    pub fn random(rng: &mut Rng) -> Self {
        Knobs {
            banks: 3 + rng.below(3),
            accounts_per_bank: 2 + rng.below(2),
            operations: 15 + rng.below(30),
            submit_per_mille: [20, 80, 300][rng.below(3)],
            ring: rng.per_mille(700),
            delay_ms: (1, [5, 20, 60][rng.below(3)]),
            loss_per_mille: [0, 20, 100][rng.below(3)],
            duplicate_per_mille: [0, 20, 100][rng.below(3)],
            crash_per_mille: [0, 1, 4][rng.below(3)],
            mid_step_crash_per_mille: [0, 2, 10][rng.below(3)],
            downtime_ms: (10, [200, 1_500][rng.below(2)]),
            clock_skew_ms: (0, [0, 20, 45][rng.below(3)]),
            prepare_expiry_ms: [300, 2_000][rng.below(2)],
            decision_memory_ms: [50, 600_000][rng.below(2)],
            // Set just below, from knobs already drawn, so the seeds draw exactly as before.
            decision_memory_max: 0,
            // Set by the world from the seed, so other seeds draw exactly as before.
            key_race: KeyRace::Off,
        }
        .with_memory_bound()
    }

    /// A quarter of the seeds keep a long memory window but only 4 of each finished thing in it:
    /// forgetting by number, not age, with the same read-backs.
    fn with_memory_bound(mut self) -> Self {
        let long_window_short_bound = self.decision_memory_ms == 600_000 && self.prepare_expiry_ms == 2_000;
        self.decision_memory_max = if long_window_short_bound { 4 } else { 65_536 };
        self
    }

    /// The node's ring timing (in 10 ms ticks), with a roomy queue.
    fn gate(&self) -> GateSettings {
        GateSettings {
            ring: RingSettings {
                lease_ticks: 30,
                hop_timeout_ticks: 15,
                idle_pause_ticks: 3,
                retry_ticks: 3,
                priority_stagger_ticks: 10,
                ops_per_visit: 8,
            },
            queue_len_max: 1_000,
            queue_wait_max_ms: 10_000,
            message_age_max_ms: 100,
        }
    }
}

// ----- storage ------------------------------------------------------------------------------------

/// What one bank's database holds, reduced to what a restart reads back: the ledger's tables
/// and the protocols' (coordinator records, the ring's state, the token queue).
#[derive(Debug, Clone)]
pub struct Store {
    /// The bank whose database this is.
    id: BankId,
    ledger: LedgerStore,
    records: BTreeMap<TransferId, CoordinatorRecord>,
    ring: RingDurable,
    queue: BTreeMap<TransferId, QueuedTx>,
}

impl Store {
    fn new(id: BankId) -> Store {
        Store {
            id,
            ledger: LedgerStore::default(),
            records: BTreeMap::new(),
            ring: RingDurable::default(),
            queue: BTreeMap::new(),
        }
    }

    fn apply(&mut self, item: &Persist) {
        match item {
            Persist::Ledger(change) => self.ledger.apply(change),
            Persist::Coordinator(record) => {
                self.records.insert(record.tx(), record.clone());
            }
            Persist::Ring(durable) => self.ring = durable.clone(),
            Persist::Enqueued(queued) => {
                self.queue.insert(queued.tx, queued.clone());
            }
            Persist::Dequeued(tx) => {
                self.queue.remove(tx);
            }
        }
    }

    /// What the node's start-up reads: see `storage::load_bank`.
    fn recovered(&self, bank: BankId, remembered_since: TransferId) -> Recovered {
        let ledger = self.ledger.rebuild(bank, remembered_since);
        let records: Vec<CoordinatorRecord> = self
            .records
            .values()
            .filter(|r| !matches!(r, CoordinatorRecord::Finished { .. }) || r.tx() >= remembered_since)
            .cloned()
            .collect();
        let mut queue: Vec<QueuedTx> = self.queue.values().cloned().collect();
        queue.sort_by_key(|q| (q.queued_at, q.tx));
        let unfinished = records.iter().filter(|r| !matches!(r, CoordinatorRecord::Finished { .. })).map(|r| r.tx());
        let open_transfers = unfinished
            .chain(queue.iter().map(|q| q.tx))
            .filter_map(|id| self.ledger.transfers.get(&id))
            .filter(|t| t.status == Status::Pending)
            .cloned()
            .collect();
        Recovered { ledger, coordinator_records: records, ring_state: self.ring.clone(), queue, open_transfers }
    }
}

impl Recall for &Store {
    type Error = std::convert::Infallible;

    fn coordinator_decision(&mut self, tx: &TransferId) -> Result<Option<Decision>, Self::Error> {
        Ok(match self.records.get(tx) {
            Some(CoordinatorRecord::Finished { decision, .. }) => Some(*decision),
            _ => None,
        })
    }

    fn settlement(&mut self, tx: &TransferId) -> Result<Option<Settlement>, Self::Error> {
        Ok(self.ledger.settlements.get(tx).copied())
    }

    fn idempotency(
        &mut self,
        scope: &bank_core::ids::AccountNumber,
        key: bank_core::ids::IdempotencyKey,
    ) -> Result<Option<bank_core::ledger::IdempotencyRecord>, Self::Error> {
        Ok(self.ledger.idempotency_record(scope, key))
    }

    fn received_legs(
        &mut self,
        tx: &TransferId,
    ) -> Result<Vec<(RefundOf, bank_core::ledger::Refundable)>, Self::Error> {
        Ok(self.ledger.received_legs(self.id, tx))
    }
}

// ----- the world ----------------------------------------------------------------------------------

/// One bank's machine.
#[derive(Debug)]
pub struct Machine {
    pub id: BankId,
    /// `None` while crashed.
    pub bank: Option<Bank>,
    pub store: Store,
    incarnation: u64,
    restart_at_ms: i64,
    clock_skew_ms: i64,
}

/// What travels between banks.
#[derive(Debug, Clone)]
enum Payload {
    Protocol(Message),
    Ring { sent_at: TimestampMs, msg: RingMessage },
}

#[derive(Debug, Clone)]
struct Packet {
    deliver_at_ms: i64,
    from: BankId,
    to: BankId,
    to_incarnation: u64,
    payload: Payload,
}

/// One leg: `(from bank, from account, to bank, to account, cents)`.
type Leg = (BankId, AccountNumber, BankId, AccountNumber, i64);

/// What a customer asked for, to check the end state against.
#[derive(Debug, Clone)]
enum Asked {
    /// A transfer submitted at a bank (its coordinator), with its legs: `(from bank, from
    /// account, to bank, to account, cents)`.
    Transfer(BankId, Vec<Leg>),
    Key(PixKey, BankId, AccountNumber),
    /// A refund of a Pix leg, begun at the receiver's bank: its one leg, and the leg it refunds.
    Refund(BankId, Leg, RefundOf),
}

/// Counts over a run, to show what the seeds exercise.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub seeds: usize,
    pub committed: usize,
    pub aborted: usize,
    pub refused: usize,
    pub keys_registered: usize,
    /// Accounts that ended with exactly [`KEYS_PER_ACCOUNT_MAX`] keys (the key races reach it).
    pub accounts_at_key_limit: usize,
    pub deposits: usize,
    /// Crashes of any kind; those inside a step, before or after its batch committed.
    pub crashes: usize,
    pub crashes_before_commit: usize,
    pub crashes_after_commit: usize,
    pub messages: usize,
    pub ring_visits: usize,
    pub steps: usize,
    /// Refunds that completed, and refunds refused (mostly for exceeding what was left).
    pub refunds: usize,
    pub refunds_refused: usize,
}

#[derive(Debug)]
pub struct World {
    pub seed: u64,
    pub rng: Rng,
    pub knobs: Knobs,
    /// The world's time (ms).
    pub now_ms: i64,
    faults: bool,
    pub machines: Vec<Machine>,
    network: Vec<Packet>,
    /// Every transfer or key registration a customer started (acknowledged as begun).
    asked: BTreeMap<TransferId, Asked>,
    /// Every durable decision, wherever taken or applied: all must agree.
    pub decisions: BTreeMap<TransferId, Decision>,
    /// Money that entered (+) and left (−) each account from outside: initial balances,
    /// acknowledged deposits and withdrawals.
    external: BTreeMap<(BankId, AccountNumber), i64>,
    /// The bank that created each token epoch.
    epochs: BTreeMap<Epoch, BankId>,
    /// Committed key registrations: key → the one account it names.
    keys: BTreeMap<PixKey, (BankId, AccountNumber)>,
    next_id: u64,
    /// A deliberate bug in the simulated storage, to show the checks catch it.
    pub mutation: Option<Mutation>,
    pub stats: Stats,
}

/// Deliberate bugs the checks must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Storage loses a coordinator's commit decision: participants post legs on a decision that
    /// a crash can take back (presumed abort).
    CommitDecisionNotDurable,
}

impl Tally for Stats {
    fn add(&mut self, other: &Stats) {
        self.seeds += 1;
        self.committed += other.committed;
        self.aborted += other.aborted;
        self.refused += other.refused;
        self.keys_registered += other.keys_registered;
        self.accounts_at_key_limit += other.accounts_at_key_limit;
        self.deposits += other.deposits;
        self.crashes += other.crashes;
        self.crashes_before_commit += other.crashes_before_commit;
        self.crashes_after_commit += other.crashes_after_commit;
        self.messages += other.messages;
        self.ring_visits += other.ring_visits;
        self.steps += other.steps;
        self.refunds += other.refunds;
        self.refunds_refused += other.refunds_refused;
    }
}

impl World {
    pub fn random(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut knobs = Knobs::random(&mut rng);
        if seed % 4 == 3 {
            knobs.key_race = KeyRace::OneAccount;
            // Enough registrations to pass the limit had each of them been let through.
            knobs.operations += 2 * KEYS_PER_ACCOUNT_MAX;
        }
        let mut world = World {
            seed,
            rng,
            knobs,
            now_ms: 1_000_000,
            faults: true,
            machines: Vec::new(),
            network: Vec::new(),
            asked: BTreeMap::new(),
            decisions: BTreeMap::new(),
            external: BTreeMap::new(),
            epochs: BTreeMap::new(),
            keys: BTreeMap::new(),
            next_id: 1,
            mutation: None,
            stats: Stats::default(),
        };
        world.build();
        world
    }

    fn members(&self) -> BTreeSet<BankId> {
        (1..=self.knobs.banks as u32).map(BankId).collect()
    }

    fn config(&self) -> BankConfig {
        BankConfig {
            members: self.members(),
            prepare_expiry_ms: self.knobs.prepare_expiry_ms,
            decision_memory_ms: self.knobs.decision_memory_ms,
            decision_memory_max: self.knobs.decision_memory_max,
            gate: self.knobs.ring.then(|| self.knobs.gate()),
        }
    }

    /// Opens every account (joint with the one paying customer, who may spend them all) and funds
    /// it, through the banks' own steps.
    fn build(&mut self) {
        for b in 0..self.knobs.banks {
            let id = BankId(b as u32 + 1);
            let skew = self.rng.range(self.knobs.clock_skew_ms);
            let now = Now { wall: TimestampMs(self.now_ms + skew), tick: self.tick() };
            let bank = Bank::recover(self.config(), Store::new(id).recovered(id, TransferId::first_at(0)), now)
                .expect("a valid configuration");
            self.machines.push(Machine {
                id,
                bank: Some(bank),
                store: Store::new(id),
                incarnation: 0,
                restart_at_ms: 0,
                clock_skew_ms: skew,
            });
            for a in 0..self.knobs.accounts_per_bank {
                let base = (b * 100 + a + 1) as u64;
                // The first account is the paying customer's own, from which every transfer is
                // made; the others are joint with them, so they may spend every account.
                let payer_holder = Holder { name: "Pagador".into(), document: payer() };
                let (kind, holders) = match a {
                    0 => (AccountKind::Individual, vec![payer_holder]),
                    _ => {
                        let client =
                            Holder { name: format!("Cliente {base}"), document: Document::Cpf(Cpf::from_base(base)) };
                        (AccountKind::Joint, vec![client, payer_holder])
                    }
                };
                let new = NewAccount {
                    kind,
                    holders,
                    email: Email::parse(&format!("c{base}@example.com")).expect("valid e-mail"),
                    phone: Phone::parse(&format!("+55759999{:05}", base)).expect("valid phone"),
                    password_hash: "x".into(),
                };
                let reply = self.call(id, Input::OpenAccount(Box::new(new)), Crash::Never);
                assert!(matches!(reply, Some(Ok(Reply::Opened(_)))), "seed {}: opening failed: {reply:?}", self.seed);
                let cents = self.rng.range((1_000, 5_000));
                self.deposit(id, account(a), cents, Crash::Never);
            }
        }
    }

    pub fn tick(&self) -> Tick {
        Tick((self.now_ms / TICK_MS) as u64)
    }

    fn index(&self, bank: BankId) -> usize {
        (bank.0 - 1) as usize
    }

    fn fresh_uuid(&mut self) -> Uuid {
        // UUIDv7-shaped (time-ordered, as the node's ids are): the memory window depends on it.
        let prefix = TransferId::first_at(self.now_ms).0.as_u128();
        self.next_id += 1;
        Uuid::from_u128(prefix | (0x7000 << 64) | u128::from(self.next_id))
    }

    // ----- one step of one bank ---------------------------------------------------------------

    /// Feeds `input` to bank `bank` as the node's writer does: the step, its batch committed,
    /// then its outputs sent. Returns the reply, or `None` if the bank is down or crashed before
    /// the commit (the customer got no answer).
    fn call(&mut self, bank: BankId, input: Input, crash: Crash) -> Option<Result<Reply, bank_core::Error>> {
        let i = self.index(bank);
        let now = Now { wall: TimestampMs(self.now_ms + self.machines[i].clock_skew_ms), tick: self.tick() };
        let machine = &mut self.machines[i];
        let bank_state = machine.bank.as_mut()?;
        let stepped = match bank_state.step(now, input, &mut &machine.store) {
            Ok(stepped) => stepped,
            Err(never) => match never {},
        };
        let crash = if self.faults { crash } else { Crash::Never };
        let crash_point = match crash {
            Crash::Never => None,
            Crash::Random => self.rng.per_mille(self.knobs.mid_step_crash_per_mille).then(|| self.rng.below(3)),
        };
        if crash_point == Some(0) {
            // The batch never committed: nothing of the step is on disk, nothing was sent.
            self.stats.crashes_before_commit += 1;
            self.crash(bank);
            return None;
        }
        self.commit(bank, &stepped.effects);
        let sent_max = match crash_point {
            Some(_) => self.rng.below(stepped.effects.outputs.len() + 1),
            None => usize::MAX,
        };
        for output in stepped.effects.outputs.into_iter().take(sent_max) {
            self.carry_out(bank, output);
        }
        if crash_point.is_some() {
            self.stats.crashes_after_commit += 1;
            self.crash(bank);
        }
        Some(stepped.reply)
    }

    /// Makes a step's effects durable, checking each against the world's history.
    fn commit(&mut self, bank: BankId, effects: &Effects) {
        let at = format!("seed {} at {} ms: bank {bank}", self.seed, self.now_ms);
        for item in &effects.persist {
            match item {
                Persist::Coordinator(CoordinatorRecord::Decided { tx, decision, .. })
                | Persist::Coordinator(CoordinatorRecord::Finished { tx, decision }) => self.agree(*tx, *decision, &at),
                Persist::Ledger(Change::Settled { transfer, settlement }) => {
                    self.agree(*transfer, Decision::from(*settlement), &at)
                }
                Persist::Ledger(Change::KeyRegistered { key, account }) => self.key_named(key, bank, account, &at),
                Persist::Ring(durable) => self.token_created(bank, durable, &at),
                Persist::Coordinator(CoordinatorRecord::Preparing { tx, legs, .. })
                    if self.knobs.ring && legs.values().all(|l| l.keys.is_empty()) =>
                {
                    self.started_alone(bank, *tx, &at)
                }
                _ => {}
            }
            if self.mutation == Some(Mutation::CommitDecisionNotDurable)
                && matches!(
                    item,
                    Persist::Coordinator(CoordinatorRecord::Decided { decision: Decision::Committed, .. })
                )
            {
                continue;
            }
            let i = self.index(bank);
            self.machines[i].store.apply(item);
        }
        for event in &effects.events {
            match event {
                Event::ProtocolRefused { from, tx, reason } => {
                    panic!("{at}: refused a message of bank {from} about {tx}: {reason}\n{}", self.describe())
                }
                Event::RingVisit { .. } => self.stats.ring_visits += 1,
                _ => {}
            }
        }
    }

    fn agree(&mut self, tx: TransferId, decision: Decision, at: &str) {
        let first = *self.decisions.entry(tx).or_insert(decision);
        assert_eq!(first, decision, "{at}: transaction {tx} decided both ways");
    }

    fn key_named(&mut self, key: &PixKey, bank: BankId, account: &AccountNumber, at: &str) {
        let owner = self.keys.entry(key.clone()).or_insert((bank, account.clone()));
        assert_eq!(owner, &(bank, account.clone()), "{at}: key {} names two accounts", key.normalized());
        let owner = (bank, account.clone());
        let held = self.keys.values().filter(|&o| o == &owner).count();
        assert!(held <= KEYS_PER_ACCOUNT_MAX, "{at}: account {account} has {held} keys, past the limit");
    }

    /// A bank begins a cross-bank transfer under the token: no other bank may start work now.
    fn started_alone(&self, bank: BankId, tx: TransferId, at: &str) {
        let tick = self.tick();
        let others: Vec<BankId> = self
            .machines
            .iter()
            .filter(|m| m.id != bank && m.bank.as_ref().is_some_and(|b| b.may_start_work(tick)))
            .map(|m| m.id)
            .collect();
        assert!(others.is_empty(), "{at}: began {tx} while banks {others:?} hold the token\n{}", self.describe());
    }

    fn token_created(&mut self, bank: BankId, durable: &RingDurable, at: &str) {
        if let Some(position) = durable.accepted.filter(|p| p.hop.0 == 0) {
            let creator = *self.epochs.entry(position.epoch).or_insert(bank);
            assert_eq!(creator, bank, "{at}: epoch {} created twice (first by bank {creator})", position.epoch.0);
        }
    }

    fn carry_out(&mut self, from: BankId, output: Output) {
        match output {
            Output::Send { to, msg } => self.send(from, to, Payload::Protocol(msg)),
            Output::Ring { to, sent_at, msg } => self.send(from, to, Payload::Ring { sent_at, msg }),
            Output::Decided { decision, .. } => match decision {
                Decision::Committed => self.stats.committed += 1,
                Decision::Aborted => self.stats.aborted += 1,
            },
            Output::Finished { .. } => {}
        }
    }

    fn send(&mut self, from: BankId, to: BankId, payload: Payload) {
        assert_ne!(from, to, "seed {}: bank {from} sent itself a message (loopback missed it)", self.seed);
        let copies = if self.faults && self.rng.per_mille(self.knobs.loss_per_mille) {
            0
        } else if self.faults && self.rng.per_mille(self.knobs.duplicate_per_mille) {
            2
        } else {
            1
        };
        let to_incarnation = self.machines[self.index(to)].incarnation;
        for _ in 0..copies {
            let deliver_at_ms = self.now_ms + self.rng.range(self.knobs.delay_ms);
            self.network.push(Packet { deliver_at_ms, from, to, to_incarnation, payload: payload.clone() });
        }
    }

    fn crash(&mut self, bank: BankId) {
        let i = self.index(bank);
        let down_ms = self.rng.range(self.knobs.downtime_ms);
        let machine = &mut self.machines[i];
        if machine.bank.take().is_some() {
            self.stats.crashes += 1;
        }
        machine.incarnation += 1;
        machine.restart_at_ms = self.now_ms + down_ms;
    }

    fn restart(&mut self, bank: BankId) {
        let i = self.index(bank);
        let now = Now { wall: TimestampMs(self.now_ms + self.machines[i].clock_skew_ms), tick: self.tick() };
        let since = TransferId::first_at(now.wall.0 - self.knobs.decision_memory_ms);
        let recovered = self.machines[i].store.recovered(bank, since);
        let restored = Bank::recover(self.config(), recovered, now).expect("a stored bank recovers");
        self.machines[i].bank = Some(restored);
    }

    // ----- customers -----------------------------------------------------------------------------

    fn deposit(&mut self, bank: BankId, number: AccountNumber, cents: i64, crash: Crash) {
        let idem = (IdempotencyKey(self.fresh_uuid()), Fingerprint([0; 32]));
        let amount = Amount::from_cents(cents).expect("a positive amount");
        let input = Input::Deposit { account: number.clone(), amount, method: DepositMethod::Cash, idem };
        if let Some(Ok(_)) = self.call(bank, input, crash) {
            *self.external.entry((bank, number)).or_default() += cents;
            self.stats.deposits += 1;
        }
    }

    fn withdraw(&mut self, bank: BankId, number: AccountNumber, cents: i64) {
        let idem = (IdempotencyKey(self.fresh_uuid()), Fingerprint([0; 32]));
        let amount = Amount::from_cents(cents).expect("a positive amount");
        let input = Input::Withdraw { account: number.clone(), amount, idem };
        if let Some(Ok(_)) = self.call(bank, input, Crash::Random) {
            *self.external.entry((bank, number)).or_default() -= cents;
        }
    }

    /// A transfer from `at`'s first account, with legs `(from bank, from account, to bank, to
    /// account, cents)`.
    fn transfer(&mut self, at: BankId, legs: Vec<Leg>) {
        let id = TransferId(self.fresh_uuid());
        let requests = legs
            .iter()
            .map(|(fb, fa, tb, ta, cents)| LegRequest {
                from: Some(AccountRef { bank_id: *fb, number: fa.clone() }),
                to: Destination::Account(AccountRef { bank_id: *tb, number: ta.clone() }),
                amount: Amount::from_cents(*cents).expect("a positive amount"),
            })
            .collect();
        let request = TransferRequest {
            idempotency_key: IdempotencyKey(self.fresh_uuid()),
            fingerprint: Fingerprint([1; 32]),
            actor: account(0),
            legs: requests,
            description: None,
            transfer_id: id,
            now: TimestampMs(0),
        };
        match self.call(at, Input::Transfer(Box::new(request)), Crash::Random) {
            Some(Ok(Reply::Outcome(Outcome::Transfer(t)))) => {
                self.asked.insert(t.id, Asked::Transfer(at, legs));
            }
            Some(Ok(other)) => panic!("seed {}: a transfer answered {other:?}", self.seed),
            Some(Err(_)) => self.stats.refused += 1,
            None => {}
        }
    }

    fn claim_key(&mut self, at: BankId, number: AccountNumber) {
        // A small pool of random keys, so registrations race for the same key; a key race draws
        // from a large one, so they race for the account's last free slots instead.
        let pool = match self.knobs.key_race {
            KeyRace::Off => 4,
            KeyRace::OneAccount => 1_000_000,
        };
        let request = KeyRequest::Random(Uuid::from_u128(u128::from(self.rng.below(pool) as u64 + 1)));
        let id = TransferId(self.fresh_uuid());
        let input = Input::ClaimKey { id, account: number.clone(), request: Some(request) };
        match self.call(at, input, Crash::Random) {
            Some(Ok(Reply::Claim { id, key })) => {
                self.asked.insert(id, Asked::Key(key, at, number));
            }
            Some(Ok(other)) => panic!("seed {}: a key claim answered {other:?}", self.seed),
            Some(Err(_)) => self.stats.refused += 1,
            None => {}
        }
    }

    /// Two or three refunds of about 60 % of one Pix leg received at a random bank, at once (they
    /// race: at most one fits), each by the receiver's bank.
    fn refund_race(&mut self) {
        let at = BankId(self.rng.below(self.knobs.banks) as u32 + 1);
        let machine = &self.machines[self.index(at)];
        if machine.bank.is_none() {
            return;
        }
        // From the store: also legs memory forgot, which the refund must read back.
        let legs: Vec<(RefundOf, AccountNumber, AccountRef, i64, bool)> = machine
            .store
            .ledger
            .pix_legs
            .iter()
            .filter(|(_, (pix, _, _))| pix.to.bank_id == at && pix.refund_of.is_none())
            .map(|(of, (pix, refunded, reserved))| {
                (*of, pix.to.number.clone(), pix.from.clone(), pix.amount.cents(), *refunded == 0 && *reserved == 0)
            })
            .collect();
        if legs.is_empty() {
            return;
        }
        let (of, receiver, payer, amount, untouched) = legs[self.rng.below(legs.len())].clone();
        let cents = (amount * 6 / 10).max(1);
        for nth in 0..self.rng.range((2, 4)) {
            let request = RefundRequest {
                idempotency_key: IdempotencyKey(self.fresh_uuid()),
                fingerprint: Fingerprint([2; 32]),
                actor: account(0),
                original: of.transfer_id,
                leg: Some(of.leg),
                amount: Amount::from_cents(cents).expect("a positive amount"),
                reason: None,
                transfer_id: TransferId(self.fresh_uuid()),
                now: TimestampMs(0),
            };
            let leg = (at, receiver.clone(), payer.bank_id, payer.number.clone(), cents);
            match self.call(at, Input::Refund(Box::new(request)), Crash::Random) {
                Some(Ok(Reply::Outcome(Outcome::Transfer(t)))) => {
                    self.asked.insert(t.id, Asked::Refund(at, leg, of));
                }
                Some(Ok(other)) => panic!("seed {}: a refund answered {other:?}", self.seed),
                Some(Err(bank_core::Error::NotRefundable(why))) if nth == 0 && untouched => {
                    panic!("seed {}: the first refund of an untouched leg {of:?} was refused: {why}", self.seed)
                }
                Some(Err(_)) => self.stats.refunds_refused += 1,
                None => {}
            }
        }
    }

    /// A random customer operation at a random up bank.
    fn submit_random(&mut self) {
        let banks = self.knobs.banks;
        let at = BankId(self.rng.below(banks) as u32 + 1);
        let pick = |w: &mut World| {
            let b = BankId(w.rng.below(banks) as u32 + 1);
            (b, account(w.rng.below(w.knobs.accounts_per_bank)))
        };
        let cents = self.rng.range((100, 3_000));
        let own = account(self.rng.below(self.knobs.accounts_per_bank));
        if self.knobs.key_race == KeyRace::OneAccount && self.rng.per_mille(700) {
            return self.claim_key(BankId(1), account(0));
        }
        if self.rng.per_mille(100) {
            return self.refund_race();
        }
        match self.rng.below(10) {
            0..=3 => {
                let ((fb, fa), (tb, ta)) = (pick(self), pick(self));
                self.transfer(at, vec![(fb, fa, tb, ta, cents)]);
            }
            4..=5 => {
                let legs = (0..3)
                    .map(|_| {
                        let ((fb, fa), (tb, ta)) = (pick(self), pick(self));
                        (fb, fa, tb, ta, self.rng.range((100, 1_500)))
                    })
                    .collect();
                self.transfer(at, legs);
            }
            6 => self.transfer(at, vec![(at, account(0), at, own, cents)]),
            7 => self.deposit(at, own, cents, Crash::Random),
            8 => self.withdraw(at, own, cents),
            _ => self.claim_key(at, own),
        }
    }

    // ----- time ------------------------------------------------------------------------------------

    /// Moves the world by one ring tick: faults, restarts, customers, timers, deliveries; then
    /// checks the invariants.
    pub fn step(&mut self, submit: bool) {
        self.now_ms += TICK_MS;
        self.stats.steps += 1;
        for b in 0..self.machines.len() {
            let id = self.machines[b].id;
            let machine = &self.machines[b];
            if machine.bank.is_none() && self.now_ms >= machine.restart_at_ms {
                self.restart(id);
            } else if machine.bank.is_some() && self.faults && self.rng.per_mille(self.knobs.crash_per_mille) {
                self.crash(id);
            }
        }
        if submit && self.rng.per_mille(self.knobs.submit_per_mille) {
            self.submit_random();
        }
        for b in 0..self.machines.len() {
            let id = self.machines[b].id;
            self.call(id, Input::RingTick, Crash::Random);
            if (self.now_ms / TICK_MS + b as i64) % (PROTOCOL_TICK_MS / TICK_MS) == 0 {
                self.call(id, Input::Tick, Crash::Random);
            }
        }
        self.deliver_due();
        self.check_step();
    }

    fn deliver_due(&mut self) {
        let now = self.now_ms;
        let (mut due, rest): (Vec<Packet>, Vec<Packet>) = self.network.drain(..).partition(|p| p.deliver_at_ms <= now);
        self.network = rest;
        self.rng.shuffle(&mut due);
        for packet in due {
            let machine = &self.machines[self.index(packet.to)];
            if machine.bank.is_none() || machine.incarnation != packet.to_incarnation {
                continue;
            }
            self.stats.messages += 1;
            let input = match packet.payload {
                Payload::Protocol(msg) => Input::Deliver { from: packet.from, messages: vec![msg] },
                Payload::Ring { sent_at, msg } => {
                    Input::RingDeliver { from: packet.from, messages: vec![(sent_at, msg)] }
                }
            };
            self.call(packet.to, input, Crash::Random);
        }
    }

    fn check_step(&self) {
        let tick = self.tick();
        let mut starting = Vec::new();
        for machine in &self.machines {
            let Some(bank) = &machine.bank else { continue };
            bank.ledger().assert_invariants();
            for a in bank.ledger().accounts() {
                let held = bank.ledger().keys_of(&a.number).len();
                assert!(
                    held <= KEYS_PER_ACCOUNT_MAX,
                    "seed {}: bank {} account {} has {held} keys",
                    self.seed,
                    machine.id,
                    a.number
                );
            }
            if self.knobs.ring && bank.may_start_work(tick) {
                starting.push(machine.id);
            }
        }
        assert!(
            starting.len() <= 1,
            "seed {} at {} ms: banks {starting:?} may start cross-bank work at once\n{}",
            self.seed,
            self.now_ms,
            self.describe()
        );
    }

    // ----- the end -----------------------------------------------------------------------------------

    /// Runs the workload with faults, then heals and checks the end state.
    pub fn run(&mut self) {
        let mut submitted_steps = 0;
        while self.stats.refused + self.asked.len() + self.stats.deposits < self.knobs.operations
            && submitted_steps < 20_000
        {
            self.step(true);
            submitted_steps += 1;
        }
        self.heal_and_check();
        self.stats.keys_registered = self.keys.len();
        let mut per_account: BTreeMap<&(BankId, AccountNumber), usize> = BTreeMap::new();
        for owner in self.keys.values() {
            *per_account.entry(owner).or_default() += 1;
        }
        self.stats.accounts_at_key_limit = per_account.values().filter(|&&n| n == KEYS_PER_ACCOUNT_MAX).count();
    }

    /// Nothing of the two-phase commit in flight anywhere (the ring's token circulates forever,
    /// so its messages do not count).
    fn quiet(&self) -> bool {
        self.network.iter().all(|p| matches!(p.payload, Payload::Ring { .. }))
            && self.machines.iter().all(|m| {
                m.bank.as_ref().is_some_and(|b| {
                    b.coordinator().in_flight() == 0
                        && b.ledger().holds_iter().next().is_none()
                        && b.queue_len() == 0
                        && b.open_transfers() == 0
                })
            })
    }

    /// Stops the faults, brings every bank back, runs until quiet (bounded), and checks the end.
    pub fn heal_and_check(&mut self) {
        self.faults = false;
        for b in 0..self.machines.len() {
            self.machines[b].restart_at_ms = self.now_ms;
        }
        // Expiry, outcome queries with backoff, and the ring's recovery all fit in a minute.
        let bound_ms = 60_000;
        let healed_at = self.now_ms;
        while !self.quiet() {
            assert!(
                self.now_ms - healed_at <= bound_ms,
                "seed {}: not quiet {bound_ms} ms after healing\n{}",
                self.seed,
                self.describe()
            );
            self.step(false);
        }
        self.check_final();
    }

    /// Every leg's refunded sum, in memory and in the store, is the sum of its completed refunds
    /// (`refunded`, by receiver's bank and leg), fits its amount, and nothing stays reserved.
    fn check_refunds(&self, refunded: &BTreeMap<(BankId, RefundOf), i64>) {
        let at = format!("seed {}", self.seed);
        for machine in &self.machines {
            let bank = machine.bank.as_ref().expect("every bank is up at the end");
            assert_eq!(bank.ledger().refunds_open(), 0, "{at}: bank {} has refunds open", machine.id);
            for (of, r) in bank.ledger().refundable_iter() {
                let want = refunded.get(&(machine.id, *of)).copied().unwrap_or(0);
                assert_eq!((r.refunded_cents, r.reserved_cents), (want, 0), "{at}: bank {} leg {of:?}", machine.id);
            }
            // Every leg received here, also those memory forgot (read back by a later refund).
            for (of, (pix, refunded_cents, reserved_cents)) in &machine.store.ledger.pix_legs {
                if pix.to.bank_id != machine.id || pix.refund_of.is_some() {
                    continue;
                }
                let want = refunded.get(&(machine.id, *of)).copied().unwrap_or(0);
                assert!(want <= pix.amount.cents(), "{at}: leg {of:?} refunded beyond its amount");
                let stored = (*refunded_cents, *reserved_cents);
                assert_eq!(stored, (want, 0), "{at}: bank {} leg {of:?} not durable", machine.id);
            }
        }
    }

    fn check_final(&mut self) {
        let at = format!("seed {}", self.seed);
        let mut expected = self.external.clone();
        let mut refunded: BTreeMap<(BankId, RefundOf), i64> = BTreeMap::new();
        let mut refunds_done = 0;
        for (tx, asked) in &self.asked {
            let decision = self.decisions.get(tx).copied();
            match asked {
                Asked::Transfer(at_bank, legs) => {
                    let record = &self.machines[self.index(*at_bank)].store.ledger.transfers[tx];
                    let local = legs.iter().all(|(fb, _, tb, _, _)| fb == at_bank && tb == at_bank);
                    let completed = match decision {
                        // An in-bank transfer runs as one local batch, with no 2PC decision.
                        None if local => record.status == Status::Completed,
                        decision => decision == Some(Decision::Committed),
                    };
                    let settled = if completed { Status::Completed } else { Status::Failed };
                    assert_eq!(record.status, settled, "{at}: transfer {tx} settled as {:?}", record.status);
                    if completed {
                        for (fb, fa, tb, ta, cents) in legs {
                            *expected.entry((*fb, fa.clone())).or_default() -= cents;
                            *expected.entry((*tb, ta.clone())).or_default() += cents;
                        }
                    }
                }
                Asked::Key(key, bank, number) if decision == Some(Decision::Committed) => {
                    assert_eq!(self.keys.get(key), Some(&(*bank, number.clone())), "{at}: key {tx} not recorded");
                }
                Asked::Key(..) => {}
                Asked::Refund(at_bank, (fb, fa, tb, ta, cents), of) => {
                    let record = &self.machines[self.index(*at_bank)].store.ledger.transfers[tx];
                    let completed = match decision {
                        None if fb == tb => record.status == Status::Completed,
                        decision => decision == Some(Decision::Committed),
                    };
                    assert_eq!(record.refund_of, Some(*of), "{at}: refund {tx} names its leg");
                    if completed {
                        *expected.entry((*fb, fa.clone())).or_default() -= cents;
                        *expected.entry((*tb, ta.clone())).or_default() += cents;
                        *refunded.entry((*at_bank, *of)).or_default() += cents;
                        refunds_done += 1;
                    }
                }
            }
        }
        self.stats.refunds = refunds_done;
        self.check_refunds(&refunded);
        for machine in &self.machines {
            let bank = machine.bank.as_ref().expect("every bank is up at the end");
            for a in bank.ledger().accounts() {
                let want = expected.get(&(machine.id, a.number.clone())).copied().unwrap_or(0);
                assert_eq!(
                    (a.posted_cents, a.held_cents),
                    (want, 0),
                    "{at}: bank {} account {} (conservation, all-or-nothing)\n{}",
                    machine.id,
                    a.number,
                    self.describe()
                );
                assert_eq!(machine.store.ledger.accounts[&a.number].posted_cents, a.posted_cents, "{at}: not durable");
            }
            for (key, (owner_bank, owner)) in &self.keys {
                let seen = match bank.ledger().key_owner(key) {
                    Some(number) => Some((machine.id, number.clone())),
                    None => bank.ledger().key_directory(key).map(|r| (r.bank_id, r.account)),
                };
                assert_eq!(seen, Some((*owner_bank, owner.clone())), "{at}: bank {} directory disagrees", machine.id);
            }
        }
    }

    pub fn describe(&self) -> String {
        let mut text = format!("knobs {:?}\nstats {:?}\n", self.knobs, self.stats);
        for m in &self.machines {
            match &m.bank {
                None => text += &format!("bank {} down until {} ms\n", m.id, m.restart_at_ms),
                Some(b) => {
                    let ring = b.ring_status(self.tick()).map(|(s, q)| (s.role, s.epoch.0, s.holder, q));
                    text += &format!(
                        "bank {}: in flight {}, holds {}, open {}, ring {ring:?}\n",
                        m.id,
                        b.coordinator().in_flight(),
                        b.ledger().holds_iter().count(),
                        b.open_transfers()
                    );
                }
            }
        }
        text + &format!("{} packets in flight", self.network.len())
    }
}

/// Whether a step may crash its bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    Never,
    Random,
}

/// The `i`-th account opened at every bank.
pub fn account(i: usize) -> AccountNumber {
    AccountNumber::from_seq(i as u64 + 1)
}

/// The customer every simulated transfer is paid by: a holder of every account.
pub fn payer() -> Document {
    Document::Cpf(Cpf::from_base(999_999_999))
}
