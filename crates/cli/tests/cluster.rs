//! Cluster tests: cross-bank packets (two-phase commit with holds, DESIGN.md §4) between real
//! `bank node` processes on 127.0.0.1, with crashes at exact protocol steps (failpoints), killed
//! and frozen banks, concurrent coordinators and forged inter-bank requests. After each scenario
//! the consortium-wide invariants of DESIGN.md §8 are checked ([`processes::Cluster::assert_invariants`]).
//!
//! Each test runs its own consortium (its own temporary directory and ports), so tests are
//! independent and may run in parallel. The scenarios, numbered as in the tests' comments:
//!
//! 1. a packet from banks 1, 2, 3 to bank 4 commits every leg;
//! 2. a packet with one leg short of funds moves nothing and releases every hold;
//! 3. two coordinators over-spending one account at once: exactly one completes;
//! 4. a burst of 60 concurrent random packets between three banks, then a drain to zero;
//! 5. a participant crashes after voting yes (failpoint `participant_voted_yes`);
//! 6. the coordinator crashes after deciding commit (failpoint `coordinator_decided_commit`);
//! 7. the coordinator crashes before deciding (failpoint `coordinator_prepared`);
//! 8. an uninvolved bank is down; a packet touching it fails fast;
//! 9. forged inter-bank requests are refused and change nothing;
//! 10. the coordinator shows a customer their packet even when no leg touches it;
//! 11. a participant frozen (SIGSTOP) during prepare;
//! 12. a bank SIGKILLed in the middle of a stream of concurrent packets;
//! 13. a failed packet shows as failed in the statement at the coordinator.
//!
//! `CLUSTER_SEED=<n>` replays the random choices of 4 and 12 (each prints its seed).

use std::time::{Duration, Instant};

use bank_core::ids::BankId;
use bank_node::consortium::{SigningKey, generate_signing_key};
use bank_testkit::http::{Body, Call};
use bank_testkit::processes::{self, Book, Cluster, Request, failure_code, leg, settled, status};
use bank_testkit::signer::{OPERATOR, SignedHeaders, sign_at, sign_now, unix_now_ms};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// The `bank` binary under test.
const BANK: &str = env!("CARGO_BIN_EXE_bank");

/// 1. A packet debiting the customer's accounts at banks 1, 2 and 3 and crediting bank 4 commits
/// every leg: each balance moves exactly, nothing stays held, the transfer reads completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_from_three_banks_to_a_fourth_commits_every_leg() {
    let c = Cluster::start(BANK, 4).await;
    let ana = c.customer(1, "Ana Souza", &[1, 2, 3]).await;
    let bia = c.customer(2, "Bia Lima", &[4]).await;
    let mut book = Book::default();
    book.track_all(&ana);
    book.track_all(&bia);
    c.deposit(&mut book, ana.at(1), 10_000).await;
    c.deposit(&mut book, ana.at(2), 5_000).await;
    c.deposit(&mut book, ana.at(3), 3_000).await;

    let to = bia.at(4);
    let legs = [leg(ana.at(1), to, 1_000), leg(ana.at(2), to, 2_000), leg(ana.at(3), to, 3_000)];
    let t = c.transfer(ana.at(1), &legs).await;
    assert_eq!(status(&t), "completed", "{t}");
    let leg_statuses: Vec<&str> = t["legs"].as_array().expect("legs").iter().map(status).collect();
    assert_eq!(leg_statuses, ["completed"; 3], "{t}");
    book.apply(&t);

    // `completed` means every leg is posted at every bank now: no polling needed.
    assert_eq!(c.balance(ana.at(1)).await, settled(9_000));
    assert_eq!(c.balance(ana.at(2)).await, settled(3_000));
    assert_eq!(c.balance(ana.at(3)).await, settled(0));
    assert_eq!(c.balance(bia.at(4)).await, settled(6_000));
    let id = t["id"].as_str().expect("id");
    let (code, again) = c.get_transfer(ana.at(1), id).await;
    assert_eq!((code, status(&again)), (200, "completed"), "{again}");
    // Each bank's statement shows its own lines of the packet, completed.
    for (account, kind, amounts) in [
        (ana.at(1), "transfer_out", vec![1_000]),
        (ana.at(2), "transfer_out", vec![2_000]),
        (ana.at(3), "transfer_out", vec![3_000]),
        (to, "transfer_in", vec![1_000, 2_000, 3_000]),
    ] {
        let lines = c.statement(account).await;
        let mut seen: Vec<i64> = lines
            .iter()
            .filter(|l| l["transfer_id"] == id)
            .inspect(|l| assert_eq!((l["kind"].as_str(), status(l)), (Some(kind), "completed"), "{l}"))
            .map(|l| l["amount_cents"].as_i64().expect("amount_cents"))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, amounts, "bank {}'s statement lines of the packet: {lines:?}", account.bank);
    }
    c.assert_invariants(&book).await;
}

