//! The per-account key limit holds under parallel registrations (issue 16): each registration
//! is a consortium-wide two-phase commit, and the limit once counted only committed keys, so
//! thirty at once left an account with 24–28 keys.

use bank_core::ledger::KEYS_PER_ACCOUNT_MAX;
use bank_testkit::in_process;
use serde_json::json;

const PARALLEL: usize = 30;

/// Thirty random-key registrations at once for one account of a two-bank consortium: the
/// account ends with exactly the limit, every success is one of its keys, and the rest are
/// refused with 409 `conflict`; the other bank's directory knows exactly the same keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_parallel_key_registrations_never_pass_the_key_limit() {
    let cluster = in_process::cluster(2).await;
    let c = &cluster;
    let (token, _) = c.bank(1).customer(1, "Ana Souza").await;
    let (other, _) = c.bank(2).customer(2, "Bia Lima").await;
    let (_, me) = c.bank(1).call("GET", "/api/v1/me", Some(&token), None).await;
    let before = me["pix_keys"].as_array().expect("pix_keys").len();

    let register = |token: String| async move {
        c.bank(1).call("POST", "/api/v1/pix-keys", Some(&token), Some(json!({ "type": "random" }))).await
    };
    let answers = futures::future::join_all((0..PARALLEL).map(|_| register(token.clone()))).await;
    let mut registered = Vec::new();
    for (status, body) in &answers {
        match status {
            201 => registered.push(body["key"].as_str().expect("key").to_string()),
            409 => assert_eq!(body["code"], "conflict", "{body}"),
            _ => panic!("unexpected answer {status}: {body}"),
        }
    }

    let (_, me) = c.bank(1).call("GET", "/api/v1/me", Some(&token), None).await;
    let keys: Vec<&str> =
        me["pix_keys"].as_array().expect("pix_keys").iter().filter_map(|k| k["key"].as_str()).collect();
    assert_eq!(keys.len(), KEYS_PER_ACCOUNT_MAX, "{me}");
    assert_eq!(registered.len(), KEYS_PER_ACCOUNT_MAX - before, "each success is one slot: {answers:?}");
    for key in &registered {
        assert!(keys.contains(&key.as_str()), "{key} answered 201 but is not the account's: {me}");
        let (status, found) = c.bank(2).call("GET", &format!("/api/v1/pix-keys/{key}"), Some(&other), None).await;
        assert_eq!((status, found["bank_id"].clone()), (200, json!(1)), "bank 2's directory: {found}");
    }
    // Full, the account refuses one more, one at a time as well.
    let (status, body) = register(token.clone()).await;
    assert_eq!((status, body["code"].clone()), (409, json!("conflict")), "{body}");
}
