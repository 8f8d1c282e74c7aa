//! The seed-compatible API with real processes: `bank up --seed-compat` passes the setting to
//! every bank (each says so in its log), and a load shaped like the original's `tests.py` —
//! account creations, then deposits, then Pix across banks, each phase sent to every bank at
//! once — goes through `/operations`, conserves money and leaves `bank audit` clean; so does a
//! small `bank bench --mode seed-ops` on the same banks.

use std::process::Command;

use bank_core::document::Cpf;
use bank_testkit::up::Up;
use futures::future::join_all;
use serde_json::{Value, json};

const BANK: &str = env!("CARGO_BIN_EXE_bank");
const BANKS: u32 = 3;
/// Accounts opened at each bank.
const PER_BANK: u64 = 6;
/// Pix each account sends (to accounts at the next bank).
const PIX_EACH: u64 = 3;
/// What each account deposits, in reais (the scripts send integers in reais).
const DEPOSIT_REAIS: i64 = 200;

fn cpf(bank: u32, i: u64) -> String {
    Cpf::from_base(u64::from(bank) * 1000 + i).formatted()
}

async fn post(http: &reqwest::Client, base: &str, body: Value) -> (u16, String) {
    let response = http.post(format!("{base}/operations")).json(&body).send().await.expect("POST /operations");
    (response.status().as_u16(), response.text().await.expect("body"))
}

fn create(bank: u32, i: u64) -> Value {
    let doc = cpf(bank, i);
    json!({ "operation": "create", "clientCpfCNPJ": doc, "dataOperation": {
        "name1": format!("Cliente {bank}-{i}"), "cpfCNPJ1": doc, "name2": "", "cpfCNPJ2": "",
        "email": format!("c{bank}-{i}@example.com"), "password": "a long seed passphrase",
        "telephone": "(75) 99999-1234", "isFisicAccount": "True", "isJoinetAccount": "False" } })
}

/// Balance of every account of `bank`, by `/account/data/<n>` (numbers 1..=PER_BANK), in centavos.
async fn bank_total(http: &reqwest::Client, base: &str) -> i64 {
    let mut total = 0;
    for n in 1..=PER_BANK {
        let account: Value =
            http.get(format!("{base}/account/data/{n}")).send().await.expect("data").json().await.expect("json");
        assert_eq!(account["blockedBalance"], "0.00", "nothing stays held: {account}");
        let reais: f64 = account["balance"].as_str().expect("balance").parse().expect("number");
        total += (reais * 100.0).round() as i64;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tests_py_like_load_through_operations_at_every_bank_leaves_the_audit_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let base_port = bank_testkit::ports::consecutive(BANKS as u16);
    let up = Up::start(BANK, &data, BANKS, base_port, &["--base-port", &base_port.to_string(), "--seed-compat"]);
    let http = reqwest::Client::new();
    up.wait_all_healthy(&http).await;
    for id in 1..=BANKS {
        let log = std::fs::read_to_string(data.join(format!("bank-{id}/node.log"))).unwrap_or_default();
        assert!(log.contains("SEED-COMPATIBLE API ON"), "bank {id} must say so in its log: {log}");
    }

    // Every bank at once, as tests.py sends its threads.
    let creates = (1..=BANKS).flat_map(|b| (1..=PER_BANK).map(move |i| (b, i)));
    let answers = join_all(creates.map(|(b, i)| {
        let (http, base) = (http.clone(), up.url(b));
        async move { post(&http, &base, create(b, i)).await }
    }))
    .await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "creations: {answers:?}");

    let deposits = (1..=BANKS).flat_map(|b| (1..=PER_BANK).map(move |i| (b, i)));
    let answers = join_all(deposits.map(|(b, i)| {
        let (http, base) = (http.clone(), up.url(b));
        let body = json!({ "operation": "deposit", "clientCpfCNPJ": cpf(b, i),
            "dataOperation": { "value": DEPOSIT_REAIS, "method": "money" } });
        async move { post(&http, &base, body).await }
    }))
    .await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "deposits: {answers:?}");

    // Each account pays accounts at the next bank; amounts in reais, strings and integers.
    let pix = (1..=BANKS).flat_map(|b| (1..=PER_BANK).flat_map(move |i| (0..PIX_EACH).map(move |k| (b, i, k))));
    let answers = join_all(pix.map(|(b, i, k)| {
        let to_bank = b % BANKS + 1;
        let to = cpf(to_bank, (i + k) % PER_BANK + 1);
        let value = if k % 2 == 0 { json!(format!("{}.{:02}", 10 + k, i)) } else { json!(7) };
        let body = json!({ "operation": "sendPix", "clientCpfCNPJ": cpf(b, i), "dataOperation": {
            "value": value, "keyPix": to, "idBank": to_bank.to_string(), "bankNameReceiver": "", "nameReceiver": "" } });
        let (http, base) = (http.clone(), up.url(b));
        async move { post(&http, &base, body).await }
    }))
    .await;
    let done = answers.iter().filter(|(s, _)| *s == 200).count();
    // Under load a Pix may still be pending at the 5 s deadline (504); none may be refused.
    assert!(answers.iter().all(|(s, _)| *s == 200 || *s == 504), "Pix: {answers:?}");
    assert!(done > 0, "some Pix completed: {answers:?}");

    up.assert_audit_clean(BANK, "the load");

    let mut total = 0;
    for id in 1..=BANKS {
        total += bank_total(&http, &up.url(id)).await;
    }
    let deposited = i64::from(BANKS) * PER_BANK as i64 * DEPOSIT_REAIS * 100;
    assert_eq!(total, deposited, "money is conserved across the banks");

    // `bank bench --mode seed-ops` on the same banks, small: it runs, counts every operation and
    // finds the money conserved.
    let bench = Command::new(BANK)
        .args(["bench", "--mode", "seed-ops", "--accounts", "2", "--transfers", "60", "--concurrency", "4"])
        .args(["--deposit-cents", "100000", "--json", "--consortium"])
        .arg(data.join("consortium.toml"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run bank bench");
    let out = String::from_utf8_lossy(&bench.stdout);
    assert_eq!(bench.status.code(), Some(0), "bench: {out}{}", String::from_utf8_lossy(&bench.stderr));
    let summary: Value = serde_json::from_str(out.lines().last().unwrap_or_default()).expect("bench JSON");
    assert_eq!((summary["mode"].as_str(), summary["conserved"].as_bool()), (Some("seed-ops"), Some(true)), "{out}");
    let executed = summary["completed"].as_u64().unwrap_or(0) + summary["failed"].as_u64().unwrap_or(0);
    assert!(executed > 0, "{out}");
    // Under load a Pix may still be pending at the 5 s deadline (counted, never retried).
    assert_eq!(executed + summary["pending"].as_u64().unwrap_or(0), 60, "every operation is counted once: {out}");
    assert_eq!(summary["errors"], summary["pending"], "no error but pending: {out}");
    up.assert_audit_clean(BANK, "the bench");
    assert!(up.stop(), "bank up stops cleanly");
}