/// 2. One leg of a packet is short of funds: the packet fails with `insufficient_funds`, nothing
/// moves, and every hold the other legs placed is released (held back to 0 at every bank).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_with_one_leg_short_of_funds_moves_nothing_and_releases_every_hold() {
    let c = Cluster::start(BANK, 4).await;
    let ana = c.customer(1, "Ana Souza", &[1, 2, 3]).await;
    let bia = c.customer(2, "Bia Lima", &[4]).await;
    let mut book = Book::default();
    book.track_all(&ana);
    book.track_all(&bia);
    c.deposit(&mut book, ana.at(1), 10_000).await;
    c.deposit(&mut book, ana.at(2), 5_000).await;
    c.deposit(&mut book, ana.at(3), 2_999).await;

    let to = bia.at(4);
    let legs = [leg(ana.at(1), to, 1_000), leg(ana.at(2), to, 2_000), leg(ana.at(3), to, 3_000)];
    let t = c.transfer(ana.at(1), &legs).await;
    assert_eq!(status(&t), "failed", "{t}");
    assert_eq!(failure_code(&t), "insufficient_funds", "{t}");
    book.apply(&t);
    // The aborts may still be on their way to the banks that placed holds.
    c.wait_balances(
        "after the failed packet",
        &[(ana.at(1), settled(10_000)), (ana.at(2), settled(5_000)), (ana.at(3), settled(2_999)), (to, settled(0))],
    )
    .await;
    let (code, again) = c.get_transfer(ana.at(1), t["id"].as_str().expect("id")).await;
    assert_eq!((code, status(&again)), (200, "failed"), "{again}");
    c.assert_invariants(&book).await;
}

/// 3. Two coordinators spend the same account at once: the customer's account at bank 3 holds
/// 1,000; from sessions at banks 1 and 2, each sends 800 out of it at the same moment. Exactly
/// one completes, the other fails with `insufficient_funds`, nothing goes negative. Three rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_coordinators_overspending_one_account_at_once_let_exactly_one_through() {
    let c = Cluster::start(BANK, 3).await;
    let ana = c.customer(1, "Ana Souza", &[1, 2, 3]).await;
    let bia = c.customer(2, "Bia Lima", &[1]).await;
    let caio = c.customer(3, "Caio Reis", &[2]).await;
    let mut book = Book::default();
    for customer in [&ana, &bia, &caio] {
        book.track_all(customer);
    }
    let source = ana.at(3);
    for round in 1..=3 {
        let top_up = 1_000 - c.balance(source).await.posted;
        c.deposit(&mut book, source, top_up).await;
        assert_eq!(c.balance(source).await, settled(1_000));
        let (to_bia, to_caio) = ([leg(source, bia.at(1), 800)], [leg(source, caio.at(2), 800)]);
        let (one, two) = tokio::join!(c.transfer(ana.at(1), &to_bia), c.transfer(ana.at(2), &to_caio));
        let one = c.finish(ana.at(1), one).await;
        let two = c.finish(ana.at(2), two).await;
        let mut outcomes = [(status(&one), failure_code(&one)), (status(&two), failure_code(&two))];
        outcomes.sort_unstable();
        assert_eq!(
            outcomes,
            [("completed", "<no failure code>"), ("failed", "insufficient_funds")],
            "round {round}: exactly one of the two completes:\n{one}\n{two}"
        );
        book.apply(&one);
        book.apply(&two);
        c.wait_balances("after the race", &[(source, settled(200))]).await;
    }
    c.assert_invariants(&book).await;
}

