//! `bank node`: telemetry, configuration, start, serve until Ctrl-C or SIGTERM.

use anyhow::{Context, Result};
use std::future::Future;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

use crate::args::{LogFormat, NodeArgs};

/// Installs the global tracing subscriber: level from `RUST_LOG` (default `info`), text or JSON.
pub fn init_tracing(format: LogFormat) -> Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}

/// Completes on the first Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled, so a signal arriving during startup is not lost.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static> {
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
    })
}

pub async fn run(args: NodeArgs) -> Result<()> {
    init_tracing(args.log_format)?;
    let shutdown = shutdown_signal()?;
    let config = bank_node::NodeConfig::new(args.id, args.name.clone(), args.listen, args.data.clone());
    let node = bank_node::Node::start(config)
        .await
        .with_context(|| format!("bank {} did not start (data in {})", args.id, args.data.display()))?;
    let url = format!("http://{}", node.local_addr());
    tracing::info!(bank_id = args.id, name = %args.name, %url, "listening");
    println!("bank {} ({}) listening on {url}", args.id, args.name);
    node.run_until(shutdown).await.with_context(|| format!("bank {} stopped with an error", args.id))?;
    Ok(())
}
