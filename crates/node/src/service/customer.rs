//! A customer's own account: opening it, signing in and out, reading it, deposits, withdrawals
//! and the statement.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bank_core::Error;
use bank_core::account::{Account, NewAccount, check_password};
use bank_core::contact::Email;
use bank_core::ids::{AccountNumber, Fingerprint, IdempotencyKey, TimestampMs};
use bank_core::ledger::{DepositMethod, Entry, Outcome};
use bank_core::money::Amount;
use bank_core::pixkey::PixKey;

use super::{Bank, OpResult, ServiceError, gone, register_consortium_key};
use crate::auth;
use crate::auth::throttle::Attempt;
use crate::storage::read::{self, AccountView};
use crate::storage::writer::now_ms;

/// A session just opened.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub token: String,
    pub account: AccountNumber,
    pub expires_at: TimestampMs,
}

/// What became of an account's CPF/CNPJ Pix key at opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKey {
    /// Registered by the ledger itself (a bank alone), or the account has none (joint).
    Local,
    /// Registered at every bank of the consortium.
    Registered,
    /// Not registered (a bank refused or could not be asked); the account stands without it.
    Missing,
}

/// An account just opened.
#[derive(Debug, Clone)]
pub struct OpenedAccount {
    pub account: Account,
    pub keys: Vec<PixKey>,
    pub warnings: Vec<String>,
    pub document_key: DocumentKey,
}

/// Checks `password` and opens the account `new` (its hash is computed here), then registers
/// its CPF/CNPJ key consortium-wide when the bank is in a consortium. Refusals change nothing.
pub async fn open_account(bank: &Arc<Bank>, new: NewAccount, password: String) -> OpResult<OpenedAccount> {
    check_password(&password)?;
    if auth::is_common_password(&password) {
        return Err(ServiceError::Core(Error::invalid(
            "this password is one of the most common ones, which guessers try first; choose another",
        )));
    }
    new.validate()?;
    let password_hash =
        bank.hashers.run(move || auth::hash_password(&password)).await.ok_or(ServiceError::Core(Error::Overloaded))?;
    let password_hash = password_hash.map_err(ServiceError::Internal)?;
    let opened = bank.writer.open_account(NewAccount { password_hash, ..new }).await;
    bank.metrics.operation("open_account", if opened.is_ok() { "ok" } else { "rejected" });
    let opened = opened?;
    let mut out = OpenedAccount {
        account: opened.account,
        keys: opened.keys,
        warnings: opened.warnings,
        document_key: DocumentKey::Local,
    };
    if bank.interbank.is_some() && out.account.acting_document().is_some() {
        // The CPF/CNPJ key is registered consortium-wide; the account stands either way.
        match register_consortium_key(bank, out.account.number.clone(), None).await {
            Ok(key) => {
                out.keys.push(key);
                out.document_key = DocumentKey::Registered;
            }
            Err(e) => {
                out.warnings.push(format!("the account was opened without its CPF/CNPJ Pix key: {e}"));
                out.document_key = DocumentKey::Missing;
            }
        }
    }
    tracing::info!(account = %out.account.number, kind = out.account.kind.as_str(), "account opened");
    Ok(out)
}

/// Checks an e-mail and password and opens a session. A wrong e-mail costs the same hashing as
/// a wrong password (a decoy hash), so the answer's timing does not tell which was wrong.
///
/// Failed attempts are throttled per e-mail (known or not, so the answer does not tell either)
/// and per client address (`client`, when known): past the budget every attempt, even with the
/// right password, is refused with [`Error::TooManyAttempts`] before any hashing.
pub async fn sign_in(bank: &Arc<Bank>, client: Option<IpAddr>, email: &str, password: String) -> OpResult<SignedIn> {
    let email = Email::parse(email).map(|e| e.as_str().to_string()).ok();
    let throttle = &bank.sessions.sign_ins;
    let attempt = Attempt { email: email.clone(), address: client };
    let permit = match throttle.begin(attempt, Instant::now()) {
        Ok(permit) => permit,
        Err(wait) => {
            bank.metrics.operation("sign_in", "throttled");
            tracing::info!(client = ?client, "sign-in throttled after repeated failures");
            return Err(ServiceError::Core(Error::TooManyAttempts {
                attempts: bank_core::error::Attempts::SignIns,
                retry_after_s: crate::auth::throttle::whole_seconds(wait),
            }));
        }
    };
    match check_credentials(bank, email.unwrap_or_default(), password).await {
        Ok(Some(number)) => {
            throttle.succeeded(permit);
            open_session(bank, number).await
        }
        Ok(None) => {
            throttle.failed(permit, Instant::now());
            bank.metrics.operation("sign_in", "rejected");
            Err(ServiceError::Core(Error::Unauthorized("wrong e-mail or password".into())))
        }
        Err(e) => {
            // The password was not checked (the bank is busy): the attempt costs nothing.
            throttle.not_checked(permit, Instant::now());
            Err(e)
        }
    }
}

/// The account whose e-mail and password these are; `None` if either is wrong.
async fn check_credentials(bank: &Arc<Bank>, email: String, password: String) -> OpResult<Option<AccountNumber>> {
    let found = bank.reads.run(move |c| read::credentials(c, &email)).await?;
    let (number, hash) = match found {
        Some((number, hash)) => (Some(number), hash),
        None => (None, auth::decoy_hash().to_string()),
    };
    let ok = bank
        .hashers
        .run(move || auth::verify_password(&password, &hash))
        .await
        .ok_or(ServiceError::Core(Error::Overloaded))?;
    Ok(number.filter(|_| ok))
}

