//! `GET /interbank/v1/audit`: the consortium operator's read of this bank (DESIGN.md §6 "Audit",
//! §8), for `bank audit`.
//!
//! Only the operator may call it: the request must be signed like an inter-bank request, but
//! with the operator key of the consortium file and the sender id 0
//! ([`super::sign::OPERATOR`]); a member bank's signature is refused here, as the operator's is on
//! every member route (see [`super::extract::OperatorSigned`]). Stale and replayed requests are
//! refused as everywhere else.
//!
//! # What it answers
//!
//! One JSON object, [`AuditSnapshot`], read in **one read transaction** (`BEGIN … COMMIT` on a
//! read-only connection), so every part of it comes from the same committed state:
//!
//! - `totals`: account count, Σ posted, Σ held, Σ deposits and Σ withdrawals (completed `entries`
//!   of kind `deposit` / `withdrawal`; transfer entries do not count), the number of holds, the
//!   decisions by outcome, the coordinator records by state and the number of Pix keys;
//! - `accounts` (number, posted, held), `holds` (transfer id, when placed, the stored body as
//!   JSON), `decisions` (transfer id → `committed` / `aborted`), `coordinator_records` (tx, state,
//!   body as JSON; an empty list when this bank's schema has no such table), `pix_keys` (key, type,
//!   account and owner bank) — the bank's whole directory: its own keys (`pix_keys`, owned by this
//!   bank, or by the bank of its `bank_id` column when the schema has one) and, when the schema has
//!   the consortium directory table `remote_keys`, the other banks' keys it knows (type inferred
//!   from the key), merged in key order;
//! - `pix_legs` (when the schema has the table): every posted Pix leg kept here, with its payer's and
//!   receiver's banks, the leg it refunds (for a refund) and, at the receiver's bank, what is
//!   refunded and reserved of it — for the check that no Pix is refunded beyond its amount;
//! - `schema`: which of those optional tables/columns this bank has.
//!
//! # Bounds and paging
//!
//! Every list holds at most `limit` rows (default and maximum [`PAGE_ROWS_MAX`]), in key order;
//! a list with more has `next` set to the last key it holds, and `truncated` is true. The rest is
//! read with `?list=<name>&after=<next>` (only that list, no totals), each page in its own read
//! transaction: lists of more than one page are therefore not all from one instant (accounts'
//! balances are each consistent; decisions are never changed once written). `?list=totals` answers
//! the totals alone (what `bank audit` polls while it waits for in-flight work to settle).
//!
//! Every stored text is passed through as stored (bodies parsed as JSON when they are JSON, else
//! given as a string), so the audit reads whatever the schema holds without trusting the code that
//! wrote it.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::Query;
use bank_core::ids::BankId;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::extract::OperatorSigned;
use super::sign::unix_now_ms;
use crate::problem::{ApiError, invalid};
use crate::storage::Result;

/// Path of the audit route.
pub const AUDIT_PATH: &str = "/interbank/v1/audit";
/// Most rows of one list in one answer (and the default).
pub const PAGE_ROWS_MAX: usize = 100_000;

/// A list of the snapshot, for `?list=`; `totals` asks for the totals alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditList {
    Totals,
    Accounts,
    Holds,
    Decisions,
    CoordinatorRecords,
    PixKeys,
    PixLegs,
}

impl AuditList {
    /// The paged lists, in the order of the snapshot.
    pub const PAGED: [AuditList; 6] = [
        AuditList::Accounts,
        AuditList::Holds,
        AuditList::Decisions,
        AuditList::CoordinatorRecords,
        AuditList::PixKeys,
        AuditList::PixLegs,
    ];

    /// The name used in `?list=`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditList::Totals => "totals",
            AuditList::Accounts => "accounts",
            AuditList::Holds => "holds",
            AuditList::Decisions => "decisions",
            AuditList::CoordinatorRecords => "coordinator_records",
            AuditList::PixKeys => "pix_keys",
            AuditList::PixLegs => "pix_legs",
        }
    }
}

