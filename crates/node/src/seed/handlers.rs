//! The seed routes: parse the original's shapes, call `service`, answer as the original did.
//! Every refusal is a 4xx with a short text and changes nothing; money moves only through the
//! service calls `/api/v1` uses (deposit, transfer with its 2PC and 5 s wait).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bank_core::Error;
use bank_core::account::{Account, AccountKind, Holder, NewAccount, parse_name};
use bank_core::contact::{Email, Phone};
use bank_core::document::Document;
use bank_core::ids::{AccountNumber, BankId, Fingerprint, IdempotencyKey, TransferId};
use bank_core::ledger::{AccountRef, DepositMethod, Destination, Entry, LEGS_MAX, LegRequest, Status, Transfer};
use bank_core::pixkey::PixKey;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::account::{AccountJson, AccountParts, account_json, coordinator_of, our_number};
use super::input::{self, Flag, OperationIn};
use super::{SeedError, SeedResult, SeedState};
use crate::auth::ClientAddr;
use crate::service::{self, Bank, ServiceError, TransferAnswer};
use crate::storage::writer::now_ms;

type St = State<Arc<Bank>>;
type Seed = Extension<Arc<SeedState>>;

/// Statement lines shown in the Account JSON (the interface lists recent ones; a poll each
/// second must stay cheap).
const TRANSACTIONS_SHOWN: usize = 30;

pub async fn bank(State(bank): St) -> Json<Value> {
    Json(json!({ "nameBank": bank.bank_name }))
}

/// The original's accounts list served every account to anyone. Here it is the operator's,
/// who reads every account with `bank audit` (operator-signed `/interbank/v1/audit`).
pub async fn accounts() -> SeedError {
    SeedError::new(
        StatusCode::UNAUTHORIZED,
        "operator only: the consortium operator reads every account with `bank audit`",
    )
}

fn json_body(bytes: &Bytes) -> SeedResult<Value> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| SeedError::bad_request(format!("invalid JSON: {e}")))?;
    if value.is_object() { Ok(value) } else { Err(SeedError::bad_request("the body must be a JSON object")) }
}

/// A missing account reads as 404 here (the service calls it a stale session's account).
fn missing_is_not_found(e: ServiceError) -> SeedError {
    match e {
        ServiceError::Core(Error::Unauthorized(_)) => SeedError::not_found("account not found"),
        other => other.into(),
    }
}

/// The Account JSON of `number`. `fresh` asks the other banks for the holder's banks now;
/// otherwise a list a few seconds old is reused (the interface polls every second).
async fn account_out(
    bank: &Arc<Bank>,
    seed: &SeedState,
    number: &AccountNumber,
    fresh: bool,
) -> SeedResult<AccountJson> {
    let view = service::account(bank, number).await.map_err(missing_is_not_found)?;
    let (entries, _) =
        service::statement(bank, number, None, None, TRANSACTIONS_SHOWN).await.map_err(missing_is_not_found)?;
    let cache_key = match view.account.acting_document() {
        Some(document) => document.as_str().to_string(),
        None => number.as_str().to_string(),
    };
    let cached = if fresh { None } else { seed.banks_list(&cache_key) };
    let banks_list = match cached {
        Some(list) => list,
        None => {
            let list = banks_list(bank, number).await?;
            seed.remember_banks_list(&cache_key, &list);
            list
        }
    };
    let transfers = coordinated_transfers(bank, seed, number, &entries).await;
    let bank_of = |id: u32| service::bank_name(bank, BankId(id));
    let parts = AccountParts {
        bank_name: &bank.bank_name,
        bank_id: bank.bank_id.0,
        banks_list,
        entries: &entries,
        transfers: &transfers,
        bank_of: &bank_of,
    };
    Ok(account_json(&view, parts))
}

/// The records of the cross-bank transfers among `entries` that this bank coordinated (their
/// statement lines name only the transfer). A decided transfer never changes, so each is read
/// once and then remembered: the interface's polling stays at the reads of the account.
async fn coordinated_transfers(
    bank: &Arc<Bank>,
    seed: &SeedState,
    number: &AccountNumber,
    entries: &[Entry],
) -> HashMap<TransferId, Transfer> {
    let mut found = HashMap::new();
    for entry in entries {
        let Some(id) = entry.transfer_id else { continue };
        if found.contains_key(&id) || coordinator_of(entry) != Some(bank.bank_id.0) {
            continue;
        }
        if let Some(transfer) = seed.transfer(&id) {
            found.insert(id, transfer);
            continue;
        }
        // Unreadable now: the line falls back to naming the bank; the next poll tries again.
        if let Ok(transfer) = service::transfer_of(bank, number, id).await {
            if transfer.status != Status::Pending {
                seed.remember_transfer(&transfer);
            }
            found.insert(id, transfer);
        }
    }
    found
}

