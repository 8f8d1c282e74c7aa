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
//!   `kill -9` resumes exactly at the last committed batch.
//! - If a commit fails (disk full, I/O error), memory may be ahead of disk, so the process aborts
//!   rather than serve a state that is not durable; the restart rebuilds from disk.
//!
//! # Does not handle
//!
//! Replication: a bank that needs it should use a replicated backend (the seam is the writer).

pub mod backup;
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
    Change, DepositMethod, Entry, EntryKind, HoldSet, IdempotencyRecord, Ledger, Outcome, OutcomeRef, Settlement,
    Status,
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
        _ => Err(corrupt(format!("entry kind {text:?}"))),
    }
}

/// Columns: id, account, transfer_id, kind, method, amount_cents, status, counterparty, created_at.
pub(crate) const ENTRY_COLUMNS: &str =
    "id, account, transfer_id, kind, method, amount_cents, status, counterparty, created_at";

type RawEntry = (i64, String, Option<String>, String, Option<String>, i64, String, Option<String>, i64);

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
    ))
}

pub(crate) fn entry_from_raw(raw: RawEntry) -> Result<Entry> {
    let (id, account, transfer_id, kind, method, amount, status, counterparty, created_at) = raw;
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

/// The per-account index of ledger lines, in memory: account → its entry ids, ascending.
///
/// The writer appends to it after a batch is durable and before answering, so a reader never
/// sees an entry id whose row is not committed. 8 bytes per line; rebuilt from `entries` at start.
#[derive(Debug, Default)]
pub struct EntryIndex {
    by_account: std::sync::RwLock<HashMap<AccountNumber, Vec<u64>>>,
}

impl EntryIndex {
    pub fn load(conn: &Connection) -> Result<Self> {
        let mut by_account: HashMap<AccountNumber, Vec<u64>> = HashMap::new();
        let mut stmt = conn.prepare("SELECT id, account FROM entries ORDER BY id")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
            let (id, account) = row?;
            by_account.entry(AccountNumber::parse(&account).map_err(corrupt)?).or_default().push(id as u64);
        }
        Ok(EntryIndex { by_account: std::sync::RwLock::new(by_account) })
    }

    pub(crate) fn append(&self, entries: &[(AccountNumber, u64)]) {
        let mut map = self.by_account.write().unwrap_or_else(|p| p.into_inner());
        for (account, id) in entries {
            let ids = map.entry(account.clone()).or_default();
            debug_assert!(ids.last().is_none_or(|last| last < id), "entry ids ascend");
            ids.push(*id);
        }
    }

    /// Up to `limit` entry ids of `account`, newest first, strictly before `before` when given.
    pub fn page(&self, account: &AccountNumber, before: Option<u64>, limit: usize) -> Vec<u64> {
        let map = self.by_account.read().unwrap_or_else(|p| p.into_inner());
        let Some(ids) = map.get(account) else { return Vec::new() };
        let end = match before {
            Some(b) => ids.partition_point(|&id| id < b),
            None => ids.len(),
        };
        ids[..end].iter().rev().take(limit).copied().collect()
    }
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
/// and the finished ones from `remembered_since` on (older ones are read on demand,
/// [`read_finished_decision`]).
pub fn load_coordinator_records(
    conn: &Connection,
    remembered_since: TransferId,
) -> Result<Vec<bank_core::twopc::CoordinatorRecord>> {
    let mut stmt = conn.prepare("SELECT body FROM coordinator_records WHERE state != 'finished' OR tx >= ?1")?;
    let rows = stmt.query_map([remembered_since.0.to_string()], |r| r.get::<_, String>(0))?;
    rows.map(|body| serde_json::from_str(&body?).map_err(corrupt)).collect()
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

/// Everything the bank's state machine is rebuilt from at start-up: the ledger, the coordinator
/// records (unfinished ones, and finished ones from `remembered_since` on), the ring's state and
/// queue, and the pending transfers this bank coordinates (whose records it settles on decision).
pub fn load_bank(conn: &Connection, bank_id: BankId, remembered_since: TransferId) -> Result<Recovered> {
    let ledger = load_ledger(conn, bank_id, remembered_since)?;
    let coordinator_records = load_coordinator_records(conn, remembered_since)?;
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
pub fn load_ledger(conn: &Connection, bank_id: BankId, remembered_since: TransferId) -> Result<Ledger> {
    let mut ledger = Ledger::new(bank_id);
    let mut stmt = conn.prepare(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY number"))?;
    for raw in stmt.query_map([], account_from_row)? {
        ledger.restore_account(account_from_raw(raw?)?);
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
    let mut stmt = conn.prepare("SELECT transfer_id, decision FROM decisions WHERE transfer_id >= ?1")?;
    let since = remembered_since.0.to_string();
    for row in stmt.query_map([since], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (id, decision) = row?;
        ledger.restore_settlement(TransferId(parse_uuid(&id)?), settlement_of_text(&decision)?);
    }
    let mut stmt =
        conn.prepare("SELECT scope, key, fingerprint, entry_id, transfer_id FROM idempotency ORDER BY seq")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })?;
    for row in rows {
        let (scope, key, fingerprint, entry_id, transfer_id) = row?;
        let outcome = match (entry_id, transfer_id) {
            (Some(id), None) => OutcomeRef::Entry(EntryId(id as u64)),
            (None, Some(id)) => OutcomeRef::Transfer(TransferId(parse_uuid(&id)?)),
            _ => return Err(corrupt(format!("idempotency record {scope}/{key} points nowhere"))),
        };
        let fingerprint: [u8; 32] = fingerprint.try_into().map_err(|_| corrupt("fingerprint length"))?;
        ledger.restore_idempotency(
            AccountNumber::parse(&scope).map_err(corrupt)?,
            IdempotencyKey(parse_uuid(&key)?),
            IdempotencyRecord { fingerprint: Fingerprint(fingerprint), outcome },
        );
    }
    let next_entry: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM entries", [], |r| r.get(0))?;
    ledger.restore_next_entry_id(next_entry as u64);
    ledger.assert_invariants();
    Ok(ledger)
}

/// Writes one batch's changes inside the batch's transaction. Balance changes are coalesced:
/// only each account's last balance of the batch is written, once, by [`BatchWriter::finish`].
pub(crate) struct BatchWriter<'t> {
    tx: &'t Transaction<'t>,
    balances: HashMap<AccountNumber, (i64, i64)>,
    /// Entries written in this batch, for the in-memory index once the batch is durable.
    pub new_entries: Vec<(AccountNumber, u64)>,
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

/// A statement line (append-only).
fn write_entry(tx: &Transaction<'_>, e: &Entry) -> Result<()> {
    tx.prepare_cached(&format!("INSERT INTO entries ({ENTRY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"))?
        .execute(params![
        e.id.0 as i64,
        e.account.as_str(),
        e.transfer_id.map(|t| t.0.to_string()),
        e.kind.as_str(),
        e.method.map(DepositMethod::as_str),
        e.amount.cents(),
        e.status.as_str(),
        e.counterparty,
        e.created_at.0
    ])?;
    Ok(())
}

/// The first outcome of an idempotent request, by reference.
fn write_idempotency(
    tx: &Transaction<'_>,
    scope: &AccountNumber,
    key: &IdempotencyKey,
    record: &IdempotencyRecord,
) -> Result<()> {
    let (entry_id, transfer_id) = match record.outcome {
        OutcomeRef::Entry(id) => (Some(id.0 as i64), None),
        OutcomeRef::Transfer(id) => (None, Some(id.0.to_string())),
    };
    tx.prepare_cached(
        "INSERT INTO idempotency (scope, key, fingerprint, entry_id, transfer_id) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![scope.as_str(), key.0.to_string(), &record.fingerprint.0[..], entry_id, transfer_id])?;
    Ok(())
}

impl<'t> BatchWriter<'t> {
    pub fn new(tx: &'t Transaction<'t>) -> Self {
        BatchWriter { tx, balances: HashMap::new(), new_entries: Vec::new() }
    }

    pub fn write(&mut self, change: &Change) -> Result<()> {
        let tx = self.tx;
        match change {
            Change::AccountOpened(a) => write_account(tx, a)?,
            Change::Balance { account, posted_cents, held_cents } => {
                self.balances.insert(account.clone(), (*posted_cents, *held_cents));
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
                write_entry(tx, e)?;
                self.new_entries.push((e.account.clone(), e.id.0));
            }
            Change::TransferRecorded(t) => {
                let body = serde_json::to_string(t.as_ref()).map_err(corrupt)?;
                tx.prepare_cached(
                    "INSERT INTO transfers (id, status, body, created_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body",
                )?
                .execute(params![t.id.0.to_string(), t.status.as_str(), body, t.created_at.0])?;
            }
            Change::IdempotencyRecorded { scope, key, record } => write_idempotency(tx, scope, key, record)?,
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
        }
        Ok(())
    }

    /// Writes the coalesced balances. Call once, after the batch's last change.
    pub fn finish(&mut self) -> Result<()> {
        let mut stmt =
            self.tx.prepare_cached("UPDATE accounts SET posted_cents = ?2, held_cents = ?3 WHERE number = ?1")?;
        for (number, (posted, held)) in &self.balances {
            if stmt.execute(params![number.as_str(), posted, held])? != 1 {
                return Err(corrupt(format!("balance of missing account {number}")));
            }
        }
        Ok(())
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
