//! A deterministic simulator of a consortium running the token ring.
//!
//! The world is 3–5 banks, each a [`RingNode`] with a [`RingDurable`] standing for its storage,
//! joined by a simulated network, and a driver per bank that does "work" when its node says so.
//! Everything random — the settings, message delays, losses, duplicates, the order of deliveries,
//! crashes, restarts, partitions, how long each batch takes — is drawn from one seeded [`Rng`],
//! so a seed replays exactly.
//!
//! # Time and the network
//!
//! One global logical clock moves one tick per [`World::step`]; each bank's own clock is the
//! global one plus a fixed random offset (up to a million ticks), which proves the ring never
//! compares two banks' ticks. A message is delivered `delay_ticks` (at least 1) after it is
//! sent, and always before `hop_timeout_ticks`: assumption A1 of the ring. Some seeds make every
//! message as slow as A1 allows, to reach the worst-case timing the loss timeout is derived
//! from. Messages may be
//! lost or duplicated (each copy with its own delay, so they reorder), and a partition splits the
//! banks into two sides: a message whose ends are on different sides, when sent or when due, is
//! lost.
//!
//! # What is durable
//!
//! A bank's store receives every [`RingOutput::Persist`] its node reached. A crash (between calls,
//! in the middle of carrying out a call's outputs after any prefix of them, or right after
//! passing the token on, with a restart within the hop timeout while copies of the pass it took
//! may still arrive) throws away the node, its work and the messages in flight *to* it; messages
//! it already sent stay on the wire. A restart rebuilds the node with [`RingNode::recover`] from
//! the store.
//!
//! # What is checked, after every call and every step
//!
//! - *One token per epoch*: every creation (a durable `(epoch, 0)`) is of a new epoch, by a bank
//!   granted that epoch by a majority of the whole consortium (grants are tracked as they are
//!   sent); every accepted `(epoch, hop)` follows a created epoch and an accepted `(epoch, hop-1)`
//!   and is accepted by one bank only: each epoch is a single chain.
//! - *One worker at a time*: a bank works from its `StartWork` until its `StopWork`, its lease
//!   end or its crash; no two windows overlap in global time.
//! - *No stale acceptance*: no bank makes durable an accepted epoch below the epoch it voted in.
//! - *Votes*: a bank's durable vote never goes back, changes candidate within an epoch, or is
//!   granted before it is durable; an up bank's node agrees with its store (nothing acted on was
//!   left unpersisted).
//! - *A minority never regenerates*: a creation while a partition has stood for a whole election
//!   round is on a side holding a majority.
//! - *Liveness* ([`World::heal_and_check`]): once faults stop, partitions heal and all but a
//!   minority of banks are up, every up bank holds the token within [`World::heal_bound_ticks`].

pub mod scale;

use std::collections::{BTreeMap, BTreeSet};

use bank_core::ids::BankId;
use bank_core::ring::{
    Epoch, Hop, RingConfig, RingDurable, RingMessage, RingNode, RingOutput, RingSettings, Tick, TokenPosition,
    VoteRecord,
};

use crate::support::{Rng, Tally};

// ----- knobs --------------------------------------------------------------------------------------

/// Everything the simulation can vary. [`Knobs::random`] draws a different mix per seed.
#[derive(Debug, Clone)]
pub struct Knobs {
    pub banks: usize,
    pub settings: RingSettings,
    /// How long faults strike before the heal.
    pub fault_ticks: u64,
    /// Network delay range; below the hop timeout (assumption A1).
    pub delay_ticks: (u64, u64),
    pub loss_per_mille: u32,
    pub duplicate_per_mille: u32,
    /// Chance per tick that one bank crashes (between calls).
    pub crash_per_mille: u32,
    /// Chance per call that the bank crashes partway through carrying out its outputs.
    pub mid_call_crash_per_mille: u32,
    /// Chance that a bank crashes right after passing the token on, and is back within the hop
    /// timeout, while copies of the pass it took may still arrive.
    pub handoff_crash_per_mille: u32,
    pub downtime_ticks: (u64, u64),
    /// Chance per tick that a partition starts (when none stands).
    pub partition_per_mille: u32,
    pub partition_ticks: (u64, u64),
    /// Chance that a visit's driver has nothing to do (reports an empty batch at once).
    pub idle_per_mille: u32,
    /// Chance that a visit's driver never reports its batch (the lease ends the visit).
    pub silent_per_mille: u32,
    /// Banks left down at the heal: at most a minority.
    pub left_down: usize,
}

