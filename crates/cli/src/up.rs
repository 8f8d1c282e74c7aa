//! `bank up`: a whole consortium on this machine, each bank its own `bank node` process.
//!
//! Layout of the data directory (default `./data`):
//!
//! ```text
//! DATA/consortium.toml        members (id, name, URL, public key) and the operator's key
//! DATA/keys/bank-N.key, .pub  bank N's Ed25519 key pair (secret: mode 0600)
//! DATA/keys/operator.key,.pub the operator's key pair (for `bank audit`)
//! DATA/bank-N/                bank N's ledger, its pid file while it runs, and node.log
//! ```
//!
//! The first run generates the keys and writes `consortium.toml` (banks 1 Eleven, 2 Automobili,
//! 3 Secret, 4 Formula, 5 Titanium, then "Bank N"; bank N at `http://127.0.0.1:<base+N-1>`).
//! Later runs reuse them, so every bank keeps its data and its identity; asking for another number
//! of banks or other ports than the file says is refused with how to start afresh.
//!
//! `bank up` does not restart a bank that dies: it says so and prints the `bank node` command to
//! restart it by hand (that is how a crash is simulated and recovered from). Ctrl-C or SIGTERM
//! sends SIGTERM to every bank it started and waits for them (SIGKILL after
//! [`STOP_TIMEOUT_S`]). The banks run in their own process groups, so a Ctrl-C in the terminal
//! reaches them only through `bank up`, in order; if `bank up` itself is killed with SIGKILL,
//! the banks keep running (their pids are in `DATA/bank-N/pid`).

use anyhow::{Context, Result, bail};
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bank_core::ids::BankId;
use bank_node::consortium::{ConsortiumConfig, Member, read_signing_key};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::args::{LogFormat, RingArgs, UpArgs};

/// Banks of a new consortium when `--banks` is not given.
pub const BANKS_DEFAULT: u32 = 5;
/// Port of bank 1 of a new consortium when `--base-port` is not given.
pub const BASE_PORT_DEFAULT: u16 = 8081;
/// Time for every bank to answer `/healthz` after it was started.
pub const START_TIMEOUT_S: u64 = 60;
/// Time for every bank to stop after SIGTERM before it gets SIGKILL.
pub const STOP_TIMEOUT_S: u64 = 30;
/// How often children are checked for an exit.
const POLL_MS: u64 = 200;
/// Lines of a bank's log shown when it fails to start.
const LOG_TAIL_LINES: usize = 15;

/// Names of the first banks (DESIGN.md §7); bank 6 and later are "Bank N".
const NAMES: [&str; 5] = ["Eleven", "Automobili", "Secret", "Formula", "Titanium"];

/// Every environment variable `bank node` reads a setting from: a child must get its settings
/// from its flags only, not from whatever the user's shell exports.
const NODE_ENV: [&str; 11] = [
    "BANK_ID",
    "BANK_NAME",
    "BANK_LISTEN",
    "BANK_DATA",
    "BANK_CONFIG",
    "BANK_SIGNING_KEY",
    "BANK_LOG_FORMAT",
    "BANK_COORDINATION",
    "BANK_OPS_PER_TOKEN",
    "BANK_FAULT_SWITCH",
    "BANK_SEED_COMPAT",
];

/// The display name of bank `id` in a new consortium.
pub fn bank_name(id: u32) -> String {
    match id.checked_sub(1).and_then(|i| NAMES.get(i as usize)) {
        Some(name) => (*name).to_string(),
        None => format!("Bank {id}"),
    }
}

/// Where `bank up` keeps everything, under one directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn consortium_file(&self) -> PathBuf {
        self.root.join("consortium.toml")
    }
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }
    pub fn bank_key(&self, id: BankId) -> PathBuf {
        self.keys_dir().join(format!("bank-{id}.key"))
    }
    pub fn operator_key(&self) -> PathBuf {
        self.keys_dir().join("operator.key")
    }
    pub fn bank_dir(&self, id: BankId) -> PathBuf {
        self.root.join(format!("bank-{id}"))
    }
    pub fn pid_file(&self, id: BankId) -> PathBuf {
        self.bank_dir(id).join("pid")
    }
    pub fn log_file(&self, id: BankId) -> PathBuf {
        self.bank_dir(id).join("node.log")
    }

    /// The words of the command that runs bank `id` (program first).
    pub fn node_command(&self, program: &Path, id: BankId) -> Vec<String> {
        let path = |p: PathBuf| p.display().to_string();
        vec![
            program.display().to_string(),
            "node".into(),
            "--id".into(),
            id.to_string(),
            "--config".into(),
            path(self.consortium_file()),
            "--signing-key".into(),
            path(self.bank_key(id)),
            "--data".into(),
            path(self.bank_dir(id)),
        ]
    }

    fn reset_hint(&self) -> String {
        format!(
            "to start a new consortium, stop its banks and delete {} (this deletes every account), or use another --data",
            self.root.display()
        )
    }
}

