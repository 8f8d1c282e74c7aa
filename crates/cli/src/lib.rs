//! The `bank` command: run a bank node, act as a customer over the public API, or load-test a
//! node. `main.rs` only parses the command line and calls [`run`]; everything else lives here so
//! tests can call it.
//!
//! - [`args`]: the command line (clap).
//! - [`node`]: `bank node`.
//! - [`up`]: `bank up`, a local consortium of `bank node` processes.
//! - [`commands`]: customer commands over [`bank_client`].
//! - [`session`]: the per-user file of session tokens.
//! - [`render`]: what customers read.
//! - [`bench`]: `bank bench`, the closed-loop load generator with its conservation check.
//! - [`audit`]: `bank audit`, the operator's consortium-wide invariant check.
//! - [`torture`]: `bank torture`, the Jepsen-style fault-injection test.

pub mod args;
pub mod audit;
pub mod bench;
pub mod commands;
pub mod deploy;
pub mod node;
pub mod render;
pub mod session;
pub mod torture;
pub mod up;

use anyhow::Result;
use std::process::ExitCode;

use args::{BenchArgs, Cli, Command};
use commands::Customer;
use session::SessionStore;

/// Runs one parsed command; the exit code says how it ended when it did not fail outright.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let store = || SessionStore::from_option(cli.session_file.as_deref());
    let context = || -> Result<Customer> { Customer::new(&cli.target, store()?) };
    match cli.command {
        Command::Node(args) => node::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Up(args) => up::run(args).await,
        Command::Bench(args) => run_bench(&cli.target, args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Fault(args) => audit::run_fault(args).await,
        Command::Keygen(args) => deploy::keygen(&args),
        Command::Consortium(command) => deploy::consortium(&command),
        Command::Health(args) => deploy::health(&args).await,
        Command::Backup(args) => deploy::backup(&args),
        Command::Torture(args) => torture::run(torture_options(args)).await,
        Command::Account(command) => commands::account(&context()?, command).await,
        Command::Login(args) => commands::login(&context()?, args).await,
        Command::Logout => commands::logout(&context()?).await,
        Command::Me => commands::me(&context()?).await,
        Command::Deposit(args) => commands::deposit(&context()?, args).await,
        Command::Withdraw(args) => commands::withdraw(&context()?, args).await,
        Command::Pix(command) => commands::pix(&context()?, command).await,
        Command::Transfer(command) => commands::transfer(&context()?, command).await,
        Command::Statement(args) => commands::statement(&context()?, args).await,
        Command::Accounts => commands::accounts(&context()?).await,
        Command::Openapi => commands::openapi(),
    }
}

async fn run_bench(target: &str, args: BenchArgs) -> Result<ExitCode> {
    if let (Some(entries), Some(data_dir)) = (args.preload_entries, args.data_dir.clone()) {
        return bench::preload(data_dir, entries, !args.json).await;
    }
    let options = bench::Options {
        target: target.to_owned(),
        mode: args.mode,
        consortium: args.consortium,
        accounts: args.accounts,
        transfers: args.transfers,
        concurrency: args.concurrency,
        deposit_cents: args.deposit_cents,
        seed: args.seed,
        progress: !args.json,
        accounts_file: args.accounts_file,
    };
    let summary = bench::run(&options).await?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", summary.render());
    }
    Ok(if summary.conserved { ExitCode::SUCCESS } else { ExitCode::from(bench::EXIT_NOT_CONSERVED) })
}

fn torture_options(args: args::TortureArgs) -> torture::Options {
    torture::Options {
        banks: args.banks,
        duration: args.duration,
        seed: args.seed,
        dir: args.dir,
        report: args.report,
        workers_per_bank: args.workers_per_bank as usize,
        customers: args.customers as usize,
        ring: args.ring,
        broken_ack_ms: args.test_broken_ack_before_commit_ms,
    }
}

/// Prints an error for a person: the problem's detail and code first, then the context chain,
/// and a hint when the session is the likely cause.
pub fn report_error(error: &anyhow::Error) {
    eprintln!("error: {error:#}");
    let api = error.chain().find_map(|e| e.downcast_ref::<bank_client::Error>());
    if let Some(e) = api {
        match e.code() {
            "unauthorized" => eprintln!("hint: the session may have expired; run `bank login` again"),
            "transport" => eprintln!("hint: is a bank node running at --target (or BANK_TARGET)?"),
            _ => {}
        }
    }
}
