//! `bank bench --mode cross-bank` and `--mode packet` end to end against a real three-bank
//! consortium started by `bank up` (each bank its own process): both runs exit 0, execute
//! transfers without errors, and find the money conserved across every bank.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

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

/// The `bank up` process; on drop (a failed test) it and every bank it started are killed.
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

    /// SIGTERM to `bank up`; waits for it to exit and returns whether it succeeded.
    fn stop(mut self) -> bool {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        kill(pid, Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.success();
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

async fn healthy(http: &reqwest::Client, url: &str) -> bool {
    matches!(http.get(format!("{url}/healthz")).send().await, Ok(r) if r.status().is_success())
}

async fn wait_all_healthy(http: &reqwest::Client, base_port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in 1..=BANKS {
        while !healthy(http, &url(base_port, id)).await {
            assert!(Instant::now() < deadline, "bank {id} did not become healthy");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Runs `bank bench --json` with `args`; asserts it exited 0 and returns its JSON summary.
async fn bench(consortium: &Path, args: &[&str]) -> Value {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_bank"))
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
    let base_port = free_ports();
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().expect("client");
    let up = Up::start(&data, base_port);
    wait_all_healthy(&http, base_port).await;
    let consortium = data.join("consortium.toml");

    let summary =
        bench(&consortium, &["--mode", "cross-bank", "--accounts", "4", "--transfers", "300", "--concurrency", "8"])
            .await;
    assert_clean_run(&summary, "cross-bank", 300);

    let summary =
        bench(&consortium, &["--mode", "packet", "--accounts", "4", "--transfers", "100", "--concurrency", "8"]).await;
    assert_clean_run(&summary, "packet", 100);

    // A packet needs three banks; asking for two is refused before anything is opened.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_bank"))
        .args(["bench", "--mode", "packet", "--banks", "2", "--consortium"])
        .arg(&consortium)
        .output()
        .await
        .expect("run bank bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("at least 3 banks"), "{stderr}");

    assert!(up.stop(), "bank up exits cleanly after SIGTERM");
}
