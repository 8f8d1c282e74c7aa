//! The ledger's tables as a simulator's storage keeps them: what the node writes for each
//! [`Change`], and the [`Ledger`] a restart rebuilds from it (as `storage::load_ledger` does,
//! through the `restore_*` calls).

use std::collections::BTreeMap;

use bank_core::account::Account;
use bank_core::ids::{AccountNumber, BankId, IdempotencyKey, TransferId};
use bank_core::ledger::{
    Change, HoldSet, IdempotencyRecord, Ledger, PixLeg, RefundOf, Refundable, RemoteKey, Settlement, Transfer,
};
use bank_core::money::Amount;
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
    /// Posted Pix legs touching this bank, with (refunded, reserved) cents (the `pix_legs` table).
    pub pix_legs: BTreeMap<RefundOf, (PixLeg, i64, i64)>,
    /// Refunds begun here and not settled (the `refunds_open` table).
    refunds_open: BTreeMap<TransferId, (RefundOf, Amount)>,
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
            Change::PixLegRecorded(pix) => {
                let of = RefundOf { transfer_id: pix.transfer_id, leg: pix.leg };
                self.pix_legs.entry(of).or_insert((*pix, 0, 0));
            }
            Change::RefundState { of, refunded_cents, reserved_cents } => {
                let row = self.pix_legs.get_mut(&of).expect("the refunded leg is stored");
                (row.1, row.2) = (refunded_cents, reserved_cents);
                assert!(row.1 + row.2 <= row.0.amount.cents(), "the CHECK of pix_legs: {row:?}");
            }
            Change::RefundOpened { refund, of, amount } => {
                self.refunds_open.insert(refund, (of, amount));
            }
            Change::RefundClosed { refund } => {
                self.refunds_open.remove(&refund);
            }
        }
    }

    /// The legs of `tx` received by `bank` (refunds excluded), with their figures: what storage
    /// answers for a refund of a leg memory forgot.
    pub fn received_legs(&self, bank: BankId, tx: &TransferId) -> Vec<(RefundOf, Refundable)> {
        let range = RefundOf { transfer_id: *tx, leg: 0 }..=RefundOf { transfer_id: *tx, leg: u16::MAX };
        self.pix_legs
            .range(range)
            .filter(|(_, (pix, _, _))| pix.to.bank_id == bank && pix.refund_of.is_none())
            .map(|(of, (pix, refunded_cents, reserved_cents))| {
                (*of, Refundable::of_leg(pix, *refunded_cents, *reserved_cents))
            })
            .collect()
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
        // Like the node: legs received within the memory window, and those with refunds in
        // flight; a refund of an older one reads it back (`received_legs`).
        for (of, (pix, refunded_cents, reserved_cents)) in &self.pix_legs {
            let recent = of.transfer_id >= remembered_since;
            if pix.to.bank_id == bank && pix.refund_of.is_none() && (recent || *reserved_cents > 0) {
                ledger.restore_refundable(*of, Refundable::of_leg(pix, *refunded_cents, *reserved_cents));
            }
        }
        self.refunds_open.iter().for_each(|(refund, (of, amount))| ledger.restore_refund_open(*refund, *of, *amount));
        ledger.restore_next_entry_id(self.next_entry_id);
        ledger
    }
}
