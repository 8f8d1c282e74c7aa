//! The token ring with real `bank node` processes (DESIGN.md §5): the holder killed in the middle
//! of a batch, a holder cut off from its peers, two of five banks down. After each, a new token
//! circulates, cross-bank transfers complete, and the consortium-wide invariants hold (`bank
//! audit` included). Bounds are generous (a busy two-core machine); the tight figures —
//! recovery time, throughput — are the benchmark's (`docs/performance.md`).

use std::time::{Duration, Instant};

use bank_node::interbank::sign::unix_now_ms;
use bank_testkit::processes::{Account, Book, Cluster, Request, leg, status};
use serde_json::{Value, json};

/// The `bank` binary under test.
const BANK: &str = env!("CARGO_BIN_EXE_bank");

/// How long the ring may take to replace a lost token and complete a transfer, generously.
const RECOVER: Duration = Duration::from_secs(30);

fn epoch(status: &Value) -> u64 {
    status["ring"]["epoch"].as_u64().unwrap_or_else(|| panic!("no ring epoch in {status}"))
}

/// Sends `from → to` until one completes (a lost token makes some fail while it is replaced);
/// books every final answer. Returns how long it took.
async fn until_one_completes(c: &Cluster, book: &mut Book, from: &Account, to: &Account, cents: i64) -> Duration {
    let started = Instant::now();
    loop {
        let request = Request::new(from, vec![leg(from, to, cents)]);
        if let Ok((201, answer)) = c.send(&request).await {
            let done = c.finish(from, answer).await;
            book.apply(&done);
            if status(&done) == "completed" {
                return started.elapsed();
            }
        }
        assert!(started.elapsed() < RECOVER, "no transfer from bank {} completed within {RECOVER:?}", from.bank);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every bank of `banks` has had the token at least once more than `before`.
async fn visits_after(c: &Cluster, banks: &[u32], before: f64) {
    let started = Instant::now();
    for &bank in banks {
        while c.metric(bank, "bank_ring_visits_total").await <= before {
            assert!(started.elapsed() < RECOVER, "the token did not visit bank {bank} within {RECOVER:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Bank 2 is killed at a failpoint (it aborts on the spot, as `kill -9` would) right after it
/// began a batch under the token — recorded as preparing, holds placed, no prepare sent. Banks 1
/// and 3 create a new token (a higher epoch) and transact. Restarted, bank 2 never resumes the old
/// token; its 2PC recovery settles the batch (presumed abort: nothing moved), queued work it had
/// not begun goes on, it rejoins the ring, and the invariants hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_token_holder_mid_batch_regenerates_the_token_and_recovery_settles_its_batch() {
    let c = Cluster::start(BANK, 3).await;
    let (ana, bia, mut book) = c.ana_and_bia([10_000, 10_000]).await;
    c.restart(2, Some("ring_batch_begun")).await;
    let epoch_before = epoch(&c.ring_status(1).await);

    let requests: Vec<Request> =
        (0..4).map(|_| Request::new(ana.at(2), vec![leg(ana.at(2), bia.at(3), 500)])).collect();
    let sends = futures::future::join_all(requests.iter().map(|r| c.send(r)));
    let (answers, _) = tokio::join!(sends, c.wait_crash(2, Duration::from_secs(20)));
    let killed_at = Instant::now();
    for answer in answers.iter().flatten() {
        assert_ne!(status(&answer.1), "completed", "nothing completes before its decision is delivered: {answer:?}");
    }

    let took = until_one_completes(&c, &mut book, ana.at(1), bia.at(3), 100).await;
    println!("banks 1 and 3 transacted again {took:?} after the holder was killed");
    let (one, three) = (c.ring_status(1).await, c.ring_status(3).await);
    assert!(epoch(&one) > epoch_before && epoch(&three) > epoch_before, "a new token: {one} / {three}");
    let regenerations =
        c.metric(1, "bank_ring_regenerations_total").await + c.metric(3, "bank_ring_regenerations_total").await;
    assert!(regenerations >= 1.0, "bank 1 or 3 created the new token");
    assert!(killed_at.elapsed() < RECOVER);

    c.spawn(2, None);
    c.wait_healthy(2).await;
    // Each request, asked again under its key, ends: the begun batch aborted by recovery, or
    // (if it never reached the batch) run after the restart. None ends half-way.
    for request in &requests {
        let (code, answer) = c.send(request).await.expect("bank 2 is back");
        assert_eq!(code, 201, "{answer}");
        book.apply(&c.finish(ana.at(2), answer).await);
    }
    let visits = c.metric(2, "bank_ring_visits_total").await;
    visits_after(&c, &[2], visits).await;
    until_one_completes(&c, &mut book, ana.at(2), bia.at(3), 100).await;
    assert!(epoch(&c.ring_status(2).await) > epoch_before, "bank 2 took the new token, not its old one");
    c.assert_invariants(&book).await;
}

/// Bank 2 is cut off from its peers (the fault switch) while it holds the token (as its status
/// said a moment before). Banks 1 and 3,
/// a majority, create a newer token and transact. Reconnected, bank 2's pass of its old token —
/// replayed here as a late copy would arrive — is refused as stale by its successor, and bank 2
/// rejoins the ring under the new epoch and transacts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_cut_off_from_its_peers_has_its_stale_token_refused_and_rejoins() {
    let c = Cluster::start_with(BANK, 3, &["--fault-switch"]).await;
    let (ana, bia, mut book) = c.ana_and_bia([10_000, 10_000]).await;

    // Catch bank 2 holding the token (a few tens of ms per rotation), and cut it off.
    let started = Instant::now();
    let old_epoch = loop {
        let s = c.ring_status(2).await;
        if s["ring"]["role"] == "holding" {
            c.cut_off(2, true).await;
            break epoch(&s);
        }
        assert!(started.elapsed() < RECOVER, "bank 2 never held the token: {s}");
    };

    // (It may have passed the token on just before the switch; then the token dies at its next
    // pass to bank 2, which nobody acknowledges. Either way a newer epoch follows.)
    let started = Instant::now();
    loop {
        let (one, three) = (c.ring_status(1).await, c.ring_status(3).await);
        if epoch(&one) > old_epoch && epoch(&three) > old_epoch {
            break;
        }
        assert!(started.elapsed() < RECOVER, "no new token without bank 2: {one} / {three}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until_one_completes(&c, &mut book, ana.at(1), bia.at(3), 100).await;

    c.cut_off(2, false).await;
    let stale = json!({ "messages": [{
        "sent_at_ms": unix_now_ms(),
        "message": { "type": "token", "epoch": old_epoch, "hop": 1_000_000 },
    }]});
    let (code, answer) = c.signed_post(2, 3, "/interbank/v1/ring", &stale).await;
    assert_eq!(code, 200, "{answer}");
    let refusal = &answer["messages"][0]["message"];
    assert_eq!(refusal["type"], "token_refused", "{answer}");
    assert!(refusal["highest"].as_u64().is_some_and(|h| h > old_epoch), "{answer}");
    assert!(c.metric(3, "bank_ring_stale_tokens_refused_total").await >= 1.0);

    let visits = c.metric(2, "bank_ring_visits_total").await;
    visits_after(&c, &[2], visits).await;
    assert_eq!(epoch(&c.ring_status(2).await), epoch(&c.ring_status(1).await), "bank 2 knows the new epoch");
    until_one_completes(&c, &mut book, ana.at(2), bia.at(3), 100).await;
    c.assert_invariants(&book).await;
}

/// Five banks, two killed: the other three are a majority, replace the token if it died with
/// them, and keep transacting among themselves. The two come back and everything adds up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_five_banks_and_two_down_the_other_three_keep_transacting() {
    let c = Cluster::start(BANK, 5).await;
    let ana = c.customer(1, "Ana Souza", &[1]).await;
    let bia = c.customer(2, "Bia Lima", &[3]).await;
    let caio = c.customer(3, "Caio Alves", &[5]).await;
    let mut book = Book::default();
    for customer in [&ana, &bia, &caio] {
        book.track_all(customer);
    }
    c.deposit(&mut book, ana.at(1), 10_000).await;
    c.deposit(&mut book, bia.at(3), 10_000).await;
    c.deposit(&mut book, caio.at(5), 10_000).await;
    visits_after(&c, &[1, 2, 3, 4, 5], 0.0).await;

    c.kill(2);
    c.kill(4);
    until_one_completes(&c, &mut book, ana.at(1), bia.at(3), 100).await;
    until_one_completes(&c, &mut book, bia.at(3), caio.at(5), 200).await;
    until_one_completes(&c, &mut book, caio.at(5), ana.at(1), 300).await;
    let visits = c.metric(1, "bank_ring_visits_total").await;
    visits_after(&c, &[1, 3, 5], visits).await;

    c.spawn(2, None);
    c.spawn(4, None);
    c.wait_healthy(2).await;
    c.wait_healthy(4).await;
    visits_after(&c, &[2, 4], 0.0).await;
    c.assert_invariants(&book).await;
}
