//! A customer's operations, each written once, shared by the JSON API (`api`), the web pages
//! (`web`) and the inter-bank routes (`interbank`): the same core calls, reads and waits behind
//! all of them, so a page never does what the API would refuse. Callers parse input and shape
//! the answer; this module returns domain values and a [`ServiceError`].
//!
//! It may import `driver`, `peer`, `storage`, `auth`, `metrics`, `config` and the core; nothing
//! above it (`api`, `web`, `interbank`, `app`).

use std::sync::Arc;

use bank_core::Error;
use bank_core::account::Account;
use bank_core::ids::{AccountNumber, BankId, TimestampMs, TransferId};
use bank_core::ledger::{Decision, KeyRequest, LegRequest, Outcome, Status, TransferRequest};
use bank_core::pixkey::PixKey;

use crate::api::dto::{BalanceOut, ConsortiumAccountOut, EntryOut, KeyLookupOut, TransferOut};
use crate::auth::SessionCache;
use crate::config::Limits;
use crate::driver::Progress;
use crate::metrics::Metrics;
use crate::storage::StorageError;
use crate::storage::read::{self, ReadPool};
use crate::storage::writer::WriterHandle;

/// One bank's services and what they share: every handler (API, pages, inter-bank) holds an
/// `Arc<Bank>` and calls the operations below.
#[derive(Debug)]
pub struct Bank {
    pub bank_id: BankId,
    pub bank_name: String,
    pub public_url: String,
    pub writer: WriterHandle,
    pub reads: ReadPool,
    pub entry_index: Arc<crate::storage::EntryIndex>,
    pub sessions: SessionCache,
    pub hashers: crate::auth::HasherPool,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// The consortium link (verifier and peer client); `None` for a bank running alone.
    pub interbank: Option<Arc<crate::peer::Interbank>>,
    pub driver: crate::driver::Driver,
    /// The coordination mode this bank runs (a bank alone reports its configured mode).
    pub coordination_mode: crate::config::CoordinationMode,
    /// The token ring as the writer last published it; `None` unless in `token-ring` mode.
    pub ring: Option<Arc<crate::storage::ring::RingView>>,
    /// Whether the operator's fault switch route is enabled.
    pub fault_switch: bool,
}

/// Why an operation did not happen: a refusal of the core (the client's to fix, or retryable),
/// or an internal failure (logged, answered opaquely).
#[derive(Debug)]
pub enum ServiceError {
    Core(Error),
    Internal(String),
}

impl From<Error> for ServiceError {
    fn from(e: Error) -> Self {
        ServiceError::Core(e)
    }
}

impl From<StorageError> for ServiceError {
    fn from(e: StorageError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Core(e) => e.fmt(f),
            ServiceError::Internal(cause) => write!(f, "internal error: {cause}"),
        }
    }
}

pub type OpResult<T> = Result<T, ServiceError>;

fn gone() -> ServiceError {
    ServiceError::Core(Error::Unauthorized("the signed-in account no longer exists".into()))
}

/// The signed-in account, its keys, and the accounts it may spend from (as `visible_accounts`).
pub async fn account(state: &Arc<Bank>, number: &AccountNumber) -> OpResult<(Account, Vec<(String, String)>)> {
    let n = number.clone();
    let view = state.reads.run(move |c| read::account(c, &n)).await?.ok_or_else(gone)?;
    let keys = view.keys.into_iter().map(|(key, kind)| (key, kind.as_str().to_string())).collect();
    Ok((view.account, keys))
}