impl Knobs {
    /// A calm world for scripted scenarios: no random fault.
    pub fn scripted(banks: usize) -> Self {
        Knobs {
            banks,
            settings: RingSettings {
                lease_ticks: 6,
                hop_timeout_ticks: 4,
                idle_pause_ticks: 2,
                retry_ticks: 1,
                priority_stagger_ticks: 3,
                ops_per_visit: 4,
            },
            fault_ticks: 0,
            delay_ticks: (1, 1),
            loss_per_mille: 0,
            duplicate_per_mille: 0,
            crash_per_mille: 0,
            mid_call_crash_per_mille: 0,
            handoff_crash_per_mille: 0,
            downtime_ticks: (0, 0),
            partition_per_mille: 0,
            partition_ticks: (0, 0),
            idle_per_mille: 300,
            silent_per_mille: 100,
            left_down: 0,
        }
    }

    /// A random mix for one seed.
    pub fn random(rng: &mut Rng) -> Self {
        let banks = rng.range((3, 5)) as usize;
        let lease_ticks = rng.range((2, 10));
        let hop_timeout_ticks = rng.range((2, 6));
        let settings = RingSettings {
            lease_ticks,
            hop_timeout_ticks,
            idle_pause_ticks: rng.range((0, lease_ticks)),
            retry_ticks: rng.range((1, hop_timeout_ticks)),
            priority_stagger_ticks: rng.range((0, 4)),
            ops_per_visit: rng.range((1, 8)) as u32,
        };
        // Usually a round trip fits in the hop timeout; sometimes only a one-way trip does (then
        // acks come late, passes fail, and regeneration is exercised hard).
        let delay_max_ticks = if rng.per_mille(700) { (hop_timeout_ticks / 2).max(1) } else { hop_timeout_ticks - 1 };
        // Now and then every message is as slow as allowed (the worst case of the essay).
        let delay_ticks = (if rng.per_mille(200) { delay_max_ticks } else { 1 }, delay_max_ticks);
        let loss_timeout = RingConfig::new(BankId(1), (1..=banks as u32).map(BankId), settings)
            .expect("valid settings")
            .loss_timeout_ticks();
        Knobs {
            banks,
            settings,
            fault_ticks: rng.range((10, 40)) * loss_timeout,
            delay_ticks,
            loss_per_mille: rng.pick(&[0, 20, 100, 300]),
            duplicate_per_mille: rng.pick(&[0, 50, 200]),
            crash_per_mille: rng.pick(&[0, 2, 10, 30]),
            mid_call_crash_per_mille: rng.pick(&[0, 10, 50]),
            handoff_crash_per_mille: rng.pick(&[0, 20, 100]),
            // Blips (a restart within a round trip, while copies of what it sent and was sent
            // are still in flight) and long outages.
            downtime_ticks: (1, rng.pick(&[2 * hop_timeout_ticks, loss_timeout / 2, 2 * loss_timeout])),
            partition_per_mille: rng.pick(&[0, 2, 10]),
            partition_ticks: (1, rng.pick(&[loss_timeout, 3 * loss_timeout])),
            idle_per_mille: rng.pick(&[0, 300, 900]),
            silent_per_mille: rng.pick(&[0, 100, 300, 1000]),
            left_down: rng.below((banks as u64 - 1) / 2 + 1) as usize,
        }
    }
}

