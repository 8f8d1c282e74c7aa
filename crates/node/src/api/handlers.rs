//! Route handlers: parse, delegate to the core (through the writer or a read), shape the answer.

use axum::Json;
use axum::extract::{Path, Query, RawQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bank_core::Error;
use bank_core::account::{AccountKind, Holder, NewAccount, check_password, parse_name};
use bank_core::contact::{Email, Phone};
use bank_core::document::Document;
use bank_core::ids::{AccountNumber, BankId, TimestampMs, TransferId};
use bank_core::ledger::{AccountRef, DepositMethod, Destination, KeyRequest, LEGS_MAX, LegRequest, Outcome};
use bank_core::money::Amount;
use bank_core::pixkey::PixKey;
use serde_json::json;

use super::dto::*;
use super::{ApiJson, Idempotency, Session, State};
use crate::auth;
use crate::problem::{ApiError, invalid, problem};
use crate::storage::read;
use crate::storage::writer::now_ms;

type ApiResult<T> = Result<T, ApiError>;

/// Most entries in one statement page, and the default.
const STATEMENT_LIMIT_MAX: usize = 200;
const STATEMENT_LIMIT_DEFAULT: usize = 50;
/// Most holders accepted in a request, before any other check (bounds the work of parsing).
const HOLDERS_IN_MAX: usize = 16;

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

pub async fn metrics(state: State) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.encode(),
    )
}

pub async fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "not_found", "no such path".into())
}

pub async fn method_not_allowed() -> Response {
    problem(StatusCode::METHOD_NOT_ALLOWED, "invalid_input", "this method is not allowed on this path".into())
}

pub async fn bank(state: State) -> Json<BankOut> {
    Json(BankOut { id: state.bank_id.0, name: state.bank_name.clone() })
}

async fn account_out(state: &State, number: &AccountNumber, warnings: Vec<String>) -> ApiResult<AccountOut> {
    let n = number.clone();
    let view = state.reads.run(move |c| read::account(c, &n)).await?;
    let view =
        view.ok_or_else(|| ApiError::Core(Error::Unauthorized("the signed-in account no longer exists".into())))?;
    let keys = view.keys.into_iter().map(|(key, kind)| KeyOut { key, kind }).collect();
    Ok(AccountOut::new(state.bank_id.0, &state.bank_name, &view.account, keys, warnings))
}

pub async fn open_account(state: State, body: ApiJson<OpenAccountIn>) -> ApiResult<(StatusCode, Json<AccountOut>)> {
    let input = body.value;
    let kind = AccountKind::parse(&input.kind)?;
    if input.holders.len() > HOLDERS_IN_MAX {
        return Err(invalid(format!("at most {HOLDERS_IN_MAX} holders")));
    }
    let holders = input
        .holders
        .iter()
        .map(|h| Ok(Holder { name: parse_name(&h.name)?, document: Document::parse(&h.document)? }))
        .collect::<Result<Vec<_>, Error>>()?;
    let email = Email::parse(&input.email)?;
    let phone = Phone::parse(&input.phone)?;
    check_password(&input.password)?;
    let new = NewAccount { kind, holders, email, phone, password_hash: String::new() };
    new.validate()?;
    let password = input.password;
    let password_hash =
        state.hashers.run(move || auth::hash_password(&password)).await.ok_or(ApiError::Core(Error::Overloaded))?;
    let password_hash = password_hash.map_err(ApiError::Internal)?;
    let opened = state.writer.open_account(NewAccount { password_hash, ..new }).await;
    state.metrics.operation("open_account", if opened.is_ok() { "ok" } else { "rejected" });
    let mut opened = opened?;
    if state.interbank.is_some() && opened.account.acting_document().is_some() {
        // The CPF/CNPJ key is registered consortium-wide; the account stands either way.
        match crate::service::register_consortium_key(&state, opened.account.number.clone(), None).await {
            Ok(key) => opened.keys.push(key),
            Err(e) => opened.warnings.push(format!("the account was opened without its CPF/CNPJ Pix key: {e}")),
        }
    }
    let keys = opened.keys.iter().map(|k| KeyOut { key: k.normalized(), kind: k.key_type() }).collect();
    tracing::info!(account = %opened.account.number, kind = opened.account.kind.as_str(), "account opened");
    let out = AccountOut::new(state.bank_id.0, &state.bank_name, &opened.account, keys, opened.warnings);
    Ok((StatusCode::CREATED, Json(out)))
}

