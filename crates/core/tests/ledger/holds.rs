//! Holds: the participant's side of two-phase commit.

use crate::support::*;

#[test]
fn placing_holds_reserves_debits_and_emits_balance_and_holds_placed() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let debits = vec![(w.alice.clone(), cents(200)), (w.alice.clone(), cents(100))];
    let credits = vec![(w.bob.clone(), cents(300))];
    let mut changes = Vec::new();
    let vote = w.ledger.vote(tx(1), holding(debits.clone(), credits.clone(), TimestampMs(9)), &mut changes);
    assert_eq!(vote, Vote::Yes);
    let set = holding(debits, credits, TimestampMs(9));
    assert_eq!(
        changes,
        vec![balance_now(&w.alice, 1_000, 300), Change::HoldsPlaced { transfer: tx(1), holds: Box::new(set.clone()) },]
    );
    assert_eq!(balance(&w.ledger, &w.alice), (1_000, 300));
    assert_eq!(available(&w.ledger, &w.alice), 700);
    // Pending credits are not spendable and not posted.
    assert_eq!(balance(&w.ledger, &w.bob), (0, 0));
    assert_eq!(w.ledger.holds(&tx(1)), Some(&set));
    assert_eq!(w.ledger.decision(&tx(1)), None);
    w.ledger.assert_invariants();
}

/// Forgetting decisions only empties memory: a forgotten transaction is unknown until its
/// decision is restored (the driver's read-back), then answered exactly as before.
#[test]
fn forgotten_decisions_are_unknown_until_restored() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    let debits = vec![(w.alice.clone(), cents(300))];
    assert_eq!(w.ledger.vote(tx(1), holding(debits.clone(), vec![], NOW), &mut changes), Vote::Yes);
    w.ledger.post_holds(tx(1), &mut changes).expect("commit");
    w.ledger.release_holds(tx(2), &mut changes).expect("abort of an unknown transaction");
    assert_eq!(w.ledger.vote(tx(3), holding(debits.clone(), vec![], NOW), &mut changes), Vote::Yes);

    assert_eq!(w.ledger.forget_decisions_before(tx(3)), 2);
    assert!(!w.ledger.knows(&tx(1)) && !w.ledger.knows(&tx(2)));
    assert!(w.ledger.knows(&tx(3)), "a transaction holding money is never forgotten");
    assert_eq!(w.ledger.decisions_remembered(), 0);

    w.ledger.restore_decision(tx(1), Decision::Committed);
    let vote = unchanged(&mut w.ledger, |l, ch| l.vote(tx(1), holding(debits, vec![], NOW), ch));
    assert!(matches!(vote, Vote::No { ref code, .. } if *code == bank_core::ErrorCode::AlreadyDecided), "{vote:?}");
    assert_eq!(unchanged(&mut w.ledger, |l, ch| l.post_holds(tx(1), ch)), Ok(()));
    assert_eq!(balance(&w.ledger, &w.alice), (700, 300));
    w.ledger.assert_invariants();
}

#[test]
fn a_repeated_place_votes_yes_again_and_changes_nothing() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    let debits = vec![(w.alice.clone(), cents(300))];
    assert_eq!(w.ledger.vote(tx(1), holding(debits.clone(), vec![], NOW), &mut changes), Vote::Yes);
    let vote = unchanged(&mut w.ledger, |l, ch| l.vote(tx(1), holding(debits, vec![], NOW), ch));
    assert_eq!(vote, Vote::Yes);
    assert_eq!(balance(&w.ledger, &w.alice), (1_000, 300));
}

#[test]
fn placing_without_the_funds_votes_no_holds_nothing_and_is_remembered_as_aborted() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let before = w.ledger.clone();
    // Two debits that fit alone but not together.
    let debits = vec![(w.alice.clone(), cents(600)), (w.alice.clone(), cents(401))];
    let mut changes = Vec::new();
    let vote = w.ledger.vote(tx(1), holding(debits.clone(), vec![(w.bob.clone(), cents(1_001))], NOW), &mut changes);
    assert!(matches!(&vote, Vote::No { code, .. } if *code == bank_core::ErrorCode::InsufficientFunds), "{vote:?}");
    assert_eq!(changes, vec![decided(tx(1), Decision::Aborted)]);
    assert_eq!(balance(&w.ledger, &w.alice), (1_000, 0));
    assert_eq!(w.ledger.holds(&tx(1)), None);
    assert_eq!(w.ledger.decision(&tx(1)), Some(Decision::Aborted));
    // Only the decision was added.
    let mut expected = before;
    expected.restore_decision(tx(1), Decision::Aborted);
    assert_eq!(w.ledger, expected);
    // A later place (even one that would now fit) votes no and places nothing.
    deposit(&mut w.ledger, &w.alice, 1_000);
    let vote = unchanged(&mut w.ledger, |l, ch| l.vote(tx(1), holding(debits, vec![], NOW), ch));
    assert!(matches!(vote, Vote::No { .. }), "{vote:?}");
    assert_eq!(balance(&w.ledger, &w.alice), (2_000, 0));
}

