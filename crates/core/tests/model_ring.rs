//! An exhaustive model check of the token ring for three banks (stateright).
//!
//! The model runs the real [`RingNode`]s of `bank_core::ring`: every state is three banks (each a
//! node or down, with its durable state and its work window), the messages in flight, one global
//! clock, and the history the properties need. From each state, every action the world could
//! take next is explored:
//!
//! - deliver any message in flight (in any order), drop it, or duplicate it;
//! - crash a bank (it loses its node, its work and the messages to it), or restart a crashed one
//!   from its durable state;
//! - once every message of the tick is delivered or dropped, let one tick pass: every up bank
//!   ticks, in id order. (The hop timeout is one tick, so by assumption A1 of the ring a message
//!   lives within the tick it was sent in.)
//!
//! Drops, duplicates and crashes together are at most `FAULTS_MAX` per history, and the clock
//! stops at `TICKS_MAX`; within those bounds the check is exhaustive. The bounds are enough to
//! lose the first token, wait out the loss timeout, pre-vote, vote and pass the new token on,
//! which the `sometimes` properties prove is reached. `BANK_MODEL_TICKS` and
//! `BANK_MODEL_FAULTS` override the bounds (larger ones take much longer).
//!
//! Every visit lasts its whole one-tick lease (the driver never reports its batch early), so the
//! token moves at most one hop per tick. An earlier end of a visit only shortens a work window;
//! the simulator (`sim_ring.rs`) covers it. Crashes happen between calls; a crash in the middle of
//! a call, after its `Persist` and before its sends, is the same as a crash after the call plus
//! dropped messages.
//!
//! Checked in every reachable state (`always`): at most one token per epoch (and each epoch a
//! single chain of accepted positions), at most one bank working at a time, no bank accepting a
//! token older than an epoch it voted in, no vote granted twice in an epoch or before it is
//! durable, and every creation backed by a majority of the whole consortium.

use std::collections::BTreeMap;

use bank_core::ids::BankId;
use bank_core::ring::{
    Epoch, Hop, RingConfig, RingDurable, RingMessage, RingNode, RingOutput, RingSettings, Tick, TokenPosition,
    VoteRecord,
};
use stateright::{Checker, Model, Property};

const BANKS: usize = 3;
/// The clock runs from 0 to this many ticks.
const TICKS_MAX: u64 = 16;
/// Faults (a dropped message, a duplicated one, a crash) per history.
const FAULTS_MAX: u8 = 2;

