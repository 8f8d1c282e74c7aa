//! `bank audit` end to end with real processes: a `bank up` consortium of three banks with
//! deposits, withdrawals and in-bank transfers passes every invariant (exit 0); the audit route
//! refuses unsigned, member-signed and replayed requests (and the operator's key opens no member
//! route); a bank killed with SIGKILL is named unreachable and the audit exits non-zero.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bank_core::ids::BankId;
use bank_node::consortium::{SigningKey, read_signing_key};
use bank_node::interbank::PING_PATH;
use bank_node::interbank::audit::AUDIT_PATH;
use bank_node::interbank::sign::{OPERATOR, SignedHeaders, fresh_nonce, sign, unix_now_ms};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

const BANKS: u32 = 3;

/// A port P with P, P+1 and P+2 free right now.
fn free_ports() -> u16 {
    for _ in 0..100 {
        let first = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = first.local_addr().expect("addr").port();
        if port > u16::MAX - 3 {
            continue;
        }
        let rest: Vec<_> = (1..BANKS as u16).map(|i| std::net::TcpListener::bind(("127.0.0.1", port + i))).collect();
        if rest.iter().all(Result::is_ok) {
            return port;
        }
    }
    panic!("no three consecutive free ports");
}

/// The `bank up` process; on drop it and every bank it started are killed.
struct Up {
    child: Child,
    data: PathBuf,
}

