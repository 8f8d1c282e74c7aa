//! Pix legs kept for receipts and refunds (devolução), and the refund invariant.
//!
//! # What it does
//!
//! When a Pix leg is posted, both the payer's and the receiver's bank keep its [`PixLeg`]
//! (names, masked documents, banks, key, amount, time). The receiver's bank also keeps it as
//! [`Refundable`]: the amount received, the sum of its completed refunds (`refunded_cents`) and
//! the sum of its refunds still in flight (`reserved_cents`).
//!
//! A refund is an ordinary transfer from the receiver's account back to the payer's account
//! (in-bank, or cross-bank through the same two-phase commit and token ring), marked with the
//! leg it refunds ([`RefundOf`]). Planning it checks and *reserves* its amount in the same step:
//!
//! - in-bank, it completes or fails at once: a completed one adds to `refunded_cents`;
//! - cross-bank, its amount is reserved until the coordinator settles the refund: completed
//!   moves the reservation to `refunded_cents`, failed releases it ([`Ledger::close_refund`]).
//!
//! # Guarantees
//!
//! - `refunded_cents + reserved_cents ≤ amount` for every leg, always (asserted), so the sum of
//!   a leg's completed refunds never exceeds its amount — also when refunds race: the ledger is
//!   one state machine fed by one writer, and the check and the reservation are one step.
//! - Durable and idempotent like every money movement: the reservation, its release and the
//!   figures are [`Change`]s written in the refund's batch; a repeated request (same
//!   Idempotency-Key) answers its first outcome before anything is checked or reserved.
//! - A refund is refused, changing nothing, when the leg was not received by an account the
//!   customer may spend, is not posted (failed or pending), is a refund itself, is older than
//!   [`REFUND_WINDOW_MS`], or has nothing left to refund (`not_refundable`); or when it asks for
//!   more than is left (`refund_exceeds_amount`).
//!
//! # What it does not do
//!
//! Memory keeps only legs within the refund window (and those with refunds in flight); storage
//! keeps every leg, for receipts. The payer's bank learns of a refund only by receiving it
//! (its statement line names the original transfer); the figures live at the receiver's bank.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{
    AccountRef, Change, Destination, Document, EntryKind, HoldSet, Ledger, LegRequest, Outcome, PixLeg, Plan, Status,
    TransferLeg, TransferRequest,
};
use crate::Error;
use crate::ids::{AccountNumber, BankId, Fingerprint, IdempotencyKey, TimestampMs, TransferId};
use crate::money::Amount;

/// How long after it was made a Pix may be refunded: 90 days (the Pix rule for devoluções).
pub const REFUND_WINDOW_MS: i64 = 90 * 24 * 60 * 60 * 1000;

/// One leg of one transfer: what a refund refunds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RefundOf {
    pub transfer_id: TransferId,
    pub leg: u16,
}

/// A Pix leg received at this bank, and how much of it is refunded or being refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refundable {
    /// The account that received the money (the refund's source).
    pub receiver: AccountNumber,
    /// The account that paid (the refund's destination), its holder's name and masked document.
    pub payer: AccountRef,
    pub payer_name: String,
    pub payer_document: String,
    pub amount: Amount,
    pub refunded_cents: i64,
    pub reserved_cents: i64,
    pub received_at: TimestampMs,
}

impl Refundable {
    /// Posted leg `pix`, received here, with what is refunded of it and reserved by refunds in
    /// flight (storage keeps the figures beside the leg).
    pub fn of_leg(pix: &PixLeg, refunded_cents: i64, reserved_cents: i64) -> Refundable {
        Refundable {
            receiver: pix.to.number.clone(),
            payer: pix.from.clone(),
            payer_name: pix.from_name.clone(),
            payer_document: pix.from_document.clone(),
            amount: pix.amount,
            refunded_cents,
            reserved_cents,
            received_at: pix.created_at,
        }
    }

    /// What may still be refunded (refunds in flight count as refunded until they fail).
    pub fn remaining_cents(&self) -> i64 {
        self.amount.cents() - self.refunded_cents - self.reserved_cents
    }
}

/// A customer's request to refund (part of) a Pix leg they received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub idempotency_key: IdempotencyKey,
    pub fingerprint: Fingerprint,
    /// The signed-in account acting (it must be allowed to spend the receiving account).
    pub actor: AccountNumber,
    pub original: TransferId,
    /// Which leg; `None` when the customer received exactly one leg of the transfer.
    pub leg: Option<u16>,
    pub amount: Amount,
    pub reason: Option<String>,
    /// The refund's own transfer id (chosen by the driver).
    pub transfer_id: TransferId,
    pub now: TimestampMs,
}

impl Ledger {
    /// Sets the member banks' names, used in statement lines ("Bruno Lima · Automobili").
    pub fn set_bank_names(&mut self, names: impl IntoIterator<Item = (BankId, String)>) {
        self.bank_names = names.into_iter().collect();
    }