#[test]
fn placing_on_an_unknown_account_votes_no() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let ghost = AccountNumber::from_seq(50);
    let mut changes = Vec::new();
    let vote = w.ledger.vote(tx(1), holding(vec![(ghost.clone(), cents(1))], vec![], NOW), &mut changes);
    assert!(matches!(&vote, Vote::No { code, .. } if *code == bank_core::ErrorCode::NotFound), "{vote:?}");
    let vote =
        w.ledger.vote(tx(2), holding(vec![(w.alice.clone(), cents(1))], vec![(ghost, cents(1))], NOW), &mut changes);
    assert!(matches!(&vote, Vote::No { code, .. } if *code == bank_core::ErrorCode::NotFound), "{vote:?}");
    assert_eq!(changes, vec![decided(tx(1), Decision::Aborted), decided(tx(2), Decision::Aborted),]);
    assert_eq!(balance(&w.ledger, &w.alice), (1_000, 0));
    w.ledger.assert_invariants();
}

#[test]
fn holds_of_two_transactions_add_up_against_the_available_money() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    assert_eq!(place(&mut w.ledger, tx(1), &[(&w.alice, 600)], &[]), Vote::Yes);
    let vote = place(&mut w.ledger, tx(2), &[(&w.alice, 401)], &[]);
    assert!(matches!(vote, Vote::No { .. }), "{vote:?}");
    assert_eq!(place(&mut w.ledger, tx(3), &[(&w.alice, 400)], &[]), Vote::Yes);
    assert_eq!(balance(&w.ledger, &w.alice), (1_000, 1_000));
    assert_eq!(available(&w.ledger, &w.alice), 0);
    w.ledger.assert_invariants();
}

#[test]
fn pending_credits_cannot_be_spent_until_posted() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    let debits = vec![(w.alice.clone(), cents(500))];
    let credits = vec![(w.bob.clone(), cents(500))];
    assert_eq!(w.ledger.vote(tx(1), holding(debits, credits, NOW), &mut changes), Vote::Yes);
    let bob = w.bob.clone();
    let error = rejected(&mut w.ledger, |l, ch| l.withdraw(&bob, cents(1), (fresh_key(), FP), NOW, ch));
    assert_eq!(error.code(), "insufficient_funds");
    let mut changes = Vec::new();
    let vote = w.ledger.vote(tx(2), holding(vec![(bob.clone(), cents(1))], vec![], NOW), &mut changes);
    assert!(matches!(&vote, Vote::No { code, .. } if *code == bank_core::ErrorCode::InsufficientFunds), "{vote:?}");
    let mut changes = Vec::new();
    w.ledger.post_holds(tx(1), &mut changes).expect("posts");
    w.ledger.withdraw(&bob, cents(500), (fresh_key(), FP), NOW, &mut changes).expect("posted money is spendable");
    assert_eq!(balance(&w.ledger, &bob), (0, 0));
}

