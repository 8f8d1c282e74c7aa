//! `bank up` as a process: a local consortium of `bank node` processes that `bank up` starts,
//! watches and stops, each bank on a port of `--base-port P` onwards.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long the banks of a new `bank up` may take to answer `/healthz`.
const START: Duration = Duration::from_secs(60);
/// How long `bank up` may take to stop its banks after SIGTERM.
const STOP: Duration = Duration::from_secs(40);

/// The `bank up` process; on drop (a failed test) it and every bank it started are killed.
#[derive(Debug)]
pub struct Up {
    pub child: Child,
    data: PathBuf,
    banks: u32,
    base_port: u16,
}

impl Up {
    /// Runs `bank up --banks N --data DATA` (plus `extra`) with the `bank` binary at `bank`; its
    /// banks listen on `base_port` onwards (pass `--base-port` in `extra` for a new consortium;
    /// a consortium file that exists already names the ports).
    pub fn start(bank: &str, data: &Path, banks: u32, base_port: u16, extra: &[&str]) -> Up {
        let child = Command::new(bank)
            .args(["up", "--banks", &banks.to_string(), "--data"])
            .arg(data)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn bank up");
        Up { child, data: data.to_path_buf(), banks, base_port }
    }

    /// A new consortium of `banks` banks on consecutive ports from [`crate::ports`].
    pub fn start_new(bank: &str, data: &Path, banks: u32) -> Up {
        let base_port = crate::ports::consecutive(u16::try_from(banks).expect("a few banks"));
        Up::start(bank, data, banks, base_port, &["--base-port", &base_port.to_string()])
    }

    pub fn base_port(&self) -> u16 {
        self.base_port
    }

    /// The URL of bank `id`.
    pub fn url(&self, id: u32) -> String {
        format!("http://127.0.0.1:{}", u32::from(self.base_port) + id - 1)
    }

    /// The pid bank `id` wrote to its pid file, if it did.
    pub fn pid_of(&self, id: u32) -> Option<i32> {
        let text = std::fs::read_to_string(self.data.join(format!("bank-{id}/pid"))).ok()?;
        text.trim().parse().ok()
    }

    /// Waits until every bank answers `/healthz`.
    pub async fn wait_all_healthy(&self, http: &reqwest::Client) {
        let deadline = Instant::now() + START;
        for id in 1..=self.banks {
            while !crate::http::healthy(http, &self.url(id)).await {
                assert!(Instant::now() < deadline, "bank {id} did not become healthy");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Runs the operator's `bank audit` (the binary at `bank`) on this consortium, waiting up to
    /// 20 s for work in flight; fails the test with its report unless it is clean. `after` says
    /// what the audit follows, for the message.
    pub fn assert_audit_clean(&self, bank: &str, after: &str) {
        let audit = Command::new(bank)
            .args(["audit", "--wait-s", "20", "--consortium"])
            .arg(self.data.join("consortium.toml"))
            .env_remove("BANK_OPERATOR_KEY")
            .env("RUST_LOG", "warn")
            .output()
            .expect("run bank audit");
        let text = format!("{}{}", String::from_utf8_lossy(&audit.stdout), String::from_utf8_lossy(&audit.stderr));
        assert_eq!(audit.status.code(), Some(0), "the audit is clean after {after}: {text}");
    }

    /// SIGTERM to `bank up`; waits for it to exit and returns whether it succeeded.
    pub fn stop(mut self) -> bool {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        kill(pid, Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + STOP;
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
            for id in 1..=self.banks {
                if let Some(pid) = self.pid_of(id) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Any other child process a test starts (a browser driver, one `bank node`): killed when the
/// test ends, however it ends.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
