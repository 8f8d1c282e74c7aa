//! Read-only queries on committed state, over a small pool of read connections.
//!
//! In WAL mode a reader sees the last committed batch and never blocks the writer. Queries run on
//! tokio's blocking pool ([`ReadPool::run`]) so a slow statement never stalls the async workers.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bank_core::account::{Account, AccountKind};
use bank_core::ids::{AccountNumber, TimestampMs, TransferId};
use bank_core::ledger::{Entry, Transfer};
use bank_core::pixkey::{KeyType, PixKey};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{
    ACCOUNT_COLUMNS, ENTRY_COLUMNS, LiveBalances, Result, StorageError, account_from_raw, account_from_row,
    entry_from_raw, raw_entry,
};

/// A pool of read-only connections, created on demand up to `size_max`.
#[derive(Debug, Clone)]
pub struct ReadPool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    size_max: usize,
    live: Arc<LiveBalances>,
}

/// A read connection, with the balances the writer published: the `accounts` rows hold
/// balances and newest lines only as of the last checkpoint. Derefs to the connection.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    conn: &'a Connection,
    live: &'a LiveBalances,
}

impl<'a> Reader<'a> {
    pub fn new(conn: &'a Connection, live: &'a LiveBalances) -> Self {
        Reader { conn, live }
    }
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// An account as its holder sees it.
#[derive(Debug, Clone)]
pub struct AccountView {
    pub account: Account,
    pub keys: Vec<(String, KeyType)>,
}

/// What a payer sees of a key's owner.
#[derive(Debug, Clone)]
pub struct KeyView {
    pub key: PixKey,
    pub account: Account,
}

impl ReadPool {
    pub fn new(path: PathBuf, size_max: usize, live: Arc<LiveBalances>) -> Self {
        let inner = PoolInner { path, idle: Mutex::new(Vec::new()), size_max: size_max.max(1), live };
        ReadPool { inner: Arc::new(inner) }
    }

    fn take(&self) -> Result<Connection> {
        if let Some(conn) =
            self.inner.idle.lock().map_err(|_| StorageError::Corrupt("read pool poisoned".into()))?.pop()
        {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.inner.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.inner.idle.lock()
            && idle.len() < self.inner.size_max
        {
            idle.push(conn);
        }
    }

    /// Runs `f` with a read connection on the blocking pool.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce(&Reader<'_>) -> Result<T> + Send + 'static) -> Result<T> {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let result = f(&Reader::new(&conn, &pool.inner.live));
            pool.give_back(conn);
            result
        })
        .await
        .map_err(|e| StorageError::Corrupt(format!("read task failed: {e}")))?
    }
}

