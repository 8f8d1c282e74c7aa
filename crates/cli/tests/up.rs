//! `bank up` end to end with real processes: it starts every bank as its own process with pid
//! files, the banks accept each other's signed pings (and refuse an unsigned one), a bank that
//! dies is not restarted, SIGTERM stops them all, and a second `bank up` continues with the same
//! keys and data.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bank_node::consortium::{ConsortiumConfig, read_signing_key};
use bank_node::interbank::client::{PeerClient, PeerOptions};
use bank_node::interbank::{PING_PATH, Pong};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

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
    data: std::path::PathBuf,
}

impl Up {
    fn start(data: &Path, extra: &[&str]) -> Up {
        let child = Command::new(env!("CARGO_BIN_EXE_bank"))
            .args(["up", "--banks", &BANKS.to_string(), "--data"])
            .arg(data)
            .args(extra)
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

/// Every bank pings every other with its own key from DATA/keys.
async fn ping_all(data: &Path) {
    let config = ConsortiumConfig::load(&data.join("consortium.toml")).expect("consortium file");
    for from in config.members.keys() {
        let key = read_signing_key(&data.join(format!("keys/bank-{from}.key"))).expect("key");
        let urls = config.members.values().map(|m| (m.id, m.url.clone()));
        let client = PeerClient::new(*from, key, urls, PeerOptions::default()).expect("client");
        for to in config.members.keys().filter(|to| *to != from) {
            let pong: Pong = client.get_json(*to, PING_PATH).await.expect("signed ping");
            assert_eq!(pong, Pong { bank_id: *to, from: *from });
        }
    }
}

fn snapshot_keys(data: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(data.join("keys"))
        .expect("keys dir")
        .map(|e| e.expect("entry").path())
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).expect("key file")))
        .collect();
    files.push(("consortium.toml".into(), std::fs::read_to_string(data.join("consortium.toml")).expect("file")));
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_a_consortium_stops_it_and_continues_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let base_port = free_ports();
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().expect("client");

    // First run: new keys, new data.
    let up = Up::start(&data, &["--base-port", &base_port.to_string()]);
    wait_all_healthy(&http, base_port).await;
    ping_all(&data).await;
    let unsigned = http.get(format!("{}{PING_PATH}", url(base_port, 2))).send().await.expect("request");
    assert_eq!(unsigned.status().as_u16(), 401, "an unsigned ping is refused");

    let mut pids = Vec::new();
    for id in 1..=BANKS {
        let pid = up.pid_of(id).unwrap_or_else(|| panic!("bank {id} has a pid file"));
        assert!(kill(Pid::from_raw(pid), None).is_ok(), "bank {id}'s pid {pid} is alive");
        assert_ne!(u32::try_from(pid).ok(), Some(up.child.id()), "each bank is its own process");
        pids.push(pid);
    }
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), BANKS as usize, "one process per bank");

    // Some data to find again after the restart.
    let account = json!({
        "kind": "individual",
        "holders": [{ "name": "Ana Souza", "document": bank_core::document::Cpf::from_base(123).as_str() }],
        "email": "ana@example.com", "phone": "+5575999990000", "password": "password123"
    });
    let opened = http.post(format!("{}/api/v1/accounts", url(base_port, 1))).json(&account).send().await.expect("open");
    assert_eq!(opened.status().as_u16(), 201);

    // A bank that dies stays dead: bank up does not restart it.
    let third = up.pid_of(3).expect("bank 3's pid");
    kill(Pid::from_raw(third), Signal::SIGKILL).expect("SIGKILL bank 3");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!healthy(&http, &url(base_port, 3)).await, "bank 3 was restarted");
    assert!(healthy(&http, &url(base_port, 1)).await, "bank 1 still runs");

    let keys = snapshot_keys(&data);
    assert!(up.stop(), "bank up exits cleanly after SIGTERM");
    for id in 1..=BANKS {
        assert!(!healthy(&http, &url(base_port, id)).await, "bank {id} stopped");
    }
    for id in 1..=2 {
        assert!(!data.join(format!("bank-{id}/pid")).exists(), "bank {id} removed its pid file at a clean exit");
    }

    // Another number of banks than the file says is refused, with how to start afresh.
    let refused = Command::new(env!("CARGO_BIN_EXE_bank"))
        .args(["up", "--banks", "4", "--data"])
        .arg(&data)
        .output()
        .expect("run bank up");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("lists 3 banks") && stderr.contains("delete"), "{stderr}");

    // Second run: no --base-port (the file has the ports), same keys, same data.
    let up = Up::start(&data, &[]);
    wait_all_healthy(&http, base_port).await;
    assert_eq!(snapshot_keys(&data), keys, "keys and consortium file are reused");
    ping_all(&data).await;
    let signed_in = http
        .post(format!("{}/api/v1/sessions", url(base_port, 1)))
        .json(&json!({ "email": "ana@example.com", "password": "password123" }))
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed_in.status().as_u16(), 201, "the account of the first run is still there");
    assert!(up.stop(), "bank up exits cleanly after SIGTERM");
}