    /// A counterparty in customers' words: the holder's name and their bank's name.
    pub(super) fn counterparty(&self, name: &str, bank: BankId) -> String {
        let bank_name = match self.bank_names.get(&bank) {
            Some(n) => n.clone(),
            None => format!("bank {bank}"),
        };
        if name.is_empty() { bank_name } else { format!("{name} · {bank_name}") }
    }

    /// The statement kinds of a transfer's outgoing and incoming lines.
    pub(super) fn entry_kinds(refund_of: Option<&RefundOf>) -> (EntryKind, EntryKind) {
        match refund_of {
            None => (EntryKind::TransferOut, EntryKind::TransferIn),
            Some(_) => (EntryKind::RefundOut, EntryKind::RefundIn),
        }
    }

    /// The masked document of an account here (its first holder's).
    fn masked_document_here(&self, number: &AccountNumber) -> String {
        self.accounts.get(number).and_then(|a| a.holders.first()).map(|h| h.document.masked()).unwrap_or_default()
    }

    /// What both ends keep of leg `index` of a transfer. `customer` is the payer's document when
    /// the source is at another bank (the coordinator's assertion of whose money it is).
    pub(super) fn pix_leg(
        &self,
        transfer_id: TransferId,
        index: usize,
        leg: &TransferLeg,
        customer: Option<&Document>,
        created_at: TimestampMs,
        refund_of: Option<RefundOf>,
    ) -> PixLeg {
        let here = self.bank_id;
        let from_document = if leg.from.bank_id == here {
            self.masked_document_here(&leg.from.number)
        } else {
            customer.map(Document::masked).unwrap_or_default()
        };
        let mut to = leg.to.clone();
        let to_document = if to.bank_id == here {
            self.masked_document_here(&to.number)
        } else if let Some(remote) = to.key.as_ref().and_then(|k| self.remote_keys.get(k)) {
            remote.masked_document.clone()
        } else if let Some(original) = refund_of.and_then(|r| self.refundable.get(&r)) {
            if to.holder_name.is_empty() {
                to.holder_name = original.payer_name.clone();
            }
            original.payer_document.clone()
        } else {
            String::new()
        };
        let leg_index = u16::try_from(index).expect("a transfer has at most LEGS_MAX legs");
        PixLeg {
            transfer_id,
            leg: leg_index,
            from: leg.from.clone(),
            from_name: leg.from_name.clone(),
            from_document,
            to,
            to_document,
            amount: leg.amount,
            created_at,
            refund_of,
        }
    }

    /// Keeps a posted Pix leg; the receiver's bank also keeps it as refundable (a refund itself
    /// is not refundable).
    pub(super) fn record_pix_leg(&mut self, mut pix: PixLeg, changes: &mut Vec<Change>) {
        // A payer who named an account at another bank did not know its holder: this bank does.
        if pix.to.bank_id == self.bank_id && pix.to.holder_name.is_empty() {
            pix.to.holder_name = self.accounts.get(&pix.to.number).map(|a| a.display_name()).unwrap_or_default();
        }
        if pix.to.bank_id == self.bank_id && pix.to_document.is_empty() {
            pix.to_document = self.masked_document_here(&pix.to.number);
        }
        if pix.to.bank_id == self.bank_id && pix.refund_of.is_none() {
            self.refundable
                .insert(RefundOf { transfer_id: pix.transfer_id, leg: pix.leg }, Refundable::of_leg(&pix, 0, 0));
        }
        changes.push(Change::PixLegRecorded(Box::new(pix)));
    }

    /// The statement lines (and kept Pix legs) of a transaction just posted here. Hold sets from
    /// before Pix legs travelled with the prepare get plain lines.
    pub(super) fn record_posted_lines(&mut self, transfer: TransferId, set: &HoldSet, changes: &mut Vec<Change>) {
        let here = self.bank_id;
        if set.pix.is_empty() {
            let lines = set
                .debits
                .iter()
                .map(|d| (d, EntryKind::TransferOut))
                .chain(set.credits.iter().map(|c| (c, EntryKind::TransferIn)));
            for ((number, amount), kind) in lines {
                let mut entry = self.new_entry(number, kind, *amount, set.placed_at);
                entry.transfer_id = Some(transfer);
                entry.counterparty = Some(self.counterparty("", set.coordinator));
                changes.push(Change::EntryAdded(Box::new(entry)));
            }
            return;
        }
        for pix in &set.pix {
            let (out_kind, in_kind) = Self::entry_kinds(pix.refund_of.as_ref());
            let refund_of = pix.refund_of.map(|r| r.transfer_id);
            if pix.from.bank_id == here {
                let mut out = self.new_entry(&pix.from.number, out_kind, pix.amount, set.placed_at);
                out.transfer_id = Some(transfer);
                out.counterparty = Some(self.counterparty(&pix.to.holder_name, pix.to.bank_id));
                out.refund_of = refund_of;
                changes.push(Change::EntryAdded(Box::new(out)));
            }
            if pix.to.bank_id == here {
                let mut inbound = self.new_entry(&pix.to.number, in_kind, pix.amount, set.placed_at);
                inbound.transfer_id = Some(transfer);
                inbound.counterparty = Some(self.counterparty(&pix.from_name, pix.from.bank_id));
                inbound.refund_of = refund_of;
                changes.push(Change::EntryAdded(Box::new(inbound)));
            }
            self.record_pix_leg(pix.clone(), changes);
        }
    }

