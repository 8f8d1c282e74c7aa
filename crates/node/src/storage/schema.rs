//! The SQLite schema and its migrations, versioned by `PRAGMA user_version`.
//!
//! Tables are STRICT and carry CHECK constraints that restate the ledger's invariants, so a bug
//! that slipped past the core's assertions still cannot commit a negative balance.

use rusqlite::Connection;

/// Each migration moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE accounts (
    number        TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('individual', 'company', 'joint')),
    holders       TEXT NOT NULL,
    email         TEXT NOT NULL UNIQUE,
    phone         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    posted_cents  INTEGER NOT NULL CHECK (posted_cents >= 0),
    held_cents    INTEGER NOT NULL CHECK (held_cents >= 0 AND held_cents <= posted_cents)
) STRICT;

CREATE TABLE account_holders (
    document TEXT NOT NULL,
    account  TEXT NOT NULL REFERENCES accounts (number),
    PRIMARY KEY (document, account)
) STRICT, WITHOUT ROWID;

CREATE TABLE pix_keys (
    seq     INTEGER PRIMARY KEY,
    key     TEXT NOT NULL UNIQUE,
    type    TEXT NOT NULL CHECK (type IN ('cpf', 'cnpj', 'email', 'phone', 'random')),
    account TEXT NOT NULL REFERENCES accounts (number)
) STRICT;

-- The ledger's lines, appended in order. There is deliberately no index by account: each insert
-- would then dirty a random index page per account (a whole page into the WAL per line). (Until
-- version 5 the per-account index lived in memory; since, each line links to its account's
-- previous one, see the fifth migration.)
CREATE TABLE entries (
    id           INTEGER PRIMARY KEY,
    account      TEXT NOT NULL,
    transfer_id  TEXT,
    kind         TEXT NOT NULL CHECK (kind IN ('deposit', 'withdrawal', 'transfer_out', 'transfer_in')),
    method       TEXT CHECK (method IN ('cash', 'boleto', 'qr')),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    status       TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    counterparty TEXT,
    created_at   INTEGER NOT NULL
) STRICT;

-- Transfer ids are UUIDv7 (time-ordered), so inserts append.
CREATE TABLE transfers (
    id         TEXT PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Looked up in memory only; on disk it is a log read whole at start, so it has no key index
-- (random idempotency keys would scatter every insert across the index).
CREATE TABLE idempotency (
    seq         INTEGER PRIMARY KEY,
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    entry_id    INTEGER,
    transfer_id TEXT,
    CHECK ((entry_id IS NULL) <> (transfer_id IS NULL))
) STRICT;

CREATE TABLE holds (
    transfer_id TEXT PRIMARY KEY,
    body        TEXT NOT NULL,
    placed_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE decisions (
    transfer_id TEXT PRIMARY KEY,
    decision    TEXT NOT NULL CHECK (decision IN ('committed', 'aborted'))
) STRICT;

CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    account    TEXT NOT NULL REFERENCES accounts (number),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
) STRICT;
"#,
    // Two-phase commit: the coordinator's newest record of each transaction it runs.
    r#"
CREATE TABLE coordinator_records (
    tx    TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('preparing', 'decided', 'finished')),
    body  TEXT NOT NULL
) STRICT, WITHOUT ROWID;
"#,
    // The consortium directory: keys of accounts at other banks (this bank's own are `pix_keys`).
    r#"
CREATE TABLE remote_keys (
    key             TEXT PRIMARY KEY,
    bank_id         INTEGER NOT NULL,
    account         TEXT NOT NULL,
    holder_name     TEXT NOT NULL,
    masked_document TEXT NOT NULL
) STRICT;
"#,
    // The token ring: what this bank must remember of it across a restart (one row), and the
    // cross-bank transactions planned here that wait for the token (begun ones leave the queue).
    r#"
CREATE TABLE ring_state (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    body TEXT NOT NULL
) STRICT;

