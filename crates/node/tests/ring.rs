//! The token ring between real nodes on 127.0.0.1 (in one process): it circulates, gates
//! cross-bank work, survives a bank cut off from its peers, and refuses stale or late tokens.
//! Crashes of real processes are in `crates/cli/tests/ring_cluster.rs`.

use bank_testkit::in_process;
use std::time::{Duration, Instant};

use bank_node::CoordinationMode;
use bank_testkit::in_process::{Cluster, TestNode, number_of};
use serde_json::{Value, json};

async fn status(node: &TestNode) -> Value {
    let (code, status) = node.call("GET", "/api/v1/consortium/status", None, None).await;
    assert_eq!(code, 200, "{status}");
    status
}

/// Polls `check` until it holds, or fails the test after `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Ok(()) => return,
            Err(why) if started.elapsed() > within => panic!("{what}: not within {within:?}: {why}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Waits until every bank has had the token at least `visits` times.
async fn token_circulates(c: &Cluster, visits: f64) {
    for node in &c.nodes {
        eventually("the token visits every bank", Duration::from_secs(20), || async {
            let seen = node.metric("bank_ring_visits_total").await;
            if seen >= visits { Ok(()) } else { Err(format!("{seen} visits")) }
        })
        .await;
    }
}

/// A customer with `cents` at each bank of `c` (customer n at bank n).
async fn customers(c: &Cluster, cents: i64) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (i, node) in c.nodes.iter().enumerate() {
        let (token, account) = node.customer(i as u64 + 1, &format!("Cliente {}", i + 1)).await;
        node.deposit(&token, cents).await;
        out.push((token, account));
    }
    out
}

async fn send(c: &Cluster, from: u32, token: &str, to_bank: u32, to: &Value, cents: i64) -> Value {
    let body = json!({ "legs": [{ "to": { "bank_id": to_bank, "number": number_of(to) }, "amount_cents": cents }] });
    let (code, transfer) = c.bank(from).call("POST", "/api/v1/transfers", Some(token), Some(body)).await;
    assert_eq!(code, 201, "{transfer}");
    transfer
}

/// The token goes round: every bank reports the ring (mode, epoch, a holder, a rotation rate)
/// and counts visits, passes and no regeneration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_circulates_and_every_bank_shows_it() {
    let c = in_process::cluster(3).await;
    token_circulates(&c, 3.0).await;
    for node in &c.nodes {
        let status = status(node).await;
        assert_eq!(status["mode"], "token-ring", "{status}");
        let ring = &status["ring"];
        assert!(ring["epoch"].as_u64().is_some_and(|e| e >= 1), "{status}");
        assert!(ring["holder"].as_u64().is_some_and(|h| (1..=3).contains(&h)), "{status}");
        assert!(ring["last_seen_ms"].as_u64().is_some(), "{status}");
        assert!(ring["rotations_per_s"].as_f64().is_some_and(|r| r > 0.0), "{status}");
        assert_eq!(ring["queue_len"], 0, "{status}");
        assert!(node.metric("bank_ring_token_passes_total").await >= 2.0);
    }
}

/// Cross-bank transfers from every bank at once wait for the token, then all complete, with
/// exact balances; the wait is measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_bank_transfers_wait_for_the_token_then_complete() {
    let c = in_process::cluster(3).await;
    let people = customers(&c, 10_000).await;
    let mut tasks = Vec::new();
    for from in 1..=3u32 {
        for _ in 0..10 {
            let to = from % 3 + 1;
            let (token, account) = (people[from as usize - 1].0.clone(), people[to as usize - 1].1.clone());
            let c = &c;
            tasks.push(async move { send(c, from, &token, to, &account, 100).await });
        }
    }
    let results = futures::future::join_all(tasks).await;
    for transfer in &results {
        assert_eq!(transfer["status"], "completed", "{transfer}");
    }
    for (i, node) in c.nodes.iter().enumerate() {
        // Sent 10 × 1.00, received 10 × 1.00.
        assert_eq!(node.balance(&people[i].0).await, (10_000, 0, 10_000));
        assert_eq!(node.metric("bank_ring_token_wait_seconds_count").await, 10.0);
        assert_eq!(status(node).await["ring"]["queue_len"], 0);
    }
}

/// One operation per visit (the original design) still completes everything, one per turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_operation_per_visit_completes_everything() {
    let c = in_process::cluster_with(3, |n| n.ring.settings.ops_per_visit = 1).await;
    let people = customers(&c, 10_000).await;
    let tasks = (0..6).map(|_| send(&c, 1, &people[0].0, 2, &people[1].1, 250));
    for transfer in futures::future::join_all(tasks).await {
        assert_eq!(transfer["status"], "completed", "{transfer}");
    }
    assert_eq!(c.bank(1).balance(&people[0].0).await, (8_500, 0, 8_500));
    assert!(c.bank(1).metric("bank_ring_visits_total").await >= 6.0);
}

