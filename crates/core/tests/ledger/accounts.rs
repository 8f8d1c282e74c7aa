//! Opening accounts: the account, its automatic key, and who may open what.

use crate::support::*;

#[test]
fn opening_an_individual_account_emits_account_opened_and_its_cpf_key() {
    let mut ledger = Ledger::new(BANK);
    let mut changes = Vec::new();
    let opened = ledger.open_account(individual("Alice Souza", 1, "alice"), NOW, &mut changes).expect("opens");

    let number = AccountNumber::from_seq(1);
    let expected = Account {
        number: number.clone(),
        kind: AccountKind::Individual,
        holders: vec![Holder { name: "Alice Souza".into(), document: cpf(1) }],
        email: email("alice"),
        phone: phone(),
        password_hash: "x".into(),
        created_at: NOW,
        posted_cents: 0,
        held_cents: 0,
    };
    let cpf_key = key_of(&cpf(1));
    assert_eq!(opened.account, expected);
    assert_eq!(opened.keys, vec![cpf_key.clone()]);
    assert!(opened.warnings.is_empty());
    assert_eq!(
        changes,
        vec![
            Change::AccountOpened(Box::new(expected.clone())),
            Change::KeyRegistered { key: cpf_key.clone(), account: number.clone() },
        ]
    );
    assert_eq!(ledger.account(&number), Some(&expected));
    assert_eq!(ledger.account_by_email("alice@example.com"), Some(&expected));
    assert_eq!(ledger.key_owner(&cpf_key), Some(&number));
    assert_eq!(ledger.keys_of(&number), std::slice::from_ref(&cpf_key));
    assert_eq!(ledger.spendable_by(&number), vec![number.clone()]);
    assert_eq!(ledger.total_posted_cents(), 0);
    ledger.assert_invariants();
}

#[test]
fn opening_a_company_account_emits_its_cnpj_key() {
    let mut ledger = Ledger::new(BANK);
    let mut changes = Vec::new();
    let opened = ledger.open_account(company("Acme Ltda", 10, "acme"), NOW, &mut changes).expect("opens");
    let cnpj_key = key_of(&cnpj(10));
    assert_eq!(opened.account.kind, AccountKind::Company);
    assert_eq!(opened.keys, vec![cnpj_key.clone()]);
    assert!(opened.warnings.is_empty());
    assert_eq!(
        changes,
        vec![
            Change::AccountOpened(Box::new(opened.account.clone())),
            Change::KeyRegistered { key: cnpj_key.clone(), account: opened.account.number.clone() },
        ]
    );
    assert_eq!(ledger.key_owner(&cnpj_key), Some(&opened.account.number));
}

#[test]
fn opening_a_joint_account_registers_no_automatic_key() {
    let mut ledger = Ledger::new(BANK);
    let mut changes = Vec::new();
    let opened = ledger
        .open_account(joint(&[("Alice Souza", 1), ("Carla Dias", 3)], "casal"), NOW, &mut changes)
        .expect("opens");
    assert_eq!(opened.account.kind, AccountKind::Joint);
    assert!(opened.keys.is_empty());
    assert!(opened.warnings.is_empty());
    assert_eq!(changes, vec![Change::AccountOpened(Box::new(opened.account.clone()))]);
    assert!(ledger.keys_of(&opened.account.number).is_empty());
    assert_eq!(ledger.key_owner(&key_of(&cpf(1))), None);
    assert_eq!(ledger.key_owner(&key_of(&cpf(3))), None);
}

#[test]
fn account_numbers_are_sequential_across_kinds() {
    let w = world();
    let numbers = [&w.alice, &w.bob, &w.acme, &w.joint, &w.carla];
    for (i, number) in numbers.iter().enumerate() {
        assert_eq!(**number, AccountNumber::from_seq(i as u64 + 1));
    }
    assert_eq!(w.ledger.accounts().count(), 5);
}

#[test]
fn a_rejected_opening_does_not_use_up_an_account_number() {
    let mut ledger = Ledger::new(BANK);
    open(&mut ledger, individual("Alice Souza", 1, "alice"));
    rejected(&mut ledger, |l, ch| l.open_account(individual("Alice Again", 1, "alice2"), NOW, ch));
    let next = open(&mut ledger, individual("Bob Lima", 2, "bob"));
    assert_eq!(next, AccountNumber::from_seq(2));
}

#[test]
fn an_individual_account_needs_exactly_one_holder_with_a_cpf() {
    let mut ledger = Ledger::new(BANK);
    let cases = [
        new_account(AccountKind::Individual, &[], "a"),
        new_account(AccountKind::Individual, &[("Acme", cnpj(10))], "b"),
        new_account(AccountKind::Individual, &[("Alice", cpf(1)), ("Bob", cpf(2))], "c"),
    ];
    for new in cases {
        let error = rejected(&mut ledger, |l, ch| l.open_account(new, NOW, ch));
        assert_eq!(error.code(), "invalid_input", "{error:?}");
    }
    assert_eq!(ledger.accounts().count(), 0);
}

