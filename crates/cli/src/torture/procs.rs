//! The banks of a torture run: one `bank node` process per bank, started inside its namespace
//! with `ip netns exec` (which execs the node, so the child's pid is the node's and signals reach
//! it directly), each with its own data directory under the run's directory, laid out as `bank up`
//! lays it out ([`crate::up::Layout`]).
//!
//! Faults on processes: [`Cluster::kill`] (SIGKILL), [`Cluster::pause`] (SIGSTOP) and
//! [`Cluster::resume`] (SIGCONT), [`Cluster::start`] again after a kill. Dropping the cluster
//! kills every node it started, so the namespaces can then be removed.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bank_core::ids::BankId;
use bank_node::consortium::{
    ConsortiumConfig, Member, NodeSettings, generate_signing_key, public_key_path, read_public_key, write_key_files,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::net::Net;
use crate::args::RingArgs;
use crate::up::{Layout, bank_name};

/// The port every bank listens on, at its own address.
pub const PORT: u16 = 8080;
/// Longest wait for a (re)started bank to answer `/healthz`.
pub const HEALTHY_TIMEOUT_S: u64 = 60;

/// How a bank's process is started: normally, or under a fault that needs a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Launch {
    /// Its wall clock shifted by this much (`--clock-offset-ms`).
    pub clock_offset_ms: Option<i64>,
    /// A failpoint armed (`BANK_FAILPOINT`): the process aborts when it reaches that step.
    pub failpoint: Option<&'static str>,
}

/// What a bank's process is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    Paused,
    Down,
}

#[derive(Debug)]
struct Proc {
    member: Member,
    namespace: String,
    child: Option<Child>,
    state: State,
    /// Where the log of the current (or last) process begins in the bank's log file.
    log_from: u64,
}

/// Every bank of the run.
#[derive(Debug)]
pub struct Cluster {
    pub layout: Layout,
    program: PathBuf,
    ring: RingArgs,
    procs: BTreeMap<u32, Proc>,
    /// The deliberately broken setting every bank runs with (`--test-ack-before-commit-ms`).
    pub broken_ack_ms: Option<u64>,
}

/// Writes fresh keys and the consortium file naming the banks at their namespace addresses.
pub fn write_consortium(layout: &Layout, net: &Net, banks: u32) -> Result<ConsortiumConfig> {
    let keys = layout.keys_dir();
    std::fs::create_dir_all(&keys).with_context(|| format!("cannot create {}", keys.display()))?;
    let mut members = BTreeMap::new();
    for n in 1..=banks {
        let id = BankId(n);
        let key = generate_signing_key()?;
        write_key_files(&layout.bank_key(id), &key)?;
        let url = format!("http://{}:{PORT}", net.bank_ip(n));
        members.insert(id, Member { id, name: bank_name(n), url, public_key: key.verifying_key() });
    }
    write_key_files(&layout.operator_key(), &generate_signing_key()?)?;
    let operator_key = read_public_key(&public_key_path(&layout.operator_key()))?;
    let config = ConsortiumConfig {
        operator_key,
        members,
        ring: Default::default(),
        node: NodeSettings::default(),
        institution_codes: Default::default(),
    };
    let file = layout.consortium_file();
    std::fs::write(&file, format!("# Written by `bank torture` for one run.\n\n{}", config.to_toml()))
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(config)
}

impl Cluster {
    pub fn new(layout: Layout, program: &Path, ring: RingArgs, config: &ConsortiumConfig, net: &Net) -> Cluster {
        let procs = config
            .members
            .values()
            .map(|m| {
                let proc = Proc {
                    member: m.clone(),
                    namespace: net.namespace(m.id.0),
                    child: None,
                    state: State::Down,
                    log_from: 0,
                };
                (m.id.0, proc)
            })
            .collect();
        Cluster { layout, program: program.to_path_buf(), ring, procs, broken_ack_ms: None }
    }

    pub fn ids(&self) -> Vec<u32> {
        self.procs.keys().copied().collect()
    }

    pub fn url(&self, id: u32) -> String {
        self.procs[&id].member.url.clone()
    }

    pub fn members(&self) -> Vec<Member> {
        self.procs.values().map(|p| p.member.clone()).collect()
    }

    pub fn state(&self, id: u32) -> State {
        self.procs[&id].state
    }

    fn proc(&mut self, id: u32) -> Result<&mut Proc> {
        self.procs.get_mut(&id).with_context(|| format!("no bank {id}"))
    }

    /// Where bank `id`'s log goes: beside its data directory, not on its (fillable) disk.
    pub fn log_file(&self, id: u32) -> PathBuf {
        self.layout.root.join("logs").join(format!("bank-{id}.log"))
    }

    /// Starts bank `id`'s node in its namespace (it must be down).
    pub fn start(&mut self, id: u32) -> Result<()> {
        self.start_with(id, Launch::default())
    }

    /// Stops bank `id` if it runs (SIGKILL), then starts it as `launch` says.
    pub fn restart(&mut self, id: u32, launch: Launch) -> Result<()> {
        if self.state(id) != State::Down {
            self.kill(id)?;
        }
        self.start_with(id, launch)
    }

