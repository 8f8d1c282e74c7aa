//! Pix receipts (comprovantes) with their end-to-end ids, and refunds (devoluções).
//!
//! End-to-end ids are derived, not stored: `bank_core::ids::end_to_end_id` computes the same id
//! from the transfer id, the leg and the payer bank's institution code at every bank. A receipt
//! is built from the Pix legs this bank kept when they were posted (both ends keep them), or,
//! for a transfer not completed, from the coordinator's record. Either party may open it; anyone
//! else gets 404, as for a transfer they cannot see.
//!
//! A refund is planned by the ledger (`Ledger::plan_refund`), which checks and reserves its
//! amount in the same step; here it is submitted and awaited exactly like a transfer.

use std::sync::Arc;

use bank_core::Error;
use bank_core::ids::{
    AccountNumber, BankId, EndToEndKind, Fingerprint, IdempotencyKey, InstitutionCode, TimestampMs, TransferId,
    end_to_end_id,
};
use bank_core::ledger::{PixLeg, RefundOf, RefundRequest, Status, Transfer};
use bank_core::money::Amount;

use super::transfer::{TransferAnswer, answer_when_due, submit};
use super::{Bank, OpResult, ServiceError, visible_accounts};
use crate::storage::read::{self, StoredPixLeg};

/// Bank `id`'s institution code: the consortium file's (or derived from its id).
pub fn institution_code(bank: &Bank, id: BankId) -> InstitutionCode {
    bank.interbank
        .as_ref()
        .and_then(|ib| ib.institution_codes.get(&id).cloned())
        .unwrap_or_else(|| InstitutionCode::derived(id))
}

/// The end-to-end id of leg `leg` of `transfer`, paid from `payer_bank` (`D…` for a refund).
pub fn leg_end_to_end_id(bank: &Bank, transfer: TransferId, leg: u16, payer_bank: BankId, refund: bool) -> String {
    let kind = if refund { EndToEndKind::Refund } else { EndToEndKind::Payment };
    end_to_end_id(kind, &institution_code(bank, payer_bank), transfer, leg)
}

/// The end-to-end id of every leg of a transfer, in order.
pub fn end_to_end_ids(bank: &Bank, transfer: &Transfer) -> Vec<String> {
    let refund = transfer.refund_of.is_some();
    (0..transfer.legs.len())
        .map(|i| {
            let leg = u16::try_from(i).expect("a transfer has at most 16 legs");
            leg_end_to_end_id(bank, transfer.id, leg, transfer.legs[i].from.bank_id, refund)
        })
        .collect()
}

/// The end-to-end id of the leg a refund refunds (always a payment: refunds are not refunded).
pub fn original_end_to_end_id(bank: &Bank, of: &RefundOf, payer_bank: BankId) -> String {
    leg_end_to_end_id(bank, of.transfer_id, of.leg, payer_bank, false)
}

/// What a customer asks to refund.
#[derive(Debug, Clone)]
pub struct RefundAsk {
    pub original: TransferId,
    pub leg: Option<u16>,
    pub amount: Amount,
    pub reason: Option<String>,
}

