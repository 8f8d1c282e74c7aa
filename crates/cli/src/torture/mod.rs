//! `bank torture`: a Jepsen-style test of a whole consortium on a real (namespaced) network.
//!
//! The run: build the network ([`net`]), start every bank in its namespace ([`procs`]), open and
//! fund the customers' accounts, then for `--duration` keep clients working at every bank
//! ([`workload`]) while the nemesis ([`nemesis`]) breaks the network and the processes during
//! the first five sixths; heal everything, keep the clients working for the last sixth,
//! settle every operation whose outcome the client did not learn, read the banks' final state
//! with the operator's audit, and check the history against it ([`check`]). The [`report`] is
//! written to `DIR/report.json` and printed, the history to `DIR/history.jsonl`, the
//! banks' final state to `DIR/final.json`. Exit status 0 when there is no anomaly,
//! [`EXIT_ANOMALIES`] when there is one.
//!
//! Everything it creates (namespaces, veths, processes) is removed when it ends, also after an
//! error, a panic or Ctrl-C/SIGTERM; leftovers of a run that was killed outright are removed by
//! the next run. The data directory (logs, ledgers, report) is kept.
//!
//! - [`history`]: the recorded operations and the final state, plain data.

pub mod check;
pub mod disk;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod procs;
pub mod report;
pub mod workload;

use anyhow::{Context, Result, anyhow, bail};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bank_core::ids::BankId;

use crate::args::RingArgs;
use crate::up::Layout;
use disk::Disks;
use history::{FinalBank, FinalState, Visit};
use nemesis::Nemesis;
use net::Net;
use procs::Cluster;
use workload::Recorder;

/// Exit status when the checker found an anomaly.
pub const EXIT_ANOMALIES: u8 = 3;
/// Longest the final audit waits for in-flight work to settle.
const AUDIT_WAIT_S: u64 = 60;
/// Longest the settling of unknown operations takes.
const SETTLE_LIMIT_S: u64 = 120;
/// Shortest load after the heal, whatever the duration.
const AFTER_HEAL_MIN_MS: u64 = 5_000;

/// What `bank torture` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub banks: u32,
    pub duration: Duration,
    pub seed: Option<u64>,
    pub dir: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub workers_per_bank: usize,
    pub customers: usize,
    pub ring: RingArgs,
    /// Run every bank deliberately broken (`--test-ack-before-commit-ms`): the run must then
    /// report anomalies.
    pub broken_ack_ms: Option<u64>,
}

