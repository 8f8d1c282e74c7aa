//! `bank bench`: a closed-loop load generator that also checks that money is conserved.
//!
//! # Modes
//!
//! - [`Mode::InBank`]: one bank (`--target`); one-leg transfers between two of its accounts.
//! - [`Mode::CrossBank`]: the first K banks of a consortium (`--consortium FILE`, `--banks K`,
//!   3 by default); one-leg Pix from an account at bank i, sent by its own session at bank i (the
//!   coordinator), to an account at another bank j, addressed `{ bank_id: j, number }`.
//! - [`Mode::Packet`]: the same banks; customers who each hold one account at every bank (one CPF,
//!   signed in at every bank). A packet is sent at a random bank b by the customer's session
//!   there and has [`PACKET_LEGS`] legs whose sources are the customer's accounts at three
//!   different banks (`from: { bank_id, number }`, left out for the account at b), each to a
//!   random other customer's account at a random bank.
//! - [`Mode::SeedOps`]: the cross-bank load (plus deposits) in the original system's protocol,
//!   through `POST /operations` of the seed-compatible API (banks started with `--seed-compat`);
//!   see [`seed_ops`].
//!
//! # What it does
//!
//! 1. **Setup.** Opens the accounts (unique valid CPFs from a per-run random base, unique e-mails
//!    from a per-run id, so reruns against the same data directories never collide), signs each
//!    in at its bank, and deposits `deposit_cents` into each. `accounts` is the number of
//!    accounts of the one bank (in-bank) or *per bank* (cross-bank: `accounts` customers with one
//!    account each at every bank; packet: `accounts` customers with one account at every bank).
//!    The total deposited is what the bench accounts must hold, together, at the end.
//! 2. **Load.** `concurrency` workers share a counter of `transfers` to execute. Each worker loops:
//!    claim one, draw it (sources, destinations, random amounts in
//!    `1..=TRANSFER_AMOUNT_MAX_CENTS`) and POST it at its coordinating bank with a fresh
//!    `Idempotency-Key`, waiting for the answer before the next one (closed loop: throughput is
//!    what the banks sustain at that concurrency, latency is what a customer sees). A 503 is
//!    retried after a short jittered backoff with the *same* key (so at most one attempt
//!    executes), at most `RETRIES_MAX` times. A `pending` answer is followed by polling
//!    `GET /api/v1/transfers/{id}` at the coordinating bank until it is final, at most
//!    [`PENDING_WAIT_MAX_MS`].
//! 3. **Check.** Waits (at most [`SETTLE_WAIT_MAX_MS`]) until no bench account has money held
//!    (an abort may still be releasing holds at other banks), then reads every bench account's
//!    balance with its own session at its own bank: the sum of posted balances must equal the
//!    total deposited (transfers between bench accounts only move money around), and no
//!    available balance may be negative.
//!
//! # How outcomes are counted
//!
//! - `completed` / `failed`: the transfer executed (201) and ended with that status, at once or
//!   after a `pending` answer. A failed transfer (e.g. `insufficient_funds` after an account was
//!   drained) is a valid outcome, not an error. `ops_per_s` counts completed + failed transfers
//!   (packets in packet mode) over the wall time of the load phase.
//! - `pending`: transfers whose first answer was `pending` (each is also counted as completed,
//!   failed, or as the error `pending_timeout` when it was still pending after
//!   [`PENDING_WAIT_MAX_MS`]).
//! - `errors`: no 201 at all (transport failure, a 4xx, a 503 after every retry), by code in
//!   `error_codes`. `retries`: extra attempts made after a 503.
//! - Latency is per logical transfer, from its first attempt to its final status (including any
//!   retry backoff and the polling of a pending answer), for transfers that ended completed or
//!   failed.

use anyhow::{Context, Result, ensure};
use bank_client::{AccountRef, Client, ClientOptions, DepositMethod, Destination, NewAccount, NewLeg, NewTransfer};
use bank_client::{Holder, Status};
use bank_core::document::Cpf;
use bank_core::money::format_brl;
use bank_node::consortium::{ConsortiumConfig, MEMBERS_MAX};
use clap::ValueEnum;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

mod seed_ops;

/// Most accounts one run creates per bank (account numbers have six digits per bank).
pub const ACCOUNTS_MAX: usize = 100_000;
/// Banks loaded by the consortium modes when `--banks` is not given (fewer if the consortium
/// has fewer members).
pub const BANKS_DEFAULT: usize = 3;
/// Legs of one packet, each from the customer's account at a different bank.
pub const PACKET_LEGS: usize = 3;
/// Longest a transfer answered `pending` is followed before it counts as the error
/// `pending_timeout`.
pub const PENDING_WAIT_MAX_MS: u64 = 30_000;
/// Period of `GET /api/v1/transfers/{id}` while a transfer is pending.
pub const PENDING_POLL_MS: u64 = 100;
/// Longest the check waits for every hold on the bench accounts to be released.
pub const SETTLE_WAIT_MAX_MS: u64 = 10_000;
/// Period of the balance reads while waiting for holds to be released.
pub const SETTLE_POLL_MS: u64 = 200;
/// Most workers (each holds one connection to the node).
pub const CONCURRENCY_MAX: usize = 4096;
/// Most transfers one run executes.
pub const TRANSFERS_MAX: u64 = 100_000_000;
/// Largest random transfer amount; small against the deposit so most transfers complete.
pub const TRANSFER_AMOUNT_MAX_CENTS: i64 = 1000;
/// Most extra attempts of one request after 503 answers.
pub const RETRIES_MAX: u32 = 8;
/// Backoff before the first retry; doubles each time up to [`RETRY_BACKOFF_MAX_MS`].
pub const RETRY_BACKOFF_BASE_MS: u64 = 5;
pub const RETRY_BACKOFF_MAX_MS: u64 = 500;
/// Accounts set up at once (opening hashes a password: CPU-heavy on the node).
pub const SETUP_CONCURRENCY_MAX: usize = 16;
/// Longest a single bench request may take.
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Distinct error codes kept in the summary; the rest are counted as `other`.
const ERROR_CODES_MAX: usize = 32;
/// Latencies are recorded in microseconds, up to an hour, with 3 significant digits.
const LATENCY_US_MAX: u64 = 3_600_000_000;

/// Exit code of `bank bench` when the conservation check fails (other errors exit with 1).
pub const EXIT_NOT_CONSERVED: u8 = 3;

/// What the benchmark exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Transfers between accounts of one bank (the `--target` node).
    InBank,
    /// One-leg Pix between accounts of different banks (needs `--consortium`).
    CrossBank,
    /// Three-leg transfers whose sources are one customer's accounts at three banks (needs
    /// `--consortium` with at least three banks).
    Packet,
    /// Deposits and cross-bank Pix through the original protocol's `POST /operations` (needs
    /// `--consortium` whose banks run with `--seed-compat`).
    SeedOps,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::InBank => "in-bank",
            Mode::CrossBank => "cross-bank",
            Mode::Packet => "packet",
            Mode::SeedOps => "seed-ops",
        }
    }

    /// Whether the mode runs against the banks of a consortium file.
    pub fn is_consortium(self) -> bool {
        matches!(self, Mode::CrossBank | Mode::Packet | Mode::SeedOps)
    }

    /// Least number of banks the mode needs.
    pub fn banks_min(self) -> usize {
        match self {
            Mode::InBank => 1,
            Mode::CrossBank | Mode::SeedOps => 2,
            Mode::Packet => PACKET_LEGS,
        }
    }
}