/// `concurrent` mode: no token, no waiting; the status says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_mode_runs_without_a_token() {
    let c = in_process::cluster_with(2, |n| n.coordination = CoordinationMode::Concurrent).await;
    let people = customers(&c, 10_000).await;
    let transfer = send(&c, 1, &people[0].0, 2, &people[1].1, 100).await;
    assert_eq!(transfer["status"], "completed", "{transfer}");
    let status = status(c.bank(1)).await;
    assert_eq!(status["mode"], "concurrent", "{status}");
    assert_eq!(status["ring"]["epoch"], 0, "{status}");
    assert_eq!(c.bank(1).metric("bank_ring_visits_total").await, 0.0);
}

/// A bank cut off from its peers (the fault switch) cannot get the token: its cross-bank
/// transfer fails after the queue wait having moved nothing (its intra-bank work goes on), while the other two keep
/// transacting (a new token among them if it held the old one). Reconnected, it learns the new
/// epoch, rejoins the ring and transacts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_bank_waits_in_vain_then_rejoins() {
    let c = in_process::cluster_with(3, |n| {
        n.fault_switch = true;
        n.ring.queue_wait_max_ms = 1_500;
    })
    .await;
    let people = customers(&c, 10_000).await;
    token_circulates(&c, 2.0).await;
    // Bad requests to the switch are refused and change nothing: bank 3 stays in the ring.
    let fault = "/interbank/v1/fault";
    for bad in [json!({ "cut_off": "yes" }), json!({ "cut_off": true, "bank": 3 }), json!({})] {
        let (code, answer) = c.signed_post(0, 3, fault, &bad).await;
        assert_eq!((code, answer["code"].as_str()), (400, Some("invalid_input")), "{bad}: {answer}");
    }
    let (code, _) = c.signed_post(1, 3, fault, &json!({ "cut_off": true })).await;
    assert_eq!(code, 401, "a member bank may not throw another bank's switch");
    let visits = c.bank(3).metric("bank_ring_visits_total").await;
    token_circulates(&c, visits + 1.0).await;

    c.cut_off(3, true).await;
    // Past any lease bank 3 held when it was cut off (300 ms): from now on it cannot begin.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Intra-bank work never waits for the token: a deposit while the transfer waits in vain.
    let started = Instant::now();
    let (refused, deposited_after) = tokio::join!(send(&c, 3, &people[2].0, 1, &people[0].1, 700), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.bank(3).deposit(&people[2].0, 500).await;
        started.elapsed()
    });
    let refused_after = started.elapsed();
    assert!(deposited_after < Duration::from_millis(1_000) && deposited_after < refused_after, "{deposited_after:?}");
    assert_eq!(refused["status"], "failed", "{refused}");
    assert_eq!(refused["failure"]["code"], "bank_unavailable", "{refused}");
    // It never began (a begun one would fail fast as "could not be reached"): it waited for the token.
    assert!(refused["failure"]["detail"].as_str().is_some_and(|d| d.contains("token")), "{refused}");
    assert_eq!(c.bank(3).balance(&people[2].0).await, (10_500, 0, 10_500));
    assert_eq!(c.bank(1).balance(&people[0].0).await, (10_000, 0, 10_000));

    eventually("banks 1 and 2 transact without bank 3", Duration::from_secs(20), || async {
        let t = send(&c, 1, &people[0].0, 2, &people[1].1, 100).await;
        if t["status"] == "completed" { Ok(()) } else { Err(t.to_string()) }
    })
    .await;
    let epoch_while_cut = status(c.bank(1)).await["ring"]["epoch"].as_u64().expect("epoch");

    c.cut_off(3, false).await;
    let visits_before = c.bank(3).metric("bank_ring_visits_total").await;
    eventually("bank 3 rejoins the ring", Duration::from_secs(20), || async {
        let (three, one) = (status(c.bank(3)).await, status(c.bank(1)).await);
        let visits = c.bank(3).metric("bank_ring_visits_total").await;
        let same_epoch = three["ring"]["epoch"] == one["ring"]["epoch"];
        if same_epoch && visits > visits_before { Ok(()) } else { Err(format!("{three} / {one} / {visits}")) }
    })
    .await;
    assert!(status(c.bank(3)).await["ring"]["epoch"].as_u64().expect("epoch") >= epoch_while_cut);
    let back = send(&c, 3, &people[2].0, 1, &people[0].1, 700).await;
    assert_eq!(back["status"], "completed", "{back}");
}

/// What the ring must remember survives a restart: the token position the bank accepted (its
/// epoch) and the cross-bank transfers waiting for the token. The waiting transfer is begun once
/// the restarted bank gets the token, and moves money exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_bank_keeps_its_ring_state_and_its_queue() {
    restart_with_a_queued_transfer(CoordinationMode::TokenRing).await;
}

