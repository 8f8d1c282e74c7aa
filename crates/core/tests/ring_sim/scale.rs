//! The ring at sizes this machine cannot run (issue 13, part 6): `n` real [`RingNode`]s in
//! logical time (1 tick = 1 ms), a network with a fixed one-way delay, no faults, and a driver
//! that does what the node's gate does — on `StartWork` it begins up to the visit's budget of
//! queued cross-bank transactions and reports the batch begun, so the token moves on at once.
//!
//! Every output of a bank leaves `commit_ms` after the step that produced it (the node commits a
//! step's batch before anything of it leaves) and arrives `hop_ms` later. A transaction's latency
//! is its wait for the token plus its two-phase commit after the begin: the begin's commit, then
//! prepare and vote (a participant's commit, a hop each way), then the decision's commit —
//! `wait + 3 × commit + 2 × hop`. `concurrent` mode is the same without the wait.

use std::collections::{BTreeMap, VecDeque};

use bank_core::ids::BankId;
use bank_core::ring::{RingConfig, RingDurable, RingMessage, RingNode, RingOutput, RingSettings, Tick};

/// One consortium size and network to measure.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub banks: u32,
    /// One-way delay between any two banks.
    pub hop_ms: u64,
    /// Time to make a step's batch durable before its messages leave.
    pub commit_ms: u64,
    /// Offered cross-bank load, per bank (transactions per second); `None`: saturated (every
    /// bank always has more than a visit's budget waiting), which measures the ring's bound.
    pub load_per_bank: Option<f64>,
    pub ops_per_visit: u32,
    /// How long to run after the first token exists.
    pub run_ms: u64,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Mean time between two visits of the token to the same bank.
    pub rotation_ms: f64,
    /// Cross-bank transactions begun per second, all banks.
    pub started_per_s: f64,
    /// Latency of a cross-bank transaction (token wait + two-phase commit), p50 and p99.
    pub latency_p50_ms: u64,
    pub latency_p99_ms: u64,
    /// The same transaction's latency without a ring (`concurrent` mode).
    pub concurrent_ms: u64,
    /// The loss timeout: how long the consortium goes without cross-bank starts after the holder
    /// dies, before the election (`2H + (n−1)(L+2H)`).
    pub loss_timeout_ms: u64,
}

/// The ring's settings for a network: the hop timeout covers a round trip and the commits at
/// both ends with room to spare (as the node's 80 ms do on one machine), the lease covers
/// starting a batch.
pub fn settings_for(hop_ms: u64, commit_ms: u64, ops_per_visit: u32) -> RingSettings {
    let hop_timeout_ticks = (4 * (hop_ms + commit_ms)).max(80);
    RingSettings {
        lease_ticks: 40,
        hop_timeout_ticks,
        idle_pause_ticks: 30,
        retry_ticks: (hop_timeout_ticks / 5).max(1),
        priority_stagger_ticks: hop_timeout_ticks * 2 / 3,
        ops_per_visit,
    }
}

/// A message in flight.
struct InFlight {
    from: BankId,
    to: BankId,
    msg: RingMessage,
}

/// Runs one scenario; deterministic (arrivals are evenly spaced, staggered per bank).
pub fn run(s: Scenario) -> Measured {
    let settings = settings_for(s.hop_ms, s.commit_ms, s.ops_per_visit);
    let members: Vec<BankId> = (1..=s.banks).map(BankId).collect();
    let mut nodes: Vec<RingNode> = members
        .iter()
        .map(|&me| {
            let config = RingConfig::new(me, members.iter().copied(), settings).expect("config");
            RingNode::recover(config, RingDurable::default(), Tick(0))
        })
        .collect();
    // Bounded: at most one queue per bank, each bounded by what arrives in the run.
    let mut queues: Vec<VecDeque<u64>> = vec![VecDeque::new(); s.banks as usize];
    let mut network: BTreeMap<u64, Vec<InFlight>> = BTreeMap::new();
    let mut waits: Vec<u64> = Vec::new();
    let mut visits_of_first: Vec<u64> = Vec::new();
    let mut started_at: Option<u64> = None;
    let interval_ms = s.load_per_bank.map(|rate| 1_000.0 / rate);
    let mut next_arrival: Vec<f64> = vec![0.0; s.banks as usize];
    let end = s.run_ms + 60_000;
    let mut now = 0u64;
    while now < end && started_at.is_none_or(|t| now < t + s.run_ms) {
        for b in 0..s.banks as usize {
            match interval_ms {
                Some(i) if started_at.is_some() => {
                    while next_arrival[b] <= now as f64 {
                        queues[b].push_back(now);
                        next_arrival[b] += i;
                    }
                }
                // Arrivals begin with the first token, staggered across the banks.
                Some(i) => next_arrival[b] = now as f64 + 1.0 + i * b as f64 / f64::from(s.banks),
                None => {
                    while queues[b].len() < 2 * s.ops_per_visit as usize {
                        queues[b].push_back(now);
                    }
                }
            }
        }
        let mut steps: Vec<(usize, Vec<RingOutput>)> = Vec::new();
        for m in network.remove(&now).unwrap_or_default() {
            let i = (m.to.0 - 1) as usize;
            steps.push((i, nodes[i].step(m.from, m.msg, Tick(now))));
        }
        // Timers every 10 ms, as the node's ring tick: with no faults they only end idle visits
        // and run the first election; a busy visit ends when its batch is begun.
        if now.is_multiple_of(10) {
            for (i, node) in nodes.iter_mut().enumerate() {
                steps.push((i, node.tick(Tick(now))));
            }
        }
        // Carry out every step's outputs; a visit's batch is begun and reported in the same
        // step, so its pass leaves with the batch's commit.
        while let Some((i, outputs)) = steps.pop() {
            for output in outputs {
                match output {
                    RingOutput::Send { to, msg } => network
                        .entry(now + s.commit_ms + s.hop_ms)
                        .or_default()
                        .push(InFlight { from: members[i], to, msg }),
                    RingOutput::StartWork { budget_ops, .. } => {
                        started_at.get_or_insert(now);
                        if i == 0 {
                            visits_of_first.push(now);
                        }
                        let n = (budget_ops as usize).min(queues[i].len());
                        waits.extend(queues[i].drain(..n).map(|arrived| now - arrived));
                        steps.push((i, nodes[i].batch_done(Tick(now), n as u32)));
                    }
                    RingOutput::Persist(_) | RingOutput::StopWork { .. } => {}
                }
            }
        }
        now += 1;
    }
    let two_phase_ms = 3 * s.commit_ms + 2 * s.hop_ms;
    let rotation_ms = match visits_of_first.as_slice() {
        [first, .., last] => (last - first) as f64 / (visits_of_first.len() - 1) as f64,
        _ => f64::INFINITY,
    };
    waits.sort_unstable();
    let at = |q: f64| waits.get(((waits.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0) + two_phase_ms;
    let config = RingConfig::new(members[0], members.iter().copied(), settings).expect("config");
    Measured {
        rotation_ms,
        started_per_s: waits.len() as f64 * 1_000.0 / s.run_ms as f64,
        latency_p50_ms: at(0.5),
        latency_p99_ms: at(0.99),
        concurrent_ms: two_phase_ms,
        loss_timeout_ms: config.loss_timeout_ticks(),
    }
}