/// Refunds (part of) a Pix leg the customer received: answered like a transfer (the refund,
/// executed, as it stands at the response deadline), or refused changing nothing.
pub async fn refund(
    bank: &Arc<Bank>,
    actor: AccountNumber,
    ask: RefundAsk,
    idempotency: (IdempotencyKey, Fingerprint),
) -> OpResult<TransferAnswer> {
    let id = TransferId(uuid::Uuid::now_v7());
    let request = RefundRequest {
        idempotency_key: idempotency.0,
        fingerprint: idempotency.1,
        actor,
        original: ask.original,
        leg: ask.leg,
        amount: ask.amount,
        reason: ask.reason,
        transfer_id: id,
        now: TimestampMs(0),
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(bank.limits.transfer_deadline_ms);
    let progress = bank.driver.watch(id);
    let submitted = submit(bank, bank.writer.refund(request).await);
    let answer = answer_when_due(bank, id, progress, submitted, deadline).await;
    bank.metrics.operation("refund", answer.as_ref().map_or("rejected", |a| a.transfer.status.as_str()));
    answer
}

/// One side of a Pix, as a receipt shows it.
#[derive(Debug, Clone)]
pub struct Party {
    pub name: String,
    /// Masked (`***.456.789-**`); empty when this bank does not know it.
    pub document: String,
    pub bank_id: BankId,
    pub bank_name: String,
    pub institution_code: String,
}

/// The refunded leg, as a refund's receipt names it.
#[derive(Debug, Clone)]
pub struct RefundRef {
    pub transfer_id: TransferId,
    pub leg: u16,
    pub end_to_end_id: String,
}

/// A Pix receipt (comprovante) of one leg.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub transfer_id: TransferId,
    pub leg: u16,
    pub end_to_end_id: String,
    pub payer: Party,
    pub receiver: Party,
    pub key: Option<String>,
    pub amount_cents: i64,
    pub status: Status,
    pub created_at: TimestampMs,
    pub description: Option<String>,
    /// Completed refunds of this leg.
    pub refunded_cents: i64,
    /// What the signed-in customer may still refund of it (`None`: they are not its receiver
    /// here, or it is not refundable at all).
    pub refundable_cents: Option<i64>,
    pub refund_of: Option<RefundRef>,
}

/// What this bank has of a transfer: its kept Pix legs, its record (if it coordinated it),
/// the refunds of it it received, and which accounts the customer may see.
struct Known {
    legs: Vec<StoredPixLeg>,
    record: Option<Transfer>,
    refunds: Vec<PixLeg>,
    visible: Vec<AccountNumber>,
}

async fn known(bank: &Arc<Bank>, actor: &AccountNumber, id: TransferId) -> OpResult<Known> {
    let (_, visible) = visible_accounts(bank, actor).await?;
    let (legs, record, refunds) = bank
        .reads
        .run(move |c| Ok((read::pix_legs(c, &id)?, read::transfer(c, &id)?, read::refunds_of(c, &id)?)))
        .await?;
    Ok(Known { legs, record, refunds, visible })
}

/// The receipt of leg `leg` (default: the first the customer sent or received) of transfer `id`.
pub async fn receipt(bank: &Arc<Bank>, actor: &AccountNumber, id: TransferId, leg: Option<u16>) -> OpResult<Receipt> {
    let known = known(bank, actor, id).await?;
    let not_found = || ServiceError::Core(Error::NotFound(format!("no Pix {id} of yours")));
    let here = bank.bank_id;
    let mine = |bank_id: BankId, n: &AccountNumber| bank_id == here && known.visible.contains(n);
    let submitted = known.record.as_ref().is_some_and(|t| known.visible.contains(&t.actor));
    let wanted = |n: u16| leg.is_none_or(|l| l == n);
    if let Some(stored) = known.legs.iter().find(|s| {
        wanted(s.pix.leg)
            && (submitted || mine(s.pix.from.bank_id, &s.pix.from.number) || mine(s.pix.to.bank_id, &s.pix.to.number))
    }) {
        return Ok(receipt_of_posted(bank, &known, stored, mine(stored.pix.to.bank_id, &stored.pix.to.number)));
    }
    // Not posted (pending or failed): the coordinator's record, with what it knows.
    let transfer = known.record.as_ref().ok_or_else(not_found)?;
    let index = (0..transfer.legs.len())
        .find(|&i| {
            let l = &transfer.legs[i];
            wanted(i as u16) && (submitted || mine(l.from.bank_id, &l.from.number) || mine(l.to.bank_id, &l.to.number))
        })
        .ok_or_else(not_found)?;
    Ok(receipt_of_record(bank, transfer, index))
}

fn party(bank: &Bank, name: &str, document: &str, bank_id: BankId) -> Party {
    Party {
        name: name.to_string(),
        document: document.to_string(),
        bank_id,
        bank_name: super::consortium::bank_name(bank, bank_id),
        institution_code: institution_code(bank, bank_id).to_string(),
    }
}

