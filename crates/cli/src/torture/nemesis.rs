//! The nemesis: a schedule of faults drawn from a seed ([`schedule`], pure, so `--seed` replays
//! it), and its execution against the run's network, processes and disks ([`Nemesis::run`]).
//!
//! Faults overlap: a new one starts every few hundred milliseconds while earlier ones are still
//! held, so a two-minute run holds dozens of every kind. Kinds:
//! - network (nftables drop rules; several at once drop the union of their pairs): one bank
//!   isolated; a majority/minority split; a bridge (two halves that both see one bank, not each
//!   other); one-way loss between two banks;
//! - process (one at a time per bank, at most [`process_faults_max`] banks at once, so a
//!   majority of the processes is always up): a bank killed (SIGKILL) and restarted after the hold; the token
//!   holder killed (whichever free bank says it holds the token just before); a bank paused
//!   (SIGSTOP … SIGCONT) for longer than the ring's loss timeout, so its peers regenerate the
//!   token without it; a bank restarted with its wall clock skewed (`--clock-offset-ms`, within
//!   or beyond the consortium's allowed 20 ms), restarted on time after the hold; a bank
//!   restarted with a failpoint armed that aborts it as coordinator between its prepare and its
//!   decision (`coordinator_prepared`, `coordinator_decided_commit`), restarted without it after
//!   the hold;
//! - disk: a bank's data directory (its own tmpfs) filled until writes fail, freed after the hold
//!   ([`super::disk`]). The bank must refuse or stop cleanly; a bank that stopped is restarted
//!   once its disk is free.
//!
//! The schedule chooses, at each start, the kind injected least so far among those that fit
//! (ties at random), so every kind gets its share.

use anyhow::Result;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::disk::Disks;
use super::net::{Blocked, Net};
use super::procs::{Cluster, Launch, State};
use super::workload::Recorder;

/// Time between the starts of two faults.
const GAP_MS: (u64, u64) = (120, 360);
/// Most faults one schedule holds (a fault starts every 120 ms at least: 20,000 cover 40 minutes).
pub const FAULTS_MAX: usize = 20_000;
/// Most network faults held at once.
const NETWORK_FAULTS_MAX: usize = 3;
/// Most disks full at once (each costs [`super::disk::DISK_MB`] of memory).
pub const DISK_FAULTS_MAX: usize = 2;
/// The consortium's allowed clock skew (the consortium file's default `clock_skew_ms`).
const ALLOWED_SKEW_MS: i64 = 20;
/// The failpoints that crash a coordinator between its prepare and its decision.
const COORDINATOR_FAILPOINTS: [&str; 2] = ["coordinator_prepared", "coordinator_decided_commit"];

/// Every kind of fault, in report order.
pub const KINDS: [&str; 10] =
    ["isolate", "split", "bridge", "one_way", "kill", "kill_holder", "pause", "skew", "disk_full", "crash_coordinator"];

/// Banks whose process may be under a fault at once: a minority, so a majority of the processes
/// is always up (network faults may still cut it).
pub fn process_faults_max(banks: u32) -> usize {
    (banks.saturating_sub(1) / 2).max(1) as usize
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    Isolate {
        bank: u32,
    },
    /// The minority on one side, everyone else on the other.
    Split {
        minority: Vec<u32>,
    },
    /// `center` sees both halves; the halves do not see each other.
    Bridge {
        center: u32,
        left: Vec<u32>,
        right: Vec<u32>,
    },
    /// Packets from `from` to `to` are lost; the other way works.
    OneWay {
        from: u32,
        to: u32,
    },
    Kill {
        bank: u32,
    },
    /// Kill the bank holding the token at that moment (found from the status pages of the banks
    /// under no other process fault, just before; `None` in the schedule).
    KillHolder {
        bank: Option<u32>,
    },
    Pause {
        bank: u32,
    },
    /// Restart the bank with its wall clock shifted by `offset_ms`.
    Skew {
        bank: u32,
        offset_ms: i64,
    },
    /// Fill the bank's disk.
    DiskFull {
        bank: u32,
    },
    /// Restart the bank with `failpoint` armed: it aborts at that step as a coordinator.
    CrashCoordinator {
        bank: u32,
        failpoint: String,
    },
}

/// What a fault acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Network,
    Process,
    Disk,
}

fn lane_of(kind: &str) -> Lane {
    match kind {
        "isolate" | "split" | "bridge" | "one_way" => Lane::Network,
        "disk_full" => Lane::Disk,
        _ => Lane::Process,
    }
}