    /// Starts bank `id`'s node in its namespace as `launch` says (it must be down).
    pub fn start_with(&mut self, id: u32, launch: Launch) -> Result<()> {
        let layout = self.layout.clone();
        let program = self.program.clone();
        let mut extra = self.ring.to_args();
        if let Some(ms) = self.broken_ack_ms {
            extra.push(format!("--test-ack-before-commit-ms={ms}"));
        }
        if let Some(offset) = launch.clock_offset_ms {
            extra.push(format!("--clock-offset-ms={offset}"));
        }
        let log_path = self.log_file(id);
        let proc = self.proc(id)?;
        if proc.state != State::Down {
            bail!("bank {id} is already running");
        }
        let dir = layout.bank_dir(BankId(id));
        bank_node::storage::create_data_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        proc.log_from = log.metadata().map(|m| m.len()).unwrap_or(0);
        let words = layout.node_command(&program, BankId(id));
        let child = Command::new("ip")
            .args(["netns", "exec", &proc.namespace])
            .args(&words)
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("BANK_FAILPOINT", launch.failpoint.unwrap_or(""))
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cannot share the log file")?)
            .stderr(log)
            // Its own process group: a Ctrl-C in the terminal reaches `bank torture` only, which
            // then stops the banks itself.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start bank {id}"))?;
        proc.child = Some(child);
        proc.state = State::Running;
        Ok(())
    }

    fn signal(&mut self, id: u32, signal: Signal) -> Result<()> {
        let proc = self.proc(id)?;
        let child = proc.child.as_ref().with_context(|| format!("bank {id} is not running"))?;
        let pid = Pid::from_raw(i32::try_from(child.id()).context("pid")?);
        kill(pid, signal).with_context(|| format!("cannot send {signal} to bank {id}"))
    }

    /// SIGKILL, then reaps it.
    pub fn kill(&mut self, id: u32) -> Result<()> {
        self.signal(id, Signal::SIGKILL)?;
        let proc = self.proc(id)?;
        if let Some(mut child) = proc.child.take() {
            let _ = child.wait();
        }
        proc.state = State::Down;
        Ok(())
    }

    pub fn pause(&mut self, id: u32) -> Result<()> {
        self.signal(id, Signal::SIGSTOP)?;
        self.proc(id)?.state = State::Paused;
        Ok(())
    }

    pub fn resume(&mut self, id: u32) -> Result<()> {
        self.signal(id, Signal::SIGCONT)?;
        self.proc(id)?.state = State::Running;
        Ok(())
    }

    /// Resumes what is paused and starts what is down (and whatever exited by itself).
    pub fn restore_all(&mut self) -> Result<Vec<String>> {
        let mut done = Vec::new();
        for id in self.ids() {
            if let Some(status) = self.exited(id) {
                match self.full_disk_line(id) {
                    Some(line) => done.push(format!("bank {id} had stopped on a full disk ({status}): {line}")),
                    None => done.push(format!("bank {id} had exited by itself ({status})")),
                }
            }
            match self.state(id) {
                State::Paused => {
                    self.resume(id)?;
                    done.push(format!("bank {id} resumed"));
                }
                State::Down => {
                    self.start(id)?;
                    done.push(format!("bank {id} started"));
                }
                State::Running => {}
            }
        }
        Ok(done)
    }

    /// The line in which bank `id`'s last process said it could not write to its full disk (its
    /// pid file, a commit it then aborted on), if it said so: a stop the nemesis caused, not a
    /// crash.
    pub fn full_disk_line(&self, id: u32) -> Option<String> {
        use std::io::{Read, Seek, SeekFrom};
        let from = self.procs.get(&id)?.log_from;
        let mut file = File::open(self.log_file(id)).ok()?;
        file.seek(SeekFrom::Start(from)).ok()?;
        let mut text = String::new();
        file.take(LOG_READ_MAX).read_to_string(&mut text).ok()?;
        full_disk_line(&text).map(str::to_owned)
    }

    /// `Some(status)` when bank `id`'s process ended without being killed by us (it is then
    /// marked down).
    pub fn exited(&mut self, id: u32) -> Option<String> {
        let proc = self.procs.get_mut(&id)?;
        let status = proc.child.as_mut()?.try_wait().ok()??;
        proc.child = None;
        proc.state = State::Down;
        Some(status.to_string())
    }

    /// Waits until every bank answers `/healthz`.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> Result<()> {
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build()?;
        let deadline = Instant::now() + timeout;
        for id in self.ids() {
            loop {
                if let Some(status) = self.exited(id) {
                    bail!("bank {id} exited ({status}); see {}", self.log_file(id).display());
                }
                let url = format!("{}/healthz", self.url(id));
                if matches!(http.get(&url).send().await, Ok(r) if r.status().is_success()) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("bank {id} did not answer {url} within {} s", timeout.as_secs());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for proc in self.procs.values_mut() {
            if let Some(mut child) = proc.child.take() {
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
                let _ = child.wait();
            }
        }
    }
}

/// How much of a process's log [`Cluster::full_disk_line`] reads.
const LOG_READ_MAX: u64 = 1 << 20;

/// The first line of `log` that says a write failed for want of space.
fn full_disk_line(log: &str) -> Option<&str> {
    const MARKERS: [&str; 2] = ["No space left on device", "database or disk is full"];
    log.lines().find(|line| MARKERS.iter().any(|m| line.contains(m))).map(str::trim)
}

#[cfg(test)]
mod full_disk_tests {
    use super::full_disk_line;

    #[test]
    fn a_stop_on_a_full_disk_is_told_by_the_banks_own_words() {
        let pid = "Error: cannot write /d/pid.tmp: No space left on device (os error 28)";
        assert_eq!(full_disk_line(&format!("INFO started\n{pid}\n")), Some(pid));
        let commit = "ERROR ledger commit failed; aborting error=database or disk is full";
        assert_eq!(full_disk_line(commit), Some(commit));
        assert_eq!(full_disk_line("INFO started\nthread 'main' panicked at src/x.rs:1:1"), None);
    }
}