    /// Plans a refund: checks it, then plans the transfer back to the payer exactly as
    /// [`Ledger::plan_transfer`] (in-bank: done now; cross-bank: pending, for the coordinator),
    /// reserving its amount until it settles. See the module essay.
    pub fn plan_refund(
        &mut self,
        request: RefundRequest,
        members: &BTreeSet<BankId>,
        changes: &mut Vec<Change>,
    ) -> Result<Plan, Error> {
        if !self.accounts.contains_key(&request.actor) {
            return Err(Error::Unauthorized("the signed-in account no longer exists".into()));
        }
        if let Some(outcome) = self.replay(&request.actor, request.idempotency_key, request.fingerprint)? {
            return Ok(Plan::Done(outcome));
        }
        let of = self.refund_target(&request)?;
        let original = &self.refundable[&of];
        let remaining_cents = original.remaining_cents();
        if remaining_cents == 0 {
            let detail = if original.reserved_cents > 0 {
                "refunds in progress already cover what is left of this Pix"
            } else {
                "this Pix was already refunded in full"
            };
            return Err(Error::NotRefundable(detail.into()));
        }
        if request.amount.cents() > remaining_cents {
            return Err(Error::RefundExceedsAmount { remaining_cents, requested_cents: request.amount.cents() });
        }
        let leg = LegRequest {
            from: Some(AccountRef { bank_id: self.bank_id, number: original.receiver.clone() }),
            to: Destination::Account(original.payer.clone()),
            amount: request.amount,
        };
        let transfer = TransferRequest {
            idempotency_key: request.idempotency_key,
            fingerprint: request.fingerprint,
            actor: request.actor,
            legs: vec![leg],
            description: request.reason,
            transfer_id: request.transfer_id,
            now: request.now,
        };
        let plan = self.plan_transfer_as(transfer, Some(of), members, changes)?;
        match &plan {
            Plan::Done(Outcome::Transfer(t)) if t.status == Status::Completed => {
                self.adjust_refund(of, request.amount.cents(), 0, changes);
            }
            Plan::Done(_) => {}
            Plan::CrossBank { transfer, .. } => {
                self.adjust_refund(of, 0, request.amount.cents(), changes);
                self.refunds_open.insert(transfer.id, (of, request.amount));
                changes.push(Change::RefundOpened { refund: transfer.id, of, amount: request.amount });
            }
        }
        Ok(plan)
    }

    /// The leg a refund request names, checked: received here by an account the customer may
    /// spend, within the refund window.
    fn refund_target(&self, request: &RefundRequest) -> Result<RefundOf, Error> {
        let actor = &self.accounts[&request.actor];
        let received_by_actor = |r: &Refundable| self.accounts.get(&r.receiver).is_some_and(|acc| actor.may_spend(acc));
        let not_received = || {
            Error::NotRefundable(format!(
                "transfer {} is not a completed Pix received by your account at this bank",
                request.original
            ))
        };
        let of = match request.leg {
            Some(leg) => RefundOf { transfer_id: request.original, leg },
            None => {
                let first = RefundOf { transfer_id: request.original, leg: 0 };
                let mut legs = self
                    .refundable
                    .range(first..)
                    .take_while(|(of, _)| of.transfer_id == request.original)
                    .filter(|(_, r)| received_by_actor(r))
                    .map(|(of, _)| *of);
                match (legs.next(), legs.next()) {
                    (Some(of), None) => of,
                    (None, _) => return Err(not_received()),
                    (Some(_), Some(_)) => {
                        return Err(Error::invalid("you received several legs of this transfer: say which (leg)"));
                    }
                }
            }
        };
        let original = self.refundable.get(&of).filter(|r| received_by_actor(r)).ok_or_else(not_received)?;
        if request.now.0 - original.received_at.0 > REFUND_WINDOW_MS {
            return Err(Error::NotRefundable("a Pix can be refunded within 90 days only".into()));
        }
        Ok(of)
    }

