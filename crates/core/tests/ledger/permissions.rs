//! Who may spend what (API.md).

use crate::support::*;

#[test]
fn an_individual_session_may_spend_a_joint_account_it_holds() {
    let mut w = world();
    deposit(&mut w.ledger, &w.joint, 1_000);
    for (actor, id) in [(w.alice.clone(), 1), (w.carla.clone(), 2)] {
        let t = run_transfer(
            &mut w.ledger,
            request(&actor, vec![leg(Some(&w.joint), to_account(&w.bob), 100)], key(id), id),
        );
        assert_eq!(t.status, Status::Completed);
    }
    assert_eq!(balance(&w.ledger, &w.joint), (800, 0));
    assert_eq!(w.ledger.spendable_by(&w.alice), vec![w.alice.clone(), w.joint.clone()]);
    assert_eq!(w.ledger.spendable_by(&w.carla), vec![w.joint.clone(), w.carla.clone()]);
    // Bob holds no joint account: only his own.
    assert_eq!(w.ledger.spendable_by(&w.bob), vec![w.bob.clone()]);
}

#[test]
fn a_joint_session_may_spend_only_the_joint_account_itself() {
    let mut w = world();
    deposit(&mut w.ledger, &w.joint, 1_000);
    deposit(&mut w.ledger, &w.alice, 1_000);
    let t = run_transfer(&mut w.ledger, request(&w.joint, vec![leg(None, to_account(&w.bob), 100)], key(1), 1));
    assert_eq!(t.status, Status::Completed);
    let t =
        run_transfer(&mut w.ledger, request(&w.joint, vec![leg(Some(&w.joint), to_account(&w.bob), 100)], key(2), 2));
    assert_eq!(t.status, Status::Completed);
    // Not a holder's own account, although the holders' documents hold it.
    let req = request(&w.joint, vec![leg(Some(&w.alice), to_account(&w.bob), 100)], key(3), 3);
    assert_transfer_rejected(&mut w.ledger, req, "forbidden");
    assert_eq!(w.ledger.spendable_by(&w.joint), vec![w.joint.clone()]);
}

#[test]
fn a_company_session_may_spend_only_its_own_account() {
    let mut w = world();
    deposit(&mut w.ledger, &w.acme, 1_000);
    deposit(&mut w.ledger, &w.alice, 1_000);
    let t = run_transfer(&mut w.ledger, request(&w.acme, vec![leg(None, to_account(&w.alice), 100)], key(1), 1));
    assert_eq!(t.status, Status::Completed);
    for source in [w.alice.clone(), w.joint.clone()] {
        let req = request(&w.acme, vec![leg(Some(&source), to_account(&w.bob), 1)], key(2), 2);
        assert_transfer_rejected(&mut w.ledger, req, "forbidden");
    }
    assert_eq!(w.ledger.spendable_by(&w.acme), vec![w.acme.clone()]);
}

#[test]
fn a_session_may_not_spend_another_customers_account() {
    let mut w = world();
    for number in [w.alice.clone(), w.bob.clone(), w.acme.clone(), w.joint.clone(), w.carla.clone()] {
        deposit(&mut w.ledger, &number, 1_000);
    }
    let cases = [
        (w.bob.clone(), w.alice.clone()),
        (w.bob.clone(), w.joint.clone()),
        (w.bob.clone(), w.acme.clone()),
        (w.alice.clone(), w.carla.clone()),
        (w.alice.clone(), w.acme.clone()),
        (w.carla.clone(), w.alice.clone()),
    ];
    for (actor, source) in cases {
        let req = request(&actor, vec![leg(Some(&source), to_account(&w.bob), 1)], key(1), 1);
        assert_transfer_rejected(&mut w.ledger, req, "forbidden");
    }
    // A forbidden leg anywhere rejects the whole transfer, including its allowed legs.
    let legs = vec![leg(None, to_account(&w.carla), 1), leg(Some(&w.bob), to_account(&w.carla), 1)];
    let req = request(&w.alice, legs, key(1), 1);
    assert_transfer_rejected(&mut w.ledger, req, "forbidden");
}