/// The customer's accounts in every bank (as `GET /api/v1/consortium/accounts`).
pub async fn consortium_accounts(
    state: &Arc<Bank>,
    number: &AccountNumber,
) -> OpResult<(Vec<ConsortiumAccountOut>, Vec<u32>)> {
    let n = number.clone();
    let found = state
        .reads
        .run(move |c| {
            let Some(view) = read::account(c, &n)? else { return Ok(None) };
            let mut accounts = Vec::new();
            for s in read::spendable(c, &view.account)? {
                if let Some(v) = read::account(c, &s)? {
                    accounts.push(v.account);
                }
            }
            Ok(Some((view.account, accounts)))
        })
        .await?;
    let (actor, accounts) = found.ok_or_else(gone)?;
    let mut out: Vec<ConsortiumAccountOut> = accounts
        .iter()
        .map(|a| ConsortiumAccountOut {
            bank_id: state.bank_id.0,
            bank_name: state.bank_name.clone(),
            number: a.number.to_string(),
            kind: a.kind.as_str(),
            balance: Some(BalanceOut::of(a)),
        })
        .collect();
    let mut unreachable = Vec::new();
    if let (Some(interbank), Some(document)) = (&state.interbank, actor.acting_document()) {
        let query = crate::peer::AccountsOf { document: document.clone() };
        let asks = interbank.members.values().filter(|m| m.id != state.bank_id).map(|member| {
            let (client, query) = (interbank.peers.clone(), query.clone());
            async move {
                let answer = client
                    .post_json::<_, crate::peer::HeldAccounts>(member.id, crate::peer::ACCOUNTS_OF_PATH, &query)
                    .await;
                (member, answer)
            }
        });
        for (member, answer) in futures::future::join_all(asks).await {
            match answer {
                Ok(held) => out.extend(held.accounts.into_iter().map(|a| ConsortiumAccountOut {
                    bank_id: member.id.0,
                    bank_name: member.name.clone(),
                    number: a.number.to_string(),
                    kind: a.kind.as_str(),
                    balance: Some(BalanceOut {
                        posted_cents: a.posted_cents,
                        held_cents: a.held_cents,
                        available_cents: a.posted_cents - a.held_cents,
                    }),
                })),
                Err(_) => unreachable.push(member.id.0),
            }
        }
    }
    Ok((out, unreachable))
}

/// The name of a member bank (this one included).
pub fn bank_name(state: &Bank, id: u32) -> String {
    if id == state.bank_id.0 {
        return state.bank_name.clone();
    }
    state
        .interbank
        .as_ref()
        .and_then(|ib| ib.members.get(&bank_core::ids::BankId(id)))
        .map(|m| m.name.clone())
        .unwrap_or_else(|| format!("bank {id}"))
}

/// Whom a key belongs to (as `GET /api/v1/pix-keys/{key}`).
pub async fn lookup_key(state: &Arc<Bank>, key: &PixKey) -> OpResult<KeyLookupOut> {
    let k = key.clone();
    let view = state.reads.run(move |c| read::key_owner(c, &k)).await?;
    if let Some(view) = view {
        let masked = view.account.holders.iter().map(|h| h.document.masked()).collect::<Vec<_>>().join(", ");
        return Ok(KeyLookupOut {
            key: view.key.normalized(),
            kind: view.key.key_type(),
            bank_id: state.bank_id.0,
            bank_name: state.bank_name.clone(),
            holder_name: view.account.display_name(),
            masked_document: masked,
        });
    }
    let k = key.clone();
    let remote = state.reads.run(move |c| read::remote_key(c, &k)).await?;
    let remote = remote.ok_or_else(|| ServiceError::Core(Error::UnknownKey(key.normalized())))?;
    Ok(KeyLookupOut {
        key: key.normalized(),
        kind: key.key_type(),
        bank_id: remote.bank_id.0,
        bank_name: bank_name(state, remote.bank_id.0),
        holder_name: remote.holder_name,
        masked_document: remote.masked_document,
    })
}

/// Recent statement lines of an account, newest first, and the cursor of the next page.
pub async fn entries(
    state: &Arc<Bank>,
    account: &AccountNumber,
    before: Option<u64>,
    limit: usize,
) -> OpResult<(Vec<EntryOut>, Option<u64>)> {
    let ids = state.entry_index.page(account, before, limit);
    let entries = state.reads.run(move |c| read::entries(c, &ids)).await?;
    let next = if entries.len() == limit { entries.last().map(|e| e.id.0) } else { None };
    Ok((entries.iter().map(EntryOut::from).collect(), next))
}

