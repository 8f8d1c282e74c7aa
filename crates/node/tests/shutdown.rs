//! A node stops for real: after `run_until` returns, every task and thread it started is gone
//! and its port, data-directory lock and SQLite files are released — so one process can start
//! and stop banks again and again without leaking, and a restart on the same data succeeds.

use bank_testkit::in_process as common;

use std::net::SocketAddr;

use serde_json::{Value, json};

/// The tests below count this process's open file descriptors: they must not run at once.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Iterations that warm up pools and caches before the descriptor count is taken as the base.
const WARM_UP: usize = 3;
/// Descriptors a count may differ by for reasons that are not a leak (a lingering socket).
const FD_SLACK: usize = 4;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").expect("/proc/self/task").count()
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

/// Every task the stopped nodes spawned ends (within a short grace for connection tasks that
/// are closing): the runtime is back to the `base` count the test started with.
async fn assert_tasks_end(base: usize, round: usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while alive_tasks() > base && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(alive_tasks() <= base, "round {round}: {} tasks still alive after the stop, {base} before", alive_tasks());
}

/// Nothing listens on `addr` any more: it can be bound again.
fn assert_port_free(addr: SocketAddr) {
    if let Err(e) = std::net::TcpListener::bind(addr) {
        panic!("port {addr} still taken after the node stopped: {e}");
    }
}

/// The (descriptor, thread) counts, one pair per iteration, stay flat after the warm-up.
fn assert_no_growth(counts: &[(usize, usize)]) {
    let (fds, threads) = counts[WARM_UP - 1];
    let worst_fds = counts.iter().skip(WARM_UP).map(|c| c.0).max().unwrap_or(fds);
    let worst_threads = counts.iter().skip(WARM_UP).map(|c| c.1).max().unwrap_or(threads);
    assert!(worst_fds <= fds + FD_SLACK, "open descriptors grew from {fds} to {worst_fds}: {counts:?}");
    // Blocking-pool threads idle out on their own schedule; the node's own threads must not pile up.
    assert!(worst_threads <= threads + FD_SLACK, "threads grew from {threads} to {worst_threads}: {counts:?}");
}

fn available(balance: &Value) -> i64 {
    balance["balance"]["available_cents"].as_i64().expect("available_cents")
}

/// 60 starts and stops of one bank on the same data directory: each start succeeds (the lock
/// file was released), the data and the session survive every restart, the port is free after
/// each stop, every task the node spawned ends, and the process's open descriptors and threads
/// do not grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_sixty_times_in_one_process_leaks_nothing_and_keeps_its_data() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let base_tasks = alive_tasks();
    let node = common::spawn_node().await;
    let (token, _) = node.customer(1, "Ana Souza").await;
    node.deposit(&token, 10_000).await;
    let mut dir = node.stop().await;
    let mut counts = Vec::new();
    for round in 0..60 {
        let node = common::spawn_node_in(dir).await;
        let (status, me) = node.call("GET", "/api/v1/me", Some(&token), None).await;
        assert_eq!((status, available(&me)), (200, 10_000 + round), "round {round}: {me}");
        // One more centavo each round: every restart must find every earlier round's deposit.
        node.deposit(&token, 1).await;
        let addr = node.addr;
        dir = node.stop().await;
        assert_port_free(addr);
        assert_tasks_end(base_tasks, round as usize).await;
        counts.push((open_fds(), threads()));
    }
    assert_no_growth(&counts);
}

/// A two-bank consortium, started, used for a cross-bank transfer and stopped eight times in one
/// process: both ports are free after each stop, every task the nodes spawned ends (the driver's
/// outboxes and tickers with their node), and open descriptors and threads do not grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consortium_started_and_stopped_eight_times_leaks_nothing() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let base_tasks = alive_tasks();
    let mut counts = Vec::new();
    for round in 0..WARM_UP + 5 {
        let c = common::cluster(2).await;
        let (ana, _) = c.bank(1).customer(1, "Ana Souza").await;
        let (_, bia) = c.bank(2).customer(2, "Bia Lima").await;
        c.bank(1).deposit(&ana, 5_000).await;
        let to = json!({ "bank_id": 2, "number": bia["number"] });
        let body = json!({ "legs": [{ "to": to, "amount_cents": 1_000 }] });
        let (status, transfer) = c.bank(1).call("POST", "/api/v1/transfers", Some(&ana), Some(body)).await;
        assert_eq!((status, transfer["status"].as_str()), (201, Some("completed")), "round {round}: {transfer}");
        let addrs: Vec<SocketAddr> = c.nodes.iter().map(|n| n.addr).collect();
        for node in c.nodes {
            node.stop().await;
        }
        for addr in addrs {
            assert_port_free(addr);
        }
        assert_tasks_end(base_tasks, round).await;
        counts.push((open_fds(), threads()));
    }
    assert_no_growth(&counts);
}