// ----- the world ----------------------------------------------------------------------------------

/// A window of work: from `StartWork` (global tick `from`) until `until` (exclusive), unless
/// stopped or crashed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    pub position: TokenPosition,
    pub from: u64,
    pub until: u64,
}

/// What the driver of a visit will report, and when (global tick).
#[derive(Debug, Clone, Copy)]
struct Batch {
    position: TokenPosition,
    due: u64,
    ops: u32,
}

#[derive(Debug)]
pub struct Bank {
    pub id: BankId,
    pub up: bool,
    /// Bumped by every crash: messages addressed to an older incarnation are lost.
    incarnation: u64,
    restart_at: u64,
    /// Never restarted (left down at the heal, or by a script).
    stays_down: bool,
    clock_offset: u64,
    pub node: RingNode,
    pub store: RingDurable,
    /// Partition side.
    pub side: u8,
    pub work: Option<Work>,
    batch: Option<Batch>,
}

/// A message on the wire.
#[derive(Debug, Clone)]
pub struct Packet {
    pub deliver_at: u64,
    pub from: BankId,
    pub to: BankId,
    pub msg: RingMessage,
    to_incarnation: u64,
}

/// Counts over a run, to show the seeds exercise what they should.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Tokens created by regeneration (epoch ≥ 2).
    pub regenerations: usize,
    pub visits: usize,
    pub crashes: usize,
    pub mid_call_crashes: usize,
    pub handoff_crashes: usize,
    pub partitions: usize,
    /// Creations while a partition stood (on its majority side).
    pub creations_in_partition: usize,
    pub messages: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub refused_tokens: usize,
    pub steps: usize,
    /// The longest recovery after a heal (ticks until every up bank held the token).
    pub heal_ticks_max: u64,
    /// The longest recovery after a heal, in per cent of its bound.
    pub heal_bound_used_percent_max: u64,
}

impl Tally for Stats {
    fn add(&mut self, one: &Self) {
        self.regenerations += one.regenerations;
        self.visits += one.visits;
        self.crashes += one.crashes;
        self.mid_call_crashes += one.mid_call_crashes;
        self.handoff_crashes += one.handoff_crashes;
        self.partitions += one.partitions;
        self.creations_in_partition += one.creations_in_partition;
        self.messages += one.messages;
        self.lost += one.lost;
        self.duplicated += one.duplicated;
        self.refused_tokens += one.refused_tokens;
        self.steps += one.steps;
        self.heal_ticks_max = self.heal_ticks_max.max(one.heal_ticks_max);
        self.heal_bound_used_percent_max = self.heal_bound_used_percent_max.max(one.heal_bound_used_percent_max);
    }
}

#[derive(Debug)]
pub struct World {
    pub rng: Rng,
    pub knobs: Knobs,
    pub seed: u64,
    /// Global logical time.
    pub now: u64,
    /// Random faults (loss, duplicates, crashes, partitions) are on; off once healed.
    faults: bool,
    pub banks: Vec<Bank>,
    pub network: Vec<Packet>,
    members: Vec<BankId>,
    /// Global tick of the last partition change (start or heal).
    partition_changed_at: u64,
    partition_until: Option<u64>,
    /// Every epoch created, and by whom.
    pub created: BTreeMap<Epoch, BankId>,
    /// Every accepted token position, and by whom.
    pub accepted_by: BTreeMap<TokenPosition, BankId>,
    /// Every vote granted: (epoch, voter) → candidate.
    pub grants: BTreeMap<(Epoch, BankId), BankId>,
    /// Banks that started a visit since the last heal.
    pub visited_since_heal: BTreeSet<BankId>,
    pub stats: Stats,
    /// Print every call's outputs (`BANK_SIM_TRACE=1`, for replaying a seed).
    trace: bool,
}

