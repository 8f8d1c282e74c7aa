//! The command line of `bank`: every command, flag and environment fallback, parsed by clap.
//!
//! Raw text is parsed into domain values here, once (amounts through
//! [`bank_core::Amount::parse_brl`], addresses into `SocketAddr`), so the commands never see an
//! unparsed amount.

use bank_core::Amount;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::bench::{ConsortiumArgs, Mode};

/// Default node address for customer commands and the benchmark.
pub const DEFAULT_TARGET: &str = "http://127.0.0.1:8081";

/// A bank of the consortium: run a node, act as a customer, or load-test a node.
#[derive(Debug, Parser)]
#[command(name = "bank", version, about, propagate_version = true)]
pub struct Cli {
    /// URL of the bank node to talk to.
    #[arg(long, global = true, env = "BANK_TARGET", default_value = DEFAULT_TARGET)]
    pub target: String,

    /// File keeping session tokens, per target (default: <config dir>/bank/sessions.json).
    #[arg(long, global = true, env = "BANK_SESSION_FILE")]
    pub session_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a bank node until Ctrl-C or SIGTERM.
    Node(NodeArgs),
    /// Run a local consortium: every bank its own `bank node` process, until Ctrl-C.
    Up(UpArgs),
    /// Manage accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Sign in and keep the session token for this target.
    Login(LoginArgs),
    /// End the session of this target.
    Logout,
    /// Show the signed-in account and its balance.
    Me,
    /// Deposit money into the signed-in account.
    Deposit(DepositArgs),
    /// Withdraw money from the signed-in account.
    Withdraw(WithdrawArgs),
    /// Pix: send money by key, look keys up, register keys.
    #[command(subcommand)]
    Pix(PixCommand),
    /// Inspect transfers.
    #[command(subcommand)]
    Transfer(TransferCommand),
    /// List the signed-in account's entries, newest first.
    Statement(StatementArgs),
    /// The customer's accounts in every bank of the consortium.
    Accounts,
    /// Load-test a node or a consortium (closed loop) and check that money is conserved.
    Bench(BenchArgs),
    /// Check the consortium's invariants (DESIGN.md §8) against every live bank, as the operator.
    Audit(AuditArgs),
    /// Cut a running bank off from its peers, or reconnect it (the operator's fault switch, for
    /// tests and demonstrations; the bank must run with --fault-switch).
    Fault(FaultArgs),
    /// Make this bank's key pair on this machine and print its public part (docs/deploy.md).
    Keygen(KeygenArgs),
    /// Assemble the consortium file from the members' public keys (the operator's job).
    #[command(subcommand)]
    Consortium(ConsortiumCommand),
    /// Exit 0 when the bank at URL answers its health check (a container's HEALTHCHECK).
    Health(HealthArgs),
    /// Copy a bank's database consistently, also while the bank runs.
    Backup(BackupArgs),
    /// Print the OpenAPI 3.1 document of the public API (what a node serves at
    /// /api/v1/openapi.json): `bank openapi > openapi.json`.
    Openapi,
    /// Jepsen-style test: a consortium in network namespaces, clients, a seeded nemesis
    /// (partitions, kills, pauses), then a check of the history (needs root).
    Torture(TortureArgs),
}

/// `bank keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The secret key file to create (mode 0600; never overwritten); the public key goes beside
    /// it with the extension `.pub`.
    #[arg(long, env = "BANK_SIGNING_KEY")]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ConsortiumCommand {
    /// Start a consortium file with the operator's public key (the key is made if missing).
    Init {
        /// The consortium file to create.
        #[arg(long, env = "BANK_CONFIG")]
        file: PathBuf,
        /// The operator's secret key file (made with mode 0600 if missing).
        #[arg(long)]
        operator_key: PathBuf,
    },
    /// Make every bank's key pair and the consortium file in one directory, for banks that run on
    /// one host (`compose.yaml`'s first-start service); reused as it is when it exists.
    Create {
        /// The directory of the keys and consortium.toml.
        #[arg(long)]
        dir: PathBuf,
        /// Number of banks (1 to 9).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=9))]
        banks: u32,
        /// Port of bank 1; bank N listens on P+N-1.
        #[arg(long, default_value_t = 8081, value_parser = clap::value_parser!(u16).range(1..))]
        base_port: u16,
        /// The banks' host names; `{id}` stands for the bank's id.
        #[arg(long, default_value = "bank{id}")]
        hosts: String,
    },
    /// Add a member bank; the file is validated as a whole and left unchanged on any error.
    Add {
        #[arg(long, env = "BANK_CONFIG")]
        file: PathBuf,
        /// The bank's id (1, 2, …), unique in the consortium.
        #[arg(long)]
        id: u32,
        /// Its display name.
        #[arg(long)]
        name: String,
        /// The URL the other banks reach it at (`http://host:port`).
        #[arg(long)]
        url: String,
        /// Its public key (base64, as `bank keygen` printed it).
        #[arg(long, conflicts_with = "public_key_file")]
        public_key: Option<String>,
        /// Its public key file (the `.pub` beside its secret key).
        #[arg(long)]
        public_key_file: Option<PathBuf>,
    },
}

