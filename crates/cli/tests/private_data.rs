//! The real `bank node` refuses a data directory other local users can read (issue 16: the
//! ledger was world-readable), and makes a new one private.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `bank` binary under test.
const BANK: &str = env!("CARGO_BIN_EXE_bank");

fn mode_of(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn bank_node_refuses_a_data_directory_others_can_read_naming_path_mode_and_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("bank-1");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // Port 0: a node that accepted the directory would run until stopped, so it gets a deadline.
    let mut node = Command::new(BANK)
        .args(["node", "--id", "1", "--name", "Eleven", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bank node");
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = node.kill();
            let _ = node.wait();
            panic!("bank node started on a 0755 data directory");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = node.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "bank node accepted a 0755 data directory: {stderr}");
    assert!(stderr.contains(&data.display().to_string()) && stderr.contains("0755"), "{stderr}");
    assert!(stderr.contains("chmod -R go-rwx"), "{stderr}");
    assert_eq!(mode_of(&data), 0o755, "the refusal changed the mode");
    assert_eq!(std::fs::read_dir(&data).expect("read dir").count(), 0, "the refusal wrote into the directory");
}
