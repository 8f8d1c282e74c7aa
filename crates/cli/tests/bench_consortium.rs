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
