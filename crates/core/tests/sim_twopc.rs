//! Two-phase commit under a simulated network and crashing banks (see `sim/mod.rs`).
//!
//! `random_seeds_keep_every_invariant` runs many seeded worlds: random transfers, lost,
//! duplicated, delayed and reordered messages, crashes between and in the middle of calls, then a
//! heal and the final checks. `BANK_SIM_SEEDS=<n>` sets how many seeds (default 1,000);
//! `BANK_SIM_SEED=<n>` replays one. The scripted scenarios after it each prove one failure case
//! of the module essay in `bank_core::twopc`.

mod sim;
mod support;

use bank_core::ids::{BankId, TimestampMs};
use bank_core::twopc::{Coordinator, CoordinatorOutput, Message, RetryPolicy, TxPhase};
use bank_core::twopc::{Decision, Vote};
use sim::{PlannedLeg, Stats, World, kind};
use support::Seeds;

const B1: BankId = BankId(1);
const B2: BankId = BankId(2);
const B3: BankId = BankId(3);

/// One random world, from workload to final checks.
fn run_seed(seed: u64) -> Stats {
    let mut world = World::random(seed);
    let mut started = 0;
    // The workload: transfers start while faults strike; then a while of faults alone.
    let mut tail_steps = 100;
    while started < world.knobs.transfers || tail_steps > 0 {
        if started < world.knobs.transfers {
            if world.rng.per_mille(world.knobs.begin_per_mille) {
                world.begin_random();
                started += 1;
            }
        } else {
            tail_steps -= 1;
        }
        world.step();
    }
    world.heal_and_check();
    world.stats
}

/// Every invariant holds over many seeds of random workloads, networks and crashes.
#[test]
fn random_seeds_keep_every_invariant() {
    let seeds = Seeds::from_env(1_000);
    let total = seeds.run("simulation", run_seed);
    // The seeds must exercise what they claim to (a run where nothing commits proves little).
    if seeds.len() >= 100 {
        assert!(total.committed > 0 && total.aborted > 0, "{total:?}");
        assert!(total.keys_registered > 0, "key registrations must sometimes succeed: {total:?}");
        assert!(
            total.batches_lost > 0 && total.batches_duplicated > 0 && total.batches_cut > 0,
            "batches must be lost, duplicated and cut by crashes: {total:?}"
        );
        assert!(total.crashes > 0 && total.mid_call_crashes > 0 && total.never_begun > 0, "{total:?}");
    }
}

/// A leg moving `cents` from account `from` of `from_bank` to account `to` of `to_bank`.
fn leg(from_bank: BankId, from: usize, to_bank: BankId, to: usize, cents: i64) -> PlannedLeg {
    (from_bank, World::account(from), to_bank, World::account(to), cents)
}

// ----- scripted scenarios -------------------------------------------------------------------------

#[test]
fn a_transfer_across_three_banks_commits_everywhere_when_nothing_fails() {
    let mut w = World::scripted(3);
    let tx = w.begin(B1, vec![leg(B2, 0, B3, 0, 300), leg(B1, 0, B2, 1, 100)], 1_000);
    w.heal_and_check();
    assert_eq!(w.answers.get(&tx), Some(&Decision::Committed));
    assert_eq!(w.balance(B1, 0), (900, 0));
    assert_eq!(w.balance(B2, 0), (700, 0));
    assert_eq!(w.balance(B2, 1), (1_100, 0));
    assert_eq!(w.balance(B3, 0), (1_300, 0));
}

#[test]
fn an_overspending_transfer_aborts_everywhere_and_moves_nothing() {
    let mut w = World::scripted(3);
    let tx = w.begin(B1, vec![leg(B2, 0, B3, 0, 1_001), leg(B1, 0, B2, 1, 100)], 1_000);
    w.heal_and_check();
    assert_eq!(w.answers.get(&tx), Some(&Decision::Aborted));
    for bank in [B1, B2, B3] {
        assert_eq!(w.balance(bank, 0), (1_000, 0));
        assert_eq!(w.balance(bank, 1), (1_000, 0));
    }
}