/// The names of the banks where the account's holder has accounts, this bank first.
async fn banks_list(bank: &Arc<Bank>, number: &AccountNumber) -> SeedResult<Vec<String>> {
    let found = service::consortium_accounts(bank, number).await.map_err(missing_is_not_found)?;
    let mut names = vec![bank.bank_name.clone()];
    let mut others: Vec<_> = found.accounts.iter().filter(|a| a.bank_id != bank.bank_id).collect();
    others.sort_by_key(|a| a.bank_id);
    for account in others {
        if !names.contains(&account.bank_name) {
            names.push(account.bank_name.clone());
        }
    }
    Ok(names)
}

pub async fn login(
    State(bank): St,
    Extension(seed): Seed,
    client: ClientAddr,
    body: Bytes,
) -> SeedResult<Json<AccountJson>> {
    let v = json_body(&body)?;
    let email = input::required(&v, "email")?;
    let password = input::required(&v, "password")?;
    // Throttled and timed like every sign-in; the session is not needed (the original has none).
    let session = service::sign_in(&bank, client.0, &email, password).await.map_err(|e| match e {
        ServiceError::Core(Error::Unauthorized(_)) => {
            SeedError::new(StatusCode::UNAUTHORIZED, "wrong e-mail or password")
        }
        other => other.into(),
    })?;
    if let Ok((_, token_hash)) = bank.sessions.check(&session.token, now_ms()) {
        service::sign_out(&bank, token_hash).await?;
    }
    Ok(Json(account_out(&bank, &seed, &session.account, true).await?))
}

pub async fn account_data(
    State(bank): St,
    Extension(seed): Seed,
    Path(number): Path<String>,
) -> SeedResult<Json<AccountJson>> {
    let number =
        number.parse::<u64>().ok().and_then(our_number).ok_or_else(|| SeedError::not_found("account not found"))?;
    Ok(Json(account_out(&bank, &seed, &number, false).await?))
}

/// The account a key names, checked to be at the bank the customer typed.
async fn key_at_bank(bank: &Arc<Bank>, client: ClientAddr, key: &PixKey, at: BankId) -> SeedResult<service::KeyOwner> {
    // Lookups of unknown keys are throttled per account and address; the seed protocol has no
    // account, so its lookups share one (the highest number) besides the client's address.
    let anonymous = AccountNumber::from_seq(AccountNumber::SEQ_MAX);
    let owner = service::lookup_key(bank, (&anonymous, client.0), key).await.map_err(|e| match e {
        ServiceError::Core(Error::UnknownKey(_)) => {
            SeedError::bad_request(format!("no account has the key {}", key.normalized()))
        }
        other => other.into(),
    })?;
    if owner.bank_id != at.0 {
        return Err(SeedError::not_found(format!("the key {} is not at bank {at}", key.normalized())));
    }
    Ok(owner)
}

pub async fn pix_infos(State(bank): St, client: ClientAddr, body: Bytes) -> SeedResult<Json<Value>> {
    let v = json_body(&body)?;
    let key = input::pix_key(&v, "keyPix")?;
    let at = input::bank_id(&v, if v.get("bankID").is_some() { "bankID" } else { "idBank" })?;
    let owner = key_at_bank(&bank, client, &key, at).await?;
    Ok(Json(json!({ "name": owner.holder_name, "cpfCNPJ1": owner.masked_document, "bank": owner.bank_name })))
}

pub async fn operations(
    State(bank): St,
    Extension(seed): Seed,
    client: ClientAddr,
    body: Bytes,
) -> SeedResult<Response> {
    let envelope: OperationIn =
        serde_json::from_slice(&body).map_err(|e| SeedError::bad_request(format!("invalid JSON: {e}")))?;
    let operation = match &envelope.operation {
        Some(Value::String(op)) => op.as_str(),
        _ => return Err(SeedError::bad_request("operation is missing (create, deposit, sendPix, packetPix)")),
    };
    let data = envelope.data_operation.clone().unwrap_or(Value::Null);
    let fingerprint = Fingerprint(Sha256::digest(&body).into());
    match operation {
        "create" => Ok(Json(create(&bank, &seed, &data).await?).into_response()),
        "deposit" => deposit(&bank, &envelope, &data, fingerprint).await,
        "sendPix" => send_pix(&bank, client, &envelope, &data, fingerprint).await,
        "packetPix" => packet_pix(&bank, client, &envelope, &data, fingerprint).await,
        other => Err(SeedError::bad_request(format!(
            "unknown operation {} (create, deposit, sendPix, packetPix)",
            bank_core::error::quoted(other)
        ))),
    }
}

