//! A deterministic simulator of a consortium running two-phase commit.
//!
//! The world is a few banks, each with a [`Ledger`], a [`Coordinator`] and a [`Participant`],
//! joined by a simulated network. Everything random — the workload, message delays, losses,
//! duplicates, the order of deliveries, crashes and restarts — is drawn from one seeded [`Rng`] (shared
//! by every simulator, in `tests/support`),
//! so a seed replays exactly.
//!
//! # What is durable
//!
//! Each bank has a [`Store`] standing for its storage. It receives exactly what the node would
//! write: the ledger [`Change`]s of every completed call and every [`CoordinatorOutput::Persist`]
//! the coordinator reached. A crash throws away everything else — the in-memory ledger, the
//! coordinator and participant machines, the messages in flight to the bank — and a
//! restart rebuilds the ledger from the store (as the node does, through `restore_*`) and the
//! coordinator through [`Coordinator::recover`].
//!
//! A crash may also strike in the middle of a call (the write-ahead rule under test): for a
//! coordinator call, after any prefix of its outputs (a `Persist` is durable only if it was
//! reached); for a participant call, before its ledger changes are written (then the call left no
//! trace), or after them and any prefix of its sends. Messages to a crashed bank are lost;
//! messages it sent before crashing are on the wire and each still arrives with probability ½
//! (in scripted worlds, none does) — so a message sent before its write-ahead record shows up as
//! a broken invariant.
//!
//! # What is checked
//!
//! After every call: the bank's ledger invariants (no negative available money, `held` equal to
//! its holds); that no participant refused a message; and that every durable decision anywhere
//! (coordinator records, participants' ledgers) agrees with every other one for the same
//! transaction. At the end ([`World::check_final`]), once healed and quiet: nothing in flight,
//! every begun transaction finished and decided the same way at every participant and in the
//! customer's answer, no hold left, every account's balance exactly its initial balance plus the
//! committed legs (so every transfer is all-or-nothing and money is conserved), and every ledger
//! equal to the one rebuilt from its store.

use std::collections::{BTreeMap, BTreeSet};

use bank_core::Amount;
use bank_core::account::{AccountKind, Holder, NewAccount};
use bank_core::contact::{Email, Phone};
use bank_core::document::{Cpf, Document};
use bank_core::ids::{AccountNumber, BankId, Fingerprint, IdempotencyKey, TimestampMs, TransferId};
use bank_core::ledger::{Change, DepositMethod, KeyClaim, Ledger, RemoteKey};
use bank_core::pixkey::PixKey;
use bank_core::twopc::{
    Coordinator, CoordinatorOutput, CoordinatorRecord, Decision, LegsByBank, Message, Participant, ParticipantOutput,
    RetryPolicy, Role, TxPhase,
};
use uuid::Uuid;

use crate::support::ledger_store::LedgerStore;
use crate::support::{Rng, Tally};

// ----- knobs --------------------------------------------------------------------------------------

/// Everything the simulation can vary. [`Knobs::random`] draws a different mix per seed, so the
/// seeds cover calm and hostile networks, few and many crashes.
#[derive(Debug, Clone)]
pub struct Knobs {
    /// Banks in the consortium.
    pub banks: usize,
    pub accounts_per_bank: usize,
    /// Initial posted balance of each account, drawn from this range.
    pub balance_cents: (i64, i64),
    /// Transfers started during the workload.
    pub transfers: usize,
    /// Chance per step that the next transfer starts (so several overlap).
    pub begin_per_mille: u32,
    /// How long a transfer's prepares stay valid.
    pub expiry_ms: (i64, i64),
    /// One step of the simulation moves logical time by this much.
    pub step_ms: i64,
    /// Network delay of each message (so messages overtake each other: reordering).
    pub delay_ms: (i64, i64),
    /// Chance that a message is lost.
    pub loss_per_mille: u32,
    /// Chance that a message is delivered twice.
    pub duplicate_per_mille: u32,
    /// Chance per step that one up bank crashes (between calls).
    pub crash_per_mille: u32,
    /// Chance per machine call that the bank crashes partway through carrying out its outputs.
    pub mid_call_crash_per_mille: u32,
    /// How long a crashed bank stays down.
    pub downtime_ms: (i64, i64),
    /// Each bank's clock is ahead of the world's by an amount drawn from this range.
    pub clock_skew_ms: (i64, i64),
    /// Re-send policy of both machines.
    pub retry: RetryPolicy,
    /// Steps allowed after healing to become quiet; more means a liveness bug.
    pub heal_steps_max: usize,
    /// Deliver what is due between two banks as one batch, as the node's outboxes do (one
    /// request per peer): a batch is lost, duplicated or cut by a crash of its receiver as a whole.
    pub batching: bool,
    /// Chance that a batch's receiver crashes after applying only a prefix of it.
    pub batch_crash_per_mille: u32,
}

