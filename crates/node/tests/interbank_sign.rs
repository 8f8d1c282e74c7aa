//! Inter-bank authentication between two real nodes (DESIGN.md §6): a correctly signed request
//! is answered; unsigned, wrongly signed, stale, replayed, misaddressed and unknown-bank requests
//! are refused with 401 problem+json `unauthorized`, before any handler runs.

use bank_core::ids::BankId;
use bank_node::consortium::{SigningKey, generate_signing_key};
use bank_node::interbank::client::{PeerClient, PeerError, PeerOptions};
use bank_node::interbank::{PING_PATH, Pong};
use bank_testkit::in_process::{self, Body, Cluster, Reply, TestNode, spawn_node};
use bank_testkit::signer::{SignedHeaders, sign_at, unix_now_ms};

/// Two banks of one consortium.
async fn two_banks() -> Cluster {
    in_process::cluster(2).await
}

/// Bank `id`'s peer client of `pair`'s consortium, signing with `key`.
fn peer_client(pair: &Cluster, id: u32, key: &SigningKey) -> PeerClient {
    let urls = pair.config.members.values().map(|m| (m.id, m.url.clone()));
    PeerClient::new(BankId(id), key.clone(), urls, PeerOptions::default()).expect("client")
}

/// Sends a ping to `node` with these authentication headers.
async fn ping_with(node: &TestNode, signed: &SignedHeaders) -> Reply {
    node.request("GET", PING_PATH).signed(Some(signed)).send(&node.http).await
}

fn signed_ping(key: &SigningKey, from: u32, to: u32, timestamp_ms: u64) -> SignedHeaders {
    sign_at(key, BankId(from), BankId(to), "GET", PING_PATH, b"", timestamp_ms)
}

#[track_caller]
fn assert_refused(reply: &Reply, what: &str, reason: &str) {
    reply.assert_problem(401, "unauthorized", what);
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(reason), "{what}: expected {reason:?} in {detail:?}");
}

#[tokio::test]
async fn banks_accept_each_others_signed_pings() {
    let pair = two_banks().await;
    for (from, to) in [(1, 2), (2, 1)] {
        let client = peer_client(&pair, from, pair.key(from));
        let pong: Pong = client.get_json(BankId(to), PING_PATH).await.expect("ping");
        assert_eq!(pong, Pong { bank_id: BankId(to), from: BankId(from) });
    }
    // Many requests over the pooled client: each with its own nonce, none taken for a replay.
    let client = peer_client(&pair, 1, pair.key(1));
    for _ in 0..20 {
        let pong: Pong = client.get_json(BankId(2), PING_PATH).await.expect("ping");
        assert_eq!(pong.from, BankId(1));
    }
}

#[tokio::test]
async fn unsigned_forged_stale_replayed_and_unknown_requests_are_refused() {
    let pair = two_banks().await;
    let bank2 = &pair.nodes[1];
    let key1 = pair.key(1);
    let now = unix_now_ms();

    let unsigned = bank2.send("GET", PING_PATH, None, Body::None, &[]).await;
    assert_refused(&unsigned, "unsigned", "missing");

    let impostor = generate_signing_key().expect("key");
    assert_refused(&ping_with(bank2, &signed_ping(&impostor, 1, 2, now)).await, "wrong key", "signature");

    let stale = signed_ping(key1, 1, 2, now - 60_000);
    assert_refused(&ping_with(bank2, &stale).await, "stale", "stale");
    let future = signed_ping(key1, 1, 2, now + 60_000);
    assert_refused(&ping_with(bank2, &future).await, "from the future", "stale");

    let once = signed_ping(key1, 1, 2, now);
    let first = ping_with(bank2, &once).await;
    assert_eq!((first.status, &first.body["from"]), (200, &serde_json::json!(1)), "{:?}", first.body);
    assert_refused(&ping_with(bank2, &once).await, "replayed", "replayed");

    let stranger = generate_signing_key().expect("key");
    assert_refused(&ping_with(bank2, &signed_ping(&stranger, 7, 2, now)).await, "unknown bank", "not a member");

    // Signed by bank 1 for bank 1 (itself), delivered to bank 2: bound to its receiver.
    assert_refused(&ping_with(bank2, &signed_ping(key1, 1, 1, now)).await, "misaddressed", "signature");

    // Signed for another path or with a body it did not sign.
    let signature = signed_ping(key1, 1, 2, now);
    let tampered = bank2.request("GET", PING_PATH).signed(Some(&signature)).body(Body::Raw("{}".into()));
    let tampered = tampered.send(&bank2.http).await;
    assert_refused(&tampered, "body not signed", "signature");
}

#[tokio::test]
async fn the_peer_client_reports_refusals_and_unreachable_peers() {
    let pair = two_banks().await;
    let impostor = peer_client(&pair, 1, &generate_signing_key().expect("key"));
    match impostor.get_json::<Pong>(BankId(2), PING_PATH).await {
        Err(e @ PeerError::Refused { status: 401, .. }) => {
            assert!(matches!(&e, PeerError::Refused { code, .. } if code == "unauthorized"), "{e}");
            assert!(!e.is_retryable());
        }
        other => panic!("expected a 401 refusal, got {other:?}"),
    }
    let client = peer_client(&pair, 1, pair.key(1));
    assert!(matches!(client.get_json::<Pong>(BankId(9), PING_PATH).await, Err(PeerError::UnknownPeer(BankId(9)))));

    // Bank 2 stops: calls to it fail as retryable.
    let Cluster { mut nodes, .. } = pair;
    let bank2 = nodes.pop().expect("bank 2");
    let _dir = bank2.stop().await;
    match client.get_json::<Pong>(BankId(2), PING_PATH).await {
        Err(e) => assert!(e.is_retryable(), "{e:?}"),
        Ok(pong) => panic!("a stopped bank answered {pong:?}"),
    }
}

#[tokio::test]
async fn a_bank_without_a_consortium_refuses_inter_bank_requests() {
    let alone = spawn_node().await;
    let key = generate_signing_key().expect("key");
    let reply = ping_with(&alone, &signed_ping(&key, 1, 1, unix_now_ms())).await;
    assert_refused(&reply, "no consortium", "without a consortium");
}
