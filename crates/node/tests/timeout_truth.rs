//! A request stopped by the node's request timeout is answered truthfully (found by the torture
//! test's review): 503 `overloaded` — "rejected, nothing changed" (API.md) — only when nothing
//! had reached the ledger; one that timed out after its command reached the writer may still be
//! applied, so it gets 500 `internal` saying to repeat it under the same Idempotency-Key, and the
//! repeat tells the outcome. A tiny timeout and a burst of deposits make both cases happen; the
//! final balance must be exactly the deposits the answers (and repeats) say were made.

use bank_testkit::http::{Call, PASSWORD};
use bank_testkit::in_process::{spawn_node, spawn_node_in_with};
use futures::future::join_all;

const DEPOSITS: usize = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timed_out_request_is_rejected_only_if_nothing_reached_the_ledger() {
    let node = spawn_node().await;
    let (token, _) = node.customer(1, "Ana Souza").await;
    let dir = node.stop().await;
    // The same bank (the session survives), answering within 15 ms or timing out.
    let node = spawn_node_in_with(dir, |c| c.limits.request_timeout_ms = 15).await;
    let keys: Vec<String> = (0..DEPOSITS).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let deposit = |key: String| {
        let call = Call::new("POST", format!("{}/api/v1/deposits", node.url))
            .token(Some(&token))
            .idem(Some(&key))
            .json(Some(serde_json::json!({ "amount_cents": 1, "method": "cash" })));
        let http = node.http.clone();
        async move { (key, call.send(&http).await) }
    };
    let answers = join_all(keys.iter().cloned().map(deposit)).await;
    let (mut made, mut rejected, mut unknown) = (0, 0, Vec::new());
    for (key, reply) in answers {
        match (reply.status, reply.body["code"].as_str()) {
            (201, _) => made += 1,
            (503, Some("overloaded")) => rejected += 1,
            (500, Some("internal")) => unknown.push(key),
            other => panic!("unexpected answer {other:?}: {}", reply.body),
        }
    }
    println!("{made} made, {rejected} rejected, {} unknown", unknown.len());
    let dir = node.stop().await;
    let node = spawn_node_in_with(dir, |_| {}).await;
    let token = node.sign_in("c1@example.com", PASSWORD).await;
    for key in &unknown {
        let reply = Call::new("POST", format!("{}/api/v1/deposits", node.url))
            .token(Some(&token))
            .idem(Some(key))
            .json(Some(serde_json::json!({ "amount_cents": 1, "method": "cash" })))
            .send(&node.http)
            .await;
        assert_eq!(reply.status, 201, "the repeat of an unknown outcome answers it: {}", reply.body);
        made += 1;
    }
    let (posted, _, _) = node.balance(&token).await;
    assert_eq!(posted, made as i64, "every deposit answered 503 overloaded moved nothing, and no other was lost");
}