impl Knobs {
    /// A calm, fault-free world for scripted scenarios: nothing is lost, duplicated or delayed
    /// unless the script does it.
    pub fn scripted(banks: usize) -> Self {
        Knobs {
            banks,
            accounts_per_bank: 2,
            balance_cents: (1_000, 1_000),
            transfers: 0,
            begin_per_mille: 0,
            expiry_ms: (1_000, 1_000),
            step_ms: 10,
            delay_ms: (0, 0),
            loss_per_mille: 0,
            duplicate_per_mille: 0,
            crash_per_mille: 0,
            mid_call_crash_per_mille: 0,
            downtime_ms: (0, 0),
            clock_skew_ms: (0, 0),
            retry: RetryPolicy::new(50, 400),
            heal_steps_max: 2_000,
            batching: false,
            batch_crash_per_mille: 0,
        }
    }

    /// A random mix for one seed.
    pub fn random(rng: &mut Rng) -> Self {
        let hostile = [0, 50, 150, 300];
        Knobs {
            banks: 3 + rng.below(3),
            accounts_per_bank: 2 + rng.below(2),
            balance_cents: (1_000, 5_000),
            transfers: 20 + rng.below(40),
            begin_per_mille: [50, 200, 600][rng.below(3)],
            expiry_ms: (100, 600),
            step_ms: 10,
            delay_ms: (0, [10, 40, 120][rng.below(3)]),
            loss_per_mille: hostile[rng.below(4)],
            duplicate_per_mille: hostile[rng.below(3)],
            crash_per_mille: [0, 5, 20][rng.below(3)],
            mid_call_crash_per_mille: [0, 10, 50, 150][rng.below(4)],
            downtime_ms: (10, [100, 600][rng.below(2)]),
            clock_skew_ms: (0, [0, 30, 150][rng.below(3)]),
            retry: RetryPolicy::new(20, [80, 320][rng.below(2)]),
            heal_steps_max: 5_000,
            batching: rng.per_mille(500),
            batch_crash_per_mille: [0, 20, 100][rng.below(3)],
        }
    }
}

// ----- durable storage ----------------------------------------------------------------------------

/// What one bank's storage holds: the ledger as the node's tables keep it, and the coordinator's
/// records.
#[derive(Debug, Clone, Default)]
pub struct Store {
    ledger: LedgerStore,
    pub records: Vec<CoordinatorRecord>,
}

impl Store {
    fn apply(&mut self, change: Change) {
        self.ledger.apply(&change);
    }

    /// The ledger a restart reads back (every settlement: this world remembers them all).
    fn rebuild(&self, bank: BankId) -> Ledger {
        self.ledger.rebuild(bank, TransferId(Uuid::nil()))
    }
}

// ----- the world ----------------------------------------------------------------------------------

#[derive(Debug)]
pub struct Bank {
    pub id: BankId,
    pub up: bool,
    /// Bumped by every crash: messages addressed to an older incarnation are lost.
    incarnation: u64,
    restart_at: TimestampMs,
    /// How far this bank's clock is ahead of the world's (banks' clocks disagree a little).
    clock_skew_ms: i64,
    pub ledger: Ledger,
    pub coordinator: Coordinator,
    pub participant: Participant,
    pub store: Store,
}

/// A message on the wire.
#[derive(Debug, Clone)]
pub struct Packet {
    pub deliver_at: TimestampMs,
    pub from: BankId,
    pub to: BankId,
    pub msg: Message,
    to_incarnation: u64,
}

/// One leg of a planned transfer: `(from bank, from account, to bank, to account, cents)`.
pub type PlannedLeg = (BankId, AccountNumber, BankId, AccountNumber, i64);

/// Counts over a run, to show the seeds exercise what they should.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub committed: usize,
    pub aborted: usize,
    pub never_begun: usize,
    /// Key registrations committed (each key at most once).
    pub keys_registered: usize,
    pub crashes: usize,
    pub mid_call_crashes: usize,
    /// Batches delivered (worlds that batch), lost whole, duplicated whole, cut by a crash.
    pub batches: usize,
    pub batches_lost: usize,
    pub batches_duplicated: usize,
    pub batches_cut: usize,
    pub messages: usize,
    pub steps: usize,
}

impl Tally for Stats {
    fn add(&mut self, one: &Self) {
        self.committed += one.committed;
        self.aborted += one.aborted;
        self.never_begun += one.never_begun;
        self.keys_registered += one.keys_registered;
        self.crashes += one.crashes;
        self.mid_call_crashes += one.mid_call_crashes;
        self.batches += one.batches;
        self.batches_lost += one.batches_lost;
        self.batches_duplicated += one.batches_duplicated;
        self.batches_cut += one.batches_cut;
        self.messages += one.messages;
        self.steps += one.steps;
    }
}

