//! Storage: the bank's ledger on disk, in embedded SQLite.
//!
//! # Shape
//!
//! One database file per bank (`DATA/ledger.db`) in WAL mode with `synchronous=FULL`. All
//! mutations go through one writer thread ([`writer`]) that applies commands to the in-memory
//! [`Ledger`](bank_core::ledger::Ledger), writes the resulting changes of a whole batch in one
//! SQLite transaction and fsyncs once (group commit) before answering anyone. Reads (statements,
//! account views, key lookups) use separate read-only connections ([`read`]); in WAL mode they
//! see the last committed state and never block the writer.
//!
//! # Guarantees
//!
//! - Nothing is acknowledged before the batch holding it is durable.
//! - The in-memory ledger is rebuilt from the tables at start ([`load_ledger`]), so a restart after
//!   `kill -9` resumes exactly at the last committed batch. Balance rows are checkpoints: each
//!   batch appends its accounts' new balances and newest lines as one `balance_journal` row
//!   (dense, append-only pages) instead of rewriting a random page of `accounts` per account;
//!   now and then a checkpoint copies them into the rows and empties the journal, so a start
//!   reads at most one checkpoint interval of it. Readers take balances and newest lines from
//!   [`LiveBalances`], published after each commit.
//! - If a commit fails (disk full, I/O error), memory may be ahead of disk, so the process aborts
//!   rather than serve a state that is not durable; the restart rebuilds from disk.
//!
//! # Does not handle
//!
//! Replication: a bank that needs it should use a replicated backend (the seam is the writer).

pub mod backup;
pub mod preload;
pub mod read;
pub mod ring;
pub mod schema;
pub mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use bank_core::account::{Account, AccountKind, Holder};
use bank_core::bank::Recovered;
use bank_core::contact::{Email, Phone};
use bank_core::ids::{AccountNumber, BankId, EntryId, Fingerprint, IdempotencyKey, TimestampMs, TransferId};
use bank_core::ledger::{
    Change, DepositMethod, Entry, EntryKind, HoldSet, IdempotencyRecord, Ledger, Outcome, OutcomeRef, PixLeg, RefundOf,
    Settlement, Status,
};
use bank_core::money::Amount;
use bank_core::pixkey::PixKey;
use bank_core::twopc::Decision;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use uuid::Uuid;

/// A storage failure: always an internal error for the caller.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("{0}")]
    WrongBank(String),
    #[error("data directory {0} is in use by another process")]
    Locked(PathBuf),
    #[error(
        "{} has mode {mode:04o}: other local users could read the ledger (password hashes, CPFs, \
         statements); a bank's data must be private to its user (directory 0700, files 0600). \
         Nothing was changed; run `chmod -R go-rwx {}` and start again",
        path.display(),
        data_dir.display()
    )]
    NotPrivate { path: PathBuf, mode: u32, data_dir: PathBuf },
}

pub type Result<T> = std::result::Result<T, StorageError>;

pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("ledger.db")
}

/// Creates the data directory if missing, private to the bank's user (mode 0700): the ledger
/// holds password hashes, CPFs and statements. Its parents are created as usual. An existing
/// directory is left as it is ([`lock_data_dir`] checks it).
pub fn create_data_dir(data_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if data_dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(DATA_DIR_MODE).create(data_dir) {
        // Another process may have created it meanwhile; the mode check decides.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && data_dir.is_dir() => Ok(()),
        other => other,
    }
}

/// Creates the data directory if missing, refuses one that other local users can read (see
/// [`check_private`]) and takes its lock, so two nodes never share one ledger (each would keep
/// its own in-memory state and they would diverge). A refusal changes nothing on disk.
pub fn lock_data_dir(data_dir: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    create_data_dir(data_dir)?;
    check_private(data_dir)?;
    let file =
        File::options().create(true).truncate(false).write(true).mode(DATA_FILE_MODE).open(data_dir.join("LOCK"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::Locked(data_dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Mode of a data directory made by the node: owner only.
const DATA_DIR_MODE: u32 = 0o700;
/// Mode of the database file the node creates; SQLite gives its `-wal` and `-shm` the same mode
/// whenever it creates them (also later, after a checkpoint removed them), so one private
/// database file keeps all three private.
const DATA_FILE_MODE: u32 = 0o600;

/// Refuses a data directory, database or `-wal`/`-shm` file that anyone but its owner may read,
/// write or enter (mode bits beyond 0700/0600), naming the path and its mode.
///
/// It refuses rather than tightening the modes itself: the bank must not silently rewrite an
/// operator's file permissions (a group bit may be deliberate, e.g. for backups, and is then
/// the operator's call to revisit), and a loose mode on a ledger that already holds customers'
/// data means it may have been read; the operator should learn that, not have it papered over.
/// Directories of older versions (0755) are refused the same way, with the `chmod` that fixes
/// them.
pub fn check_private(data_dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let db = database_path(data_dir);
    let mut paths = vec![data_dir.to_path_buf()];
    paths.extend(["", "-wal", "-shm"].map(|suffix| PathBuf::from(format!("{}{suffix}", db.display()))));
    for path in paths {
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StorageError::NotPrivate { path, mode, data_dir: data_dir.to_path_buf() });
        }
    }
    Ok(())
}

/// Opens the writer's connection: configures, migrates and checks the database belongs to
/// `bank_id` (a new database is stamped with it).
pub fn open_writer(data_dir: &Path, bank_id: BankId) -> Result<Connection> {
    use std::os::unix::fs::OpenOptionsExt;
    // Created here, private, before SQLite opens it: SQLite would create it under the process's
    // umask (typically 0644), and its `-wal`/`-shm` copy the database file's mode. An empty
    // file is a valid, empty database to SQLite.
    let path = database_path(data_dir);
    File::options().create(true).truncate(false).write(true).mode(DATA_FILE_MODE).open(&path)?;
    let mut conn = Connection::open(path)?;
    schema::configure(&conn)?;
    schema::migrate(&mut conn)?;
    conn.set_prepared_statement_cache_capacity(64);

    let stored: Option<String> =
        conn.query_row("SELECT value FROM meta WHERE key = 'bank_id'", [], |r| r.get(0)).optional()?;
    match stored {
        None => {
            conn.execute("INSERT INTO meta (key, value) VALUES ('bank_id', ?1)", [bank_id.0.to_string()])?;
        }
        Some(id) if id == bank_id.0.to_string() => {}
        Some(id) => {
            return Err(StorageError::WrongBank(format!(
                "the data directory {} belongs to bank {id}, not bank {bank_id}",
                data_dir.display()
            )));
        }
    }
    Ok(conn)
}

fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(what.to_string())
}

fn parse_uuid(text: &str) -> Result<Uuid> {
    Uuid::try_parse(text).map_err(|e| corrupt(format!("uuid {text:?}: {e}")))
}

fn status_from(text: &str) -> Result<Status> {
    match text {
        "pending" => Ok(Status::Pending),
        "completed" => Ok(Status::Completed),
        "failed" => Ok(Status::Failed),
        _ => Err(corrupt(format!("status {text:?}"))),
    }
}

fn kind_from(text: &str) -> Result<EntryKind> {
    match text {
        "deposit" => Ok(EntryKind::Deposit),
        "withdrawal" => Ok(EntryKind::Withdrawal),
        "transfer_out" => Ok(EntryKind::TransferOut),
        "transfer_in" => Ok(EntryKind::TransferIn),
        "refund_out" => Ok(EntryKind::RefundOut),
        "refund_in" => Ok(EntryKind::RefundIn),
        _ => Err(corrupt(format!("entry kind {text:?}"))),
    }
}

/// Columns: id, account, transfer_id, kind, method, amount_cents, status, counterparty, created_at,
/// refund_of.
pub(crate) const ENTRY_COLUMNS: &str =
    "id, account, transfer_id, kind, method, amount_cents, status, counterparty, created_at, refund_of";

type RawEntry = (i64, String, Option<String>, String, Option<String>, i64, String, Option<String>, i64, Option<String>);

pub(crate) fn raw_entry(row: &Row<'_>) -> rusqlite::Result<RawEntry> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
    ))
}