#[test]
fn a_participant_that_crashes_after_voting_yes_keeps_its_hold_and_ends_like_everyone() {
    // Two cases: its yes vote reached the coordinator (then the commit must wait for it), or the
    // vote was lost with the crash (then the coordinator re-sends the prepare and gets it again).
    for vote_delivered in [true, false] {
        let mut w = World::scripted(3);
        let tx = w.begin(B1, vec![leg(B2, 0, B3, 0, 300)], 1_000);
        assert_eq!(w.deliver_where(|p| kind(p) == "prepare"), 2);
        assert_eq!(w.balance(B2, 0), (1_000, 300), "B2 voted yes: its hold is placed");
        if vote_delivered {
            assert_eq!(w.deliver_where(|p| kind(p) == "vote"), 2);
            assert_eq!(w.bank(B1).coordinator.phase(&tx), Some(TxPhase::Decided(Decision::Committed)));
        }
        w.crash(B2, true);
        w.restart(B2);
        assert!(w.bank(B2).ledger.holds(&tx).is_some(), "the hold survives the crash");
        assert_eq!(w.balance(B2, 0), (1_000, 300));
        w.heal_and_check();
        assert_eq!(w.answers.get(&tx), Some(&Decision::Committed));
        assert_eq!(w.balance(B2, 0), (700, 0));
        assert_eq!(w.balance(B3, 0), (1_300, 0));
    }
}

#[test]
fn a_coordinator_that_crashes_after_deciding_commit_finishes_delivery_after_restart_and_nothing_is_applied_twice() {
    let mut w = World::scripted(3);
    let tx = w.begin(B1, vec![leg(B2, 0, B3, 0, 300), leg(B1, 0, B2, 1, 100)], 1_000);
    assert_eq!(w.deliver_where(|p| kind(p) == "prepare"), 3);
    assert_eq!(w.deliver_where(|p| kind(p) == "vote" && p.from != B3), 2);
    // The last vote makes it decide: it persists the commit (output 0), then crashes before
    // sending anything.
    w.crash_during_next_call(B1, 1);
    assert_eq!(w.deliver_where(|p| kind(p) == "vote"), 1);
    assert!(!w.bank(B1).up);
    assert_eq!(w.network.len(), 0, "no commit left before the crash");
    assert_eq!(w.decisions.get(&tx), Some(&Decision::Committed), "the decision is durable");
    w.restart(B1);
    w.tick_all();
    assert_eq!(w.network.iter().filter(|p| kind(p) == "commit").count(), 3, "re-sent to every participant");
    // Deliver every commit twice; then the coordinator re-sends them once more before the acks.
    w.duplicate_where(|p| kind(p) == "commit");
    assert_eq!(w.deliver_where(|p| kind(p) == "commit"), 6);
    w.now = TimestampMs(w.now.0 + 1_000);
    w.tick_all();
    assert_eq!(w.deliver_where(|p| kind(p) == "commit"), 3);
    w.heal_and_check();
    assert_eq!(w.bank(B1).coordinator.phase(&tx), Some(TxPhase::Finished(Decision::Committed)));
    assert_eq!(w.balance(B1, 0), (900, 0));
    assert_eq!(w.balance(B2, 0), (700, 0));
    assert_eq!(w.balance(B2, 1), (1_100, 0));
    assert_eq!(w.balance(B3, 0), (1_300, 0));
}

