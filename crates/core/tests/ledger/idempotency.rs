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

// ----- the bounded cache and its recall from storage ----------------------------------------

mod bounded_cache {
    use bank_core::bank::{Bank, BankConfig, Input, Now, Persist, Recall, Recovered, Reply};
    use bank_core::ring::{RingDurable, Tick};

    use crate::support::*;

    /// Storage as the writer keeps it: every record written by a step so far (also those of the
    /// batch in progress — the writer reads inside its own transaction), and how often it was read.
    #[derive(Default)]
    struct Disk {
        records: Vec<(AccountNumber, IdempotencyKey, IdempotencyRecord)>,
        lookups: usize,
    }

    impl Recall for Disk {
        type Error = std::convert::Infallible;
        fn coordinator_decision(&mut self, _: &TransferId) -> Result<Option<Decision>, Self::Error> {
            Ok(None)
        }
        fn settlement(&mut self, _: &TransferId) -> Result<Option<Settlement>, Self::Error> {
            Ok(None)
        }
        fn idempotency(
            &mut self,
            scope: &AccountNumber,
            key: IdempotencyKey,
        ) -> Result<Option<IdempotencyRecord>, Self::Error> {
            self.lookups += 1;
            Ok(self.records.iter().find(|(s, k, _)| s == scope && *k == key).map(|(_, _, r)| *r))
        }
        fn received_legs(
            &mut self,
            _: &TransferId,
        ) -> Result<Vec<(bank_core::ledger::RefundOf, bank_core::ledger::Refundable)>, Self::Error> {
            Ok(Vec::new())
        }
    }

    fn bank_with_cache(limit: usize) -> (Bank, AccountNumber) {
        let mut w = world();
        deposit(&mut w.ledger, &w.alice, 1_000_000);
        w.ledger.set_idempotency_cache_limit(limit);
        let recovered = Recovered {
            ledger: w.ledger,
            coordinator_records: Vec::new(),
            ring_state: RingDurable::default(),
            queue: Vec::new(),
            open_transfers: Vec::new(),
        };
        let config = BankConfig {
            members: [BANK].into(),
            prepare_expiry_ms: 5_000,
            decision_memory_ms: 60_000,
            decision_memory_max: 65_536,
            gate: None,
        };
        (Bank::recover(config, recovered, now()).expect("recovers"), w.alice)
    }

    fn now() -> Now {
        Now { wall: NOW, tick: Tick(0) }
    }

    /// One step, its idempotency records written to `disk` as the writer does before the next.
    fn deposit_step(
        bank: &mut Bank,
        disk: &mut Disk,
        account: &AccountNumber,
        idem: (IdempotencyKey, Fingerprint),
    ) -> Result<Outcome, Error> {
        let input = Input::Deposit { account: account.clone(), amount: cents(10), method: DepositMethod::Cash, idem };
        let stepped = bank.step(now(), input, disk).expect("infallible");
        for item in stepped.effects.persist {
            if let Persist::Ledger(Change::IdempotencyRecorded { scope, key, record }) = item {
                disk.records.push((scope, key, *record));
            }
        }
        stepped.reply.map(|reply| match reply {
            Reply::Outcome(outcome) => outcome,
            other => panic!("a deposit answered {other:?}"),
        })
    }

    #[test]
    fn a_key_evicted_from_memory_is_read_back_from_storage_and_replays_its_first_outcome() {
        let (mut bank, alice) = bank_with_cache(2);
        let mut disk = Disk::default();
        let first = deposit_step(&mut bank, &mut disk, &alice, (key(1), FP)).expect("applies");
        for n in 2..=5 {
            deposit_step(&mut bank, &mut disk, &alice, (key(n), FP)).expect("applies");
        }
        assert!(!bank.ledger().remembers(&alice, key(1)), "key 1 should have been evicted");
        let posted = bank.ledger().account(&alice).expect("alice").posted_cents;

        let again = deposit_step(&mut bank, &mut disk, &alice, (key(1), FP));
        assert_eq!(again, Ok(Outcome::Replayed(first.reference())));
        assert_eq!(bank.ledger().account(&alice).expect("alice").posted_cents, posted, "the repeat moved money");
        let mismatch = deposit_step(&mut bank, &mut disk, &alice, (key(2), OTHER_FP));
        assert_eq!(mismatch, Err(Error::IdempotencyMismatch));
    }

    #[test]
    fn the_cache_never_holds_more_records_than_its_limit() {
        let (mut bank, alice) = bank_with_cache(3);
        let mut disk = Disk::default();
        for n in 1..=50 {
            deposit_step(&mut bank, &mut disk, &alice, (key(n), FP)).expect("applies");
            assert!(bank.ledger().idempotency_cached() <= 3, "{} records cached", bank.ledger().idempotency_cached());
        }
        assert_eq!(disk.records.len(), 50, "storage keeps every record");
    }

    #[test]
    fn two_requests_with_one_key_in_one_batch_execute_once_even_if_the_first_is_evicted_between_them() {
        // A batch: key 7, then enough other keys to evict it, then key 7 again. The second read
        // finds the batch's own uncommitted record (the writer reads inside its transaction).
        let (mut bank, alice) = bank_with_cache(1);
        let mut disk = Disk::default();
        let first = deposit_step(&mut bank, &mut disk, &alice, (key(7), FP)).expect("applies");
        deposit_step(&mut bank, &mut disk, &alice, (key(8), FP)).expect("applies");
        let lookups = disk.lookups;
        let again = deposit_step(&mut bank, &mut disk, &alice, (key(7), FP));
        assert_eq!(again, Ok(Outcome::Replayed(first.reference())));
        assert_eq!(disk.lookups, lookups + 1, "the evicted key is looked up once");
        let entries = disk.records.iter().filter(|(_, k, _)| *k == key(7)).count();
        assert_eq!(entries, 1, "key 7 recorded twice");
    }

    #[test]
    fn a_key_still_in_memory_is_answered_without_reading_storage() {
        let (mut bank, alice) = bank_with_cache(16);
        let mut disk = Disk::default();
        let first = deposit_step(&mut bank, &mut disk, &alice, (key(1), FP)).expect("applies");
        let lookups = disk.lookups;
        assert_eq!(deposit_step(&mut bank, &mut disk, &alice, (key(1), FP)), Ok(Outcome::Replayed(first.reference())));
        assert_eq!(disk.lookups, lookups, "a cached key was read from storage");
    }
}