pub(crate) fn entry_from_raw(raw: RawEntry) -> Result<Entry> {
    let (id, account, transfer_id, kind, method, amount, status, counterparty, created_at, refund_of) = raw;
    Ok(Entry {
        id: EntryId(id as u64),
        account: AccountNumber::parse(&account).map_err(corrupt)?,
        transfer_id: transfer_id.as_deref().map(parse_uuid).transpose()?.map(TransferId),
        kind: kind_from(&kind)?,
        method: method.as_deref().map(DepositMethod::parse).transpose().map_err(corrupt)?,
        amount: Amount::from_cents(amount).map_err(corrupt)?,
        status: status_from(&status)?,
        counterparty,
        created_at: TimestampMs(created_at),
        refund_of: refund_of.as_deref().map(parse_uuid).transpose()?.map(TransferId),
    })
}

/// An `accounts` row as stored: number, kind, holders JSON, email, phone, hash, created, posted, held.
pub(crate) type RawAccount = (String, String, String, String, String, String, i64, i64, i64);

pub(crate) fn account_from_row(row: &Row<'_>) -> rusqlite::Result<RawAccount> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
    ))
}

/// Columns for [`account_from_row`].
pub(crate) const ACCOUNT_COLUMNS: &str =
    "number, kind, holders, email, phone, password_hash, created_at, posted_cents, held_cents";

pub(crate) fn account_from_raw(raw: RawAccount) -> Result<Account> {
    let (number, kind, holders, email, phone, password_hash, created_at, posted_cents, held_cents) = raw;
    let holders: Vec<Holder> = serde_json::from_str(&holders).map_err(corrupt)?;
    Ok(Account {
        number: AccountNumber::parse(&number).map_err(corrupt)?,
        kind: AccountKind::parse(&kind).map_err(corrupt)?,
        holders,
        email: Email::parse(&email).map_err(corrupt)?,
        phone: Phone::parse(&phone).map_err(corrupt)?,
        password_hash,
        created_at: TimestampMs(created_at),
        posted_cents,
        held_cents,
    })
}

/// Each account's newest statement line (`accounts.last_entry_id`), which its next line links to
/// (`entries.prev_id`). One number per account, so O(accounts) like the ledger's own accounts;
/// read from the accounts table at start, not from the history.
#[derive(Debug, Default)]
pub struct LastEntries(HashMap<AccountNumber, u64>);

impl LastEntries {
    pub fn load(conn: &Connection) -> Result<Self> {
        let mut stmt = conn.prepare("SELECT number, last_entry_id FROM accounts WHERE last_entry_id IS NOT NULL")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut last = HashMap::new();
        for row in rows {
            let (number, id) = row?;
            last.insert(AccountNumber::parse(&number).map_err(corrupt)?, id as u64);
        }
        // The journal since the last checkpoint is newer than the rows.
        for (number, journaled) in read_balance_journal(conn)? {
            if let Some(id) = journaled.last_entry_id {
                last.insert(number, id);
            }
        }
        Ok(LastEntries(last))
    }

    /// The newest line of `account`, if it has any.
    pub fn get(&self, account: &AccountNumber) -> Option<u64> {
        self.0.get(account).copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The balances and newest lines journaled since the last checkpoint, each account's newest.
pub fn read_balance_journal(conn: &Connection) -> Result<HashMap<AccountNumber, LiveBalance>> {
    let mut stmt = conn.prepare("SELECT body FROM balance_journal ORDER BY seq")?;
    let mut newest = HashMap::new();
    for body in stmt.query_map([], |r| r.get::<_, String>(0))? {
        let rows: Vec<(AccountNumber, i64, i64, Option<u64>)> = serde_json::from_str(&body?).map_err(corrupt)?;
        for (number, posted_cents, held_cents, last_entry_id) in rows {
            newest.insert(number, LiveBalance { posted_cents, held_cents, last_entry_id });
        }
    }
    Ok(newest)
}

/// Appends the balances and newest lines of `accounts` (as the in-memory ledger has them at the
/// end of the batch) as one journal row: one dense append instead of a random `accounts` page per
/// account. Call inside the batch's transaction, after its last change.
pub fn journal_balances<'a>(
    tx: &Connection,
    ledger: &Ledger,
    last_entries: &LastEntries,
    accounts: impl IntoIterator<Item = &'a AccountNumber>,
) -> Result<()> {
    let mut rows = Vec::new();
    for number in accounts {
        let account = ledger.account(number).ok_or_else(|| corrupt(format!("balance of missing account {number}")))?;
        rows.push((number, account.posted_cents, account.held_cents, last_entries.get(number)));
    }
    if rows.is_empty() {
        return Ok(());
    }
    let body = serde_json::to_string(&rows).map_err(corrupt)?;
    tx.prepare_cached("INSERT INTO balance_journal (body) VALUES (?1)")?.execute([body])?;
    Ok(())
}

/// A `WITH` clause naming `balances (number, posted_cents, held_cents)`: every account's balance
/// in the reading transaction's snapshot — its row, or its newest journaled balance when it has
/// one — for readers that need one consistent state of every account at once (the audit). The
/// journal holds at most one checkpoint interval.
pub const CURRENT_BALANCES: &str = "WITH journaled AS (SELECT json_extract(j.value, '$[0]') AS number, \
     json_extract(j.value, '$[1]') AS posted_cents, json_extract(j.value, '$[2]') AS held_cents, MAX(b.seq) AS seq \
     FROM balance_journal AS b, json_each(b.body) AS j GROUP BY 1), \
     balances AS (SELECT a.number AS number, COALESCE(l.posted_cents, a.posted_cents) AS posted_cents, \
     COALESCE(l.held_cents, a.held_cents) AS held_cents FROM accounts AS a LEFT JOIN journaled AS l \
     ON l.number = a.number) ";

/// Copies the in-memory balances and newest lines of `accounts` into their rows and empties the
/// journal (call inside a batch's transaction, after its last change). Every account journaled
/// since the last checkpoint must be among `accounts`. Returns the rows written.
pub fn write_balance_checkpoint<'a>(
    tx: &Connection,
    ledger: &Ledger,
    last_entries: &LastEntries,
    accounts: impl IntoIterator<Item = &'a AccountNumber>,
) -> Result<usize> {
    let mut accounts: Vec<&AccountNumber> = accounts.into_iter().collect();
    // In key order: neighbouring rows share pages.
    accounts.sort_unstable();
    let mut update = tx.prepare_cached(
        "UPDATE accounts SET posted_cents = ?2, held_cents = ?3, last_entry_id = ?4 WHERE number = ?1",
    )?;
    for number in &accounts {
        let account = ledger.account(number).ok_or_else(|| corrupt(format!("balance of missing account {number}")))?;
        let last = last_entries.get(number).map(|id| id as i64);
        if update.execute(params![number.as_str(), account.posted_cents, account.held_cents, last])? != 1 {
            return Err(corrupt(format!("balance of missing account {number}")));
        }
    }
    tx.prepare_cached("DELETE FROM balance_journal")?.execute([])?;
    Ok(accounts.len())
}

/// After a restart that found a journal (a crash, or a stop before the writer's last
/// checkpoint): writes every journaled account's balance, so the rows are current again before
/// the bank serves.
pub fn checkpoint_after_recovery(conn: &mut Connection, ledger: &Ledger, last_entries: &LastEntries) -> Result<()> {
    let journaled = read_balance_journal(conn)?;
    if journaled.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    write_balance_checkpoint(&tx, ledger, last_entries, journaled.keys())?;
    tx.commit()?;
    Ok(())
}

/// Each account's committed balance and newest line, as the writer published them after each
/// commit (before answering), for the readers: the `accounts` rows are only checkpoints. One
/// entry per account touched since the start, so bounded like the accounts; an account not in
/// it has a current row.
#[derive(Debug, Default)]
pub struct LiveBalances(std::sync::RwLock<HashMap<AccountNumber, LiveBalance>>);

/// An account's committed balance and newest line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveBalance {
    pub posted_cents: i64,
    pub held_cents: i64,
    pub last_entry_id: Option<u64>,
}