/// `bank health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The bank's base URL (default: this machine at the port of BANK_LISTEN, else 8081).
    pub url: Option<String>,
    /// How long to wait for the answer.
    #[arg(long, default_value_t = 2_000)]
    pub timeout_ms: u64,
}

/// `bank backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The bank's data directory.
    #[arg(long, env = "BANK_DATA")]
    pub data: PathBuf,
    /// The copy to create (mode 0600; an existing file is never overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

/// `bank torture`.
#[derive(Debug, Args)]
pub struct TortureArgs {
    /// Number of banks, each in its own network namespace.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=9))]
    pub banks: u32,
    /// How long the clients work: the nemesis acts during the first five sixths, then
    /// everything is healed (e.g. `30s`, `2m`, `120`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: std::time::Duration,
    /// Seed of the nemesis schedule and the workload (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Directory for the banks' data, keys, logs and the report (new or empty; default: a new
    /// directory under the temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Where to write the JSON report (default: DIR/report.json).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Concurrent clients per bank.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers_per_bank: u32,
    /// Customers, each with an account at every bank.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=50))]
    pub customers: u32,
    #[command(flatten)]
    pub ring: RingArgs,
    /// Run deliberately broken banks (tests only): each acknowledges its work this many ms
    /// before committing it, so the run must report anomalies.
    #[arg(long, hide = true)]
    pub test_broken_ack_before_commit_ms: Option<u64>,
}

/// A duration as `90`, `90s`, `2m` or `1h`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number.parse().map_err(|_| format!("not a duration: {text:?} (e.g. 30s, 2m)"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}: use s, m or h")),
    };
    if seconds == 0 || seconds > 24 * 3600 {
        return Err(format!("{text:?}: from 1 s to 24 h"));
    }
    Ok(std::time::Duration::from_secs(seconds))
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `bank node`. With `--config`, the consortium file's `[node]` table and this bank's member
/// entry fill in what the flags and environment leave out (see [`crate::node::resolve`]).
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// This bank's id in the consortium (default: `[node] id` of the consortium file).
    #[arg(long, env = "BANK_ID")]
    pub id: Option<u32>,
    /// This bank's display name (default: its name in the consortium file).
    #[arg(long, env = "BANK_NAME")]
    pub name: Option<String>,
    /// Address to listen on; port 0 picks a free port (default: the port of this bank's URL in
    /// the consortium file, else 127.0.0.1:8081).
    #[arg(long, env = "BANK_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory, created if missing, reused if present (default: ./data/bank-<id>).
    #[arg(long, env = "BANK_DATA")]
    pub data: Option<PathBuf>,
    /// Consortium file (TOML): members, their URLs and public keys, the operator's key.
    /// Without it the bank runs alone and refuses inter-bank requests.
    #[arg(long, env = "BANK_CONFIG")]
    pub config: Option<PathBuf>,
    /// This bank's secret Ed25519 key file (base64, mode 0600); needed with --config.
    #[arg(long, env = "BANK_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Log format; the level comes from RUST_LOG (default `info`).
    #[arg(long, env = "BANK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub ring: RingArgs,
    /// Shift this bank's wall clock by this many ms (tests and fault injection only: a bank whose
    /// clock disagrees with its peers').
    #[arg(long, env = "BANK_CLOCK_OFFSET_MS", hide = true, allow_hyphen_values = true)]
    pub clock_offset_ms: Option<i64>,
    /// Deliberately broken (tests only): answer each batch this many ms before committing it, so
    /// a crash loses acknowledged work — `bank torture` must catch it.
    #[arg(long, hide = true)]
    pub test_ack_before_commit_ms: Option<u64>,
}

