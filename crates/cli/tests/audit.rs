//! `bank audit` end to end with real processes: a `bank up` consortium of three banks with
//! deposits, withdrawals and in-bank transfers passes every invariant (exit 0); the audit route
//! refuses unsigned, member-signed and replayed requests (and the operator's key opens no member
//! route); a bank killed with SIGKILL is named unreachable and the audit exits non-zero.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use bank_core::ids::BankId;
use bank_node::consortium::{SigningKey, read_signing_key};
use bank_node::interbank::PING_PATH;
use bank_node::interbank::audit::AUDIT_PATH;
use bank_testkit::http::{Call, open_and_sign_in};
use bank_testkit::signer::{OPERATOR, SignedHeaders, sign_now};
use bank_testkit::up::Up;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// The `bank` binary under test.
const BANK: &str = env!("CARGO_BIN_EXE_bank");
const BANKS: u32 = 3;

/// Opens an account for CPF base `n` at `bank` and signs in: (token, account number, its key).
async fn customer(http: &reqwest::Client, bank: &str, n: u64) -> (String, String, String) {
    let (token, account) = open_and_sign_in(http, bank, n, &format!("Customer {n}")).await;
    let text = |v: &Value| v.as_str().expect("text").to_string();
    (token, text(&account["number"]), text(&account["pix_keys"][0]["key"]))
}

/// POSTs `body` to `url` (with the session `token`, if any).
async fn call(http: &reqwest::Client, method: &str, url: String, token: Option<&str>, body: Value) -> (u16, Value) {
    Call::new(method, url).token(token).json(Some(body)).send(http).await.pair()
}

/// Deposits, withdrawals and an in-bank transfer at every bank; returns each bank's two
/// customers as (token, account number).
async fn business(http: &reqwest::Client, up: &Up) -> Vec<[(String, String); 2]> {
    let mut customers = Vec::new();
    for id in 1..=BANKS {
        let bank = up.url(id);
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
    Command::new(BANK)
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
    Call::new("GET", format!("{base}{path}")).signed(signed).send(http).await.pair()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_checks_a_live_consortium_and_names_a_dead_bank() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let http = bank_testkit::http::client(Some(Duration::from_secs(10)));
    let up = Up::start_new(BANK, &data, BANKS);
    up.wait_all_healthy(&http).await;
    let customers = business(&http, &up).await;
    // A cross-bank transfer (two-phase commit): bank 1's Ana pays 1,000 to bank 2's Bia.
    let pay = json!({ "legs": [{ "to": { "bank_id": 2, "number": customers[1][1].1 }, "amount_cents": 1_000 }] });
    let (status, body) =
        call(&http, "POST", format!("{}/api/v1/transfers", up.url(1)), Some(&customers[0][0].0), pay).await;
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
    assert_eq!(statuses, [(1, "holds"), (2, "holds"), (3, "holds"), (5, "holds"), (7, "holds"), (8, "holds")]);
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
    let bank2 = up.url(2);
    let operator = read_signing_key(&data.join("keys/operator.key")).expect("operator key");
    let member = read_signing_key(&data.join("keys/bank-1.key")).expect("bank 1 key");
    let signed = |key: &SigningKey, from: BankId, path: &str| sign_now(key, from, BankId(2), "GET", path, b"");
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
