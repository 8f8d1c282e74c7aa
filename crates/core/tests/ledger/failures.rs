//! Transfers that execute and fail (lacking funds), and are remembered.

use crate::support::*;

#[test]
fn a_transfer_lacking_funds_executes_fails_and_is_remembered() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 100); // entry 1
    let req = request(&w.alice, vec![leg(None, Destination::Key(key_of(&cpf(2))), 101)], key(1), 5);
    let before = w.ledger.clone();
    let mut changes = Vec::new();
    let t = transfer_of(w.ledger.transfer(req.clone(), &mut changes).expect("executes"));
    assert_eq!(t.status, Status::Failed);
    assert!(t.legs.iter().all(|l| l.status == Status::Failed));
    let failure: &Failure = t.failure.as_ref().expect("a failure");
    assert_eq!(failure.code, bank_core::ErrorCode::InsufficientFunds);
    assert!(failure.detail.contains(w.alice.as_str()), "{}", failure.detail);
    assert_eq!(balance(&w.ledger, &w.alice), (100, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (0, 0));
    assert_eq!(w.ledger.total_posted_cents(), before.total_posted_cents());

    let out = Entry {
        transfer_id: Some(t.id),
        status: Status::Failed,
        counterparty: counterparty("Bob Lima", &w.bob),
        ..completed_entry(2, &w.alice, EntryKind::TransferOut, 101)
    };
    assert_eq!(
        changes,
        vec![
            Change::TransferRecorded(Box::new(t.clone())),
            entry_added(&out),
            remembered(&w.alice, key(1), OutcomeRef::Transfer(t.id)),
        ]
    );
    // Remembered: after Alice gets the money, the repeat still answers the failed transfer.
    deposit(&mut w.ledger, &w.alice, 1_000);
    let again = unchanged(&mut w.ledger, |l, ch| l.transfer(req, ch));
    assert_eq!(again, Ok(Outcome::Replayed(OutcomeRef::Transfer(t.id))));
    assert_eq!(balance(&w.ledger, &w.bob), (0, 0));
    w.ledger.assert_invariants();
}

#[test]
fn several_legs_from_one_source_are_summed_against_its_available_money() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    // Each leg fits alone; together they do not.
    let legs = vec![leg(None, to_account(&w.bob), 600), leg(None, to_account(&w.carla), 401)];
    let t = run_transfer(&mut w.ledger, request(&w.alice, legs, key(1), 1));
    assert_eq!(t.status, Status::Failed);
    assert_eq!(t.failure.as_ref().map(|f| f.code.as_str()), Some("insufficient_funds"));
    assert_eq!(balance(&w.ledger, &w.alice), (1_000, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (0, 0));
    assert_eq!(balance(&w.ledger, &w.carla), (0, 0));
    // Exactly the available money is enough.
    let legs = vec![leg(None, to_account(&w.bob), 600), leg(None, to_account(&w.carla), 400)];
    let t = run_transfer(&mut w.ledger, request(&w.alice, legs, key(2), 2));
    assert_eq!(t.status, Status::Completed);
    assert_eq!(balance(&w.ledger, &w.alice), (0, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (600, 0));
    assert_eq!(balance(&w.ledger, &w.carla), (400, 0));
}

#[test]
fn a_leg_cannot_spend_what_an_earlier_leg_of_the_same_transfer_credits() {
    let mut w = world();
    deposit(&mut w.ledger, &w.joint, 500);
    // Alice's own account is empty; the first leg fills it, the second would spend that.
    let legs = vec![leg(Some(&w.joint), to_account(&w.alice), 500), leg(Some(&w.alice), to_account(&w.bob), 500)];
    let t = run_transfer(&mut w.ledger, request(&w.alice, legs, key(1), 1));
    assert_eq!(t.status, Status::Failed);
    assert_eq!(t.failure.as_ref().map(|f| f.code.as_str()), Some("insufficient_funds"));
    assert_eq!(balance(&w.ledger, &w.joint), (500, 0));
    assert_eq!(balance(&w.ledger, &w.alice), (0, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (0, 0));
}

#[test]
fn a_transfer_cannot_spend_held_money() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    assert_eq!(place(&mut w.ledger, tx(1), &[(&w.alice, 600)], &[]), Vote::Yes);
    let t = run_transfer(&mut w.ledger, request(&w.alice, vec![leg(None, to_account(&w.bob), 401)], key(1), 1));
    assert_eq!(t.status, Status::Failed);
    let t = run_transfer(&mut w.ledger, request(&w.alice, vec![leg(None, to_account(&w.bob), 400)], key(2), 2));
    assert_eq!(t.status, Status::Completed);
    assert_eq!(balance(&w.ledger, &w.alice), (600, 600));
    w.ledger.assert_invariants();
}
