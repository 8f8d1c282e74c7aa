//! Route handlers: parse, delegate to the core (through the writer or a read), shape the answer.

use axum::Json;
use axum::extract::{Path, Query, RawQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bank_core::Error;
use bank_core::account::{AccountKind, Holder, NewAccount, parse_name};
use bank_core::contact::{Email, Phone};
use bank_core::document::Document;
use bank_core::error::quoted;
use bank_core::ids::{AccountNumber, BankId, TransferId};
use bank_core::ledger::{AccountRef, DepositMethod, Destination, KeyRequest, LEGS_MAX, LegRequest, Outcome};
use bank_core::money::Amount;
use bank_core::pixkey::PixKey;
use serde_json::json;

use super::dto::*;
use super::{ApiJson, Idempotency, Session, State};
use crate::auth::ClientAddr;
use crate::problem::{ApiError, invalid, problem};
use crate::service::{self, ConsortiumStatus, Membership, RingStatus};

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
    if let Some(interbank) = &state.interbank {
        let clocks = interbank.peers.clocks();
        for (peer, reading) in clocks.readings() {
            state.metrics.set_peer_clock(peer.0, reading.offset_ms, reading.disagrees(clocks.allowed_ms()));
        }
    }
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
    let view = service::account(state, number).await?;
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
    let new = NewAccount { kind, holders, email, phone, password_hash: String::new() };
    let opened = service::open_account(&state, new, input.password).await?;
    let keys = opened.keys.iter().map(|k| KeyOut { key: k.normalized(), kind: k.key_type() }).collect();
    let out = AccountOut::new(state.bank_id.0, &state.bank_name, &opened.account, keys, opened.warnings);
    Ok((StatusCode::CREATED, Json(out)))
}

pub async fn sign_in(
    state: State,
    client: ClientAddr,
    body: ApiJson<SessionIn>,
) -> ApiResult<(StatusCode, Json<SessionOut>)> {
    let input = body.value;
    let session = service::sign_in(&state, client.0, &input.email, input.password).await?;
    let account = account_out(&state, &session.account, Vec::new()).await?;
    let out = SessionOut { token: session.token, expires_at: rfc3339(session.expires_at), account };
    Ok((StatusCode::CREATED, Json(out)))
}

pub async fn sign_out(state: State, session: Session) -> ApiResult<StatusCode> {
    service::sign_out(&state, session.token_hash).await?;
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

pub async fn deposit(
    state: State,
    session: Session,
    idem: Idempotency,
    body: ApiJson<DepositIn>,
) -> ApiResult<Response> {
    let amount = Amount::from_cents(body.value.amount_cents)?;
    let method = DepositMethod::parse(&body.value.method)?;
    let outcome = service::deposit(&state, session.account.clone(), amount, method, idem.with(body.digest)).await?;
    Ok(outcome_response(outcome))
}

pub async fn withdraw(
    state: State,
    session: Session,
    idem: Idempotency,
    body: ApiJson<WithdrawalIn>,
) -> ApiResult<Response> {
    let amount = Amount::from_cents(body.value.amount_cents)?;
    let outcome = service::withdraw(&state, session.account.clone(), amount, idem.with(body.digest)).await?;
    Ok(outcome_response(outcome))
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
        other => {
            return Err(invalid(format!(
                "{} is not a key type you can register (email, phone, random)",
                quoted(other)
            )));
        }
    };
    let key = service::register_key(&state, session.account.clone(), request).await?;
    Ok((StatusCode::CREATED, Json(KeyOut { key: key.normalized(), kind: key.key_type() })))
}

pub async fn lookup_key(
    state: State,
    session: Session,
    client: ClientAddr,
    Path(key): Path<String>,
) -> ApiResult<Json<KeyLookupOut>> {
    let key = PixKey::parse(&key)?;
    Ok(Json(KeyLookupOut::from(service::lookup_key(&state, (&session.account, client.0), &key).await?)))
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
    let answer =
        service::transfer(&state, session.account.clone(), legs, input.description.clone(), idempotency).await?;
    Ok((StatusCode::CREATED, Json(TransferOut::from(&answer))).into_response())
}

pub async fn get_transfer(state: State, session: Session, Path(id): Path<String>) -> ApiResult<Json<TransferOut>> {
    let id = uuid::Uuid::try_parse(&id).map(TransferId).map_err(|_| invalid("a transfer id is a UUID"))?;
    let transfer = service::transfer_of(&state, &session.account, id).await?;
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
    let wanted = query.account.as_deref().map(AccountNumber::parse).transpose()?;
    let (entries, next) = service::statement(&state, &session.account, wanted, before.map(|b| b as u64), limit).await?;
    let next = next.map(|n| n.to_string());
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
    let found = service::consortium_accounts(&state, &session.account).await?;
    Ok(Json(ConsortiumAccountsOut {
        accounts: found.accounts.iter().map(ConsortiumAccountOut::from).collect(),
        unreachable_banks: found.unreachable.iter().map(|b| b.0).collect(),
    }))
}

/// The consortium as this bank sees it: members (`up` when its last request to them got an
/// answer, `suspected` when it did not, `unknown` before any), the token ring, and the
/// transactions it holds in doubt.
pub async fn consortium_status(state: State) -> ApiResult<Json<serde_json::Value>> {
    let status = service::consortium_status(&state).await?;
    Ok(Json(status_json(&status)))
}

fn status_json(status: &ConsortiumStatus) -> serde_json::Value {
    let members: Vec<serde_json::Value> = match &status.members {
        Membership::Alone { name, url } => {
            vec![json!({ "id": status.bank_id.0, "name": name, "url": url, "state": "up" })]
        }
        Membership::Consortium(members) => members
            .iter()
            .map(|m| {
                json!({
                    "id": m.id.0, "name": m.name, "url": m.url, "state": m.state.as_str(),
                    "last_seen_ms": m.last_seen_ms,
                    "clock": m.clock.map(|c| json!({
                        "offset_ms": c.offset_ms, "uncertainty_ms": c.uncertainty_ms, "disagrees": c.disagrees,
                    })),
                })
            })
            .collect(),
    };
    json!({
        "bank_id": status.bank_id.0,
        "mode": status.mode.as_str(),
        "members": members,
        "ring": ring_json(status.bank_id, &status.ring),
        "in_doubt": status.in_doubt,
    })
}

fn ring_json(bank_id: BankId, ring: &RingStatus) -> serde_json::Value {
    match ring {
        RingStatus::Token(ring) => json!({
            "epoch": ring.epoch, "holder": ring.holder.map(|b| b.0), "last_seen_ms": ring.last_seen_ms,
            "rotations_per_s": (ring.rotations_per_s * 100.0).round() / 100.0, "queue_len": ring.queue_len,
            "role": ring.role, "suspected": ring.suspected.iter().map(|b| b.0).collect::<Vec<_>>(),
        }),
        RingStatus::NoToken => {
            json!({ "epoch": 0, "holder": null, "last_seen_ms": null, "rotations_per_s": 0.0, "queue_len": 0 })
        }
        RingStatus::Alone => json!({
            "epoch": 0, "holder": bank_id.0, "last_seen_ms": 0, "rotations_per_s": 0.0, "queue_len": 0,
        }),
    }
}
