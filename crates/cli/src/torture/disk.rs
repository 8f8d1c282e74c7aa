//! The banks' disks: each bank's data directory is a small tmpfs of its own, so the nemesis can
//! fill it until writes fail ([`Disks::fill`]) and free it again ([`Disks::free`]) without
//! touching the machine's disk.
//!
//! A mount's source names the run (`bt<pid>-dN`), so leftovers of a run killed outright are
//! recognised and unmounted by the next run ([`sweep_leftovers`]). When the run ends, each
//! bank's files are copied out to `DIR/bank-N.kept` (ledgers, the ring visit log), then the
//! tmpfs is unmounted.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::net::pid_of_name;

/// Size of a bank's data directory. The ledgers of a 120 s run take a few MB; a 30-minute run
/// stays far below this too. Filled only while a disk fault is held (at most
/// [`super::nemesis::DISK_FAULTS_MAX`] at once), so the memory it costs is bounded.
pub const DISK_MB: u64 = 128;
/// The file that fills a disk.
const FILLER: &str = "torture-filler";

/// The run's tmpfs data directories, by bank.
#[derive(Debug)]
pub struct Disks {
    mounts: BTreeMap<u32, PathBuf>,
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let output = Command::new(program).args(args).output().with_context(|| format!("cannot run {program}"))?;
    if !output.status.success() {
        bail!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

impl Disks {
    /// Mounts a tmpfs of [`DISK_MB`] at each of `dirs` (bank id → data directory).
    pub fn mount(tag: &str, dirs: BTreeMap<u32, PathBuf>) -> Result<Disks> {
        let mut disks = Disks { mounts: BTreeMap::new() };
        for (id, dir) in dirs {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let path = dir.display().to_string();
            let options = format!("size={DISK_MB}m,mode=0700");
            run("mount", &["-t", "tmpfs", "-o", &options, &format!("{tag}-d{id}"), &path])?;
            disks.mounts.insert(id, dir);
        }
        Ok(disks)
    }

    fn dir(&self, id: u32) -> Result<&Path> {
        self.mounts.get(&id).map(PathBuf::as_path).with_context(|| format!("bank {id} has no disk"))
    }

    /// Fills bank `id`'s disk until a write fails for lack of space; returns the bytes written.
    pub fn fill(&mut self, id: u32) -> Result<u64> {
        let path = self.dir(id)?.join(FILLER);
        let mut file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut written = 0;
        // Big chunks first, then small ones for the last pages.
        for chunk in [1 << 20, 4096, 512] {
            let block = vec![0xa5u8; chunk];
            while file.write_all(&block).is_ok() {
                written += chunk as u64;
            }
        }
        Ok(written)
    }

    /// Frees what [`Disks::fill`] took.
    pub fn free(&mut self, id: u32) -> Result<()> {
        let path = self.dir(id)?.join(FILLER);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// Frees every disk.
    pub fn free_all(&mut self) -> Result<()> {
        for id in self.mounts.keys().copied().collect::<Vec<_>>() {
            self.free(id)?;
        }
        Ok(())
    }
}

impl Drop for Disks {
    fn drop(&mut self) {
        for (id, dir) in std::mem::take(&mut self.mounts) {
            let _ = std::fs::remove_file(dir.join(FILLER));
            let kept = dir.with_extension("kept");
            let copied = std::fs::create_dir_all(&kept)
                .map_err(anyhow::Error::from)
                .and_then(|()| run("cp", &["-a", &format!("{}/.", dir.display()), &kept.display().to_string()]));
            if let Err(e) = copied {
                eprintln!("torture: bank {id}'s files were not kept: {e:#}");
            }
            let path = dir.display().to_string();
            if run("umount", &[&path]).is_err()
                && let Err(e) = run("umount", &["-l", &path])
            {
                eprintln!("torture: cannot unmount {path}: {e:#}");
            }
        }
    }
}

/// Unmounts the disks of runs whose process is gone; returns what it unmounted.
pub fn sweep_leftovers() -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut removed = Vec::new();
    for line in mounts.lines() {
        let mut words = line.split_whitespace();
        let (Some(source), Some(target), Some("tmpfs")) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let Some(pid) = pid_of_name(source) else { continue };
        let alive =
            i32::try_from(pid).is_ok_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok());
        if !alive && run("umount", &["-l", target]).is_ok() {
            removed.push(format!("{source} at {target}"));
        }
    }
    removed
}