pub async fn sign_in(state: State, body: ApiJson<SessionIn>) -> ApiResult<(StatusCode, Json<SessionOut>)> {
    let wrong = || ApiError::Core(Error::Unauthorized("wrong e-mail or password".into()));
    let input = body.value;
    let email = Email::parse(&input.email).map(|e| e.as_str().to_string()).unwrap_or_default();
    let found = state.reads.run(move |c| read::credentials(c, &email)).await?;
    let (number, hash) = match found {
        Some((number, hash)) => (Some(number), hash),
        None => (None, auth::decoy_hash().to_string()),
    };
    let password = input.password;
    let ok = state
        .hashers
        .run(move || auth::verify_password(&password, &hash))
        .await
        .ok_or(ApiError::Core(Error::Overloaded))?;
    let number = match (ok, number) {
        (true, Some(number)) => number,
        _ => {
            state.metrics.operation("sign_in", "rejected");
            return Err(wrong());
        }
    };
    let (token, token_hash) = auth::new_token().map_err(ApiError::Internal)?;
    let expires_at = TimestampMs(now_ms().0 + (state.limits.session_ttl_s as i64) * 1000);
    state.writer.create_session(token_hash, number.clone(), expires_at).await?;
    let live = state.sessions.insert(token_hash, number.clone(), expires_at);
    state.metrics.set_sessions(live);
    state.metrics.operation("sign_in", "ok");
    let account = account_out(&state, &number, Vec::new()).await?;
    Ok((StatusCode::CREATED, Json(SessionOut { token, expires_at: rfc3339(expires_at), account })))
}

pub async fn sign_out(state: State, session: Session) -> ApiResult<StatusCode> {
    state.writer.revoke_session(session.token_hash).await?;
    let live = state.sessions.remove(&session.token_hash);
    state.metrics.set_sessions(live);
    Ok(StatusCode::NO_CONTENT)
}

pub async fn me(state: State, session: Session) -> ApiResult<Json<AccountOut>> {
    Ok(Json(account_out(&state, &session.account, Vec::new()).await?))
}

fn outcome_response(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Entry(e) => (StatusCode::CREATED, Json(EntryOut::from(&e))).into_response(),
        Outcome::Transfer(t) => (StatusCode::CREATED, Json(TransferOut::from(&t))).into_response(),
        // The writer reads replays back before answering; one reaching here is a bug.
        Outcome::Replayed(r) => ApiError::Internal(format!("unresolved replay {r:?}")).into_response(),
    }
}

fn record(state: &State, operation: &'static str, result: &Result<Outcome, Error>) {
    let outcome = match result {
        Ok(Outcome::Transfer(t)) => t.status.as_str(),
        Ok(Outcome::Entry(_)) => "completed",
        Ok(Outcome::Replayed(_)) => "replayed",
        Err(_) => "rejected",
    };
    state.metrics.operation(operation, outcome);
}

pub async fn deposit(
    state: State,
    session: Session,
    idem: Idempotency,
    body: ApiJson<DepositIn>,
) -> ApiResult<Response> {
    let amount = Amount::from_cents(body.value.amount_cents)?;
    let method = DepositMethod::parse(&body.value.method)?;
    let result = state.writer.deposit(session.account.clone(), amount, method, idem.with(body.digest)).await;
    record(&state, "deposit", &result);
    Ok(outcome_response(result?))
}

pub async fn withdraw(
    state: State,
    session: Session,
    idem: Idempotency,
    body: ApiJson<WithdrawalIn>,
) -> ApiResult<Response> {
    let amount = Amount::from_cents(body.value.amount_cents)?;
    let result = state.writer.withdraw(session.account.clone(), amount, idem.with(body.digest)).await;
    record(&state, "withdrawal", &result);
    Ok(outcome_response(result?))
}

pub async fn register_key(
    state: State,
    session: Session,
    body: ApiJson<PixKeyIn>,
) -> ApiResult<(StatusCode, Json<KeyOut>)> {
    let request = match body.value.kind.as_str() {
        "email" => KeyRequest::Email,
        "phone" => KeyRequest::Phone,
        "random" => KeyRequest::Random(uuid::Uuid::new_v4()),
        "cpf" | "cnpj" => {
            return Err(invalid("CPF and CNPJ keys are registered automatically when the account is opened"));
        }
        other => return Err(invalid(format!("{other:?} is not a key type you can register (email, phone, random)"))),
    };
    let key = crate::service::register_key(&state, session.account.clone(), request).await?;
    Ok((StatusCode::CREATED, Json(KeyOut { key: key.normalized(), kind: key.key_type() })))
}