impl World {
    /// A random world for `seed` (knobs drawn from it too).
    pub fn random(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let knobs = Knobs::random(&mut rng);
        let world = World::build(seed, rng, knobs, true);
        if world.trace {
            eprintln!("seed {seed}: {:?}; loss timeout {}", world.knobs, world.loss_timeout_ticks());
        }
        world
    }

    /// A calm world of `banks` banks for scripted scenarios.
    pub fn scripted(banks: usize) -> Self {
        World::build(0, Rng::new(0), Knobs::scripted(banks), false)
    }

    fn build(seed: u64, mut rng: Rng, knobs: Knobs, faults: bool) -> Self {
        let members: Vec<BankId> = (1..=knobs.banks as u32).map(BankId).collect();
        let banks = members
            .iter()
            .map(|&id| {
                let clock_offset = rng.below(1_000_000);
                let config = RingConfig::new(id, members.iter().copied(), knobs.settings).expect("valid config");
                Bank {
                    id,
                    up: true,
                    incarnation: 0,
                    restart_at: 0,
                    stays_down: false,
                    clock_offset,
                    node: RingNode::new(config, Tick(clock_offset)),
                    store: RingDurable::default(),
                    side: 0,
                    work: None,
                    batch: None,
                }
            })
            .collect();
        World {
            rng,
            knobs,
            seed,
            now: 0,
            faults,
            banks,
            network: Vec::new(),
            members,
            partition_changed_at: 0,
            partition_until: None,
            created: BTreeMap::new(),
            accepted_by: BTreeMap::new(),
            grants: BTreeMap::new(),
            visited_since_heal: BTreeSet::new(),
            stats: Stats::default(),
            trace: std::env::var("BANK_SIM_TRACE").is_ok_and(|v| v == "1"),
        }
    }

    fn index(&self, bank: BankId) -> usize {
        self.banks.iter().position(|b| b.id == bank).expect("a member")
    }

    pub fn bank(&self, bank: BankId) -> &Bank {
        &self.banks[self.index(bank)]
    }

    fn config(&self) -> &RingConfig {
        self.banks[0].node.config()
    }

    pub fn loss_timeout_ticks(&self) -> u64 {
        self.config().loss_timeout_ticks()
    }

    fn majority(&self) -> usize {
        self.config().majority()
    }

    /// Bank `bank`'s own clock.
    fn clock(&self, bank: BankId) -> Tick {
        Tick(self.now + self.bank(bank).clock_offset)
    }

    // ----- calling a bank -----------------------------------------------------------------------

    /// Calls bank `bank`'s node and carries out its outputs in order, checking each; with faults
    /// on, the bank may crash after any prefix of them.
    fn call(&mut self, bank: BankId, f: impl FnOnce(&mut RingNode, Tick) -> Vec<RingOutput>) {
        let b = self.index(bank);
        if !self.banks[b].up {
            return;
        }
        let local = self.clock(bank);
        let outputs = f(&mut self.banks[b].node, local);
        if self.trace && !outputs.is_empty() {
            eprintln!("tick {} bank {bank} ({:?}): {outputs:?}", self.now, self.banks[b].node.role());
        }
        let crash_at = if self.faults && !outputs.is_empty() && self.rng.per_mille(self.knobs.mid_call_crash_per_mille)
        {
            Some(self.rng.below(outputs.len() as u64 + 1) as usize)
        } else {
            None
        };
        let passes = outputs.iter().any(|o| matches!(o, RingOutput::Send { msg: RingMessage::Token(_), .. }));
        let handoff_crash = passes && self.faults && self.rng.per_mille(self.knobs.handoff_crash_per_mille);
        for (i, output) in outputs.into_iter().enumerate() {
            if crash_at == Some(i) {
                self.stats.mid_call_crashes += 1;
                return self.crash(bank);
            }
            match output {
                RingOutput::Persist(durable) => self.persist(bank, durable),
                RingOutput::Send { to, msg } => {
                    self.check_send(bank, to, &msg);
                    self.send(bank, to, msg);
                }
                RingOutput::StartWork { epoch, hop, budget_ops, lease_until } => {
                    self.start_work(bank, TokenPosition { epoch, hop }, budget_ops, lease_until)
                }
                RingOutput::StopWork { epoch, hop } => {
                    let b = self.index(bank);
                    if self.banks[b].work.is_some_and(|w| w.position == TokenPosition { epoch, hop }) {
                        self.banks[b].work = None;
                    }
                }
            }
        }
        if crash_at.is_some() {
            self.stats.mid_call_crashes += 1;
            self.crash(bank);
        } else if handoff_crash {
            self.stats.handoff_crashes += 1;
            self.crash(bank);
            let b = self.index(bank);
            self.banks[b].restart_at = self.now + self.rng.range((1, self.knobs.settings.hop_timeout_ticks));
        }
    }