/// An account with its committed balance (published by the writer, or its row when it has not
/// changed since the start).
pub fn account(conn: &Reader<'_>, number: &AccountNumber) -> Result<Option<AccountView>> {
    let live = conn.live.get(number);
    let raw = conn
        .prepare_cached(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE number = ?1"))?
        .query_row([number.as_str()], account_from_row)
        .optional()?;
    let Some(raw) = raw else { return Ok(None) };
    let mut account = account_from_raw(raw)?;
    if let Some(live) = live {
        account.posted_cents = live.posted_cents;
        account.held_cents = live.held_cents;
    }
    let mut stmt = conn.prepare_cached("SELECT key, type FROM pix_keys WHERE account = ?1 ORDER BY seq")?;
    let keys = stmt
        .query_map([number.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .map(|row| {
            let (key, kind) = row?;
            Ok((key, KeyType::parse(&kind).map_err(|e| StorageError::Corrupt(e.to_string()))?))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(AccountView { account, keys }))
}

/// The account number and password hash for a sign-in e-mail.
pub fn credentials(conn: &Connection, email: &str) -> Result<Option<(AccountNumber, String)>> {
    let row = conn
        .prepare_cached("SELECT number, password_hash FROM accounts WHERE email = ?1")?
        .query_row([email], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .optional()?;
    row.map(|(n, h)| Ok((AccountNumber::parse(&n).map_err(|e| StorageError::Corrupt(e.to_string()))?, h))).transpose()
}

pub fn key_owner(conn: &Reader<'_>, key: &PixKey) -> Result<Option<KeyView>> {
    let number: Option<String> = conn
        .prepare_cached("SELECT account FROM pix_keys WHERE key = ?1")?
        .query_row([key.normalized()], |r| r.get(0))
        .optional()?;
    let Some(number) = number else { return Ok(None) };
    let number = AccountNumber::parse(&number).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    Ok(account(conn, &number)?.map(|view| KeyView { key: key.clone(), account: view.account }))
}

/// A key of an account at another bank, from the consortium directory.
pub fn remote_key(conn: &Connection, key: &PixKey) -> Result<Option<bank_core::ledger::RemoteKey>> {
    let row = conn
        .prepare_cached("SELECT bank_id, account, holder_name, masked_document FROM remote_keys WHERE key = ?1")?
        .query_row([key.normalized()], |r| {
            Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
        })
        .optional()?;
    row.map(|(bank_id, account, holder_name, masked_document)| {
        Ok(bank_core::ledger::RemoteKey {
            bank_id: bank_core::ids::BankId(bank_id),
            account: AccountNumber::parse(&account).map_err(|e| StorageError::Corrupt(e.to_string()))?,
            holder_name,
            masked_document,
        })
    })
    .transpose()
}

/// A page of an account's statement: up to `limit` lines, newest first, strictly older than the
/// line `before` when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementPage {
    Lines(Vec<Entry>),
    /// `before` is not a line of this account (not a cursor this statement handed out).
    NotACursor,
}

/// Walks the account's chain of lines from its newest (or from `before`), by primary key: no
/// index by account, nothing in memory. One read transaction, so the page is one committed state
/// (the writer's uncommitted rows are never seen).
pub fn statement_page(
    conn: &Reader<'_>,
    account: &AccountNumber,
    before: Option<u64>,
    limit: usize,
) -> Result<StatementPage> {
    // Read before the snapshot starts, so the snapshot holds the published newest line.
    let live = conn.live.get(account);
    let snapshot = conn.unchecked_transaction()?;
    let start = match (before, live) {
        (None, Some(live)) => live.last_entry_id.map(|id| id as i64),
        (None, None) => snapshot
            .prepare_cached("SELECT last_entry_id FROM accounts WHERE number = ?1")?
            .query_row([account.as_str()], |r| r.get::<_, Option<i64>>(0))
            .optional()?
            .flatten(),
        (Some(before), _) => {
            let line = snapshot
                .prepare_cached("SELECT account, prev_id FROM entries WHERE id = ?1")?
                .query_row([before as i64], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?)))
                .optional()?;
            match line {
                Some((owner, prev)) if owner == account.as_str() => prev,
                _ => return Ok(StatementPage::NotACursor),
            }
        }
    };
    let mut stmt = snapshot.prepare_cached(&format!("SELECT {ENTRY_COLUMNS}, prev_id FROM entries WHERE id = ?1"))?;
    let mut lines = Vec::with_capacity(limit.min(256));
    let mut next = start;
    while let Some(id) = next.filter(|_| lines.len() < limit) {
        let (raw, prev) = stmt
            .query_row([id], |r| Ok((raw_entry(r)?, r.get::<_, Option<i64>>(10)?)))
            .optional()?
            .ok_or_else(|| StorageError::Corrupt(format!("line {id} of {account} is linked but not stored")))?;
        let entry = entry_from_raw(raw)?;
        if entry.account != *account || prev.is_some_and(|p| p >= id) {
            return Err(StorageError::Corrupt(format!("line {id} breaks the chain of {account}")));
        }
        lines.push(entry);
        next = prev;
    }
    drop(stmt);
    snapshot.finish()?;
    Ok(StatementPage::Lines(lines))
}

/// The entries with these ids, in the order given.
pub fn entries(conn: &Connection, ids: &[u64]) -> Result<Vec<Entry>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE id = ?1"))?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let raw = stmt
            .query_row([*id as i64], raw_entry)
            .optional()?
            .ok_or_else(|| StorageError::Corrupt(format!("entry {id} is indexed but not stored")))?;
        out.push(entry_from_raw(raw)?);
    }
    Ok(out)
}

pub fn transfer(conn: &Connection, id: &TransferId) -> Result<Option<Transfer>> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM transfers WHERE id = ?1")?
        .query_row([id.0.to_string()], |r| r.get(0))
        .optional()?;
    body.map(|b| serde_json::from_str(&b).map_err(|e| StorageError::Corrupt(e.to_string()))).transpose()
}