/// Opens a session for an account whose holder has just proved who they are.
pub async fn open_session(bank: &Arc<Bank>, number: AccountNumber) -> OpResult<SignedIn> {
    let (token, token_hash) = auth::new_token().map_err(ServiceError::Internal)?;
    let expires_at = TimestampMs(now_ms().0 + (bank.limits.session_ttl_s as i64) * 1000);
    bank.writer.create_session(token_hash, number.clone(), expires_at).await?;
    let inserted = bank.sessions.insert(token_hash, number.clone(), expires_at, bank.limits.sessions_per_account_max);
    bank.metrics.set_sessions(inserted.live);
    // Ended in memory already (refused from now on); made durable so a restart does not revive
    // them. Were this interrupted, the start-up load enforces the bound again.
    for ended in inserted.ended {
        bank.writer.revoke_session(ended).await?;
    }
    bank.metrics.operation("sign_in", "ok");
    Ok(SignedIn { token, account: number, expires_at })
}

/// Ends the session whose token hashes to `token_hash`.
pub async fn sign_out(bank: &Arc<Bank>, token_hash: [u8; 32]) -> OpResult<()> {
    bank.writer.revoke_session(token_hash).await?;
    let live = bank.sessions.remove(&token_hash);
    bank.metrics.set_sessions(live);
    Ok(())
}

/// The signed-in account and its keys.
pub async fn account(bank: &Arc<Bank>, number: &AccountNumber) -> OpResult<AccountView> {
    let n = number.clone();
    bank.reads.run(move |c| read::account(c, &n)).await?.ok_or_else(gone)
}

/// Every account here of which `document` is a holder (the seed-compatible API names accounts
/// by their holder's document, as the original did).
pub async fn accounts_of_document(
    bank: &Arc<Bank>,
    document: &bank_core::document::Document,
) -> OpResult<Vec<Account>> {
    let document = document.clone();
    Ok(bank.reads.run(move |c| read::accounts_of_document(c, &document)).await?)
}

/// The signed-in account and the accounts it may see and spend from (joint ones included).
pub async fn visible_accounts(bank: &Arc<Bank>, number: &AccountNumber) -> OpResult<(Account, Vec<AccountNumber>)> {
    let n = number.clone();
    let found = bank
        .reads
        .run(move |c| {
            let Some(view) = read::account(c, &n)? else { return Ok(None) };
            let spendable = read::spendable(c, &view.account)?;
            Ok(Some((view.account, spendable)))
        })
        .await?;
    found.ok_or_else(gone)
}

/// Counts an operation's outcome in the metrics.
fn record(bank: &Bank, operation: &'static str, result: &Result<Outcome, Error>) {
    let outcome = match result {
        Ok(Outcome::Transfer(t)) => t.status.as_str(),
        Ok(Outcome::Entry(_)) => "completed",
        Ok(Outcome::Replayed(_)) => "replayed",
        Err(_) => "rejected",
    };
    bank.metrics.operation(operation, outcome);
}

/// A deposit into the signed-in account (a repeat with the same key answers the first outcome).
pub async fn deposit(
    bank: &Arc<Bank>,
    account: AccountNumber,
    amount: Amount,
    method: DepositMethod,
    idempotency: (IdempotencyKey, Fingerprint),
) -> OpResult<Outcome> {
    let result = bank.writer.deposit(account, amount, method, idempotency).await;
    record(bank, "deposit", &result);
    Ok(result?)
}

/// A withdrawal from the signed-in account.
pub async fn withdraw(
    bank: &Arc<Bank>,
    account: AccountNumber,
    amount: Amount,
    idempotency: (IdempotencyKey, Fingerprint),
) -> OpResult<Outcome> {
    let result = bank.writer.withdraw(account, amount, idempotency).await;
    record(bank, "withdrawal", &result);
    Ok(result?)
}

/// A page of statement lines of `wanted` (the signed-in account when `None`; another one only
/// if the customer may see it), newest first, and the cursor of the next page.
pub async fn statement(
    bank: &Arc<Bank>,
    signed_in: &AccountNumber,
    wanted: Option<AccountNumber>,
    before: Option<u64>,
    limit: usize,
) -> OpResult<(Vec<Entry>, Option<u64>)> {
    let account = match wanted {
        None => signed_in.clone(),
        Some(wanted) => {
            let (_, visible) = visible_accounts(bank, signed_in).await?;
            if !visible.contains(&wanted) {
                return Err(ServiceError::Core(Error::Forbidden(format!("account {wanted} is not yours"))));
            }
            wanted
        }
    };
    let page = bank.reads.run(move |c| read::statement_page(c, &account, before, limit)).await?;
    let entries = match page {
        read::StatementPage::Lines(entries) => entries,
        read::StatementPage::NotACursor => {
            return Err(ServiceError::Core(Error::invalid("before must be a cursor from `next` of this statement")));
        }
    };
    let next = if entries.len() == limit { entries.last().map(|e| e.id.0) } else { None };
    Ok((entries, next))
}