/// The query of the audit route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// One list only (a next page), or `totals`; absent: totals and the first page of every list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<AuditList>,
    /// The `next` of the previous page of `list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Rows per list, 1 to [`PAGE_ROWS_MAX`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl AuditQuery {
    /// The path and query of this request (what is signed and sent).
    pub fn path_and_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(list) = self.list {
            parts.push(format!("list={}", list.as_str()));
        }
        if let Some(after) = &self.after {
            parts.push(format!("after={}", percent_encode(after)));
        }
        if let Some(limit) = self.limit {
            parts.push(format!("limit={limit}"));
        }
        if parts.is_empty() { AUDIT_PATH.to_string() } else { format!("{AUDIT_PATH}?{}", parts.join("&")) }
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for a query value.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The answer of the audit route (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditSnapshot {
    pub bank_id: BankId,
    pub bank_name: String,
    /// This bank's clock when it answered (Unix ms).
    pub as_of_ms: u64,
    pub schema: AuditSchema,
    /// Absent on a page of one list.
    pub totals: Option<AuditTotals>,
    pub accounts: Option<Page<AuditAccount>>,
    pub holds: Option<Page<AuditHold>>,
    pub decisions: Option<Page<AuditDecision>>,
    pub coordinator_records: Option<Page<AuditCoordinatorRecord>>,
    pub pix_keys: Option<Page<AuditPixKey>>,
    /// Absent from banks whose schema has no Pix legs (and on pages of other lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pix_legs: Option<Page<AuditPixLeg>>,
    /// True when some list of this answer has a `next` page.
    pub truncated: bool,
}

/// Which optional parts this bank's schema has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSchema {
    /// The table `coordinator_records` exists.
    #[serde(default)]
    pub coordinator_records: bool,
    /// `pix_keys` has a `bank_id` column: it is the consortium-wide directory, not only this
    /// bank's keys.
    #[serde(default)]
    pub pix_keys_bank_id: bool,
    /// The table `remote_keys` (other banks' keys) exists: `pix_keys` of the answer is the
    /// consortium-wide directory.
    #[serde(default)]
    pub remote_keys: bool,
    /// The table `pix_legs` (posted Pix legs, refunds) exists.
    #[serde(default)]
    pub pix_legs: bool,
}

impl AuditSchema {
    /// The bank keeps the whole consortium's key directory, not only its own keys.
    pub fn directory(&self) -> bool {
        self.pix_keys_bank_id || self.remote_keys
    }
}

/// Sums and counts over the whole bank, from the same read as the lists of the answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditTotals {
    pub accounts: u64,
    pub posted_cents: i64,
    pub held_cents: i64,
    /// Σ of completed deposit entries.
    pub deposits_cents: i64,
    /// Σ of completed withdrawal entries.
    pub withdrawals_cents: i64,
    pub holds: u64,
    /// Decisions by outcome (`committed`, `aborted`).
    pub decisions: BTreeMap<String, u64>,
    /// Coordinator records by state (empty without the table).
    pub coordinator_records: BTreeMap<String, u64>,
    pub pix_keys: u64,
}

