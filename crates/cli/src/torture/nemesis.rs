//! The nemesis: a schedule of faults drawn from a seed ([`schedule`], pure, so `--seed` replays
//! it), and its execution against the run's network and processes ([`Nemesis::inject`],
//! [`Nemesis::heal`]).
//!
//! One fault at a time: a quiet gap, a fault held for a while, its repair, and so on until the
//! fault window ends. Kinds: one bank isolated; a majority/minority split; a bridge (two halves
//! that both see one bank, not each other); one-way loss between two banks; a bank killed
//! (SIGKILL) and restarted after the hold; the token holder killed (whichever bank says it holds
//! the token just before); a bank paused (SIGSTOP … SIGCONT) for longer than the
//! ring's hop timeout (150 ms), so its peers regenerate the token without it.

use anyhow::Result;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeSet;

use super::net::{Blocked, Net};
use super::procs::Cluster;

/// Quiet time between two faults.
const GAP_MS: (u64, u64) = (500, 2_000);
/// How long a fault is held.
const HOLD_MS: (u64, u64) = (1_000, 4_000);
/// Most faults one schedule holds (a fault takes at least 1.5 s: 2,000 cover 50 minutes).
pub const FAULTS_MAX: usize = 2_000;

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
    /// Kill the bank holding the token at that moment (found from the banks' status pages just
    /// before; `None` in the schedule).
    KillHolder {
        bank: Option<u32>,
    },
    Pause {
        bank: u32,
    },
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
        }
    }

    /// The directed pairs a network fault drops (empty for process faults).
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
            Fault::Kill { .. } | Fault::KillHolder { .. } | Fault::Pause { .. } => Blocked::new(),
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

/// Draws one fault for a consortium of `banks` (network faults other than isolation and one-way
/// loss need three banks).
fn draw(rng: &mut StdRng, banks: u32) -> Fault {
    let kinds: &[&str] = if banks >= 3 {
        &["isolate", "split", "bridge", "one_way", "kill", "kill_holder", "pause"]
    } else {
        &["isolate", "one_way", "kill", "kill_holder", "pause"]
    };
    let bank = rng.random_range(1..=banks);
    let mut shuffled: Vec<u32> = (1..=banks).collect();
    shuffled.shuffle(rng);
    match kinds[rng.random_range(0..kinds.len())] {
        "isolate" => Fault::Isolate { bank },
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
        "kill" => Fault::Kill { bank },
        "kill_holder" => Fault::KillHolder { bank: None },
        _ => Fault::Pause { bank },
    }
}

/// The whole schedule of a fault window of `window_ms`, from `seed`. The same arguments give
/// the same schedule.
pub fn schedule(seed: u64, banks: u32, window_ms: u64) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::new();
    let mut at = 0;
    while steps.len() < FAULTS_MAX {
        at += rng.random_range(GAP_MS.0..=GAP_MS.1);
        let hold_ms = rng.random_range(HOLD_MS.0..=HOLD_MS.1);
        if at + hold_ms > window_ms {
            break;
        }
        steps.push(Step { at_ms: at, hold_ms, fault: draw(&mut rng, banks) });
        at += hold_ms;
    }
    steps
}

/// A fault as it happened: its times from the start of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Injected {
    pub fault: Fault,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Why injecting or repairing it failed, if it did.
    pub error: Option<String>,
}

/// Injects and repairs faults.
#[derive(Debug)]
pub struct Nemesis<'a> {
    pub net: &'a mut Net,
    pub cluster: &'a mut Cluster,
    pub banks: u32,
}

impl Nemesis<'_> {
    /// Injects `fault`.
    pub fn inject(&mut self, fault: &Fault) -> Result<()> {
        match fault {
            Fault::Kill { bank } | Fault::KillHolder { bank: Some(bank) } => self.cluster.kill(*bank),
            Fault::KillHolder { bank: None } => anyhow::bail!("no bank said it held the token"),
            Fault::Pause { bank } => self.cluster.pause(*bank),
            network => self.net.set_blocked(&network.blocked(self.banks)),
        }
    }

    /// Repairs `fault`: restarts a killed bank, resumes a paused one, removes the partition.
    pub fn repair(&mut self, fault: &Fault) -> Result<()> {
        match fault {
            Fault::Kill { bank } | Fault::KillHolder { bank: Some(bank) } => self.cluster.start(*bank),
            Fault::KillHolder { bank: None } => Ok(()),
            Fault::Pause { bank } => self.cluster.resume(*bank),
            _ => self.net.heal(),
        }
    }

    /// The bank holding the token now: the one whose status page says it is holding, else the
    /// holder most banks name.
    pub async fn token_holder(&self, http: &reqwest::Client) -> Option<u32> {
        let mut named: std::collections::BTreeMap<u32, u32> = std::collections::BTreeMap::new();
        for id in self.cluster.ids() {
            let url = format!("{}/api/v1/consortium/status", self.cluster.url(id));
            let Ok(response) = http.get(&url).timeout(std::time::Duration::from_millis(500)).send().await else {
                continue;
            };
            let Ok(status) = response.json::<serde_json::Value>().await else { continue };
            let ring = &status["ring"];
            if ring["role"] == "holding" {
                return Some(id);
            }
            if let Some(holder) = ring["holder"].as_u64().and_then(|h| u32::try_from(h).ok()) {
                *named.entry(holder).or_default() += 1;
            }
        }
        named.into_iter().max_by_key(|(_, n)| *n).map(|(id, _)| id)
    }

    /// Heals everything: no partition, every bank running. Returns what it had to do.
    pub fn heal_all(&mut self) -> Result<Vec<String>> {
        self.net.heal()?;
        self.cluster.restore_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_schedule_and_another_seed_does_not() {
        let a = schedule(1, 5, 120_000);
        assert_eq!(a, schedule(1, 5, 120_000));
        assert_ne!(a, schedule(2, 5, 120_000));
        assert!(a.len() >= 20, "a 2-minute window holds many faults: {}", a.len());
        let last = a.last().expect("faults");
        assert!(last.at_ms + last.hold_ms <= 120_000, "every fault is repaired inside the window");
        for pair in a.windows(2) {
            assert!(pair[1].at_ms > pair[0].at_ms + pair[0].hold_ms, "one fault at a time");
        }
    }

    #[test]
    fn every_kind_is_drawn_and_stays_within_the_banks() {
        let steps = schedule(7, 5, 600_000);
        let names: BTreeSet<&str> = steps.iter().map(|s| s.fault.name()).collect();
        assert_eq!(names.len(), 7, "{names:?}");
        for step in &steps {
            assert!(step.fault.blocked(5).iter().all(|(a, b)| a != b && (1..=5).contains(a) && (1..=5).contains(b)));
        }
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
    }
}
