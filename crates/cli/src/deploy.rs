//! What operators run to deploy banks on machines of their own (docs/deploy.md): each bank makes
//! its own key pair (`bank keygen`), the consortium's operator assembles the consortium file from
//! the members' public parts (`bank consortium init/add`), a container asks whether its bank is
//! up (`bank health`), and a running bank's database is copied consistently (`bank backup`).
//!
//! A bank's secret key is created on its own machine and never leaves it: `keygen` prints only
//! the public key, and the consortium file holds only public keys.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bank_core::ids::BankId;
use bank_node::consortium::{
    ConsortiumConfig, Member, VerifyingKey, encode_public_key, generate_signing_key, parse_public_key, public_key_path,
    read_public_key, read_signing_key, write_key_files,
};

use crate::args::{BackupArgs, ConsortiumCommand, HealthArgs, KeygenArgs};

/// `bank keygen`: a new key pair at `--out` (secret, mode 0600) and `--out`'s `.pub`; prints the
/// public key. Never overwrites a key.
pub fn keygen(args: &KeygenArgs) -> Result<ExitCode> {
    let public = make_key(&args.out)?;
    println!("{}", encode_public_key(&public));
    eprintln!(
        "secret key: {} (mode 0600; keep it on this machine)\npublic key: {} (give it to the consortium's operator)",
        args.out.display(),
        public_key_path(&args.out).display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Creates a key pair at `path` (its directory made private when this creates it).
pub fn make_key(path: &Path) -> Result<VerifyingKey> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let key = generate_signing_key()?;
    write_key_files(path, &key)?;
    Ok(key.verifying_key())
}

/// `bank consortium init|add`.
pub fn consortium(command: &ConsortiumCommand) -> Result<ExitCode> {
    match command {
        ConsortiumCommand::Init { file, operator_key } => {
            init(file, operator_key)?;
            eprintln!(
                "{} holds the operator's public key and no members yet; add each bank with `bank consortium add`",
                file.display()
            );
        }
        ConsortiumCommand::Create { dir, banks, base_port, hosts } => {
            let layout = crate::up::Layout { root: dir.clone() };
            let config =
                crate::up::prepare_at(&layout, Some(*banks), Some(*base_port), &crate::up::Hosts(hosts.clone()))?;
            for member in config.members.values() {
                eprintln!(
                    "bank {} ({}): {} key {}",
                    member.id,
                    member.name,
                    member.url,
                    layout.bank_key(member.id).display()
                );
            }
        }
        ConsortiumCommand::Add { file, id, name, url, public_key, public_key_file } => {
            let public_key = match (public_key, public_key_file) {
                (Some(text), None) => parse_public_key(text).map_err(|e| anyhow::anyhow!("--public-key: {e}"))?,
                (None, Some(path)) => read_public_key(path)?,
                _ => bail!("give the bank's public key with --public-key or --public-key-file"),
            };
            let member = Member { id: BankId(*id), name: name.clone(), url: url.clone(), public_key };
            add(file, &member)?;
            eprintln!("{} now lists bank {id} ({name}, {url})", file.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts a consortium file at `file` with the operator's key (made at `operator_key` unless it
/// exists). Refuses to replace an existing consortium file.
pub fn init(file: &Path, operator_key: &Path) -> Result<()> {
    if file.exists() {
        bail!("{} exists; `bank consortium init` never replaces a consortium file", file.display());
    }
    let public =
        if operator_key.exists() { read_signing_key(operator_key)?.verifying_key() } else { make_key(operator_key)? };
    write_atomically(file, &ConsortiumConfig::draft(&public))
}

/// Adds `member` to the consortium file at `file`; the whole file is validated first, and is left
/// untouched when the member is refused.
pub fn add(file: &Path, member: &Member) -> Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let text = ConsortiumConfig::add_member(&text, member)
        .map_err(|e| anyhow::anyhow!("{}: {e}; nothing was changed", file.display()))?;
    write_atomically(file, &text)
}

/// Writes `text` to `file` through a temporary file and a rename, so a crash leaves the old file
/// or the new one, never half of one.
pub fn write_atomically(file: &Path, text: &str) -> Result<()> {
    let temporary: PathBuf = file.with_extension("toml.tmp");
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, file))
        .with_context(|| format!("cannot write {}", file.display()))
}

/// `bank health [URL]`: exit 0 when the bank answers `GET /healthz` with 200 in time, else 1
/// (what a container's HEALTHCHECK runs: a minimal image has no curl).
pub async fn health(args: &HealthArgs) -> Result<ExitCode> {
    let client = reqwest::Client::builder().timeout(Duration::from_millis(args.timeout_ms)).build()?;
    let base = args.url.clone().unwrap_or_else(|| local_url(std::env::var("BANK_LISTEN").ok().as_deref()));
    let url = format!("{}/healthz", base.trim_end_matches('/'));
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => Ok(ExitCode::SUCCESS),
        Ok(response) => {
            eprintln!("{url}: {}", response.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// This machine's URL of a bank listening on `listen` (`0.0.0.0:8083` → `http://127.0.0.1:8083`).
fn local_url(listen: Option<&str>) -> String {
    let address: Option<std::net::SocketAddr> = listen.and_then(|text| text.parse().ok());
    match address {
        Some(a) if a.ip().is_unspecified() => format!("http://127.0.0.1:{}", a.port()),
        Some(a) => format!("http://{a}"),
        None => "http://127.0.0.1:8081".into(),
    }
}

/// `bank backup`: a consistent copy of a (running or stopped) bank's database.
pub fn backup(args: &BackupArgs) -> Result<ExitCode> {
    let report = bank_node::storage::backup::backup(&args.data, &args.out).map_err(|e| anyhow::anyhow!(e))?;
    println!(
        "{}: {} bytes, {} accounts, {} ledger entries (integrity checked)",
        args.out.display(),
        report.bytes,
        report.accounts,
        report.entries
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_check_asks_this_machine_at_the_listening_port() {
        assert_eq!(local_url(Some("0.0.0.0:8083")), "http://127.0.0.1:8083");
        assert_eq!(local_url(Some("[::]:8084")), "http://127.0.0.1:8084");
        assert_eq!(local_url(Some("10.1.2.3:9000")), "http://10.1.2.3:9000");
        assert_eq!(local_url(Some("not an address")), "http://127.0.0.1:8081");
        assert_eq!(local_url(None), "http://127.0.0.1:8081");
    }

    #[test]
    fn a_consortium_for_one_host_names_the_banks_by_service_and_is_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = crate::up::Layout { root: dir.path().to_path_buf() };
        let hosts = crate::up::Hosts("bank{id}".into());
        let config = crate::up::prepare_at(&layout, Some(3), Some(8081), &hosts).expect("created");
        let urls: Vec<&str> = config.members.values().map(|m| m.url.as_str()).collect();
        assert_eq!(urls, ["http://bank1:8081", "http://bank2:8082", "http://bank3:8083"]);
        assert_eq!(crate::up::prepare_at(&layout, Some(3), Some(8081), &hosts).expect("reused"), config);
        assert!(crate::up::prepare_at(&layout, Some(3), Some(9081), &hosts).is_err(), "other ports refused");
    }
}
