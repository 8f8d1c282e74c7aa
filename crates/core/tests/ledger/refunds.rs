//! Refunds (devoluções): the receiver of a Pix leg sends (part of) it back to the payer, and the
//! sum of a leg's completed refunds never exceeds its amount — also when refunds race.

use crate::support::*;

const PAYER_NUMBER: u64 = 7;

fn refund(actor: &AccountNumber, original: TransferId, amount_cents: i64, key_n: u128, id: u128) -> RefundRequest {
    RefundRequest {
        idempotency_key: key(key_n),
        fingerprint: FP,
        actor: actor.clone(),
        original,
        leg: None,
        amount: cents(amount_cents),
        reason: Some("wrong amount".into()),
        transfer_id: tx(id),
        now: NOW,
    }
}

fn plan(ledger: &mut Ledger, request: RefundRequest) -> Result<Plan, Error> {
    let members: BTreeSet<BankId> = [BANK, OTHER_BANK].into();
    let mut changes = Vec::new();
    let plan = ledger.plan_refund(request, &members, &mut changes);
    ledger.assert_invariants();
    plan
}

/// Bob (here) receives `amount_cents` from an account at the other bank, as transaction `id`.
fn received_from_other_bank(w: &mut World, id: u128, amount_cents: i64) -> TransferId {
    let tx = tx(id);
    let payer = AccountRef { bank_id: OTHER_BANK, number: AccountNumber::from_seq(PAYER_NUMBER) };
    let to = LegEnd { bank_id: BANK, number: w.bob.clone(), key: None, holder_name: "Bob Lima".into() };
    let pix = PixLeg {
        transfer_id: tx,
        leg: 0,
        from: payer,
        from_name: "Bruno Lima".into(),
        from_document: cpf(9).masked(),
        to,
        to_document: cpf(2).masked(),
        amount: cents(amount_cents),
        created_at: NOW,
        refund_of: None,
    };
    let set = HoldSet { pix: vec![pix], ..holding(vec![], vec![(w.bob.clone(), cents(amount_cents))], NOW) };
    let mut changes = Vec::new();
    w.ledger.place_holds(tx, set, &mut changes).expect("a credit holds");
    w.ledger.post_holds(tx, &mut changes).expect("posts");
    w.ledger.assert_invariants();
    tx
}

#[test]
fn an_in_bank_pix_is_refunded_in_parts_up_to_its_amount_and_no_further() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let original =
        run_transfer(&mut w.ledger, request(&w.alice, vec![leg(None, to_account(&w.bob), 1_000)], key(1), 1));
    let first = plan(&mut w.ledger, refund(&w.bob, original.id, 600, 2, 2)).expect("refunds 600");
    let Plan::Done(Outcome::Transfer(first)) = first else { panic!("an in-bank refund is done at once: {first:?}") };
    assert_eq!(first.status, Status::Completed);
    assert_eq!(first.refund_of, Some(RefundOf { transfer_id: original.id, leg: 0 }));
    assert_eq!(balance(&w.ledger, &w.alice), (600, 0));

    let too_much =
        rejected(&mut w.ledger, |l, ch| l.plan_refund(refund(&w.bob, original.id, 600, 3, 3), &[BANK].into(), ch));
    assert_eq!(too_much.code(), "refund_exceeds_amount", "{too_much:?}");
    plan(&mut w.ledger, refund(&w.bob, original.id, 400, 4, 4)).expect("refunds the rest");
    let done = rejected(&mut w.ledger, |l, ch| l.plan_refund(refund(&w.bob, original.id, 1, 5, 5), &[BANK].into(), ch));
    assert_eq!(done.code(), "not_refundable", "{done:?}");
    let leg = w.ledger.refundable(&RefundOf { transfer_id: original.id, leg: 0 }).expect("kept");
    assert_eq!((leg.refunded_cents, leg.reserved_cents), (1_000, 0));
    assert_eq!(balance(&w.ledger, &w.alice), (1_000, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (0, 0));
}