impl LiveBalances {
    pub fn get(&self, account: &AccountNumber) -> Option<LiveBalance> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(account).copied()
    }

    /// Publishes committed values (call after the commit, before answering).
    pub fn publish(&self, balances: impl IntoIterator<Item = (AccountNumber, LiveBalance)>) {
        let mut map = self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.extend(balances);
    }

    pub fn len(&self) -> usize {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The first outcome of `(scope, key)` if its record is still on disk (inside the writer's
/// transaction, which also sees the records of its own batch).
pub fn read_idempotency(
    conn: &Connection,
    scope: &AccountNumber,
    key: IdempotencyKey,
) -> Result<Option<IdempotencyRecord>> {
    let mut stmt = conn
        .prepare_cached("SELECT scope, fingerprint, entry_id, transfer_id FROM idempotency_records WHERE key = ?1")?;
    let rows = stmt.query_map([&key.0.as_bytes()[..]], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, Option<i64>>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    for row in rows {
        let (stored_scope, fingerprint, entry_id, transfer_id) = row?;
        if stored_scope != scope.as_str() {
            continue;
        }
        let outcome = match (entry_id, transfer_id) {
            (Some(id), None) => OutcomeRef::Entry(EntryId(id as u64)),
            (None, Some(id)) => OutcomeRef::Transfer(TransferId(parse_uuid(&id)?)),
            _ => return Err(corrupt(format!("idempotency record {scope}/{} points nowhere", key.0))),
        };
        let fingerprint: [u8; 32] = fingerprint.try_into().map_err(|_| corrupt("fingerprint length"))?;
        return Ok(Some(IdempotencyRecord { fingerprint: Fingerprint(fingerprint), outcome }));
    }
    Ok(None)
}

/// What one round of expiry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub deleted: usize,
    /// When the next round can have something to delete (Unix ms).
    pub next_due_ms: i64,
}

/// Deletes up to `max_rows` idempotency records recorded before `now - retention`, oldest first
/// (`seq` order, which is `recorded_at` order: one writer stamps them as it appends).
pub fn expire_idempotency(conn: &Connection, now_ms: i64, retention_ms: i64, max_rows: usize) -> Result<Expired> {
    let mut stmt =
        conn.prepare_cached("SELECT seq, recorded_at + ?2 FROM idempotency_records ORDER BY seq LIMIT ?1")?;
    let oldest = stmt.query_map(params![max_rows as i64, retention_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let oldest: Vec<(i64, i64)> = oldest.collect::<rusqlite::Result<_>>()?;
    let delete = conn.prepare_cached("DELETE FROM idempotency_records WHERE seq <= ?1")?;
    expire_oldest(delete, &oldest, now_ms, max_rows, retention_ms)
}

/// Deletes up to `max_rows` sessions that have expired, oldest first. Rowid order is creation
/// order (one writer appends them) and every session lives `ttl_ms`, so they expire in that order:
/// the walk stops at the first one still valid. Without it the table would keep every sign-in
/// ever made, and a start would scan them all to load the live ones.
pub fn expire_sessions(conn: &Connection, now_ms: i64, ttl_ms: i64, max_rows: usize) -> Result<Expired> {
    let mut stmt = conn.prepare_cached("SELECT rowid, expires_at FROM sessions ORDER BY rowid LIMIT ?1")?;
    let oldest = stmt.query_map([max_rows as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let oldest: Vec<(i64, i64)> = oldest.collect::<rusqlite::Result<_>>()?;
    let delete = conn.prepare_cached("DELETE FROM sessions WHERE rowid <= ?1")?;
    expire_oldest(delete, &oldest, now_ms, max_rows, ttl_ms)
}

/// One round of a background expiry: `oldest` are the first `max_rows` rows in key order as
/// (key, the time they expire), which is also expiry order. Deletes (`delete`: every key up to
/// `?1`) the leading ones past their time, and says when the next round can have work: when the
/// first row kept expires, at once if the round was full, else a whole `period` from now (a row
/// written from now on lives that long).
fn expire_oldest(
    mut delete: rusqlite::CachedStatement<'_>,
    oldest: &[(i64, i64)],
    now_ms: i64,
    max_rows: usize,
    period_ms: i64,
) -> Result<Expired> {
    let expired = oldest.iter().take_while(|(_, expires_at)| *expires_at < now_ms).count();
    if let Some((last, _)) = expired.checked_sub(1).map(|i| oldest[i]) {
        delete.execute([last])?;
    }
    let next_due_ms = match oldest.get(expired) {
        Some((_, expires_at)) => *expires_at,
        None if expired == max_rows => now_ms,
        None => now_ms + period_ms,
    };
    Ok(Expired { deleted: expired, next_due_ms })
}

/// Reads back the first outcome of a repeated request (inside the writer's transaction, which also
/// sees the rows of its own batch).
pub fn resolve(conn: &Connection, reference: OutcomeRef) -> Result<Outcome> {
    match reference {
        OutcomeRef::Entry(id) => read::entries(conn, &[id.0])?
            .pop()
            .map(Outcome::Entry)
            .ok_or_else(|| corrupt(format!("entry {} missing", id.0))),
        OutcomeRef::Transfer(id) => {
            read::transfer(conn, &id)?.map(Outcome::Transfer).ok_or_else(|| corrupt(format!("transfer {id} missing")))
        }
    }
}

/// Writes (or replaces) the newest record of a coordinated transaction.
pub fn write_coordinator_record(conn: &Connection, record: &bank_core::twopc::CoordinatorRecord) -> Result<()> {
    use bank_core::twopc::CoordinatorRecord as R;
    let state = match record {
        R::Preparing { .. } => "preparing",
        R::Decided { .. } => "decided",
        R::Finished { .. } => "finished",
    };
    let body = serde_json::to_string(record).map_err(corrupt)?;
    conn.prepare_cached(
        "INSERT INTO coordinator_records (tx, state, body) VALUES (?1, ?2, ?3) \
         ON CONFLICT (tx) DO UPDATE SET state = excluded.state, body = excluded.body",
    )?
    .execute(params![record.tx().0.to_string(), state, body])?;
    Ok(())
}

/// The coordinator records for [`bank_core::twopc::Coordinator::recover`]: every unfinished one,
/// and the finished ones `remembered` (the others are read on demand, [`read_finished_decision`]).
pub fn load_coordinator_records(
    conn: &Connection,
    remembered: Remembered,
) -> Result<Vec<bank_core::twopc::CoordinatorRecord>> {
    let mut records = Vec::new();
    let mut stmt = conn.prepare("SELECT body FROM coordinator_records WHERE state != 'finished'")?;
    for body in stmt.query_map([], |r| r.get::<_, String>(0))? {
        records.push(serde_json::from_str(&body?).map_err(corrupt)?);
    }
    let mut stmt = conn.prepare(
        "SELECT body FROM coordinator_records WHERE state = 'finished' AND tx >= ?1 ORDER BY tx DESC LIMIT ?2",
    )?;
    for body in
        stmt.query_map(params![remembered.since.0.to_string(), remembered.limit()], |r| r.get::<_, String>(0))?
    {
        records.push(serde_json::from_str(&body?).map_err(corrupt)?);
    }
    Ok(records)
}

/// The decision of a transaction this bank coordinated and finished, from its record.
pub fn read_finished_decision(conn: &Connection, tx: &TransferId) -> Result<Option<Decision>> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM coordinator_records WHERE tx = ?1 AND state = 'finished'")?
        .query_row([tx.0.to_string()], |r| r.get(0))
        .optional()?;
    match body {
        None => Ok(None),
        Some(body) => match serde_json::from_str(&body).map_err(corrupt)? {
            bank_core::twopc::CoordinatorRecord::Finished { decision, .. } => Ok(Some(decision)),
            other => Err(corrupt(format!("a finished record that is not: {other:?}"))),
        },
    }
}

/// The decision this bank applied as a participant of `tx`, if any.
pub fn read_settlement(conn: &Connection, tx: &TransferId) -> Result<Option<Settlement>> {
    let decision: Option<String> = conn
        .prepare_cached("SELECT decision FROM decisions WHERE transfer_id = ?1")?
        .query_row([tx.0.to_string()], |r| r.get(0))
        .optional()?;
    decision.as_deref().map(settlement_of_text).transpose()
}

/// A stored settlement, in the protocol's words (`decisions.decision`): anything but the two
/// words is corruption, never silently a release.
fn settlement_of_text(text: &str) -> Result<Settlement> {
    match text {
        "committed" => Ok(Settlement::Posted),
        "aborted" => Ok(Settlement::Released),
        other => Err(corrupt(format!("unknown decision {other:?}"))),
    }
}

/// The smallest transfer id of the millisecond `ms` (Unix); see [`TransferId::first_at`].
pub fn transfer_id_at(ms: i64) -> TransferId {
    TransferId::first_at(ms)
}

/// Replaces the ring's durable state (DESIGN.md §5: persisted before the ring acts on it).
pub fn write_ring_state(conn: &Connection, durable: &bank_core::ring::RingDurable) -> Result<()> {
    let body = serde_json::to_string(durable).map_err(corrupt)?;
    conn.prepare_cached(
        "INSERT INTO ring_state (id, body) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
    )?
    .execute([body])?;
    Ok(())
}

/// The ring's durable state as last written (the default on a first start).
pub fn load_ring_state(conn: &Connection) -> Result<bank_core::ring::RingDurable> {
    let body: Option<String> =
        conn.query_row("SELECT body FROM ring_state WHERE id = 1", [], |r| r.get(0)).optional()?;
    body.map_or(Ok(Default::default()), |b| serde_json::from_str(&b).map_err(corrupt))
}

pub use bank_core::bank::QueuedTx;

pub fn enqueue_ring_tx(conn: &Connection, queued: &QueuedTx) -> Result<()> {
    let legs: Vec<_> = queued.legs.iter().collect();
    let legs = serde_json::to_string(&legs).map_err(corrupt)?;
    conn.prepare_cached("INSERT INTO ring_queue (tx, legs, queued_at) VALUES (?1, ?2, ?3)")?.execute(params![
        queued.tx.0.to_string(),
        legs,
        queued.queued_at.0
    ])?;
    Ok(())
}

/// Removes a transaction from the queue (begun, or failed without beginning).
pub fn dequeue_ring_tx(conn: &Connection, tx: &TransferId) -> Result<()> {
    conn.prepare_cached("DELETE FROM ring_queue WHERE tx = ?1")?.execute([tx.0.to_string()])?;
    Ok(())
}

/// The queue, oldest first, for a restart.
pub fn load_ring_queue(conn: &Connection) -> Result<Vec<QueuedTx>> {
    let mut stmt = conn.prepare("SELECT tx, legs, queued_at FROM ring_queue ORDER BY queued_at, tx")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?;
    rows.map(|row| {
        let (tx, legs, queued_at) = row?;
        let tx = Uuid::parse_str(&tx).map(TransferId).map_err(corrupt)?;
        let legs: Vec<(BankId, bank_core::twopc::Legs)> = serde_json::from_str(&legs).map_err(corrupt)?;
        Ok(QueuedTx { tx, legs: legs.into_iter().collect(), queued_at: TimestampMs(queued_at) })
    })
    .collect()
}

/// What start-up brings back into memory of the finished past (settlements, finished decisions,
/// received Pix legs): what is newer than `since`, at most the newest `max` of each — the bounds
/// the bank keeps while it runs (`BankConfig::decision_memory_ms` and `decision_memory_max`), so
/// neither start-up nor memory depends on how busy the last window was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    pub since: TransferId,
    pub max: usize,
}

impl Remembered {
    /// `max` as a SQL `LIMIT`.
    fn limit(self) -> i64 {
        i64::try_from(self.max).unwrap_or(i64::MAX)
    }
}

/// Everything the bank's state machine is rebuilt from at start-up: the ledger, the coordinator
/// records (unfinished ones, and the finished ones `remembered`), the ring's state and queue, and
/// the pending transfers this bank coordinates (whose records it settles on decision).
pub fn load_bank(conn: &Connection, bank_id: BankId, remembered: Remembered) -> Result<Recovered> {
    let ledger = load_ledger(conn, bank_id, remembered)?;
    let coordinator_records = load_coordinator_records(conn, remembered)?;
    let queue = load_ring_queue(conn)?;
    let unfinished = coordinator_records.iter().filter_map(|r| match r {
        bank_core::twopc::CoordinatorRecord::Finished { .. } => None,
        other => Some(other.tx()),
    });
    let mut open_transfers = Vec::new();
    for id in unfinished.chain(queue.iter().map(|q| q.tx)) {
        // Key registrations have no transfer record; settled transfers need nothing more.
        if let Some(transfer) = read::transfer(conn, &id)?
            && transfer.status == Status::Pending
        {
            open_transfers.push(transfer);
        }
    }
    Ok(Recovered { ledger, coordinator_records, ring_state: load_ring_state(conn)?, queue, open_transfers })
}

/// Rebuilds the in-memory ledger from the tables.
pub fn load_ledger(conn: &Connection, bank_id: BankId, remembered: Remembered) -> Result<Ledger> {
    let mut ledger = Ledger::new(bank_id);
    // Balance rows are checkpoints: an account journaled since has its newest balance there.
    let journaled = read_balance_journal(conn)?;
    let mut stmt = conn.prepare(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY number"))?;
    for raw in stmt.query_map([], account_from_row)? {
        let mut account = account_from_raw(raw?)?;
        if let Some(newest) = journaled.get(&account.number) {
            account.posted_cents = newest.posted_cents;
            account.held_cents = newest.held_cents;
        }
        ledger.restore_account(account);
    }
    let mut stmt = conn.prepare("SELECT key, account FROM pix_keys ORDER BY seq")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (key, account) = row?;
        ledger.restore_key(PixKey::parse(&key).map_err(corrupt)?, AccountNumber::parse(&account).map_err(corrupt)?);
    }
    let mut stmt = conn.prepare("SELECT key, bank_id, account, holder_name, masked_document FROM remote_keys")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, u32>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    for row in rows {
        let (key, bank_id, account, holder_name, masked_document) = row?;
        let owner = bank_core::ledger::RemoteKey {
            bank_id: BankId(bank_id),
            account: AccountNumber::parse(&account).map_err(corrupt)?,
            holder_name,
            masked_document,
        };
        ledger.restore_remote_key(PixKey::parse(&key).map_err(corrupt)?, owner);
    }
    let mut stmt = conn.prepare("SELECT transfer_id, body FROM holds")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (id, body) = row?;
        let holds: HoldSet = serde_json::from_str(&body).map_err(corrupt)?;
        ledger.restore_holds(TransferId(parse_uuid(&id)?), holds);
    }
    // Only recent decisions come back into memory; older ones are read on demand (read_settlement).
    let mut stmt = conn.prepare(
        "SELECT transfer_id, decision FROM decisions WHERE transfer_id >= ?1 ORDER BY transfer_id DESC LIMIT ?2",
    )?;
    let since = remembered.since.0.to_string();
    for row in
        stmt.query_map(params![since, remembered.limit()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
    {
        let (id, decision) = row?;
        ledger.restore_settlement(TransferId(parse_uuid(&id)?), settlement_of_text(&decision)?);
    }
    // Idempotency records stay on disk: memory's bounded cache fills as requests come, and a key
    // it lacks is read back within the batch (`read_idempotency`).
    load_refunds(conn, &mut ledger, bank_id, remembered)?;
    let next_entry: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM entries", [], |r| r.get(0))?;
    ledger.restore_next_entry_id(next_entry as u64);
    ledger.assert_invariants();
    Ok(ledger)
}

/// Writes one batch's changes inside the batch's transaction. Balances and newest lines are not
/// written here: [`BatchWriter::finish`] tells which accounts changed, for [`journal_balances`]
/// (every batch) and [`write_balance_checkpoint`] (now and then).
pub(crate) struct BatchWriter<'t, 'l> {
    tx: &'t Transaction<'t>,
    /// Each account's newest line, updated as lines are written.
    last_entries: &'l mut LastEntries,
    /// What the batch changed.
    touched: Touched,
    /// The batch's time, stamped on its idempotency records.
    now_ms: i64,
}

/// What a batch changed of the balances: the accounts whose balance or newest line moved, and
/// the lines it appended.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    pub accounts: std::collections::HashSet<AccountNumber>,
    pub lines: u64,
}

/// A new account and its holders (the index of accounts by document).
fn write_account(tx: &Transaction<'_>, a: &Account) -> Result<()> {
    let holders = serde_json::to_string(&a.holders).map_err(corrupt)?;
    tx.prepare_cached(&format!(
        "INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))?
    .execute(params![
        a.number.as_str(),
        a.kind.as_str(),
        holders,
        a.email.as_str(),
        a.phone.as_str(),
        a.password_hash,
        a.created_at.0,
        a.posted_cents,
        a.held_cents
    ])?;
    for h in &a.holders {
        tx.prepare_cached("INSERT INTO account_holders (document, account) VALUES (?1, ?2)")?
            .execute(params![h.document.as_str(), a.number.as_str()])?;
    }
    Ok(())
}

/// A statement line (append-only), linked to its account's previous line.
fn write_entry(tx: &Transaction<'_>, e: &Entry, prev_id: Option<u64>) -> Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO entries ({ENTRY_COLUMNS}, prev_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params![
        e.id.0 as i64,
        e.account.as_str(),
        e.transfer_id.map(|t| t.0.to_string()),
        e.kind.as_str(),
        e.method.map(DepositMethod::as_str),
        e.amount.cents(),
        e.status.as_str(),
        e.counterparty,
        e.created_at.0,
        e.refund_of.map(|t| t.0.to_string()),
        prev_id.map(|id| id as i64)
    ])?;
    Ok(())
}

/// A leg received here, from a `pix_legs` row (`transfer_id, leg, body, refunded_cents,
/// reserved_cents`).
fn received_leg_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<(RefundOf, bank_core::ledger::Refundable)>> {
    let (id, leg, body): (String, u16, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
    let (refunded_cents, reserved_cents): (i64, i64) = (r.get(3)?, r.get(4)?);
    Ok((|| {
        let pix: PixLeg = serde_json::from_str(&body).map_err(corrupt)?;
        let refundable = bank_core::ledger::Refundable::of_leg(&pix, refunded_cents, reserved_cents);
        Ok((RefundOf { transfer_id: TransferId(parse_uuid(&id)?), leg }, refundable))
    })())
}

/// The legs of `tx` received by `bank_id` (refunds excluded), with their refund figures, as the
/// batch's transaction sees them: a refund of a leg memory forgot reads it back.
pub(crate) fn read_received_legs(
    conn: &Connection,
    bank_id: BankId,
    tx: &TransferId,
) -> Result<Vec<(RefundOf, bank_core::ledger::Refundable)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT transfer_id, leg, body, refunded_cents, reserved_cents FROM pix_legs \
         WHERE transfer_id = ?1 AND to_bank = ?2 AND refund_of IS NULL",
    )?;
    let rows = stmt.query_map(params![tx.0.to_string(), bank_id.0], received_leg_from_row)?;
    rows.map(|row| row?).collect()
}

/// A posted Pix leg (kept once: an in-bank leg touches this bank at both ends).
fn write_pix_leg(tx: &Transaction<'_>, pix: &PixLeg) -> Result<()> {
    let body = serde_json::to_string(pix).map_err(corrupt)?;
    tx.prepare_cached(
        "INSERT INTO pix_legs (transfer_id, leg, body, to_bank, refund_of, amount_cents, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (transfer_id, leg) DO NOTHING",
    )?
    .execute(params![
        pix.transfer_id.0.to_string(),
        pix.leg,
        body,
        pix.to.bank_id.0,
        pix.refund_of.map(|r| r.transfer_id.0.to_string()),
        pix.amount.cents(),
        pix.created_at.0
    ])?;
    Ok(())
}

/// Restores the legs received here that are `remembered` (transfer ids from `since` on, the
/// primary key's range as UUIDv7 text sorts by time; the newest `max`) and those with refunds in
/// flight (named by `refunds_open`), and the refunds in flight. The others stay on disk: a refund
/// of one reads it back within its batch ([`read_received_legs`]), so neither start-up nor memory
/// grows with the refund window's history or with the traffic of the last minutes.
fn load_refunds(conn: &Connection, ledger: &mut Ledger, bank_id: BankId, remembered: Remembered) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT transfer_id, leg, body, refunded_cents, reserved_cents FROM pix_legs \
         WHERE transfer_id >= ?2 AND to_bank = ?1 AND refund_of IS NULL ORDER BY transfer_id DESC, leg DESC LIMIT ?3",
    )?;
    let rows =
        stmt.query_map(params![bank_id.0, remembered.since.0.to_string(), remembered.limit()], received_leg_from_row)?;
    for row in rows {
        let (of, refundable) = row??;
        ledger.restore_refundable(of, refundable);
    }
    let mut stmt = conn.prepare(
        "SELECT transfer_id, leg, body, refunded_cents, reserved_cents FROM pix_legs \
         WHERE to_bank = ?1 AND refund_of IS NULL \
         AND (transfer_id, leg) IN (SELECT transfer_id, leg FROM refunds_open)",
    )?;
    for row in stmt.query_map([bank_id.0], received_leg_from_row)? {
        let (of, refundable) = row??;
        ledger.restore_refundable(of, refundable);
    }
    let mut stmt = conn.prepare("SELECT refund, transfer_id, leg, amount_cents FROM refunds_open")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, u16>(2)?, r.get::<_, i64>(3)?))
    })?;
    for row in rows {
        let (refund, original, leg, amount) = row?;
        let of = RefundOf { transfer_id: TransferId(parse_uuid(&original)?), leg };
        let amount = Amount::from_cents(amount).map_err(corrupt)?;
        ledger.restore_refund_open(TransferId(parse_uuid(&refund)?), of, amount);
    }
    Ok(())
}