/// `bank torture`.
pub async fn run(options: Options) -> Result<ExitCode> {
    net::require_root()?;
    if options.banks < 2 || options.customers < 2 {
        bail!("bank torture needs at least 2 banks and 2 customers");
    }
    for leftover in disk::sweep_leftovers().into_iter().chain(net::sweep_leftovers()) {
        println!("removed {leftover}, left by a run that is gone");
    }
    let tag = net::tag_for(std::process::id());
    let seed = options.seed.unwrap_or_else(rand::random);
    let dir = options.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("bank-torture-{tag}")));
    let dir = std::path::absolute(&dir).with_context(|| format!("bad --dir {}", dir.display()))?;
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!("{} is not empty: give a new --dir", dir.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    println!(
        "bank torture: seed {seed} (replay with --seed {seed}), {} banks, files in {}",
        options.banks,
        dir.display()
    );
    let mut shutdown = Box::pin(crate::node::shutdown_signal()?);
    let started = Instant::now();
    let mut net = Net::create(&tag, options.banks)?;
    let layout = Layout { root: dir.clone() };
    let mut disks = Disks::mount(&tag, (1..=options.banks).map(|id| (id, layout.bank_dir(BankId(id)))).collect())?;
    let config = procs::write_consortium(&layout, &net, options.banks)?;
    let program = std::env::current_exe().context("cannot find the bank executable")?;
    let mut cluster = Cluster::new(layout, &program, options.ring.clone(), &config, &net);
    cluster.broken_ack_ms = options.broken_ack_ms;
    let mut rig = Rig { net: &mut net, cluster: &mut cluster, disks: &mut disks };
    let outcome = tokio::select! {
        outcome = torture(&options, seed, &mut rig, started) => outcome,
        () = &mut shutdown => Err(anyhow!("interrupted; the banks, their disks and the network are being removed")),
    };
    // The processes first: a disk is unmounted and a namespace goes away only once nothing
    // runs on it.
    drop(cluster);
    drop(disks);
    drop(net);
    let mut report = outcome?;
    report.run_time_s = started.elapsed().as_secs();
    let path = options.report.clone().unwrap_or_else(|| dir.join("report.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    print!("{}", report.render());
    println!("report: {}", path.display());
    Ok(if report.anomalies_total == 0 { ExitCode::SUCCESS } else { ExitCode::from(EXIT_ANOMALIES) })
}

/// What the run acts on.
struct Rig<'a> {
    net: &'a mut Net,
    cluster: &'a mut Cluster,
    disks: &'a mut Disks,
}

/// The run itself, between building the network and removing it.
async fn torture(options: &Options, seed: u64, rig: &mut Rig<'_>, started: Instant) -> Result<report::Report> {
    let cluster = &mut *rig.cluster;
    for id in cluster.ids() {
        cluster.start(id)?;
    }
    cluster.wait_healthy(Duration::from_secs(procs::HEALTHY_TIMEOUT_S)).await?;
    let recorder = Arc::new(Recorder::new(started));
    let http = workload::http()?;
    let urls: Vec<(u32, String)> = cluster.ids().into_iter().map(|id| (id, cluster.url(id))).collect();
    let accounts = Arc::new(workload::setup(&http, &urls, options.customers, &recorder).await?);
    println!("{} accounts opened and funded; load and faults for {} s", accounts.customers.len() * urls.len(), {
        options.duration.as_secs()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for home in 0..urls.len() {
        for k in 0..options.workers_per_bank {
            let id = home * options.workers_per_bank + k;
            let (accounts, recorder, stop) = (accounts.clone(), recorder.clone(), stop.clone());
            workers.spawn(workload::worker(id, home, seed, accounts, recorder, stop));
        }
    }
    let total_ms = options.duration.as_millis() as u64;
    let window_ms = total_ms.saturating_sub((total_ms / 6).max(AFTER_HEAL_MIN_MS));
    let load_start = Instant::now();
    let mut nemesis = Nemesis { net: rig.net, cluster, disks: rig.disks, banks: options.banks };
    let steps = nemesis::schedule(seed, options.banks, window_ms);
    let (faults, mut stops) = nemesis.run(&steps, &recorder, &http).await;
    for done in nemesis.heal_all()? {
        println!("heal: {done}");
    }
    let heal_ms = recorder.now_ms();
    // The nemesis may end late on a loaded machine (each fault runs `ip`, `nft`, a restart):
    // the load after the heal is never cut short for it.
    let late_ms = (load_start.elapsed().as_millis() as u64).saturating_sub(window_ms);
    if late_ms > 1_000 {
        println!("the nemesis ended {late_ms} ms behind its schedule; the load after the heal still lasts its time");
    }
    let after_heal = Duration::from_millis(total_ms - window_ms);
    tokio::time::sleep(Duration::from_millis(total_ms).saturating_sub(load_start.elapsed()).max(after_heal)).await;
    stop.store(true, Ordering::Relaxed);
    while workers.join_next().await.is_some() {}
    println!("load stopped after {} operations; settling", recorder.ops().len());
    for done in nemesis.cluster.restore_all()? {
        if done.contains("by itself") {
            stops.crashes.push(done);
        } else if done.contains("on a full disk") {
            stops.full_disk.push(done);
        }
    }
    nemesis.cluster.wait_healthy(Duration::from_secs(procs::HEALTHY_TIMEOUT_S)).await?;
    workload::resolve(&recorder, Duration::from_secs(SETTLE_LIMIT_S)).await;
    println!("auditing");
    let fin = final_state(nemesis.cluster).await?;
    let history = recorder.ops();
    let history_path = nemesis.cluster.layout.root.join("history.jsonl");
    let lines: Vec<String> = history.iter().filter_map(|op| serde_json::to_string(op).ok()).collect();
    std::fs::write(&history_path, lines.join("\n") + "\n")
        .with_context(|| format!("cannot write {}", history_path.display()))?;
    let final_path = nemesis.cluster.layout.root.join("final.json");
    std::fs::write(&final_path, serde_json::to_string(&fin)?)
        .with_context(|| format!("cannot write {}", final_path.display()))?;
    let checked = check::check(&history, &fin);
    Ok(report::build(report::Inputs {
        seed,
        banks: options.banks,
        duration_s: options.duration.as_secs(),
        tag: nemesis.net.tag(),
        dir: nemesis.cluster.layout.root.display().to_string(),
        history: &history,
        faults,
        heal_ms,
        crashes: stops.crashes,
        full_disk_stops: stops.full_disk,
        checked,
        run_time_s: 0,
    }))
}

/// Every bank's final state through the operator's audit (waiting for in-flight work).
async fn final_state(cluster: &Cluster) -> Result<FinalState> {
    let (config, client) = crate::audit::operator(&cluster.layout.consortium_file(), None)?;
    let members: Vec<_> = config.members.values().cloned().collect();
    let (snapshots, verdict) = crate::audit::audit(&client, &members, Duration::from_secs(AUDIT_WAIT_S)).await;
    let mut fin = FinalState::default();
    for invariant in &verdict.invariants {
        match invariant.status {
            crate::audit::Status::Holds => {}
            crate::audit::Status::Violated => {
                fin.audit_problems.push(format!(
                    "audit: invariant {} {} violated: {}",
                    invariant.number,
                    invariant.title,
                    { invariant.problems.join("; ") }
                ));
            }
            crate::audit::Status::CannotTell => fin.audit_problems.push(format!(
                "audit: invariant {} {} cannot be judged: {}",
                invariant.number,
                invariant.title,
                invariant.cannot_tell.as_deref().unwrap_or("")
            )),
        }
    }
    for snapshot in snapshots {
        let data = snapshot.read.map_err(|e| anyhow!("bank {} could not be read at the end: {e}", snapshot.id))?;
        let BankId(id) = snapshot.id;
        let bank = FinalBank {
            id,
            accounts: data.accounts.iter().map(|a| (a.number.clone(), (a.posted_cents, a.held_cents))).collect(),
            decisions: data
                .decisions
                .iter()
                .map(|(tx, o)| (tx.clone(), *o == crate::audit::Outcome::Committed))
                .collect(),
            holds: data.holds.iter().map(|h| h.transfer_id.clone()).collect(),
            deposits_cents: data.totals.deposits_cents,
            withdrawals_cents: data.totals.withdrawals_cents,
            keys: data.pix_keys.iter().map(|k| (k.key.to_lowercase(), (k.bank_id.0, k.account.clone()))).collect(),
        };
        fin.banks.insert(id, bank);
        let dir = cluster.layout.bank_dir(snapshot.id);
        let visits = bank_node::storage::ring::read_visit_log(&dir)
            .with_context(|| format!("cannot read bank {id}'s ring visit log in {}", dir.display()))?;
        fin.visits.insert(
            id,
            visits
                .iter()
                .map(|v| Visit { epoch: v.epoch, hop: v.hop, start_ms: v.start_ms, end_ms: v.end_ms })
                .collect(),
        );
    }
    Ok(fin)
}
