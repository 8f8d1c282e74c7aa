//! Transfers refused before anything happens.

use crate::support::*;

#[test]
fn a_transfer_without_legs_is_invalid() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let req = request(&w.alice, vec![], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "invalid_input");
}

#[test]
fn a_transfer_with_seventeen_legs_is_invalid() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 10_000);
    let legs = (0..=LEGS_MAX).map(|_| leg(None, to_account(&w.bob), 10)).collect();
    let req = request(&w.alice, legs, key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "invalid_input");
}

#[test]
fn a_transfer_to_an_unknown_key_is_unknown_key() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let unknown = key_of(&cpf(555));
    let req = request(&w.alice, vec![leg(None, Destination::Key(unknown.clone()), 10)], key(1), 1);
    let error = assert_transfer_rejected(&mut w.ledger, req, "unknown_key");
    assert_eq!(error, Error::UnknownKey(unknown.normalized()));
    // One bad leg among good ones rejects the whole transfer.
    let legs =
        vec![leg(None, to_account(&w.bob), 10), leg(None, Destination::Key(PixKey::Random(Uuid::from_u128(5))), 10)];
    let req = request(&w.alice, legs, key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "unknown_key");
}

#[test]
fn a_transfer_to_an_unknown_account_is_not_found() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let req = request(&w.alice, vec![leg(None, to_account(&AccountNumber::from_seq(42)), 10)], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "not_found");
}

#[test]
fn a_transfer_naming_another_bank_is_not_found() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let elsewhere = AccountRef { bank_id: OTHER_BANK, number: w.bob.clone() };
    let req = request(&w.alice, vec![leg(None, Destination::Account(elsewhere.clone()), 10)], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "not_found");
    let mut from_elsewhere = leg(None, to_account(&w.bob), 10);
    from_elsewhere.from = Some(AccountRef { bank_id: OTHER_BANK, number: w.alice.clone() });
    let req = request(&w.alice, vec![from_elsewhere], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "not_found");
}

#[test]
fn a_transfer_from_an_account_not_held_is_forbidden() {
    let mut w = world();
    deposit(&mut w.ledger, &w.bob, 1_000);
    let req = request(&w.alice, vec![leg(Some(&w.bob), to_account(&w.carla), 10)], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "forbidden");
    // Naming a source that does not exist is forbidden too (it is not the customer's).
    let req = request(&w.alice, vec![leg(Some(&AccountNumber::from_seq(99)), to_account(&w.bob), 10)], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "forbidden");
}

#[test]
fn a_transfer_to_its_own_source_is_invalid() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let req = request(&w.alice, vec![leg(None, to_account(&w.alice), 10)], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "invalid_input");
    let req = request(&w.alice, vec![leg(None, Destination::Key(key_of(&cpf(1))), 10)], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "invalid_input");
}

#[test]
fn a_too_long_or_controlled_description_is_invalid() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    for text in ["a".repeat(DESCRIPTION_LEN_MAX + 1), "linha\nnova".to_string()] {
        let mut req = request(&w.alice, vec![leg(None, to_account(&w.bob), 10)], key(1), 1);
        req.description = Some(text);
        assert_transfer_rejected(&mut w.ledger, req, "invalid_input");
    }
}

#[test]
fn a_transfer_by_an_unknown_actor_is_unauthorized() {
    let mut w = world();
    let req = request(&AccountNumber::from_seq(99), vec![leg(None, to_account(&w.bob), 10)], key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "unauthorized");
}

#[test]
fn a_transfer_that_would_push_a_receiver_over_the_balance_limit_is_rejected() {
    let (mut ledger, rich) = ledger_with_rich_account(BALANCE_MAX_CENTS - 5);
    let payer = open(&mut ledger, individual("Paula Pagadora", 2, "paula"));
    deposit(&mut ledger, &payer, 100);
    let req = request(&payer, vec![leg(None, to_account(&rich), 6)], key(1), 1);
    assert_transfer_rejected(&mut ledger, req, "invalid_input");
    let t = run_transfer(&mut ledger, request(&payer, vec![leg(None, to_account(&rich), 5)], key(2), 2));
    assert_eq!(t.status, Status::Completed);
    assert_eq!(balance(&ledger, &rich), (BALANCE_MAX_CENTS, 0));
}