/// A transfer left waiting by a `token-ring` run is begun at once by a `concurrent` restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_restart_begins_what_the_ring_left_queued() {
    restart_with_a_queued_transfer(CoordinationMode::Concurrent).await;
}

async fn restart_with_a_queued_transfer(mode_after: CoordinationMode) {
    let tweak = |n: &mut bank_node::NodeConfig| {
        n.fault_switch = true;
        n.limits.transfer_deadline_ms = 300;
    };
    let mut c = in_process::cluster_with(3, tweak).await;
    let people = customers(&c, 10_000).await;
    token_circulates(&c, 2.0).await;
    c.cut_off(3, true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let queued = send(&c, 3, &people[2].0, 1, &people[0].1, 700).await;
    assert_eq!(queued["status"], "pending", "{queued}");
    let before = status(c.bank(3)).await;
    assert_eq!(before["ring"]["queue_len"], 1, "{before}");
    let known_epoch = before["ring"]["epoch"].as_u64().expect("epoch");

    c.restart(
        3,
        |data| {
            let db = rusqlite::Connection::open(bank_node::storage::database_path(data)).expect("open the ledger");
            let state: String = db.query_row("SELECT body FROM ring_state", [], |r| r.get(0)).expect("ring state");
            let state: Value = serde_json::from_str(&state).expect("json");
            assert_eq!(state["accepted"]["epoch"].as_u64(), Some(known_epoch), "{state}");
            let queue: i64 = db.query_row("SELECT count(*) FROM ring_queue", [], |r| r.get(0)).expect("queue");
            assert_eq!(queue, 1, "the waiting transfer is on disk");
        },
        |n| {
            tweak(n);
            n.coordination = mode_after;
        },
    )
    .await;

    let id = queued["id"].as_str().expect("id").to_string();
    eventually("the queued transfer completes after the restart", Duration::from_secs(20), || async {
        let (_, t) = c.bank(3).call("GET", &format!("/api/v1/transfers/{id}"), Some(&people[2].0), None).await;
        if t["status"] == "completed" { Ok(()) } else { Err(t.to_string()) }
    })
    .await;
    assert_eq!(c.bank(3).balance(&people[2].0).await, (9_300, 0, 9_300));
    assert_eq!(c.bank(1).balance(&people[0].0).await, (10_700, 0, 10_700));
    assert_eq!(status(c.bank(3)).await["ring"]["queue_len"], 0);
}

/// A token older than what a bank accepted is refused (and counted); a ring message older than
/// the hop timeout allows is dropped unread; malformed or unsigned ring requests change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_and_late_tokens_are_refused() {
    let c = in_process::cluster(3).await;
    token_circulates(&c, 3.0).await;
    // Counted from here: on a loaded machine the ring itself may refuse a straggler token too.
    let refused_before = c.bank(1).metric("bank_ring_stale_tokens_refused_total").await;
    let now = bank_node::interbank::sign::unix_now_ms() as i64;
    let stale = json!({ "messages": [{ "sent_at_ms": now, "message": { "type": "token", "epoch": 1, "hop": 1 } }] });
    let (code, answer) = c.signed_post(3, 1, "/interbank/v1/ring", &stale).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["messages"][0]["message"]["type"], "token_refused", "{answer}");
    assert!(
        c.bank(1).metric("bank_ring_stale_tokens_refused_total").await > refused_before,
        "the stale token is counted"
    );

    let late =
        json!({ "messages": [{ "sent_at_ms": now - 5_000, "message": { "type": "token", "epoch": 99, "hop": 0 } }] });
    let (code, answer) = c.signed_post(3, 1, "/interbank/v1/ring", &late).await;
    assert_eq!((code, answer["messages"].as_array().map(Vec::len)), (200, Some(0)), "{answer}");
    assert!(c.bank(1).metric("bank_ring_messages_dropped_total").await >= 1.0);
    assert!(status(c.bank(1)).await["ring"]["epoch"].as_u64().expect("epoch") < 99);

    let too_many: Vec<Value> = (0..65)
        .map(|_| json!({ "sent_at_ms": now, "message": { "type": "token_ack", "epoch": 1, "hop": 1 } }))
        .collect();
    let (code, _) = c.signed_post(3, 1, "/interbank/v1/ring", &json!({ "messages": too_many })).await;
    assert_eq!(code, 400);
    let (code, _) = c.signed_post(3, 1, "/interbank/v1/ring", &json!({ "messages": [], "extra": 1 })).await;
    assert_eq!(code, 400);
    let (code, _) = c.bank(1).call("POST", "/interbank/v1/ring", None, Some(stale)).await;
    assert_eq!(code, 401);
    // The operator's fault switch is not enabled on these banks.
    let (code, _) = c.signed_post(0, 1, "/interbank/v1/fault", &json!({ "cut_off": true })).await;
    assert_eq!(code, 404);

    let visits = c.bank(1).metric("bank_ring_visits_total").await;
    token_circulates(&c, visits + 2.0).await;
}