/// Which banks the consortium modes load (`bank bench --consortium FILE --banks K`).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ConsortiumArgs {
    /// Consortium file (TOML) listing the banks, e.g. DATA/consortium.toml written by `bank up`;
    /// needed by --mode cross-bank and packet (in-bank uses --target and ignores it).
    #[arg(long = "consortium", env = "BANK_CONSORTIUM", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Banks of the consortium to load: the first K by id, 2..=members (default 3, or every
    /// member if there are fewer); packet needs at least 3.
    #[arg(long = "banks", value_name = "K", value_parser = clap::value_parser!(u32).range(2..=MEMBERS_MAX as i64))]
    pub banks: Option<u32>,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The node that is loaded (and whose accounts are created) in in-bank mode.
    pub target: String,
    pub mode: Mode,
    /// Consortium file and number of banks, for the multi-bank modes.
    pub consortium: ConsortiumArgs,
    /// Accounts of the bank (in-bank); per bank in the consortium modes.
    pub accounts: usize,
    pub transfers: u64,
    pub concurrency: usize,
    /// Deposited into each account at setup.
    pub deposit_cents: i64,
    /// Seed of the workload's choices; random when absent (the summary reports it).
    pub seed: Option<u64>,
    /// Show progress bars on stderr.
    pub progress: bool,
    /// In-bank only: the bench accounts of an earlier setup (numbers and session tokens), reused
    /// instead of opening new ones when the file exists, written after the setup when it does not.
    /// Opening 10,000 accounts costs minutes of password hashing; a saved setup and a copy of the
    /// bank's data directory taken right after it let several runs start from the same bank.
    pub accounts_file: Option<PathBuf>,
}

impl Options {
    /// Options with the defaults of `bank bench`.
    pub fn new(target: impl Into<String>) -> Self {
        Options {
            target: target.into(),
            mode: Mode::InBank,
            consortium: ConsortiumArgs::default(),
            accounts: 100,
            transfers: 20_000,
            concurrency: 64,
            deposit_cents: 1_000_000,
            seed: None,
            progress: false,
            accounts_file: None,
        }
    }

    pub fn validate(&self) -> Result<()> {
        ensure!((2..=ACCOUNTS_MAX).contains(&self.accounts), "--accounts must be in 2..={ACCOUNTS_MAX}");
        ensure!((1..=TRANSFERS_MAX).contains(&self.transfers), "--transfers must be in 1..={TRANSFERS_MAX}");
        ensure!((1..=CONCURRENCY_MAX).contains(&self.concurrency), "--concurrency must be in 1..={CONCURRENCY_MAX}");
        ensure!(
            (1..=bank_core::Amount::MAX_CENTS).contains(&self.deposit_cents),
            "--deposit-cents must be in 1..={}",
            bank_core::Amount::MAX_CENTS
        );
        ensure!(
            self.accounts_file.is_none() || self.mode == Mode::InBank,
            "--accounts-file is for --mode in-bank only"
        );
        if self.mode.is_consortium() {
            ensure!(
                self.consortium.file.is_some(),
                "--mode {} needs --consortium FILE (the consortium.toml that `bank up` writes in its data directory)",
                self.mode.as_str()
            );
            if let Some(banks) = self.consortium.banks {
                let banks = banks as usize;
                ensure!((2..=MEMBERS_MAX).contains(&banks), "--banks must be in 2..={MEMBERS_MAX}");
                ensure!(
                    banks >= self.mode.banks_min(),
                    "--mode {} needs at least {} banks (--banks {banks})",
                    self.mode.as_str(),
                    self.mode.banks_min()
                );
            }
        }
        Ok(())
    }
}

/// Latency percentiles of the transfers that executed, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl LatencyMs {
    /// Percentiles of a histogram of microseconds (all zero when it is empty).
    pub fn from_histogram_us(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return LatencyMs { p50: 0.0, p90: 0.0, p99: 0.0, max: 0.0, mean: 0.0 };
        }
        let ms = |us: u64| round3(us as f64 / 1000.0);
        LatencyMs {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            max: ms(histogram.max()),
            mean: round3(histogram.mean() / 1000.0),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Operations per second (0 when no time elapsed).
pub fn ops_per_s(ops: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 { 0.0 } else { (ops as f64 / seconds * 100.0).round() / 100.0 }
}

/// The result of a run; `--json` prints it as one line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub mode: Mode,
    /// The bank's URL (in-bank), or the URLs of the banks loaded, separated by `, `.
    pub target: String,
    /// Banks loaded (1 in in-bank mode).
    pub banks: usize,
    /// `--accounts`: accounts of the bank, or per bank in the consortium modes.
    pub accounts: usize,
    /// Bench accounts over every bank.
    pub accounts_total: usize,
    pub transfers: u64,
    pub concurrency: usize,
    pub seed: u64,
    /// Completed + failed transfers per second of the load phase.
    pub ops_per_s: f64,
    pub latency_ms: LatencyMs,
    pub completed: u64,
    pub failed: u64,
    /// Transfers first answered `pending` (then polled until final; see the module doc).
    pub pending: u64,
    pub errors: u64,
    pub retries: u64,
    /// Errors by code (`overloaded`, `transport`, `http_502`, ...).
    pub error_codes: BTreeMap<String, u64>,
    /// Sum of posted balances equals the deposits, and no available balance is negative.
    pub conserved: bool,
    /// What the bench accounts held before the run: the setup's deposits, or for accounts reused
    /// from `--accounts-file`, their balances as read before the run.
    pub deposited_cents: i64,
    pub posted_cents: i64,
    /// Money still held on bench accounts when the balances were read (0 unless holds were not
    /// released within the settle wait).
    pub held_cents: i64,
    pub negative_available_accounts: u64,
    /// Accounts whose balance could not be read (the check then fails).
    pub balance_read_errors: u64,
    pub setup_retries: u64,
    pub setup_s: f64,
    /// Wall time of the load phase.
    pub elapsed_s: f64,
    /// Time the check waited for holds to be released before reading the balances.
    pub settle_s: f64,
}

impl Summary {
    /// One sentence on the conservation check.
    pub fn verdict(&self) -> String {
        let banks = if self.banks > 1 { format!(" at {} banks", self.banks) } else { String::new() };
        let held = if self.held_cents != 0 {
            format!(" ({} still held after waiting {} s)", format_brl(self.held_cents), self.settle_s)
        } else {
            String::new()
        };
        if self.conserved {
            format!(
                "conserved: the {} bench accounts{banks} hold {} in total, exactly what was deposited, and none is \
                 negative{held}",
                self.accounts_total,
                format_brl(self.posted_cents)
            )
        } else if self.balance_read_errors > 0 {
            format!("NOT VERIFIED: {} of {} balances could not be read", self.balance_read_errors, self.accounts_total)
        } else {
            format!(
                "NOT CONSERVED: deposited {}, accounts{banks} hold {} (difference {}); {} accounts with a negative \
                 available balance{held}",
                format_brl(self.deposited_cents),
                format_brl(self.posted_cents),
                format_brl(self.posted_cents - self.deposited_cents),
                self.negative_available_accounts
            )
        }
    }