/// 4. A burst of 60 concurrent packets with random legs in every direction between three banks
/// (three customers, each with an account at every bank, coordinated at random banks) ends with
/// exactly the balances the answers imply; then one concurrent payment per account, sized to its
/// balance, drains every account to exactly zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_packets_ends_with_exact_balances_and_drains_to_zero() {
    const PACKETS: usize = 60;
    let seed: u64 = std::env::var("CLUSTER_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("seed {seed} (rerun with CLUSTER_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    let c = Cluster::start(BANK, 3).await;
    let mut customers = Vec::new();
    for (cpf, name) in [(11, "Ana Souza"), (12, "Bia Lima"), (13, "Caio Reis")] {
        customers.push(c.customer(cpf, name, &[1, 2, 3]).await);
    }
    let sink = c.customer(14, "Dora Sink", &[2]).await;
    let mut book = Book::default();
    book.track_all(&sink);
    for customer in &customers {
        book.track_all(customer);
        for account in customer.accounts.values() {
            c.deposit(&mut book, account, 30_000).await;
        }
    }

    // Random packets: the coordinator is one of the customer's banks, each leg spends one of the
    // customer's accounts (any bank) towards another customer's account (any bank).
    let mut packets = Vec::new();
    for _ in 0..PACKETS {
        let who = rng.random_range(0..customers.len());
        let session = customers[who].at(rng.random_range(1..=3u32)).clone();
        let legs: Vec<Value> = (0..rng.random_range(1..=3))
            .map(|_| {
                let from = customers[who].at(rng.random_range(1..=3u32));
                let other = (who + rng.random_range(1..customers.len())) % customers.len();
                let to = customers[other].at(rng.random_range(1..=3u32));
                leg(from, to, rng.random_range(500..=6_000))
            })
            .collect();
        packets.push((session, legs));
    }
    let packets: Vec<Request> = packets.into_iter().map(|(session, legs)| Request::new(&session, legs)).collect();
    let started = Instant::now();
    let answers = futures::future::join_all(packets.iter().map(|r| c.send(r))).await;
    println!("{PACKETS} packets answered in {:?}", started.elapsed());
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    for (request, answer) in packets.iter().zip(answers) {
        let (code, answer) = answer.expect("every bank answers");
        assert_eq!(code, 201, "{answer}");
        *tally.entry(format!("answered {}", status(&answer))).or_default() += 1;
        let done = c.finish_request(request, answer).await;
        let outcome = match status(&done) {
            "completed" => "completed".to_string(),
            "failed" => format!("failed {}", failure_code(&done)),
            other => panic!("a transfer ends completed or failed, not {other}: {done}"),
        };
        *tally.entry(outcome).or_default() += 1;
        book.apply(&done);
    }
    println!("outcomes: {tally:?}");
    assert!(tally.get("completed").copied().unwrap_or(0) > 0, "some packets complete: {tally:?}");
    let unexpected: Vec<&String> =
        tally.keys().filter(|k| k.starts_with("failed") && *k != "failed insufficient_funds").collect();
    assert!(unexpected.is_empty(), "packets may only fail for lack of money here: {tally:?}");
    c.assert_invariants(&book).await;

    // Drain: every account pays exactly its balance to the sink, all at once, each from a
    // session at a random bank of its owner.
    let mut drains = Vec::new();
    for customer in &customers {
        for account in customer.accounts.values() {
            let cents = book.expected(account);
            if cents > 0 {
                let session = customer.at(rng.random_range(1..=3u32)).clone();
                drains.push((session, vec![leg(account, sink.at(2), cents)]));
            }
        }
    }
    let drains: Vec<Request> = drains.into_iter().map(|(session, legs)| Request::new(&session, legs)).collect();
    let answers = futures::future::join_all(drains.iter().map(|r| c.send(r))).await;
    for (request, answer) in drains.iter().zip(answers) {
        let (code, answer) = answer.expect("every bank answers");
        assert_eq!(code, 201, "{answer}");
        let done = c.finish_request(request, answer).await;
        assert_eq!(status(&done), "completed", "a payment of exactly the balance completes: {done}");
        book.apply(&done);
    }
    for customer in &customers {
        for account in customer.accounts.values() {
            assert_eq!(book.expected(account), 0);
            assert_eq!(c.balance(account).await, settled(0), "bank {} account {}", account.bank, account.number);
        }
    }
    assert_eq!(c.balance(sink.at(2)).await, settled(book.deposits), "the sink has every centavo");
    c.assert_invariants(&book).await;
}

/// 5. A participant is killed (process abort) right after its yes vote's holds are durable, before
/// the vote leaves. The customer's answer is `failed` or `pending`. Restarted while the
/// coordinator is frozen (so it cannot learn the outcome yet), the participant still holds the
/// money; once the coordinator runs again, the transaction ends the same way at every bank.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_killed_after_voting_yes_keeps_its_holds_and_ends_like_everyone_else() {
    let c = Cluster::start(BANK, 3).await;
    let (ana, bia, mut book) = c.ana_and_bia([10_000, 5_000]).await;
    c.restart(2, Some("participant_voted_yes")).await;

    let legs = [leg(ana.at(1), bia.at(3), 1_000), leg(ana.at(2), bia.at(3), 2_000)];
    let key = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let answer = c.try_transfer(ana.at(1), &key, &legs).await;
    let elapsed = started.elapsed();
    let (code, t) = answer.expect("the coordinator (bank 1) answers");
    assert_eq!(code, 201, "{t}");
    assert!(matches!(status(&t), "failed" | "pending"), "answer after the participant's crash: {t}");
    println!("customer's answer after {elapsed:?}: {t}");
    c.wait_crash(2, Duration::from_secs(10)).await;
    let id = t["id"].as_str().expect("id").to_string();

    // Freeze the coordinator so the restarted participant cannot learn the outcome yet.
    c.freeze(1);
    c.spawn(2, None);
    c.wait_healthy(2).await;
    assert_eq!(
        c.balance(ana.at(2)).await,
        processes::Balance { posted: 5_000, held: 2_000, available: 3_000 },
        "bank 2's holds survived its crash and restart"
    );
    assert_eq!(
        c.held_transactions(2).await,
        std::slice::from_ref(&id),
        "bank 2 holds money for exactly this transaction"
    );
    c.thaw(1);

    // One outcome everywhere: all legs or none, nothing held.
    let deadline = Instant::now() + processes::SETTLE;
    let outcome = loop {
        let seen = (c.balance(ana.at(1)).await, c.balance(ana.at(2)).await, c.balance(bia.at(3)).await);
        if seen == (settled(10_000), settled(5_000), settled(0)) {
            break "failed";
        }
        if seen == (settled(9_000), settled(3_000), settled(3_000)) {
            break "completed";
        }
        assert!(Instant::now() < deadline, "no single outcome after the restart: {seen:?}\n{}", c.all_logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let done = c.finish(ana.at(1), t.clone()).await;
    assert_eq!(status(&done), outcome, "the coordinator's record agrees with the balances: {done}");
    // Replaying the request answers the same transfer and moves nothing more.
    let (code, replay) = c.try_transfer(ana.at(1), &key, &legs).await.expect("replay");
    assert_eq!((code, replay["id"].as_str(), status(&replay)), (201, Some(id.as_str()), outcome), "{replay}");
    book.apply(&done);
    c.assert_invariants(&book).await;
}

/// 6. The coordinator is killed right after its commit decision is durable, before any commit is
/// sent. Meanwhile the participants keep the money held (in doubt). Restarted, the coordinator
/// finishes delivery: every leg is posted exactly once (its own local leg too), nothing twice,
/// and the transfer reads `completed` at the coordinator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_after_deciding_commit_delivers_it_after_restart() {
    let c = Cluster::start(BANK, 3).await;
    let (ana, bia, mut book) = c.ana_and_bia([10_000, 5_000]).await;
    c.restart(1, Some("coordinator_decided_commit")).await;

    let legs = [leg(ana.at(1), bia.at(3), 1_000), leg(ana.at(2), bia.at(3), 2_000)];
    let key = uuid::Uuid::new_v4().to_string();
    let answer = c.try_transfer(ana.at(1), &key, &legs).await;
    assert!(!matches!(&answer, Ok((_, t)) if status(t) == "completed"), "no completion before delivery: {answer:?}");
    c.wait_crash(1, Duration::from_secs(10)).await;

    // In doubt: bank 2 voted yes and waits for the coordinator, money held, nothing posted.
    assert_eq!(c.balance(ana.at(2)).await, processes::Balance { posted: 5_000, held: 2_000, available: 3_000 });
    assert_eq!(c.balance(bia.at(3)).await, settled(0), "a pending credit is not money yet");

    c.spawn(1, None);
    c.wait_healthy(1).await;
    c.wait_balances(
        "after the coordinator's restart",
        &[(ana.at(1), settled(9_000)), (ana.at(2), settled(3_000)), (bia.at(3), settled(3_000))],
    )
    .await;
    // The customer retries with the same key: the same transfer, completed; nothing moves again.
    let (code, replay) = c.try_transfer(ana.at(1), &key, &legs).await.expect("replay");
    assert_eq!(code, 201, "{replay}");
    let done = c.finish(ana.at(1), replay).await;
    assert_eq!(status(&done), "completed", "{done}");
    let (code, again) = c.get_transfer(ana.at(1), done["id"].as_str().expect("id")).await;
    assert_eq!((code, status(&again)), (200, "completed"), "{again}");
    let (_, replay) = c.try_transfer(ana.at(1), &key, &legs).await.expect("second replay");
    assert_eq!((replay["id"].clone(), status(&replay)), (done["id"].clone(), "completed"), "{replay}");
    book.apply(&done);
    c.assert_invariants(&book).await;
}

/// 7. The coordinator is killed after recording the transaction as preparing, before any prepare
/// leaves. Restarted, it aborts it (presumed abort): the transfer reads `failed`, nothing is held
/// anywhere and every balance is as before; a new packet then completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_before_deciding_aborts_everywhere_after_restart() {
    let c = Cluster::start(BANK, 3).await;
    let (ana, bia, mut book) = c.ana_and_bia([10_000, 5_000]).await;
    c.restart(1, Some("coordinator_prepared")).await;

    let legs = [leg(ana.at(1), bia.at(3), 1_000), leg(ana.at(2), bia.at(3), 2_000)];
    let key = uuid::Uuid::new_v4().to_string();
    let answer = c.try_transfer(ana.at(1), &key, &legs).await;
    assert!(answer.is_err(), "the coordinator died before answering: {answer:?}");
    c.wait_crash(1, Duration::from_secs(10)).await;
    c.spawn(1, None);
    c.wait_healthy(1).await;

    let (code, replay) = c.try_transfer(ana.at(1), &key, &legs).await.expect("replay");
    assert_eq!(code, 201, "the begun transfer is remembered under its key: {replay}");
    let done = c.finish(ana.at(1), replay).await;
    assert_eq!(status(&done), "failed", "presumed abort: {done}");
    c.wait_balances(
        "after the presumed abort",
        &[(ana.at(1), settled(10_000)), (ana.at(2), settled(5_000)), (bia.at(3), settled(0))],
    )
    .await;
    book.apply(&done);

    let t = c.transfer(ana.at(1), &legs).await;
    assert_eq!(status(&t), "completed", "the restarted coordinator works: {t}");
    book.apply(&t);
    c.assert_invariants(&book).await;
}