#[test]
fn a_coordinator_that_crashes_before_deciding_aborts_everywhere_and_releases_the_holds() {
    let mut w = World::scripted(3);
    let tx = w.begin(B1, vec![leg(B2, 0, B3, 0, 300), leg(B1, 0, B2, 1, 100)], 1_000);
    assert_eq!(w.deliver_where(|p| kind(p) == "prepare"), 3);
    assert_eq!(w.balance(B1, 0), (1_000, 100));
    assert_eq!(w.balance(B2, 0), (1_000, 300));
    // Every participant voted yes, but the votes die with the coordinator.
    w.crash(B1, true);
    w.restart(B1);
    assert_eq!(w.bank(B1).coordinator.phase(&tx), Some(TxPhase::Preparing));
    w.tick_all();
    assert_eq!(w.bank(B1).coordinator.phase(&tx), Some(TxPhase::Decided(Decision::Aborted)));
    w.heal_and_check();
    assert_eq!(w.answers.get(&tx), Some(&Decision::Aborted));
    for bank in [B1, B2, B3] {
        assert_eq!(w.bank(bank).ledger.settlement(&tx).map(Decision::from), Some(Decision::Aborted));
        assert_eq!(w.balance(bank, 0), (1_000, 0));
        assert_eq!(w.balance(bank, 1), (1_000, 0));
    }
}

#[test]
fn a_late_prepare_after_an_abort_places_no_hold() {
    let mut w = World::scripted(3);
    let tx = w.begin(B1, vec![leg(B2, 0, B3, 0, 300)], 100);
    // B2's prepare is slow; B3 votes yes.
    assert_eq!(w.deliver_where(|p| kind(p) == "prepare" && p.to == B3), 1);
    assert_eq!(w.deliver_where(|p| kind(p) == "vote"), 1);
    // The expiry passes with B2 silent: abort, which overtakes B2's prepare.
    w.now = TimestampMs(w.now.0 + 100);
    w.tick_all();
    assert_eq!(w.bank(B1).coordinator.phase(&tx), Some(TxPhase::Decided(Decision::Aborted)));
    assert_eq!(w.deliver_where(|p| kind(p) == "abort"), 2);
    assert_eq!(w.deliver_where(|p| kind(p) == "prepare" && p.to == B2), 1);
    assert!(w.bank(B2).ledger.holds(&tx).is_none());
    assert_eq!(w.balance(B2, 0), (1_000, 0));
    assert!(
        w.network.iter().any(|p| matches!(&p.msg, Message::Vote { vote: Vote::No { .. }, .. })),
        "the late prepare is answered no"
    );
    w.heal_and_check();
    assert_eq!(w.balance(B3, 0), (1_000, 0));
}

#[test]
fn a_prepare_arriving_after_its_expiry_is_refused_and_remembered_as_aborted() {
    let mut w = World::scripted(3);
    let tx = w.begin(B1, vec![leg(B2, 0, B3, 0, 300)], 100);
    w.now = TimestampMs(w.now.0 + 101);
    assert_eq!(w.deliver_where(|p| kind(p) == "prepare" && p.to == B2), 1);
    assert!(w.bank(B2).ledger.holds(&tx).is_none());
    assert_eq!(w.bank(B2).ledger.settlement(&tx).map(Decision::from), Some(Decision::Aborted));
    let vote = w.network.iter().find_map(|p| match &p.msg {
        Message::Vote { vote: Vote::No { code, .. }, .. } => Some(*code),
        _ => None,
    });
    assert_eq!(vote, Some(bank_core::ErrorCode::Expired));
    w.heal_and_check();
    assert_eq!(w.answers.get(&tx), Some(&Decision::Aborted));
}

#[test]
fn a_duplicate_commit_is_a_no_op_and_is_acknowledged_again() {
    let mut w = World::scripted(3);
    let tx = w.begin(B1, vec![leg(B2, 0, B3, 0, 300)], 1_000);
    w.deliver_where(|p| kind(p) == "prepare");
    w.deliver_where(|p| kind(p) == "vote");
    assert_eq!(w.duplicate_where(|p| kind(p) == "commit" && p.to == B2), 1);
    assert_eq!(w.deliver_where(|p| kind(p) == "commit" && p.to == B2), 2);
    assert_eq!(w.balance(B2, 0), (700, 0));
    assert_eq!(w.network.iter().filter(|p| kind(p) == "ack" && p.from == B2).count(), 2, "acked twice");
    w.heal_and_check();
    assert_eq!(w.answers.get(&tx), Some(&Decision::Committed));
    assert_eq!(w.balance(B2, 0), (700, 0));
    assert_eq!(w.balance(B3, 0), (1_300, 0));
}