pub async fn lookup_key(state: State, _session: Session, Path(key): Path<String>) -> ApiResult<Json<KeyLookupOut>> {
    let key = PixKey::parse(&key)?;
    Ok(Json(crate::service::lookup_key(&state, &key).await?))
}

fn account_ref(r: &AccountRefIn) -> Result<AccountRef, Error> {
    Ok(AccountRef { bank_id: BankId(r.bank_id), number: AccountNumber::parse(&r.number)? })
}

pub async fn transfer(
    state: State,
    session: Session,
    idem: Idempotency,
    body: ApiJson<TransferIn>,
) -> ApiResult<Response> {
    let input = &body.value;
    if input.legs.is_empty() || input.legs.len() > LEGS_MAX {
        return Err(invalid(format!("a transfer has between 1 and {LEGS_MAX} legs")));
    }
    let mut legs = Vec::with_capacity(input.legs.len());
    for (i, leg) in input.legs.iter().enumerate() {
        let at = |e: Error| match e {
            Error::InvalidInput(d) => Error::InvalidInput(format!("leg {}: {d}", i + 1)),
            other => other,
        };
        let from = leg.from.as_ref().map(account_ref).transpose().map_err(at)?;
        let to = match (&leg.to.key, leg.to.bank_id, &leg.to.number) {
            (Some(key), None, None) => Destination::Key(PixKey::parse(key).map_err(at)?),
            (None, Some(bank_id), Some(number)) => Destination::Account(AccountRef {
                bank_id: BankId(bank_id),
                number: AccountNumber::parse(number).map_err(at)?,
            }),
            _ => return Err(invalid(format!("leg {}: `to` is either {{ key }} or {{ bank_id, number }}", i + 1))),
        };
        legs.push(LegRequest { from, to, amount: Amount::from_cents(leg.amount_cents).map_err(at)? });
    }
    let idempotency = (idem.0, bank_core::ids::Fingerprint(body.digest));
    let out =
        crate::service::transfer(&state, session.account.clone(), legs, input.description.clone(), idempotency).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Loads the signed-in account and the accounts it may see.
async fn visible_accounts(
    state: &State,
    session: &Session,
) -> ApiResult<(bank_core::account::Account, Vec<AccountNumber>)> {
    let n = session.account.clone();
    let found = state
        .reads
        .run(move |c| {
            let Some(view) = read::account(c, &n)? else { return Ok(None) };
            let spendable = read::spendable(c, &view.account)?;
            Ok(Some((view.account, spendable)))
        })
        .await?;
    found.ok_or_else(|| ApiError::Core(Error::Unauthorized("the signed-in account no longer exists".into())))
}

pub async fn get_transfer(state: State, session: Session, Path(id): Path<String>) -> ApiResult<Json<TransferOut>> {
    let id = uuid::Uuid::try_parse(&id).map(TransferId).map_err(|_| invalid("a transfer id is a UUID"))?;
    let (_, visible) = visible_accounts(&state, &session).await?;
    let transfer = state.reads.run(move |c| read::transfer(c, &id)).await?;
    let not_found = || ApiError::Core(Error::NotFound(format!("no transfer {id} of yours")));
    let transfer = transfer.ok_or_else(not_found)?;
    let own = |bank: BankId, n: &AccountNumber| bank == state.bank_id && visible.contains(n);
    // Yours if you submitted it (this bank coordinated it) or one of its legs touches an account
    // of yours here.
    let mine = visible.contains(&transfer.actor)
        || transfer.legs.iter().any(|l| own(l.from.bank_id, &l.from.number) || own(l.to.bank_id, &l.to.number));
    if !mine {
        return Err(not_found());
    }
    Ok(Json(TransferOut::from(&transfer)))
}

pub async fn statement(state: State, session: Session, RawQuery(raw): RawQuery) -> ApiResult<Json<StatementOut>> {
    let query: StatementQuery = serde_urlencoded_query(raw.as_deref().unwrap_or(""))?;
    let limit = match query.limit.as_deref() {
        None => STATEMENT_LIMIT_DEFAULT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=STATEMENT_LIMIT_MAX).contains(&n) => n,
            _ => return Err(invalid(format!("limit must be a whole number from 1 to {STATEMENT_LIMIT_MAX}"))),
        },
    };
    let before = match query.before.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .filter(|&b| b > 0)
                .ok_or_else(|| invalid("before must be a cursor from `next`"))?,
        ),
    };
    let account = match query.account.as_deref() {
        None => session.account.clone(),
        Some(text) => {
            let wanted = AccountNumber::parse(text)?;
            let (_, visible) = visible_accounts(&state, &session).await?;
            if !visible.contains(&wanted) {
                return Err(ApiError::Core(Error::Forbidden(format!("account {wanted} is not yours"))));
            }
            wanted
        }
    };
    let ids = state.entry_index.page(&account, before.map(|b| b as u64), limit);
    let entries = state.reads.run(move |c| read::entries(c, &ids)).await?;
    let next = if entries.len() == limit { entries.last().map(|e| e.id.0.to_string()) } else { None };
    Ok(Json(StatementOut { entries: entries.iter().map(EntryOut::from).collect(), next }))
}