/// 8. With bank 4 of 4 down (SIGKILL), packets among banks 1–3 still complete, coordinated at
/// each of them; a packet touching bank 4 fails fast (under 3 s) with `bank_unavailable` and
/// moves nothing. Bank 4 then returns and the consortium settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_uninvolved_bank_down_the_others_still_commit_and_a_packet_touching_it_fails_fast() {
    let c = Cluster::start(BANK, 4).await;
    let ana = c.customer(1, "Ana Souza", &[1, 2, 3]).await;
    let bia = c.customer(2, "Bia Lima", &[1, 3]).await;
    let dan = c.customer(3, "Dan Melo", &[4]).await;
    let mut book = Book::default();
    for customer in [&ana, &bia, &dan] {
        book.track_all(customer);
    }
    for bank in 1..=3 {
        c.deposit(&mut book, ana.at(bank), 10_000).await;
    }
    c.deposit(&mut book, dan.at(4), 4_000).await;
    c.kill(4);

    // Coordinated at each live bank in turn.
    let packets = [
        (ana.at(1), vec![leg(ana.at(2), bia.at(3), 1_000), leg(ana.at(3), bia.at(1), 500)]),
        (ana.at(2), vec![leg(ana.at(1), bia.at(3), 700), leg(ana.at(2), bia.at(1), 300)]),
        (bia.at(3), vec![leg(bia.at(3), ana.at(1), 200), leg(bia.at(1), ana.at(2), 100)]),
    ];
    for (session, legs) in &packets {
        let started = Instant::now();
        let t = c.transfer(session, legs).await;
        assert_eq!(status(&t), "completed", "at bank {} ({:?}): {t}", session.bank, started.elapsed());
        book.apply(&t);
    }

    let before = [c.balance(ana.at(1)).await, c.balance(ana.at(2)).await];
    let started = Instant::now();
    let t = c.transfer(ana.at(1), &[leg(ana.at(2), bia.at(3), 500), leg(ana.at(1), dan.at(4), 700)]).await;
    let elapsed = started.elapsed();
    assert_eq!((status(&t), failure_code(&t)), ("failed", "bank_unavailable"), "{t}");
    assert!(elapsed < Duration::from_secs(3), "fails fast, not at a timeout: {elapsed:?}");
    book.apply(&t);
    c.wait_balances("after the packet touching the dead bank", &[(ana.at(1), before[0]), (ana.at(2), before[1])]).await;
    assert_eq!(before.map(|b| b.held), [0, 0]);

    // Bank 4 comes back: the abort reaches it, everything settles, and it takes payments again.
    c.spawn(4, None);
    c.wait_healthy(4).await;
    c.assert_invariants(&book).await;
    let t = c.transfer(ana.at(1), &[leg(ana.at(1), dan.at(4), 700)]).await;
    assert_eq!(status(&t), "completed", "{t}");
    book.apply(&t);
    c.assert_invariants(&book).await;
}

