//! The token ring under a simulated network, crashing banks and partitions (see `ring_sim/mod.rs`).
//!
//! `random_seeds_keep_every_invariant` runs many seeded worlds: lost, duplicated, delayed and
//! reordered messages, crashes between and in the middle of calls, restarts, partitions; then a
//! heal with a minority possibly left down, and the liveness check. Every step is checked (one
//! token per epoch, one worker at a time, no stale acceptance, no minority regeneration).
//! `BANK_SIM_SEEDS=<n>` sets how many seeds (default 1,000); `BANK_SIM_SEED=<n>` replays one.
//! The scripted scenarios after it each prove one case of the module essay in `bank_core::ring`.

mod ring_sim;
mod support;

use bank_core::ids::BankId;
use bank_core::ring::{Epoch, RingMessage, RingRole};
use ring_sim::{Stats, World};
use support::Seeds;

const B1: BankId = BankId(1);
const B2: BankId = BankId(2);
const B3: BankId = BankId(3);
const B4: BankId = BankId(4);
const B5: BankId = BankId(5);

/// One random world: faults, then a heal and the liveness check.
fn run_seed(seed: u64) -> Stats {
    let mut world = World::random(seed);
    world.run(world.knobs.fault_ticks);
    world.heal_and_check();
    // And it keeps circulating: every up bank holds it again.
    world.heal_and_check();
    world.stats
}

/// Every invariant holds over many seeds of random networks, crashes and partitions.
#[test]
fn random_seeds_keep_every_invariant() {
    let seeds = Seeds::from_env(1_000);
    let total = seeds.run("ring simulation", run_seed);
    // The seeds must exercise what they claim to.
    if seeds.len() >= 100 {
        assert!(total.regenerations > seeds.len(), "{total:?}");
        assert!(total.crashes > 0 && total.mid_call_crashes > 0 && total.handoff_crashes > 0, "{total:?}");
        assert!(total.partitions > 0, "{total:?}");
        assert!(total.creations_in_partition > 0 && total.refused_tokens > 0, "{total:?}");
        assert!(total.lost > 0 && total.duplicated > 0, "{total:?}");
    }
}

// ----- scripted scenarios -------------------------------------------------------------------------

/// A healthy ring circulates epoch 1 from the lowest bank, in id order, with no regeneration.
#[test]
fn a_healthy_ring_circulates_the_first_token_in_id_order() {
    let mut w = World::scripted(4);
    w.run(40 * w.loss_timeout_ticks());
    assert_eq!(w.created.keys().copied().collect::<Vec<_>>(), vec![Epoch(1)], "no regeneration");
    assert_eq!(w.created[&Epoch(1)], B1);
    // Hop h of epoch 1 was held by bank (h mod 4) + 1.
    for (position, holder) in &w.accepted_by {
        assert_eq!(holder.0 as u64, position.hop.0 % 4 + 1, "{position}");
    }
    assert!(w.accepted_by.len() > 100, "{} visits", w.accepted_by.len());
}

/// A partition into {1, 2} and {3, 4, 5}: the majority side regenerates and keeps working, the
/// minority never creates a token; after the heal, every bank holds the token again.
#[test]
fn a_minority_side_never_regenerates_and_the_ring_heals() {
    let mut w = World::scripted(5);
    w.run(3 * w.loss_timeout_ticks());
    w.partition(&[B1, B2]);
    let before = w.created.len();
    w.run(10 * w.loss_timeout_ticks());
    let new: Vec<(Epoch, BankId)> = w.created.iter().skip(before).map(|(e, b)| (*e, *b)).collect();
    assert!(!new.is_empty(), "the majority side regenerates");
    assert!(new.iter().all(|(_, b)| [B3, B4, B5].contains(b)), "{new:?}");
    // The minority side's banks are never visited after the partition settles.
    let last = *w.created.keys().last().expect("an epoch");
    assert!(w.accepted_by.iter().filter(|(p, _)| p.epoch == last).all(|(_, b)| ![B1, B2].contains(b)));
    let took = w.heal_and_check();
    assert!(took <= w.heal_bound_ticks());
}

/// The successor crashes holding the unacknowledged token: the holder never sends it to anyone
/// else; regeneration makes a new epoch that skips the dead bank, and takes it back once it
/// restarts.
#[test]
fn a_pass_to_a_crashed_bank_is_never_re_routed_and_regeneration_skips_it_until_it_returns() {
    let mut w = World::scripted(3);
    // Run until bank 1 passes to bank 2, then crash bank 2 before the token arrives.
    while !w.network.iter().any(|p| p.to == B2 && matches!(p.msg, RingMessage::Token(_))) {
        w.step();
    }
    w.crash_for_good(B2);
    let epoch_before = *w.created.keys().last().expect("epoch 1");
    w.run(w.loss_timeout_ticks() / 2);
    assert_eq!(w.bank(B1).node.role(), RingRole::Idle, "gave up the pass");
    assert!(
        !w.accepted_by.keys().any(|p| p.epoch == epoch_before && w.accepted_by[p] == B3),
        "bank 3 never got the token bank 2 may hold"
    );
    w.run(4 * w.loss_timeout_ticks());
    let latest = *w.created.keys().last().expect("an epoch");
    assert!(latest > epoch_before, "regenerated");
    assert!(w.accepted_by.iter().filter(|(p, _)| p.epoch == latest).all(|(_, b)| *b != B2), "skips bank 2");
    assert!(w.accepted_by.keys().filter(|p| p.epoch == latest).count() > 4, "and circulates");
    w.restart(B2);
    w.visited_since_heal.clear();
    w.run(4 * w.loss_timeout_ticks());
    assert!(w.visited_since_heal.contains(&B2), "bank 2 holds the token again after it returns");
}