/// How cross-bank work is ordered (DESIGN.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CoordinationArg {
    /// A bank begins cross-bank transactions only while it holds the token.
    TokenRing,
    /// No gate: every bank begins its cross-bank transactions at once.
    Concurrent,
}

/// The token ring's settings, shared by `bank node` and `bank up` (which passes them on to every
/// bank: the banks of a consortium must agree on them).
#[derive(Debug, Clone, Args)]
pub struct RingArgs {
    /// How cross-bank work is ordered.
    #[arg(long, env = "BANK_COORDINATION", value_enum, default_value_t = CoordinationArg::TokenRing)]
    pub coordination: CoordinationArg,
    /// Most cross-bank transactions a bank begins per visit of the token (1 reproduces the
    /// original design).
    #[arg(long, env = "BANK_OPS_PER_TOKEN", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub ops_per_token: u32,
    /// Enable the operator's fault switch (`bank fault`), which cuts a running bank off from its
    /// peers. For tests and demonstrations only.
    #[arg(long, env = "BANK_FAULT_SWITCH")]
    pub fault_switch: bool,
    /// Serve the seed-compatible API: the original system's routes (`/operations`,
    /// `/account/data/<n>`, ...) for its web interface and scripts. They have NO authentication:
    /// anyone who reaches the bank can move anyone's money. Demonstrations on trusted networks
    /// only (docs/seed-compat.md). Kept with the ring's settings because `bank up` passes these
    /// on to every bank; `[node] seed_compat = true` in the consortium file turns it on too.
    #[arg(long, env = "BANK_SEED_COMPAT")]
    pub seed_compat: bool,
}

impl RingArgs {
    /// The flags that reproduce these settings on a `bank node` command line.
    pub fn to_args(&self) -> Vec<String> {
        let mode = match self.coordination {
            CoordinationArg::TokenRing => "token-ring",
            CoordinationArg::Concurrent => "concurrent",
        };
        let mut args =
            vec!["--coordination".into(), mode.into(), "--ops-per-token".into(), self.ops_per_token.to_string()];
        if self.fault_switch {
            args.push("--fault-switch".into());
        }
        if self.seed_compat {
            args.push("--seed-compat".into());
        }
        args
    }
}

/// `bank up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Number of banks (1 to 9). Default: 5 for a new consortium; an existing one keeps its own.
    #[arg(long, env = "BANK_UP_BANKS", value_parser = clap::value_parser!(u32).range(1..=9))]
    pub banks: Option<u32>,
    /// Directory of the consortium: keys, consortium.toml and one data directory per bank.
    #[arg(long, env = "BANK_UP_DATA", default_value = "data")]
    pub data: PathBuf,
    /// Port of bank 1; bank N listens on P+N-1. Default: 8081 for a new consortium; an existing
    /// one keeps its own.
    #[arg(long, env = "BANK_UP_BASE_PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub base_port: Option<u16>,
    /// Log format of the banks (their logs go to DATA/bank-N/node.log).
    #[arg(long, env = "BANK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub ring: RingArgs,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Open an account.
    Open(OpenAccountArgs),
}

/// Kind of account to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Individual,
    Company,
    Joint,
}

impl From<KindArg> for bank_client::AccountKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Individual => bank_client::AccountKind::Individual,
            KindArg::Company => bank_client::AccountKind::Company,
            KindArg::Joint => bank_client::AccountKind::Joint,
        }
    }
}

#[derive(Debug, Args)]
pub struct OpenAccountArgs {
    #[arg(long, value_enum, default_value_t = KindArg::Individual)]
    pub kind: KindArg,
    /// Name of the (first) holder.
    #[arg(long, requires = "document")]
    pub name: Option<String>,
    /// CPF or CNPJ of the (first) holder, with or without punctuation.
    #[arg(long, requires = "name")]
    pub document: Option<String>,
    /// A further holder as `name:document` (repeat for each holder of a joint account).
    #[arg(long = "holder", value_name = "NAME:DOCUMENT", value_parser = parse_holder)]
    pub holders: Vec<bank_client::Holder>,
    #[arg(long)]
    pub email: String,
    /// Phone number, e.g. +5575999991234.
    #[arg(long)]
    pub phone: String,
    #[arg(long, env = "BANK_PASSWORD", hide_env_values = true)]
    pub password: String,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[arg(long, env = "BANK_EMAIL")]
    pub email: String,
    #[arg(long, env = "BANK_PASSWORD", hide_env_values = true)]
    pub password: String,
}