    /// Makes `durable` the bank's stored state, checking it against the previous one and the
    /// world's history.
    fn persist(&mut self, bank: BankId, durable: RingDurable) {
        let old = self.bank(bank).store.clone();
        let at = format!("seed {} tick {}: bank {bank}", self.seed, self.now);
        // Votes only go forward, once per epoch.
        match (old.voted, durable.voted) {
            (Some(o), Some(n)) => {
                assert!(n.epoch >= o.epoch, "{at} took back its vote: {o:?} → {n:?}");
                assert!(n.epoch > o.epoch || n == o, "{at} voted twice in {}: {o:?} then {n:?}", n.epoch);
            }
            (Some(o), None) => panic!("{at} forgot its vote {o:?}"),
            _ => {}
        }
        assert!(durable.accepted >= old.accepted, "{at} went back from {:?} to {:?}", old.accepted, durable.accepted);
        if durable.accepted != old.accepted {
            let position = durable.accepted.expect("accepted something");
            // No stale acceptance.
            let voted = old.voted_epoch().max(durable.voted_epoch());
            assert!(position.epoch >= voted, "{at} accepted {position} after voting in {voted}");
            if position.hop == Hop(0) {
                self.created_token(bank, position.epoch);
            } else {
                assert!(
                    self.created.contains_key(&position.epoch),
                    "{at} accepted {position} of an epoch never created"
                );
                let previous = TokenPosition { epoch: position.epoch, hop: Hop(position.hop.0 - 1) };
                assert!(
                    self.accepted_by.contains_key(&previous),
                    "{at} accepted {position}, but nobody held {previous}"
                );
            }
            if let Some(first) = self.accepted_by.insert(position, bank) {
                panic!("{at} accepted {position}, already accepted by bank {first}: two tokens in one epoch");
            }
        }
        let b = self.index(bank);
        self.banks[b].store = durable;
    }

    fn created_token(&mut self, bank: BankId, epoch: Epoch) {
        let at = format!("seed {} tick {}: bank {bank}", self.seed, self.now);
        if let Some(first) = self.created.insert(epoch, bank) {
            panic!("{at} created a token of {epoch}, already created by bank {first}: two tokens in one epoch");
        }
        let voters = self.grants.iter().filter(|((e, _), c)| *e == epoch && **c == bank).count() + 1;
        assert!(voters >= self.majority(), "{at} created {epoch} with {voters} votes");
        if epoch > Epoch::GENESIS {
            self.stats.regenerations += 1;
        }
        if self.partition_until.is_some() {
            let round = self.config().election_round_ticks();
            if self.now >= self.partition_changed_at + round {
                let side = self.bank(bank).side;
                let size = self.banks.iter().filter(|b| b.side == side).count();
                assert!(size >= self.majority(), "{at} created {epoch} on a minority side of {size} banks");
                self.stats.creations_in_partition += 1;
            }
        }
    }