/// The host name of bank `id` in its URL: `127.0.0.1` for `bank up`, or a pattern in which
/// `{id}` stands for the bank's id (`bank{id}` names compose's services, docs/deploy.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosts(pub String);

impl Hosts {
    pub fn loopback() -> Hosts {
        Hosts("127.0.0.1".into())
    }

    /// The URL of bank `id` listening on `port`.
    pub fn url(&self, id: u32, port: u32) -> String {
        format!("http://{}:{port}", self.0.replace("{id}", &id.to_string()))
    }
}

/// The consortium of `layout`: read (and checked against the asked options) when its file
/// exists, else created with fresh keys.
pub fn prepare(layout: &Layout, banks: Option<u32>, base_port: Option<u16>) -> Result<ConsortiumConfig> {
    prepare_at(layout, banks, base_port, &Hosts::loopback())
}

/// [`prepare`], with the banks' URLs on `hosts`.
pub fn prepare_at(
    layout: &Layout,
    banks: Option<u32>,
    base_port: Option<u16>,
    hosts: &Hosts,
) -> Result<ConsortiumConfig> {
    let file = layout.consortium_file();
    if file.exists() {
        let config = ConsortiumConfig::load(&file)?;
        let count = config.members.len();
        if let Some(banks) = banks
            && banks as usize != count
        {
            bail!(
                "{} lists {count} banks, not {banks}: run `bank up` without --banks (or with --banks {count}) to continue \
                 with them; {}",
                file.display(),
                layout.reset_hint()
            );
        }
        if let Some(port) = base_port {
            let first = config.members.values().next().map(|m| m.url.clone()).unwrap_or_default();
            if first != hosts.url(1, u32::from(port)) {
                bail!(
                    "{} has bank 1 at {first}, not on port {port}: run `bank up` without --base-port to continue with \
                     its ports; {}",
                    file.display(),
                    layout.reset_hint()
                );
            }
        }
        for member in config.members.values() {
            let path = layout.bank_key(member.id);
            let key = read_signing_key(&path).with_context(|| format!("bank {}'s key", member.id))?;
            if key.verifying_key() != member.public_key {
                bail!("{} is not the key {} lists for bank {}; {}", path.display(), file.display(), member.id, {
                    layout.reset_hint()
                });
            }
        }
        return Ok(config);
    }
    let banks = banks.unwrap_or(BANKS_DEFAULT);
    let base_port = base_port.unwrap_or(BASE_PORT_DEFAULT);
    let last_port = u32::from(base_port) + banks - 1;
    if last_port > u32::from(u16::MAX) {
        bail!("--base-port {base_port} leaves no port for bank {banks} (it would be {last_port})");
    }
    let keys = layout.keys_dir();
    std::fs::create_dir_all(&keys).with_context(|| format!("cannot create {}", keys.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", keys.display()))?;
    }
    // The same steps as operators on separate machines (docs/deploy.md): each bank's key pair,
    // then the operator's file, assembled from the public keys.
    crate::deploy::init(&file, &layout.operator_key())?;
    for n in 1..=banks {
        let id = BankId(n);
        let path = layout.bank_key(id);
        let public_key =
            if path.exists() { read_signing_key(&path)?.verifying_key() } else { crate::deploy::make_key(&path)? };
        let url = hosts.url(n, u32::from(base_port) + n - 1);
        crate::deploy::add(&file, &Member { id, name: bank_name(n), url, public_key })?;
    }
    let config = ConsortiumConfig::load(&file)?;
    Ok(config)
}

/// Refuses to start bank `id` when its data directory is locked by a running node.
fn check_not_running(layout: &Layout, id: BankId) -> Result<()> {
    let lock = layout.bank_dir(id).join("LOCK");
    let Ok(file) = File::open(&lock) else { return Ok(()) };
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(_) => {
            let pid = std::fs::read_to_string(layout.pid_file(id)).unwrap_or_default();
            bail!(
                "bank {id} is already running (pid {}, see {}); stop it first, e.g. `kill {}`",
                pid.trim(),
                layout.pid_file(id).display(),
                pid.trim()
            )
        }
    }
}

