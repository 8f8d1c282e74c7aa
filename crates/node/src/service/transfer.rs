//! Money and keys that may involve other banks: transfers (and the wait for a cross-bank one's
//! decision) and Pix key registration, consortium-wide when the bank is in a consortium.

use std::sync::Arc;

use bank_core::Error;
use bank_core::ErrorCode;
use bank_core::ids::{AccountNumber, BankId, Fingerprint, IdempotencyKey, TimestampMs, TransferId};
use bank_core::ledger::{Destination, KeyRequest, LegRequest, Outcome, Status, Transfer, TransferRequest};
use bank_core::pixkey::PixKey;
use bank_core::twopc::{Decision, Refusal};

use super::{Bank, OpResult, ServiceError, visible_accounts};
use crate::driver::Progress;
use crate::storage::read;

/// A transfer as it stands when its answer is due.
#[derive(Debug, Clone)]
pub struct TransferAnswer {
    pub transfer: Transfer,
    /// For a transfer still pending at the deadline: the decision, if one was taken.
    pub decision: Option<Decision>,
}

/// Runs a transfer: a rejection is an error and changes nothing; an executed transfer is
/// answered as it stands at the response deadline (a cross-bank one after its decision and
/// delivery, or `pending` with the decision if known).
pub async fn transfer(
    bank: &Arc<Bank>,
    actor: AccountNumber,
    legs: Vec<LegRequest>,
    description: Option<String>,
    idempotency: (IdempotencyKey, Fingerprint),
) -> OpResult<TransferAnswer> {
    refuse_where_clocks_disagree(bank, &legs, (&actor, idempotency.0)).await?;
    let id = TransferId(uuid::Uuid::now_v7());
    let request = TransferRequest {
        idempotency_key: idempotency.0,
        fingerprint: idempotency.1,
        actor,
        legs,
        description,
        transfer_id: id,
        now: TimestampMs(0),
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(bank.limits.transfer_deadline_ms);
    // Watched before it is submitted: a transfer that waits for the token may be begun — and
    // decided — by another command, before this request is told it was queued.
    let progress = bank.driver.watch(id);
    let submitted = submit(bank, bank.writer.transfer(request).await);
    answer_when_due(bank, id, progress, submitted, deadline).await
}

/// The answer of a transfer (or refund) `id` just submitted: at once if it was refused, ran here
/// or is a repeat; else once it is finished, or pending at `deadline`.
pub(super) async fn answer_when_due(
    bank: &Arc<Bank>,
    id: TransferId,
    progress: tokio::sync::watch::Receiver<Progress>,
    submitted: OpResult<(Transfer, Vec<crate::storage::writer::ProtocolOutput>)>,
    deadline: tokio::time::Instant,
) -> OpResult<TransferAnswer> {
    let outputs = match submitted {
        Ok((pending, outputs)) if pending.id == id && pending.status == Status::Pending => outputs,
        other => {
            // Refused, ran here at once, or a repeat: the answer is what is recorded.
            bank.driver.unwatch(id);
            let transfer = other?.0;
            bank.metrics.operation("transfer", transfer.status.as_str());
            return Ok(TransferAnswer { transfer, decision: None });
        }
    };
    bank.driver.dispatch(outputs).await;
    let last = bank.driver.wait(progress, deadline).await;
    let _ = bank.driver.take_refusal(id);
    bank.driver.unwatch(id);
    let stored = bank.reads.run(move |c| read::transfer(c, &id)).await?;
    let transfer = stored.ok_or_else(|| ServiceError::Internal(format!("transfer {id} vanished")))?;
    let decision = match (transfer.status, last) {
        (Status::Pending, Progress::Decided(d) | Progress::Finished(d)) => Some(d),
        _ => None,
    };
    bank.metrics.operation("transfer", transfer.status.as_str());
    tracing::debug!(transfer_id = %id, status = transfer.status.as_str(), "transfer answered");
    Ok(TransferAnswer { transfer, decision })
}

/// Refuses at once (503 `bank_unavailable`, saying why) a transfer touching a bank whose clock
/// disagrees with this bank's (`peer::clock`): the two could not finish it — each refuses the
/// other's messages as too old or too new — and the customer would wait for its deadline for
/// nothing. Costs nothing while every clock agrees. A repeat of a request already executed
/// (`request`: its account and Idempotency-Key) is never refused: it is answered with its first
/// outcome, as API.md promises, by the ledger's replay.
async fn refuse_where_clocks_disagree(
    bank: &Arc<Bank>,
    legs: &[LegRequest],
    request: (&AccountNumber, IdempotencyKey),
) -> OpResult<()> {
    let Some(interbank) = &bank.interbank else { return Ok(()) };
    let clocks = interbank.peers.clocks();
    if !clocks.any_disagreement() {
        return Ok(());
    }
    super::consortium::refresh_disagreeing_clocks(bank);
    for leg in legs {
        let to = match &leg.to {
            Destination::Account(account) => Some(account.bank_id),
            Destination::Key(key) => {
                let key = key.clone();
                bank.reads.run(move |c| read::remote_key(c, &key)).await?.map(|remote| remote.bank_id)
            }
        };
        for peer in leg.from.as_ref().map(|from| from.bank_id).into_iter().chain(to) {
            if let Some(reading) = clocks.disagreement(peer) {
                let (account, key) = (request.0.clone(), request.1);
                let executed = bank.reads.run(move |c| crate::storage::read_idempotency(c, &account, key)).await?;
                if executed.is_some() {
                    return Ok(());
                }
                let reason = crate::peer::clock::describe(peer, &reading, clocks.allowed_ms());
                bank.metrics.operation("transfer", "clock_disagrees");
                return Err(ServiceError::Core(Error::BankUnavailable(reason)));
            }
        }
    }
    Ok(())
}

/// What the writer answered a transfer (or refund): the transfer as planned and the protocol's
/// first outputs.
pub(super) fn submit(
    bank: &Arc<Bank>,
    answered: Result<(Outcome, Vec<crate::storage::writer::ProtocolOutput>), Error>,
) -> OpResult<(Transfer, Vec<crate::storage::writer::ProtocolOutput>)> {
    let (outcome, outputs) = match answered {
        Ok(done) => done,
        Err(e) => {
            bank.metrics.operation("transfer", "rejected");
            return Err(e.into());
        }
    };
    match outcome {
        Outcome::Transfer(t) => Ok((t, outputs)),
        other => Err(ServiceError::Internal(format!("a transfer answered {other:?}"))),
    }
}

/// A transfer the signed-in customer may see: one they submitted (this bank coordinated it) or
/// one with a leg touching an account of theirs here.
pub async fn transfer_of(bank: &Arc<Bank>, number: &AccountNumber, id: TransferId) -> OpResult<Transfer> {
    let (_, visible) = visible_accounts(bank, number).await?;
    let transfer = bank.reads.run(move |c| read::transfer(c, &id)).await?;
    let not_found = || ServiceError::Core(Error::NotFound(format!("no transfer {id} of yours")));
    let transfer = transfer.ok_or_else(not_found)?;
    let own = |bank_id: BankId, n: &AccountNumber| bank_id == bank.bank_id && visible.contains(n);
    let mine = visible.contains(&transfer.actor)
        || transfer.legs.iter().any(|l| own(l.from.bank_id, &l.from.number) || own(l.to.bank_id, &l.to.number));
    if !mine {
        return Err(not_found());
    }
    Ok(transfer)
}

/// Registers an e-mail, phone or random key, consortium-wide when the bank is in a consortium.
pub async fn register_key(bank: &Arc<Bank>, account: AccountNumber, request: KeyRequest) -> OpResult<PixKey> {
    if bank.interbank.is_none() {
        return Ok(bank.writer.register_key(account, request).await?);
    }
    Ok(register_consortium_key(bank, account, Some(request)).await?)
}

/// Registers a key at every bank of the consortium (DESIGN.md §5a) and waits until every bank has
/// it (`None`: the account's CPF/CNPJ key, at opening): 409 `conflict` when a bank has it (or is
/// registering it), 503 `bank_unavailable` when a bank cannot be asked — uniqueness is never
/// guessed.
pub async fn register_consortium_key(
    bank: &Arc<Bank>,
    account: AccountNumber,
    request: Option<KeyRequest>,
) -> Result<PixKey, Error> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(bank.limits.transfer_deadline_ms);
    let (id, key, outputs) = bank.writer.claim_key(account, request).await?;
    let progress = bank.driver.watch(id);
    bank.driver.dispatch(outputs).await;
    let last = bank.driver.wait(progress, deadline).await;
    // The refusal first: the waiter leaving takes its refusal with it.
    let refusal = bank.driver.take_refusal(id);
    bank.driver.unwatch(id);
    match last {
        Progress::Finished(Decision::Committed) => Ok(key),
        Progress::Decided(Decision::Aborted) | Progress::Finished(Decision::Aborted) => Err(match refusal {
            Some(Refusal { code: ErrorCode::Conflict, detail }) => Error::Conflict(detail),
            other => {
                let detail = other.map(|r| r.detail).unwrap_or_default();
                Error::BankUnavailable(format!("the key could not be registered at every bank: {detail}"))
            }
        }),
        // Committed but not yet delivered everywhere, or still undecided at the deadline.
        _ => Err(Error::BankUnavailable(format!(
            "the registration of {} is still in progress; look the key up again shortly",
            key.normalized()
        ))),
    }
}