CREATE TABLE ring_queue (
    tx        TEXT PRIMARY KEY,
    legs      TEXT NOT NULL,
    queued_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
"#,
    // A cost that does not grow with history (issue 13).
    //
    // Statements: each line names its account's previous line (`prev_id`) and each account its
    // newest (`last_entry_id`), so a page is a walk of primary-key lookups, with no index by
    // account (which would dirty a random index page per line) and nothing in memory. A
    // posting writes only appended rows and the account row it already updates.
    //
    // Idempotency records: kept on disk for their retention period (`recorded_at`), looked up
    // by key when memory's bounded cache no longer has them, and expired oldest first (by
    // `seq`, which follows `recorded_at`). The key is stored as 16 bytes, so its index (the one
    // random-order insert of a request) is as narrow as it can be. Records from before this
    // version are stamped with the migration's time, so they are kept a full period from now.
    r#"
ALTER TABLE entries ADD COLUMN prev_id INTEGER;
ALTER TABLE accounts ADD COLUMN last_entry_id INTEGER;

WITH chain AS (SELECT id, LAG(id) OVER (PARTITION BY account ORDER BY id) AS prev FROM entries)
UPDATE entries SET prev_id = chain.prev FROM chain WHERE chain.id = entries.id AND chain.prev IS NOT NULL;

UPDATE accounts SET last_entry_id = newest.id
FROM (SELECT account, MAX(id) AS id FROM entries GROUP BY account) AS newest
WHERE newest.account = accounts.number;

CREATE TABLE idempotency_records (
    seq         INTEGER PRIMARY KEY,
    key         BLOB NOT NULL CHECK (length(key) = 16),
    scope       TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    entry_id    INTEGER,
    transfer_id TEXT,
    recorded_at INTEGER NOT NULL,
    CHECK ((entry_id IS NULL) <> (transfer_id IS NULL))
) STRICT;

INSERT INTO idempotency_records (seq, key, scope, fingerprint, entry_id, transfer_id, recorded_at)
SELECT seq, unhex(replace(key, '-', '')), scope, fingerprint, entry_id, transfer_id,
       CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
FROM idempotency ORDER BY seq;

DROP TABLE idempotency;

CREATE INDEX idempotency_by_key ON idempotency_records (key);
"#,
    // Pix receipts and refunds (issue 12). Statement lines get the refund kinds and name the
    // transfer a refund refunds (SQLite cannot widen a CHECK, so the table is copied once).
    // `pix_legs` keeps every posted Pix leg touching this bank (both ends keep it, for receipts);
    // at the receiver's bank it also holds what is refunded and what refunds in flight reserve,
    // with the refund invariant restated as a CHECK. `refunds_open` lists the refunds begun here
    // and not settled, with the leg and amount each reserves.
    r#"
CREATE TABLE entries_v6 (
    id           INTEGER PRIMARY KEY,
    account      TEXT NOT NULL,
    transfer_id  TEXT,
    kind         TEXT NOT NULL CHECK (kind IN ('deposit', 'withdrawal', 'transfer_out', 'transfer_in',
                                               'refund_out', 'refund_in')),
    method       TEXT CHECK (method IN ('cash', 'boleto', 'qr')),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    status       TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    counterparty TEXT,
    created_at   INTEGER NOT NULL,
    prev_id      INTEGER,
    refund_of    TEXT
) STRICT;

INSERT INTO entries_v6 (id, account, transfer_id, kind, method, amount_cents, status, counterparty, created_at, prev_id)
SELECT id, account, transfer_id, kind, method, amount_cents, status, counterparty, created_at, prev_id FROM entries;

DROP TABLE entries;
ALTER TABLE entries_v6 RENAME TO entries;

CREATE TABLE pix_legs (
    transfer_id    TEXT NOT NULL,
    leg            INTEGER NOT NULL,
    body           TEXT NOT NULL,
    to_bank        INTEGER NOT NULL,
    refund_of      TEXT,
    amount_cents   INTEGER NOT NULL CHECK (amount_cents > 0),
    refunded_cents INTEGER NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0),
    reserved_cents INTEGER NOT NULL DEFAULT 0 CHECK (reserved_cents >= 0),
    created_at     INTEGER NOT NULL,
    CHECK (refunded_cents + reserved_cents <= amount_cents),
    PRIMARY KEY (transfer_id, leg)
) STRICT, WITHOUT ROWID;

CREATE INDEX pix_legs_by_refund_of ON pix_legs (refund_of) WHERE refund_of IS NOT NULL;

CREATE TABLE refunds_open (
    refund       TEXT PRIMARY KEY,
    transfer_id  TEXT NOT NULL,
    leg          INTEGER NOT NULL,
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0)
) STRICT, WITHOUT ROWID;
"#,
    // Balance rows are checkpoints (issue 13, item 5). A batch no longer rewrites the `accounts`
    // row of every account it touches (with 10,000 accounts, a random page of the wide table per
    // account: most of a commit's WAL). It appends one `balance_journal` row instead, the new
    // balances and newest lines of its accounts (JSON `[[number, posted, held, last_entry_id]]`),
    // into dense append-only pages. Now and then the writer copies the balances into `accounts` and
    // empties the journal in the same transaction; a start applies the journal over the rows.
    r#"
CREATE TABLE balance_journal (
    seq  INTEGER PRIMARY KEY,
    body TEXT NOT NULL
) STRICT;
"#,
];

/// Brings the database to the newest schema, each step in its own transaction. A database of a
/// newer schema than this build knows is refused, unchanged: a newer build wrote it, and this one
/// would misread it (since version 7 the balance rows are only checkpoints, and the newest
/// balances are in `balance_journal`, which an older build ignores).
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if version > MIGRATIONS.len() {
        let message = format!(
            "the database has schema version {version}, newer than this build's {}: a newer build \
             wrote it; run that build (or newer)",
            MIGRATIONS.len()
        );
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(message),
        ));
    }
    migrate_to(conn, MIGRATIONS.len())
}

/// Brings the database to schema `target` (tests build databases of older versions with it).
pub(crate) fn migrate_to(conn: &mut Connection, target: usize) -> rusqlite::Result<()> {
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    for (i, sql) in MIGRATIONS.iter().enumerate().take(target).skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// Pragmas every connection uses: WAL, full fsync on commit, foreign keys, a busy timeout.
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk when COMMIT returns. NORMAL can lose acknowledged commits.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // A page cache for the hot B-tree pages of a busy bank (negative = KiB). Not larger: SQLite
    // walks the cache's hash table at every commit.
    conn.pragma_update(None, "cache_size", -16 * 1024)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_of_a_newer_schema_is_refused_and_left_unchanged() {
        let mut conn = Connection::open_in_memory().expect("db");
        migrate(&mut conn).expect("the newest schema");
        let newer = MIGRATIONS.len() as i64 + 1;
        conn.pragma_update(None, "user_version", newer).expect("a newer build's version");
        let refused = migrate(&mut conn).expect_err("a newer schema was accepted");
        assert!(refused.to_string().contains("newer than this build"), "{refused}");
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
        assert_eq!(version, newer);
        migrate(&mut Connection::open_in_memory().expect("db")).expect("a new database migrates");
    }
}