/// One page of a list: `next` is the key to pass as `after` for the rest, `None` at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAccount {
    pub number: String,
    pub posted_cents: i64,
    pub held_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditHold {
    pub transfer_id: String,
    pub placed_at: i64,
    /// The stored hold set (debits, credits, coordinator, expires_at, …) as JSON.
    pub body: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditDecision {
    pub transfer_id: String,
    pub decision: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditCoordinatorRecord {
    pub tx: String,
    pub state: Option<String>,
    pub body: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPixKey {
    pub key: String,
    #[serde(rename = "type")]
    pub key_type: String,
    pub account: String,
    /// The owner bank: the `bank_id` column when there is one, else the reporting bank.
    pub bank_id: BankId,
}

/// A posted Pix leg kept by this bank (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPixLeg {
    /// `transfer_id:leg` (two digits): the paging key.
    pub id: String,
    pub transfer_id: String,
    pub leg: u16,
    pub from_bank: BankId,
    pub to_bank: BankId,
    pub amount_cents: i64,
    /// For a refund: the transfer and leg it refunds.
    #[serde(default)]
    pub refund_of: Option<String>,
    #[serde(default)]
    pub refund_of_leg: Option<u16>,
    /// At the receiver's bank: the sum of completed refunds, and of refunds in flight.
    pub refunded_cents: i64,
    pub reserved_cents: i64,
}

/// `GET /interbank/v1/audit` (operator only).
pub async fn audit(state: super::State, signed: OperatorSigned) -> std::result::Result<Json<AuditSnapshot>, ApiError> {
    let Query(query) = Query::<AuditQuery>::try_from_uri(&signed.uri)
        .map_err(|e| invalid(format!("invalid audit query: {}", e.body_text())))?;
    check_query(&query).map_err(invalid)?;
    let (bank_id, bank_name) = (state.bank_id, state.bank_name.clone());
    let snapshot = state.reads.run(move |conn| read_snapshot(conn, bank_id, &bank_name, &query, unix_now_ms())).await?;
    Ok(Json(snapshot))
}

/// Refuses a query that makes no sense, with the reason.
pub fn check_query(query: &AuditQuery) -> std::result::Result<(), String> {
    if let Some(limit) = query.limit
        && !(1..=PAGE_ROWS_MAX).contains(&limit)
    {
        return Err(format!("limit must be 1 to {PAGE_ROWS_MAX}"));
    }
    if query.after.is_some() && matches!(query.list, None | Some(AuditList::Totals)) {
        return Err("after needs list=<accounts|holds|decisions|coordinator_records|pix_keys|pix_legs>".into());
    }
    Ok(())
}

/// Reads the snapshot `query` asks for in one read transaction of `conn`.
pub fn read_snapshot(
    conn: &Connection,
    bank_id: BankId,
    bank_name: &str,
    query: &AuditQuery,
    now_ms: u64,
) -> Result<AuditSnapshot> {
    let limit = query.limit.unwrap_or(PAGE_ROWS_MAX).clamp(1, PAGE_ROWS_MAX);
    let after = query.after.as_deref().unwrap_or("");
    // BEGIN: every statement below reads the same committed state (WAL snapshot); dropping it
    // without commit (an error) rolls back, which for a reader only ends the read.
    let tx = conn.unchecked_transaction()?;
    let schema = read_schema(&tx)?;
    let wants = |list: AuditList| match query.list {
        None => true,
        Some(asked) => asked == list,
    };
    let totals = matches!(query.list, None | Some(AuditList::Totals)).then(|| totals(&tx, schema)).transpose()?;
    let accounts = wants(AuditList::Accounts).then(|| accounts(&tx, after, limit)).transpose()?;
    let holds = wants(AuditList::Holds).then(|| holds(&tx, after, limit)).transpose()?;
    let decisions = wants(AuditList::Decisions).then(|| decisions(&tx, after, limit)).transpose()?;
    let coordinator_records = wants(AuditList::CoordinatorRecords)
        .then(|| if schema.coordinator_records { coordinator_records(&tx, after, limit) } else { Ok(empty()) })
        .transpose()?;
    let pix_keys = wants(AuditList::PixKeys).then(|| pix_keys(&tx, bank_id, schema, after, limit)).transpose()?;
    let pix_legs = (schema.pix_legs && wants(AuditList::PixLegs)).then(|| pix_legs(&tx, after, limit)).transpose()?;
    tx.commit()?;
    let truncated = [
        accounts.as_ref().map(|p| p.next.is_some()),
        holds.as_ref().map(|p| p.next.is_some()),
        decisions.as_ref().map(|p| p.next.is_some()),
        coordinator_records.as_ref().map(|p| p.next.is_some()),
        pix_keys.as_ref().map(|p| p.next.is_some()),
        pix_legs.as_ref().map(|p| p.next.is_some()),
    ]
    .into_iter()
    .flatten()
    .any(|more| more);
    Ok(AuditSnapshot {
        bank_id,
        bank_name: bank_name.to_string(),
        as_of_ms: now_ms,
        schema,
        totals,
        accounts,
        holds,
        decisions,
        coordinator_records,
        pix_keys,
        pix_legs,
        truncated,
    })
}

fn empty<T>() -> Page<T> {
    Page { items: Vec::new(), next: None }
}

fn read_schema(conn: &Connection) -> Result<AuditSchema> {
    Ok(AuditSchema {
        coordinator_records: table_exists(conn, "coordinator_records")?,
        pix_keys_bank_id: has_column(conn, "pix_keys", "bank_id")?,
        remote_keys: table_exists(conn, "remote_keys")?,
        pix_legs: table_exists(conn, "pix_legs")?,
    })
}

fn table_exists(conn: &Connection, table: &str) -> Result<bool> {
    let found = conn
        .prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .query_row([table], |_| Ok(()))
        .optional()?;
    Ok(found.is_some())
}

fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool> {
    let found = conn
        .prepare_cached("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
        .query_row([table, column], |_| Ok(()))
        .optional()?;
    Ok(found.is_some())
}

fn totals(conn: &Connection, schema: AuditSchema) -> Result<AuditTotals> {
    // Balance rows are checkpoints: the balances are read as of this snapshot.
    let (accounts, posted_cents, held_cents) = conn.query_row(
        &format!(
            "{} SELECT COUNT(*), COALESCE(SUM(posted_cents), 0), COALESCE(SUM(held_cents), 0) FROM balances",
            crate::storage::CURRENT_BALANCES
        ),
        [],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)),
    )?;
    let (deposits_cents, withdrawals_cents) = conn.query_row(
        "SELECT COALESCE(SUM(CASE WHEN kind = 'deposit' THEN amount_cents END), 0), \
                COALESCE(SUM(CASE WHEN kind = 'withdrawal' THEN amount_cents END), 0) \
         FROM entries WHERE status = 'completed' AND kind IN ('deposit', 'withdrawal')",
        [],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
    )?;
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
    let holds = count("SELECT COUNT(*) FROM holds")?;
    let mut pix_keys = count("SELECT COUNT(*) FROM pix_keys")?;
    if schema.remote_keys {
        pix_keys += count("SELECT COUNT(*) FROM remote_keys")?;
    }
    let decisions = grouped(conn, "SELECT decision, COUNT(*) FROM decisions GROUP BY decision")?;
    let coordinator_records = if schema.coordinator_records {
        let state = if has_column(conn, "coordinator_records", "state")? { "state" } else { "NULL" };
        grouped(
            conn,
            &format!("SELECT COALESCE(CAST({state} AS TEXT), 'unknown'), COUNT(*) FROM coordinator_records GROUP BY 1"),
        )?
    } else {
        BTreeMap::new()
    };
    Ok(AuditTotals {
        accounts: accounts as u64,
        posted_cents,
        held_cents,
        deposits_cents,
        withdrawals_cents,
        holds: holds as u64,
        decisions,
        coordinator_records,
        pix_keys: pix_keys as u64,
    })
}

fn grouped(conn: &Connection, sql: &str) -> Result<BTreeMap<String, u64>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (key, n) = row?;
        *out.entry(key).or_insert(0) += n as u64;
    }
    Ok(out)
}

