//! A consortium of real `bank node` processes on 127.0.0.1, its customers (one CPF, an account
//! at several banks, a session at each), the book of what every account must hold, and the
//! consortium-wide invariant checks of DESIGN.md §8.
//!
//! Keys and `DATA/consortium.toml` are made with the same helpers `bank up` uses (each bank on a
//! port of its own, from [`crate::ports`]), then every bank is started by hand as
//! `bank node --id N --config DATA/consortium.toml --signing-key DATA/keys/bank-N.key --data
//! DATA/bank-N` (the command `bank up` prints), so a test can give one process a failpoint
//! (`BANK_FAILPOINT`), kill it, freeze it, and restart it on the same data directory. Each bank's
//! output goes to `DATA/bank-N/node.log`; when a test fails, the end of every log is printed.
//! Dropping the [`Cluster`] SIGKILLs every bank it started, so a failing test leaves no process.
//!
//! The cli crate's tests give the path of the `bank` binary: `Cluster::start(BANK, 3)` with
//! `const BANK: &str = env!("CARGO_BIN_EXE_bank");`.

mod api;
mod book;
mod invariants;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bank_cli::up::Layout;
use bank_core::ids::BankId;
use bank_node::consortium::{
    ConsortiumConfig, Member, NodeSettings, SigningKey, generate_signing_key, read_signing_key, write_key_files,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use book::{Account, Balance, Book, Customer, Request, failure_code, leg, settled, status};

use crate::signer::OPERATOR;

/// How long anything may take to converge (a settled hold, a restarted bank, a re-sent decision)
/// on a busy two-core machine.
pub const SETTLE: Duration = Duration::from_secs(20);
/// How long a bank may take to answer `/healthz` after it was started.
const START: Duration = Duration::from_secs(30);
/// Poll period while waiting for convergence.
const POLL: Duration = Duration::from_millis(100);
/// Lines of each bank's log printed when a test fails.
const LOG_TAIL_LINES: usize = 60;

/// Whether the `bank` at `bank` has the `audit` subcommand (another engineer is adding it):
/// checked once, from `bank --help`.
pub fn cli_has_audit(bank: &Path) -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        let out = Command::new(bank).arg("--help").output().expect("run bank --help");
        String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim_start().starts_with("audit "))
    })
}

/// A consortium of `bank node` processes in a temporary directory.
#[derive(Debug)]
pub struct Cluster {
    /// The `bank` binary every bank runs.
    pub bank: PathBuf,
    pub layout: Layout,
    pub n: u32,
    urls: BTreeMap<u32, String>,
    /// The running banks; locked briefly (never across an await), so a test may kill or restart
    /// a bank while other futures use the cluster.
    children: Mutex<BTreeMap<u32, Child>>,
    pub http: reqwest::Client,
    operator: SigningKey,
    /// Flags every `bank node` of this cluster gets after the ones `bank up` gives.
    node_args: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Keys, consortium file and `n` running, healthy banks.
    pub async fn start(bank: &str, n: u32) -> Cluster {
        Cluster::start_with(bank, n, &[]).await
    }

    /// As [`Cluster::start`], every bank run with `node_args` too (e.g. `--fault-switch`).
    pub async fn start_with(bank: &str, n: u32, node_args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout { root: dir.path().join("data") };
        std::fs::create_dir_all(layout.keys_dir()).expect("keys dir");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(layout.keys_dir(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
        }
        let mut members = BTreeMap::new();
        let mut urls = BTreeMap::new();
        for (i, port) in crate::ports::several(n as usize).into_iter().enumerate() {
            let id = u32::try_from(i).expect("id") + 1;
            let key = generate_signing_key().expect("key");
            write_key_files(&layout.bank_key(BankId(id)), &key).expect("write key");
            let url = format!("http://127.0.0.1:{port}");
            urls.insert(id, url.clone());
            let member =
                Member { id: BankId(id), name: bank_cli::up::bank_name(id), url, public_key: key.verifying_key() };
            members.insert(BankId(id), member);
        }
        let operator = generate_signing_key().expect("operator key");
        write_key_files(&layout.operator_key(), &operator).expect("write operator key");
        let config = ConsortiumConfig {
            operator_key: operator.verifying_key(),
            members,
            ring: Default::default(),
            node: NodeSettings::default(),
            institution_codes: Default::default(),
        };
        std::fs::write(layout.consortium_file(), config.to_toml()).expect("write consortium.toml");
        let http = crate::http::client(Some(Duration::from_secs(20)));
        let node_args = node_args.iter().map(|a| (*a).to_owned()).collect();
        let cluster = Cluster {
            bank: PathBuf::from(bank),
            layout,
            n,
            urls,
            children: Mutex::new(BTreeMap::new()),
            http,
            operator,
            node_args,
            _dir: dir,
        };
        for id in 1..=n {
            cluster.spawn(id, None);
        }
        for id in 1..=n {
            cluster.wait_healthy(id).await;
        }
        cluster
    }

    pub fn url(&self, bank: u32) -> &str {
        &self.urls[&bank]
    }

    /// Starts bank `id` on its data directory; with `failpoint`, as `BANK_FAILPOINT`.
    fn children(&self) -> MutexGuard<'_, BTreeMap<u32, Child>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn spawn(&self, id: u32, failpoint: Option<&str>) {
        self.spawn_with(id, failpoint, &[]);
    }