/// Parses a query string strictly (unknown parameters are refused, like unknown JSON fields).
fn serde_urlencoded_query(raw: &str) -> ApiResult<StatementQuery> {
    let parsed: Query<StatementQuery> =
        Query::try_from_uri(&format!("/?{raw}").parse().map_err(|_| invalid("malformed query string"))?)
            .map_err(|e| invalid(format!("invalid query: {}", e.body_text())))?;
    Ok(parsed.0)
}

pub async fn consortium_accounts(state: State, session: Session) -> ApiResult<Json<ConsortiumAccountsOut>> {
    // The same query the web pages use: this bank's accounts of the customer, then every other
    // bank's by document (a joint account's session asks no one), naming banks that did not answer.
    let (accounts, unreachable_banks) = crate::service::consortium_accounts(&state, &session.account).await?;
    Ok(Json(ConsortiumAccountsOut { accounts, unreachable_banks }))
}

/// The consortium as this bank sees it: members (`up` when its last request to them got an
/// answer, `suspected` when it did not, `unknown` before any), and the transactions it holds in
/// doubt. The token ring is not built yet: `ring` shows this bank as the holder of a ring of one
/// in `concurrent` mode (every bank coordinates at any time).
pub async fn consortium_status(state: State) -> ApiResult<Json<serde_json::Value>> {
    let seen = state.driver.peers_seen();
    let now = now_ms().0;
    let members: Vec<serde_json::Value> = match &state.interbank {
        None => vec![json!({ "id": state.bank_id.0, "name": state.bank_name, "url": state.public_url, "state": "up" })],
        Some(ib) => ib
            .members
            .values()
            .map(|m| {
                let peer = seen.get(&m.id).copied().unwrap_or_default();
                let member_state = match (m.id == state.bank_id, peer.up) {
                    (true, _) | (false, Some(true)) => "up",
                    (false, Some(false)) => "suspected",
                    (false, None) => "unknown",
                };
                json!({
                    "id": m.id.0, "name": m.name, "url": m.url, "state": member_state,
                    "last_seen_ms": peer.last_answer_ms.map(|t| now - t),
                })
            })
            .collect(),
    };
    let in_doubt = state.reads.run(read::holds_count).await?;
    let ring = match (&state.ring, state.interbank.is_some()) {
        (Some(view), _) => {
            let ring = view.snapshot();
            json!({
                "epoch": ring.epoch, "holder": ring.holder.map(|b| b.0), "last_seen_ms": ring.last_seen_ms,
                "rotations_per_s": (ring.rotations_per_s * 100.0).round() / 100.0, "queue_len": ring.queue_len,
                "role": ring.role, "suspected": ring.suspected.iter().map(|b| b.0).collect::<Vec<_>>(),
            })
        }
        // Concurrent mode: no token. A bank alone is a ring of one that always holds it.
        (None, true) => {
            json!({ "epoch": 0, "holder": null, "last_seen_ms": null, "rotations_per_s": 0.0, "queue_len": 0 })
        }
        (None, false) => json!({
            "epoch": 0, "holder": state.bank_id.0, "last_seen_ms": 0, "rotations_per_s": 0.0, "queue_len": 0,
        }),
    };
    Ok(Json(json!({
        "bank_id": state.bank_id.0,
        "mode": state.coordination_mode.as_str(),
        "members": members,
        "ring": ring,
        "in_doubt": in_doubt,
    })))
}