/// Runs a transfer — `POST /api/v1/transfers` and the pages alike: a rejection is an error and
/// changes nothing; an executed transfer is answered as it stands at the response deadline (a
/// cross-bank one after its decision and delivery, or `pending` with the decision if known).
pub async fn transfer(
    state: &Arc<Bank>,
    actor: AccountNumber,
    legs: Vec<LegRequest>,
    description: Option<String>,
    idempotency: (bank_core::ids::IdempotencyKey, bank_core::ids::Fingerprint),
) -> OpResult<TransferOut> {
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
    let deadline = std::time::Duration::from_millis(state.limits.transfer_deadline_ms);
    let started = tokio::time::Instant::now();
    // Watched before it is submitted: a transfer that waits for the token may be begun — and
    // decided — by another command, before this request is told it was queued.
    let progress = state.driver.watch(id);
    let (outcome, outputs) = match state.writer.transfer(request).await {
        Ok(done) => done,
        Err(e) => {
            state.driver.unwatch(id);
            state.metrics.operation("transfer", "rejected");
            return Err(e.into());
        }
    };
    let pending = match outcome {
        Outcome::Transfer(t) => t,
        other => {
            state.driver.unwatch(id);
            return Err(ServiceError::Internal(format!("a transfer answered {other:?}")));
        }
    };
    if pending.id != id || pending.status != Status::Pending {
        // Ran here at once, or a repeat: the answer is what is recorded.
        state.driver.unwatch(id);
        state.metrics.operation("transfer", pending.status.as_str());
        return Ok(TransferOut::from(&pending));
    }
    state.driver.dispatch(outputs).await;
    let last = state.driver.wait(progress, started + deadline).await;
    let _ = state.driver.take_refusal(id);
    state.driver.unwatch(id);
    let stored = state.reads.run(move |c| read::transfer(c, &id)).await?;
    let transfer = stored.ok_or_else(|| ServiceError::Internal(format!("transfer {id} vanished")))?;
    let mut out = TransferOut::from(&transfer);
    if transfer.status == Status::Pending {
        out.decision = match last {
            Progress::Decided(Decision::Committed) | Progress::Finished(Decision::Committed) => Some("commit"),
            Progress::Decided(Decision::Aborted) | Progress::Finished(Decision::Aborted) => Some("abort"),
            Progress::Preparing => None,
        };
    }
    state.metrics.operation("transfer", transfer.status.as_str());
    tracing::debug!(transfer_id = %id, status = transfer.status.as_str(), "transfer answered");
    Ok(out)
}

/// A transfer the signed-in customer may see (as `GET /api/v1/transfers/{id}`).
pub async fn transfer_of(state: &Arc<Bank>, number: &AccountNumber, id: TransferId) -> OpResult<TransferOut> {
    let n = number.clone();
    let visible = state
        .reads
        .run(move |c| {
            let Some(view) = read::account(c, &n)? else { return Ok(None) };
            read::spendable(c, &view.account).map(Some)
        })
        .await?
        .ok_or_else(gone)?;
    let transfer = state.reads.run(move |c| read::transfer(c, &id)).await?;
    let not_found = || ServiceError::Core(Error::NotFound(format!("no transfer {id} of yours")));
    let transfer = transfer.ok_or_else(not_found)?;
    let own = |bank: bank_core::ids::BankId, n: &AccountNumber| bank == state.bank_id && visible.contains(n);
    let mine = visible.contains(&transfer.actor)
        || transfer.legs.iter().any(|l| own(l.from.bank_id, &l.from.number) || own(l.to.bank_id, &l.to.number));
    if !mine {
        return Err(not_found());
    }
    Ok(TransferOut::from(&transfer))
}

/// Registers an e-mail, phone or random key (as `POST /api/v1/pix-keys`), consortium-wide when
/// the bank is in a consortium.
pub async fn register_key(state: &Arc<Bank>, account: AccountNumber, request: KeyRequest) -> OpResult<PixKey> {
    if state.interbank.is_none() {
        return Ok(state.writer.register_key(account, request).await?);
    }
    Ok(register_consortium_key(state, account, Some(request)).await?)
}

/// Registers a key at every bank of the consortium (DESIGN.md §5a) and waits until every bank has
/// it (`None`: the account's CPF/CNPJ key, at opening): 409 `conflict` when a bank has it (or is
/// registering it), 503 `bank_unavailable` when a bank cannot be asked — uniqueness is never
/// guessed. The API and the pages both call this.
pub async fn register_consortium_key(
    state: &Arc<Bank>,
    account: AccountNumber,
    request: Option<KeyRequest>,
) -> Result<PixKey, Error> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(state.limits.transfer_deadline_ms);
    let (id, key, outputs) = state.writer.claim_key(account, request).await?;
    let progress = state.driver.watch(id);
    state.driver.dispatch(outputs).await;
    let last = state.driver.wait(progress, deadline).await;
    state.driver.unwatch(id);
    match last {
        Progress::Finished(Decision::Committed) => Ok(key),
        Progress::Decided(Decision::Aborted) | Progress::Finished(Decision::Aborted) => {
            let (code, detail) = state.driver.take_refusal(id).unwrap_or_default();
            Err(match code.as_str() {
                "conflict" => Error::Conflict(detail),
                _ => Error::BankUnavailable(format!("the key could not be registered at every bank: {detail}")),
            })
        }
        // Committed but not yet delivered everywhere, or still undecided at the deadline.
        _ => Err(Error::BankUnavailable(format!(
            "the registration of {} is still in progress; look the key up again shortly",
            key.normalized()
        ))),
    }
}