#[derive(Debug)]
pub struct World {
    pub rng: Rng,
    pub knobs: Knobs,
    pub now: TimestampMs,
    /// Random faults (loss, duplicates, crashes) are on; off once healed.
    faults: bool,
    /// Scripted worlds deliver only when told to.
    scripted: bool,
    pub banks: Vec<Bank>,
    pub network: Vec<Packet>,
    /// Every transfer begun (or attempted), with its legs.
    pub planned: BTreeMap<TransferId, Vec<PlannedLeg>>,
    /// Every key registration begun: the key and the account it claims.
    pub key_claims: BTreeMap<TransferId, (PixKey, BankId, AccountNumber)>,
    /// The answer each customer got (a coordinator's `Decided` output).
    pub answers: BTreeMap<TransferId, Decision>,
    /// Every durable decision, wherever taken or applied; all must agree.
    pub decisions: BTreeMap<TransferId, Decision>,
    initial: BTreeMap<(BankId, AccountNumber), i64>,
    /// A scripted crash: the bank crashes after this many outputs of its next call.
    crash_plan: Option<(BankId, usize)>,
    next_tx: u64,
    seed: u64,
    pub stats: Stats,
}

impl World {
    /// A random world for `seed` (knobs drawn from it too).
    pub fn random(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let knobs = Knobs::random(&mut rng);
        World::build(seed, rng, knobs, false)
    }

    /// A calm world of `banks` banks with two accounts of R$ 10,00 each, for scripted scenarios.
    pub fn scripted(banks: usize) -> Self {
        World::build(0, Rng::new(0), Knobs::scripted(banks), true)
    }

    fn build(seed: u64, mut rng: Rng, knobs: Knobs, scripted: bool) -> Self {
        let now = TimestampMs(1_000_000);
        let mut banks = Vec::new();
        let mut initial = BTreeMap::new();
        for b in 0..knobs.banks {
            let id = BankId(b as u32 + 1);
            let mut ledger = Ledger::new(id);
            let mut store = Store::default();
            for a in 0..knobs.accounts_per_bank {
                let mut changes = Vec::new();
                let base = (b * 100 + a + 1) as u64;
                // Joint with the simulation's one paying customer, who may spend every account.
                let new = NewAccount {
                    kind: AccountKind::Joint,
                    holders: vec![
                        Holder { name: format!("Cliente {base}"), document: Document::Cpf(Cpf::from_base(base)) },
                        Holder { name: "Pagador".into(), document: payer() },
                    ],
                    email: Email::parse(&format!("c{base}@example.com")).expect("valid e-mail"),
                    phone: Phone::parse("+5575999991234").expect("valid phone"),
                    password_hash: "x".into(),
                };
                let number = ledger.open_account(new, now, &mut changes).expect("opens").account.number;
                let cents = rng.range(knobs.balance_cents);
                let idem = (IdempotencyKey(Uuid::from_u128(base.into())), Fingerprint([0; 32]));
                let amount = Amount::from_cents(cents).expect("valid amount");
                ledger.deposit(&number, amount, DepositMethod::Cash, idem, now, &mut changes).expect("deposits");
                changes.into_iter().for_each(|c| store.apply(c));
                initial.insert((id, number), cents);
            }
            banks.push(Bank {
                id,
                up: true,
                incarnation: 0,
                restart_at: now,
                clock_skew_ms: rng.range(knobs.clock_skew_ms),
                ledger,
                coordinator: Coordinator::new(id, knobs.retry),
                participant: Participant::new(id, knobs.retry),
                store,
            });
        }
        World {
            rng,
            knobs,
            now,
            faults: !scripted,
            scripted,
            banks,
            network: Vec::new(),
            planned: BTreeMap::new(),
            key_claims: BTreeMap::new(),
            answers: BTreeMap::new(),
            decisions: BTreeMap::new(),
            initial,
            crash_plan: None,
            next_tx: 0,
            seed,
            stats: Stats::default(),
        }
    }

    /// What `bank`'s clock reads: the world's time plus its skew.
    fn clock(&self, bank: BankId) -> TimestampMs {
        TimestampMs(self.now.0 + self.bank(bank).clock_skew_ms)
    }

    fn index(&self, bank: BankId) -> usize {
        bank.0 as usize - 1
    }

    pub fn bank(&self, bank: BankId) -> &Bank {
        &self.banks[self.index(bank)]
    }