    /// Adds to a leg's refunded and reserved figures (negative to release), asserting the
    /// invariant, and records the new figures.
    fn adjust_refund(&mut self, of: RefundOf, refunded_cents: i64, reserved_cents: i64, changes: &mut Vec<Change>) {
        let r = self.refundable.get_mut(&of).expect("a refund's leg stays known while refunds are open");
        r.refunded_cents += refunded_cents;
        r.reserved_cents += reserved_cents;
        assert!(
            r.reserved_cents >= 0 && r.refunded_cents >= 0 && r.remaining_cents() >= 0,
            "refund invariant broken on {of:?}: {r:?}"
        );
        let (refunded_cents, reserved_cents) = (r.refunded_cents, r.reserved_cents);
        changes.push(Change::RefundState { of, refunded_cents, reserved_cents });
    }

    /// A transfer this bank coordinates settled: if it is a refund in flight, its reservation
    /// becomes refunded (completed) or is released (failed).
    pub fn close_refund(&mut self, refund: TransferId, status: Status, changes: &mut Vec<Change>) {
        let Some((of, amount)) = self.refunds_open.remove(&refund) else { return };
        let refunded = if status == Status::Completed { amount.cents() } else { 0 };
        self.adjust_refund(of, refunded, -amount.cents(), changes);
        changes.push(Change::RefundClosed { refund });
    }

    /// A leg received here, if still within the refund window (or with refunds in flight).
    pub fn refundable(&self, of: &RefundOf) -> Option<&Refundable> {
        self.refundable.get(of)
    }

    /// Every refundable leg, in order (audits and simulations).
    pub fn refundable_iter(&self) -> impl Iterator<Item = (&RefundOf, &Refundable)> {
        self.refundable.iter()
    }

    /// Received legs kept in memory (see [`forget_refundable`](Self::forget_refundable)).
    pub fn refundable_remembered(&self) -> usize {
        self.refundable.len()
    }

    /// Refunds begun here and not yet settled.
    pub fn refunds_open(&self) -> usize {
        self.refunds_open.len()
    }

    /// Forgets legs received before `bound` with no refund in flight: they can no longer be
    /// refunded (storage keeps them). Returns how many were forgotten.
    ///
    /// Runs at every tick, so it looks only at the legs it may forget: they are keyed by transfer
    /// id, a UUIDv7 ordered by the time its coordinator made it (before the leg was received),
    /// so the legs of transfers made from `bound` on are kept without a look; the older ones are
    /// forgotten unless received since `bound` (another bank's clock) or refunds are in flight.
    ///
    /// Then it forgets the oldest legs beyond the newest `max` that have no refund in flight (those
    /// stay whatever their number: the refunds open here bound them).
    pub fn forget_refundable(&mut self, bound: TimestampMs, max: usize) -> usize {
        let mut forgotten = self.forget_refundable_by_time(bound);
        if self.refundable.len() > max {
            let excess = self.refundable.len() - max;
            let oldest: Vec<RefundOf> =
                self.refundable.iter().filter(|(_, r)| r.reserved_cents == 0).map(|(of, _)| *of).take(excess).collect();
            for of in oldest {
                self.refundable.remove(&of);
                forgotten += 1;
            }
        }
        forgotten
    }

    /// The time half of [`forget_refundable`](Self::forget_refundable).
    fn forget_refundable_by_time(&mut self, bound: TimestampMs) -> usize {
        let first_kept = RefundOf { transfer_id: TransferId::first_at(bound.0), leg: 0 };
        let recent = self.refundable.split_off(&first_kept);
        let older = std::mem::replace(&mut self.refundable, recent);
        let mut forgotten = 0;
        for (of, r) in older {
            if r.received_at >= bound || r.reserved_cents > 0 {
                self.refundable.insert(of, r);
            } else {
                forgotten += 1;
            }
        }
        forgotten
    }

    /// Restores a refundable leg read back from storage.
    pub fn restore_refundable(&mut self, of: RefundOf, refundable: Refundable) {
        self.refundable.insert(of, refundable);
    }

    /// Restores a refund in flight read back from storage.
    pub fn restore_refund_open(&mut self, refund: TransferId, of: RefundOf, amount: Amount) {
        self.refunds_open.insert(refund, (of, amount));
    }

    /// Asserts the refund invariant: every leg's refunds fit its amount, and its reservation is
    /// the sum of its refunds in flight.
    pub(super) fn assert_refund_invariants(&self) {
        let mut reserved: std::collections::BTreeMap<RefundOf, i64> = std::collections::BTreeMap::new();
        for (of, amount) in self.refunds_open.values() {
            *reserved.entry(*of).or_default() += amount.cents();
        }
        for (of, r) in &self.refundable {
            assert!(r.remaining_cents() >= 0 && r.refunded_cents >= 0, "refunds of {of:?} exceed it: {r:?}");
            assert_eq!(r.reserved_cents, reserved.get(of).copied().unwrap_or(0), "reservation of {of:?}");
        }
    }
}