impl Up {
    fn start(data: &Path, base_port: u16) -> Up {
        let child = Command::new(env!("CARGO_BIN_EXE_bank"))
            .args(["up", "--banks", &BANKS.to_string(), "--base-port", &base_port.to_string(), "--data"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn bank up");
        Up { child, data: data.to_path_buf() }
    }

    fn pid_of(&self, id: u32) -> Option<i32> {
        let text = std::fs::read_to_string(self.data.join(format!("bank-{id}/pid"))).ok()?;
        text.trim().parse().ok()
    }

    fn stop(mut self) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        kill(pid, Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if self.child.try_wait().expect("wait").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("bank up did not stop after SIGTERM");
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            for id in 1..=BANKS {
                if let Some(pid) = self.pid_of(id) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn url(base_port: u16, id: u32) -> String {
    format!("http://127.0.0.1:{}", u32::from(base_port) + id - 1)
}

async fn wait_all_healthy(http: &reqwest::Client, base_port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in 1..=BANKS {
        loop {
            let ok = matches!(
                http.get(format!("{}/healthz", url(base_port, id))).send().await,
                Ok(r) if r.status().is_success()
            );
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "bank {id} did not become healthy");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn call(http: &reqwest::Client, method: &str, url: String, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = http.request(method.parse().expect("method"), url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Opens an account for CPF base `n` at `bank` and signs in: (token, account number, its key).
async fn customer(http: &reqwest::Client, bank: &str, n: u64) -> (String, String, String) {
    let email = format!("c{n}@example.com");
    let (status, account) = call(
        http,
        "POST",
        format!("{bank}/api/v1/accounts"),
        None,
        json!({
            "kind": "individual",
            "holders": [{ "name": format!("Customer {n}"), "document": bank_core::document::Cpf::from_base(n).as_str() }],
            "email": email, "phone": "+5575999990000", "password": "password123"
        }),
    )
    .await;
    assert_eq!(status, 201, "open: {account}");
    let (status, session) = call(
        http,
        "POST",
        format!("{bank}/api/v1/sessions"),
        None,
        json!({ "email": email, "password": "password123" }),
    )
    .await;
    assert_eq!(status, 201, "sign in: {session}");
    let text = |v: &Value| v.as_str().expect("text").to_string();
    (text(&session["token"]), text(&account["number"]), text(&account["pix_keys"][0]["key"]))
}

/// Deposits, withdrawals and an in-bank transfer at every bank; returns each bank's two
/// customers as (token, account number).
async fn business(http: &reqwest::Client, base_port: u16) -> Vec<[(String, String); 2]> {
    let mut customers = Vec::new();
    for id in 1..=BANKS {
        let bank = url(base_port, id);
        let (ana, ana_number, _) = customer(http, &bank, u64::from(id) * 10 + 1).await;
        let (bia, bia_number, bia_key) = customer(http, &bank, u64::from(id) * 10 + 2).await;
        let money = |amount: i64| json!({ "amount_cents": amount, "method": "cash" });
        let (status, body) = call(http, "POST", format!("{bank}/api/v1/deposits"), Some(&ana), money(10_000)).await;
        assert_eq!(status, 201, "deposit: {body}");
        let (status, body) = call(http, "POST", format!("{bank}/api/v1/deposits"), Some(&bia), money(700)).await;
        assert_eq!(status, 201, "deposit: {body}");
        let (status, body) =
            call(http, "POST", format!("{bank}/api/v1/withdrawals"), Some(&ana), json!({ "amount_cents": 1_500 }))
                .await;
        assert_eq!(status, 201, "withdraw: {body}");
        let pix = json!({ "legs": [{ "to": { "key": bia_key }, "amount_cents": 2_500 }] });
        let (status, body) = call(http, "POST", format!("{bank}/api/v1/transfers"), Some(&ana), pix).await;
        assert_eq!(status, 201, "transfer: {body}");
        assert_eq!(body["status"], "completed", "{body}");
        customers.push([(ana, ana_number), (bia, bia_number)]);
    }
    customers
}

fn audit(data: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bank"))
        .args(["audit", "--consortium"])
        .arg(data.join("consortium.toml"))
        .args(extra)
        .env_remove("BANK_OPERATOR_KEY")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run bank audit")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A `GET` of `path` at `base` with these authentication headers (none: unsigned).
async fn get_signed(http: &reqwest::Client, base: &str, path: &str, signed: Option<&SignedHeaders>) -> (u16, Value) {
    let mut request = http.get(format!("{base}{path}"));
    for (name, value) in signed.map(SignedHeaders::pairs).into_iter().flatten() {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_checks_a_live_consortium_and_names_a_dead_bank() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let base_port = free_ports();
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("client");
    let up = Up::start(&data, base_port);
    wait_all_healthy(&http, base_port).await;
    let customers = business(&http, base_port).await;
    // A cross-bank transfer (two-phase commit): bank 1's Ana pays 1,000 to bank 2's Bia.
    let pay = json!({ "legs": [{ "to": { "bank_id": 2, "number": customers[1][1].1 }, "amount_cents": 1_000 }] });
    let (status, body) =
        call(&http, "POST", format!("{}/api/v1/transfers", url(base_port, 1)), Some(&customers[0][0].0), pay).await;
    assert_eq!(status, 201, "cross-bank transfer: {body}");
    assert_eq!(body["status"], "completed", "{body}");

    // Every invariant holds.
    let clean = audit(&data, &["--wait-s", "5"]);
    let out = text(&clean);
    assert_eq!(clean.status.code(), Some(0), "{out}");
    assert!(out.contains("verdict: all invariants hold"), "{out}");
    for line in ["money is conserved", "no account has negative available money", "directories agree"] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    let json_run = audit(&data, &["--json", "--wait-s", "5"]);
    assert_eq!(json_run.status.code(), Some(0), "{}", text(&json_run));
    let report: Value = serde_json::from_slice(&json_run.stdout).expect("one JSON object");
    assert_eq!(report["verdict"], "all invariants hold", "{report}");
    let statuses: Vec<(u64, &str)> = report["invariants"]
        .as_array()
        .expect("invariants")
        .iter()
        .map(|i| (i["number"].as_u64().expect("number"), i["status"].as_str().expect("status")))
        .collect();
    assert_eq!(statuses, [(1, "holds"), (2, "holds"), (3, "holds"), (5, "holds"), (7, "holds")]);
    let banks = report["banks"].as_array().expect("banks");
    assert_eq!(banks.len(), BANKS as usize);
    // 10,000 + 700 deposited and 1,500 withdrawn at each bank; 1,000 moved from bank 1 to 2.
    let posted: Vec<&Value> = banks.iter().map(|b| &b["totals"]["posted_cents"]).collect();
    assert_eq!(posted, [&json!(8_200), &json!(10_200), &json!(9_200)], "{report}");
    for id in [0, 1] {
        let committed = banks[id]["totals"]["decisions"]["committed"].as_u64().unwrap_or(0);
        assert!(committed >= 1, "bank {} decided the cross-bank transfer: {report}", id + 1);
    }
    assert!(banks[0]["totals"]["coordinator_records"]["finished"].as_u64().unwrap_or(0) >= 1, "{report}");
    for bank in banks {
        // Settled: nothing held, every coordinated transaction finished (key registrations are
        // two-phase too once the directory is consortium-wide, so counts are not pinned here).
        assert_eq!(bank["totals"]["holds"], 0, "{bank}");
        let states = bank["totals"]["coordinator_records"].as_object().expect("records by state");
        assert!(states.keys().all(|state| state == "finished"), "{bank}");
        assert_eq!(bank["totals"]["deposits_cents"], 10_700, "{bank}");
        assert_eq!(bank["totals"]["withdrawals_cents"], 1_500, "{bank}");
        assert_eq!(bank["totals"]["accounts"], 2, "{bank}");
    }

    // The audit route believes the operator only, once per request.
    let bank2 = url(base_port, 2);
    let operator = read_signing_key(&data.join("keys/operator.key")).expect("operator key");
    let member = read_signing_key(&data.join("keys/bank-1.key")).expect("bank 1 key");
    let signed = |key: &SigningKey, from: BankId, path: &str| {
        sign(key, from, BankId(2), "GET", path, b"", unix_now_ms(), fresh_nonce().expect("nonce"))
    };
    let (status, body) = get_signed(&http, &bank2, AUDIT_PATH, None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")), "unsigned: {body}");
    let (status, body) = get_signed(&http, &bank2, AUDIT_PATH, Some(&signed(&member, BankId(1), AUDIT_PATH))).await;
    assert_eq!(status, 401, "signed by a member: {body}");
    let by_operator = signed(&operator, OPERATOR, AUDIT_PATH);
    let (status, body) = get_signed(&http, &bank2, AUDIT_PATH, Some(&by_operator)).await;
    assert_eq!(status, 200, "signed by the operator: {body}");
    assert_eq!((body["bank_id"].as_u64(), body["truncated"].as_bool()), (Some(2), Some(false)), "{body}");
    assert_eq!(body["accounts"]["items"].as_array().map(Vec::len), Some(2), "{body}");
    let (status, body) = get_signed(&http, &bank2, AUDIT_PATH, Some(&by_operator)).await;
    assert_eq!(status, 401, "the same operator request again (replay): {body}");
    let (status, body) = get_signed(&http, &bank2, PING_PATH, Some(&signed(&operator, OPERATOR, PING_PATH))).await;
    assert_eq!(status, 401, "the operator's key on a member route: {body}");

    // The wrong key is refused before anything is read.
    let wrong = audit(&data, &["--operator-key", data.join("keys/bank-1.key").to_str().expect("path")]);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(text(&wrong).contains("is not the operator key"), "{}", text(&wrong));

    // A dead bank: named, and no verdict of success.
    let third = up.pid_of(3).expect("bank 3's pid");
    kill(Pid::from_raw(third), Signal::SIGKILL).expect("SIGKILL bank 3");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dead = audit(&data, &["--wait-s", "1"]);
    let out = text(&dead);
    assert_eq!(dead.status.code(), Some(4), "cannot tell: {out}");
    assert!(out.contains("unreachable banks:") && out.contains("bank 3 (Secret)"), "{out}");
    assert!(out.contains("verdict: CANNOT TELL (bank 3 unreachable"), "{out}");
    let dead = audit(&data, &["--wait-s", "0", "--json"]);
    let report: Value = serde_json::from_slice(&dead.stdout).expect("one JSON object");
    assert_eq!(dead.status.code(), Some(4));
    assert_eq!(report["verdict"], "cannot tell");
    assert_eq!(report["unreachable"][0]["bank_id"], 3, "{report}");
    up.stop();
}