    /// The number of the `i`-th account (from 0) of any bank.
    pub fn account(i: usize) -> AccountNumber {
        AccountNumber::from_seq(i as u64 + 1)
    }

    /// (posted, held) of account `i` of `bank`.
    pub fn balance(&self, bank: BankId, i: usize) -> (i64, i64) {
        let acc = self.bank(bank).ledger.account(&World::account(i)).expect("account exists");
        (acc.posted_cents, acc.held_cents)
    }

    // ----- the workload -------------------------------------------------------------------------

    /// Starts a transfer at `coordinator` with the given legs (paid by [`payer`]), expiring
    /// `expiry_ms` from now.
    pub fn begin(&mut self, coordinator: BankId, legs: Vec<PlannedLeg>, expiry_ms: i64) -> TransferId {
        self.next_tx += 1;
        let tx = TransferId(Uuid::from_u128((u128::from(self.seed) << 64) | u128::from(self.next_tx)));
        let mut by_bank = LegsByBank::new();
        for (from_bank, from, to_bank, to, cents) in &legs {
            let amount = Amount::from_cents(*cents).expect("valid amount");
            let debited = by_bank.entry(*from_bank).or_default();
            debited.debits.push((from.clone(), amount));
            debited.on_behalf_of = Some(payer());
            by_bank.entry(*to_bank).or_default().credits.push((to.clone(), amount));
        }
        self.planned.insert(tx, legs);
        let now = self.clock(coordinator);
        let expires_at = TimestampMs(now.0 + expiry_ms);
        self.call_coordinator(coordinator, |c| c.begin(tx, by_bank, expires_at, now));
        tx
    }

    /// Starts the registration of `key` for account `i` of `coordinator`: a transaction whose
    /// legs claim the key at every bank (DESIGN.md §5a).
    pub fn begin_key(&mut self, coordinator: BankId, key: PixKey, i: usize, expiry_ms: i64) -> TransferId {
        self.next_tx += 1;
        let tx = TransferId(Uuid::from_u128((u128::from(self.seed) << 64) | u128::from(self.next_tx)));
        let owner = RemoteKey {
            bank_id: coordinator,
            account: World::account(i),
            holder_name: format!("Cliente {i}"),
            masked_document: "***.000.000-**".into(),
        };
        let claim = KeyClaim { key: key.clone(), owner };
        let legs: LegsByBank = self
            .banks
            .iter()
            .map(|b| (b.id, bank_core::twopc::Legs { keys: vec![claim.clone()], ..Default::default() }))
            .collect();
        self.key_claims.insert(tx, (key, coordinator, World::account(i)));
        let now = self.clock(coordinator);
        let expires_at = TimestampMs(now.0 + expiry_ms);
        self.call_coordinator(coordinator, |c| c.begin(tx, legs, expires_at, now));
        tx
    }

    /// The few keys random registrations compete for, so that many collide.
    pub fn key_pool(i: usize) -> PixKey {
        PixKey::parse(&format!("chave{}@example.com", i % 3)).expect("valid key")
    }

    /// Starts a random transfer at a random live bank: debits in 1–3 banks (sometimes all legs in
    /// one bank), amounts mostly up to a fifth of the largest initial balance, some up to all of
    /// it, so some overspend and many compete for the same accounts.
    pub fn begin_random(&mut self) {
        let up: Vec<BankId> = self.banks.iter().filter(|b| b.up).map(|b| b.id).collect();
        if up.is_empty() {
            return;
        }
        let coordinator = up[self.rng.below(up.len())];
        if self.rng.per_mille(120) {
            let key = World::key_pool(self.rng.below(3));
            let account = self.rng.below(self.knobs.accounts_per_bank);
            let expiry_ms = self.rng.range(self.knobs.expiry_ms);
            self.begin_key(coordinator, key, account, expiry_ms);
            return;
        }
        let n = self.knobs.banks;
        let single_bank = self.rng.per_mille(200);
        let mut debit_banks: Vec<BankId> = (1..=n as u32).map(BankId).collect();
        self.rng.shuffle(&mut debit_banks);
        debit_banks.truncate(if single_bank { 1 } else { 1 + self.rng.below(3.min(n)) });
        let mut legs = Vec::new();
        for from_bank in debit_banks {
            for _ in 0..1 + self.rng.below(2) {
                let from = self.rng.below(self.knobs.accounts_per_bank);
                let to_bank = if single_bank { from_bank } else { BankId(self.rng.below(n) as u32 + 1) };
                let mut to = self.rng.below(self.knobs.accounts_per_bank);
                if to_bank == from_bank && to == from {
                    to = (to + 1) % self.knobs.accounts_per_bank;
                }
                let max = self.knobs.balance_cents.1;
                let cents =
                    if self.rng.per_mille(100) { self.rng.range((max / 2, max)) } else { self.rng.range((1, max / 5)) };
                legs.push((from_bank, World::account(from), to_bank, World::account(to), cents));
            }
        }
        let expiry_ms = self.rng.range(self.knobs.expiry_ms);
        self.begin(coordinator, legs, expiry_ms);
    }

