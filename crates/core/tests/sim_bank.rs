//! The whole bank under the deterministic simulator: several composite banks (ledger, 2PC, key
//! directory, token ring) at once, under loss, duplication, reordering, delay, crashes and
//! restarts. See `bank_sim/mod.rs` for the world and what it checks.
//!
//! `SIM_BANK_SEEDS=N` runs N seeds (default 1,000); `SIM_BANK_SEED=S` replays one.

mod bank_sim;
#[allow(dead_code)]
mod sim;

use bank_sim::World;

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("SIM_BANK_SEED") {
        return vec![seed.parse().expect("SIM_BANK_SEED is a number")];
    }
    let n = std::env::var("SIM_BANK_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000);
    (0..n).collect()
}

/// Every invariant of DESIGN.md §8 holds for every seed (a failure names its seed to replay).
#[test]
fn random_consortia_keep_every_invariant() {
    let mut totals = bank_sim::Stats::default();
    for seed in seeds() {
        let mut world = World::random(seed);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| world.run()));
        if let Err(panic) = outcome {
            eprintln!("seed {seed} failed; replay with SIM_BANK_SEED={seed}");
            std::panic::resume_unwind(panic);
        }
        totals.add(&world.stats);
    }
    eprintln!("{totals:?}");
    // The seeds must exercise what they claim to: commits, aborts, crashes, the ring.
    if seeds().len() >= 100 {
        assert!(totals.committed > 100 && totals.aborted > 10, "{totals:?}");
        assert!(totals.crashes_before_commit > 10 && totals.crashes_after_commit > 10, "{totals:?}");
        assert!(totals.keys_registered > 10 && totals.ring_visits > 100, "{totals:?}");
    }
}

/// The checks have teeth: a coordinator whose commit decision is not durable (participants post
/// legs the coordinator can take back after a crash) is caught within a few seeds.
#[test]
#[should_panic(expected = "decided both ways")]
fn a_commit_decision_that_is_not_durable_is_caught() {
    for seed in 0..200 {
        let mut world = World::random(seed);
        world.mutation = Some(bank_sim::Mutation::CommitDecisionNotDurable);
        world.run();
    }
}
