//! Deposits and withdrawals.

use crate::support::*;

#[test]
fn a_deposit_credits_posted_and_emits_balance_entry_and_idempotency_record() {
    let mut w = world();
    let mut changes = Vec::new();
    let outcome = w
        .ledger
        .deposit(&w.alice, cents(12_345), DepositMethod::Boleto, (key(1), FP), TimestampMs(42), &mut changes)
        .expect("applies");
    let entry = Entry {
        method: Some(DepositMethod::Boleto),
        created_at: TimestampMs(42),
        ..completed_entry(1, &w.alice, EntryKind::Deposit, 12_345)
    };
    assert_eq!(outcome, Outcome::Entry(entry.clone()));
    assert_eq!(
        changes,
        vec![
            balance_now(&w.alice, 12_345, 0),
            entry_added(&entry),
            remembered(&w.alice, key(1), OutcomeRef::Entry(entry.id)),
        ]
    );
    assert_eq!(balance(&w.ledger, &w.alice), (12_345, 0));
    assert_eq!(w.ledger.total_posted_cents(), 12_345);
    w.ledger.assert_invariants();
}

#[test]
fn deposits_add_up_and_entry_ids_increase() {
    let mut w = world();
    let mut changes = Vec::new();
    let mut ids = Vec::new();
    for (i, c) in [100, 250, 1].into_iter().enumerate() {
        let e = entry_of(
            w.ledger.deposit(&w.bob, cents(c), DepositMethod::Qr, (key(i as u128), FP), NOW, &mut changes).expect("ok"),
        );
        ids.push(e.id);
    }
    assert_eq!(ids, vec![EntryId(1), EntryId(2), EntryId(3)]);
    assert_eq!(balance(&w.ledger, &w.bob), (351, 0));
}

#[test]
fn a_withdrawal_debits_posted_and_emits_balance_entry_and_idempotency_record() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    let outcome = w.ledger.withdraw(&w.alice, cents(400), (key(2), FP), NOW, &mut changes).expect("applies");
    let entry = completed_entry(2, &w.alice, EntryKind::Withdrawal, 400);
    assert_eq!(outcome, Outcome::Entry(entry.clone()));
    assert_eq!(
        changes,
        vec![
            balance_now(&w.alice, 600, 0),
            entry_added(&entry),
            remembered(&w.alice, key(2), OutcomeRef::Entry(entry.id)),
        ]
    );
    assert_eq!(balance(&w.ledger, &w.alice), (600, 0));
}

#[test]
fn withdrawing_everything_leaves_zero() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    w.ledger.withdraw(&w.alice, cents(1_000), (fresh_key(), FP), NOW, &mut changes).expect("applies");
    assert_eq!(balance(&w.ledger, &w.alice), (0, 0));
}

#[test]
fn a_withdrawal_beyond_the_available_money_is_insufficient_funds() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let alice = w.alice.clone();
    let error = rejected(&mut w.ledger, |l, ch| l.withdraw(&alice, cents(1_001), (key(5), FP), NOW, ch));
    assert_eq!(
        error,
        Error::InsufficientFunds { account: alice.clone(), available_cents: 1_000, requested_cents: 1_001 }
    );
    // Rejections are not remembered: the key is free for a corrected request.
    let mut changes = Vec::new();
    w.ledger.withdraw(&alice, cents(1_000), (key(5), OTHER_FP), NOW, &mut changes).expect("corrected request");
    assert_eq!(balance(&w.ledger, &alice), (0, 0));
}

#[test]
fn a_withdrawal_cannot_take_held_money() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut changes = Vec::new();
    let vote = place(&mut w.ledger, tx(1), &[(&w.alice, 700)], &[]);
    assert_eq!(vote, Vote::Yes);
    let alice = w.alice.clone();
    let error = rejected(&mut w.ledger, |l, ch| l.withdraw(&alice, cents(301), (fresh_key(), FP), NOW, ch));
    assert_eq!(error, Error::InsufficientFunds { account: alice.clone(), available_cents: 300, requested_cents: 301 });
    w.ledger.withdraw(&alice, cents(300), (fresh_key(), FP), NOW, &mut changes).expect("the rest is available");
    assert_eq!(balance(&w.ledger, &alice), (700, 700));
    w.ledger.assert_invariants();
}

#[test]
fn deposits_and_withdrawals_on_unknown_accounts_are_not_found() {
    let mut w = world();
    let ghost = AccountNumber::from_seq(77);
    let error =
        rejected(&mut w.ledger, |l, ch| l.deposit(&ghost, cents(1), DepositMethod::Cash, (key(1), FP), NOW, ch));
    assert!(matches!(error, Error::NotFound(_)), "{error:?}");
    let error = rejected(&mut w.ledger, |l, ch| l.withdraw(&ghost, cents(1), (key(1), FP), NOW, ch));
    assert!(matches!(error, Error::NotFound(_)), "{error:?}");
}

#[test]
fn a_deposit_may_reach_but_not_exceed_the_balance_limit() {
    let (mut ledger, rich) = ledger_with_rich_account(BALANCE_MAX_CENTS - 100);
    let error = rejected(&mut ledger, |l, ch| l.deposit(&rich, cents(101), DepositMethod::Cash, (key(1), FP), NOW, ch));
    assert_eq!(error.code(), "invalid_input", "{error:?}");
    let mut changes = Vec::new();
    ledger.deposit(&rich, cents(100), DepositMethod::Cash, (key(1), OTHER_FP), NOW, &mut changes).expect("fits");
    assert_eq!(balance(&ledger, &rich), (BALANCE_MAX_CENTS, 0));
    let error = rejected(&mut ledger, |l, ch| l.deposit(&rich, cents(1), DepositMethod::Cash, (key(2), FP), NOW, ch));
    assert_eq!(error.code(), "invalid_input", "{error:?}");
    ledger.assert_invariants();
}