fn receipt_of_posted(bank: &Bank, known: &Known, stored: &StoredPixLeg, received_here: bool) -> Receipt {
    let pix = &stored.pix;
    let refunded_cents = if pix.to.bank_id == bank.bank_id {
        stored.refunded_cents
    } else {
        known.refunds.iter().filter(|r| r.refund_of.is_some_and(|of| of.leg == pix.leg)).map(|r| r.amount.cents()).sum()
    };
    let refundable_cents = (received_here && pix.refund_of.is_none())
        .then(|| pix.amount.cents() - stored.refunded_cents - stored.reserved_cents);
    Receipt {
        transfer_id: pix.transfer_id,
        leg: pix.leg,
        end_to_end_id: leg_end_to_end_id(bank, pix.transfer_id, pix.leg, pix.from.bank_id, pix.refund_of.is_some()),
        payer: party(bank, &pix.from_name, &pix.from_document, pix.from.bank_id),
        receiver: party(bank, &pix.to.holder_name, &pix.to_document, pix.to.bank_id),
        key: pix.to.key.as_ref().map(|k| k.normalized()),
        amount_cents: pix.amount.cents(),
        status: Status::Completed,
        created_at: pix.created_at,
        description: known.record.as_ref().and_then(|t| t.description.clone()),
        refunded_cents,
        refundable_cents,
        refund_of: pix.refund_of.map(|of| RefundRef {
            transfer_id: of.transfer_id,
            leg: of.leg,
            // The refund's receiver was the original's payer.
            end_to_end_id: original_end_to_end_id(bank, &of, pix.to.bank_id),
        }),
    }
}

fn receipt_of_record(bank: &Bank, transfer: &Transfer, index: usize) -> Receipt {
    let leg = &transfer.legs[index];
    let n = u16::try_from(index).expect("a transfer has at most 16 legs");
    Receipt {
        transfer_id: transfer.id,
        leg: n,
        end_to_end_id: leg_end_to_end_id(bank, transfer.id, n, leg.from.bank_id, transfer.refund_of.is_some()),
        payer: party(bank, &leg.from_name, "", leg.from.bank_id),
        receiver: party(bank, &leg.to.holder_name, "", leg.to.bank_id),
        key: leg.to.key.as_ref().map(|k| k.normalized()),
        amount_cents: leg.amount.cents(),
        status: transfer.status,
        created_at: transfer.created_at,
        description: transfer.description.clone(),
        refunded_cents: 0,
        refundable_cents: None,
        refund_of: transfer.refund_of.map(|of| RefundRef {
            transfer_id: of.transfer_id,
            leg: of.leg,
            end_to_end_id: original_end_to_end_id(bank, &of, leg.to.bank_id),
        }),
    }
}

/// A transfer as the API shows it: the coordinator's record, or — at a bank that only took part
/// — the legs it kept (the receiver sees its side), with each leg's number in the transfer.
pub async fn transfer_view(bank: &Arc<Bank>, actor: &AccountNumber, id: TransferId) -> OpResult<(Transfer, Vec<u16>)> {
    match super::transfer_of(bank, actor, id).await {
        Ok(transfer) => {
            let numbers = (0..transfer.legs.len()).map(|i| i as u16).collect();
            Ok((transfer, numbers))
        }
        Err(ServiceError::Core(Error::NotFound(detail))) => {
            let known = known(bank, actor, id).await?;
            let here = bank.bank_id;
            let mine = |b: BankId, n: &AccountNumber| b == here && known.visible.contains(n);
            let legs: Vec<&PixLeg> = known
                .legs
                .iter()
                .map(|s| &s.pix)
                .filter(|p| mine(p.from.bank_id, &p.from.number) || mine(p.to.bank_id, &p.to.number))
                .collect();
            let Some(first) = legs.first() else { return Err(ServiceError::Core(Error::NotFound(detail))) };
            let transfer = Transfer {
                id,
                status: Status::Completed,
                legs: legs
                    .iter()
                    .map(|p| bank_core::ledger::TransferLeg {
                        from: p.from.clone(),
                        from_name: p.from_name.clone(),
                        to: p.to.clone(),
                        amount: p.amount,
                        status: Status::Completed,
                    })
                    .collect(),
                failure: None,
                description: None,
                actor: first.to.number.clone(),
                created_at: first.created_at,
                refund_of: first.refund_of,
            };
            Ok((transfer, legs.iter().map(|p| p.leg).collect()))
        }
        Err(other) => Err(other),
    }
}
