//! Pre-loads history into a stopped bank's data directory, for measuring how the bank behaves
//! with millions of ledger lines (`bank bench --preload-entries N --data-dir DIR`).
//!
//! The history is made by the ledger itself — deposits, then one-leg in-bank transfers of one
//! centavo between the bank's existing accounts — and written by the node's own batch writer,
//! so it is what the node would have written: statement chains, transfer records, idempotency
//! records (stamped now, so they count against the retention window) and balances. Money is
//! conserved and `bank audit` holds. Only the durability of the bulk load is relaxed
//! (`synchronous = OFF`, large transactions): it is an offline tool, and a crash mid-way leaves
//! the last committed chunk, each consistent.

use std::path::Path;

use bank_core::ids::{AccountNumber, BankId, Fingerprint, IdempotencyKey, TimestampMs, TransferId};
use bank_core::ledger::{AccountRef, Change, DepositMethod, Destination, Ledger, LegRequest, TransferRequest};
use bank_core::money::Amount;
use rusqlite::{Connection, OptionalExtension};
use uuid::Uuid;

use super::{BatchWriter, LastEntries, Result, StorageError};

/// Accounts the history is spread over at most (the first ones, by number).
pub const PRELOAD_ACCOUNTS_MAX: usize = 1_000;
/// Transfers per transaction of the bulk load.
const CHUNK: u64 = 20_000;
/// What each account receives first: far more than a random walk of one-centavo transfers
/// drifts from it, so transfers practically never fail (one that did would still be consistent).
const SEED_DEPOSIT_CENTS: i64 = 1_000_000;

/// What a preload wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preloaded {
    pub entries: u64,
    pub transfers: u64,
    pub accounts: usize,
}

/// Adds about `entries` ledger lines to the bank in `data_dir` (which must not be running: its
/// lock is taken). `progress` is told the lines written so far after each chunk.
pub fn preload(data_dir: &Path, entries: u64, mut progress: impl FnMut(u64)) -> Result<Preloaded> {
    let _lock = super::lock_data_dir(data_dir)?;
    let bank_id = stored_bank_id(data_dir)?;
    let mut conn = super::open_writer(data_dir, bank_id)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -512 * 1024)?;
    let since = TransferId::first_at(i64::MAX / 4);
    let mut ledger = super::load_ledger(&conn, bank_id, super::Remembered { since, max: 0 })?;
    let mut last_entries = LastEntries::load(&conn)?;
    // Each chunk checkpoints only its accounts: start from current rows and an empty journal.
    super::checkpoint_after_recovery(&mut conn, &ledger, &last_entries)?;
    let mut accounts: Vec<AccountNumber> = ledger.accounts().map(|a| a.number.clone()).collect();
    accounts.sort();
    accounts.truncate(PRELOAD_ACCOUNTS_MAX);
    if accounts.len() < 2 {
        return Err(StorageError::Corrupt(
            "the bank needs at least 2 accounts to spread history over: run `bank bench` against it once first".into(),
        ));
    }
    let now = super::writer::now_ms();
    let mut changes = Vec::new();
    for account in &accounts {
        let amount = Amount::from_cents(SEED_DEPOSIT_CENTS).expect("a valid amount");
        ledger
            .deposit(account, amount, DepositMethod::Cash, fresh_idem(), now, &mut changes)
            .map_err(|e| StorageError::Corrupt(format!("seed deposit: {e}")))?;
    }
    write_chunk(&mut conn, &ledger, &mut last_entries, &changes, now)?;
    let mut written = accounts.len() as u64;
    let transfers = entries.saturating_sub(written) / 2;
    let mut rng = SplitMix(now.0 as u64);
    let mut done = 0;
    while done < transfers {
        changes.clear();
        let chunk = CHUNK.min(transfers - done);
        for _ in 0..chunk {
            let from = &accounts[rng.below(accounts.len())];
            let mut to = &accounts[rng.below(accounts.len())];
            if to == from {
                to = &accounts[(accounts.iter().position(|a| a == from).unwrap_or(0) + 1) % accounts.len()];
            }
            ledger
                .transfer(one_centavo(ledger.bank_id(), from, to, now), &mut changes)
                .map_err(|e| StorageError::Corrupt(format!("preload transfer: {e}")))?;
        }
        write_chunk(&mut conn, &ledger, &mut last_entries, &changes, now)?;
        done += chunk;
        written += 2 * chunk;
        progress(written);
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    ledger.assert_invariants();
    Ok(Preloaded { entries: written, transfers, accounts: accounts.len() })
}

fn stored_bank_id(data_dir: &Path) -> Result<BankId> {
    let conn = Connection::open(super::database_path(data_dir))?;
    let id: Option<String> =
        conn.query_row("SELECT value FROM meta WHERE key = 'bank_id'", [], |r| r.get(0)).optional()?;
    let id = id.ok_or_else(|| StorageError::Corrupt(format!("{} holds no bank", data_dir.display())))?;
    id.parse().map(BankId).map_err(|e| StorageError::Corrupt(format!("bank id {id:?}: {e}")))
}

/// Writes a chunk and checkpoints the balances it changed (`ledger` is already past the chunk).
fn write_chunk(
    conn: &mut Connection,
    ledger: &Ledger,
    last: &mut LastEntries,
    changes: &[Change],
    now: TimestampMs,
) -> Result<()> {
    let tx = conn.transaction()?;
    let touched = {
        let mut writer = BatchWriter::new(&tx, last, now.0);
        for change in changes {
            writer.write(change)?;
        }
        writer.finish()
    };
    super::write_balance_checkpoint(&tx, ledger, last, &touched.accounts)?;
    tx.commit()?;
    Ok(())
}

fn fresh_idem() -> (IdempotencyKey, Fingerprint) {
    (IdempotencyKey(Uuid::new_v4()), Fingerprint([0; 32]))
}

fn one_centavo(bank_id: BankId, from: &AccountNumber, to: &AccountNumber, now: TimestampMs) -> TransferRequest {
    let (idempotency_key, fingerprint) = fresh_idem();
    TransferRequest {
        idempotency_key,
        fingerprint,
        actor: from.clone(),
        legs: vec![LegRequest {
            from: None,
            to: Destination::Account(AccountRef { bank_id, number: to.clone() }),
            amount: Amount::from_cents(1).expect("a valid amount"),
        }],
        description: None,
        transfer_id: TransferId(Uuid::now_v7()),
        now,
    }
}

/// A small deterministic generator for picking accounts (no cryptographic need).
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}
