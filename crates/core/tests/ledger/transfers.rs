//! Transfers that execute: every change they emit, in order.

use crate::support::*;

#[test]
fn a_transfer_by_key_moves_money_and_emits_every_change_in_order() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000); // entry 1
    let bob_key = key_of(&cpf(2));
    let mut req = request(&w.alice, vec![leg(None, Destination::Key(bob_key.clone()), 300)], key(1), 77);
    req.description = Some("  aluguel  ".into());
    let id = req.transfer_id;
    let mut changes = Vec::new();
    let outcome = w.ledger.transfer(req, &mut changes).expect("executes");

    let to_bob = LegEnd { bank_id: BANK, number: w.bob.clone(), key: Some(bob_key), holder_name: "Bob Lima".into() };
    let legs = vec![TransferLeg {
        from: here(&w.alice),
        from_name: "Alice Souza".into(),
        to: to_bob,
        amount: cents(300),
        status: Status::Completed,
    }];
    let transfer = Transfer { description: Some("aluguel".into()), ..completed_transfer(id, &w.alice, legs) };
    let out = Entry {
        transfer_id: Some(id),
        counterparty: counterparty("Bob Lima", &w.bob),
        ..completed_entry(2, &w.alice, EntryKind::TransferOut, 300)
    };
    let inbound = Entry {
        transfer_id: Some(id),
        counterparty: counterparty("Alice Souza", &w.alice),
        ..completed_entry(3, &w.bob, EntryKind::TransferIn, 300)
    };
    assert_eq!(outcome, Outcome::Transfer(transfer.clone()));
    assert_eq!(
        changes,
        vec![
            balance_now(&w.alice, 700, 0),
            balance_now(&w.bob, 300, 0),
            Change::TransferRecorded(Box::new(transfer.clone())),
            entry_added(&out),
            entry_added(&inbound),
            Change::PixLegRecorded(Box::new(PixLeg {
                transfer_id: id,
                leg: 0,
                from: here(&w.alice),
                from_name: "Alice Souza".into(),
                from_document: cpf(1).masked(),
                to: transfer.legs[0].to.clone(),
                to_document: cpf(2).masked(),
                amount: cents(300),
                created_at: NOW,
                refund_of: None,
            })),
            remembered(&w.alice, key(1), OutcomeRef::Transfer(transfer.id)),
        ]
    );
    assert_eq!(balance(&w.ledger, &w.alice), (700, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (300, 0));
    assert_eq!(w.ledger.total_posted_cents(), 1_000);
    w.ledger.assert_invariants();
}

#[test]
fn a_transfer_by_account_number_has_no_key_on_its_leg() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let t = run_transfer(&mut w.ledger, request(&w.alice, vec![leg(None, to_account(&w.acme), 250)], key(1), 1));
    assert_eq!(t.legs[0].to.key, None);
    assert_eq!(t.legs[0].to.holder_name, "Acme Ltda");
    assert_eq!(t.description, None);
    assert_eq!(balance(&w.ledger, &w.acme), (250, 0));
}

#[test]
fn a_blank_description_is_dropped() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    let mut req = request(&w.alice, vec![leg(None, to_account(&w.bob), 1)], key(1), 1);
    req.description = Some("   ".into());
    assert_eq!(run_transfer(&mut w.ledger, req).description, None);
}

#[test]
fn a_multi_leg_transfer_posts_every_leg_atomically() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 1_000);
    deposit(&mut w.ledger, &w.joint, 500);
    // Alice's session spends her own account and the joint account she holds, in one transfer.
    let legs = vec![
        leg(None, to_account(&w.bob), 100),
        leg(Some(&w.joint), Destination::Key(key_of(&cnpj(10))), 200),
        leg(Some(&w.alice), to_account(&w.carla), 300),
        leg(Some(&w.joint), to_account(&w.alice), 300),
    ];
    let mut changes = Vec::new();
    let t = transfer_of(w.ledger.transfer(request(&w.alice, legs, key(1), 1), &mut changes).expect("executes"));
    assert_eq!(t.status, Status::Completed);
    assert!(t.legs.iter().all(|l| l.status == Status::Completed));
    assert_eq!(t.legs[1].from_name, "Alice Souza e Carla Dias");
    assert_eq!(balance(&w.ledger, &w.alice), (1_000 - 100 - 300 + 300, 0));
    assert_eq!(balance(&w.ledger, &w.bob), (100, 0));
    assert_eq!(balance(&w.ledger, &w.acme), (200, 0));
    assert_eq!(balance(&w.ledger, &w.carla), (300, 0));
    assert_eq!(balance(&w.ledger, &w.joint), (0, 0));
    assert_eq!(w.ledger.total_posted_cents(), 1_500);
    // One Balance per touched account (sorted), one transfer, two entries per leg, one record.
    let balances: Vec<&AccountNumber> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Balance { account, .. } => Some(account),
            _ => None,
        })
        .collect();
    assert_eq!(balances, vec![&w.alice, &w.bob, &w.acme, &w.joint, &w.carla]);
    let entries = changes.iter().filter(|c| matches!(c, Change::EntryAdded(_))).count();
    assert_eq!(entries, 8);
    assert_eq!(changes.iter().filter(|c| matches!(c, Change::TransferRecorded(_))).count(), 1);
    assert!(matches!(changes.last(), Some(Change::IdempotencyRecorded { .. })));
    w.ledger.assert_invariants();
}

#[test]
fn a_transfer_may_have_sixteen_legs() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 10_000);
    let legs = (0..LEGS_MAX).map(|_| leg(None, to_account(&w.bob), 10)).collect();
    let t = run_transfer(&mut w.ledger, request(&w.alice, legs, key(1), 1));
    assert_eq!(t.status, Status::Completed);
    assert_eq!(balance(&w.ledger, &w.bob), (160, 0));
}

#[test]
fn a_description_may_have_the_maximum_length_in_characters() {
    let mut w = world();
    deposit(&mut w.ledger, &w.alice, 10_000);
    let mut req = request(&w.alice, vec![leg(None, to_account(&w.bob), 10)], key(1), 1);
    let text = "é".repeat(DESCRIPTION_LEN_MAX);
    req.description = Some(text.clone());
    assert_eq!(run_transfer(&mut w.ledger, req).description, Some(text));
}