#[test]
fn a_participant_in_doubt_past_the_expiry_asks_the_coordinator_and_applies_the_outcome() {
    let mut w = World::scripted(3);
    let tx = w.begin(B1, vec![leg(B2, 0, B3, 0, 300)], 100);
    w.deliver_where(|p| kind(p) == "prepare");
    w.deliver_where(|p| kind(p) == "vote");
    assert_eq!(w.drop_where(|p| kind(p) == "commit"), 2, "every commit is lost");
    // Before the expiry a participant in doubt waits; after it, it asks.
    w.tick_participant(B2);
    assert!(w.network.is_empty());
    w.now = TimestampMs(w.now.0 + 100);
    w.tick_participant(B2);
    w.tick_participant(B3);
    assert_eq!(w.network.iter().filter(|p| kind(p) == "query_outcome" && p.to == B1).count(), 2);
    w.deliver_where(|p| kind(p) == "query_outcome");
    assert_eq!(w.deliver_where(|p| matches!(p.msg, Message::Outcome { decision: Some(Decision::Committed), .. })), 2);
    assert_eq!(w.balance(B2, 0), (700, 0));
    assert_eq!(w.balance(B3, 0), (1_300, 0));
    w.heal_and_check();
    assert_eq!(w.bank(B1).coordinator.phase(&tx), Some(TxPhase::Finished(Decision::Committed)));
}

#[test]
fn a_participant_crashing_before_its_holds_are_durable_never_voted_and_the_transfer_still_ends() {
    let mut w = World::scripted(3);
    let tx = w.begin(B1, vec![leg(B2, 0, B3, 0, 300)], 1_000);
    w.crash_during_next_call(B2, 0);
    assert_eq!(w.deliver_where(|p| kind(p) == "prepare" && p.to == B2), 1);
    w.restart(B2);
    assert!(w.bank(B2).ledger.holds(&tx).is_none(), "the hold was never written");
    w.heal_and_check();
    assert_eq!(w.answers.get(&tx), Some(&Decision::Committed), "the re-sent prepare gets its vote");
}

#[test]
fn a_coordinator_with_no_record_answers_abort_and_one_still_preparing_answers_undecided() {
    let tx = bank_core::ids::TransferId(uuid::Uuid::from_u128(9));
    let mut coordinator = Coordinator::new(B1, RetryPolicy::DEFAULT);
    let query = Message::QueryOutcome { tx, from: B2 };
    let answer = |decision| vec![CoordinatorOutput::Send { to: B2, msg: Message::Outcome { tx, decision } }];
    assert_eq!(coordinator.step(B2, query.clone(), TimestampMs(0)), answer(Some(Decision::Aborted)));
    let mut legs = bank_core::twopc::LegsByBank::new();
    legs.entry(B2).or_default().credits.push((World::account(0), bank_core::Amount::from_cents(1).expect("valid")));
    coordinator.begin(tx, legs, TimestampMs(100), TimestampMs(0));
    assert_eq!(coordinator.step(B2, query.clone(), TimestampMs(50)), answer(None));
    // At the expiry a query finds it aborted (and the abort is persisted before the answer).
    let outputs = coordinator.step(B2, query, TimestampMs(100));
    assert!(matches!(outputs.first(), Some(CoordinatorOutput::Persist(_))), "{outputs:?}");
    assert_eq!(outputs.last(), answer(Some(Decision::Aborted)).last());
}