/// How a deposit comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    Cash,
    Boleto,
    Qr,
}

impl From<MethodArg> for bank_client::DepositMethod {
    fn from(method: MethodArg) -> Self {
        match method {
            MethodArg::Cash => bank_client::DepositMethod::Cash,
            MethodArg::Boleto => bank_client::DepositMethod::Boleto,
            MethodArg::Qr => bank_client::DepositMethod::Qr,
        }
    }
}

#[derive(Debug, Args)]
pub struct DepositArgs {
    /// Amount, e.g. 1234,56 or 1234.56 or 1.234,56.
    #[arg(value_parser = parse_amount)]
    pub amount: Amount,
    #[arg(long, value_enum, default_value_t = MethodArg::Cash)]
    pub method: MethodArg,
}

#[derive(Debug, Args)]
pub struct WithdrawArgs {
    /// Amount, e.g. 1234,56 or 1234.56.
    #[arg(value_parser = parse_amount)]
    pub amount: Amount,
}

#[derive(Debug, Subcommand)]
pub enum PixCommand {
    /// Send money to a Pix key (shows whom it goes to first).
    Send(PixSendArgs),
    /// Show whom a key points to.
    Lookup {
        /// The key: CPF, CNPJ, email, phone or random key.
        key: String,
    },
    /// Register an extra key for the signed-in account.
    Register {
        #[arg(long = "type", value_enum)]
        key_type: KeyTypeArg,
    },
}

#[derive(Debug, Args)]
pub struct PixSendArgs {
    /// Destination key: CPF, CNPJ, email, phone or random key.
    #[arg(long)]
    pub key: String,
    /// Amount, e.g. 1234,56 or 1234.56.
    #[arg(value_parser = parse_amount)]
    pub amount: Amount,
    #[arg(long)]
    pub description: Option<String>,
}

/// Key types a customer can register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyTypeArg {
    Email,
    Phone,
    Random,
}

