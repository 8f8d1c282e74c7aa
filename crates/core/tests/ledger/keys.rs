//! Pix keys: registering, conflicts, the per-account limit.

use crate::support::*;

#[test]
fn registering_email_phone_and_random_keys_emits_key_registered() {
    let mut w = world();
    let uuid = Uuid::from_u128(0x1234);
    for (request, expected) in [
        (KeyRequest::Email, PixKey::Email(email("alice"))),
        (KeyRequest::Phone, PixKey::Phone(phone())),
        (KeyRequest::Random(uuid), PixKey::Random(uuid)),
    ] {
        let mut changes = Vec::new();
        let key = w.ledger.register_key(&w.alice, request, &mut changes).expect("registers");
        assert_eq!(key, expected);
        assert_eq!(changes, vec![Change::KeyRegistered { key: expected.clone(), account: w.alice.clone() }]);
        assert_eq!(w.ledger.key_owner(&expected), Some(&w.alice));
    }
    assert_eq!(w.ledger.keys_of(&w.alice).len(), 4);
    w.ledger.assert_invariants();
}

#[test]
fn registering_a_taken_key_is_a_conflict() {
    let mut w = world();
    let uuid = Uuid::from_u128(0x1234);
    let mut changes = Vec::new();
    w.ledger.register_key(&w.alice, KeyRequest::Phone, &mut changes).expect("first phone key");
    w.ledger.register_key(&w.alice, KeyRequest::Random(uuid), &mut changes).expect("random key");
    // Phones need not be unique among accounts, but a phone key names one account only.
    let (alice, bob) = (w.alice.clone(), w.bob.clone());
    for (account, request) in [(&bob, KeyRequest::Phone), (&bob, KeyRequest::Random(uuid)), (&alice, KeyRequest::Phone)]
    {
        let error = rejected(&mut w.ledger, |l, ch| l.register_key(account, request, ch));
        assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    }
}

#[test]
fn registering_a_key_for_an_unknown_account_is_not_found() {
    let mut w = world();
    let error = rejected(&mut w.ledger, |l, ch| l.register_key(&AccountNumber::from_seq(99), KeyRequest::Email, ch));
    assert!(matches!(error, Error::NotFound(_)), "{error:?}");
}

#[test]
fn an_account_has_at_most_the_key_limit() {
    let mut w = world();
    let mut changes = Vec::new();
    // Alice already has her CPF key.
    for i in 1..KEYS_PER_ACCOUNT_MAX {
        w.ledger.register_key(&w.alice, KeyRequest::Random(Uuid::from_u128(i as u128)), &mut changes).expect("fits");
    }
    assert_eq!(w.ledger.keys_of(&w.alice).len(), KEYS_PER_ACCOUNT_MAX);
    let alice = w.alice.clone();
    let error = rejected(&mut w.ledger, |l, ch| l.register_key(&alice, KeyRequest::Random(Uuid::from_u128(999)), ch));
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
}