/// Accounts a session signed in to `actor` may spend or see (API.md "who may spend what").
pub fn spendable(conn: &Connection, actor: &Account) -> Result<Vec<AccountNumber>> {
    if actor.kind == AccountKind::Joint {
        return Ok(vec![actor.number.clone()]);
    }
    let Some(doc) = actor.acting_document() else { return Ok(vec![actor.number.clone()]) };
    let mut stmt = conn.prepare_cached("SELECT account FROM account_holders WHERE document = ?1 ORDER BY account")?;
    let rows = stmt.query_map([doc.as_str()], |r| r.get::<_, String>(0))?;
    rows.map(|n| AccountNumber::parse(&n?).map_err(|e| StorageError::Corrupt(e.to_string()))).collect()
}

/// Every account here of which `document` is a holder, by number.
pub fn accounts_of_document(conn: &Reader<'_>, document: &bank_core::document::Document) -> Result<Vec<Account>> {
    let mut stmt = conn.prepare_cached("SELECT account FROM account_holders WHERE document = ?1 ORDER BY account")?;
    let numbers = stmt
        .query_map([document.as_str()], |r| r.get::<_, String>(0))?
        .map(|n| AccountNumber::parse(&n?).map_err(|e| StorageError::Corrupt(e.to_string())))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(numbers.len());
    for number in numbers {
        if let Some(view) = account(conn, &number)? {
            out.push(view.account);
        }
    }
    Ok(out)
}

/// Transactions holding money (or keys) here until their outcome arrives.
pub fn holds_count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM holds", [], |r| r.get(0))?)
}

/// Live sessions, for the in-memory cache at start.
pub fn live_sessions(conn: &Connection, now: TimestampMs) -> Result<Vec<([u8; 32], AccountNumber, TimestampMs)>> {
    let mut stmt =
        conn.prepare("SELECT token_hash, account, expires_at FROM sessions WHERE revoked = 0 AND expires_at > ?1 ORDER BY created_at")?;
    let rows =
        stmt.query_map([now.0], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?;
    rows.map(|row| {
        let (hash, account, expires) = row?;
        let hash: [u8; 32] = hash.try_into().map_err(|_| StorageError::Corrupt("token hash length".into()))?;
        let account = AccountNumber::parse(&account).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        Ok((hash, account, TimestampMs(expires)))
    })
    .collect()
}

/// A Pix leg kept here, with what is refunded of it (figures kept at the receiver's bank).
#[derive(Debug, Clone)]
pub struct StoredPixLeg {
    pub pix: bank_core::ledger::PixLeg,
    pub refunded_cents: i64,
    pub reserved_cents: i64,
}

/// The posted Pix legs of a transfer kept at this bank, by leg.
pub fn pix_legs(conn: &Connection, id: &TransferId) -> Result<Vec<StoredPixLeg>> {
    let mut stmt = conn.prepare_cached(
        "SELECT body, refunded_cents, reserved_cents FROM pix_legs WHERE transfer_id = ?1 ORDER BY leg",
    )?;
    let rows =
        stmt.query_map([id.0.to_string()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?;
    let mut legs = Vec::new();
    for row in rows {
        let (body, refunded_cents, reserved_cents) = row?;
        let pix = serde_json::from_str(&body).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        legs.push(StoredPixLeg { pix, refunded_cents, reserved_cents });
    }
    Ok(legs)
}

/// The posted refunds, kept here, of transfer `id` (at most a leg's worth per leg; refunds are
/// few, and found by a partial index).
pub fn refunds_of(conn: &Connection, id: &TransferId) -> Result<Vec<bank_core::ledger::PixLeg>> {
    let mut stmt = conn.prepare_cached("SELECT body FROM pix_legs WHERE refund_of = ?1 ORDER BY transfer_id, leg")?;
    let rows = stmt.query_map([id.0.to_string()], |r| r.get::<_, String>(0))?;
    let mut legs = Vec::new();
    for body in rows {
        legs.push(serde_json::from_str(&body?).map_err(|e| StorageError::Corrupt(e.to_string()))?);
    }
    Ok(legs)
}