/// Small settings, so that a regeneration fits in the bounded clock: a one-tick lease and hop
/// timeout (a message lives within the tick it was sent in), no idle pause. The loss timeout is
/// then `2·1 + 2·(1 + 2·1) = 8` ticks.
const SETTINGS: RingSettings = RingSettings {
    lease_ticks: 1,
    hop_timeout_ticks: 1,
    idle_pause_ticks: 0,
    retry_ticks: 1,
    priority_stagger_ticks: 1,
    ops_per_visit: 1,
};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ModelBank {
    /// `None` while crashed.
    node: Option<RingNode>,
    durable: RingDurable,
    /// The end of this bank's work window (exclusive), while it works.
    working_until: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Envelope {
    from: BankId,
    to: BankId,
    msg: RingMessage,
}

/// What went wrong, if anything (a flag per property, so a counterexample is easy to read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Violations {
    two_tokens_in_an_epoch: bool,
    two_workers: bool,
    stale_acceptance: bool,
    vote_twice_or_not_durable: bool,
    created_without_majority: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RingState {
    now: u64,
    banks: Vec<ModelBank>,
    /// The messages in flight, sorted (a multiset), so equal worlds are equal states.
    network: Vec<Envelope>,
    /// History: who created each epoch, who accepted each position, who got each vote.
    created: BTreeMap<Epoch, BankId>,
    accepted_by: BTreeMap<TokenPosition, BankId>,
    grants: BTreeMap<(Epoch, BankId), BankId>,
    violations: Violations,
    faults: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Action {
    Deliver(usize),
    Drop(usize),
    Duplicate(usize),
    Tick,
    Crash(usize),
    Restart(usize),
}

struct RingModel {
    configs: Vec<RingConfig>,
    ticks_max: u64,
    faults_max: u8,
}

impl RingModel {
    fn new() -> Self {
        let members: Vec<BankId> = (1..=BANKS as u32).map(BankId).collect();
        let configs = members
            .iter()
            .map(|&me| RingConfig::new(me, members.iter().copied(), SETTINGS).expect("valid config"))
            .collect();
        let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let ticks_max = env("BANK_MODEL_TICKS").unwrap_or(TICKS_MAX);
        let faults_max = env("BANK_MODEL_FAULTS").map_or(FAULTS_MAX, |f| f.min(u64::from(u8::MAX)) as u8);
        RingModel { configs, ticks_max, faults_max }
    }

    fn majority(&self) -> usize {
        self.configs[0].majority()
    }

    /// Carries out the outputs of bank `b`'s call, in order, recording what they mean.
    fn apply(&self, state: &mut RingState, b: usize, outputs: Vec<RingOutput>) {
        let bank = BankId(b as u32 + 1);
        for output in outputs {
            match output {
                RingOutput::Persist(durable) => self.persist(state, b, durable),
                RingOutput::Send { to, msg } => {
                    if let RingMessage::VoteReply { epoch, granted: true, .. } = msg {
                        let durable_vote = state.banks[b].durable.voted == Some(VoteRecord { epoch, candidate: to });
                        let first = *state.grants.entry((epoch, bank)).or_insert(to);
                        if !durable_vote || first != to {
                            state.violations.vote_twice_or_not_durable = true;
                        }
                    }
                    let to_index = to.0 as usize - 1;
                    if state.banks[to_index].node.is_some() {
                        state.network.push(Envelope { from: bank, to, msg });
                    }
                }
                RingOutput::StartWork { lease_until, .. } => {
                    let now = state.now;
                    if state
                        .banks
                        .iter()
                        .enumerate()
                        .any(|(i, other)| i != b && other.working_until.is_some_and(|u| u > now))
                    {
                        state.violations.two_workers = true;
                    }
                    state.banks[b].working_until = Some(lease_until.0);
                }
                RingOutput::StopWork { .. } => state.banks[b].working_until = None,
            }
        }
        state.network.sort();
    }

    fn persist(&self, state: &mut RingState, b: usize, durable: RingDurable) {
        let bank = BankId(b as u32 + 1);
        let old = &state.banks[b].durable;
        if let (Some(o), Some(n)) = (old.voted, durable.voted)
            && (n.epoch < o.epoch || (n.epoch == o.epoch && n != o))
        {
            state.violations.vote_twice_or_not_durable = true;
        }
        if durable.accepted != old.accepted
            && let Some(position) = durable.accepted
        {
            if position.epoch < old.voted_epoch().max(durable.voted_epoch()) {
                state.violations.stale_acceptance = true;
            }
            if position.hop == Hop(0) {
                let votes = state.grants.iter().filter(|((e, _), c)| *e == position.epoch && **c == bank).count() + 1;
                if votes < self.majority() {
                    state.violations.created_without_majority = true;
                }
                if state.created.insert(position.epoch, bank).is_some() {
                    state.violations.two_tokens_in_an_epoch = true;
                }
            }
            if state.accepted_by.insert(position, bank).is_some() {
                state.violations.two_tokens_in_an_epoch = true;
            }
        }
        state.banks[b].durable = durable;
    }
}

impl Model for RingModel {
    type State = RingState;
    type Action = Action;

    fn init_states(&self) -> Vec<RingState> {
        let banks = self
            .configs
            .iter()
            .map(|config| ModelBank {
                node: Some(RingNode::new(config.clone(), Tick(0))),
                durable: RingDurable::default(),
                working_until: None,
            })
            .collect();
        vec![RingState {
            now: 0,
            banks,
            network: Vec::new(),
            created: BTreeMap::new(),
            accepted_by: BTreeMap::new(),
            grants: BTreeMap::new(),
            violations: Violations::default(),
            faults: 0,
        }]
    }

    fn actions(&self, state: &RingState, actions: &mut Vec<Action>) {
        for i in 0..state.network.len() {
            // Identical copies lead to identical states: explore the first of each.
            if i > 0 && state.network[i] == state.network[i - 1] {
                continue;
            }
            actions.push(Action::Deliver(i));
            if state.faults < self.faults_max {
                actions.push(Action::Drop(i));
                actions.push(Action::Duplicate(i));
            }
        }
        // A message lives within the tick it is sent in (the hop timeout is one tick): each is
        // delivered or dropped before the clock moves.
        if state.network.is_empty() && state.now < self.ticks_max {
            actions.push(Action::Tick);
        }
        for (b, bank) in state.banks.iter().enumerate() {
            match &bank.node {
                Some(_) if state.faults < self.faults_max => actions.push(Action::Crash(b)),
                Some(_) => {}
                None => actions.push(Action::Restart(b)),
            }
        }
    }

    fn next_state(&self, last: &RingState, action: Action) -> Option<RingState> {
        let mut state = last.clone();
        let now = Tick(state.now);
        match action {
            Action::Deliver(i) => {
                let envelope = state.network.remove(i);
                let to = envelope.to.0 as usize - 1;
                if let Some(node) = state.banks[to].node.as_mut() {
                    let outputs = node.step(envelope.from, envelope.msg, now);
                    self.apply(&mut state, to, outputs);
                }
            }
            Action::Drop(i) => {
                state.faults += 1;
                state.network.remove(i);
            }
            Action::Duplicate(i) => {
                state.faults += 1;
                let copy = state.network[i].clone();
                state.network.push(copy);
                state.network.sort();
            }
            Action::Tick => {
                state.now += 1;
                let now = state.now;
                for bank in &mut state.banks {
                    if bank.working_until.is_some_and(|u| u <= now) {
                        bank.working_until = None;
                    }
                }
                for b in 0..BANKS {
                    if let Some(node) = state.banks[b].node.as_mut() {
                        let outputs = node.tick(Tick(now));
                        self.apply(&mut state, b, outputs);
                    }
                }
            }
            Action::Crash(b) => {
                state.faults += 1;
                let bank = BankId(b as u32 + 1);
                state.banks[b].node = None;
                state.banks[b].working_until = None;
                state.network.retain(|e| e.to != bank);
            }
            Action::Restart(b) => {
                let durable = state.banks[b].durable.clone();
                state.banks[b].node = Some(RingNode::recover(self.configs[b].clone(), durable, now));
            }
        }
        Some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("at most one token per epoch", |_, s: &RingState| !s.violations.two_tokens_in_an_epoch),
            Property::always("at most one bank works at a time", |_, s: &RingState| !s.violations.two_workers),
            Property::always("no bank accepts a token older than its vote", |_, s: &RingState| {
                !s.violations.stale_acceptance
            }),
            Property::always("one durable vote per epoch", |_, s: &RingState| !s.violations.vote_twice_or_not_durable),
            Property::always("only a majority creates a token", |_, s: &RingState| {
                !s.violations.created_without_majority
            }),
            Property::sometimes("a token of epoch 2 or later is created", |_, s: &RingState| {
                s.created.keys().any(|e| *e >= Epoch(2))
            }),
            Property::sometimes("a regenerated token is passed on", |_, s: &RingState| {
                s.accepted_by.keys().any(|p| p.epoch >= Epoch(2) && p.hop >= Hop(1))
            }),
        ]
    }
}

/// Every reachable state of three banks, within the bounds, keeps every safety property, and
/// regeneration is among the reachable behaviours.
#[test]
fn three_banks_keep_every_property_in_every_reachable_state() {
    let started = std::time::Instant::now();
    let checker = RingModel::new().checker().threads(2).spawn_dfs().join();
    eprintln!(
        "model_ring: {} states ({} unique), depth {}, in {:.1?}",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        started.elapsed()
    );
    checker.assert_properties();
}