    /// As [`Cluster::spawn`], with `extra` flags for this bank only (e.g. a shifted clock).
    pub fn spawn_with(&self, id: u32, failpoint: Option<&str>, extra: &[&str]) {
        assert!(!self.children().contains_key(&id), "bank {id} is already running");
        let bank = BankId(id);
        bank_node::storage::create_data_dir(&self.layout.bank_dir(bank)).expect("bank dir");
        let mut log =
            File::options().create(true).append(true).open(self.layout.log_file(bank)).expect("open node.log");
        writeln!(log, "==== cluster test: starting bank {id} (failpoint {failpoint:?}) ====").expect("log");
        let words = self.layout.node_command(&self.bank, bank);
        let mut command = Command::new(&words[0]);
        command.args(&words[1..]).args(&self.node_args).args(extra);
        // Settings come from the flags only, not from whatever the test's environment exports.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("BANK_") {
                command.env_remove(name);
            }
        }
        command.env("RUST_LOG", "info");
        if let Some(failpoint) = failpoint {
            command.env("BANK_FAILPOINT", failpoint);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn bank node");
        self.children().insert(id, child);
    }

    /// Waits until bank `id` answers `/healthz`; fails at once (with its log) if it exits.
    pub async fn wait_healthy(&self, id: u32) {
        let deadline = Instant::now() + START;
        let url = format!("{}/healthz", self.url(id));
        loop {
            if let Some(exit) = self.exited(id) {
                panic!("bank {id} exited while starting ({exit}); its log:\n{}", self.log_tail(id));
            }
            let up = self.http.get(&url).timeout(Duration::from_secs(2)).send().await;
            if matches!(up, Ok(r) if r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "bank {id} did not answer /healthz; its log:\n{}", self.log_tail(id));
            tokio::time::sleep(POLL).await;
        }
    }

    /// `Some(exit status)` once bank `id` has exited (it is then forgotten).
    fn exited(&self, id: u32) -> Option<ExitStatus> {
        let mut children = self.children();
        let child = children.get_mut(&id).unwrap_or_else(|| panic!("bank {id} is not running"));
        let exit = child.try_wait().expect("try_wait")?;
        children.remove(&id);
        Some(exit)
    }

    /// SIGKILL to bank `id` (as `kill -9`), then reaps it.
    pub fn kill(&self, id: u32) {
        let mut child = self.children().remove(&id).unwrap_or_else(|| panic!("bank {id} is not running"));
        let _ = child.kill();
        child.wait().expect("wait for the killed bank");
    }

    /// Restarts bank `id` (SIGKILL if it runs) on the same data, with `failpoint` armed or not.
    pub async fn restart(&self, id: u32, failpoint: Option<&str>) {
        if self.children().contains_key(&id) {
            self.kill(id);
        }
        self.spawn(id, failpoint);
        self.wait_healthy(id).await;
    }

    /// Waits for bank `id` to crash at its failpoint: it must abort (SIGABRT) within `within`.
    pub async fn wait_crash(&self, id: u32, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(exit) = self.exited(id) {
                assert_eq!(
                    exit.signal(),
                    Some(Signal::SIGABRT as i32),
                    "bank {id} should have aborted at its failpoint, but exited with {exit}; its log:\n{}",
                    self.log_tail(id)
                );
                return exit;
            }
            assert!(
                Instant::now() < deadline,
                "bank {id} did not reach its failpoint within {within:?}; its log:\n{}",
                self.log_tail(id)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGSTOP: bank `id` stops answering (its sockets stay open) until [`Cluster::thaw`].
    pub fn freeze(&self, id: u32) {
        self.signal(id, Signal::SIGSTOP);
    }

    /// SIGCONT: a frozen bank runs again.
    pub fn thaw(&self, id: u32) {
        self.signal(id, Signal::SIGCONT);
    }

    fn signal(&self, id: u32, signal: Signal) {
        let pid = self.children().get(&id).map(Child::id).unwrap_or_else(|| panic!("bank {id} is not running"));
        kill(Pid::from_raw(i32::try_from(pid).expect("pid")), signal).expect("signal");
    }

    /// The banks running now.
    pub fn running(&self) -> Vec<u32> {
        self.children().keys().copied().collect()
    }

    /// The last lines of bank `id`'s log.
    pub fn log_tail(&self, id: u32) -> String {
        let text = std::fs::read_to_string(self.layout.log_file(BankId(id))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Grep of bank `id`'s log for lines containing `needle`.
    pub fn log_lines(&self, id: u32, needle: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.layout.log_file(BankId(id))).unwrap_or_default();
        text.lines().filter(|l| l.contains(needle)).map(str::to_string).collect()
    }

    /// The signing key of bank `id` from the consortium's key directory, or the operator's for
    /// [`OPERATOR`].
    pub fn key(&self, id: u32) -> SigningKey {
        if id == OPERATOR.0 {
            return self.operator.clone();
        }
        read_signing_key(&self.layout.bank_key(BankId(id))).expect("bank key")
    }

    /// The end of every bank's log, for failure messages.
    pub fn all_logs(&self) -> String {
        (1..=self.n).map(|id| format!("---- bank {id} log (end) ----\n{}\n", self.log_tail(id))).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in self.children().iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.all_logs());
        }
    }
}
