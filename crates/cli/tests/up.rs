//! `bank up` end to end with real processes: it starts every bank as its own process with pid
//! files, the banks accept each other's signed pings (and refuse an unsigned one), a bank that
//! dies is not restarted, SIGTERM stops them all, and a second `bank up` continues with the same
//! keys and data.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bank_node::consortium::{ConsortiumConfig, read_signing_key};
use bank_node::interbank::client::{PeerClient, PeerOptions};
use bank_node::interbank::{PING_PATH, Pong};
use bank_testkit::http::{healthy, individual_account};
use bank_testkit::up::Up;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

/// The `bank` binary under test.
const BANK: &str = env!("CARGO_BIN_EXE_bank");

const BANKS: u32 = 3;

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
    let http = bank_testkit::http::client(Some(Duration::from_secs(5)));

    // First run: new keys, new data.
    let up = Up::start_new(BANK, &data, BANKS);
    let base_port = up.base_port();
    up.wait_all_healthy(&http).await;
    ping_all(&data).await;
    let unsigned = http.get(format!("{}{PING_PATH}", up.url(2))).send().await.expect("request");
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
    let account = individual_account(123, "Ana Souza", "ana@example.com", "a long test passphrase");
    let opened = http.post(format!("{}/api/v1/accounts", up.url(1))).json(&account).send().await.expect("open");
    assert_eq!(opened.status().as_u16(), 201);

    // A bank that dies stays dead: bank up does not restart it.
    let third = up.pid_of(3).expect("bank 3's pid");
    kill(Pid::from_raw(third), Signal::SIGKILL).expect("SIGKILL bank 3");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!healthy(&http, &up.url(3)).await, "bank 3 was restarted");
    assert!(healthy(&http, &up.url(1)).await, "bank 1 still runs");

    let keys = snapshot_keys(&data);
    let urls: Vec<String> = (1..=BANKS).map(|id| up.url(id)).collect();
    assert!(up.stop(), "bank up exits cleanly after SIGTERM");
    for (id, url) in (1..=BANKS).zip(&urls) {
        assert!(!healthy(&http, url).await, "bank {id} stopped");
    }
    for id in 1..=2 {
        assert!(!data.join(format!("bank-{id}/pid")).exists(), "bank {id} removed its pid file at a clean exit");
    }

    // Another number of banks than the file says is refused, with how to start afresh.
    let refused = Command::new(BANK).args(["up", "--banks", "4", "--data"]).arg(&data).output().expect("run bank up");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("lists 3 banks") && stderr.contains("delete"), "{stderr}");

    // Second run: no --base-port (the file has the ports), same keys, same data.
    let up = Up::start(BANK, &data, BANKS, base_port, &[]);
    up.wait_all_healthy(&http).await;
    assert_eq!(snapshot_keys(&data), keys, "keys and consortium file are reused");
    ping_all(&data).await;
    let signed_in = http
        .post(format!("{}/api/v1/sessions", up.url(1)))
        .json(&json!({ "email": "ana@example.com", "password": "a long test passphrase" }))
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed_in.status().as_u16(), 201, "the account of the first run is still there");
    assert!(up.stop(), "bank up exits cleanly after SIGTERM");
}