/// Runs a page query (`?1` = after, `?2` = limit + 1) and splits off the one-past row into `next`.
fn page<T>(
    conn: &Connection,
    sql: &str,
    after: &str,
    limit: usize,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    key: impl Fn(&T) -> &str,
) -> Result<Page<T>> {
    let mut stmt = conn.prepare(sql)?;
    let mut items = stmt.query_map(params![after, (limit + 1) as i64], row)?.collect::<rusqlite::Result<Vec<T>>>()?;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| key(last).to_string())
    } else {
        None
    };
    Ok(Page { items, next })
}

fn accounts(conn: &Connection, after: &str, limit: usize) -> Result<Page<AuditAccount>> {
    let sql = format!(
        "{} SELECT number, posted_cents, held_cents FROM balances WHERE number > ?1 ORDER BY number LIMIT ?2",
        crate::storage::CURRENT_BALANCES
    );
    page(
        conn,
        &sql,
        after,
        limit,
        |r| Ok(AuditAccount { number: r.get(0)?, posted_cents: r.get(1)?, held_cents: r.get(2)? }),
        |a| &a.number,
    )
}

/// Stored JSON as a value; text that is not JSON is kept as a string (the audit shows it, it does
/// not fail on it).
fn json_or_text(text: Option<String>) -> serde_json::Value {
    match text {
        None => serde_json::Value::Null,
        Some(text) => serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    }
}