/// The first outcome of an idempotent request, by reference.
fn write_idempotency(
    tx: &Transaction<'_>,
    scope: &AccountNumber,
    key: &IdempotencyKey,
    record: &IdempotencyRecord,
    recorded_at: i64,
) -> Result<()> {
    let (entry_id, transfer_id) = match record.outcome {
        OutcomeRef::Entry(id) => (Some(id.0 as i64), None),
        OutcomeRef::Transfer(id) => (None, Some(id.0.to_string())),
    };
    tx.prepare_cached(
        "INSERT INTO idempotency_records (key, scope, fingerprint, entry_id, transfer_id, recorded_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        &key.0.as_bytes()[..],
        scope.as_str(),
        &record.fingerprint.0[..],
        entry_id,
        transfer_id,
        recorded_at
    ])?;
    Ok(())
}

impl<'t, 'l> BatchWriter<'t, 'l> {
    pub fn new(tx: &'t Transaction<'t>, last_entries: &'l mut LastEntries, now_ms: i64) -> Self {
        BatchWriter { tx, last_entries, touched: Touched::default(), now_ms }
    }

    pub fn write(&mut self, change: &Change) -> Result<()> {
        let tx = self.tx;
        match change {
            Change::AccountOpened(a) => write_account(tx, a)?,
            Change::Balance { account, .. } => {
                self.touched.accounts.insert(account.clone());
            }
            Change::KeyRegistered { key, account } => {
                tx.prepare_cached("INSERT INTO pix_keys (key, type, account) VALUES (?1, ?2, ?3)")?
                    .execute(params![key.normalized(), key.key_type().as_str(), account.as_str()])?;
            }
            Change::RemoteKeyRegistered { key, owner } => {
                tx.prepare_cached(
                    "INSERT INTO remote_keys (key, bank_id, account, holder_name, masked_document) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    key.normalized(),
                    owner.bank_id.0,
                    owner.account.as_str(),
                    owner.holder_name,
                    owner.masked_document
                ])?;
            }
            Change::EntryAdded(e) => {
                let prev = self.last_entries.0.insert(e.account.clone(), e.id.0);
                debug_assert!(prev.is_none_or(|p| p < e.id.0), "entry ids ascend");
                write_entry(tx, e, prev)?;
                self.touched.accounts.insert(e.account.clone());
                self.touched.lines += 1;
            }
            Change::TransferRecorded(t) => {
                let body = serde_json::to_string(t.as_ref()).map_err(corrupt)?;
                tx.prepare_cached(
                    "INSERT INTO transfers (id, status, body, created_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body",
                )?
                .execute(params![t.id.0.to_string(), t.status.as_str(), body, t.created_at.0])?;
            }
            Change::IdempotencyRecorded { scope, key, record } => {
                write_idempotency(tx, scope, key, record, self.now_ms)?
            }
            Change::HoldsPlaced { transfer, holds } => {
                let body = serde_json::to_string(holds.as_ref()).map_err(corrupt)?;
                tx.prepare_cached("INSERT INTO holds (transfer_id, body, placed_at) VALUES (?1, ?2, ?3)")?
                    .execute(params![transfer.0.to_string(), body, holds.placed_at.0])?;
            }
            Change::Settled { transfer, settlement } => {
                tx.prepare_cached("DELETE FROM holds WHERE transfer_id = ?1")?.execute([transfer.0.to_string()])?;
                let decision = match settlement {
                    Settlement::Posted => "committed",
                    Settlement::Released => "aborted",
                };
                tx.prepare_cached("INSERT INTO decisions (transfer_id, decision) VALUES (?1, ?2)")?
                    .execute(params![transfer.0.to_string(), decision])?;
            }
            Change::PixLegRecorded(pix) => write_pix_leg(tx, pix)?,
            Change::RefundState { of, refunded_cents, reserved_cents } => {
                tx.prepare_cached(
                    "UPDATE pix_legs SET refunded_cents = ?3, reserved_cents = ?4 WHERE transfer_id = ?1 AND leg = ?2",
                )?
                .execute(params![
                    of.transfer_id.0.to_string(),
                    of.leg,
                    refunded_cents,
                    reserved_cents
                ])?;
            }
            Change::RefundOpened { refund, of, amount } => {
                tx.prepare_cached(
                    "INSERT INTO refunds_open (refund, transfer_id, leg, amount_cents) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    refund.0.to_string(),
                    of.transfer_id.0.to_string(),
                    of.leg,
                    amount.cents()
                ])?;
            }
            Change::RefundClosed { refund } => {
                tx.prepare_cached("DELETE FROM refunds_open WHERE refund = ?1")?.execute([refund.0.to_string()])?;
            }
        }
        Ok(())
    }

    /// Ends the batch's writes: the accounts whose balance or newest line changed.
    pub fn finish(self) -> Touched {
        self.touched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_settlement_is_one_of_two_words_and_anything_else_is_corruption() {
        assert_eq!(settlement_of_text("committed").ok(), Some(Settlement::Posted));
        assert_eq!(settlement_of_text("aborted").ok(), Some(Settlement::Released));
        for bad in ["", "Committed", "commit", "abort", "maybe"] {
            assert!(matches!(settlement_of_text(bad), Err(StorageError::Corrupt(_))), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_stored_decision_that_is_not_a_word_fails_the_read_instead_of_reading_as_an_abort() {
        let conn = Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch("CREATE TABLE decisions (transfer_id TEXT PRIMARY KEY, decision TEXT NOT NULL)")
            .expect("table");
        let tx = TransferId::first_at(1_000);
        conn.execute("INSERT INTO decisions VALUES (?1, 'sideways')", [tx.0.to_string()]).expect("row");
        assert!(read_settlement(&conn, &tx).is_err());
        assert_eq!(read_settlement(&conn, &TransferId::first_at(2_000)).ok(), Some(None));
    }

    /// A database of schema version 4 (before statement chains and idempotency on disk by key),
    /// with interleaved lines of two accounts and two idempotency records.
    fn version_4_database(path: &Path) -> (AccountNumber, AccountNumber) {
        let mut conn = Connection::open(path).expect("open");
        schema::migrate_to(&mut conn, 4).expect("version 4");
        let (a, b) = (AccountNumber::from_seq(1), AccountNumber::from_seq(2));
        for (n, number) in [(1, &a), (2, &b)] {
            conn.execute(
                &format!(
                    "INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES (?1, 'individual', '[]', ?2, '', 'x', 0, ?3, 0)"
                ),
                params![number.as_str(), format!("{n}@x.test"), 100 * n],
            )
            .expect("account");
        }
        // Lines 1..=7: a, b, a, a, b, a, a.
        for (id, number) in [(1, &a), (2, &b), (3, &a), (4, &a), (5, &b), (6, &a), (7, &a)] {
            conn.execute(
                "INSERT INTO entries (id, account, kind, amount_cents, status, created_at) \
                 VALUES (?1, ?2, 'deposit', 10, 'completed', 0)",
                params![id, number.as_str()],
            )
            .expect("entry");
        }
        let key = Uuid::from_u128(0xfeed);
        conn.execute(
            "INSERT INTO idempotency (scope, key, fingerprint, entry_id) VALUES (?1, ?2, ?3, 3)",
            params![a.as_str(), key.to_string(), &[9u8; 32][..]],
        )
        .expect("idempotency");
        (a, b)
    }

    #[test]
    fn the_migration_from_version_4_links_every_line_to_its_accounts_previous_one_and_keeps_idempotency() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v4.db");
        let (a, b) = version_4_database(&path);
        let mut conn = Connection::open(&path).expect("reopen");
        schema::migrate(&mut conn).expect("migrates");

        let chain = |number: &AccountNumber| match read::statement_page(
            &read::Reader::new(&conn, &LiveBalances::default()),
            number,
            None,
            100,
        )
        .expect("page")
        {
            read::StatementPage::Lines(lines) => lines.iter().map(|e| e.id.0).collect::<Vec<_>>(),
            read::StatementPage::NotACursor => panic!("no cursor given"),
        };
        assert_eq!(chain(&a), vec![7, 6, 4, 3, 1]);
        assert_eq!(chain(&b), vec![5, 2]);
        let prev: Vec<Option<i64>> = conn
            .prepare("SELECT prev_id FROM entries ORDER BY id")
            .expect("query")
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("read");
        assert_eq!(prev, vec![None, None, Some(1), Some(3), Some(2), Some(4), Some(6)]);
        let last = LastEntries::load(&conn).expect("last entries");
        assert_eq!((last.0.get(&a), last.0.get(&b)), (Some(&7), Some(&5)));

        let key = IdempotencyKey(Uuid::from_u128(0xfeed));
        let record = read_idempotency(&conn, &a, key).expect("read").expect("kept by the migration");
        assert_eq!(
            record,
            IdempotencyRecord { fingerprint: Fingerprint([9; 32]), outcome: OutcomeRef::Entry(EntryId(3)) }
        );
        assert_eq!(read_idempotency(&conn, &b, key).expect("read"), None, "a key belongs to its account");
        // Stamped with the migration's time: kept a whole retention period from now.
        let now = crate::storage::writer::now_ms().0;
        let expired = expire_idempotency(&conn, now, 24 * 3600 * 1000, 100).expect("expiry");
        assert_eq!(expired.deleted, 0);
        assert!(expired.next_due_ms > now + 23 * 3600 * 1000, "due at {}", expired.next_due_ms);
    }

    #[test]
    fn a_statement_cursor_must_be_a_line_of_the_same_account() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v4.db");
        let (a, b) = version_4_database(&path);
        let mut conn = Connection::open(&path).expect("reopen");
        schema::migrate(&mut conn).expect("migrates");
        let page = |number: &AccountNumber, before| {
            read::statement_page(&read::Reader::new(&conn, &LiveBalances::default()), number, Some(before), 2)
                .expect("page")
        };
        let ids = |p: read::StatementPage| match p {
            read::StatementPage::Lines(lines) => lines.iter().map(|e| e.id.0).collect::<Vec<_>>(),
            read::StatementPage::NotACursor => panic!("a cursor of this account was refused"),
        };
        assert_eq!(ids(page(&a, 6)), vec![4, 3]);
        assert_eq!(ids(page(&a, 1)), Vec::<u64>::new());
        assert_eq!(page(&a, 5), read::StatementPage::NotACursor, "a line of another account");
        assert_eq!(page(&b, 7), read::StatementPage::NotACursor, "a line of another account");
        assert_eq!(page(&a, 99), read::StatementPage::NotACursor, "no such line");
    }

    #[test]
    fn a_statement_page_never_shows_a_line_the_writer_has_not_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v4.db");
        let (a, _) = version_4_database(&path);
        let mut writer = Connection::open(&path).expect("writer");
        schema::configure(&writer).expect("wal");
        schema::migrate(&mut writer).expect("migrates");
        let reader = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("reader");
        let ids = || match read::statement_page(&read::Reader::new(&reader, &LiveBalances::default()), &a, None, 100)
            .expect("page")
        {
            read::StatementPage::Lines(lines) => lines.iter().map(|e| e.id.0).collect::<Vec<_>>(),
            read::StatementPage::NotACursor => panic!("no cursor given"),
        };
        let tx = writer.transaction().expect("tx");
        tx.execute(
            "INSERT INTO entries (id, account, kind, amount_cents, status, created_at, prev_id) \
             VALUES (8, ?1, 'deposit', 10, 'completed', 0, 7)",
            [a.as_str()],
        )
        .expect("line");
        tx.execute("UPDATE accounts SET last_entry_id = 8 WHERE number = ?1", [a.as_str()]).expect("newest");
        assert_eq!(ids(), vec![7, 6, 4, 3, 1], "an uncommitted line was read");
        tx.commit().expect("commit");
        assert_eq!(ids(), vec![8, 7, 6, 4, 3, 1]);
    }

    #[test]
    fn expiry_deletes_only_records_past_retention_oldest_first_and_at_most_a_round_at_a_time() {
        let conn = Connection::open_in_memory().expect("db");
        let mut conn = conn;
        schema::migrate(&mut conn).expect("schema");
        let scope = AccountNumber::from_seq(1);
        for (n, at) in [(1u128, 1_000), (2, 2_000), (3, 3_000), (4, 9_000)] {
            let record =
                IdempotencyRecord { fingerprint: Fingerprint([1; 32]), outcome: OutcomeRef::Entry(EntryId(1)) };
            let tx = conn.transaction().expect("tx");
            write_idempotency(&tx, &scope, &IdempotencyKey(Uuid::from_u128(n)), &record, at).expect("write");
            tx.commit().expect("commit");
        }
        // Retention 5 s at t = 8.5 s: records of 1, 2 and 3 s are expired; two per round.
        let first = expire_idempotency(&conn, 8_500, 5_000, 2).expect("round 1");
        assert_eq!(first, Expired { deleted: 2, next_due_ms: 8_500 }, "more may be due at once");
        let second = expire_idempotency(&conn, 8_500, 5_000, 2).expect("round 2");
        assert_eq!(second, Expired { deleted: 1, next_due_ms: 14_000 }, "the 9 s record is due at 14 s");
        let key = |n| IdempotencyKey(Uuid::from_u128(n));
        assert_eq!(read_idempotency(&conn, &scope, key(3)).expect("read"), None);
        assert!(read_idempotency(&conn, &scope, key(4)).expect("read").is_some());
    }

    /// Sessions past their lifetime are deleted oldest first, a bounded round at a time, and the
    /// walk stops at the first one still valid; the live ones stay.
    #[test]
    fn session_expiry_deletes_expired_sessions_oldest_first_up_to_the_first_valid_one() {
        let mut conn = Connection::open_in_memory().expect("db");
        schema::migrate(&mut conn).expect("schema");
        // Sessions of an account that is not there: this test is about their rows only.
        conn.pragma_update(None, "foreign_keys", "OFF").expect("pragma");
        // Created in this order; the third outlives the fourth (a lifetime shortened since).
        for (n, expires_at) in [(1u8, 1_000), (2, 2_000), (3, 9_000), (4, 3_000), (5, 12_000)] {
            conn.execute(
                "INSERT INTO sessions (token_hash, account, created_at, expires_at) VALUES (?1, '000001-7', 0, ?2)",
                params![&[n; 32][..], expires_at],
            )
            .expect("session");
        }
        let first = expire_sessions(&conn, 5_000, 8_000, 1).expect("round 1");
        assert_eq!(first, Expired { deleted: 1, next_due_ms: 5_000 }, "one per round: more may be due");
        let second = expire_sessions(&conn, 5_000, 8_000, 10).expect("round 2");
        assert_eq!(second, Expired { deleted: 1, next_due_ms: 9_000 }, "stops at the one valid until 9 s");
        let left: Vec<u8> = conn
            .prepare("SELECT token_hash FROM sessions ORDER BY rowid")
            .expect("select")
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .expect("rows")
            .map(|h| h.expect("hash")[0])
            .collect();
        assert_eq!(left, vec![3, 4, 5]);
        let third = expire_sessions(&conn, 13_000, 8_000, 10).expect("round 3");
        assert_eq!(third, Expired { deleted: 3, next_due_ms: 21_000 }, "none left: due a lifetime from now");
    }

    /// An individual account's opening, for the ledger-level tests below.
    fn individual(n: u64) -> bank_core::account::NewAccount {
        bank_core::account::NewAccount {
            kind: AccountKind::Individual,
            holders: vec![Holder {
                name: format!("Cliente {n}"),
                document: bank_core::document::Document::Cpf(bank_core::document::Cpf::from_base(n)),
            }],
            email: Email::parse(&format!("c{n}@example.com")).expect("e-mail"),
            phone: Phone::parse("+5575999991234").expect("phone"),
            password_hash: "x".into(),
        }
    }

    fn request(
        ledger: &Ledger,
        from: &AccountNumber,
        to: &AccountNumber,
        cents: i64,
    ) -> bank_core::ledger::TransferRequest {
        use bank_core::ledger::{AccountRef, Destination, LegRequest, TransferRequest};
        TransferRequest {
            idempotency_key: IdempotencyKey(Uuid::now_v7()),
            fingerprint: Fingerprint([0; 32]),
            actor: from.clone(),
            legs: vec![LegRequest {
                from: None,
                to: Destination::Account(AccountRef { bank_id: ledger.bank_id(), number: to.clone() }),
                amount: Amount::from_cents(cents).expect("amount"),
            }],
            description: None,
            transfer_id: TransferId(Uuid::now_v7()),
            now: TimestampMs(1_000),
        }
    }

    fn idem() -> (IdempotencyKey, Fingerprint) {
        (IdempotencyKey(Uuid::now_v7()), Fingerprint([0; 32]))
    }

    /// Writes `changes` as the writer does, in one transaction left open: journals the balances
    /// it changed, or checkpoints every account of the ledger when asked.
    fn write_batch<'c>(
        conn: &'c mut Connection,
        ledger: &Ledger,
        last: &mut LastEntries,
        changes: &[Change],
        checkpoint: bool,
    ) -> Transaction<'c> {
        let tx = conn.transaction().expect("tx");
        let touched = {
            let mut writer = BatchWriter::new(&tx, last, 1_000);
            for change in changes {
                writer.write(change).expect("write");
            }
            writer.finish()
        };
        if checkpoint {
            let numbers: Vec<AccountNumber> = ledger.accounts().map(|a| a.number.clone()).collect();
            write_balance_checkpoint(&tx, ledger, last, &numbers).expect("checkpoint");
        } else {
            journal_balances(&tx, ledger, last, &touched.accounts).expect("journal");
        }
        tx
    }

    type Balances = Vec<(AccountNumber, i64, i64, Option<u64>)>;

    fn balances(ledger: &Ledger, last: &LastEntries) -> Balances {
        let mut all: Balances =
            ledger.accounts().map(|a| (a.number.clone(), a.posted_cents, a.held_cents, last.get(&a.number))).collect();
        all.sort();
        all
    }

    fn rows(conn: &Connection) -> Balances {
        let mut stmt = conn
            .prepare("SELECT number, posted_cents, held_cents, last_entry_id FROM accounts ORDER BY number")
            .expect("q");
        stmt.query_map([], |r| {
            Ok((
                AccountNumber::parse(&r.get::<_, String>(0)?).expect("number"),
                r.get(1)?,
                r.get(2)?,
                r.get::<_, Option<i64>>(3)?.map(|id| id as u64),
            ))
        })
        .expect("rows")
        .collect::<rusqlite::Result<_>>()
        .expect("read")
    }

    /// Batches write no balance rows: after a checkpoint, deposits, a transfer, a withdrawal, a
    /// transfer refused for want of funds (a failed line, no money) and a hold, and then a batch
    /// that never commits (a crash mid-batch), a start rebuilds every posted and held balance and
    /// every newest line exactly as of the last committed batch, from the rows and the journal.
    #[test]
    fn a_start_rebuilds_balances_from_the_checkpoint_rows_and_the_journal_after_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open_writer(dir.path(), BankId(1)).expect("open");
        let since = TransferId::first_at(0);
        let mut ledger = load_ledger(&conn, BankId(1), Remembered { since, max: usize::MAX }).expect("empty ledger");
        let mut last = LastEntries::load(&conn).expect("last");
        let mut changes = Vec::new();
        let numbers: Vec<AccountNumber> = (1..=3)
            .map(|n| {
                ledger.open_account(individual(n), TimestampMs(1_000), &mut changes).expect("opens").account.number
            })
            .collect();
        let (a, b, c) = (&numbers[0], &numbers[1], &numbers[2]);
        for number in &numbers {
            ledger
                .deposit(
                    number,
                    Amount::from_cents(10_000).expect("amount"),
                    DepositMethod::Cash,
                    idem(),
                    TimestampMs(1_000),
                    &mut changes,
                )
                .expect("deposit");
        }
        write_batch(&mut conn, &ledger, &mut last, &changes, true).commit().expect("commit");
        let checkpointed = rows(&conn);
        assert_eq!(checkpointed, balances(&ledger, &last), "the checkpoint copies every balance");

        changes.clear();
        ledger.transfer(request(&ledger, a, b, 2_500), &mut changes).expect("transfer");
        ledger
            .withdraw(c, Amount::from_cents(700).expect("amount"), idem(), TimestampMs(1_000), &mut changes)
            .expect("withdraw");
        let refused =
            ledger.transfer(request(&ledger, c, a, 1_000_000), &mut changes).expect("a refused transfer still answers");
        assert!(matches!(refused, Outcome::Transfer(ref t) if t.status == Status::Failed), "{refused:?}");
        let holds = HoldSet {
            debits: vec![(b.clone(), Amount::from_cents(300).expect("amount"))],
            credits: vec![(c.clone(), Amount::from_cents(300).expect("amount"))],
            placed_at: TimestampMs(1_000),
            coordinator: BankId(2),
            expires_at: TimestampMs(60_000),
            keys: Vec::new(),
            pix: Vec::new(),
        };
        ledger.place_holds(TransferId(Uuid::now_v7()), holds, &mut changes).expect("holds");
        write_batch(&mut conn, &ledger, &mut last, &changes, false).commit().expect("commit");
        assert_eq!(rows(&conn), checkpointed, "a batch without checkpoint wrote balance rows");
        let committed = balances(&ledger, &last);

        changes.clear();
        ledger.transfer(request(&ledger, b, c, 1_000), &mut changes).expect("transfer");
        drop(write_batch(&mut conn, &ledger, &mut last, &changes, false)); // never committed

        let reloaded = load_ledger(&conn, BankId(1), Remembered { since, max: usize::MAX }).expect("reload");
        let reloaded_last = LastEntries::load(&conn).expect("last");
        assert_eq!(balances(&reloaded, &reloaded_last), committed);
        assert_eq!(
            committed.iter().map(|(_, posted, held, _)| (*posted, *held)).collect::<Vec<_>>(),
            vec![(7_500, 0), (12_500, 300), (9_300, 0)]
        );

        let current: Vec<(String, i64, i64)> = conn
            .prepare(&format!(
                "{CURRENT_BALANCES} SELECT number, posted_cents, held_cents FROM balances ORDER BY number"
            ))
            .expect("query")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("read");
        let expected: Vec<(String, i64, i64)> =
            committed.iter().map(|(n, posted, held, _)| (n.as_str().to_string(), *posted, *held)).collect();
        assert_eq!(current, expected, "the audit's balances, read in SQL from the same tables");

        checkpoint_after_recovery(&mut conn, &reloaded, &reloaded_last).expect("checkpoint");
        assert_eq!(rows(&conn), committed, "the start's checkpoint makes the rows current");
        assert!(read_balance_journal(&conn).expect("journal").is_empty(), "the checkpoint empties the journal");
        let again = load_ledger(&conn, BankId(1), Remembered { since, max: usize::MAX }).expect("reload");
        assert_eq!(balances(&again, &LastEntries::load(&conn).expect("last")), committed);
    }

    /// Readers take a balance and newest line from what the writer published, not from the
    /// stale checkpoint row.
    #[test]
    fn a_reader_sees_the_published_balance_and_newest_line_over_the_checkpoint_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v4.db");
        let (a, _) = version_4_database(&path);
        let mut conn = Connection::open(&path).expect("reopen");
        schema::migrate(&mut conn).expect("migrates");
        conn.execute("UPDATE accounts SET phone = '+5575999991234', email = 'c' || number || '@example.com'", [])
            .expect("contacts the account view accepts");
        let live = LiveBalances::default();
        let reader = read::Reader::new(&conn, &live);
        let view = read::account(&reader, &a).expect("read").expect("account");
        assert_eq!(
            (view.account.posted_cents, view.account.held_cents),
            (100, 0),
            "the row, before anything is published"
        );
        live.publish([(a.clone(), LiveBalance { posted_cents: 77, held_cents: 7, last_entry_id: Some(4) })]);
        let view = read::account(&reader, &a).expect("read").expect("account");
        assert_eq!((view.account.posted_cents, view.account.held_cents), (77, 7));
        match read::statement_page(&reader, &a, None, 100).expect("page") {
            read::StatementPage::Lines(lines) => {
                assert_eq!(lines.iter().map(|e| e.id.0).collect::<Vec<_>>(), vec![4, 3, 1])
            }
            read::StatementPage::NotACursor => panic!("no cursor given"),
        }
    }

    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn a_new_data_directory_its_database_wal_and_shm_are_private_to_the_bank_user() {
        let parent = tempfile::tempdir().expect("tempdir");
        let data_dir = parent.path().join("bank-1");
        let _lock = lock_data_dir(&data_dir).expect("lock");
        let conn = open_writer(&data_dir, BankId(1)).expect("open");
        conn.execute("INSERT INTO meta (key, value) VALUES ('probe', 'x')", []).expect("a write fills the -wal");
        assert_eq!(mode_of(&data_dir), 0o700, "data directory");
        for suffix in ["", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{suffix}", database_path(&data_dir).display()));
            assert_eq!(mode_of(&path), 0o600, "{}", path.display());
        }
        assert_eq!(mode_of(&data_dir.join("LOCK")), 0o600, "LOCK");
    }

    #[test]
    fn a_wal_created_again_after_a_checkpoint_removed_it_is_private_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = PathBuf::from(format!("{}-wal", database_path(dir.path()).display()));
        drop(open_writer(dir.path(), BankId(1)).expect("open"));
        // The last connection's close checkpoints and deletes the -wal; the next write makes a new one.
        assert!(!wal.exists(), "the -wal outlived its last connection");
        let conn = open_writer(dir.path(), BankId(1)).expect("reopen");
        conn.execute("INSERT INTO meta (key, value) VALUES ('probe', 'x')", []).expect("write");
        assert_eq!(mode_of(&wal), 0o600);
    }

    #[test]
    fn a_data_directory_others_can_read_is_refused_by_path_and_mode_and_left_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        std::fs::create_dir(&data_dir).expect("mkdir");
        chmod(&data_dir, 0o755);
        let refused = lock_data_dir(&data_dir).expect_err("a 0755 data directory was accepted");
        let message = refused.to_string();
        assert!(matches!(refused, StorageError::NotPrivate { mode: 0o755, .. }), "{message}");
        assert!(message.contains(&data_dir.display().to_string()) && message.contains("0755"), "{message}");
        assert!(message.contains("chmod -R go-rwx"), "{message}");
        assert_eq!(mode_of(&data_dir), 0o755, "the refusal changed the mode");
        assert!(!data_dir.join("LOCK").exists(), "the refusal created the lock file");
    }

    #[test]
    fn a_database_or_wal_others_can_read_is_refused_by_path_and_mode_and_left_unchanged() {
        for (suffix, mode) in [("", 0o644), ("-wal", 0o640), ("-shm", 0o604)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let data_dir = dir.path().join("data");
            drop(lock_data_dir(&data_dir).expect("lock"));
            drop(open_writer(&data_dir, BankId(1)).expect("open"));
            let path = PathBuf::from(format!("{}{suffix}", database_path(&data_dir).display()));
            std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("file");
            chmod(&path, mode);
            let refused = lock_data_dir(&data_dir).expect_err("a readable database file was accepted");
            let message = refused.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(&format!("{mode:04o}")), "{message}");
            assert_eq!(mode_of(&path), mode, "the refusal changed the mode");
        }
    }
}