    // ----- carrying out the machines' outputs -------------------------------------------------------

    /// Where the next call of `bank` crashes, among `points` positions (or not at all).
    fn plan_crash(&mut self, bank: BankId, points: usize) -> Option<usize> {
        if let Some((planned, after)) = self.crash_plan
            && planned == bank
        {
            self.crash_plan = None;
            return Some(after.min(points - 1));
        }
        if self.faults && self.rng.per_mille(self.knobs.mid_call_crash_per_mille) {
            self.stats.mid_call_crashes += 1;
            return Some(self.rng.below(points));
        }
        None
    }

    fn call_coordinator(&mut self, bank: BankId, call: impl FnOnce(&mut Coordinator) -> Vec<CoordinatorOutput>) {
        let b = self.index(bank);
        if !self.banks[b].up {
            return;
        }
        let outputs = call(&mut self.banks[b].coordinator);
        // Only calls that do something may crash partway (a crash between calls is a step's job).
        let crash_at = if outputs.is_empty() { None } else { self.plan_crash(bank, outputs.len() + 1) };
        for (i, output) in outputs.into_iter().enumerate() {
            if crash_at == Some(i) {
                return self.crash(bank, true);
            }
            match output {
                CoordinatorOutput::Persist(record) => {
                    if let CoordinatorRecord::Decided { tx, decision, .. }
                    | CoordinatorRecord::Finished { tx, decision } = &record
                    {
                        self.agree(*tx, *decision, &format!("coordinator {bank}"));
                    }
                    self.banks[b].store.records.push(record);
                }
                CoordinatorOutput::Send { to, msg } => self.send(bank, to, msg),
                CoordinatorOutput::Decided { tx, decision } => {
                    let first = *self.answers.entry(tx).or_insert(decision);
                    assert_eq!(first, decision, "{tx}: the customer was told {first:?}, then {decision:?}");
                    assert_eq!(self.decisions.get(&tx), Some(&decision), "{tx}: answered before durable");
                }
                CoordinatorOutput::Finished { tx } => {
                    assert!(
                        matches!(self.banks[b].coordinator.phase(&tx), Some(TxPhase::Finished(_))),
                        "{tx}: finished output without the finished phase"
                    );
                }
            }
        }
        if crash_at.is_some() {
            self.crash(bank, true);
        }
    }

    fn call_participant(
        &mut self,
        bank: BankId,
        call: impl FnOnce(&mut Participant, &mut Ledger, &mut Vec<Change>) -> Vec<ParticipantOutput>,
    ) {
        let b = self.index(bank);
        if !self.banks[b].up {
            return;
        }
        let mut changes = Vec::new();
        let Bank { participant, ledger, .. } = &mut self.banks[b];
        let outputs = call(participant, ledger, &mut changes);
        ledger.assert_invariants();
        // Position 0: before the ledger's changes are written; i + 1: after them and i outputs.
        let busy = !outputs.is_empty() || !changes.is_empty();
        let crash_at = if busy { self.plan_crash(bank, outputs.len() + 2) } else { None };
        if crash_at == Some(0) {
            return self.crash(bank, false);
        }
        for change in changes {
            if let Change::Settled { transfer, settlement } = &change {
                self.agree(*transfer, Decision::from(*settlement), &format!("participant {bank}"));
            }
            self.banks[b].store.apply(change);
        }
        for (i, output) in outputs.into_iter().enumerate() {
            if crash_at == Some(i + 1) {
                return self.crash(bank, true);
            }
            match output {
                ParticipantOutput::Send { to, msg } => self.send(bank, to, msg),
                ParticipantOutput::Refused { from, tx, reason } => {
                    panic!("bank {bank} refused a message of bank {from} about {tx}: {reason}")
                }
            }
        }
        if crash_at.is_some() {
            self.crash(bank, true);
        }
    }

    /// Records a durable decision and checks it agrees with every other one of `tx`.
    fn agree(&mut self, tx: TransferId, decision: Decision, at: &str) {
        let first = *self.decisions.entry(tx).or_insert(decision);
        assert_eq!(first, decision, "{tx}: {at} made {decision:?} durable, but it was {first:?} elsewhere");
    }

