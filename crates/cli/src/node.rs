//! `bank node`: telemetry, configuration, start, serve until Ctrl-C or SIGTERM.
//!
//! Settings come from, first to last: flags, their environment variables (`BANK_ID`, …), the
//! consortium file's `[node]` table, this bank's entry in the consortium file (name; listen
//! address from its URL), and fixed defaults (`./data/bank-<id>`, `127.0.0.1:8081`).
//!
//! While it serves, the node's process id is in `DATA/pid` (written once the data directory is
//! locked, removed at a clean exit), so `bank up` and operators can find and signal it.

use anyhow::{Context, Result, anyhow, bail};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

use bank_core::ids::BankId;
use bank_node::NodeConfig;
use bank_node::consortium::{Consortium, ConsortiumConfig, read_signing_key};

use crate::args::{LogFormat, NodeArgs};

/// Listen address of a bank started without one (and without a consortium file saying one).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";

/// Installs the global tracing subscriber: level from `RUST_LOG` (default `info`), text or JSON.
pub fn init_tracing(format: LogFormat) -> Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: `bank up` sends each bank's log to a file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
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

/// The default data directory of bank `id`.
pub fn default_data_dir(id: BankId) -> PathBuf {
    Path::new("data").join(format!("bank-{id}"))
}

/// Turns flags, environment and consortium file into the node's configuration.
pub fn resolve(args: &NodeArgs) -> Result<NodeConfig> {
    let file = match &args.config {
        Some(path) => Some(ConsortiumConfig::load(path).context("cannot use the consortium file")?),
        None => None,
    };
    let settings = file.as_ref().map(|f| f.node.clone()).unwrap_or_default();
    let id = args.id.map(BankId).or(settings.id).ok_or_else(|| {
        anyhow!("which bank is this? give --id N (or BANK_ID, or `[node] id` in the consortium file)")
    })?;
    let member = file.as_ref().and_then(|f| f.members.get(&id));
    let name = match (&args.name, member) {
        (Some(name), _) => name.clone(),
        (None, Some(member)) => member.name.clone(),
        (None, None) if file.is_some() => bail!("bank {id} is not a member of the consortium file"),
        (None, None) => bail!("give the bank's name: --name NAME (or BANK_NAME), or --config with this bank in it"),
    };
    let listen: SocketAddr = match args.listen.or(settings.listen).or_else(|| file.as_ref()?.default_listen(id)) {
        Some(listen) => listen,
        None => DEFAULT_LISTEN.parse().context("default listen address")?,
    };
    let data = args.data.clone().or(settings.data).unwrap_or_else(|| default_data_dir(id));
    let mut config = NodeConfig::new(id.0, name, listen, data);
    config.coordination = match args.ring.coordination {
        crate::args::CoordinationArg::TokenRing => bank_node::CoordinationMode::TokenRing,
        crate::args::CoordinationArg::Concurrent => bank_node::CoordinationMode::Concurrent,
    };
    let timing = file.as_ref().map(|f| f.ring).unwrap_or_default();
    config.ring = bank_node::RingOptions::from_timing(&timing, args.ring.ops_per_token);
    config.limits.peer_clock_skew_ms = timing.clock_skew_ms;
    config.fault_switch = args.ring.fault_switch;
    config.seed_compat = args.ring.seed_compat || settings.seed_compat;
    match &file {
        Some(file) => {
            let key_path = args.signing_key.clone().or(settings.signing_key_file).ok_or_else(|| {
                anyhow!(
                    "bank {id} needs its secret key to sign inter-bank requests: --signing-key FILE (or \
                     BANK_SIGNING_KEY, or `[node] signing_key_file` in the consortium file)"
                )
            })?;
            let key = read_signing_key(&key_path).context("cannot use the signing key")?;
            config.consortium = Some(Consortium::new(file, id, key)?);
        }
        None if args.signing_key.is_some() => {
            bail!("--signing-key needs --config: a key is only used to talk to the consortium's other banks")
        }
        None => {}
    }
    Ok(config)
}

/// `DATA/pid` while the node runs; removed when dropped (a clean exit), left behind by a crash.
struct PidFile(PathBuf);