#[test]
fn a_company_account_needs_exactly_one_holder_with_a_cnpj() {
    let mut ledger = Ledger::new(BANK);
    let cases = [
        new_account(AccountKind::Company, &[], "a"),
        new_account(AccountKind::Company, &[("Alice", cpf(1))], "b"),
        new_account(AccountKind::Company, &[("Acme", cnpj(10)), ("Beta", cnpj(11))], "c"),
    ];
    for new in cases {
        let error = rejected(&mut ledger, |l, ch| l.open_account(new, NOW, ch));
        assert_eq!(error.code(), "invalid_input", "{error:?}");
    }
}

#[test]
fn a_joint_account_needs_two_to_eight_distinct_cpf_holders() {
    let mut ledger = Ledger::new(BANK);
    let nine: Vec<(&str, u64)> = (1..=9).map(|n| ("Pessoa", n)).collect();
    let cases = [
        new_account(AccountKind::Joint, &[], "a"),
        new_account(AccountKind::Joint, &[("Alice", cpf(1))], "b"),
        new_account(AccountKind::Joint, &[("Alice", cpf(1)), ("Alice de novo", cpf(1))], "c"),
        new_account(AccountKind::Joint, &[("Alice", cpf(1)), ("Acme", cnpj(10))], "d"),
        joint(&nine, "e"),
    ];
    for new in cases {
        let error = rejected(&mut ledger, |l, ch| l.open_account(new, NOW, ch));
        assert_eq!(error.code(), "invalid_input", "{error:?}");
    }
    open(&mut ledger, joint(&[("Alice", 1), ("Bob", 2)], "two"));
    open(&mut ledger, joint(&nine[..8], "eight"));
    // The same pair may open another joint account: only individual/company accounts are unique.
    open(&mut ledger, joint(&[("Alice", 1), ("Bob", 2)], "again"));
}

#[test]
fn a_duplicate_email_is_a_conflict_whatever_the_kind() {
    let mut ledger = Ledger::new(BANK);
    open(&mut ledger, individual("Alice Souza", 1, "alice"));
    for new in [
        individual("Bob Lima", 2, "alice"),
        company("Acme", 10, "alice"),
        joint(&[("Bob", 2), ("Carla", 3)], "alice"),
        // E-mail is case-insensitive: it is stored lower-case.
        NewAccount { email: Email::parse("ALICE@Example.com").expect("valid"), ..individual("Bob Lima", 2, "x") },
    ] {
        let error = rejected(&mut ledger, |l, ch| l.open_account(new, NOW, ch));
        assert_eq!(error.code(), "conflict", "{error:?}");
    }
}

#[test]
fn a_second_individual_account_for_the_same_cpf_is_a_conflict() {
    let mut ledger = Ledger::new(BANK);
    open(&mut ledger, individual("Alice Souza", 1, "alice"));
    let error = rejected(&mut ledger, |l, ch| l.open_account(individual("Alice S.", 1, "alice2"), NOW, ch));
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    // A joint account with the same CPF is still allowed.
    open(&mut ledger, joint(&[("Alice Souza", 1), ("Bob Lima", 2)], "casal"));
}

#[test]
fn a_second_company_account_for_the_same_cnpj_is_a_conflict() {
    let mut ledger = Ledger::new(BANK);
    open(&mut ledger, company("Acme", 10, "acme"));
    let error = rejected(&mut ledger, |l, ch| l.open_account(company("Acme II", 10, "acme2"), NOW, ch));
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    open(&mut ledger, company("Beta", 11, "beta"));
}

#[test]
fn an_individual_whose_cpf_key_is_taken_opens_without_it_and_is_warned() {
    let mut ledger = Ledger::new(BANK);
    let alice = open(&mut ledger, individual("Alice Souza", 1, "alice"));
    // Bob's CPF key already names Alice's account (as storage may hold it).
    let bob_key = key_of(&cpf(2));
    ledger.restore_key(bob_key.clone(), alice.clone());

    let mut changes = Vec::new();
    let opened = ledger.open_account(individual("Bob Lima", 2, "bob"), NOW, &mut changes).expect("still opens");
    assert!(opened.keys.is_empty());
    assert_eq!(opened.warnings.len(), 1);
    assert!(opened.warnings[0].contains(&bob_key.normalized()), "{:?}", opened.warnings);
    assert_eq!(changes, vec![Change::AccountOpened(Box::new(opened.account.clone()))]);
    assert_eq!(ledger.key_owner(&bob_key), Some(&alice));
    assert!(ledger.keys_of(&opened.account.number).is_empty());
    ledger.assert_invariants();
}

#[test]
fn a_company_whose_cnpj_key_is_taken_opens_without_it_and_is_warned() {
    let mut ledger = Ledger::new(BANK);
    let alice = open(&mut ledger, individual("Alice Souza", 1, "alice"));
    ledger.restore_key(key_of(&cnpj(10)), alice.clone());
    let mut changes = Vec::new();
    let opened = ledger.open_account(company("Acme", 10, "acme"), NOW, &mut changes).expect("still opens");
    assert!(opened.keys.is_empty());
    assert_eq!(opened.warnings.len(), 1);
    assert_eq!(changes, vec![Change::AccountOpened(Box::new(opened.account.clone()))]);
    assert_eq!(ledger.key_owner(&key_of(&cnpj(10))), Some(&alice));
}