    fn check_send(&mut self, bank: BankId, to: BankId, msg: &RingMessage) {
        let at = format!("seed {} tick {}: bank {bank}", self.seed, self.now);
        match msg {
            RingMessage::VoteReply { epoch, granted: true, .. } => {
                let vote = VoteRecord { epoch: *epoch, candidate: to };
                assert_eq!(self.bank(bank).store.voted, Some(vote), "{at} granted a vote that is not durable");
                if let Some(first) = self.grants.insert((*epoch, bank), to) {
                    assert_eq!(first, to, "{at} voted for two candidates in {epoch}");
                }
            }
            RingMessage::RequestVote { epoch, .. } => {
                let vote = VoteRecord { epoch: *epoch, candidate: bank };
                assert_eq!(self.bank(bank).store.voted, Some(vote), "{at} asked for votes before voting for itself");
            }
            RingMessage::TokenAck { epoch, hop } => {
                let position = TokenPosition { epoch: *epoch, hop: *hop };
                assert!(
                    self.bank(bank).store.accepted >= Some(position),
                    "{at} acknowledged {position} before it was durable"
                );
            }
            RingMessage::TokenRefused { .. } => self.stats.refused_tokens += 1,
            _ => {}
        }
    }

    fn start_work(&mut self, bank: BankId, position: TokenPosition, budget_ops: u32, lease_until: Tick) {
        let at = format!("seed {} tick {}: bank {bank}", self.seed, self.now);
        let b = self.index(bank);
        assert_eq!(self.banks[b].store.accepted, Some(position), "{at} starts work under {position}, not durable");
        let until = lease_until.0 - self.banks[b].clock_offset;
        assert!(until > self.now, "{at} got a lease that already ended");
        for other in &self.banks {
            if let Some(w) = other.work
                && other.id != bank
                && other.up
                && w.until > self.now
            {
                panic!(
                    "{at} starts work under {position} while bank {} works under {} until tick {}",
                    other.id, w.position, w.until
                );
            }
        }
        self.banks[b].work = Some(Work { position, from: self.now, until });
        self.stats.visits += 1;
        self.visited_since_heal.insert(bank);
        // The driver: nothing to do, a batch decided after a while (maybe past the lease), or
        // silence until the lease ends.
        let roll = self.rng.below(1000) as u32;
        let batch = if roll < self.knobs.idle_per_mille {
            Some(Batch { position, due: self.now, ops: 0 })
        } else if roll < self.knobs.idle_per_mille + self.knobs.silent_per_mille {
            None
        } else {
            let lease = self.knobs.settings.lease_ticks;
            let due = self.now + self.rng.range((0, lease + 1));
            Some(Batch { position, due, ops: self.rng.range((1, u64::from(budget_ops))) as u32 })
        };
        self.banks[b].batch = batch;
    }

    // ----- the network --------------------------------------------------------------------------

    fn send(&mut self, from: BankId, to: BankId, msg: RingMessage) {
        self.stats.messages += 1;
        if self.faults && self.rng.per_mille(self.knobs.loss_per_mille) {
            self.stats.lost += 1;
            return;
        }
        let to_bank = self.bank(to);
        if !to_bank.up || to_bank.side != self.bank(from).side {
            return;
        }
        let to_incarnation = to_bank.incarnation;
        let copies = if self.faults && self.rng.per_mille(self.knobs.duplicate_per_mille) { 2 } else { 1 };
        self.stats.duplicated += copies - 1;
        for _ in 0..copies {
            let deliver_at = self.now + self.rng.range(self.knobs.delay_ticks);
            self.network.push(Packet { deliver_at, from, to, msg: msg.clone(), to_incarnation });
        }
    }