#[test]
fn posting_holds_moves_the_money_and_emits_balances_then_decided() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    deposit(&mut w.ledger, &w.bob, 50);
    let mut changes = Vec::new();
    let debits = vec![(w.alice.clone(), cents(300)), (w.alice.clone(), cents(100))];
    let credits = vec![(w.bob.clone(), cents(250)), (w.carla.clone(), cents(150))];
    assert_eq!(w.ledger.vote(tx(1), holding(debits, credits, NOW), &mut changes), Vote::Yes);
    let total_before = w.ledger.total_posted_cents();

    let mut changes = Vec::new();
    w.ledger.post_holds(tx(1), &mut changes).expect("posts");
    assert_eq!(
        changes[..3],
        [balance_now(&w.alice, 600, 0), balance_now(&w.bob, 300, 0), balance_now(&w.carla, 150, 0),]
    );
    // Then one statement line per leg (debits out, credits in), then the decision.
    let lines: Vec<(AccountNumber, EntryKind, i64)> = changes[3..changes.len() - 1]
        .iter()
        .map(|c| match c {
            Change::EntryAdded(e) => {
                assert_eq!(e.transfer_id, Some(tx(1)));
                (e.account.clone(), e.kind, e.amount.cents())
            }
            other => panic!("expected a ledger line, got {other:?}"),
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (w.alice.clone(), EntryKind::TransferOut, 300),
            (w.alice.clone(), EntryKind::TransferOut, 100),
            (w.bob.clone(), EntryKind::TransferIn, 250),
            (w.carla.clone(), EntryKind::TransferIn, 150),
        ]
    );
    assert_eq!(changes.last(), Some(&decided(tx(1), Decision::Committed)));
    assert_eq!(balance(&w.ledger, &w.alice), (600, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (300, 0));
    assert_eq!(balance(&w.ledger, &w.carla), (150, 0));
    assert_eq!(w.ledger.total_posted_cents(), total_before);
    assert_eq!(w.ledger.holds(&tx(1)), None);
    assert_eq!(w.ledger.decision(&tx(1)), Some(Decision::Committed));
    w.ledger.assert_invariants();

    // A repeated post is a no-op.
    let again = unchanged(&mut w.ledger, |l, ch| l.post_holds(tx(1), ch));
    assert_eq!(again, Ok(()));
    // A late place after the commit votes no and holds nothing.
    let alice = w.alice.clone();
    let vote = unchanged(&mut w.ledger, |l, ch| l.vote(tx(1), holding(vec![(alice, cents(1))], vec![], NOW), ch));
    assert!(matches!(vote, Vote::No { .. }), "{vote:?}");
}

#[test]
fn posting_one_sided_hold_sets_changes_the_bank_total_by_credits_minus_debits() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    // A remote payer's money arrives here (credit only) and a local payer's leaves (debit only).
    assert_eq!(place(&mut w.ledger, tx(1), &[], &[(&w.bob, 70)]), Vote::Yes);
    assert_eq!(place(&mut w.ledger, tx(2), &[(&w.alice, 30)], &[]), Vote::Yes);
    w.ledger.post_holds(tx(1), &mut changes).expect("posts");
    w.ledger.post_holds(tx(2), &mut changes).expect("posts");
    assert_eq!(w.ledger.total_posted_cents(), 1_000 + 70 - 30);
    assert_eq!(balance(&w.ledger, &w.alice), (970, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (70, 0));
    w.ledger.assert_invariants();
}

#[test]
fn releasing_holds_frees_the_money_and_emits_balance_then_decided() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    let debits = vec![(w.alice.clone(), cents(300)), (w.alice.clone(), cents(100))];
    assert_eq!(w.ledger.vote(tx(1), holding(debits, vec![(w.bob.clone(), cents(400))], NOW), &mut changes), Vote::Yes);
    let mut changes = Vec::new();
    w.ledger.release_holds(tx(1), &mut changes).expect("releases");
    assert_eq!(changes, vec![balance_now(&w.alice, 1_000, 0), decided(tx(1), Decision::Aborted),]);
    assert_eq!(balance(&w.ledger, &w.alice), (1_000, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (0, 0));
    assert_eq!(w.ledger.holds(&tx(1)), None);
    assert_eq!(w.ledger.decision(&tx(1)), Some(Decision::Aborted));
    // A repeated release is a no-op.
    assert_eq!(unchanged(&mut w.ledger, |l, ch| l.release_holds(tx(1), ch)), Ok(()));
    w.ledger.assert_invariants();
}

#[test]
fn releasing_an_unknown_transaction_makes_a_late_place_vote_no() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    w.ledger.release_holds(tx(7), &mut changes).expect("presumed abort");
    assert_eq!(changes, vec![decided(tx(7), Decision::Aborted)]);
    assert_eq!(w.ledger.decision(&tx(7)), Some(Decision::Aborted));
    let alice = w.alice.clone();
    let vote =
        unchanged(&mut w.ledger, |l, ch| l.vote(tx(7), holding(vec![(alice.clone(), cents(10))], vec![], NOW), ch));
    assert!(matches!(vote, Vote::No { .. }), "{vote:?}");
    assert_eq!(balance(&w.ledger, &alice), (1_000, 0));
    assert_eq!(w.ledger.holds(&tx(7)), None);
}

#[test]
fn posting_after_a_release_is_a_conflict() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    assert_eq!(place(&mut w.ledger, tx(1), &[(&w.alice, 10)], &[]), Vote::Yes);
    w.ledger.release_holds(tx(1), &mut changes).expect("releases");
    let error = rejected(&mut w.ledger, |l, ch| l.post_holds(tx(1), ch));
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    // Also for a transaction refused at place time.
    let vote = place(&mut w.ledger, tx(2), &[(&w.alice, 5_000)], &[]);
    assert!(matches!(vote, Vote::No { .. }), "{vote:?}");
    let error = rejected(&mut w.ledger, |l, ch| l.post_holds(tx(2), ch));
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
}

