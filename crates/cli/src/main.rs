//! `bank`: parse the command line, run the command, turn the outcome into an exit code.

use clap::Parser;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = bank_cli::args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bank_cli::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            bank_cli::report_error(&error);
            ExitCode::FAILURE
        }
    }
}