#[test]
fn ten_racing_refunds_of_sixty_percent_reserve_one_and_refuse_nine() {
    let mut w = world();
    let original = received_from_other_bank(&mut w, 1, 1_000);
    let mut begun = Vec::new();
    for i in 0..10u128 {
        match plan(&mut w.ledger, refund(&w.bob, original, 600, 10 + i, 10 + i)) {
            Ok(Plan::CrossBank { transfer, .. }) => begun.push(transfer.id),
            Ok(other) => panic!("a cross-bank refund is planned for the coordinator: {other:?}"),
            Err(e) => assert_eq!(e.code(), "refund_exceeds_amount", "{e:?}"),
        }
    }
    assert_eq!(begun.len(), 1, "only one 60 % refund fits in the amount");
    let of = RefundOf { transfer_id: original, leg: 0 };
    assert_eq!(w.ledger.refundable(&of).map(|r| (r.refunded_cents, r.reserved_cents)), Some((0, 600)));
    assert_eq!(balance(&w.ledger, &w.bob), (1_000, 0), "nothing moves before the refund's holds");

    // The refund fails (its reservation is released), so another may take its place.
    let mut changes = Vec::new();
    w.ledger.close_refund(begun[0], Status::Failed, &mut changes);
    assert!(changes.contains(&Change::RefundClosed { refund: begun[0] }), "{changes:?}");
    let Ok(Plan::CrossBank { transfer, .. }) = plan(&mut w.ledger, refund(&w.bob, original, 600, 30, 30)) else {
        panic!("a released reservation frees the amount")
    };
    w.ledger.close_refund(transfer.id, Status::Completed, &mut changes);
    assert_eq!(w.ledger.refundable(&of).map(|r| (r.refunded_cents, r.reserved_cents)), Some((600, 0)));
    let over = plan(&mut w.ledger, refund(&w.bob, original, 600, 31, 31)).expect_err("only 400 left");
    assert_eq!(over, Error::RefundExceedsAmount { remaining_cents: 400, requested_cents: 600 });
    w.ledger.assert_invariants();
}

#[test]
fn a_repeated_refund_request_answers_its_first_outcome_and_reserves_nothing_more() {
    let mut w = world();
    let original = received_from_other_bank(&mut w, 1, 1_000);
    let Ok(Plan::CrossBank { transfer, .. }) = plan(&mut w.ledger, refund(&w.bob, original, 300, 2, 2)) else {
        panic!("planned")
    };
    let repeat = unchanged(&mut w.ledger, |l, ch| {
        l.plan_refund(refund(&w.bob, original, 300, 2, 3), &[BANK, OTHER_BANK].into(), ch)
    });
    assert_eq!(repeat, Ok(Plan::Done(Outcome::Replayed(OutcomeRef::Transfer(transfer.id)))));
}

#[test]
fn only_the_receiver_may_refund_within_ninety_days() {
    let mut w = world();
    let original = received_from_other_bank(&mut w, 1, 1_000);
    let members: BTreeSet<BankId> = [BANK, OTHER_BANK].into();
    let by_alice = rejected(&mut w.ledger, |l, ch| l.plan_refund(refund(&w.alice, original, 100, 2, 2), &members, ch));
    assert_eq!(by_alice.code(), "not_refundable");
    let unknown = rejected(&mut w.ledger, |l, ch| l.plan_refund(refund(&w.bob, tx(99), 100, 3, 3), &members, ch));
    assert_eq!(unknown.code(), "not_refundable");
    let mut late = refund(&w.bob, original, 100, 4, 4);
    late.now = TimestampMs(NOW.0 + REFUND_WINDOW_MS + 1);
    let late = rejected(&mut w.ledger, |l, ch| l.plan_refund(late, &members, ch));
    assert_eq!(late.code(), "not_refundable");
}

#[test]
fn a_received_cross_bank_pix_reads_in_customer_words_with_a_refund_kind_for_refunds() {
    let mut w = world();
    w.ledger.set_bank_names([(BANK, "Eleven".to_string()), (OTHER_BANK, "Automobili".to_string())]);
    let original = received_from_other_bank(&mut w, 1, 1_000);
    let Ok(Plan::CrossBank { transfer, legs }) = plan(&mut w.ledger, refund(&w.bob, original, 250, 2, 2)) else {
        panic!("planned")
    };
    assert_eq!(transfer.legs[0].to.holder_name, "Bruno Lima", "the refund names the original payer");
    let pix = &legs[&OTHER_BANK].pix[0];
    assert_eq!(pix.refund_of, Some(RefundOf { transfer_id: original, leg: 0 }));
    assert_eq!(pix.to_document, cpf(9).masked());
    // The refund's own holds, as the loopback participant places and posts them here.
    let set = HoldSet { pix: legs[&BANK].pix.clone(), ..holding(vec![(w.bob.clone(), cents(250))], vec![], NOW) };
    let mut changes = Vec::new();
    w.ledger.place_holds(transfer.id, set, &mut changes).expect("holds");
    w.ledger.post_holds(transfer.id, &mut changes).expect("posts");
    let line = changes
        .iter()
        .find_map(|c| match c {
            Change::EntryAdded(e) => Some(e.clone()),
            _ => None,
        })
        .expect("a line");
    assert_eq!(line.kind, EntryKind::RefundOut);
    assert_eq!(line.refund_of, Some(original));
    assert_eq!(line.counterparty.as_deref(), Some("Bruno Lima · Automobili"));
}