/// A token held back past a regeneration (longer than assumption A1 allows) is still refused by
/// a bank that has voted in or accepted the newer epoch.
#[test]
fn a_token_delayed_past_a_regeneration_is_refused() {
    let mut w = World::scripted(3);
    while !w.network.iter().any(|p| p.to == B2 && matches!(p.msg, RingMessage::Token(_))) {
        w.step();
    }
    // Hold back every copy of the pass to bank 2 while the others regenerate.
    let held: Vec<_> = w.network.iter().filter(|p| p.to == B2).cloned().collect();
    w.network.retain(|p| p.to != B2);
    let mut ticks = 0;
    let moved_on = |w: &World| w.bank(B2).store.voted_epoch().max(w.bank(B2).store.accepted_epoch()) >= Epoch(2);
    while !moved_on(&w) {
        // Bank 1 keeps retrying within its hop timeout: keep those copies back too.
        w.network.retain(|p| !(p.to == B2 && matches!(p.msg, RingMessage::Token(_)) && p.from == B1));
        w.step();
        ticks += 1;
        assert!(ticks < 10 * w.loss_timeout_ticks(), "no regeneration: {}", w.describe());
    }
    let accepted = w.bank(B2).store.accepted;
    w.network.extend(held);
    w.deliver_where(|p| p.to == B2 && matches!(p.msg, RingMessage::Token(_)) && p.from == B1);
    assert_eq!(w.bank(B2).store.accepted, accepted, "the stale token is refused");
}

// ----- the ring at scale (issue 13, part 6) -------------------------------------------------------

use ring_sim::scale::{self, Measured, Scenario};

/// The ring's bound (saturated) and its latency at half that load, for one size and network.
fn measure(banks: u32, hop_ms: u64, run_ms: u64) -> (Measured, Measured) {
    let base = Scenario { banks, hop_ms, commit_ms: 1, load_per_bank: None, ops_per_visit: 64, run_ms };
    let bound = scale::run(base);
    let half = bound.started_per_s / 2.0 / f64::from(banks);
    (bound, scale::run(Scenario { load_per_bank: Some(half), ..base }))
}

/// Five banks on a LAN: the token goes round in about n × (hop + commit), a visit's budget per
/// hop bounds the throughput, and at half that load a transfer waits about half a rotation.
#[test]
fn at_five_banks_on_a_lan_the_ring_rotates_in_a_few_hops_and_its_bound_is_a_budget_per_hop() {
    let (bound, half) = measure(5, 1, 2_000);
    // A hop is 1 ms on the wire plus 1 ms of commit: 5 banks, ~10 ms a rotation.
    assert!((9.0..=12.0).contains(&bound.rotation_ms), "{bound:?}");
    // 64 per hop of 2 ms: ~32,000/s, whatever the number of banks.
    assert!((25_000.0..=33_000.0).contains(&bound.started_per_s), "{bound:?}");
    assert!(half.latency_p99_ms <= bound.rotation_ms as u64 + half.concurrent_ms + 2, "{half:?}");
    assert!(half.latency_p50_ms >= half.concurrent_ms, "{half:?}");
}

/// Prints the table of issue 13, part 6: `cargo test --release -p bank-core --test sim_ring --
/// --ignored --nocapture ring_at_scale`.
#[test]
#[ignore]
fn ring_at_scale() {
    println!(
        "| banks | hop | rotation ms | bound ops/s | p50 ms | p99 ms (at half the bound) | concurrent ms | loss timeout s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (hop_ms, network) in [(1, "LAN 1 ms"), (30, "WAN 30 ms")] {
        for banks in [5, 20, 100, 500] {
            let rotation_guess = u64::from(banks) * (hop_ms + 1);
            let run_ms = (4 * rotation_guess).max(5_000);
            let (bound, half) = measure(banks, hop_ms, run_ms);
            println!(
                "| {banks} | {network} | {:.0} | {:.0} | {} | {} | {} | {:.1} |",
                bound.rotation_ms,
                bound.started_per_s,
                half.latency_p50_ms,
                half.latency_p99_ms,
                half.concurrent_ms,
                half.loss_timeout_ms as f64 / 1000.0
            );
        }
    }
}