impl From<KeyTypeArg> for bank_client::NewPixKeyType {
    fn from(t: KeyTypeArg) -> Self {
        match t {
            KeyTypeArg::Email => bank_client::NewPixKeyType::Email,
            KeyTypeArg::Phone => bank_client::NewPixKeyType::Phone,
            KeyTypeArg::Random => bank_client::NewPixKeyType::Random,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TransferCommand {
    /// Send one transfer of one or more legs — a packet from the customer's accounts at several
    /// banks, all or nothing.
    Send(TransferSendArgs),
    /// Show a transfer (e.g. to follow a pending one).
    Show {
        /// The transfer id.
        id: uuid::Uuid,
    },
}

#[derive(Debug, Args)]
pub struct TransferSendArgs {
    /// A leg: FROM (`me`, or BANK/NUMBER of one of the customer's accounts), TO (BANK/NUMBER or a
    /// Pix key) and AMOUNT (e.g. 100,00). Repeat for each leg (at most 16).
    #[arg(long = "leg", num_args = 3, value_names = ["FROM", "TO", "AMOUNT"], required = true)]
    pub legs: Vec<String>,
    #[arg(long)]
    pub description: Option<String>,
}

impl TransferSendArgs {
    /// The legs as the API takes them; an error names the leg at fault.
    pub fn legs(&self) -> Result<Vec<bank_client::NewLeg>, String> {
        self.legs
            .chunks(3)
            .enumerate()
            .map(|(i, words)| {
                let [from, to, amount] = words else { return Err(format!("leg {}: FROM TO AMOUNT expected", i + 1)) };
                let at = |e: String| format!("leg {}: {e}", i + 1);
                let from = if from == "me" { None } else { Some(account_ref(from).map_err(at)?) };
                let to = match account_ref(to) {
                    Ok(account) => bank_client::Destination::Account(account),
                    Err(_) => bank_client::Destination::Key { key: to.clone() },
                };
                let amount_cents = parse_amount(amount).map_err(at)?.cents();
                Ok(bank_client::NewLeg { from, to, amount_cents })
            })
            .collect()
    }
}

/// `BANK/NUMBER`, e.g. `2/000001`.
fn account_ref(text: &str) -> Result<bank_client::AccountRef, String> {
    let (bank, number) = text.split_once('/').ok_or_else(|| format!("{text:?} is not BANK/NUMBER"))?;
    let bank_id = bank.parse().map_err(|_| format!("{bank:?} is not a bank id"))?;
    let number = bank_core::ids::AccountNumber::parse(number)
        .map_err(|e| format!("{number:?} is not an account number: {e}"))?;
    Ok(bank_client::AccountRef { bank_id, number: number.to_string() })
}

#[derive(Debug, Args)]
pub struct StatementArgs {
    /// Entries per page.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub limit: u32,
    /// Cursor from a previous page (its `next`).
    #[arg(long)]
    pub before: Option<String>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure: `in-bank` loads the --target node; `cross-bank` (one-leg Pix between
    /// accounts of different banks) and `packet` (three-leg transfers from one customer's
    /// accounts at three banks) load the banks of --consortium.
    #[arg(long, value_enum, default_value_t = Mode::InBank)]
    pub mode: Mode,
    #[command(flatten)]
    pub consortium: ConsortiumArgs,
    /// Accounts created for the run. In the consortium modes, per bank: cross-bank opens this
    /// many accounts at each bank; packet opens this many customers, each with one account at
    /// every bank.
    #[arg(long, default_value_t = 100)]
    pub accounts: usize,
    /// Transfers to execute (packets, in packet mode).
    #[arg(long, default_value_t = 20_000)]
    pub transfers: u64,
    /// Transfers in flight at once (closed loop: each worker waits for its answer).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Money deposited into each account (at every bank) at setup, in centavos.
    #[arg(long, default_value_t = 1_000_000)]
    pub deposit_cents: i64,
    /// Seed of the workload's choices (random if absent; printed either way).
    #[arg(long, env = "BANK_BENCH_SEED")]
    pub seed: Option<u64>,
    /// Print one JSON object on one line instead of tables (and no progress bar).
    #[arg(long)]
    pub json: bool,
    /// Instead of a run: add about N ledger lines of history (in-bank transfers between the
    /// bank's first 1,000 accounts) to the stopped bank in --data-dir, by bulk insert, to
    /// measure the bank with a long history. Run `bank bench` against it once first (it needs
    /// accounts).
    #[arg(long, value_name = "N", requires = "data_dir")]
    pub preload_entries: Option<u64>,
    /// The data directory of the (stopped) bank that --preload-entries writes into.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// In-bank mode: reuse the bench accounts (numbers and sessions) saved in FILE instead of
    /// opening new ones; when FILE does not exist, the setup's accounts are saved there. With a
    /// copy of the bank's data directory taken after that setup, runs with thousands of
    /// accounts skip minutes of password hashing.
    #[arg(long, value_name = "FILE")]
    pub accounts_file: Option<PathBuf>,
}

/// `bank audit`: exit status 0 when every invariant holds, 3 when one is violated, 4 when some
/// cannot be judged (a bank unreachable, work still in flight).
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Consortium file (TOML): the banks to read and the operator's public key.
    #[arg(long, env = "BANK_CONSORTIUM")]
    pub consortium: PathBuf,
    /// The operator's secret key file (default: keys/operator.key beside the consortium file,
    /// where `bank up` puts it).
    #[arg(long, env = "BANK_OPERATOR_KEY")]
    pub operator_key: Option<PathBuf>,
    /// Seconds to wait for in-flight work to settle (and unreachable banks to answer) before
    /// reporting what is still in flight.
    #[arg(long, default_value_t = 10)]
    pub wait_s: u64,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `bank fault`.
#[derive(Debug, Args)]
pub struct FaultArgs {
    /// Consortium file (TOML): where the bank is, and the operator's public key.
    #[arg(long, env = "BANK_CONSORTIUM")]
    pub consortium: PathBuf,
    /// The operator's secret key file (default: keys/operator.key beside the consortium file).
    #[arg(long, env = "BANK_OPERATOR_KEY")]
    pub operator_key: Option<PathBuf>,
    /// The bank to cut off or reconnect.
    #[arg(long)]
    pub bank: u32,
    /// What to do.
    #[arg(value_enum)]
    pub action: FaultAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FaultAction {
    /// Cut the bank off from its peers (a partition with it alone on one side).
    CutOff,
    /// Reconnect it.
    Heal,
}

/// Parses a customer-typed amount (`1234,56`, `1234.56`, `R$ 1.234,56`).
pub fn parse_amount(text: &str) -> Result<Amount, String> {
    Amount::parse_brl(text).map_err(|e| e.to_string())
}

/// Parses `name:document` (split at the last `:`, since a name may not but could contain one).
pub fn parse_holder(text: &str) -> Result<bank_client::Holder, String> {
    match text.rsplit_once(':') {
        Some((name, document)) if !name.trim().is_empty() && !document.trim().is_empty() => {
            Ok(bank_client::Holder { name: name.trim().to_owned(), document: document.trim().to_owned() })
        }
        _ => Err(format!("{text:?} is not NAME:DOCUMENT (e.g. \"Ana Souza:529.982.247-25\")")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bank").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn node_command_takes_its_settings() {
        let cli = parse(&["node", "--id", "3", "--name", "Eleven", "--listen", "127.0.0.1:0", "--data", "/tmp/b3"])
            .expect("parse");
        let Command::Node(node) = cli.command else { panic!("not node") };
        assert_eq!((node.id, node.name.as_deref()), (Some(3), Some("Eleven")));
        assert_eq!(node.listen.map(|l| l.port()), Some(0));
        assert_eq!(node.log_format, LogFormat::Text);
        let cli = parse(&["node", "--id", "1", "--name", "X", "--data", "d", "--log-format", "json"]).expect("parse");
        assert!(matches!(cli.command, Command::Node(NodeArgs { log_format: LogFormat::Json, .. })));
        assert!(parse(&["node", "--id", "1", "--name", "X", "--data", "d", "--listen", "nowhere"]).is_err());
    }

    #[test]
    fn node_takes_a_consortium_file_and_key() {
        let cli = parse(&["node", "--id", "2", "--config", "c.toml", "--signing-key", "k"]).expect("parse");
        let Command::Node(node) = cli.command else { panic!("not node") };
        assert_eq!(node.config.as_deref(), Some(std::path::Path::new("c.toml")));
        assert_eq!(node.signing_key.as_deref(), Some(std::path::Path::new("k")));
        assert!(node.name.is_none() && node.listen.is_none() && node.data.is_none());
    }

    #[test]
    fn up_bounds_its_options() {
        let cli = parse(&["up"]).expect("parse");
        let Command::Up(up) = cli.command else { panic!("not up") };
        assert_eq!((up.banks, up.data.as_path(), up.base_port), (None, std::path::Path::new("data"), None));
        let cli = parse(&["up", "--banks", "3", "--data", "/tmp/x", "--base-port", "9000"]).expect("parse");
        let Command::Up(up) = cli.command else { panic!("not up") };
        assert_eq!((up.banks, up.base_port), (Some(3), Some(9000)));
        assert!(parse(&["up", "--banks", "0"]).is_err());
        assert!(parse(&["up", "--banks", "10"]).is_err());
        assert!(parse(&["up", "--base-port", "0"]).is_err());
    }

    #[test]
    fn ring_settings_default_to_the_token_ring_and_pass_on_to_every_bank() {
        let cli = parse(&["up"]).expect("parse");
        let Command::Up(up) = cli.command else { panic!("not up") };
        assert_eq!(
            (up.ring.coordination, up.ring.ops_per_token, up.ring.fault_switch),
            (CoordinationArg::TokenRing, 64, false)
        );
        let cli =
            parse(&["up", "--coordination", "concurrent", "--ops-per-token", "1", "--fault-switch"]).expect("parse");
        let Command::Up(up) = cli.command else { panic!("not up") };
        assert_eq!(up.ring.to_args(), ["--coordination", "concurrent", "--ops-per-token", "1", "--fault-switch"]);
        assert!(!up.ring.seed_compat, "the seed-compatible API is off unless asked for");
        let cli = parse(&["up", "--seed-compat"]).expect("parse");
        let Command::Up(up) = cli.command else { panic!("not up") };
        assert!(up.ring.to_args().contains(&"--seed-compat".to_string()), "bank up passes --seed-compat on");
        let cli = parse(&["node", "--id", "1", "--coordination", "token-ring"]).expect("parse");
        let Command::Node(node) = cli.command else { panic!("not node") };
        assert_eq!(node.ring.coordination, CoordinationArg::TokenRing);
        assert!(parse(&["up", "--ops-per-token", "0"]).is_err());
        assert!(parse(&["up", "--ops-per-token", "4097"]).is_err());
        assert!(parse(&["node", "--coordination", "central"]).is_err());
    }

    #[test]
    fn fault_names_a_bank_and_an_action() {
        let cli = parse(&["fault", "--consortium", "c.toml", "--bank", "2", "cut-off"]).expect("parse");
        let Command::Fault(fault) = cli.command else { panic!("not fault") };
        assert_eq!((fault.bank, fault.action), (2, FaultAction::CutOff));
        assert!(parse(&["fault", "--consortium", "c.toml", "--bank", "2", "unplug"]).is_err());
        assert!(parse(&["fault", "--consortium", "c.toml", "heal"]).is_err());
    }

    #[test]
    fn amounts_accept_comma_and_dot() {
        for (text, cents) in [("1234,56", 123_456), ("1234.56", 123_456), ("10", 1000)] {
            let cli = parse(&["deposit", text]).expect("parse");
            let Command::Deposit(d) = cli.command else { panic!("not deposit") };
            assert_eq!(d.amount.cents(), cents);
            assert_eq!(d.method, MethodArg::Cash);
        }
        assert!(parse(&["withdraw", "0"]).is_err());
        assert!(parse(&["withdraw", "abc"]).is_err());
        assert!(parse(&["deposit", "5", "--method", "boleto"]).is_ok());
    }

    #[test]
    fn joint_account_takes_repeated_holders() {
        let cli = parse(&[
            "account",
            "open",
            "--kind",
            "joint",
            "--holder",
            "Ana Souza:529.982.247-25",
            "--holder",
            "Bia:11144477735",
            "--email",
            "j@x.com",
            "--phone",
            "+5575999991234",
            "--password",
            "pw",
        ])
        .expect("parse");
        let Command::Account(AccountCommand::Open(open)) = cli.command else { panic!("not open") };
        assert_eq!(open.kind, KindArg::Joint);
        assert_eq!(open.holders.len(), 2);
        assert_eq!(open.holders[0].name, "Ana Souza");
        assert_eq!(open.holders[0].document, "529.982.247-25");
        assert!(open.name.is_none());
    }

    #[test]
    fn name_and_document_come_together() {
        let base = ["account", "open", "--email", "a@x.com", "--phone", "+5575999991234", "--password", "pw"];
        let mut args = base.to_vec();
        args.extend(["--name", "Ana"]);
        assert!(parse(&args).is_err(), "--name without --document");
        args.extend(["--document", "52998224725"]);
        assert!(parse(&args).is_ok());
        assert!(parse_holder("no-colon").is_err());
        assert!(parse_holder(":123").is_err());
    }

    #[test]
    fn pix_send_and_global_target() {
        let cli =
            parse(&["pix", "send", "--key", "a@b.com", "12,50", "--target", "http://10.0.0.1:9000"]).expect("parse");
        assert_eq!(cli.target, "http://10.0.0.1:9000");
        let Command::Pix(PixCommand::Send(send)) = cli.command else { panic!("not pix send") };
        assert_eq!((send.key.as_str(), send.amount.cents()), ("a@b.com", 1250));
    }

    #[test]
    fn bench_defaults_and_modes() {
        let cli = parse(&["bench"]).expect("parse");
        let Command::Bench(b) = cli.command else { panic!("not bench") };
        assert_eq!((b.mode, b.accounts, b.transfers, b.concurrency, b.json), (Mode::InBank, 100, 20_000, 64, false));
        let cli = parse(&[
            "bench",
            "--mode",
            "cross-bank",
            "--accounts",
            "10",
            "--transfers",
            "5",
            "--concurrency",
            "2",
            "--json",
            "--seed",
            "7",
        ])
        .expect("parse");
        let Command::Bench(b) = cli.command else { panic!("not bench") };
        assert_eq!((b.mode, b.seed, b.json), (Mode::CrossBank, Some(7), true));
        assert!(parse(&["bench", "--mode", "sideways"]).is_err());
        let cli = parse(&["bench", "--mode", "packet", "--consortium", "data/consortium.toml", "--banks", "4"])
            .expect("parse");
        let Command::Bench(b) = cli.command else { panic!("not bench") };
        assert_eq!(b.mode, Mode::Packet);
        assert_eq!(b.consortium.file, Some(PathBuf::from("data/consortium.toml")));
        assert_eq!(b.consortium.banks, Some(4));
        assert!(parse(&["bench", "--banks", "1"]).is_err());
        assert!(parse(&["bench", "--banks", "65"]).is_err());
    }

    #[test]
    fn audit_takes_a_consortium_file() {
        let cli = parse(&["audit", "--consortium", "data/consortium.toml"]).expect("parse");
        let Command::Audit(audit) = cli.command else { panic!("not audit") };
        assert_eq!(audit.consortium, PathBuf::from("data/consortium.toml"));
        assert_eq!((audit.operator_key, audit.wait_s, audit.json), (None, 10, false));
        let cli = parse(&["audit", "--consortium", "c.toml", "--operator-key", "k", "--wait-s", "0", "--json"])
            .expect("parse");
        let Command::Audit(audit) = cli.command else { panic!("not audit") };
        assert_eq!((audit.operator_key, audit.wait_s, audit.json), (Some(PathBuf::from("k")), 0, true));
    }

    #[test]
    fn torture_takes_banks_a_duration_and_a_seed() {
        let cli = parse(&["torture", "--banks", "5", "--duration", "2m", "--seed", "7"]).expect("parse");
        let Command::Torture(t) = cli.command else { panic!("not torture") };
        assert_eq!((t.banks, t.duration.as_secs(), t.seed), (5, 120, Some(7)));
        assert_eq!(parse_duration("90"), Ok(std::time::Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(std::time::Duration::from_secs(3600)));
        assert!(parse_duration("0s").is_err() && parse_duration("3d").is_err() && parse_duration("s").is_err());
        assert!(parse(&["torture", "--banks", "1"]).is_err());
    }

    #[test]
    fn statement_limit_is_bounded() {
        assert!(parse(&["statement", "--limit", "0"]).is_err());
        assert!(parse(&["statement", "--limit", "50"]).is_ok());
    }

    #[test]
    fn a_packet_is_given_leg_by_leg_and_a_bad_leg_is_named() {
        let (seven, one) = (bank_core::ids::AccountNumber::from_seq(7), bank_core::ids::AccountNumber::from_seq(1));
        let (to, from) = (format!("4/{seven}"), format!("2/{one}"));
        let cli = parse(&["transfer", "send", "--leg", "me", &to, "10,50", "--leg", &from, "bia@example.com", "5"])
            .expect("two legs");
        let Command::Transfer(TransferCommand::Send(send)) = cli.command else { panic!("not transfer send") };
        let legs = send.legs().expect("valid legs");
        assert_eq!(legs.len(), 2);
        assert_eq!(legs[0].from, None);
        assert_eq!(
            legs[0].to,
            bank_client::Destination::Account(bank_client::AccountRef { bank_id: 4, number: seven.to_string() })
        );
        assert_eq!(legs[0].amount_cents, 1_050);
        assert_eq!(legs[1].from, Some(bank_client::AccountRef { bank_id: 2, number: one.to_string() }));
        assert_eq!(legs[1].to, bank_client::Destination::Key { key: "bia@example.com".into() });
        assert!(parse(&["transfer", "send"]).is_err(), "a transfer needs a leg");
        assert!(parse(&["transfer", "send", "--leg", "me", "2/1"]).is_err(), "a leg has three words");
        for (bad, why) in [
            (["x/1", "2/1", "1"], "leg 1: \"x\" is not a bank id"),
            (["2/000001-8", "2/1", "1"], "account number"),
            (["me", "2/1", "ten"], "leg 1"),
        ] {
            let args = ["transfer", "send", "--leg", bad[0], bad[1], bad[2]];
            let Command::Transfer(TransferCommand::Send(send)) = parse(&args).expect("parses").command else {
                panic!()
            };
            let err = send.legs().expect_err(why);
            assert!(err.contains(why), "{why}: {err}");
        }
    }
}