fn holds(conn: &Connection, after: &str, limit: usize) -> Result<Page<AuditHold>> {
    page(
        conn,
        "SELECT transfer_id, placed_at, body FROM holds WHERE transfer_id > ?1 ORDER BY transfer_id LIMIT ?2",
        after,
        limit,
        |r| Ok(AuditHold { transfer_id: r.get(0)?, placed_at: r.get(1)?, body: json_or_text(r.get(2)?) }),
        |h| &h.transfer_id,
    )
}

fn pix_legs(conn: &Connection, after: &str, limit: usize) -> Result<Page<AuditPixLeg>> {
    page(
        conn,
        "SELECT transfer_id || ':' || printf('%02d', leg) AS id, transfer_id, leg, \
                CAST(json_extract(body, '$.from.bank_id') AS INTEGER), to_bank, amount_cents, refund_of, \
                json_extract(body, '$.refund_of.leg'), refunded_cents, reserved_cents \
         FROM pix_legs WHERE transfer_id || ':' || printf('%02d', leg) > ?1 ORDER BY transfer_id, leg LIMIT ?2",
        after,
        limit,
        |r| {
            Ok(AuditPixLeg {
                id: r.get(0)?,
                transfer_id: r.get(1)?,
                leg: r.get(2)?,
                from_bank: BankId(r.get(3)?),
                to_bank: BankId(r.get(4)?),
                amount_cents: r.get(5)?,
                refund_of: r.get(6)?,
                refund_of_leg: r.get(7)?,
                refunded_cents: r.get(8)?,
                reserved_cents: r.get(9)?,
            })
        },
        |l| &l.id,
    )
}

fn decisions(conn: &Connection, after: &str, limit: usize) -> Result<Page<AuditDecision>> {
    page(
        conn,
        "SELECT transfer_id, decision FROM decisions WHERE transfer_id > ?1 ORDER BY transfer_id LIMIT ?2",
        after,
        limit,
        |r| Ok(AuditDecision { transfer_id: r.get(0)?, decision: r.get(1)? }),
        |d| &d.transfer_id,
    )
}

fn coordinator_records(conn: &Connection, after: &str, limit: usize) -> Result<Page<AuditCoordinatorRecord>> {
    // Columns as the table has them: `tx` is the key; `state` and `body` may be missing.
    let column = |name: &str| -> Result<&'static str> {
        Ok(if has_column(conn, "coordinator_records", name)? {
            if name == "state" { "CAST(state AS TEXT)" } else { "CAST(body AS TEXT)" }
        } else {
            "NULL"
        })
    };
    let (state, body) = (column("state")?, column("body")?);
    page(
        conn,
        &format!(
            "SELECT CAST(tx AS TEXT), {state}, {body} FROM coordinator_records WHERE CAST(tx AS TEXT) > ?1 \
             ORDER BY CAST(tx AS TEXT) LIMIT ?2"
        ),
        after,
        limit,
        |r| Ok(AuditCoordinatorRecord { tx: r.get(0)?, state: r.get(1)?, body: json_or_text(r.get(2)?) }),
        |c| &c.tx,
    )
}

/// The directory: `pix_keys` and, when present, `remote_keys`, merged by key. Each table is read
/// by its key index up to one row past the page, so a page costs `limit` rows of each at most.
fn pix_keys(
    conn: &Connection,
    reporter: BankId,
    schema: AuditSchema,
    after: &str,
    limit: usize,
) -> Result<Page<AuditPixKey>> {
    let mut own = own_keys(conn, reporter, schema, after, limit)?;
    if !schema.remote_keys {
        return Ok(own);
    }
    let remote = remote_keys(conn, after, limit)?;
    // Merge the two sorted pages (a key in both tables appears twice: the audit reports that),
    // then cut at `limit`, the next page starting after the last key kept.
    let mut items = Vec::with_capacity(own.items.len() + remote.items.len());
    let (mut a, mut b) = (own.items.drain(..).peekable(), remote.items.into_iter().peekable());
    loop {
        let take_own = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.key <= y.key,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_own { a.next() } else { b.next() };
        items.extend(next);
    }
    // Either table may have had more rows than it returned: beyond the smallest such cut nothing
    // is known, so the page ends there.
    let cut = [own.next.as_deref(), remote.next.as_deref()].into_iter().flatten().min().map(str::to_owned);
    if let Some(cut) = &cut {
        items.retain(|k| k.key.as_str() <= cut.as_str());
    }
    let mut next = cut;
    if items.len() > limit {
        // Cut at `limit`, but never between the two rows of a key in both tables (the next page
        // starts after the last key, so the second row would be lost).
        let boundary = items[limit].key.clone();
        let mut end = limit;
        while end > 0 && items[end - 1].key == boundary {
            end -= 1;
        }
        if end == 0 {
            end = limit;
            while end < items.len() && items[end].key == boundary {
                end += 1;
            }
        }
        items.truncate(end);
        next = items.last().map(|k| k.key.clone());
    }
    Ok(Page { items, next })
}