impl Fault {
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Isolate { .. } => "isolate",
            Fault::Split { .. } => "split",
            Fault::Bridge { .. } => "bridge",
            Fault::OneWay { .. } => "one_way",
            Fault::Kill { .. } => "kill",
            Fault::KillHolder { .. } => "kill_holder",
            Fault::Pause { .. } => "pause",
            Fault::Skew { .. } => "skew",
            Fault::DiskFull { .. } => "disk_full",
            Fault::CrashCoordinator { .. } => "crash_coordinator",
        }
    }

    pub fn lane(&self) -> Lane {
        lane_of(self.name())
    }

    /// The bank a process or disk fault acts on.
    pub fn bank(&self) -> Option<u32> {
        match self {
            Fault::Kill { bank }
            | Fault::Pause { bank }
            | Fault::Skew { bank, .. }
            | Fault::DiskFull { bank }
            | Fault::CrashCoordinator { bank, .. } => Some(*bank),
            Fault::KillHolder { bank } => *bank,
            _ => None,
        }
    }

    /// The directed pairs a network fault drops (empty for the others).
    pub fn blocked(&self, banks: u32) -> Blocked {
        let all: Vec<u32> = (1..=banks).collect();
        let cut = |a: &[u32], b: &[u32]| -> Blocked {
            a.iter().flat_map(|x| b.iter().flat_map(move |y| [(*x, *y), (*y, *x)])).collect()
        };
        match self {
            Fault::Isolate { bank } => {
                let others: Vec<u32> = all.iter().copied().filter(|b| b != bank).collect();
                cut(&[*bank], &others)
            }
            Fault::Split { minority } => {
                let majority: Vec<u32> = all.iter().copied().filter(|b| !minority.contains(b)).collect();
                cut(minority, &majority)
            }
            Fault::Bridge { left, right, .. } => cut(left, right),
            Fault::OneWay { from, to } => BTreeSet::from([(*from, *to)]),
            _ => Blocked::new(),
        }
    }
}

/// One scheduled fault: injected at `at_ms` (from the start of the fault window), repaired
/// `hold_ms` later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub at_ms: u64,
    pub hold_ms: u64,
    pub fault: Fault,
}

/// How long a fault of `kind` is held. A pause outlasts the ring's loss timeout
/// (`2H + (n−1)(L+2H)`: 600 ms for three banks, 1.04 s for five).
fn hold_range(kind: &str, banks: u32) -> (u64, u64) {
    let loss_timeout_ms = 160 + u64::from(banks.saturating_sub(1)) * 220;
    match kind {
        "kill" | "kill_holder" => (300, 1_000),
        "pause" => (loss_timeout_ms + 100, loss_timeout_ms + 600),
        "skew" => (600, 1_500),
        "crash_coordinator" => (800, 1_800),
        "disk_full" => (600, 2_000),
        _ => (300, 2_000),
    }
}

/// The kinds that fit `banks` (splits and bridges need three).
fn kinds_for(banks: u32) -> Vec<&'static str> {
    KINDS.iter().copied().filter(|k| banks >= 3 || !matches!(*k, "split" | "bridge")).collect()
}

/// A fault scheduled and not yet repaired, as the schedule sees it.
struct Held {
    end_ms: u64,
    lane: Lane,
    bank: Option<u32>,
    holder: bool,
}