    fn send(&mut self, from: BankId, to: BankId, msg: Message) {
        self.stats.messages += 1;
        if self.faults && self.rng.per_mille(self.knobs.loss_per_mille) {
            return;
        }
        let copies = if self.faults && self.rng.per_mille(self.knobs.duplicate_per_mille) { 2 } else { 1 };
        let to_bank = self.bank(to);
        if !to_bank.up {
            return;
        }
        let to_incarnation = to_bank.incarnation;
        for _ in 0..copies {
            let delay_ms = self.rng.range(self.knobs.delay_ms);
            let deliver_at = TimestampMs(self.now.0 + delay_ms);
            let msg = msg.clone();
            self.network.push(Packet { deliver_at, from, to, msg, to_incarnation });
        }
    }

    fn deliver(&mut self, packet: Packet) {
        let to = self.bank(packet.to);
        if !to.up || to.incarnation != packet.to_incarnation {
            return;
        }
        let now = self.clock(packet.to);
        match packet.msg.addressee() {
            Role::Coordinator => self.call_coordinator(packet.to, |c| c.step(packet.from, packet.msg, now)),
            Role::Participant => self.call_participant(packet.to, |p, ledger, changes| {
                p.step(ledger, packet.from, packet.msg, now, changes)
            }),
        }
    }

    // ----- crashes ------------------------------------------------------------------------------

    /// Crashes `bank`: its volatile state and the messages in flight to it are gone. `durable` says
    /// whether its in-memory ledger had been fully written (then a rebuild must equal it).
    pub fn crash(&mut self, bank: BankId, durable: bool) {
        let b = self.index(bank);
        if !self.banks[b].up {
            return;
        }
        self.stats.crashes += 1;
        if durable {
            let rebuilt = self.banks[b].store.rebuild(bank);
            assert!(rebuilt == self.banks[b].ledger, "bank {bank}: the ledger read back from storage differs");
        }
        let downtime_ms = if self.scripted { i64::MAX / 4 } else { self.rng.range(self.knobs.downtime_ms) };
        let bank_state = &mut self.banks[b];
        bank_state.up = false;
        bank_state.incarnation += 1;
        bank_state.restart_at = TimestampMs(self.now.0 + downtime_ms);
        // Messages to it are lost. Messages from it that already left may still arrive (they are
        // on the wire): that is what exposes a message sent before its write-ahead record.
        let network = std::mem::take(&mut self.network);
        for packet in network {
            let keep = packet.to != bank && (packet.from != bank || (!self.scripted && self.rng.per_mille(500)));
            if keep {
                self.network.push(packet);
            }
        }
    }

    /// Restarts `bank` from its storage.
    pub fn restart(&mut self, bank: BankId) {
        let retry = self.knobs.retry;
        let b = self.index(bank);
        let state = &mut self.banks[b];
        assert!(!state.up, "bank {bank} is already up");
        state.ledger = state.store.rebuild(bank);
        state.ledger.assert_invariants();
        state.coordinator = Coordinator::recover(bank, retry, state.store.records.iter().cloned());
        state.participant = Participant::new(bank, retry);
        state.up = true;
    }

    /// Makes `bank` crash after `outputs` outputs of its next call (for a participant, 0 means
    /// before its ledger changes are written).
    pub fn crash_during_next_call(&mut self, bank: BankId, outputs: usize) {
        self.crash_plan = Some((bank, outputs));
    }

    // ----- time ---------------------------------------------------------------------------------

    /// One step: time moves on, crashed banks come back when due, a bank may crash, due messages
    /// are delivered in random order, and every live bank ticks.
    pub fn step(&mut self) {
        self.stats.steps += 1;
        self.now = TimestampMs(self.now.0 + self.knobs.step_ms);
        for b in 0..self.banks.len() {
            if !self.banks[b].up && self.banks[b].restart_at <= self.now {
                self.restart(self.banks[b].id);
            }
        }
        if self.faults && self.rng.per_mille(self.knobs.crash_per_mille) {
            let victim = BankId(self.rng.below(self.banks.len()) as u32 + 1);
            self.crash(victim, true);
        }
        let now = self.now;
        let (mut due, later): (Vec<Packet>, Vec<Packet>) = self.network.drain(..).partition(|p| p.deliver_at <= now);
        self.network = later;
        self.rng.shuffle(&mut due);
        if self.knobs.batching {
            self.deliver_batches(due);
        } else {
            for packet in due {
                self.deliver(packet);
            }
        }
        self.tick_all();
    }

