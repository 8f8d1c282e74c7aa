//! Idempotency: a repeated request returns its first outcome and changes nothing.

use crate::support::*;

#[test]
fn a_repeated_deposit_returns_the_first_outcome_and_changes_nothing() {
    let mut w = world();
    let mut changes = Vec::new();
    let first =
        w.ledger.deposit(&w.alice, cents(500), DepositMethod::Cash, (key(1), FP), NOW, &mut changes).expect("applies");
    let alice = w.alice.clone();
    let again = unchanged(&mut w.ledger, |l, ch| {
        l.deposit(&alice, cents(500), DepositMethod::Cash, (key(1), FP), TimestampMs(NOW.0 + 1), ch)
    });
    assert_eq!(again, Ok(Outcome::Replayed(first.reference())));
    // Also after the balance changed in between.
    deposit(&mut w.ledger, &alice, 10);
    let mut changes = Vec::new();
    w.ledger.withdraw(&alice, cents(510), (fresh_key(), FP), NOW, &mut changes).expect("empties the account");
    let again =
        unchanged(&mut w.ledger, |l, ch| l.deposit(&alice, cents(500), DepositMethod::Cash, (key(1), FP), NOW, ch));
    assert_eq!(again, Ok(Outcome::Replayed(first.reference())));
    assert_eq!(balance(&w.ledger, &alice), (0, 0));
}

#[test]
fn a_repeated_withdrawal_returns_the_first_outcome_even_when_it_would_now_fail() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 500);
    let mut changes = Vec::new();
    let first = w.ledger.withdraw(&w.alice, cents(500), (key(3), FP), NOW, &mut changes).expect("applies");
    let alice = w.alice.clone();
    let again = unchanged(&mut w.ledger, |l, ch| l.withdraw(&alice, cents(500), (key(3), FP), NOW, ch));
    assert_eq!(again, Ok(Outcome::Replayed(first.reference())));
    assert_eq!(balance(&w.ledger, &alice), (0, 0));
}

#[test]
fn a_key_reused_with_another_fingerprint_is_an_idempotency_mismatch() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    w.ledger.deposit(&w.alice, cents(5), DepositMethod::Cash, (key(1), FP), NOW, &mut changes).expect("applies");
    w.ledger.withdraw(&w.alice, cents(5), (key(2), FP), NOW, &mut changes).expect("applies");
    run_transfer(&mut w.ledger, request(&w.alice, vec![leg(None, to_account(&w.bob), 5)], key(3), 1));

    let (alice, bob) = (w.alice.clone(), w.bob.clone());
    let error =
        rejected(&mut w.ledger, |l, ch| l.deposit(&alice, cents(5), DepositMethod::Cash, (key(1), OTHER_FP), NOW, ch));
    assert_eq!(error, Error::IdempotencyMismatch);
    let error = rejected(&mut w.ledger, |l, ch| l.withdraw(&alice, cents(5), (key(2), OTHER_FP), NOW, ch));
    assert_eq!(error, Error::IdempotencyMismatch);
    let mut req = request(&alice, vec![leg(None, to_account(&bob), 5)], key(3), 2);
    req.fingerprint = OTHER_FP;
    let error = rejected(&mut w.ledger, |l, ch| l.transfer(req, ch));
    assert_eq!(error, Error::IdempotencyMismatch);
}

#[test]
fn idempotency_keys_are_scoped_per_account() {
    let mut w = world();
    let mut changes = Vec::new();
    w.ledger.deposit(&w.alice, cents(5), DepositMethod::Cash, (key(1), FP), NOW, &mut changes).expect("applies");
    w.ledger.deposit(&w.bob, cents(7), DepositMethod::Cash, (key(1), OTHER_FP), NOW, &mut changes).expect("applies");
    assert_eq!(balance(&w.ledger, &w.alice), (5, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (7, 0));
}

#[test]
fn a_repeated_transfer_returns_the_first_outcome_and_moves_nothing() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let req = request(&w.alice, vec![leg(None, to_account(&w.bob), 300)], key(9), 1);
    let first = run_transfer(&mut w.ledger, req.clone());
    assert_eq!(first.status, Status::Completed);
    // A repeat carries a fresh transfer id from the driver; the first outcome still wins.
    let mut repeat = req.clone();
    repeat.transfer_id = TransferId(Uuid::from_u128(2));
    let again = unchanged(&mut w.ledger, |l, ch| l.transfer(repeat, ch));
    assert_eq!(again, Ok(Outcome::Replayed(OutcomeRef::Transfer(first.id))));
    // Also after the balances changed in between.
    let mut changes = Vec::new();
    w.ledger.withdraw(&w.alice, cents(700), (fresh_key(), FP), NOW, &mut changes).expect("applies");
    let again = unchanged(&mut w.ledger, |l, ch| l.transfer(req, ch));
    assert_eq!(again, Ok(Outcome::Replayed(OutcomeRef::Transfer(first.id))));
    assert_eq!(balance(&w.ledger, &w.alice), (0, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (300, 0));
}

#[test]
fn a_rejected_transfer_is_not_remembered_under_its_key() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let alice = w.alice.clone();
    let bad = request(&alice, vec![leg(None, to_account(&alice), 300)], key(4), 1);
    rejected(&mut w.ledger, |l, ch| l.transfer(bad, ch));
    let mut good = request(&alice, vec![leg(None, to_account(&w.bob), 300)], key(4), 2);
    good.fingerprint = OTHER_FP;
    let t = run_transfer(&mut w.ledger, good);
    assert_eq!(t.status, Status::Completed);
}
