//! A bank's cost does not grow with its history: statements walk each account's chain of lines
//! (no index in memory), and idempotency records live on disk for their retention period with
//! only a bounded cache in memory — and the answers are those of a bank that forgot nothing.

use bank_testkit::in_process::{self, TestNode};
use serde_json::{Value, json};

fn ids(entries: &[Value]) -> Vec<u64> {
    entries.iter().map(|e| e["id"].as_u64().expect("id")).collect()
}

async fn deposit_with_key(node: &TestNode, token: &str, cents: i64, key: &str) -> (u16, Value) {
    let body = json!({ "amount_cents": cents, "method": "cash" });
    node.call_with("POST", "/api/v1/deposits", Some(token), Some(body), Some(key)).await
}

/// Pages of 3 of two customers whose lines interleave: each sees only their own, newest first,
/// with no gap or repeat, before and after a restart.
#[tokio::test]
async fn statement_pages_walk_each_accounts_own_lines_newest_first_across_a_restart() {
    let node = in_process::spawn_node().await;
    let (ana, _) = node.customer(1, "Ana Souza").await;
    let (bia, _) = node.customer(2, "Bia Lima").await;
    for n in 1..=7 {
        node.deposit(&ana, n).await;
        if n % 2 == 0 {
            node.deposit(&bia, n).await;
        }
    }
    let read_all = async |node: &TestNode, token: &str| {
        let mut all = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let path = match &before {
                None => "/api/v1/statement?limit=3".to_string(),
                Some(b) => format!("/api/v1/statement?limit=3&before={b}"),
            };
            let (status, page) = node.call("GET", &path, Some(token), None).await;
            assert_eq!(status, 200, "{page}");
            let entries = page["entries"].as_array().expect("entries").clone();
            assert!(entries.len() <= 3);
            all.extend(entries);
            match page["next"].as_str() {
                Some(next) => before = Some(next.to_string()),
                None => return all,
            }
        }
    };
    let ana_lines = read_all(&node, &ana).await;
    let bia_lines = read_all(&node, &bia).await;
    assert_eq!(ana_lines.len(), 7);
    assert_eq!(bia_lines.len(), 3);
    for lines in [&ana_lines, &bia_lines] {
        let ids = ids(lines);
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "not newest first: {ids:?}");
    }
    let amounts: Vec<i64> = ana_lines.iter().map(|e| e["amount_cents"].as_i64().expect("amount")).collect();
    assert_eq!(amounts, vec![7, 6, 5, 4, 3, 2, 1]);

    let dir = node.stop().await;
    let node = in_process::spawn_node_in(dir).await;
    let ana = node.sign_in("c1@example.com", bank_testkit::http::PASSWORD).await;
    assert_eq!(ids(&read_all(&node, &ana).await), ids(&ana_lines), "the chain survives a restart");
}

/// A cursor is a line of the statement being read: another account's line, or a number that is
/// no line at all, is 400 `invalid_input` (it cannot be a `next` this statement handed out).
#[tokio::test]
async fn a_statement_cursor_that_is_not_a_line_of_this_account_is_invalid_input() {
    let node = in_process::spawn_node().await;
    let (ana, _) = node.customer(1, "Ana Souza").await;
    let (bia, _) = node.customer(2, "Bia Lima").await;
    node.deposit(&ana, 100).await;
    node.deposit(&bia, 200).await;
    let bia_line = ids(&node.statement_all(&bia, None).await)[0];
    let ana_line = ids(&node.statement_all(&ana, None).await)[0];
    for before in [bia_line, 999_999] {
        let (status, body) = node.call("GET", &format!("/api/v1/statement?before={before}"), Some(&ana), None).await;
        assert_eq!(status, 400, "before={before}: {body}");
        assert_eq!(body["code"], "invalid_input", "{body}");
    }
    let (status, page) = node.call("GET", &format!("/api/v1/statement?before={ana_line}"), Some(&ana), None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["entries"].as_array().expect("entries").len(), 0, "nothing is older than the first line");
}