    /// Delivers `due` grouped per (sender, receiver), as the outboxes send them: each batch may be
    /// lost whole, delivered twice, or cut by its receiver crashing after a prefix of it (every
    /// message before the cut applied and durable, the rest lost).
    fn deliver_batches(&mut self, due: Vec<Packet>) {
        let mut groups: BTreeMap<(BankId, BankId), Vec<Packet>> = BTreeMap::new();
        for packet in due {
            groups.entry((packet.from, packet.to)).or_default().push(packet);
        }
        let mut batches: Vec<Vec<Packet>> = groups.into_values().collect();
        self.rng.shuffle(&mut batches);
        for batch in batches {
            self.stats.batches += 1;
            if self.faults && self.rng.per_mille(self.knobs.loss_per_mille) {
                self.stats.batches_lost += 1;
                continue;
            }
            let copies = if self.faults && self.rng.per_mille(self.knobs.duplicate_per_mille) { 2 } else { 1 };
            self.stats.batches_duplicated += copies - 1;
            for _ in 0..copies {
                let cut = (self.faults && batch.len() > 1 && self.rng.per_mille(self.knobs.batch_crash_per_mille))
                    .then(|| 1 + self.rng.below(batch.len() - 1));
                for (i, packet) in batch.iter().cloned().enumerate() {
                    if cut == Some(i) {
                        self.stats.batches_cut += 1;
                        self.crash(packet.to, true);
                        break;
                    }
                    self.deliver(packet);
                }
            }
        }
    }

    /// Ticks every live bank's coordinator, then its participant.
    pub fn tick_all(&mut self) {
        for b in 0..self.banks.len() {
            let bank = self.banks[b].id;
            let now = self.clock(bank);
            self.call_coordinator(bank, |c| c.tick(now));
            self.tick_participant(bank);
        }
    }

    pub fn tick_participant(&mut self, bank: BankId) {
        let now = self.clock(bank);
        self.call_participant(bank, |p, ledger, _| p.tick(ledger, now));
    }

    /// Delivers, in order, the messages in flight that `pick` selects (not the ones this sends).
    pub fn deliver_where(&mut self, pick: impl Fn(&Packet) -> bool) -> usize {
        let (chosen, rest): (Vec<Packet>, Vec<Packet>) = self.network.drain(..).partition(&pick);
        self.network = rest;
        let n = chosen.len();
        for packet in chosen {
            self.deliver(packet);
        }
        n
    }

    /// Drops the messages in flight that `pick` selects.
    pub fn drop_where(&mut self, pick: impl Fn(&Packet) -> bool) -> usize {
        let before = self.network.len();
        self.network.retain(|p| !pick(p));
        before - self.network.len()
    }

    /// Duplicates the messages in flight that `pick` selects.
    pub fn duplicate_where(&mut self, pick: impl Fn(&Packet) -> bool) -> usize {
        let copies: Vec<Packet> = self.network.iter().filter(|p| pick(p)).cloned().collect();
        let n = copies.len();
        self.network.extend(copies);
        n
    }

    // ----- the end ------------------------------------------------------------------------------

    fn quiet(&self) -> bool {
        self.network.is_empty()
            && self
                .banks
                .iter()
                .all(|b| b.up && b.coordinator.in_flight() == 0 && b.ledger.holds_iter().next().is_none())
    }

    /// Stops the faults, brings every bank back, and runs until nothing is left to do; then
    /// checks the final invariants.
    pub fn heal_and_check(&mut self) {
        self.faults = false;
        for b in 0..self.banks.len() {
            if !self.banks[b].up {
                self.restart(self.banks[b].id);
            }
        }
        let mut steps = 0;
        while !self.quiet() {
            assert!(steps < self.knobs.heal_steps_max, "not quiet after healing: {}", self.describe());
            self.step();
            steps += 1;
        }
        self.check_final();
    }