    fn deliver(&mut self, packet: Packet) {
        if self.trace {
            eprintln!("tick {} deliver {} → {}: {:?}", self.now, packet.from, packet.to, packet.msg);
        }
        let to = self.bank(packet.to);
        if !to.up || to.incarnation != packet.to_incarnation || to.side != self.bank(packet.from).side {
            return;
        }
        self.call(packet.to, |node, now| node.step(packet.from, packet.msg, now));
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

    // ----- crashes and partitions ---------------------------------------------------------------

    /// Crashes `bank`: its node, its work and the messages in flight to it are gone.
    pub fn crash(&mut self, bank: BankId) {
        let b = self.index(bank);
        if !self.banks[b].up {
            return;
        }
        self.stats.crashes += 1;
        if self.trace {
            eprintln!("tick {} bank {bank} crashes", self.now);
        }
        let downtime = if self.faults { self.rng.range(self.knobs.downtime_ticks) } else { 0 };
        let state = &mut self.banks[b];
        state.up = false;
        state.incarnation += 1;
        state.restart_at = self.now + downtime;
        state.work = None;
        state.batch = None;
        self.network.retain(|p| p.to != bank);
    }

    /// Crashes `bank` for good (until [`World::restart`]).
    pub fn crash_for_good(&mut self, bank: BankId) {
        self.crash(bank);
        let b = self.index(bank);
        self.banks[b].stays_down = true;
    }

    /// Restarts `bank` from its store.
    pub fn restart(&mut self, bank: BankId) {
        let now = self.clock(bank);
        let b = self.index(bank);
        let state = &mut self.banks[b];
        assert!(!state.up, "bank {bank} is already up");
        state.node = RingNode::recover(state.node.config().clone(), state.store.clone(), now);
        state.up = true;
        state.stays_down = false;
    }

    /// Splits the banks: those in `side_one` on one side, the rest on the other.
    pub fn partition(&mut self, side_one: &[BankId]) {
        for bank in &mut self.banks {
            bank.side = u8::from(side_one.contains(&bank.id));
        }
        self.partition_changed_at = self.now;
        self.partition_until = Some(u64::MAX);
        self.stats.partitions += 1;
    }

    /// Ends any partition.
    pub fn heal_partition(&mut self) {
        for bank in &mut self.banks {
            bank.side = 0;
        }
        self.partition_changed_at = self.now;
        self.partition_until = None;
    }

    fn random_faults(&mut self) {
        if self.rng.per_mille(self.knobs.crash_per_mille) {
            let victim = self.members[self.rng.below(self.banks.len() as u64) as usize];
            self.crash(victim);
        }
        match self.partition_until {
            Some(until) if self.now >= until => self.heal_partition(),
            None if self.rng.per_mille(self.knobs.partition_per_mille) => {
                let mut side_one = Vec::new();
                while side_one.is_empty() || side_one.len() == self.banks.len() {
                    side_one = self.members.iter().copied().filter(|_| self.rng.per_mille(500)).collect();
                }
                self.partition(&side_one);
                self.partition_until = Some(self.now + self.rng.range(self.knobs.partition_ticks));
            }
            _ => {}
        }
    }

    // ----- time ---------------------------------------------------------------------------------

    /// One tick: crashed banks come back when due, faults strike, due messages are delivered in
    /// random order, drivers report due batches, every up bank ticks; then the step's checks.
    pub fn step(&mut self) {
        self.stats.steps += 1;
        self.now += 1;
        for b in 0..self.banks.len() {
            let bank = &self.banks[b];
            if !bank.up && !bank.stays_down && bank.restart_at <= self.now {
                self.restart(bank.id);
            }
        }
        if self.faults {
            self.random_faults();
        }
        let now = self.now;
        let (mut due, later): (Vec<Packet>, Vec<Packet>) = self.network.drain(..).partition(|p| p.deliver_at <= now);
        self.network = later;
        self.rng.shuffle(&mut due);
        for packet in due {
            self.deliver(packet);
        }
        for b in 0..self.banks.len() {
            let bank = &self.banks[b];
            if let Some(batch) = bank.batch
                && bank.up
                && batch.due <= now
            {
                self.banks[b].batch = None;
                if self.banks[b].work.is_some_and(|w| w.position == batch.position) {
                    let id = self.banks[b].id;
                    self.call(id, |node, now| node.batch_done(now, batch.ops));
                }
            }
        }
        self.tick_all();
        self.check_step();
    }

    pub fn tick_all(&mut self) {
        for b in 0..self.banks.len() {
            let id = self.banks[b].id;
            self.call(id, |node, now| node.tick(now));
        }
    }

    pub fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.step();
        }
    }

    /// The checks after every step: one worker at most, and every up node agrees with its store.
    fn check_step(&self) {
        let working: Vec<BankId> =
            self.banks.iter().filter(|b| b.up && b.work.is_some_and(|w| w.until > self.now)).map(|b| b.id).collect();
        assert!(working.len() <= 1, "seed {} tick {}: banks {working:?} work at once", self.seed, self.now);
        for bank in self.banks.iter().filter(|b| b.up) {
            assert_eq!(
                bank.node.durable(),
                &bank.store,
                "seed {} tick {}: bank {} acted on unpersisted state",
                self.seed,
                self.now,
                bank.id
            );
        }
    }

    // ----- the end ------------------------------------------------------------------------------

    /// How long after a heal every up bank must have held the token:
    /// `3 × loss timeout + 2 × n × stagger + 2 × rotation`, a rotation being `n × (L + 2H)`.
    /// (Up to one loss timeout for a lost token to be noticed; another if a bank that is down was
    /// heard from just before the heal, so the new token may be passed to it and die; a third for
    /// banks whose last grant or restart was recent; the candidacy order; and two rotations.)
    pub fn heal_bound_ticks(&self) -> u64 {
        let settings = &self.knobs.settings;
        let n = self.banks.len() as u64;
        let rotation = n * (settings.lease_ticks + 2 * settings.hop_timeout_ticks);
        3 * self.loss_timeout_ticks() + 2 * n * settings.priority_stagger_ticks + 2 * rotation
    }

    /// Stops the faults, heals the partition, leaves `knobs.left_down` banks down (a minority) and
    /// brings the others up, then runs until every up bank has held the token; panics if that
    /// takes longer than [`World::heal_bound_ticks`]. Returns the ticks it took.
    pub fn heal_and_check(&mut self) -> u64 {
        self.faults = false;
        self.heal_partition();
        let mut order = self.members.clone();
        self.rng.shuffle(&mut order);
        let (down, up) = order.split_at(self.knobs.left_down);
        for &bank in down {
            self.crash_for_good(bank);
        }
        for &bank in up {
            if !self.bank(bank).up {
                self.restart(bank);
            }
        }
        let healed_at = self.now;
        if self.trace {
            eprintln!("tick {} heal; left down: {down:?}", self.now);
        }
        let bound = self.heal_bound_ticks();
        self.visited_since_heal.clear();
        let up: BTreeSet<BankId> = up.iter().copied().collect();
        while !up.is_subset(&self.visited_since_heal) {
            assert!(
                self.now - healed_at <= bound,
                "seed {}: {} ticks after the heal, only {:?} of {:?} held the token: {}",
                self.seed,
                self.now - healed_at,
                self.visited_since_heal,
                up,
                self.describe()
            );
            self.step();
        }
        let took = self.now - healed_at;
        self.stats.heal_ticks_max = self.stats.heal_ticks_max.max(took);
        self.stats.heal_bound_used_percent_max = self.stats.heal_bound_used_percent_max.max(100 * took / bound);
        took
    }

    /// A summary of the world, for failure messages.
    pub fn describe(&self) -> String {
        let mut text = format!("seed {} at tick {}; {} messages in flight", self.seed, self.now, self.network.len());
        for bank in &self.banks {
            let status = bank.node.status(self.clock(bank.id));
            text += &format!(
                "; bank {} {} {:?} epoch {} holding {:?} durable {:?}",
                bank.id,
                if bank.up { "up" } else { "down" },
                status.role,
                status.epoch,
                status.holding,
                bank.store
            );
        }
        text
    }
}