/// One bank started by `bank up`.
#[derive(Debug)]
struct Bank {
    member: Member,
    child: Child,
    /// `Some` once it exited (it is not restarted).
    exited: Option<String>,
}

impl Bank {
    /// Checks for an exit; true when it just exited.
    fn poll(&mut self) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exited = Some(status.to_string());
                true
            }
            Ok(None) => false,
            Err(e) => {
                self.exited = Some(format!("cannot be waited for: {e}"));
                true
            }
        }
    }

    fn signal(&self, signal: Signal) {
        if self.exited.is_none()
            && let Ok(pid) = i32::try_from(self.child.id())
        {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }
}

fn spawn(layout: &Layout, program: &Path, member: &Member, log_format: LogFormat, ring: &RingArgs) -> Result<Bank> {
    let dir = layout.bank_dir(member.id);
    // Private (0700) like the node makes it: the node refuses a data directory others can read.
    bank_node::storage::create_data_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log_path = layout.log_file(member.id);
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let words = layout.node_command(program, member.id);
    let mut command = Command::new(&words[0]);
    command.args(&words[1..]);
    command.args(["--log-format", if log_format == LogFormat::Json { "json" } else { "text" }]);
    command.args(ring.to_args());
    for name in NODE_ENV {
        command.env_remove(name);
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone().with_context(|| format!("cannot share {}", log_path.display()))?)
        .stderr(log)
        // Its own process group: a terminal's Ctrl-C reaches the banks through `bank up` only.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start bank {} ({})", member.id, program.display()))?;
    Ok(Bank { member: member.clone(), child, exited: None })
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// Waits until every bank answers `/healthz`; fails as soon as one exits.
async fn wait_healthy(layout: &Layout, banks: &mut [Bank]) -> Result<()> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .context("cannot build an HTTP client")?;
    let deadline = Instant::now() + Duration::from_secs(START_TIMEOUT_S);
    let mut healthy = vec![false; banks.len()];
    while healthy.iter().any(|h| !h) {
        for (bank, healthy) in banks.iter_mut().zip(healthy.iter_mut()).filter(|(_, h)| !**h) {
            if bank.poll() {
                let id = bank.member.id;
                bail!(
                    "bank {id} exited while starting ({}); the end of {}:\n{}",
                    bank.exited.as_deref().unwrap_or_default(),
                    layout.log_file(id).display(),
                    log_tail(&layout.log_file(id))
                );
            }
            let url = format!("{}/healthz", bank.member.url);
            *healthy = matches!(http.get(&url).send().await, Ok(r) if r.status().is_success());
        }
        if Instant::now() > deadline {
            let slow: Vec<String> =
                banks.iter().zip(&healthy).filter(|(_, h)| !**h).map(|(b, _)| b.member.id.to_string()).collect();
            bail!("banks {} did not answer /healthz within {START_TIMEOUT_S} s", slow.join(", "));
        }
        if healthy.iter().any(|h| !h) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// SIGTERM to every bank still running, then wait; SIGKILL whatever is left after the timeout.
async fn stop_all(layout: &Layout, banks: &mut [Bank]) {
    for bank in banks.iter() {
        bank.signal(Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(STOP_TIMEOUT_S);
    loop {
        for bank in banks.iter_mut() {
            if bank.poll() {
                println!("bank {} ({}) stopped", bank.member.id, bank.member.name);
            }
        }
        if banks.iter().all(|b| b.exited.is_some()) {
            break;
        }
        if Instant::now() > deadline {
            for bank in banks.iter_mut().filter(|b| b.exited.is_none()) {
                eprintln!("bank {} did not stop within {STOP_TIMEOUT_S} s; killing it", bank.member.id);
                bank.signal(Signal::SIGKILL);
                let _ = bank.child.wait();
                bank.exited = Some("killed".into());
                let _ = std::fs::remove_file(layout.pid_file(bank.member.id));
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A bank restarted by hand is not ours to stop: say so.
    for bank in banks.iter() {
        let pid = std::fs::read_to_string(layout.pid_file(bank.member.id)).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<i32>()
            && u32::try_from(pid).ok() != Some(bank.child.id())
            && kill(Pid::from_raw(pid), None).is_ok()
        {
            println!(
                "bank {} is still running as pid {pid} (restarted by hand); stop it with `kill {pid}`",
                bank.member.id
            );
        }
    }
}

fn print_banks(layout: &Layout, program: &Path, banks: &[Bank], ring: &RingArgs) {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY).set_header(["bank", "name", "url", "pid"]);
    for bank in banks {
        table.add_row([
            bank.member.id.to_string(),
            bank.member.name.clone(),
            bank.member.url.clone(),
            bank.child.id().to_string(),
        ]);
    }
    println!("{table}");
    println!("consortium file: {}", layout.consortium_file().display());
    println!("logs:            {}", layout.root.join("bank-N").join("node.log").display());
    println!("bank up does not restart a bank that stops; to restart one by hand:");
    for bank in banks {
        println!("  {} {}", layout.node_command(program, bank.member.id).join(" "), ring.to_args().join(" "));
    }
    println!("Ctrl-C stops every bank.");
}

/// `bank up`.
pub async fn run(args: UpArgs) -> Result<ExitCode> {
    crate::node::init_tracing(LogFormat::Text)?;
    // Installed first, so a Ctrl-C during startup still stops what was started.
    let mut shutdown = Box::pin(crate::node::shutdown_signal()?);
    let root = std::path::absolute(&args.data).with_context(|| format!("bad --data {}", args.data.display()))?;
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let layout = Layout { root };
    let config = prepare(&layout, args.banks, args.base_port)?;
    for id in config.members.keys() {
        check_not_running(&layout, *id)?;
        // Every bank would refuse it at start; saying so before starting any is clearer.
        bank_node::storage::check_private(&layout.bank_dir(*id))?;
    }
    let program = std::env::current_exe().context("cannot find the bank executable")?;
    let mut banks = Vec::new();
    for member in config.members.values() {
        match spawn(&layout, &program, member, args.log_format, &args.ring) {
            Ok(bank) => banks.push(bank),
            Err(e) => {
                stop_all(&layout, &mut banks).await;
                return Err(e);
            }
        }
    }
    println!("starting {} banks (data in {})…", banks.len(), layout.root.display());
    let started = tokio::select! {
        started = wait_healthy(&layout, &mut banks) => started,
        () = &mut shutdown => Err(anyhow::anyhow!("interrupted while starting")),
    };
    if let Err(e) = started {
        stop_all(&layout, &mut banks).await;
        return Err(e);
    }
    print_banks(&layout, &program, &banks, &args.ring);
    let code = loop {
        tokio::select! {
            () = &mut shutdown => break ExitCode::SUCCESS,
            () = tokio::time::sleep(Duration::from_millis(POLL_MS)) => {}
        }
        for bank in banks.iter_mut() {
            if bank.poll() {
                let id = bank.member.id;
                println!(
                    "bank {id} ({}) exited ({}); bank up does not restart it. To restart it by hand:\n  {} {}",
                    bank.member.name,
                    bank.exited.as_deref().unwrap_or_default(),
                    layout.node_command(&program, id).join(" "),
                    args.ring.to_args().join(" ")
                );
            }
        }
        if banks.iter().all(|b| b.exited.is_some()) {
            println!("every bank has exited; bank up stops");
            break ExitCode::FAILURE;
        }
    };
    println!("stopping every bank…");
    stop_all(&layout, &mut banks).await;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banks_are_named_as_in_the_design() {
        let names: Vec<String> = (1..=7).map(bank_name).collect();
        assert_eq!(names, ["Eleven", "Automobili", "Secret", "Formula", "Titanium", "Bank 6", "Bank 7"]);
    }

    #[test]
    fn a_new_consortium_is_created_then_reused_and_mismatches_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout { root: dir.path().to_path_buf() };
        let first = prepare(&layout, Some(3), Some(9100)).expect("created");
        assert_eq!(first.members.len(), 3);
        assert_eq!(first.members[&BankId(3)].url, "http://127.0.0.1:9102");
        assert!(layout.operator_key().exists() && layout.bank_key(BankId(2)).exists());
        let text = std::fs::read_to_string(layout.consortium_file()).expect("file");
        assert_eq!(prepare(&layout, None, None).expect("reused"), first);
        assert_eq!(prepare(&layout, Some(3), Some(9100)).expect("reused"), first);
        assert_eq!(std::fs::read_to_string(layout.consortium_file()).expect("file"), text, "not rewritten");
        let err = prepare(&layout, Some(4), None).expect_err("other count");
        assert!(
            format!("{err:#}").contains("lists 3 banks, not 4") && format!("{err:#}").contains("delete"),
            "{err:#}"
        );
        let err = prepare(&layout, None, Some(9200)).expect_err("other port");
        assert!(format!("{err:#}").contains("without --base-port"), "{err:#}");
    }

    #[test]
    fn ports_past_the_last_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout { root: dir.path().to_path_buf() };
        assert!(prepare(&layout, Some(3), Some(65_534)).is_err());
        assert!(!layout.consortium_file().exists());
    }
}
