//! A consistent copy of a running bank's database (`bank backup`).
//!
//! SQLite's `VACUUM INTO` reads the database inside one read transaction, so the copy is the
//! ledger as of one commit, while the bank keeps writing (WAL readers never block the writer).
//! The copy is a plain, compact database file: restoring it is installing it as `ledger.db` of an
//! empty, private data directory (see docs/deploy.md).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::database_path;

/// What a backup copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupReport {
    pub bytes: u64,
    pub accounts: i64,
    pub entries: i64,
}

/// Copies the database of `data_dir` to a new file `out` (mode 0600: it holds password hashes and
/// CPFs), then checks the copy's integrity. Refuses to overwrite an existing file.
pub fn backup(data_dir: &Path, out: &Path) -> Result<BackupReport, String> {
    let source = database_path(data_dir);
    if !source.exists() {
        return Err(format!("{} has no bank database ({} is missing)", data_dir.display(), source.display()));
    }
    create_private_empty(out)?;
    let copied = copy(&source, out);
    if copied.is_err() {
        let _ = std::fs::remove_file(out);
    }
    copied
}

fn create_private_empty(out: &Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map(drop)
        .map_err(|e| format!("cannot create {}: {e} (a backup never overwrites a file)", out.display()))
}

fn copy(source: &Path, out: &Path) -> Result<BackupReport, String> {
    let sqlite = |e: rusqlite::Error| e.to_string();
    let conn = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| format!("cannot open {}: {e}", source.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(sqlite)?;
    let target = out.to_str().ok_or_else(|| format!("{} is not UTF-8", out.display()))?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(|e| format!("copy failed: {e}"))?;
    let copy = Connection::open_with_flags(out, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite)?;
    let check: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(sqlite)?;
    if check != "ok" {
        return Err(format!("the copy failed its integrity check: {check}"));
    }
    let count = |table: &str| -> Result<i64, String> {
        copy.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).map_err(sqlite)
    };
    let bytes = std::fs::metadata(out).map_err(|e| e.to_string())?.len();
    Ok(BackupReport { bytes, accounts: count("accounts")?, entries: count("entries")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bank_database(dir: &Path) {
        let mut conn = Connection::open(database_path(dir)).expect("open");
        super::super::schema::configure(&conn).expect("configure");
        super::super::schema::migrate(&mut conn).expect("migrate");
        conn.execute(
            "INSERT INTO entries (account, kind, amount_cents, status, created_at) VALUES ('0001', 'deposit', 5, 'completed', 1)",
            [],
        )
        .expect("entry");
    }

    #[test]
    fn a_backup_is_a_private_checked_copy_and_never_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        bank_database(dir.path());
        let out = dir.path().join("copy.db");
        let report = backup(dir.path(), &out).expect("backup");
        assert_eq!((report.accounts, report.entries), (0, 1));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&out).expect("meta").permissions().mode() & 0o777, 0o600);
        let err = backup(dir.path(), &out).expect_err("exists");
        assert!(err.contains("never overwrites"), "{err}");
        assert_eq!(std::fs::metadata(&out).expect("still there").len(), report.bytes, "the old copy is untouched");
    }

    #[test]
    fn a_directory_without_a_bank_is_refused_and_leaves_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("copy.db");
        assert!(backup(dir.path(), &out).expect_err("no bank").contains("no bank database"));
        assert!(!out.exists());
    }
}
