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

// ----- the limit while registrations are in flight (consortium mode) --------------------------
//
// In a consortium a key registration is a two-phase commit: `claim_key` validates, every bank
// reserves the key (`place_holds`), and the commit records it. Registrations in flight must count
// against the limit, or parallel ones all pass it together (issue 16: 30 parallel registrations
// left an account with 24–28 keys).

fn random_key(n: u128) -> KeyRequest {
    KeyRequest::Random(Uuid::from_u128(0x5000 + n))
}

/// The hold set of a key registration coordinated by this bank, reserving `claim`.
fn reserving(claim: KeyClaim) -> HoldSet {
    HoldSet { coordinator: BANK, keys: vec![claim], ..holding(Vec::new(), Vec::new(), NOW) }
}

/// Claims a random key for `account` and reserves it here, as the bank's loopback does.
fn reserve(ledger: &mut Ledger, account: &AccountNumber, n: u128) -> TransferId {
    let claim = ledger.claim_key(account, random_key(n)).expect("the claim fits the limit");
    let mut changes = Vec::new();
    ledger.place_holds(tx(n), reserving(claim), &mut changes).expect("the reservation fits the limit");
    ledger.assert_invariants();
    tx(n)
}

#[test]
fn keys_reserved_by_registrations_in_flight_count_against_the_limit() {
    let mut w = world();
    let alice = w.alice.clone();
    // Alice has her CPF key; 19 registrations in flight bring her to the limit.
    for n in 1..KEYS_PER_ACCOUNT_MAX as u128 {
        reserve(&mut w.ledger, &alice, n);
    }
    assert_eq!(w.ledger.keys_of(&alice).len(), 1);
    let error = w.ledger.claim_key(&alice, random_key(99)).expect_err("the limit counts reservations");
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    // In the direct mode too, a registration never passes keys still reserved.
    let error = rejected(&mut w.ledger, |l, ch| l.register_key(&alice, random_key(98), ch));
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    // Another account is not affected.
    w.ledger.claim_key(&w.bob, random_key(97)).expect("bob's claim fits");
}

#[test]
fn an_aborted_registration_frees_its_slot_and_a_committed_one_counts_once() {
    let mut w = world();
    let alice = w.alice.clone();
    let first = reserve(&mut w.ledger, &alice, 1);
    for n in 2..KEYS_PER_ACCOUNT_MAX as u128 {
        reserve(&mut w.ledger, &alice, n);
    }
    w.ledger.claim_key(&alice, random_key(99)).expect_err("at the limit");
    let mut changes = Vec::new();
    w.ledger.release_holds(first, &mut changes).expect("aborts");
    w.ledger.claim_key(&alice, random_key(99)).expect("the aborted registration's slot is free again");
    w.ledger.post_holds(tx(2), &mut changes).expect("commits");
    assert_eq!(w.ledger.keys_of(&alice).len(), 2, "the CPF key and the committed one");
    w.ledger.claim_key(&alice, random_key(99)).expect("a committed key is not counted twice");
    reserve(&mut w.ledger, &alice, 99);
    w.ledger.claim_key(&alice, random_key(100)).expect_err("at the limit again");
    w.ledger.assert_invariants();
}

#[test]
fn the_owners_bank_refuses_a_reservation_past_the_limit_even_if_the_claim_was_made_earlier() {
    let mut w = world();
    let alice = w.alice.clone();
    // Claims all made before any reservation: each sees only the CPF key, so each passes.
    let claims: Vec<KeyClaim> = (1..=KEYS_PER_ACCOUNT_MAX as u128)
        .map(|n| w.ledger.claim_key(&alice, random_key(n)).expect("no reservation yet"))
        .collect();
    let mut changes = Vec::new();
    let (fitting, last) = claims.split_at(KEYS_PER_ACCOUNT_MAX - 1);
    for (n, claim) in fitting.iter().enumerate() {
        w.ledger.place_holds(tx(n as u128), reserving(claim.clone()), &mut changes).expect("fits");
    }
    let refusal = w.ledger.place_holds(tx(99), reserving(last[0].clone()), &mut changes).expect_err("past the limit");
    assert_eq!(refusal.code, ErrorCode::Conflict, "{refusal:?}");
    assert_eq!(w.ledger.settlement(&tx(99)), Some(Settlement::Released), "the refusal is remembered");
    // A bank that does not hold the account cannot count its keys: it reserves whatever is free.
    let mut other = Ledger::new(OTHER_BANK);
    for (n, claim) in claims.iter().enumerate() {
        other.place_holds(tx(n as u128), reserving(claim.clone()), &mut changes).expect("not its account");
    }
    w.ledger.assert_invariants();
}