fn remote_keys(conn: &Connection, after: &str, limit: usize) -> Result<Page<AuditPixKey>> {
    page(
        conn,
        "SELECT key, bank_id, account FROM remote_keys WHERE key > ?1 ORDER BY key LIMIT ?2",
        after,
        limit,
        |r| {
            let key: String = r.get(0)?;
            let key_type = bank_core::pixkey::PixKey::parse(&key)
                .map_or_else(|_| "unknown".to_string(), |k| k.key_type().as_str().to_string());
            let bank_id = match r.get::<_, rusqlite::types::Value>(1)? {
                rusqlite::types::Value::Integer(id) => u32::try_from(id).unwrap_or(u32::MAX),
                rusqlite::types::Value::Text(text) => text.trim().parse().unwrap_or(u32::MAX),
                _ => u32::MAX,
            };
            Ok(AuditPixKey { key, key_type, account: r.get(2)?, bank_id: BankId(bank_id) })
        },
        |k| &k.key,
    )
}

fn own_keys(
    conn: &Connection,
    reporter: BankId,
    schema: AuditSchema,
    after: &str,
    limit: usize,
) -> Result<Page<AuditPixKey>> {
    let bank = if schema.pix_keys_bank_id { "bank_id" } else { "NULL" };
    page(
        conn,
        &format!("SELECT key, type, account, {bank} FROM pix_keys WHERE key > ?1 ORDER BY key LIMIT ?2"),
        after,
        limit,
        |r| {
            // Lenient about the column's type: an integer or its text; anything else (or NULL)
            // is taken as this bank.
            let owner = match r.get::<_, rusqlite::types::Value>(3)? {
                rusqlite::types::Value::Integer(id) => u32::try_from(id).ok(),
                rusqlite::types::Value::Text(text) => text.trim().parse().ok(),
                _ => None,
            };
            Ok(AuditPixKey {
                key: r.get(0)?,
                key_type: r.get(1)?,
                account: r.get(2)?,
                bank_id: owner.map_or(reporter, BankId),
            })
        },
        |k| &k.key,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bank database with the node's schema (migrated by the writer's open) and some rows.
    fn database() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::storage::open_writer(dir.path(), BankId(4)).expect("open");
        conn.execute_batch(
            "INSERT INTO accounts (number, kind, holders, email, phone, password_hash, created_at, posted_cents, held_cents) VALUES ('000001-7', 'individual', '[]', 'a@x', '+5575999990000', 'h', 1, 1000, 200);
             INSERT INTO accounts (number, kind, holders, email, phone, password_hash, created_at, posted_cents, held_cents) VALUES ('000002-4', 'individual', '[]', 'b@x', '+5575999990000', 'h', 1, 500, 0);
             INSERT INTO accounts (number, kind, holders, email, phone, password_hash, created_at, posted_cents, held_cents) VALUES ('000003-1', 'individual', '[]', 'c@x', '+5575999990000', 'h', 1, 0, 0);
             INSERT INTO entries (account, kind, method, amount_cents, status, created_at)
                 VALUES ('000001-7', 'deposit', 'cash', 2000, 'completed', 1),
                        ('000001-7', 'withdrawal', NULL, 300, 'completed', 2),
                        ('000001-7', 'transfer_out', NULL, 700, 'completed', 3),
                        ('000002-4', 'transfer_in', NULL, 700, 'completed', 3);
             INSERT INTO pix_keys (key, type, account) VALUES ('a@x', 'email', '000001-7'), ('b@x', 'email', '000002-4');
             INSERT INTO holds VALUES ('0190-a', '{\"debits\":[[\"000001-7\",200]],\"coordinator\":2}', 5);
             INSERT INTO decisions VALUES ('0190-b', 'committed'), ('0190-c', 'aborted'), ('0190-d', 'committed');",
        )
        .expect("rows");
        (dir, conn)
    }

    fn read(conn: &Connection, query: AuditQuery) -> AuditSnapshot {
        read_snapshot(conn, BankId(4), "Formula", &query, 7).expect("snapshot")
    }

    #[test]
    fn a_snapshot_has_totals_and_every_list() {
        let (_dir, conn) = database();
        // A bank of a stage before the coordinator records and the directory (both optional to
        // the audit).
        conn.execute_batch("DROP TABLE IF EXISTS coordinator_records; DROP TABLE IF EXISTS remote_keys").expect("drop");
        let s = read(&conn, AuditQuery::default());
        assert_eq!((s.bank_id, s.bank_name.as_str(), s.as_of_ms), (BankId(4), "Formula", 7));
        assert!(!s.schema.coordinator_records && !s.schema.pix_keys_bank_id);
        let totals = s.totals.expect("totals");
        assert_eq!((totals.accounts, totals.posted_cents, totals.held_cents), (3, 1500, 200));
        // Transfer entries do not count.
        assert_eq!((totals.deposits_cents, totals.withdrawals_cents), (2000, 300));
        assert_eq!((totals.holds, totals.pix_keys), (1, 2));
        assert_eq!(totals.decisions, BTreeMap::from([("aborted".into(), 1), ("committed".into(), 2)]));
        assert!(totals.coordinator_records.is_empty());
        let accounts = s.accounts.expect("accounts");
        assert_eq!(accounts.items.len(), 3);
        assert_eq!(accounts.items[0], AuditAccount { number: "000001-7".into(), posted_cents: 1000, held_cents: 200 });
        let holds = s.holds.expect("holds");
        assert_eq!(holds.items[0].body["coordinator"], 2, "the body is JSON");
        assert_eq!(s.decisions.expect("decisions").items.len(), 3);
        assert_eq!(s.coordinator_records.expect("records"), Page { items: vec![], next: None }, "no table: empty");
        let keys = s.pix_keys.expect("keys");
        assert!(keys.items.iter().all(|k| k.bank_id == BankId(4)), "without bank_id the reporter owns its keys");
        assert!(!s.truncated);
    }

    #[test]
    fn lists_are_paged_with_a_truncated_flag() {
        let (_dir, conn) = database();
        let first = read(&conn, AuditQuery { limit: Some(2), ..AuditQuery::default() });
        assert!(first.truncated);
        let accounts = first.accounts.expect("accounts");
        assert_eq!(accounts.items.len(), 2);
        assert_eq!(accounts.next.as_deref(), Some("000002-4"));
        assert_eq!(first.decisions.as_ref().expect("decisions").next.as_deref(), Some("0190-c"));
        assert_eq!(first.holds.as_ref().expect("holds").next, None);
        let rest =
            read(&conn, AuditQuery { list: Some(AuditList::Accounts), after: accounts.next.clone(), limit: Some(2) });
        assert!(rest.totals.is_none() && rest.decisions.is_none() && !rest.truncated);
        let page = rest.accounts.expect("accounts");
        assert_eq!(page.items.iter().map(|a| a.number.as_str()).collect::<Vec<_>>(), ["000003-1"]);
        assert_eq!(page.next, None);
        let totals = read(&conn, AuditQuery { list: Some(AuditList::Totals), ..AuditQuery::default() });
        assert!(totals.totals.is_some() && totals.accounts.is_none() && totals.pix_keys.is_none());
    }

    #[test]
    fn optional_tables_and_columns_are_read_when_present() {
        let (_dir, conn) = database();
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF; -- a directory names accounts of other banks
             CREATE TABLE IF NOT EXISTS coordinator_records (tx TEXT PRIMARY KEY, state TEXT, body TEXT);
             INSERT INTO coordinator_records VALUES
                 ('0190-b', 'finished', '{\"finished\":{\"tx\":\"0190-b\",\"decision\":\"committed\"}}'),
                 ('0190-e', 'preparing', 'not json');
             DROP TABLE IF EXISTS remote_keys;
             ALTER TABLE pix_keys ADD COLUMN bank_id INTEGER;
             UPDATE pix_keys SET bank_id = 4;
             INSERT INTO pix_keys (key, type, account, bank_id) VALUES ('z@x', 'email', '000009-1', 2);",
        )
        .expect("schema of later stages");
        let s = read(&conn, AuditQuery::default());
        assert!(s.schema.coordinator_records && s.schema.pix_keys_bank_id && s.schema.directory());
        let totals = s.totals.expect("totals");
        assert_eq!(totals.coordinator_records, BTreeMap::from([("finished".into(), 1), ("preparing".into(), 1)]));
        let records = s.coordinator_records.expect("records").items;
        assert_eq!(records[0].body["finished"]["decision"], "committed");
        assert_eq!(records[1].body, serde_json::Value::String("not json".into()), "kept as text");
        let keys = s.pix_keys.expect("keys").items;
        assert_eq!(keys.iter().map(|k| k.bank_id.0).collect::<Vec<_>>(), [4, 4, 2]);
    }

    #[test]
    fn the_directory_merges_own_and_remote_keys_in_pages() {
        let (_dir, conn) = database();
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS remote_keys (key TEXT PRIMARY KEY, bank_id INTEGER NOT NULL, \
                 account TEXT NOT NULL, holder_name TEXT NOT NULL, masked_document TEXT NOT NULL);
             INSERT INTO remote_keys VALUES ('a@x', 2, '000007-3', 'X', '***'), ('c@x', 2, '000007-3', 'X', '***'),
                                            ('d@example.com', 3, '000001-7', 'Y', '***');",
        )
        .expect("directory");
        let all = read(&conn, AuditQuery::default());
        assert!(all.schema.remote_keys && all.schema.directory());
        assert_eq!(all.totals.expect("totals").pix_keys, 5);
        let keys: Vec<(String, u32)> =
            all.pix_keys.expect("keys").items.iter().map(|k| (k.key.clone(), k.bank_id.0)).collect();
        let expected = [("a@x", 4), ("a@x", 2), ("b@x", 4), ("c@x", 2), ("d@example.com", 3)];
        assert_eq!(keys, expected.map(|(k, b)| (k.to_string(), b)), "merged by key; a@x is in both tables");
        // Pages of one row: every row exactly once, a duplicated key never split.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let query = AuditQuery { list: Some(AuditList::PixKeys), after: after.clone(), limit: Some(1) };
            let page = read(&conn, query).pix_keys.expect("keys");
            seen.extend(page.items.iter().map(|k| (k.key.clone(), k.bank_id.0)));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
            assert!(seen.len() <= 5, "paging ends");
        }
        seen.sort();
        let mut expected: Vec<(String, u32)> = expected.map(|(k, b)| (k.to_string(), b)).to_vec();
        expected.sort();
        assert_eq!(seen, expected);
        assert_eq!(read(&conn, AuditQuery::default()).pix_keys.expect("keys").items[4].key_type, "email");
    }

    #[test]
    fn queries_round_trip_and_bad_ones_are_refused() {
        let query = AuditQuery { list: Some(AuditList::PixKeys), after: Some("a b&c=+".into()), limit: Some(5) };
        let pq = query.path_and_query();
        assert_eq!(pq, "/interbank/v1/audit?list=pix_keys&after=a%20b%26c%3D%2B&limit=5");
        let uri: axum::http::Uri = pq.parse().expect("uri");
        assert_eq!(Query::<AuditQuery>::try_from_uri(&uri).expect("parses").0, query);
        assert_eq!(AuditQuery::default().path_and_query(), AUDIT_PATH);
        assert!(check_query(&AuditQuery { limit: Some(0), ..AuditQuery::default() }).is_err());
        assert!(check_query(&AuditQuery { limit: Some(PAGE_ROWS_MAX + 1), ..AuditQuery::default() }).is_err());
        assert!(check_query(&AuditQuery { after: Some("x".into()), ..AuditQuery::default() }).is_err());
        assert!(check_query(&query).is_ok());
        let unknown: axum::http::Uri = "/interbank/v1/audit?lists=accounts".parse().expect("uri");
        assert!(Query::<AuditQuery>::try_from_uri(&unknown).is_err());
    }
}