#[test]
fn releasing_after_a_post_is_a_conflict() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    assert_eq!(place(&mut w.ledger, tx(1), &[(&w.alice, 10)], &[]), Vote::Yes);
    w.ledger.post_holds(tx(1), &mut changes).expect("posts");
    let error = rejected(&mut w.ledger, |l, ch| l.release_holds(tx(1), ch));
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    assert_eq!(balance(&w.ledger, &w.alice), (990, 0));
}

#[test]
fn posting_a_transaction_never_placed_is_a_conflict_and_decides_nothing() {
    let mut w = world();
    let error = rejected(&mut w.ledger, |l, ch| l.post_holds(tx(3), ch));
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    assert_eq!(w.ledger.decision(&tx(3)), None);
}

/// Found while writing these tests: `post_holds` clamps a credit at `BALANCE_MAX_CENTS`
/// (`saturating_add(..).min(BALANCE_MAX_CENTS)`) instead of refusing it at place time, so money
/// vanishes. A participant that voted yes cannot refuse the commit; the place must refuse.
#[test]
fn committing_a_hold_credit_at_the_balance_limit_never_destroys_money() {
    let (mut ledger, rich) = ledger_with_rich_account(BALANCE_MAX_CENTS - 50);
    let payer = open(&mut ledger, individual("Paula Pagadora", 2, "paula"));
    deposit(&mut ledger, &payer, 100);
    let total_before = ledger.total_posted_cents();
    let mut changes = Vec::new();
    let vote = ledger.vote(
        tx(1),
        holding(vec![(payer.clone(), cents(100))], vec![(rich.clone(), cents(100))], NOW),
        &mut changes,
    );
    if vote == Vote::Yes {
        ledger.post_holds(tx(1), &mut changes).expect("a yes vote must be committable");
        // The hold set's credits equal its debits: the bank's total must not move.
        assert_eq!(
            ledger.total_posted_cents(),
            total_before,
            "posting a balanced hold set changed Σ posted: payer {:?}, receiver {:?}",
            balance(&ledger, &payer),
            balance(&ledger, &rich)
        );
    } else {
        assert_eq!(balance(&ledger, &payer), (100, 0));
        assert_eq!(balance(&ledger, &rich), (BALANCE_MAX_CENTS - 50, 0));
    }
    ledger.assert_invariants();
}

/// Same bug, reached by a deposit between place and post: a placed credit that fitted when it was
/// placed must still fit when it is posted (or the deposit must be refused).
#[test]
fn a_deposit_between_place_and_post_cannot_make_a_placed_credit_destroy_money() {
    let (mut ledger, rich) = ledger_with_rich_account(BALANCE_MAX_CENTS - 100);
    let mut changes = Vec::new();
    // A credit from a remote payer: it fits under the limit when placed.
    assert_eq!(ledger.vote(tx(1), holding(vec![], vec![(rich.clone(), cents(100))], NOW), &mut changes), Vote::Yes);
    let mut external = ledger.total_posted_cents();
    if ledger.deposit(&rich, cents(50), DepositMethod::Cash, (key(1), FP), NOW, &mut changes).is_ok() {
        external += 50;
    }
    ledger.post_holds(tx(1), &mut changes).expect("a yes vote must be committable");
    external += 100;
    assert_eq!(ledger.total_posted_cents(), external, "Σ posted ≠ deposits + posted credits");
    ledger.assert_invariants();
}

/// Settlements are forgotten by age, then by number: memory keeps at most the newest `max` of
/// those within the window (the participant reads any other back before it answers about it).
#[test]
fn settlements_are_forgotten_by_age_then_beyond_the_newest_max() {
    let mut ledger = Ledger::new(BankId(1));
    let at = |ms: i64| TransferId::first_at(ms);
    for ms in [1_000, 2_000, 3_000, 4_000, 5_000] {
        ledger.restore_settlement(at(ms), Settlement::Posted);
    }
    assert_eq!(ledger.forget_settlements(at(2_000), 3), 2, "1 s is past the window, 2 s beyond the newest 3");
    assert_eq!(ledger.settlements_remembered(), 3);
    assert_eq!(ledger.settlement(&at(2_000)), None, "the oldest of the window went first");
    assert_eq!(ledger.settlement(&at(3_000)), Some(Settlement::Posted));
    assert_eq!(ledger.forget_settlements(at(0), 3), 0, "nothing twice");
    assert_eq!(ledger.forget_settlements(at(0), 0), 3);
    assert!(!ledger.knows(&at(5_000)));
}
