//! The whole bank under the deterministic simulator: several composite banks (ledger, 2PC, key
//! directory, token ring) at once, under loss, duplication, reordering, delay, crashes and
//! restarts. See `bank_sim/mod.rs` for the world and what it checks.
//!
//! `BANK_SIM_SEEDS=N` runs N seeds (default 1,000); `BANK_SIM_SEED=S` replays one.

mod bank_sim;
mod support;

use bank_sim::{Mutation, Stats, World};
use support::Seeds;

/// Every invariant of DESIGN.md §8 holds for every seed (a failure names its seed to replay).
#[test]
fn random_consortia_keep_every_invariant() {
    let seeds = Seeds::from_env(1_000);
    let total: Stats = seeds.run("whole-bank simulation", |seed| {
        let mut world = World::random(seed);
        world.run();
        world.stats
    });
    eprintln!("{total:?}");
    // The seeds must exercise what they claim to: commits, aborts, crashes on both sides of a
    // commit, key registrations, the ring.
    if seeds.len() >= 100 {
        assert!(total.committed > 100 && total.aborted > 10, "{total:?}");
        assert!(total.crashes_before_commit > 10 && total.crashes_after_commit > 10, "{total:?}");
        assert!(total.keys_registered > 10 && total.ring_visits > 100, "{total:?}");
        // The key races take accounts to the key limit, where the check above has teeth.
        assert!(total.accounts_at_key_limit > 10, "{total:?}");
        // Refunds race (two or three of ~60 % of one leg at once) and complete, across crashes.
        assert!(total.refunds > 10 && total.refunds_refused > 10, "{total:?}");
    }
}

/// The checks have teeth: a coordinator whose commit decision is not durable (participants post
/// legs the coordinator can take back after a crash) is caught within a few seeds.
#[test]
#[should_panic(expected = "decided both ways")]
fn a_commit_decision_that_is_not_durable_is_caught() {
    for seed in 0..200 {
        let mut world = World::random(seed);
        world.mutation = Some(Mutation::CommitDecisionNotDurable);
        world.run();
    }
}
