//! Walking the key directory is throttled (issue 16, "directory enumeration"): a session's
//! lookups of keys nobody has are counted, and past their budget every lookup of that session —
//! even of a real key — is refused with 429 `too_many_attempts` and `Retry-After`, while other
//! customers and lookups that find someone go on as usual.

use bank_testkit::in_process::{self, TestNode, cpf, key_of};
use serde_json::Value;

/// Misses a session may make before it is throttled (`auth::throttle::MISSES_PER_ACCOUNT`).
const MISSES_ALLOWED: u64 = 30;

/// `GET /api/v1/pix-keys/{key}`: status, `Retry-After` (seconds) if any, body.
async fn look_up(node: &TestNode, token: &str, key: &str) -> (u16, Option<u64>, Value) {
    let response = node
        .http
        .get(format!("{}/api/v1/pix-keys/{key}", node.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /api/v1/pix-keys");
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let status = response.status().as_u16();
    (status, retry_after, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_walking_the_directory_is_throttled_and_others_are_not() {
    let node = in_process::spawn_node().await;
    let (ana, _) = node.customer(1, "Ana Souza").await;
    let (bia, bia_account) = node.customer(2, "Bia Lima").await;
    let bia_key = key_of(&bia_account);

    // Lookups that find someone cost nothing.
    for _ in 0..2 * MISSES_ALLOWED {
        let (status, _, body) = look_up(&node, &ana, &bia_key).await;
        assert_eq!(status, 200, "{body}");
    }
    for n in 0..MISSES_ALLOWED {
        let (status, retry_after, body) = look_up(&node, &ana, &cpf(500_000 + n)).await;
        assert_eq!((status, retry_after, body["code"].as_str()), (404, None, Some("unknown_key")), "miss {n}: {body}");
    }
    let (status, retry_after, body) = look_up(&node, &ana, &cpf(600_000)).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("too_many_attempts")), "{body}");
    assert!(retry_after.is_some_and(|s| (1..=2).contains(&s)), "Retry-After {retry_after:?}");
    // Throttled, the session learns nothing, even of a key that exists.
    let (status, _, body) = look_up(&node, &ana, &bia_key).await;
    assert_eq!(status, 429, "{body}");
    // Another customer (from the same address, far below its budget) is not affected.
    let (status, _, body) = look_up(&node, &bia, &bia_key).await;
    assert_eq!(status, 200, "{body}");
    assert!(node.metric("bank_key_lookup_misses_total").await >= MISSES_ALLOWED as f64);
}
