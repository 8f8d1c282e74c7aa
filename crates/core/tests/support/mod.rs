//! What every simulator under `tests/` shares: one seeded [`Rng`], one seed runner, and the
//! ledger's tables as storage ([`ledger_store::LedgerStore`]).
//!
//! A simulator draws *everything* random (workload, delays, losses, crashes, the order of
//! deliveries) from one [`Rng`] built from its seed, so a seed replays exactly. Its sweep test
//! hands one closure per seed to [`Seeds::run`], which catches a failing seed, prints how to
//! replay it and fails the test with the original panic.
//!
//! # Using it from a new simulator
//!
//! ```ignore
//! // tests/sim_bank.rs
//! mod support;
//! mod bank_sim; // whose World holds a `support::Rng` built with `Rng::new(seed)`
//!
//! use support::{Seeds, Tally};
//!
//! #[derive(Debug, Default)]
//! struct Stats { committed: usize }
//! impl Tally for Stats {
//!     fn add(&mut self, one: &Self) { self.committed += one.committed; }
//! }
//!
//! #[test]
//! fn random_seeds_keep_every_invariant() {
//!     let seeds = Seeds::from_env(1_000);
//!     let total: Stats = seeds.run("bank simulation", |seed| bank_sim::World::random(seed).run());
//!     if seeds.len() >= 100 { assert!(total.committed > 0, "{total:?}"); }
//! }
//! ```
//!
//! `BANK_SIM_SEEDS=<n>` runs seeds `0..n` instead of the default count; `BANK_SIM_SEED=<n>`
//! replays seed `n` alone (the failure message prints exactly that line).

// Each test binary includes this module whole but uses a different part of it.
#![allow(dead_code)]

pub mod ledger_store;
pub mod rng;
pub mod seeds;

pub use rng::Rng;
pub use seeds::{Seeds, Tally};