/// The tick forgets legs past the refund window without walking the recent ones, and keeps an
/// old leg that another bank's clock says arrived recently, or that has a refund in flight.
#[test]
fn forgetting_old_legs_keeps_recent_late_and_reserved_ones() {
    let (mut ledger, bob) = ledger_with_rich_account(0);
    let leg = |received_ms: i64, reserved_cents: i64| received_leg(&bob, received_ms, reserved_cents);
    let at = |ms: i64, leg: u16| RefundOf { transfer_id: TransferId::first_at(ms), leg };
    ledger.restore_refundable(at(1_000, 0), leg(1_000, 0)); // old: forgotten
    ledger.restore_refundable(at(1_000, 1), leg(1_000, 0)); // old: forgotten
    ledger.restore_refundable(at(2_000, 0), leg(2_000, 400)); // old, refund in flight: kept
    ledger.restore_refundable(at(3_000, 0), leg(6_000, 0)); // made before, received after: kept
    ledger.restore_refundable(at(7_000, 0), leg(7_000, 0)); // recent: kept
    assert_eq!(ledger.forget_refundable(TimestampMs(5_000), usize::MAX), 2);
    let kept: Vec<RefundOf> = ledger.refundable_iter().map(|(of, _)| *of).collect();
    assert_eq!(kept, vec![at(2_000, 0), at(3_000, 0), at(7_000, 0)]);
    assert_eq!(ledger.forget_refundable(TimestampMs(5_000), usize::MAX), 0, "nothing twice");
}

/// However busy the window, memory keeps at most the newest `max` legs: the oldest ones with
/// nothing in flight go first (a refund reads them back), and a leg with a refund in flight stays
/// whatever its age or number.
#[test]
fn a_busy_window_keeps_at_most_the_newest_legs_and_every_reserved_one() {
    let (mut ledger, bob) = ledger_with_rich_account(0);
    let leg = |reserved_cents: i64| received_leg(&bob, 9_000, reserved_cents);
    let at = |ms: i64| RefundOf { transfer_id: TransferId::first_at(ms), leg: 0 };
    ledger.restore_refundable(at(1_000), leg(300)); // oldest, refund in flight: kept
    for ms in [2_000, 3_000, 4_000, 5_000] {
        ledger.restore_refundable(at(ms), leg(0));
    }
    assert_eq!(ledger.forget_refundable(TimestampMs(0), 3), 2, "5 legs, at most 3");
    let kept: Vec<RefundOf> = ledger.refundable_iter().map(|(of, _)| *of).collect();
    assert_eq!(kept, vec![at(1_000), at(4_000), at(5_000)]);
    assert_eq!(ledger.refundable_remembered(), 3);
    assert_eq!(ledger.forget_refundable(TimestampMs(0), 0), 2, "only the reserved one stays");
    let kept: Vec<RefundOf> = ledger.refundable_iter().map(|(of, _)| *of).collect();
    assert_eq!(kept, vec![at(1_000)]);
}

/// A leg of R$ 10,00 from Ana at the other bank, received by `receiver` at `received_ms`, with
/// `reserved_cents` held by refunds in flight.
fn received_leg(receiver: &AccountNumber, received_ms: i64, reserved_cents: i64) -> bank_core::ledger::Refundable {
    bank_core::ledger::Refundable {
        receiver: receiver.clone(),
        payer: AccountRef { bank_id: OTHER_BANK, number: AccountNumber::from_seq(PAYER_NUMBER) },
        payer_name: "Ana".into(),
        payer_document: String::new(),
        amount: cents(1_000),
        refunded_cents: 0,
        reserved_cents,
        received_at: TimestampMs(received_ms),
    }
}