/// With room for one record in memory, a key repeated after others pushed it out is read back
/// from disk: the same line comes back and no money moves — also after a restart, and a
/// different body under it is still a mismatch. The cache never holds more than its limit.
#[tokio::test]
async fn a_key_repeated_after_it_left_the_memory_cache_replays_its_first_outcome() {
    let node = in_process::spawn_node_with(|c| c.limits.idempotency_cache_max = 1).await;
    let (ana, _) = node.customer(1, "Ana Souza").await;
    let first_key = "0190d9a4-0000-7000-8000-000000000001";
    let (status, first) = deposit_with_key(&node, &ana, 500, first_key).await;
    assert_eq!(status, 201, "{first}");
    for n in 2..=6 {
        let (status, body) =
            deposit_with_key(&node, &ana, 10, &format!("0190d9a4-0000-7000-8000-00000000000{n}")).await;
        assert_eq!(status, 201, "{body}");
    }
    assert!(node.metric("bank_idempotency_cached").await <= 1.0);
    let balance = node.balance(&ana).await;

    let (status, again) = deposit_with_key(&node, &ana, 500, first_key).await;
    assert_eq!((status, &again["id"]), (201, &first["id"]), "{again}");
    assert_eq!(node.balance(&ana).await, balance, "the repeat moved money");
    let (status, mismatch) = deposit_with_key(&node, &ana, 501, first_key).await;
    assert_eq!((status, mismatch["code"].as_str()), (422, Some("idempotency_mismatch")), "{mismatch}");

    let dir = node.stop().await;
    let node = in_process::spawn_node_in_with(dir, |c| c.limits.idempotency_cache_max = 1).await;
    let ana = node.sign_in("c1@example.com", bank_testkit::http::PASSWORD).await;
    let (status, again) = deposit_with_key(&node, &ana, 500, first_key).await;
    assert_eq!((status, &again["id"]), (201, &first["id"]), "after a restart: {again}");
    assert_eq!(node.balance(&ana).await, balance);
}

/// Past its retention period a record is deleted in the background, and its key is a new
/// request again (API.md: remembered for at least the retention period, then forgotten).
#[tokio::test]
async fn a_key_past_its_retention_is_expired_from_disk_and_is_a_new_request_again() {
    let tweak = |c: &mut bank_node::config::NodeConfig| {
        c.limits.idempotency_cache_max = 1;
        c.limits.idempotency_retention_ms = 300;
    };
    let node = in_process::spawn_node_with(tweak).await;
    let (ana, _) = node.customer(1, "Ana Souza").await;
    let key = "0190d9a4-0000-7000-8000-0000000000aa";
    let (status, first) = deposit_with_key(&node, &ana, 500, key).await;
    assert_eq!(status, 201, "{first}");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    // Another request pushes the key out of memory; its batch expires the old record.
    node.deposit(&ana, 1).await;
    node.deposit(&ana, 1).await;
    assert!(node.metric("bank_idempotency_expired_total").await >= 1.0);
    let (status, again) = deposit_with_key(&node, &ana, 500, key).await;
    assert_eq!(status, 201, "{again}");
    assert_ne!(again["id"], first["id"], "an expired key replayed its first outcome");
    assert_eq!(node.balance(&ana).await.0, 1_002);
}

/// The bulk pre-load (`bank bench --preload-entries`) writes history the node reads as its own:
/// statements page through it, money is conserved (Σ balances = Σ deposits), and the node
/// goes on appending to the same chains.
#[tokio::test]
async fn preloaded_history_is_consistent_and_the_node_carries_on_from_it() {
    let node = in_process::spawn_node().await;
    let (ana, _) = node.customer(1, "Ana Souza").await;
    node.customer(2, "Bia Lima").await;
    node.deposit(&ana, 1_000).await;
    let dir = node.stop().await;

    let data_dir = TestNode::data_dir(dir.path());
    let done = tokio::task::spawn_blocking(move || bank_node::storage::preload::preload(&data_dir, 1_001, |_| {}))
        .await
        .expect("task")
        .expect("preloads");
    assert_eq!((done.accounts, done.transfers, done.entries), (2, 499, 1_000));

    let node = in_process::spawn_node_in(dir).await;
    let ana = node.sign_in("c1@example.com", bank_testkit::http::PASSWORD).await;
    let bia = node.sign_in("c2@example.com", bank_testkit::http::PASSWORD).await;
    let seed = 1_000_000;
    let (ana_posted, _, _) = node.balance(&ana).await;
    let (bia_posted, _, _) = node.balance(&bia).await;
    assert_eq!(ana_posted + bia_posted, 1_000 + 2 * seed, "money was created or lost");
    let lines = node.statement_all(&ana, None).await.len() + node.statement_all(&bia, None).await.len();
    assert_eq!(lines, 1 + 2 + 2 * 499, "one deposit, two seed deposits, two lines per transfer");
    node.deposit(&ana, 5).await;
    let newest = &node.statement_all(&ana, None).await[0];
    assert_eq!(newest["amount_cents"], 5, "a new line continues the preloaded chain");
}