/// Draws a fault of `kind` that fits beside `held`, or `None`.
fn place(kind: &str, held: &[Held], banks: u32, rng: &mut StdRng) -> Option<Fault> {
    let lane = lane_of(kind);
    let in_lane: Vec<&Held> = held.iter().filter(|h| h.lane == lane).collect();
    let limit = match lane {
        Lane::Network => NETWORK_FAULTS_MAX,
        Lane::Process => process_faults_max(banks),
        Lane::Disk => DISK_FAULTS_MAX,
    };
    // While the holder's kill is held, no other process fault starts: the bank it picks at run
    // time must not be one a later step wants.
    if in_lane.len() >= limit || (lane == Lane::Process && in_lane.iter().any(|h| h.holder)) {
        return None;
    }
    let mut shuffled: Vec<u32> = (1..=banks).collect();
    shuffled.shuffle(rng);
    let free = shuffled.iter().copied().find(|b| !in_lane.iter().any(|h| h.bank == Some(*b)));
    Some(match kind {
        "isolate" => Fault::Isolate { bank: shuffled[0] },
        "split" => {
            let size = rng.random_range(1..=(banks - 1) / 2);
            let mut minority = shuffled[..size as usize].to_vec();
            minority.sort_unstable();
            Fault::Split { minority }
        }
        "bridge" => {
            let center = shuffled[0];
            let rest = &shuffled[1..];
            let half = rest.len() / 2;
            let (mut left, mut right) = (rest[..half].to_vec(), rest[half..].to_vec());
            left.sort_unstable();
            right.sort_unstable();
            Fault::Bridge { center, left, right }
        }
        "one_way" => Fault::OneWay { from: shuffled[0], to: shuffled[1] },
        "kill_holder" => Fault::KillHolder { bank: None },
        "kill" => Fault::Kill { bank: free? },
        "pause" => Fault::Pause { bank: free? },
        "skew" => {
            // Half within the allowed skew, half beyond it (up to 3 s), either way.
            let size = if rng.random_bool(0.5) {
                rng.random_range(1..ALLOWED_SKEW_MS)
            } else {
                rng.random_range(ALLOWED_SKEW_MS * 5..=3_000)
            };
            Fault::Skew { bank: free?, offset_ms: if rng.random_bool(0.5) { size } else { -size } }
        }
        "disk_full" => Fault::DiskFull { bank: free? },
        _ => {
            let failpoint = COORDINATOR_FAILPOINTS[rng.random_range(0..COORDINATOR_FAILPOINTS.len())];
            Fault::CrashCoordinator { bank: free?, failpoint: failpoint.into() }
        }
    })
}

/// The whole schedule of a fault window of `window_ms`, from `seed`. The same arguments give
/// the same schedule.
pub fn schedule(seed: u64, banks: u32, window_ms: u64) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let kinds = kinds_for(banks);
    let mut counts: BTreeMap<&str, usize> = kinds.iter().map(|k| (*k, 0)).collect();
    let mut held: Vec<Held> = Vec::new();
    let mut steps = Vec::new();
    let mut at = 0;
    while steps.len() < FAULTS_MAX {
        at += rng.random_range(GAP_MS.0..=GAP_MS.1);
        if at >= window_ms {
            break;
        }
        held.retain(|h| h.end_ms > at);
        let mut order = kinds.clone();
        order.shuffle(&mut rng);
        order.sort_by_key(|k| counts[k]);
        for kind in order {
            let (low, high) = hold_range(kind, banks);
            let hold_ms = rng.random_range(low..=high);
            if at + hold_ms > window_ms {
                continue;
            }
            let Some(fault) = place(kind, &held, banks, &mut rng) else { continue };
            held.push(Held {
                end_ms: at + hold_ms,
                lane: fault.lane(),
                bank: fault.bank(),
                holder: matches!(fault, Fault::KillHolder { .. }),
            });
            *counts.entry(kind).or_default() += 1;
            steps.push(Step { at_ms: at, hold_ms, fault });
            break;
        }
    }
    steps
}

/// Banks that stopped without the nemesis stopping them, outside the faults that explain it.
#[derive(Debug, Default)]
pub struct Stops {
    /// Ended for no reason the run knows of.
    pub crashes: Vec<String>,
    /// Refused to go on because their disk was full (a pid file or a commit that could not be
    /// written), noticed after the fill's repair — by design, not a crash.
    pub full_disk: Vec<String>,
}

/// A fault as it happened: its times from the start of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Injected {
    pub fault: Fault,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Why injecting or repairing it failed, if it did.
    pub error: Option<String>,
    /// What happened beside the plan (a failpoint reached, a bank that stopped on a full disk,
    /// a holder nobody named).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Injects and repairs faults.
#[derive(Debug)]
pub struct Nemesis<'a> {
    pub net: &'a mut Net,
    pub cluster: &'a mut Cluster,
    pub disks: &'a mut Disks,
    pub banks: u32,
}

/// The faults held now, by their step.
type Active = BTreeMap<usize, Injected>;