/// 9. Forged inter-bank requests are refused with 401 and change nothing. The target is real: a
/// transaction in doubt at bank 2 (its coordinator, bank 1, crashed after deciding commit), where
/// a believed `abort` would release held money that is already promised. Unsigned, signed with a
/// stranger's key, with another member's key or the operator's under bank 1's id, or validly
/// signed but with the body swapped: all 401. A genuine member that is not the coordinator is
/// not believed either. Bank 1's restart then commits as decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_interbank_requests_are_refused_and_change_nothing() {
    let c = Cluster::start(BANK, 3).await;
    let (ana, bia, mut book) = c.ana_and_bia([10_000, 5_000]).await;
    c.restart(1, Some("coordinator_decided_commit")).await;
    let legs = [leg(ana.at(1), bia.at(3), 1_000), leg(ana.at(2), bia.at(3), 2_000)];
    let _ = c.try_transfer(ana.at(1), &uuid::Uuid::new_v4().to_string(), &legs).await;
    c.wait_crash(1, Duration::from_secs(10)).await;
    let held = c.held_transactions(2).await;
    assert_eq!(held.len(), 1, "one transaction in doubt at bank 2: {held:?}");
    let tx = held[0].clone();
    let in_doubt = processes::Balance { posted: 5_000, held: 2_000, available: 3_000 };
    assert_eq!(c.balance(ana.at(2)).await, in_doubt);

    let path = "/interbank/v1/messages";
    let body = |kind: &str, tx: &str| json!({ "messages": [{ "type": kind, "tx": tx }] }).to_string();
    let signed = |key: &SigningKey, from: u32, to: u32, body: &str| {
        sign_now(key, BankId(from), BankId(to), "POST", path, body.as_bytes())
    };
    let post = async |to: u32, headers: Option<SignedHeaders>, body: String| -> (u16, Value) {
        let call = Call::new("POST", format!("{}{path}", c.url(to))).signed(headers.as_ref());
        call.body(Body::Raw(body)).send(&c.http).await.pair()
    };
    let stranger = generate_signing_key().expect("key");
    let bank1 = c.key(1);
    let bank3 = c.key(3);
    let operator = c.key(OPERATOR.0);
    let random_tx = uuid::Uuid::now_v7().to_string();
    let abort = body("abort", &tx);
    let commit = body("commit", &tx);
    let forgeries: Vec<(&str, u32, Option<SignedHeaders>, String)> = vec![
        ("unsigned abort", 2, None, abort.clone()),
        ("unsigned commit", 2, None, commit.clone()),
        ("unsigned commit of an unknown transaction", 2, None, body("commit", &random_tx)),
        ("unsigned commit to a bystander", 3, None, body("commit", &random_tx)),
        ("abort signed by a stranger as bank 1", 2, Some(signed(&stranger, 1, 2, &abort)), abort.clone()),
        ("abort signed with bank 3's key as bank 1", 2, Some(signed(&bank3, 1, 2, &abort)), abort.clone()),
        ("abort signed with the operator's key as bank 1", 2, Some(signed(&operator, 1, 2, &abort)), abort.clone()),
        (
            "abort signed with the operator's key as the operator",
            2,
            Some(sign_now(&operator, OPERATOR, BankId(2), "POST", path, abort.as_bytes())),
            abort.clone(),
        ),
        ("bank 1's signature of a commit on an abort body", 2, Some(signed(&bank1, 1, 2, &commit)), abort.clone()),
        ("bank 1's signature for bank 3, sent to bank 2", 2, Some(signed(&bank1, 1, 3, &abort)), abort.clone()),
    ];
    for (what, to, headers, body) in forgeries {
        let (code, answer) = post(to, headers, body).await;
        assert_eq!((code, answer["code"].as_str()), (401, Some("unauthorized")), "{what}: {answer}");
        assert_eq!(c.balance(ana.at(2)).await, in_doubt, "{what} changed nothing");
    }
    // A real member that is not the transaction's coordinator: authenticated, but not believed.
    let (code, answer) = post(2, Some(signed(&bank3, 3, 2, &abort)), abort.clone()).await;
    println!("abort from bank 3 (not the coordinator): {code} {answer}");
    assert_eq!(c.balance(ana.at(2)).await, in_doubt, "an abort from a bank that is not the coordinator");
    assert_eq!(c.held_transactions(2).await, std::slice::from_ref(&tx));
    assert_eq!(c.balance(bia.at(3)).await, settled(0));
    // Bank 1's own key, but a captured request sent again, or one signed long ago: refused.
    let harmless = body("commit", &random_tx);
    let captured = signed(&bank1, 1, 3, &harmless);
    let (code, answer) = post(3, Some(captured.clone()), harmless.clone()).await;
    assert_eq!(code, 200, "a genuine request from bank 1 is heard: {answer}");
    let (code, answer) = post(3, Some(captured), harmless.clone()).await;
    assert_eq!((code, answer["code"].as_str()), (401, Some("unauthorized")), "a replayed request: {answer}");
    let old = sign_at(&bank1, BankId(1), BankId(2), "POST", path, abort.as_bytes(), unix_now_ms() - 120_000);
    let (code, answer) = post(2, Some(old), abort.clone()).await;
    assert_eq!((code, answer["code"].as_str()), (401, Some("unauthorized")), "a stale request: {answer}");
    assert_eq!(c.balance(ana.at(2)).await, in_doubt, "the replayed and stale requests changed nothing");

    // The real coordinator returns and its decision stands.
    c.spawn(1, None);
    c.wait_healthy(1).await;
    c.wait_balances(
        "after the coordinator's restart",
        &[(ana.at(1), settled(9_000)), (ana.at(2), settled(3_000)), (bia.at(3), settled(3_000))],
    )
    .await;
    let (code, done) = c.get_transfer(ana.at(1), &tx).await;
    assert_eq!(code, 200, "{done}");
    let done = c.finish(ana.at(1), done).await;
    assert_eq!(status(&done), "completed", "{done}");
    book.apply(&done);
    c.assert_invariants(&book).await;
}