    /// The human-readable report.
    pub fn render(&self) -> String {
        let mut table = Table::new();
        table.load_preset(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
        let unit = if self.mode == Mode::Packet { "packets" } else { "transfers" };
        let accounts = if self.mode.is_consortium() {
            format!("{} per bank × {} banks = {}", self.accounts, self.banks, self.accounts_total)
        } else {
            self.accounts_total.to_string()
        };
        let rows: Vec<(&str, String)> = vec![
            ("mode", self.mode.as_str().to_owned()),
            ("target", self.target.clone()),
            ("accounts / concurrency", format!("{accounts} / {}", self.concurrency)),
            ("seed", self.seed.to_string()),
            (unit, self.transfers.to_string()),
            ("completed / failed", format!("{} / {}", self.completed, self.failed)),
            ("answered pending (then polled)", self.pending.to_string()),
            ("errors / retries", format!("{} / {}", self.errors, self.retries)),
            ("throughput", format!("{:.1} {unit}/s", self.ops_per_s)),
            (
                "latency p50 / p90 / p99",
                format!("{} / {} / {} ms", self.latency_ms.p50, self.latency_ms.p90, self.latency_ms.p99),
            ),
            ("latency max / mean", format!("{} / {} ms", self.latency_ms.max, self.latency_ms.mean)),
            (
                "setup / load / settle time",
                format!("{:.2} s / {:.2} s / {:.2} s", self.setup_s, self.elapsed_s, self.settle_s),
            ),
        ];
        for (name, value) in rows {
            table.add_row(vec![Cell::new(name), Cell::new(value).set_alignment(CellAlignment::Right)]);
        }
        let mut out = format!("{table}\n");
        if !self.error_codes.is_empty() {
            let codes: Vec<String> = self.error_codes.iter().map(|(c, n)| format!("{c}: {n}")).collect();
            let _ = writeln!(out, "errors by code: {}", codes.join(", "));
        }
        let _ = writeln!(out, "{}", self.verdict());
        out
    }
}

/// The HTTP client of a run: the bench's request timeout, a connection pool as wide as the load.
fn http_client(options: &Options) -> Result<reqwest::Client> {
    let client_options = ClientOptions {
        request_timeout_ms: REQUEST_TIMEOUT_MS,
        pool_idle_per_host_max: options.concurrency.max(SETUP_CONCURRENCY_MAX),
        ..ClientOptions::default()
    };
    client_options.build_http().context("cannot build the HTTP client")
}

/// Runs the benchmark against a live node (in-bank) or the banks of a consortium.
pub async fn run(options: &Options) -> Result<Summary> {
    options.validate()?;
    if options.mode == Mode::SeedOps {
        return seed_ops::run(options).await;
    }
    let seed = options.seed.unwrap_or_else(rand::random);
    let http = http_client(options)?;
    let banks = resolve_banks(options, &http).await?;

    let setup_started = Instant::now();
    let setup = match &options.accounts_file {
        Some(path) if path.exists() => {
            let mut setup = load_setup(path, &banks[0], options)?;
            // Reused accounts hold what earlier runs (and a `--preload-entries` history, which
            // deposits too) left them: the run must leave the same total, not the first deposits.
            let accounts: Vec<&BenchAccount> = setup.customers.iter().flatten().collect();
            let before = read_balances(&accounts).await;
            ensure!(before.settled(), "cannot read the settled balances of the reused bench accounts before the run");
            setup.deposited_cents = before.posted_cents;
            setup
        }
        Some(path) => {
            let setup = setup_accounts(&banks, options).await.context("setup failed")?;
            save_setup(path, &setup, options)?;
            setup
        }
        None => setup_accounts(&banks, options).await.context("setup failed")?,
    };
    let setup_s = setup_started.elapsed().as_secs_f64();

    let workload = Arc::new(Workload::new(options.mode, banks.len(), options.accounts, setup.customers)?);
    let (tally, elapsed) = load(workload.clone(), options, seed).await?;
    let (check, settle) = check_conservation(&workload.accounts()).await;

    Ok(Summary {
        mode: options.mode,
        target: banks.iter().map(|b| b.url.as_str()).collect::<Vec<_>>().join(", "),
        banks: banks.len(),
        accounts: options.accounts,
        accounts_total: setup.accounts_total,
        transfers: options.transfers,
        concurrency: options.concurrency,
        seed,
        ops_per_s: ops_per_s(tally.completed + tally.failed, elapsed),
        latency_ms: LatencyMs::from_histogram_us(&tally.latency_us),
        completed: tally.completed,
        failed: tally.failed,
        pending: tally.pending,
        errors: tally.errors,
        retries: tally.retries,
        error_codes: tally.error_codes,
        conserved: check.conserved(setup.deposited_cents),
        deposited_cents: setup.deposited_cents,
        posted_cents: check.posted_cents,
        held_cents: check.held_cents,
        negative_available_accounts: check.negative_available_accounts,
        balance_read_errors: check.read_errors,
        setup_retries: setup.retries,
        setup_s: round3(setup_s),
        elapsed_s: round3(elapsed.as_secs_f64()),
        settle_s: round3(settle.as_secs_f64()),
    })
}

// ---- history -------------------------------------------------------------------------------

/// `bank bench --preload-entries N --data-dir DIR`: adds history to a stopped bank by bulk
/// insert (see [`bank_node::storage::preload`]), printing how long it took.
pub async fn preload(data_dir: std::path::PathBuf, entries: u64, progress: bool) -> Result<std::process::ExitCode> {
    let bar = progress_bar(progress, entries, "lines");
    let shown = bar.clone();
    let started = Instant::now();
    let done = tokio::task::spawn_blocking(move || {
        bank_node::storage::preload::preload(&data_dir, entries, |written| shown.set_position(written))
    })
    .await??;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    println!(
        "preloaded {} lines ({} transfers over {} accounts) in {:.1} s ({:.0} lines/s)",
        done.entries,
        done.transfers,
        done.accounts,
        elapsed.as_secs_f64(),
        done.entries as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    Ok(std::process::ExitCode::SUCCESS)
}

// ---- banks ---------------------------------------------------------------------------------

/// A bank the run loads: its id, its URL and a client without a session.
#[derive(Debug, Clone)]
struct Bank {
    id: u32,
    url: String,
    client: Client,
}

/// The banks of the run: the `--target` node (in-bank), or the first K members of the consortium
/// file by id, each checked to answer with the id the file gives it.
async fn resolve_banks(options: &Options, http: &reqwest::Client) -> Result<Vec<Bank>> {
    if !options.mode.is_consortium() {
        let client = Client::with_http(&options.target, http.clone())
            .with_context(|| format!("cannot use --target {:?}", options.target))?;
        let bank = client.bank().await.with_context(|| format!("no bank answers at {}", options.target))?;
        return Ok(vec![Bank { id: bank.id, url: options.target.clone(), client }]);
    }
    let file = options.consortium.file.as_deref().context("--consortium FILE is missing")?;
    let config = ConsortiumConfig::load(file).with_context(|| format!("cannot use --consortium {}", file.display()))?;
    let members = config.members.len();
    let wanted = match options.consortium.banks {
        Some(k) => k as usize,
        None => BANKS_DEFAULT.min(members),
    };
    ensure!(
        (2..=members).contains(&wanted),
        "--banks {wanted}: {} lists {members} banks; use 2..={members}",
        file.display()
    );
    ensure!(
        wanted >= options.mode.banks_min(),
        "--mode {} needs at least {} banks, and {} lists {members} (--banks {wanted})",
        options.mode.as_str(),
        options.mode.banks_min(),
        file.display()
    );
    let mut banks = Vec::with_capacity(wanted);
    for member in config.members.values().take(wanted) {
        let client = Client::with_http(&member.url, http.clone())
            .with_context(|| format!("cannot use bank {}'s URL {:?}", member.id, member.url))?;
        let info = client
            .bank()
            .await
            .with_context(|| format!("bank {} ({}) does not answer at {}", member.id, member.name, member.url))?;
        ensure!(
            info.id == member.id.0,
            "{} says bank {} is at {}, but the bank there says it is bank {}",
            file.display(),
            member.id,
            member.url,
            info.id
        );
        banks.push(Bank { id: member.id.0, url: member.url.clone(), client });
    }
    Ok(banks)
}

// ---- setup ---------------------------------------------------------------------------------

/// A bench account: its address and a client acting for its session at its own bank.
#[derive(Debug, Clone)]
struct BenchAccount {
    address: AccountRef,
    client: Client,
}

#[derive(Debug)]
struct Setup {
    /// Per customer, its accounts in the order of the banks it was opened at.
    customers: Vec<Vec<BenchAccount>>,
    accounts_total: usize,
    deposited_cents: i64,
    retries: u64,
}

/// Who is opened where: customer `c` (a CPF of its own) gets an account at each bank of
/// `plan[c]` (indices into the run's banks), in that order.
///
/// - in-bank: `accounts` customers at bank 0;
/// - cross-bank: `accounts` customers per bank, each at one bank (customer `k * accounts + a` is
///   account `a` of bank `k`);
/// - packet: `accounts` customers, each at every bank.
pub fn opening_plan(mode: Mode, banks: usize, accounts: usize) -> Vec<Vec<usize>> {
    match mode {
        Mode::InBank => vec![vec![0]; accounts],
        Mode::CrossBank | Mode::SeedOps => (0..banks).flat_map(|k| std::iter::repeat_n(vec![k], accounts)).collect(),
        Mode::Packet => vec![(0..banks).collect(); accounts],
    }
}

/// Identity of one run: makes every document and e-mail of the run new to the banks.
#[derive(Debug, Clone)]
struct RunIdentity {
    tag: String,
    cpf_bases: Vec<u64>,
}

impl RunIdentity {
    fn random(accounts: usize) -> Self {
        let tag = format!("{:08x}", rand::random::<u32>());
        // Leave room after the start for `accounts` bases plus the few skipped ones.
        let room = 1_000_000_000 - 2 * accounts as u64 - 16;
        let start = rand::rng().random_range(1..room);
        RunIdentity { tag, cpf_bases: cpf_bases(start, accounts) }
    }

    fn new_account(&self, index: usize) -> NewAccount {
        let cpf = Cpf::from_base(self.cpf_bases[index]);
        NewAccount {
            kind: bank_client::AccountKind::Individual,
            holders: vec![Holder { name: format!("Bench {} {index}", self.tag), document: cpf.as_str().to_owned() }],
            email: self.email(index),
            phone: format!("+55759{:08}", index % 100_000_000),
            password: self.password(),
        }
    }

    fn email(&self, index: usize) -> String {
        format!("bench-{}-{index}@bench.example", self.tag)
    }

    fn password(&self) -> String {
        format!("Bench-{}-pw-0", self.tag)
    }
}

/// `count` distinct CPF bases from `start` on, skipping the bases whose CPF would be all one
/// digit ([`Cpf::from_base`] shifts those by one, which would collide with the next base).
pub fn cpf_bases(start: u64, count: usize) -> Vec<u64> {
    let mut bases = Vec::with_capacity(count);
    let mut base = start;
    while bases.len() < count {
        if !base.is_multiple_of(111_111_111) {
            bases.push(base % 1_000_000_000);
        }
        base += 1;
    }
    bases
}

async fn setup_accounts(banks: &[Bank], options: &Options) -> Result<Setup> {
    let plan = opening_plan(options.mode, banks.len(), options.accounts);
    let accounts_total: usize = plan.iter().map(Vec::len).sum();
    let identity = RunIdentity::random(plan.len());
    let progress = progress_bar(options.progress, accounts_total as u64, "setup");
    let concurrency = options.concurrency.clamp(1, SETUP_CONCURRENCY_MAX);
    let results: Vec<Result<(usize, Vec<BenchAccount>, u64)>> = futures::stream::iter(plan.iter().enumerate())
        .map(|(customer, at)| {
            let identity = &identity;
            let progress = &progress;
            async move {
                let mut accounts = Vec::with_capacity(at.len());
                let mut retries = 0;
                for &k in at {
                    let bank = &banks[k];
                    let (account, r) =
                        setup_one(bank, identity, customer, options.deposit_cents).await.with_context(|| {
                            format!("bench account {customer} ({}) at bank {}", identity.email(customer), bank.id)
                        })?;
                    progress.inc(1);
                    accounts.push(account);
                    retries += r;
                }
                Ok((customer, accounts, retries))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    progress.finish_and_clear();
    let mut made = Vec::with_capacity(results.len());
    for result in results {
        made.push(result?);
    }
    made.sort_by_key(|(customer, _, _)| *customer);
    let retries = made.iter().map(|(_, _, r)| r).sum();
    let deposited_cents = options.deposit_cents * accounts_total as i64;
    Ok(Setup { customers: made.into_iter().map(|(_, a, _)| a).collect(), accounts_total, deposited_cents, retries })
}

/// One line of an accounts file: a bench account and its session.
#[derive(Debug, Serialize, serde::Deserialize)]
struct SavedAccount {
    bank_id: u32,
    number: String,
    token: String,
    deposited_cents: i64,
}

/// Writes the in-bank setup's accounts, one JSON object a line.
fn save_setup(path: &std::path::Path, setup: &Setup, options: &Options) -> Result<()> {
    let mut out = String::new();
    for account in setup.customers.iter().flatten() {
        let token = account.client.token().context("a bench account without a session")?.to_owned();
        let saved = SavedAccount {
            bank_id: account.address.bank_id,
            number: account.address.number.clone(),
            token,
            deposited_cents: options.deposit_cents,
        };
        let _ = writeln!(out, "{}", serde_json::to_string(&saved)?);
    }
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}

/// Reads the accounts [`save_setup`] wrote; they must be `--accounts` accounts of the target bank.
fn load_setup(path: &std::path::Path, bank: &Bank, options: &Options) -> Result<Setup> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut customers = Vec::new();
    let mut deposited_cents = 0i64;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let saved: SavedAccount = serde_json::from_str(line).with_context(|| format!("in {}", path.display()))?;
        ensure!(
            saved.bank_id == bank.id,
            "{} holds accounts of bank {}, not {}",
            path.display(),
            saved.bank_id,
            bank.id
        );
        deposited_cents += saved.deposited_cents;
        let address = AccountRef { bank_id: saved.bank_id, number: saved.number };
        customers.push(vec![BenchAccount { address, client: bank.client.with_token(saved.token) }]);
    }
    ensure!(
        customers.len() == options.accounts,
        "{} holds {} accounts, not --accounts {}",
        path.display(),
        customers.len(),
        options.accounts
    );
    Ok(Setup { accounts_total: customers.len(), customers, deposited_cents, retries: 0 })
}

/// Opens, signs in and funds customer `index`'s account at `bank`; returns it with the retries
/// it took.
async fn setup_one(
    bank: &Bank,
    identity: &RunIdentity,
    index: usize,
    deposit_cents: i64,
) -> Result<(BenchAccount, u64)> {
    let client = &bank.client;
    let request = identity.new_account(index);
    let (opened, r1) = retry_overloaded(|| client.open_account(&request)).await;
    let opened = opened.context("opening")?;
    ensure!(
        opened.bank_id == bank.id,
        "{} says it is bank {}, but opened account {} in bank {}",
        bank.url,
        bank.id,
        opened.number,
        opened.bank_id
    );
    let (session, r2) = retry_overloaded(|| client.login(&request.email, &request.password)).await;
    let session = session.context("signing in")?;
    let signed_in = client.with_token(session.token);
    let key = Uuid::now_v7();
    let (entry, r3) = retry_overloaded(|| signed_in.deposit_with_key(deposit_cents, DepositMethod::Cash, key)).await;
    let entry = entry.context("depositing")?;
    ensure!(entry.status == Status::Completed, "deposit {} is {}, not completed", entry.id, entry.status);
    ensure!(
        entry.amount_cents == deposit_cents,
        "deposit {} is of {} centavos, not {deposit_cents}",
        entry.id,
        entry.amount_cents
    );
    Ok((BenchAccount { address: opened.address(), client: signed_in }, u64::from(r1 + r2 + r3)))
}

// ---- workload ------------------------------------------------------------------------------

/// The bench accounts, arranged for drawing the transfers of one mode.
#[derive(Debug)]
enum Workload {
    /// Every account at the one bank.
    InBank(Vec<BenchAccount>),
    /// `by_bank[k]`: the accounts at bank `k`.
    CrossBank { by_bank: Vec<Vec<BenchAccount>> },
    /// `customers[c][k]`: customer `c`'s account at bank `k`.
    Packet { customers: Vec<Vec<BenchAccount>> },
}

impl Workload {
    /// Arranges the customers of [`opening_plan`]`(mode, banks, accounts)`.
    fn new(mode: Mode, banks: usize, accounts: usize, customers: Vec<Vec<BenchAccount>>) -> Result<Self> {
        let expected = opening_plan(mode, banks, accounts);
        ensure!(
            customers.len() == expected.len() && customers.iter().zip(&expected).all(|(c, e)| c.len() == e.len()),
            "the setup did not open the accounts it planned"
        );
        Ok(match mode {
            Mode::InBank => Workload::InBank(customers.into_iter().flatten().collect()),
            Mode::CrossBank | Mode::SeedOps => {
                let mut by_bank = vec![Vec::with_capacity(accounts); banks];
                for (customer, opened) in customers.into_iter().enumerate() {
                    by_bank[customer / accounts].extend(opened);
                }
                Workload::CrossBank { by_bank }
            }
            Mode::Packet => Workload::Packet { customers },
        })
    }

    /// Every bench account, once.
    fn accounts(&self) -> Vec<&BenchAccount> {
        match self {
            Workload::InBank(accounts) => accounts.iter().collect(),
            Workload::CrossBank { by_bank: nested } | Workload::Packet { customers: nested } => {
                nested.iter().flatten().collect()
            }
        }
    }

    /// Draws the next transfer: the session that sends it (at the coordinating bank) and the
    /// request.
    fn draw(&self, rng: &mut impl Rng) -> (&Client, NewTransfer) {
        match self {
            Workload::InBank(accounts) => {
                let (from, to) = pick_pair(rng, accounts.len());
                let amount_cents = rng.random_range(1..=TRANSFER_AMOUNT_MAX_CENTS);
                (&accounts[from].client, one_leg(&accounts[to], amount_cents))
            }
            Workload::CrossBank { by_bank } => {
                let (i, j) = pick_pair(rng, by_bank.len());
                let from = &by_bank[i][rng.random_range(0..by_bank[i].len())];
                let to = &by_bank[j][rng.random_range(0..by_bank[j].len())];
                let amount_cents = rng.random_range(1..=TRANSFER_AMOUNT_MAX_CENTS);
                (&from.client, one_leg(to, amount_cents))
            }
            Workload::Packet { customers } => {
                let banks = customers[0].len();
                let customer = rng.random_range(0..customers.len());
                let at = rng.random_range(0..banks);
                let sources = rand::seq::index::sample(rng, banks, PACKET_LEGS);
                let legs = sources
                    .iter()
                    .map(|source| {
                        let other = pick_other(rng, customers.len(), customer);
                        let to = &customers[other][rng.random_range(0..banks)];
                        let from = (source != at).then(|| customers[customer][source].address.clone());
                        let amount_cents = rng.random_range(1..=TRANSFER_AMOUNT_MAX_CENTS);
                        NewLeg { from, to: Destination::Account(to.address.clone()), amount_cents }
                    })
                    .collect();
                (&customers[customer][at].client, NewTransfer { legs, description: None })
            }
        }
    }
}

/// A one-leg transfer from the signed-in account to `to`.
fn one_leg(to: &BenchAccount, amount_cents: i64) -> NewTransfer {
    NewTransfer {
        legs: vec![NewLeg { from: None, to: Destination::Account(to.address.clone()), amount_cents }],
        description: None,
    }
}

// ---- load ----------------------------------------------------------------------------------

/// What the workers counted.
#[derive(Debug, Clone)]
pub struct Tally {
    pub latency_us: Histogram<u64>,
    pub completed: u64,
    pub failed: u64,
    pub pending: u64,
    pub errors: u64,
    pub retries: u64,
    pub error_codes: BTreeMap<String, u64>,
}

impl Tally {
    pub fn new() -> Result<Self> {
        Ok(Tally {
            latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).context("latency histogram")?,
            completed: 0,
            failed: 0,
            pending: 0,
            errors: 0,
            retries: 0,
            error_codes: BTreeMap::new(),
        })
    }

    /// Counts a transfer that executed (201), with its status and latency. The workers pass only
    /// final statuses (they poll a `pending` answer to its end and count it in `pending` first).
    pub fn record_executed(&mut self, status: Status, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency_us.saturating_record(us);
        match status {
            Status::Completed => self.completed += 1,
            Status::Failed => self.failed += 1,
            Status::Pending => self.pending += 1,
        }
    }

    /// Counts a transfer that got no 201.
    pub fn record_error(&mut self, code: &str) {
        self.errors += 1;
        let known = self.error_codes.contains_key(code);
        let key = if known || self.error_codes.len() < ERROR_CODES_MAX { code } else { "other" };
        *self.error_codes.entry(key.to_owned()).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Tally) -> Result<()> {
        self.latency_us.add(&other.latency_us).map_err(|e| anyhow::anyhow!("merging latencies: {e:?}"))?;
        self.completed += other.completed;
        self.failed += other.failed;
        self.pending += other.pending;
        self.errors += other.errors;
        self.retries += other.retries;
        for (code, n) in &other.error_codes {
            *self.error_codes.entry(code.clone()).or_default() += n;
        }
        Ok(())
    }
}

/// Runs the load phase; returns the merged tally and its wall time.
async fn load(workload: Arc<Workload>, options: &Options, seed: u64) -> Result<(Tally, Duration)> {
    let label = if options.mode == Mode::Packet { "packets" } else { "transfers" };
    let progress = progress_bar(options.progress, options.transfers, label);
    let claimed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..options.concurrency {
        let workload = workload.clone();
        let claimed = claimed.clone();
        let progress = progress.clone();
        let transfers = options.transfers;
        let rng = StdRng::seed_from_u64(seed.wrapping_add(worker as u64));
        workers.spawn(async move { work(&workload, &claimed, transfers, rng, &progress).await });
    }
    let mut total = Tally::new()?;
    while let Some(joined) = workers.join_next().await {
        let tally = joined.context("a bench worker panicked")??;
        total.merge(&tally)?;
    }
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    Ok((total, elapsed))
}

/// One worker: claims transfers until all are claimed, one at a time (closed loop).
async fn work(
    workload: &Workload,
    claimed: &AtomicU64,
    transfers: u64,
    mut rng: StdRng,
    progress: &ProgressBar,
) -> Result<Tally> {
    let mut tally = Tally::new()?;
    while claimed.fetch_add(1, Ordering::Relaxed) < transfers {
        let (client, request) = workload.draw(&mut rng);
        // A fresh random key, never derived from the seed: rerunning with the same seed against
        // the same node must not replay (or mismatch) an earlier run's keys.
        let key = Uuid::now_v7();
        let started = Instant::now();
        let (result, retries) = retry_overloaded(|| client.transfer_with_key(&request, key)).await;
        tally.retries += u64::from(retries);
        match result {
            Ok(transfer) if transfer.status == Status::Pending => {
                tally.pending += 1;
                let (outcome, retries) = await_final(client, transfer.id).await;
                tally.retries += u64::from(retries);
                match outcome {
                    Ok(status) => tally.record_executed(status, started.elapsed()),
                    Err(code) => tally.record_error(&code),
                }
            }
            Ok(transfer) => tally.record_executed(transfer.status, started.elapsed()),
            Err(e) => tally.record_error(e.code()),
        }
        progress.inc(1);
    }
    Ok(tally)
}

/// Polls a transfer answered `pending` at its coordinating bank (with the session that sent it)
/// until it is completed or failed, at most [`PENDING_WAIT_MAX_MS`]; returns its final status
/// (or the error code to count: `pending_timeout`, or the code of a poll that was refused) and
/// the retries the polls took.
async fn await_final(client: &Client, id: Uuid) -> (Result<Status, String>, u32) {
    let deadline = Instant::now() + Duration::from_millis(PENDING_WAIT_MAX_MS);
    let mut retries = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(PENDING_POLL_MS)).await;
        let (polled, r) = retry_overloaded(|| client.get_transfer(id)).await;
        retries += r;
        match polled {
            Ok(transfer) if transfer.status != Status::Pending => return (Ok(transfer.status), retries),
            Ok(_) => {}
            // The bank may be busy or briefly unreachable: keep asking until the deadline.
            Err(e) if e.is_retryable() => {}
            Err(e) => return (Err(e.code().to_owned()), retries),
        }
        if Instant::now() >= deadline {
            return (Err("pending_timeout".to_owned()), retries);
        }
    }
}