impl PidFile {
    fn write(data_dir: &Path) -> Result<PidFile> {
        let path = data_dir.join("pid");
        let temporary = data_dir.join("pid.tmp");
        std::fs::write(&temporary, format!("{}\n", std::process::id()))
            .and_then(|()| std::fs::rename(&temporary, &path))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub async fn run(args: NodeArgs) -> Result<()> {
    init_tracing(args.log_format)?;
    let shutdown = shutdown_signal()?;
    if let Some(offset_ms) = args.clock_offset_ms {
        // Before anything reads the clock: the whole process runs on the shifted one.
        bank_node::clock::set_test_offset_ms(offset_ms);
        tracing::warn!(offset_ms, "this bank's wall clock is shifted on purpose (--clock-offset-ms, for tests only)");
    }
    if let Some(ms) = args.test_ack_before_commit_ms.filter(|ms| *ms > 0) {
        bank_node::storage::writer::set_test_ack_before_commit_ms(ms);
        tracing::warn!(
            ms,
            "this bank acknowledges work before it is durable (--test-ack-before-commit-ms): BROKEN on purpose"
        );
    }
    let config = resolve(&args)?;
    let (id, name, data) = (config.bank_id, config.name.clone(), config.data_dir.clone());
    let peers = config.consortium.as_ref().map_or(0, |c| c.members.len().saturating_sub(1));
    let node = bank_node::Node::start(config)
        .await
        .with_context(|| format!("bank {id} did not start (data in {})", data.display()))?;
    // After start: the data directory is now locked by this process, so the pid is its owner's.
    let pid_file = PidFile::write(&data)?;
    let url = format!("http://{}", node.local_addr());
    tracing::info!(bank_id = %id, name = %name, %url, peers, "listening");
    println!("bank {id} ({name}) listening on {url}");
    node.run_until(shutdown).await.with_context(|| format!("bank {id} stopped with an error"))?;
    drop(pid_file);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bank_node::consortium::{encode_public_key, generate_signing_key, write_key_files};
    use clap::Parser;

    fn args(list: &[&str]) -> NodeArgs {
        let cli = crate::args::Cli::try_parse_from(std::iter::once("bank").chain(["node"]).chain(list.iter().copied()))
            .expect("parse");
        match cli.command {
            crate::args::Command::Node(node) => node,
            _ => panic!("not node"),
        }
    }

    /// A consortium file of banks 1 and 2 in `dir`, with bank 2's key file; returns its path.
    fn consortium(dir: &Path) -> PathBuf {
        let key2 = generate_signing_key().expect("key");
        write_key_files(&dir.join("bank-2.key"), &key2).expect("key file");
        let text = format!(
            "[operator]\npublic_key = \"{}\"\n\n[[members]]\nid = 1\nname = \"Eleven\"\nurl = \"http://127.0.0.1:8081\"\n\
             public_key = \"{}\"\n\n[[members]]\nid = 2\nname = \"Automobili\"\nurl = \"http://bank2:9002\"\n\
             public_key = \"{}\"\n",
            encode_public_key(&generate_signing_key().expect("key").verifying_key()),
            encode_public_key(&generate_signing_key().expect("key").verifying_key()),
            encode_public_key(&key2.verifying_key()),
        );
        let path = dir.join("consortium.toml");
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn the_consortium_file_fills_in_name_listen_and_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = consortium(dir.path());
        let key = dir.path().join("bank-2.key");
        let (file, key) = (file.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
        let config = resolve(&args(&["--id", "2", "--config", file, "--signing-key", key])).expect("resolves");
        assert_eq!((config.bank_id, config.name.as_str()), (BankId(2), "Automobili"));
        assert_eq!(config.listen, "0.0.0.0:9002".parse().expect("addr"));
        assert_eq!(config.data_dir, Path::new("data/bank-2"));
        assert!(config.consortium.is_some());
        // Flags win over the file.
        let config = resolve(&args(&[
            "--id",
            "2",
            "--config",
            file,
            "--signing-key",
            key,
            "--name",
            "Other",
            "--listen",
            "127.0.0.1:0",
            "--data",
            "/tmp/x",
        ]))
        .expect("resolves");
        assert_eq!((config.name.as_str(), config.listen.port()), ("Other", 0));
        assert_eq!(config.data_dir, Path::new("/tmp/x"));
    }

    #[test]
    fn the_ring_comes_from_the_file_and_the_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = consortium(dir.path());
        let key = dir.path().join("bank-2.key");
        let (path, key) = (file.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
        let config = resolve(&args(&["--id", "2", "--config", path, "--signing-key", key])).expect("resolves");
        assert_eq!(config.ring, bank_node::RingOptions::DEFAULT);
        assert_eq!((config.coordination, config.fault_switch), (bank_node::CoordinationMode::TokenRing, false));
        let text = std::fs::read_to_string(&file).expect("read");
        std::fs::write(&file, format!("{text}\n[ring]\nhop_timeout_ms = 1000\n")).expect("write");
        let config = resolve(&args(&[
            "--id",
            "2",
            "--config",
            path,
            "--signing-key",
            key,
            "--coordination",
            "concurrent",
            "--ops-per-token",
            "1",
            "--fault-switch",
        ]))
        .expect("resolves");
        assert_eq!((config.ring.settings.hop_timeout_ticks, config.ring.settings.ops_per_visit), (100, 1));
        assert_eq!((config.coordination, config.fault_switch), (bank_node::CoordinationMode::Concurrent, true));
        std::fs::write(&file, format!("{text}\n[ring]\nhop_timeout_ms = 5\n")).expect("write");
        let err = resolve(&args(&["--id", "2", "--config", path, "--signing-key", key])).expect_err("too short");
        assert!(format!("{err:#}").contains("hop_timeout_ms is 5"), "{err:#}");
    }

    #[test]
    fn missing_or_wrong_settings_are_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = consortium(dir.path());
        let file = file.to_str().expect("utf-8");
        let key = dir.path().join("bank-2.key");
        let key = key.to_str().expect("utf-8");
        let cases: [(&[&str], &str); 5] = [
            (&["--config", file], "give --id"),
            (&["--id", "2", "--config", file], "--signing-key FILE"),
            (&["--id", "1", "--config", file, "--signing-key", key], "does not match"),
            (&["--id", "3", "--config", file, "--signing-key", key], "not a member"),
            (&["--id", "2", "--name", "X", "--signing-key", key], "needs --config"),
        ];
        for (list, expected) in cases {
            let err = resolve(&args(list)).expect_err(expected);
            assert!(format!("{err:#}").contains(expected), "{list:?}: expected {expected:?} in {err:#}");
        }
        // Without a consortium file, the old flags still work alone.
        let config = resolve(&args(&["--id", "4", "--name", "Formula"])).expect("alone");
        assert!(config.consortium.is_none());
        assert_eq!(config.listen, DEFAULT_LISTEN.parse().expect("addr"));
    }
}