/// 10. The bank where a customer submitted a packet shows it to them (`GET /api/v1/transfers/{id}`)
/// even when none of its legs touches that bank: the customer got the id from that bank, and it
/// is the only way to follow a `pending` answer (API.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_shows_a_customer_their_packet_even_when_no_leg_touches_it() {
    let c = Cluster::start(BANK, 3).await;
    let (ana, bia, mut book) = c.ana_and_bia([0, 5_000]).await;
    let t = c.transfer(ana.at(1), &[leg(ana.at(2), bia.at(3), 2_000)]).await;
    assert_eq!(status(&t), "completed", "{t}");
    book.apply(&t);
    c.assert_invariants(&book).await;
    let (code, again) = c.get_transfer(ana.at(1), t["id"].as_str().expect("id")).await;
    assert_eq!((code, status(&again)), (200, "completed"), "GET at the bank that coordinated it: {again}");
}

/// 11. A participant that stops answering mid-prepare (SIGSTOP: its socket still accepts the
/// prepare, it just does not run): the coordinator gives up at its deadline and the packet fails
/// with `bank_unavailable`; when the participant runs again and reads the late prepare, it either
/// refuses it (expired) or holds and is told to release; either way nothing moves, nothing stays
/// held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_frozen_during_prepare_aborts_the_packet_and_holds_nothing_after() {
    let c = Cluster::start(BANK, 3).await;
    let (ana, bia, mut book) = c.ana_and_bia([10_000, 5_000]).await;

    c.freeze(2);
    let started = Instant::now();
    let t = c.transfer(ana.at(1), &[leg(ana.at(1), bia.at(3), 1_000), leg(ana.at(2), bia.at(3), 2_000)]).await;
    let elapsed = started.elapsed();
    let done = c.finish(ana.at(1), t.clone()).await;
    c.thaw(2);
    println!("answer after {elapsed:?}: {t}");
    assert_eq!((status(&done), failure_code(&done)), ("failed", "bank_unavailable"), "{done}");
    assert!(elapsed < Duration::from_secs(6), "the customer is answered by the response deadline: {elapsed:?}");
    book.apply(&done);
    c.wait_balances(
        "after the frozen participant runs again",
        &[(ana.at(1), settled(10_000)), (ana.at(2), settled(5_000)), (bia.at(3), settled(0))],
    )
    .await;
    c.assert_invariants(&book).await;
}