/// A random source and a different random destination among `len >= 2` accounts.
pub fn pick_pair(rng: &mut impl Rng, len: usize) -> (usize, usize) {
    assert!(len >= 2, "a transfer needs two accounts");
    let from = rng.random_range(0..len);
    (from, pick_other(rng, len, from))
}

/// A random index among `0..len` (`len >= 2`) other than `not`.
pub fn pick_other(rng: &mut impl Rng, len: usize, not: usize) -> usize {
    assert!(len >= 2, "needs another index");
    let mut other = rng.random_range(0..len - 1);
    if other >= not {
        other += 1;
    }
    other
}

/// Repeats `attempt` while the node answers 503, with jittered exponential backoff, at most
/// [`RETRIES_MAX`] times; returns the last result and the number of retries. The closure must
/// resend the *same* request (same idempotency key) each time.
async fn retry_overloaded<T, F, Fut>(mut attempt: F) -> (Result<T, bank_client::Error>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, bank_client::Error>>,
{
    let mut retries = 0;
    loop {
        match attempt().await {
            Err(e) if e.status() == Some(503) && retries < RETRIES_MAX => {
                retries += 1;
                let jitter = rand::rng().random_range(0.5..1.0);
                tokio::time::sleep(backoff(retries, jitter)).await;
            }
            result => return (result, retries),
        }
    }
}

/// Backoff before retry number `retry` (from 1), scaled by `jitter` in `0.5..1.0`.
pub fn backoff(retry: u32, jitter: f64) -> Duration {
    let exp = RETRY_BACKOFF_BASE_MS.saturating_mul(1u64 << retry.saturating_sub(1).min(16));
    Duration::from_secs_f64(exp.min(RETRY_BACKOFF_MAX_MS) as f64 * jitter / 1000.0)
}

fn progress_bar(visible: bool, len: u64, label: &'static str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style =
        ProgressStyle::with_template("{msg:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(label);
    bar
}

// ---- check ---------------------------------------------------------------------------------

/// Balances read back after the load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Check {
    pub posted_cents: i64,
    pub held_cents: i64,
    pub negative_available_accounts: u64,
    pub read_errors: u64,
}

impl Check {
    pub fn add(&mut self, balance: &bank_client::Balance) {
        self.posted_cents += balance.posted_cents;
        self.held_cents += balance.held_cents;
        if balance.available_cents < 0 {
            self.negative_available_accounts += 1;
        }
    }

    /// Money is conserved: every balance was read, they sum to the deposits, none is negative.
    pub fn conserved(&self, deposited_cents: i64) -> bool {
        self.read_errors == 0 && self.negative_available_accounts == 0 && self.posted_cents == deposited_cents
    }

    /// Nothing left to wait for: every balance was read and none has money held.
    pub fn settled(&self) -> bool {
        self.read_errors == 0 && self.held_cents == 0
    }
}

/// Reads every balance until none has money held (an abort or a commit may still be on its way
/// to another bank) or [`SETTLE_WAIT_MAX_MS`] passed; returns the last reading and the time
/// waited.
async fn check_conservation(accounts: &[&BenchAccount]) -> (Check, Duration) {
    let started = Instant::now();
    loop {
        let check = read_balances(accounts).await;
        if check.settled() || started.elapsed() >= Duration::from_millis(SETTLE_WAIT_MAX_MS) {
            return (check, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(SETTLE_POLL_MS)).await;
    }
}

/// Every account's balance, read with its own session at its own bank.
async fn read_balances(accounts: &[&BenchAccount]) -> Check {
    let balances: Vec<Result<bank_client::Account, bank_client::Error>> = futures::stream::iter(accounts)
        .map(|account| async move { retry_overloaded(|| account.client.me()).await.0 })
        .buffer_unordered(SETUP_CONCURRENCY_MAX)
        .collect()
        .await;
    let mut check = Check::default();
    for balance in balances {
        match balance {
            Ok(account) => check.add(&account.balance),
            Err(_) => check.read_errors += 1,
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_latencies() {
        let mut tally = Tally::new().expect("tally");
        for ms in 1..=100u64 {
            tally.record_executed(Status::Completed, Duration::from_millis(ms));
        }
        let latency = LatencyMs::from_histogram_us(&tally.latency_us);
        // Three significant digits: values are exact to within 0.1%.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(latency.p50, 50.0), "{latency:?}");
        assert!(close(latency.p90, 90.0), "{latency:?}");
        assert!(close(latency.p99, 99.0), "{latency:?}");
        assert!(close(latency.max, 100.0), "{latency:?}");
        assert!(close(latency.mean, 50.5), "{latency:?}");
        assert_eq!(tally.completed, 100);
    }

    #[test]
    fn empty_histogram_gives_zeros() {
        let tally = Tally::new().expect("tally");
        assert_eq!(LatencyMs::from_histogram_us(&tally.latency_us).max, 0.0);
    }

    #[test]
    fn throughput_is_ops_over_seconds() {
        assert_eq!(ops_per_s(1000, Duration::from_secs(4)), 250.0);
        assert_eq!(ops_per_s(1, Duration::from_millis(3)), 333.33);
        assert_eq!(ops_per_s(5, Duration::ZERO), 0.0);
    }

    #[test]
    fn tallies_merge_counts_codes_and_latencies() {
        let mut a = Tally::new().expect("tally");
        a.record_executed(Status::Completed, Duration::from_millis(2));
        a.record_error("overloaded");
        let mut b = Tally::new().expect("tally");
        b.record_executed(Status::Failed, Duration::from_millis(8));
        b.record_executed(Status::Pending, Duration::from_millis(8));
        b.record_error("overloaded");
        b.record_error("transport");
        b.retries = 3;
        a.merge(&b).expect("merge");
        assert_eq!((a.completed, a.failed, a.pending, a.errors, a.retries), (1, 1, 1, 3, 3));
        assert_eq!(a.error_codes.get("overloaded"), Some(&2));
        assert_eq!(a.latency_us.len(), 3);
    }

    #[test]
    fn error_codes_are_bounded() {
        let mut tally = Tally::new().expect("tally");
        for i in 0..(ERROR_CODES_MAX + 10) {
            tally.record_error(&format!("code_{i}"));
        }
        assert_eq!(tally.error_codes.len(), ERROR_CODES_MAX + 1);
        assert_eq!(tally.error_codes.get("other"), Some(&10));
    }

    #[test]
    fn pairs_never_send_to_self_and_cover_everyone() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen_from = [false; 5];
        let mut seen_to = [false; 5];
        for _ in 0..2000 {
            let (from, to) = pick_pair(&mut rng, 5);
            assert_ne!(from, to);
            seen_from[from] = true;
            seen_to[to] = true;
        }
        assert!(seen_from.iter().all(|&s| s) && seen_to.iter().all(|&s| s));
        let (from, to) = pick_pair(&mut rng, 2);
        assert_eq!(from + to, 1);
    }

    #[test]
    fn cpf_bases_give_distinct_valid_cpfs() {
        // A range crossing 222_222_222, whose CPF would be all twos.
        let bases = cpf_bases(222_222_200, 50);
        assert_eq!(bases.len(), 50);
        assert!(!bases.contains(&222_222_222));
        let cpfs: std::collections::BTreeSet<String> =
            bases.iter().map(|&b| Cpf::from_base(b).as_str().to_owned()).collect();
        assert_eq!(cpfs.len(), 50, "distinct");
        for cpf in &cpfs {
            assert!(Cpf::parse(cpf).is_ok(), "{cpf} valid");
        }
        let identity = RunIdentity::random(ACCOUNTS_MAX);
        assert!(identity.cpf_bases.iter().all(|&b| b < 1_000_000_000));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1, 1.0), Duration::from_millis(RETRY_BACKOFF_BASE_MS));
        assert_eq!(backoff(2, 1.0), Duration::from_millis(2 * RETRY_BACKOFF_BASE_MS));
        assert_eq!(backoff(30, 1.0), Duration::from_millis(RETRY_BACKOFF_MAX_MS));
        assert!(backoff(3, 0.5) < backoff(3, 1.0));
    }

    #[test]
    fn conservation_needs_every_balance_and_no_negative() {
        let balance = |posted, available| bank_client::Balance {
            posted_cents: posted,
            held_cents: 0,
            available_cents: available,
        };
        let mut check = Check::default();
        check.add(&balance(700, 700));
        check.add(&balance(300, 300));
        assert!(check.conserved(1000));
        assert!(!check.conserved(999));
        let mut negative = check.clone();
        negative.add(&balance(0, -1));
        assert!(!negative.conserved(1000));
        let mut unread = check.clone();
        unread.read_errors = 1;
        assert!(!unread.conserved(1000));
    }

    fn summary() -> Summary {
        Summary {
            mode: Mode::InBank,
            target: "http://127.0.0.1:8081".into(),
            banks: 1,
            accounts: 2,
            accounts_total: 2,
            transfers: 10,
            concurrency: 2,
            seed: 1,
            ops_per_s: 100.0,
            latency_ms: LatencyMs { p50: 1.0, p90: 2.0, p99: 3.0, max: 4.0, mean: 1.5 },
            completed: 9,
            failed: 1,
            pending: 0,
            errors: 0,
            retries: 0,
            error_codes: BTreeMap::new(),
            conserved: true,
            deposited_cents: 2000,
            posted_cents: 2000,
            held_cents: 0,
            negative_available_accounts: 0,
            balance_read_errors: 0,
            setup_retries: 0,
            setup_s: 0.5,
            elapsed_s: 0.1,
            settle_s: 0.0,
        }
    }

    /// The `--json` line has every field scripts rely on.
    #[test]
    fn json_summary_has_the_documented_fields() {
        let line = serde_json::to_string(&summary()).expect("json");
        assert!(!line.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).expect("parse");
        for field in [
            "mode",
            "accounts",
            "transfers",
            "concurrency",
            "ops_per_s",
            "latency_ms",
            "completed",
            "failed",
            "errors",
            "retries",
            "conserved",
            "elapsed_s",
            "banks",
        ] {
            assert!(value.get(field).is_some(), "missing {field}");
        }
        for field in ["p50", "p90", "p99", "max"] {
            assert!(value["latency_ms"].get(field).is_some(), "missing latency_ms.{field}");
        }
        assert_eq!(value["mode"], "in-bank");
        assert_eq!(value["conserved"], true);
    }

    #[test]
    fn verdicts_say_what_went_wrong() {
        let ok = summary();
        assert!(ok.verdict().starts_with("conserved"));
        assert!(ok.render().contains("R$ 20,00"));
        let mut lost = summary();
        lost.conserved = false;
        lost.posted_cents = 1990;
        assert!(lost.verdict().contains("difference -R$ 0,10"), "{}", lost.verdict());
        let mut unread = summary();
        unread.conserved = false;
        unread.balance_read_errors = 1;
        assert!(unread.verdict().starts_with("NOT VERIFIED"));
    }

    #[tokio::test]
    async fn consortium_modes_need_a_consortium_file_before_any_request() {
        let mut options = Options::new("http://127.0.0.1:1");
        options.mode = Mode::CrossBank;
        let err = run(&options).await.expect_err("no consortium file");
        assert!(err.to_string().contains("--consortium"), "{err}");
        options.consortium.file = Some(PathBuf::from("/nonexistent/consortium.toml"));
        options.mode = Mode::Packet;
        options.consortium.banks = Some(2);
        let err = run(&options).await.expect_err("too few banks for a packet");
        assert!(err.to_string().contains("at least 3 banks"), "{err}");
        options.consortium.banks = None;
        let err = run(&options).await.expect_err("no such file");
        assert!(format!("{err:#}").contains("/nonexistent/consortium.toml"), "{err:#}");
        options.mode = Mode::InBank;
        options.accounts = 1;
        assert!(run(&options).await.expect_err("too few").to_string().contains("--accounts"));
    }

    #[test]
    fn opening_plans_put_accounts_per_bank() {
        assert_eq!(opening_plan(Mode::InBank, 1, 3), vec![vec![0]; 3]);
        assert_eq!(opening_plan(Mode::CrossBank, 3, 2), vec![vec![0], vec![0], vec![1], vec![1], vec![2], vec![2]]);
        assert_eq!(opening_plan(Mode::Packet, 3, 2), vec![vec![0, 1, 2], vec![0, 1, 2]]);
    }

    /// Fake accounts (no request is ever sent): account `a` of bank `k` is numbered `k-a`, and
    /// its client's token names it, so a test can tell which session sends.
    fn fake_customers(mode: Mode, banks: usize, accounts: usize) -> Vec<Vec<BenchAccount>> {
        let client = Client::new("http://127.0.0.1:1").expect("client");
        opening_plan(mode, banks, accounts)
            .iter()
            .enumerate()
            .map(|(customer, at)| {
                at.iter()
                    .map(|&k| BenchAccount {
                        address: AccountRef { bank_id: k as u32 + 1, number: format!("{customer}-{k}") },
                        client: client.with_token(format!("{customer}-{k}")),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn cross_bank_transfers_go_from_one_bank_to_another() {
        let workload = Workload::new(Mode::CrossBank, 3, 4, fake_customers(Mode::CrossBank, 3, 4)).expect("workload");
        assert_eq!(workload.accounts().len(), 12);
        let mut rng = StdRng::seed_from_u64(3);
        let mut pairs = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let (client, request) = workload.draw(&mut rng);
            assert_eq!(request.legs.len(), 1);
            let leg = &request.legs[0];
            assert!(leg.from.is_none(), "the sender's own account");
            assert!((1..=TRANSFER_AMOUNT_MAX_CENTS).contains(&leg.amount_cents));
            let Destination::Account(to) = &leg.to else { panic!("addressed by account") };
            let sender = client.token().expect("session");
            let from_bank: u32 = sender.rsplit('-').next().expect("bank").parse().expect("bank");
            assert_ne!(from_bank + 1, to.bank_id, "{sender} -> {to:?}");
            pairs.insert((from_bank + 1, to.bank_id));
        }
        assert_eq!(pairs.len(), 6, "every ordered pair of banks: {pairs:?}");
    }

    #[test]
    fn packets_spend_one_customers_accounts_at_three_banks() {
        for banks in [3, 4] {
            let workload =
                Workload::new(Mode::Packet, banks, 5, fake_customers(Mode::Packet, banks, 5)).expect("workload");
            assert_eq!(workload.accounts().len(), 5 * banks);
            let mut rng = StdRng::seed_from_u64(banks as u64);
            let mut coordinators = std::collections::BTreeSet::new();
            for _ in 0..1000 {
                let (client, request) = workload.draw(&mut rng);
                let sender = client.token().expect("session").to_owned();
                let (customer, at) = sender.split_once('-').expect("customer-bank");
                let at_bank: u32 = at.parse::<u32>().expect("bank") + 1;
                coordinators.insert(at_bank);
                assert_eq!(request.legs.len(), PACKET_LEGS);
                let mut source_banks: Vec<u32> = request
                    .legs
                    .iter()
                    .map(|leg| match &leg.from {
                        None => at_bank,
                        Some(from) => {
                            assert_ne!(from.bank_id, at_bank, "the leg at the coordinator leaves out from");
                            assert_eq!(from.number.split_once('-').expect("number").0, customer, "own account");
                            from.bank_id
                        }
                    })
                    .collect();
                source_banks.sort_unstable();
                source_banks.dedup();
                assert_eq!(source_banks.len(), PACKET_LEGS, "three different banks: {request:?}");
                for leg in &request.legs {
                    let Destination::Account(to) = &leg.to else { panic!("addressed by account") };
                    assert_ne!(to.number.split_once('-').expect("number").0, customer, "to another customer");
                    assert!((1..=TRANSFER_AMOUNT_MAX_CENTS).contains(&leg.amount_cents));
                }
            }
            assert_eq!(coordinators.len(), banks, "sent at every bank");
        }
    }

    #[test]
    fn others_are_never_the_excluded_one() {
        let mut rng = StdRng::seed_from_u64(9);
        for _ in 0..500 {
            assert_eq!(pick_other(&mut rng, 2, 0), 1);
            assert_ne!(pick_other(&mut rng, 5, 3), 3);
        }
    }

    #[test]
    fn settled_needs_every_balance_and_no_hold() {
        let mut check = Check::default();
        assert!(check.settled());
        check.add(&bank_client::Balance { posted_cents: 10, held_cents: 5, available_cents: 5 });
        assert!(!check.settled());
        let unread = Check { read_errors: 1, ..Check::default() };
        assert!(!unread.settled());
    }
}
