//! Durability: every acknowledged operation survives `kill -9` of a real `bank node` process.
//!
//! Load runs against the node; mid-load the process gets SIGKILL. After a restart on the same data
//! directory, every acknowledged transfer is there with the status it was acknowledged with; the
//! requests that were in flight are retried with their idempotency keys (each either replays its
//! committed outcome or executes now), after which every account's balance equals exactly what
//! the known outcomes imply, and the sum equals the deposits.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bank_testkit::http::{Call, individual_account, wait_healthy};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// The `bank` binary under test.
const BANK: &str = env!("CARGO_BIN_EXE_bank");

const ACCOUNTS: usize = 8;
const DEPOSIT_CENTS: i64 = 1_000_000;

fn start_node(data: &Path, port: u16) -> Child {
    Command::new(BANK)
        .args(["node", "--id", "1", "--name", "Eleven", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn bank node")
}

async fn call(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    idem: Option<&str>,
    body: Option<Value>,
) -> reqwest::Result<(u16, Value)> {
    Ok(Call::new(method, url).token(token).idem(idem).json(body).try_send(http).await?.pair())
}

/// A transfer request the load sent: its key, body and what (if anything) was acknowledged.
#[derive(Clone, Debug)]
struct Sent {
    key: String,
    from: usize,
    to: usize,
    amount: i64,
    acked: Option<(String, String)>, // (transfer id, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_operations_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("bank-1");
    let port = bank_testkit::ports::one();
    let url = format!("http://127.0.0.1:{port}");
    let http = bank_testkit::http::client(Some(Duration::from_secs(10)));
    let mut child = start_node(&data, port);
    wait_healthy(&http, &url, Duration::from_secs(20)).await;

    // Customers, each funded; all acknowledged before the load starts.
    let mut tokens = Vec::new();
    let mut numbers = Vec::new();
    for i in 0..ACCOUNTS {
        let email = format!("d{i}@example.com");
        let body = individual_account(1000 + i as u64, &format!("Cliente {i}"), &email, "a long test passphrase");
        let (s, acc) =
            call(&http, "POST", &format!("{url}/api/v1/accounts"), None, None, Some(body)).await.expect("open");
        assert_eq!(s, 201, "{acc}");
        numbers.push(acc["number"].as_str().expect("number").to_string());
        let (s, session) = call(
            &http,
            "POST",
            &format!("{url}/api/v1/sessions"),
            None,
            None,
            Some(json!({ "email": email, "password": "a long test passphrase" })),
        )
        .await
        .expect("sign in");
        assert_eq!(s, 201, "{session}");
        let token = session["token"].as_str().expect("token").to_string();
        let (s, _) = call(
            &http,
            "POST",
            &format!("{url}/api/v1/deposits"),
            Some(&token),
            Some(&uuid::Uuid::new_v4().to_string()),
            Some(json!({ "amount_cents": DEPOSIT_CENTS, "method": "cash" })),
        )
        .await
        .expect("deposit");
        assert_eq!(s, 201);
        tokens.push(token);
    }

    // Load: 16 workers sending transfers until the node dies.
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..16usize {
        let (http, url, tokens, numbers, sent) =
            (http.clone(), url.clone(), tokens.clone(), numbers.clone(), sent.clone());
        workers.push(tokio::spawn(async move {
            let mut n = w;
            loop {
                n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let from = (n >> 33) % ACCOUNTS;
                let to = (from + 1 + (n >> 40) % (ACCOUNTS - 1)) % ACCOUNTS;
                let amount = 1 + (n >> 20) as i64 % 5_000;
                let key = uuid::Uuid::new_v4().to_string();
                let index = {
                    let mut s = sent.lock().expect("lock");
                    s.push(Sent { key: key.clone(), from, to, amount, acked: None });
                    s.len() - 1
                };
                let body =
                    json!({ "legs": [{ "to": { "bank_id": 1, "number": numbers[to] }, "amount_cents": amount }] });
                match call(
                    &http,
                    "POST",
                    &format!("{url}/api/v1/transfers"),
                    Some(&tokens[from]),
                    Some(&key),
                    Some(body),
                )
                .await
                {
                    Ok((201, t)) => {
                        let id = t["id"].as_str().expect("id").to_string();
                        let status = t["status"].as_str().expect("status").to_string();
                        sent.lock().expect("lock")[index].acked = Some((id, status));
                    }
                    Ok((status, body)) => panic!("unexpected answer {status}: {body}"),
                    Err(_) => return, // the node is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("sigkill");
    let _ = child.wait();
    for w in workers {
        w.await.expect("worker");
    }
    let sent = sent.lock().expect("lock").clone();
    let acked = sent.iter().filter(|s| s.acked.is_some()).count();
    assert!(acked > 50, "the load should have had time to run (acked {acked})");

    // Restart on the same data; sessions are durable too.
    let mut child = start_node(&data, port);
    wait_healthy(&http, &url, Duration::from_secs(20)).await;

    // Every acknowledged transfer is present, as acknowledged.
    for s in sent.iter() {
        if let Some((id, status)) = &s.acked {
            let (code, t) =
                call(&http, "GET", &format!("{url}/api/v1/transfers/{id}"), Some(&tokens[s.from]), None, None)
                    .await
                    .expect("get");
            assert_eq!(code, 200, "acknowledged transfer {id} lost after kill -9: {t}");
            assert_eq!(t["status"].as_str(), Some(status.as_str()));
        }
    }
    // Resolve the in-flight ones by retrying with the same key, then check exact balances.
    let mut expected: HashMap<usize, i64> = (0..ACCOUNTS).map(|i| (i, DEPOSIT_CENTS)).collect();
    let mut outcomes: Vec<(Sent, String)> = Vec::new();
    for s in sent.iter() {
        let status = match &s.acked {
            Some((_, status)) => status.clone(),
            None => {
                let body =
                    json!({ "legs": [{ "to": { "bank_id": 1, "number": numbers[s.to] }, "amount_cents": s.amount }] });
                let (code, t) = call(
                    &http,
                    "POST",
                    &format!("{url}/api/v1/transfers"),
                    Some(&tokens[s.from]),
                    Some(&s.key),
                    Some(body),
                )
                .await
                .expect("retry");
                assert_eq!(code, 201, "{t}");
                t["status"].as_str().expect("status").to_string()
            }
        };
        outcomes.push((s.clone(), status));
    }
    // Outcomes are applied in commit order; the balance check only needs the net effect.
    for (s, status) in &outcomes {
        if status == "completed" {
            *expected.get_mut(&s.from).expect("from") -= s.amount;
            *expected.get_mut(&s.to).expect("to") += s.amount;
        }
    }
    let mut total = 0;
    for (i, token) in tokens.iter().enumerate() {
        let (code, me) = call(&http, "GET", &format!("{url}/api/v1/me"), Some(token), None, None).await.expect("me");
        assert_eq!(code, 200, "{me}");
        let posted = me["balance"]["posted_cents"].as_i64().expect("posted");
        assert!(me["balance"]["available_cents"].as_i64().expect("available") >= 0);
        assert_eq!(posted, expected[&i], "account {i} balance after restart");
        total += posted;
    }
    assert_eq!(total, DEPOSIT_CENTS * ACCOUNTS as i64, "money conserved across kill -9");
    let _ = child.kill();
    let _ = child.wait();
}
