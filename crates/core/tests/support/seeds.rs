//! The seed runner: which seeds a sweep covers, and what a failing seed prints.

use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

/// Replays one seed alone: `BANK_SIM_SEED=<n>`.
pub const SEED_VAR: &str = "BANK_SIM_SEED";
/// Sets how many seeds a sweep runs (`0..n`): `BANK_SIM_SEEDS=<n>`.
pub const SEED_COUNT_VAR: &str = "BANK_SIM_SEEDS";

/// What a simulator counts over one seed, summed over a sweep to show the seeds exercise what
/// they claim to (a sweep where nothing commits proves little).
pub trait Tally: Default + Debug {
    /// Folds one seed's counts into the total (a sum for counts, a maximum for maxima).
    fn add(&mut self, one: &Self);
}

/// The seeds one sweep runs, from the environment.
#[derive(Debug, Clone)]
pub struct Seeds {
    list: Vec<u64>,
}

impl Seeds {
    /// `BANK_SIM_SEED` alone if set; otherwise `0..BANK_SIM_SEEDS`, or `0..default_count`.
    pub fn from_env(default_count: u64) -> Self {
        let list = match env_u64(SEED_VAR) {
            Some(seed) => vec![seed],
            None => (0..env_u64(SEED_COUNT_VAR).unwrap_or(default_count)).collect(),
        };
        Seeds { list }
    }

    /// Exactly these seeds (a scripted sweep, or a test of the runner).
    pub fn these(list: Vec<u64>) -> Self {
        Seeds { list }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Runs `one` for every seed, in order, and sums what each counted. A seed that panics is
    /// named with the line that replays it, then the panic goes on (the test fails with it).
    pub fn run<S: Tally>(&self, simulation: &str, mut one: impl FnMut(u64) -> S) -> S {
        let mut total = S::default();
        for &seed in &self.list {
            match catch_unwind(AssertUnwindSafe(|| one(seed))) {
                Ok(stats) => total.add(&stats),
                Err(panic) => {
                    eprintln!("{simulation} failed with seed {seed}; replay it with {SEED_VAR}={seed}");
                    resume_unwind(panic);
                }
            }
        }
        eprintln!("{} seeds: {total:?}", self.list.len());
        total
    }
}

/// A number from the environment; a variable set to anything else is a mistake worth stopping on.
fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(text.trim().parse().unwrap_or_else(|_| panic!("{name} must be a number, not {text:?}")))
}
