//! One bank per machine (docs/deploy.md), with real processes: each bank makes its own key pair
//! in its own directory (`bank keygen`), the operator assembles the consortium file from the
//! public parts only (`bank consortium init/add`), each bank runs configured by environment
//! variables alone with only its own secret key, and a cross-bank Pix between them completes.
//! `bank health` answers for a container's health check and `bank backup` copies a running bank.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use bank_testkit::http::{Call, client, open_and_sign_in};
use bank_testkit::ports;
use serde_json::json;

/// The `bank` binary under test.
const BANK: &str = env!("CARGO_BIN_EXE_bank");

fn bank(args: &[&str]) -> Output {
    Command::new(BANK).args(args).env_clear().output().expect("run bank")
}

#[track_caller]
fn ok(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

/// A bank process, killed when dropped (a failing test leaves nothing running).
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs bank `id` of `machine` configured only by the environment, as a container would.
fn start(machine: &Path, id: u32, port: u16) -> Node {
    let log = std::fs::File::create(machine.join("node.log")).expect("log");
    let child = Command::new(BANK)
        .arg("node")
        .env_clear()
        .env("BANK_ID", id.to_string())
        .env("BANK_CONFIG", machine.join("consortium.toml"))
        .env("BANK_SIGNING_KEY", machine.join("bank.key"))
        .env("BANK_DATA", machine.join("data"))
        .env("BANK_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn bank node");
    Node(child)
}

async fn wait_health(url: &str, machine: &Path) {
    for _ in 0..200 {
        if bank(&["health", url]).status.success() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never became healthy: {}", std::fs::read_to_string(machine.join("node.log")).unwrap_or_default());
}

#[tokio::test]
async fn banks_on_separate_machines_assemble_a_consortium_from_public_keys_and_transfer() {
    let root = tempfile::tempdir().expect("tempdir");
    let operator = root.path().join("operator");
    let machines = [root.path().join("machine-1"), root.path().join("machine-2")];
    let base = ports::consecutive(2);
    let urls: Vec<String> = (0..2).map(|i| format!("http://127.0.0.1:{}", base + i)).collect();

    // Each bank makes its key pair on its machine; only the public part is printed.
    let mut publics = Vec::new();
    for machine in &machines {
        let key = machine.join("bank.key");
        let public = ok(&bank(&["keygen", "--out", key.to_str().expect("path")]));
        let secret = std::fs::read_to_string(&key).expect("secret");
        assert!(!public.contains(secret.trim()), "keygen never prints the secret key");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).expect("meta").permissions().mode() & 0o777, 0o600);
        assert!(!bank(&["keygen", "--out", key.to_str().expect("path")]).status.success(), "never overwritten");
        publics.push(public.trim().to_owned());
    }

    // The operator assembles the file from names, URLs and public keys.
    let file = operator.join("consortium.toml");
    let file_arg = file.to_str().expect("path");
    let operator_key = operator.join("operator.key");
    ok(&bank(&["consortium", "init", "--file", file_arg, "--operator-key", operator_key.to_str().expect("path")]));
    ok(&bank(&[
        "consortium",
        "add",
        "--file",
        file_arg,
        "--id",
        "1",
        "--name",
        "Eleven",
        "--url",
        &urls[0],
        "--public-key",
        &publics[0],
    ]));
    let public_file = machines[1].join("bank.pub");
    ok(&bank(&[
        "consortium",
        "add",
        "--file",
        file_arg,
        "--id",
        "2",
        "--name",
        "Automobili",
        "--url",
        &urls[1],
        "--public-key-file",
        public_file.to_str().expect("path"),
    ]));
    let before = std::fs::read_to_string(&file).expect("file");
    let refused = bank(&[
        "consortium",
        "add",
        "--file",
        file_arg,
        "--id",
        "3",
        "--name",
        "Copy",
        "--url",
        "http://127.0.0.1:1",
        "--public-key",
        &publics[0],
    ]);
    assert!(!refused.status.success(), "a second bank with bank 1's key is refused");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("own key"), "{refused:?}");
    assert_eq!(std::fs::read_to_string(&file).expect("file"), before, "a refused member changes nothing");
    assert!(!before.contains(std::fs::read_to_string(machines[0].join("bank.key")).expect("key").trim()));

    // Each machine gets the consortium file; each bank runs with only its own secret key.
    let mut nodes = Vec::new();
    for (i, machine) in machines.iter().enumerate() {
        std::fs::copy(&file, machine.join("consortium.toml")).expect("copy the consortium file");
        nodes.push(start(machine, i as u32 + 1, base + i as u16));
    }
    for (url, machine) in urls.iter().zip(&machines) {
        wait_health(url, machine).await;
    }
    assert!(!bank(&["health", "http://127.0.0.1:1", "--timeout-ms", "500"]).status.success(), "nothing there");

    let http = client(None);
    let (ana, _) = open_and_sign_in(&http, &urls[0], 101, "Ana Souza").await;
    let (bia, _) = open_and_sign_in(&http, &urls[1], 202, "Bia Lima").await;
    let deposit = json!({ "amount_cents": 10_000, "method": "cash" });
    let r = Call::new("POST", format!("{}/api/v1/deposits", urls[0]))
        .token(Some(&ana))
        .json(Some(deposit))
        .send(&http)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = Call::new("POST", format!("{}/api/v1/pix-keys", urls[1]))
        .token(Some(&bia))
        .json(Some(json!({ "type": "random" })))
        .send(&http)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let key = r.body["key"].as_str().expect("key").to_owned();
    // The key reaches bank 1's directory by replication.
    let mut transfer = serde_json::Value::Null;
    for _ in 0..100 {
        let legs = json!({ "legs": [{ "to": { "key": key }, "amount_cents": 2_500 }] });
        let r = Call::new("POST", format!("{}/api/v1/transfers", urls[0]))
            .token(Some(&ana))
            .json(Some(legs))
            .send(&http)
            .await;
        if r.status == 201 {
            transfer = r.body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(transfer["status"], "completed", "{transfer}");
    let me = Call::new("GET", format!("{}/api/v1/me", urls[1])).token(Some(&bia)).send(&http).await;
    assert_eq!(me.body["balance"]["available_cents"], 2_500, "{}", me.body);

    // A consistent copy of a running bank.
    let copy = machines[0].join("backup.db");
    let report = ok(&bank(&[
        "backup",
        "--data",
        machines[0].join("data").to_str().expect("path"),
        "--out",
        copy.to_str().expect("path"),
    ]));
    assert!(report.contains("1 accounts"), "{report}");
    drop(nodes);
}