fn object(data: &Value) -> SeedResult<&Value> {
    if data.is_object() { Ok(data) } else { Err(SeedError::bad_request("dataOperation must be an object")) }
}

async fn create(bank: &Arc<Bank>, seed: &SeedState, data: &Value) -> SeedResult<AccountJson> {
    let data = object(data)?;
    let kind = match (input::flag(data, "isFisicAccount")?, input::flag(data, "isJoinetAccount")?) {
        (Flag::Yes, Flag::Yes) => AccountKind::Joint,
        (Flag::Yes, _) => AccountKind::Individual,
        (Flag::No, _) => AccountKind::Company,
        (Flag::Unset, _) => return Err(SeedError::bad_request("isFisicAccount must be \"true\" or \"false\"")),
    };
    let holder = |name: &str, document: &str| -> SeedResult<Holder> {
        let name =
            parse_name(&input::required(data, name)?).map_err(|e| SeedError::bad_request(format!("{name}: {e}")))?;
        Ok(Holder { name, document: input::document(data, document)? })
    };
    let mut holders = vec![holder("name1", "cpfCNPJ1")?];
    if kind == AccountKind::Joint {
        holders.push(holder("name2", "cpfCNPJ2")?);
    }
    let email = Email::parse(&input::required(data, "email")?)?;
    let phone = Phone::parse(&input::required(data, "telephone")?)?;
    let password = input::required(data, "password")?;
    // The original kept one account per first holder's document and bank, and its clients name
    // accounts by that document (`clientCpfCNPJ`); refused here too, so that name stays unique.
    if first_holder_account(bank, &holders[0].document).await?.is_some() {
        return Err(SeedError::new(StatusCode::CONFLICT, "this CPF/CNPJ already has an account at this bank"));
    }
    let new = NewAccount { kind, holders, email, phone, password_hash: String::new() };
    let opened = service::open_account(bank, new, password).await?;
    for warning in &opened.warnings {
        tracing::info!(account = %opened.account.number, %warning, "seed-compatible account opened with a warning");
    }
    account_out(bank, seed, &opened.account.number, true).await
}

/// The account here whose first holder has `document`: an individual or company account before
/// a joint one.
async fn first_holder_account(bank: &Arc<Bank>, document: &Document) -> SeedResult<Option<Account>> {
    let accounts = service::accounts_of_document(bank, document).await?;
    let mut firsts: Vec<Account> =
        accounts.into_iter().filter(|a| a.holders.first().is_some_and(|h| &h.document == document)).collect();
    firsts.sort_by_key(|a| a.kind == AccountKind::Joint);
    Ok(firsts.into_iter().next())
}

/// The account `clientCpfCNPJ` names at this bank (the original trusted it; see the module doc).
async fn client_account(bank: &Arc<Bank>, envelope: &OperationIn) -> SeedResult<Account> {
    let wrapper = json!({ "clientCpfCNPJ": envelope.client_cpf_cnpj.clone().unwrap_or(Value::Null) });
    let document = input::document(&wrapper, "clientCpfCNPJ")?;
    first_holder_account(bank, &document).await?.ok_or_else(|| SeedError::not_found("account not found"))
}

fn idempotency(fingerprint: Fingerprint) -> (IdempotencyKey, Fingerprint) {
    // The original protocol has no idempotency key: every request is a new operation.
    (IdempotencyKey(uuid::Uuid::new_v4()), fingerprint)
}

fn done(message: &str) -> Response {
    Json(json!({ "message": message })).into_response()
}

async fn deposit(
    bank: &Arc<Bank>,
    envelope: &OperationIn,
    data: &Value,
    fingerprint: Fingerprint,
) -> SeedResult<Response> {
    let data = object(data)?;
    let amount = input::amount(data, "value")?;
    let method = match input::text_field(data, "method")?.as_deref().map(str::trim) {
        None | Some("" | "none" | "money") => DepositMethod::Cash,
        Some("qrCode") => DepositMethod::Qr,
        Some("bankSlip") => DepositMethod::Boleto,
        Some(other) => {
            return Err(SeedError::bad_request(format!(
                "method {} is not money, qrCode or bankSlip",
                bank_core::error::quoted(other)
            )));
        }
    };
    let account = client_account(bank, envelope).await?;
    service::deposit(bank, account.number, amount, method, idempotency(fingerprint)).await?;
    Ok(done("Money added with success"))
}

async fn send_pix(
    bank: &Arc<Bank>,
    client: ClientAddr,
    envelope: &OperationIn,
    data: &Value,
    fingerprint: Fingerprint,
) -> SeedResult<Response> {
    let data = object(data)?;
    let amount = input::amount(data, "value")?;
    let key = input::pix_key(data, "keyPix")?;
    let at = input::bank_id(data, "idBank")?;
    let account = client_account(bank, envelope).await?;
    key_at_bank(bank, client, &key, at).await?;
    let legs = vec![LegRequest { from: None, to: Destination::Key(key), amount }];
    let answer = service::transfer(bank, account.number, legs, None, idempotency(fingerprint)).await?;
    transfer_answer(&answer, "Pix sent")
}