    /// The invariants of DESIGN.md §8 that concern 2PC, on a quiet world.
    pub fn check_final(&mut self) {
        assert!(self.quiet(), "check_final on a busy world: {}", self.describe());
        let mut expected = self.initial.clone();
        for (tx, legs) in &self.planned {
            let coordinator_of =
                |w: &World| w.banks.iter().find(|b| b.store.records.iter().any(|r| r.tx() == *tx)).map(|b| b.id);
            let Some(coordinator) = coordinator_of(self) else {
                // Its coordinator crashed before the preparing record: it never began, and no bank
                // may have heard of it.
                assert!(!self.decisions.contains_key(tx), "{tx} never began, yet was decided");
                for bank in &self.banks {
                    assert!(
                        bank.ledger.settlement(tx).map(Decision::from).is_none(),
                        "{tx} never began, yet bank {} decided it",
                        bank.id
                    );
                }
                self.stats.never_begun += 1;
                continue;
            };
            let decision = match self.bank(coordinator).coordinator.phase(tx) {
                Some(TxPhase::Finished(d)) => d,
                other => panic!("{tx}: coordinator {coordinator} ends in {other:?}"),
            };
            assert_eq!(self.decisions.get(tx), Some(&decision), "{tx}");
            if let Some(answer) = self.answers.get(tx) {
                assert_eq!(*answer, decision, "{tx}: the customer's answer differs from the outcome");
            }
            let participants: BTreeSet<BankId> = legs.iter().flat_map(|l| [l.0, l.2]).collect();
            for bank in participants {
                assert_eq!(
                    self.bank(bank).ledger.settlement(tx).map(Decision::from),
                    Some(decision),
                    "{tx} at participant {bank}"
                );
            }
            match decision {
                Decision::Committed => {
                    self.stats.committed += 1;
                    for (from_bank, from, to_bank, to, cents) in legs {
                        *expected.get_mut(&(*from_bank, from.clone())).expect("known account") -= cents;
                        *expected.get_mut(&(*to_bank, to.clone())).expect("known account") += cents;
                    }
                }
                Decision::Aborted => self.stats.aborted += 1,
            }
        }
        // Key registrations: decided the same everywhere; a key names at most one account and
        // every bank's directory agrees.
        for tx in self.key_claims.keys() {
            let coordinator = self.banks.iter().find(|b| b.store.records.iter().any(|r| r.tx() == *tx)).map(|b| b.id);
            let Some(coordinator) = coordinator else { continue };
            let decision = match self.bank(coordinator).coordinator.phase(tx) {
                Some(TxPhase::Finished(d)) => d,
                other => panic!("key registration {tx}: coordinator {coordinator} ends in {other:?}"),
            };
            for bank in &self.banks {
                assert_eq!(
                    bank.ledger.settlement(tx).map(Decision::from),
                    Some(decision),
                    "key registration {tx} at bank {}",
                    bank.id
                );
            }
            self.stats.keys_registered += usize::from(decision == Decision::Committed);
        }
        for i in 0..3 {
            let key = World::key_pool(i);
            let owners: Vec<Option<(BankId, AccountNumber)>> =
                self.banks.iter().map(|b| b.ledger.key_directory(&key).map(|o| (o.bank_id, o.account))).collect();
            assert!(owners.windows(2).all(|w| w[0] == w[1]), "directories disagree on {key}: {owners:?}");
            let committed: Vec<_> = self
                .key_claims
                .iter()
                .filter(|(tx, (k, _, _))| *k == key && self.decisions.get(*tx) == Some(&Decision::Committed))
                .collect();
            assert!(committed.len() <= 1, "{key} registered {} times", committed.len());
            if let Some((_, (_, bank, account))) = committed.first() {
                assert_eq!(owners[0], Some((*bank, account.clone())), "{key}: the directory lost the registration");
            }
        }
        for bank in &self.banks {
            bank.ledger.assert_invariants();
            assert!(bank.store.rebuild(bank.id) == bank.ledger, "bank {}: storage and memory differ", bank.id);
            for account in bank.ledger.accounts() {
                assert_eq!(account.held_cents, 0, "bank {} account {}: money left held", bank.id, account.number);
                assert_eq!(
                    account.posted_cents,
                    expected[&(bank.id, account.number.clone())],
                    "bank {} account {}: not initial + committed legs",
                    bank.id,
                    account.number
                );
            }
        }
        let total_initial: i64 = self.initial.values().sum();
        let total_now: i64 = self.banks.iter().map(|b| b.ledger.total_posted_cents()).sum();
        assert_eq!(total_now, total_initial, "money was created or destroyed");
    }

    /// A summary of what is still going on, for failure messages.
    pub fn describe(&self) -> String {
        let mut text = format!("seed {} at {} ms; {} messages in flight", self.seed, self.now.0, self.network.len());
        for bank in &self.banks {
            let holds: Vec<String> = bank.ledger.holds_iter().map(|(tx, _)| tx.to_string()).collect();
            text += &format!(
                "; bank {} {} coordinating {} holding {:?}",
                bank.id,
                if bank.up { "up" } else { "down" },
                bank.coordinator.in_flight(),
                holds
            );
        }
        text
    }
}

/// Selects packets carrying a message of the given kind (by the tag of its JSON form).
pub fn kind(packet: &Packet) -> &'static str {
    match packet.msg {
        Message::Prepare { .. } => "prepare",
        Message::Vote { .. } => "vote",
        Message::Commit { .. } => "commit",
        Message::Abort { .. } => "abort",
        Message::Ack { .. } => "ack",
        Message::QueryOutcome { .. } => "query_outcome",
        Message::Outcome { .. } => "outcome",
    }
}

/// The customer every simulated transfer is paid by: a holder of every account.
pub fn payer() -> Document {
    Document::Cpf(Cpf::from_base(999_999_999))
}
