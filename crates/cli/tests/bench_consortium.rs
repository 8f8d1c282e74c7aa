//! `bank bench --mode cross-bank` and `--mode packet` end to end against a real three-bank
//! consortium started by `bank up` (each bank its own process): both runs exit 0, execute
//! transfers without errors, and find the money conserved across every bank.

use std::path::Path;
use std::time::Duration;

use bank_testkit::up::Up;
use serde_json::Value;

/// The `bank` binary under test.
const BANK: &str = env!("CARGO_BIN_EXE_bank");
const BANKS: u32 = 3;

/// Runs `bank bench --json` with `args`; asserts it exited 0 and returns its JSON summary.
async fn bench(consortium: &Path, args: &[&str]) -> Value {
    let output = tokio::process::Command::new(BANK)
        .arg("bench")
        .arg("--consortium")
        .arg(consortium)
        .args(args)
        .arg("--json")
        .env_remove("BANK_TARGET")
        .env_remove("BANK_BENCH_SEED")
        .output()
        .await
        .expect("run bank bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bank bench {args:?} failed ({}):\n{stdout}\n{stderr}", output.status);
    let line = stdout.lines().last().unwrap_or_else(|| panic!("no output from bank bench {args:?}:\n{stderr}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
}

fn assert_clean_run(summary: &Value, mode: &str, transfers: u64) {
    assert_eq!(summary["mode"], mode, "{summary}");
    assert_eq!(summary["banks"], BANKS, "{summary}");
    assert_eq!(summary["accounts_total"], 4 * BANKS, "{summary}");
    assert_eq!(summary["conserved"], true, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
    assert_eq!(summary["held_cents"], 0, "{summary}");
    let completed = summary["completed"].as_u64().expect("completed");
    let failed = summary["failed"].as_u64().expect("failed");
    assert!(completed > 0, "{summary}");
    assert_eq!(completed + failed, transfers, "every transfer ended completed or failed: {summary}");
    assert_eq!(summary["deposited_cents"], summary["posted_cents"], "{summary}");
    for field in ["p50", "p90", "p99"] {
        assert!(summary["latency_ms"][field].as_f64().is_some_and(|ms| ms > 0.0), "latency_ms.{field}: {summary}");
    }
    assert!(summary["ops_per_s"].as_f64().is_some_and(|ops| ops > 0.0), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_bank_and_packet_benches_conserve_money_across_three_banks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let http = bank_testkit::http::client(Some(Duration::from_secs(5)));
    let up = Up::start_new(BANK, &data, BANKS);
    up.wait_all_healthy(&http).await;
    let consortium = data.join("consortium.toml");

    let summary =
        bench(&consortium, &["--mode", "cross-bank", "--accounts", "4", "--transfers", "300", "--concurrency", "8"])
            .await;
    assert_clean_run(&summary, "cross-bank", 300);

    let summary =
        bench(&consortium, &["--mode", "packet", "--accounts", "4", "--transfers", "100", "--concurrency", "8"]).await;
    assert_clean_run(&summary, "packet", 100);

    // A packet needs three banks; asking for two is refused before anything is opened.
    let output = tokio::process::Command::new(BANK)
        .args(["bench", "--mode", "packet", "--banks", "2", "--consortium"])
        .arg(&consortium)
        .output()
        .await
        .expect("run bank bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("at least 3 banks"), "{stderr}");

    assert!(up.stop(), "bank up exits cleanly after SIGTERM");
}

/// `bank bench --accounts-file` opens its accounts once and reuses them: the second run checks
/// the money against what the accounts held before it (money that came in between — a deposit
/// here, a `--preload-entries` history in the growth table — is no loss or gain of the run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_bank_bench_reusing_its_accounts_checks_them_against_their_balances_before_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let http = bank_testkit::http::client(Some(Duration::from_secs(5)));
    let up = Up::start_new(BANK, &data, 1);
    up.wait_all_healthy(&http).await;
    let file = dir.path().join("accounts.jsonl");
    let run = async || {
        let output = tokio::process::Command::new(BANK)
            .args(["bench", "--mode", "in-bank", "--accounts", "3", "--transfers", "200", "--concurrency", "4"])
            .args(["--json", "--target", &up.url(1), "--accounts-file"])
            .arg(&file)
            .env_remove("BANK_BENCH_SEED")
            .output()
            .await
            .expect("run bank bench");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_str::<Value>(stdout.lines().last().expect("a line")).expect("JSON")
    };
    let first = run().await;
    assert_eq!((first["conserved"].as_bool(), first["accounts_total"].as_u64()), (Some(true), Some(3)), "{first}");
    let saved: Value =
        serde_json::from_str(std::fs::read_to_string(&file).expect("saved").lines().next().expect("one"))
            .expect("JSON");
    let deposit = http
        .post(format!("{}/api/v1/deposits", up.url(1)))
        .bearer_auth(saved["token"].as_str().expect("token"))
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&serde_json::json!({ "amount_cents": 12_345, "method": "cash" }))
        .send()
        .await
        .expect("deposit");
    assert_eq!(deposit.status(), 201);
    let second = run().await;
    assert_eq!(second["conserved"], true, "{second}");
    let held_before = first["posted_cents"].as_i64().expect("posted") + 12_345;
    assert_eq!(second["deposited_cents"].as_i64(), Some(held_before), "the baseline is read before the run: {second}");
    assert_eq!(second["posted_cents"].as_i64(), Some(held_before), "{second}");
    assert!(up.stop(), "bank up exits cleanly after SIGTERM");
}
