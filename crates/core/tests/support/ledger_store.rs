//! The ledger's tables as a simulator's storage keeps them: what the node writes for each
//! [`Change`], and the [`Ledger`] a restart rebuilds from it (as `storage::load_ledger` does,
//! through the `restore_*` calls).

use std::collections::BTreeMap;

use bank_core::account::Account;
use bank_core::ids::{AccountNumber, BankId, IdempotencyKey, TransferId};
use bank_core::ledger::{Change, HoldSet, IdempotencyRecord, Ledger, RemoteKey, Settlement, Transfer};
use bank_core::pixkey::PixKey;

/// One bank's ledger tables.
#[derive(Debug, Clone, Default)]
pub struct LedgerStore {
    pub accounts: BTreeMap<AccountNumber, Account>,
    keys: Vec<(PixKey, AccountNumber)>,
    remote_keys: Vec<(PixKey, RemoteKey)>,
    idempotency: Vec<(AccountNumber, IdempotencyKey, IdempotencyRecord)>,
    holds: BTreeMap<TransferId, HoldSet>,
    /// How each transaction's holds were settled here (the `decisions` table).
    pub settlements: BTreeMap<TransferId, Settlement>,
    next_entry_id: u64,
    /// Transfer records (the `transfers` table), newest version of each.
    pub transfers: BTreeMap<TransferId, Transfer>,
}

impl LedgerStore {
    /// The stored record of an idempotent request, newest first (what `Recall::idempotency` reads).
    pub fn idempotency_record(&self, scope: &AccountNumber, key: IdempotencyKey) -> Option<IdempotencyRecord> {
        self.idempotency.iter().rev().find(|(s, k, _)| s == scope && *k == key).map(|(_, _, r)| *r)
    }

    /// Writes one change, as the node's batch writer does.
    pub fn apply(&mut self, change: &Change) {
        match change.clone() {
            Change::AccountOpened(account) => {
                self.accounts.insert(account.number.clone(), *account);
            }
            Change::Balance { account, posted_cents, held_cents } => {
                let acc = self.accounts.get_mut(&account).expect("a balance of a stored account");
                (acc.posted_cents, acc.held_cents) = (posted_cents, held_cents);
            }
            Change::KeyRegistered { key, account } => self.keys.push((key, account)),
            Change::RemoteKeyRegistered { key, owner } => self.remote_keys.push((key, owner)),
            Change::EntryAdded(entry) => self.next_entry_id = self.next_entry_id.max(entry.id.0 + 1),
            Change::TransferRecorded(transfer) => {
                self.transfers.insert(transfer.id, *transfer);
            }
            Change::IdempotencyRecorded { scope, key, record } => self.idempotency.push((scope, key, *record)),
            Change::HoldsPlaced { transfer, holds } => {
                self.holds.insert(transfer, *holds);
            }
            Change::Settled { transfer, settlement } => {
                self.holds.remove(&transfer);
                self.settlements.insert(transfer, settlement);
            }
        }
    }

    /// The ledger a restart reads back; settlements of transactions from `remembered_since` on
    /// come back into memory (older ones stay on disk, read on demand).
    pub fn rebuild(&self, bank: BankId, remembered_since: TransferId) -> Ledger {
        let mut ledger = Ledger::new(bank);
        self.accounts.values().for_each(|a| ledger.restore_account(a.clone()));
        self.keys.iter().for_each(|(k, a)| ledger.restore_key(k.clone(), a.clone()));
        self.remote_keys.iter().for_each(|(k, o)| ledger.restore_remote_key(k.clone(), o.clone()));
        self.idempotency.iter().for_each(|(s, k, r)| ledger.restore_idempotency(s.clone(), *k, *r));
        self.holds.iter().for_each(|(tx, set)| ledger.restore_holds(*tx, set.clone()));
        for (tx, settlement) in self.settlements.range(remembered_since..) {
            ledger.restore_settlement(*tx, *settlement);
        }
        ledger.restore_next_entry_id(self.next_entry_id);
        ledger
    }
}