impl Nemesis<'_> {
    /// Runs `steps` (times from now); returns what it injected and the banks that ended by
    /// themselves without a fault explaining it.
    pub async fn run(&mut self, steps: &[Step], recorder: &Recorder, http: &reqwest::Client) -> (Vec<Injected>, Stops) {
        let start = Instant::now();
        let mut events: Vec<(u64, bool, usize)> =
            steps.iter().enumerate().flat_map(|(i, s)| [(s.at_ms, false, i), (s.at_ms + s.hold_ms, true, i)]).collect();
        // Repairs first at equal times: a bank is freed before the next fault takes it.
        events.sort_by_key(|(at, repair, i)| (*at, !*repair, *i));
        let mut active: Active = BTreeMap::new();
        let mut done = Vec::new();
        let mut stops = Stops::default();
        for (at, repair, i) in events {
            tokio::time::sleep(Duration::from_millis(at).saturating_sub(start.elapsed())).await;
            self.notice_exits(&mut active, &mut stops, recorder);
            if repair {
                let Some(mut injected) = active.remove(&i) else { continue };
                if let Fault::Skew { bank, offset_ms } = injected.fault {
                    let seen = self.clock_disagreement_seen(http, bank, &active).await;
                    let beyond = if offset_ms.abs() > ALLOWED_SKEW_MS { "beyond" } else { "within" };
                    let seen = if seen { "a peer says" } else { "no peer says" };
                    injected.notes.push(format!("skew {beyond} the allowance: {seen} its clock disagrees"));
                }
                if let Err(e) = self.repair(&injected.fault, &active, &mut injected.notes) {
                    injected.error.get_or_insert(format!("repair: {e:#}"));
                }
                injected.end_ms = recorder.now_ms();
                done.push(injected);
            } else {
                let mut injected = Injected {
                    fault: steps[i].fault.clone(),
                    start_ms: recorder.now_ms(),
                    end_ms: 0,
                    error: None,
                    notes: Vec::new(),
                };
                if let Fault::KillHolder { bank: None } = injected.fault {
                    let bank = self.token_holder(http, &active, &mut injected.notes).await;
                    injected.fault = Fault::KillHolder { bank };
                }
                active.insert(i, injected.clone());
                if let Err(e) = self.inject(&injected.fault, &active, &mut injected.notes) {
                    injected.error = Some(format!("inject: {e:#}"));
                }
                active.insert(i, injected);
            }
        }
        done.sort_by_key(|f| f.start_ms);
        (done, stops)
    }

    /// Banks that ended by themselves: expected under a full disk or an armed failpoint (noted
    /// on that fault, the bank stays down until the fault's repair); else a stop on a full disk
    /// if the bank's log says so (a fill noticed only after its repair), or a crash (the bank is
    /// restarted at once either way).
    fn notice_exits(&mut self, active: &mut Active, stops: &mut Stops, recorder: &Recorder) {
        for id in self.cluster.ids() {
            let Some(status) = self.cluster.exited(id) else { continue };
            let explaining = active.values_mut().find(
                |f| matches!(&f.fault, Fault::DiskFull { bank } | Fault::CrashCoordinator { bank, .. } if *bank == id),
            );
            match explaining {
                Some(fault) => fault.notes.push(format!("bank {id} stopped by itself ({status})")),
                None => {
                    let at = recorder.now_ms();
                    match self.cluster.full_disk_line(id) {
                        Some(line) => stops.full_disk.push(format!("bank {id} ({status}) before {at} ms: {line}")),
                        None => stops.crashes.push(format!("bank {id} ended by itself ({status}) before {at} ms")),
                    }
                    let _ = self.cluster.start(id);
                }
            }
        }
    }

    /// Applies the union of the network faults in `active`.
    fn apply_network(&mut self, active: &Active) -> Result<()> {
        let blocked: Blocked = active.values().flat_map(|f| f.fault.blocked(self.banks)).collect();
        self.net.set_blocked(&blocked)
    }

    /// Injects `fault` (already in `active`).
    fn inject(&mut self, fault: &Fault, active: &Active, notes: &mut Vec<String>) -> Result<()> {
        match fault {
            Fault::Kill { bank } | Fault::KillHolder { bank: Some(bank) } => {
                if self.cluster.state(*bank) == State::Down {
                    notes.push(format!("bank {bank} was already down"));
                    return Ok(());
                }
                self.cluster.kill(*bank)
            }
            Fault::KillHolder { bank: None } => Ok(()),
            Fault::Pause { bank } => {
                if self.cluster.state(*bank) == State::Down {
                    notes.push(format!("bank {bank} was down, not paused"));
                    return Ok(());
                }
                self.cluster.pause(*bank)
            }
            Fault::Skew { bank, offset_ms } => {
                self.cluster.restart(*bank, Launch { clock_offset_ms: Some(*offset_ms), failpoint: None })
            }
            Fault::CrashCoordinator { bank, failpoint } => {
                let failpoint = COORDINATOR_FAILPOINTS.iter().copied().find(|f| f == failpoint);
                self.cluster.restart(*bank, Launch { clock_offset_ms: None, failpoint })
            }
            Fault::DiskFull { bank } => {
                let bytes = self.disks.fill(*bank)?;
                notes.push(format!("{} MB written to fill it", bytes >> 20));
                Ok(())
            }
            _ => self.apply_network(active),
        }
    }

    /// Repairs `fault` (no longer in `active`): restarts what it stopped (unless another fault
    /// keeps it down), resumes what it paused, frees the disk, removes its partition.
    fn repair(&mut self, fault: &Fault, active: &Active, notes: &mut Vec<String>) -> Result<()> {
        match fault {
            Fault::Kill { bank } | Fault::KillHolder { bank: Some(bank) } => self.start_if_free(*bank, active),
            Fault::KillHolder { bank: None } => Ok(()),
            Fault::Pause { bank } => match self.cluster.state(*bank) {
                State::Paused => self.cluster.resume(*bank),
                _ => self.start_if_free(*bank, active),
            },
            Fault::Skew { bank, .. } | Fault::CrashCoordinator { bank, .. } => {
                if let Fault::CrashCoordinator { failpoint, .. } = fault {
                    let reached = notes.iter().any(|n| n.contains("stopped by itself"));
                    let how = if reached { "reached" } else { "not reached (killed at the end of the hold)" };
                    notes.push(format!("failpoint {failpoint}: {how}"));
                }
                if self.cluster.state(*bank) != State::Down {
                    self.cluster.kill(*bank)?;
                }
                self.start_if_free(*bank, active)
            }
            Fault::DiskFull { bank } => {
                self.disks.free(*bank)?;
                self.start_if_free(*bank, active)
            }
            _ => self.apply_network(active),
        }
    }

    /// Starts bank `id` if it is down and no fault in `active` keeps it down.
    fn start_if_free(&mut self, id: u32, active: &Active) -> Result<()> {
        let held = active.values().any(|f| f.fault.bank() == Some(id) && f.fault.lane() == Lane::Process);
        let full = active.values().any(|f| matches!(f.fault, Fault::DiskFull { bank } if bank == id));
        if self.cluster.state(id) == State::Down && !held && !full {
            self.cluster.start(id)?;
        }
        Ok(())
    }

    /// The bank holding the token now, among the banks under no process fault: the one whose
    /// status page says it is holding, else the holder most of them name, else any of them.
    async fn token_holder(&self, http: &reqwest::Client, active: &Active, notes: &mut Vec<String>) -> Option<u32> {
        let busy: BTreeSet<u32> =
            active.values().filter(|f| f.fault.lane() == Lane::Process).filter_map(|f| f.fault.bank()).collect();
        let free: Vec<u32> = self.cluster.ids().into_iter().filter(|id| !busy.contains(id)).collect();
        let mut named: BTreeMap<u32, u32> = BTreeMap::new();
        for id in &free {
            let url = format!("{}/api/v1/consortium/status", self.cluster.url(*id));
            let Ok(response) = http.get(&url).timeout(Duration::from_millis(300)).send().await else { continue };
            let Ok(status) = response.json::<serde_json::Value>().await else { continue };
            let ring = &status["ring"];
            if ring["role"] == "holding" {
                return Some(*id);
            }
            if let Some(holder) = ring["holder"].as_u64().and_then(|h| u32::try_from(h).ok()) {
                *named.entry(holder).or_default() += 1;
            }
        }
        let named = named.into_iter().filter(|(id, _)| free.contains(id)).max_by_key(|(_, n)| *n).map(|(id, _)| id);
        if named.is_none() {
            notes.push("no free bank named the holder; killed a free bank".into());
        }
        named.or_else(|| free.first().copied())
    }

    /// Whether a running peer of `bank`, under no process fault, says on its status page that
    /// `bank`'s clock disagrees (asking also makes it read that clock again when its reading is
    /// old, so one ask may come too early: a note, not an anomaly).
    async fn clock_disagreement_seen(&self, http: &reqwest::Client, bank: u32, active: &Active) -> bool {
        let busy: BTreeSet<u32> =
            active.values().filter(|f| f.fault.lane() == Lane::Process).filter_map(|f| f.fault.bank()).collect();
        for peer in self.cluster.ids().into_iter().filter(|p| *p != bank && !busy.contains(p)) {
            let url = format!("{}/api/v1/consortium/status", self.cluster.url(peer));
            let Ok(response) = http.get(&url).timeout(Duration::from_millis(300)).send().await else { continue };
            let Ok(status) = response.json::<serde_json::Value>().await else { continue };
            let members = status["members"].as_array().cloned().unwrap_or_default();
            if members.iter().any(|m| m["id"] == bank && m["clock"]["disagrees"] == true) {
                return true;
            }
        }
        false
    }

    /// Heals everything: no partition, no full disk, every bank running normally. Returns what
    /// it had to do.
    pub fn heal_all(&mut self) -> Result<Vec<String>> {
        self.net.heal()?;
        self.disks.free_all()?;
        self.cluster.restore_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_schedule_and_another_seed_does_not() {
        let a = schedule(1, 5, 90_000);
        assert_eq!(a, schedule(1, 5, 90_000));
        assert_ne!(a, schedule(2, 5, 90_000));
        for step in &a {
            assert!(step.at_ms + step.hold_ms <= 90_000, "every fault is repaired inside the window");
        }
    }

    #[test]
    fn a_100_second_window_of_5_banks_holds_30_faults_of_every_kind_overlapping() {
        for seed in [1, 2, 3, 42, 1234] {
            let steps = schedule(seed, 5, 100_000);
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for step in &steps {
                *counts.entry(step.fault.name()).or_default() += 1;
            }
            assert_eq!(counts.len(), KINDS.len(), "seed {seed}: {counts:?}");
            assert!(counts.values().all(|n| *n >= 30), "seed {seed}: {counts:?}");
            let overlapping = steps.windows(2).filter(|p| p[1].at_ms < p[0].at_ms + p[0].hold_ms).count();
            assert!(overlapping > steps.len() / 2, "faults overlap: seed {seed}");
        }
    }

    #[test]
    fn overlapping_faults_respect_their_lanes() {
        let steps = schedule(7, 5, 300_000);
        for (i, step) in steps.iter().enumerate() {
            let during: Vec<&Step> = steps[..i].iter().filter(|s| s.at_ms + s.hold_ms > step.at_ms).collect();
            let lane = step.fault.lane();
            let same_lane: Vec<&&Step> = during.iter().filter(|s| s.fault.lane() == lane).collect();
            if let Some(bank) = step.fault.bank() {
                assert!(same_lane.iter().all(|s| s.fault.bank() != Some(bank)), "one {lane:?} fault per bank");
            }
            match lane {
                Lane::Process => {
                    assert!(same_lane.len() < process_faults_max(5), "{step:?}");
                    assert!(!same_lane.iter().any(|s| matches!(s.fault, Fault::KillHolder { .. })), "{step:?}");
                }
                Lane::Disk => assert!(same_lane.len() < DISK_FAULTS_MAX),
                Lane::Network => assert!(same_lane.len() < NETWORK_FAULTS_MAX),
            }
            assert!(step.fault.blocked(5).iter().all(|(a, b)| a != b && (1..=5).contains(a) && (1..=5).contains(b)));
            if let Fault::Skew { offset_ms, .. } = step.fault {
                assert!(offset_ms != 0 && offset_ms.abs() <= 3_000);
            }
        }
        let skews: Vec<i64> = steps
            .iter()
            .filter_map(|s| if let Fault::Skew { offset_ms, .. } = s.fault { Some(offset_ms) } else { None })
            .collect();
        assert!(skews.iter().any(|o| o.abs() < ALLOWED_SKEW_MS) && skews.iter().any(|o| o.abs() > ALLOWED_SKEW_MS));
        let two = schedule(7, 2, 600_000);
        assert!(two.iter().all(|s| !matches!(s.fault, Fault::Split { .. } | Fault::Bridge { .. })));
    }

    #[test]
    fn partitions_cut_exactly_the_pairs_they_name() {
        assert_eq!(Fault::Isolate { bank: 2 }.blocked(3), BTreeSet::from([(1, 2), (2, 1), (2, 3), (3, 2)]));
        let bridge = Fault::Bridge { center: 3, left: vec![1], right: vec![2, 4] };
        assert_eq!(bridge.blocked(4), BTreeSet::from([(1, 2), (2, 1), (1, 4), (4, 1)]), "3 sees everyone");
        let split = Fault::Split { minority: vec![1, 2] }.blocked(5);
        assert_eq!(split.len(), 12, "2 × 3 pairs, both ways");
        assert_eq!(Fault::OneWay { from: 1, to: 3 }.blocked(3), BTreeSet::from([(1, 3)]));
        assert!(Fault::DiskFull { bank: 1 }.blocked(3).is_empty());
    }
}