/// 12. Bank 2 of 3 is killed with SIGKILL in the middle of a stream of concurrent packets (six
/// workers, sessions at every bank, random legs in every direction) and restarted a moment
/// later. Every request ends known: answered `completed` or `failed` (a `pending` one followed to
/// its end), or, for a request whose coordinator died under it, asked again under its
/// Idempotency-Key once it is back. Then every balance is exactly what those outcomes imply and
/// the consortium-wide invariants hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_killed_in_the_middle_of_a_burst_loses_nothing_and_everything_settles() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    /// A request and its answer, or why none came.
    type Sent = (Request, Result<(u16, Value), String>);
    let seed: u64 = std::env::var("CLUSTER_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("seed {seed} (rerun with CLUSTER_SEED={seed})");

    let c = Cluster::start(BANK, 3).await;
    let mut customers = Vec::new();
    for (cpf, name) in [(21, "Ana Souza"), (22, "Bia Lima"), (23, "Caio Reis")] {
        customers.push(c.customer(cpf, name, &[1, 2, 3]).await);
    }
    let mut book = Book::default();
    for customer in &customers {
        book.track_all(customer);
        for account in customer.accounts.values() {
            c.deposit(&mut book, account, 30_000).await;
        }
    }

    let stop = AtomicBool::new(false);
    let sent: Mutex<Vec<Sent>> = Mutex::new(Vec::new());
    let worker = |w: u64| {
        let (c, stop, sent, customers) = (&c, &stop, &sent, &customers);
        async move {
            let mut rng = StdRng::seed_from_u64(seed ^ w);
            while !stop.load(Ordering::Relaxed) {
                let who = rng.random_range(0..customers.len());
                let session = customers[who].at(rng.random_range(1..=3u32));
                let legs: Vec<Value> = (0..rng.random_range(1..=3))
                    .map(|_| {
                        let from = customers[who].at(rng.random_range(1..=3u32));
                        let other = (who + rng.random_range(1..customers.len())) % customers.len();
                        leg(from, customers[other].at(rng.random_range(1..=3u32)), rng.random_range(100..=2_000))
                    })
                    .collect();
                let request = Request::new(session, legs);
                let answer = c.send(&request).await.map_err(|e| e.to_string());
                let unreachable = answer.is_err();
                sent.lock().expect("lock").push((request, answer));
                if unreachable {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    };
    // Kill bank 2 once the load is running, restart it a moment later, stop once the restarted
    // bank has taken some load again: by counts of requests, not fixed times (a busy machine).
    let wait_for = async |count: usize| {
        let deadline = Instant::now() + processes::SETTLE;
        while sent.lock().expect("lock").len() < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sent.lock().expect("lock").len()
    };
    let control = async {
        let before_kill = wait_for(20).await;
        c.kill(2);
        let at_kill = sent.lock().expect("lock").len();
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let at_restart = wait_for(at_kill + 20).await;
        c.spawn(2, None);
        c.wait_healthy(2).await;
        let healthy = sent.lock().expect("lock").len();
        wait_for(healthy + 30).await;
        stop.store(true, Ordering::Relaxed);
        (before_kill, at_restart)
    };
    let started = Instant::now();
    let (_, (before_kill, at_restart)) = tokio::join!(futures::future::join_all((0..6).map(worker)), control);
    let sent = sent.into_inner().expect("lock");
    println!(
        "{} requests in {:?}: {before_kill} before the kill, {} while bank 2 was down",
        sent.len(),
        started.elapsed(),
        at_restart - before_kill
    );
    assert!(before_kill >= 20, "the load ran before the kill ({before_kill} requests)");

    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    for (request, answer) in &sent {
        let answer = match answer {
            Ok((201, t)) => {
                *tally.entry(format!("answered {}", status(t))).or_default() += 1;
                t.clone()
            }
            Ok((code, problem)) => {
                // Rejected before it executed: nothing moved, nothing recorded.
                assert_eq!(*code, 503, "only a bank that cannot be reached to start rejects: {problem}");
                *tally.entry(format!("rejected {}", problem["code"])).or_default() += 1;
                continue;
            }
            Err(_) => {
                *tally.entry(format!("no answer from bank {}", request.session.bank)).or_default() += 1;
                let (code, t) = c.send(request).await.expect("the coordinator is back");
                assert_eq!(code, 201, "asked again under its key: {t}");
                t
            }
        };
        let done = c.finish_request(request, answer).await;
        let outcome = match status(&done) {
            "completed" => "completed".to_string(),
            "failed" => format!("failed {}", failure_code(&done)),
            other => panic!("a transfer ends completed or failed, not {other}: {done}"),
        };
        *tally.entry(outcome).or_default() += 1;
        book.apply(&done);
    }
    println!("outcomes: {tally:?}");
    assert!(tally.get("completed").copied().unwrap_or(0) > 0, "some packets complete: {tally:?}");
    c.assert_invariants(&book).await;
}

/// 13. A packet that executes and fails shows in the customer's statement as failed (API.md: "A
/// valid transfer whose source lacks the money executes and fails: 201 with failed /
/// insufficient_funds (it appears in the statement as failed)"), here at the coordinator, on the
/// customer's account there that one of its legs tried to debit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_packet_shows_as_failed_in_the_statement_at_the_coordinator() {
    let c = Cluster::start(BANK, 3).await;
    let (ana, bia, mut book) = c.ana_and_bia([10_000, 500]).await;
    let t = c.transfer(ana.at(1), &[leg(ana.at(1), bia.at(3), 1_000), leg(ana.at(2), bia.at(3), 2_000)]).await;
    assert_eq!((status(&t), failure_code(&t)), ("failed", "insufficient_funds"), "{t}");
    book.apply(&t);
    c.assert_invariants(&book).await;
    let lines = c.statement(ana.at(1)).await;
    let line = lines.iter().find(|l| l["transfer_id"] == t["id"]);
    let line = line.unwrap_or_else(|| panic!("no line of failed packet {} in the statement: {lines:?}", t["id"]));
    assert_eq!(
        (line["kind"].as_str(), status(line), line["amount_cents"].as_i64()),
        (Some("transfer_out"), "failed", Some(1_000)),
        "{line}"
    );
}

/// Two banks registering the same Pix key at the same time: at most one wins, and every bank's
/// directory (read by a lookup at each bank) then agrees on the key's owner — or that it is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_banks_registering_the_same_key_at_once_never_both_win() {
    let c = Cluster::start(BANK, 3).await;
    // E-mail is unique per bank only, so the same address can sign up at banks 1 and 2.
    let mut tokens = Vec::new();
    for (bank, cpf) in [(1u32, 71u64), (2, 72)] {
        let document = bank_core::document::Cpf::from_base(cpf);
        let body = serde_json::json!({
            "kind": "individual", "holders": [{ "name": format!("Cliente {cpf}"), "document": document.as_str() }],
            "email": "same@example.com", "phone": "+5575999990000", "password": "a long test passphrase"
        });
        let (code, account) = c.call(bank, "POST", "/api/v1/accounts", None, Some(&body)).await;
        assert_eq!(code, 201, "{account}");
        let login = serde_json::json!({ "email": "same@example.com", "password": "a long test passphrase" });
        let (code, session) = c.call(bank, "POST", "/api/v1/sessions", None, Some(&login)).await;
        assert_eq!(code, 201, "{session}");
        tokens.push(session["token"].as_str().expect("token").to_string());
    }
    let body = serde_json::json!({ "type": "email" });
    let ((s1, b1), (s2, b2)) = tokio::join!(
        c.call(1, "POST", "/api/v1/pix-keys", Some(&tokens[0]), Some(&body)),
        c.call(2, "POST", "/api/v1/pix-keys", Some(&tokens[1]), Some(&body)),
    );
    assert!(!(s1 == 201 && s2 == 201), "both registered it: {b1} {b2}");
    for (s, b) in [(s1, &b1), (s2, &b2)] {
        assert!(matches!(s, 201 | 409 | 503), "{s}: {b}");
    }
    // Every bank answers the same lookup (bank 3 through a customer of its own).
    let third = c.customer(73, "Cliente 73", &[3]).await;
    let mut owners = Vec::new();
    for (bank, token) in [(1, &tokens[0]), (2, &tokens[1]), (3, &third.at(3).token)] {
        let (code, found) = c.call(bank, "GET", "/api/v1/pix-keys/same@example.com", Some(token), None).await;
        owners.push((code, found["bank_id"].clone()));
    }
    assert!(owners.windows(2).all(|w| w[0] == w[1]), "directories disagree: {owners:?}");
    match (s1, s2) {
        (201, _) => assert_eq!(owners[0], (200, serde_json::json!(1))),
        (_, 201) => assert_eq!(owners[0], (200, serde_json::json!(2))),
        _ => assert_eq!(owners[0].0, 404),
    }
    // A later registration by the loser (or anyone) of the same key is refused with 409.
    if s1 == 201 || s2 == 201 {
        let loser = if s1 == 201 { (2, &tokens[1]) } else { (1, &tokens[0]) };
        let (code, refused) = c.call(loser.0, "POST", "/api/v1/pix-keys", Some(loser.1), Some(&body)).await;
        assert_eq!(code, 409, "{refused}");
    }
    c.assert_invariants(&Book::default()).await;
}