async fn packet_pix(
    bank: &Arc<Bank>,
    client: ClientAddr,
    envelope: &OperationIn,
    data: &Value,
    fingerprint: Fingerprint,
) -> SeedResult<Response> {
    let Value::Array(entries) = data else {
        return Err(SeedError::bad_request("dataOperation must be a list of Pix"));
    };
    if entries.is_empty() || entries.len() > LEGS_MAX {
        return Err(SeedError::bad_request(format!("a packet has between 1 and {LEGS_MAX} Pix")));
    }
    let account = client_account(bank, envelope).await?;
    let held = service::consortium_accounts(bank, &account.number).await?;
    let mut legs = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let at = |e: SeedError| SeedError::new(e.status, format!("Pix {}: {}", i + 1, e.text));
        let entry = object(entry).map_err(at)?;
        let amount = input::amount(entry, "value").map_err(at)?;
        let source_bank = input::required(entry, "bankSourceMoney").map_err(at)?;
        let key = input::pix_key(entry, "keyPix").map_err(at)?;
        let to_bank = input::bank_id(entry, "idBank").map_err(at)?;
        let source = held
            .accounts
            .iter()
            .filter(|a| a.bank_name == source_bank.trim())
            .min_by_key(|a| a.kind == AccountKind::Joint)
            .ok_or_else(|| at(SeedError::bad_request(format!("you have no account at bank {}", source_bank.trim()))))?;
        key_at_bank(bank, client, &key, to_bank).await.map_err(at)?;
        let from = AccountRef { bank_id: source.bank_id, number: source.number.clone() };
        legs.push(LegRequest { from: Some(from), to: Destination::Key(key), amount });
    }
    let answer = service::transfer(bank, account.number, legs, None, idempotency(fingerprint)).await?;
    transfer_answer(&answer, "Packet of Pix sent")
}

/// A failure's detail with its amounts in reais, as the original's interface shows money:
/// `… has 96450 centavos available, 500000 needed` → `… has R$ 964.50 available, R$ 5000.00 needed`.
fn in_reais(detail: &str) -> String {
    let words: Vec<&str> = detail.split(' ').collect();
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        let next = words.get(i + 1).copied().unwrap_or_default();
        let amount = word.parse::<i64>().ok().filter(|_| word.bytes().all(|b| b.is_ascii_digit()));
        match amount {
            Some(cents) if next == "centavos" => {
                out.push(format!("R$ {}", super::account::reais(cents)));
                i += 2;
                continue;
            }
            Some(cents) if ["needed", "needed,", "requested", "requested,"].contains(&next) => {
                out.push(format!("R$ {}", super::account::reais(cents)))
            }
            _ => out.push(word.to_string()),
        }
        i += 1;
    }
    out.join(" ")
}

/// A transfer that executed: 200 only when it completed (as the original answered once the
/// ring had run it); failed is a 4xx with the reason (nothing moved); still pending at the
/// deadline is 504 (its outcome will show in the statement).
fn transfer_answer(answer: &TransferAnswer, message: &str) -> SeedResult<Response> {
    let transfer = &answer.transfer;
    match transfer.status {
        Status::Completed => Ok(done(message)),
        Status::Failed => {
            let (code, detail) = match &transfer.failure {
                Some(f) => (f.code.as_str(), f.detail.clone()),
                None => ("internal", "the transfer failed".to_string()),
            };
            let status = match code {
                "insufficient_funds" | "idempotency_mismatch" => StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input" | "unknown_key" => StatusCode::BAD_REQUEST,
                "unauthorized" => StatusCode::UNAUTHORIZED,
                "forbidden" => StatusCode::FORBIDDEN,
                "not_found" => StatusCode::NOT_FOUND,
                "bank_unavailable" | "overloaded" | "expired" | "already_decided" => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::CONFLICT,
            };
            Err(SeedError::new(status, format!("the Pix failed, nothing moved: {}", in_reais(&detail))))
        }
        Status::Pending => Err(SeedError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("the transfer {} is still pending; its outcome will show in the statement", transfer.id),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::in_reais;

    #[test]
    fn failure_details_show_money_in_reais() {
        assert_eq!(
            in_reais("account 000001-9 has 96450 centavos available, 500000 needed"),
            "account 000001-9 has R$ 964.50 available, R$ 5000.00 needed"
        );
        assert_eq!(in_reais("no account has the key 12345"), "no account has the key 12345");
    }
}
