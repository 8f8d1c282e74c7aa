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

#[utoipa::path(get, path = "/healthz", tag = "operations", summary = "Liveness",
    responses((status = 200, description = "The node answers.", body = HealthOut)))]
pub async fn healthz() -> Json<HealthOut> {
    Json(HealthOut { status: "ok" })
}

#[utoipa::path(get, path = "/metrics", tag = "operations", summary = "Prometheus metrics",
    responses((status = 200, description = "OpenMetrics text.", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
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

#[utoipa::path(get, path = "/api/v1/bank", tag = "bank", summary = "This bank's id and name",
    responses((status = 200, description = "This bank.", body = BankOut,
        example = json!({"id": 1, "name": "Banco Um"})), (status = 503, response = super::openapi::Unavailable),))]
pub async fn bank(state: State) -> Json<BankOut> {
    Json(BankOut { id: state.bank_id.0, name: state.bank_name.clone() })
}

async fn account_out(state: &State, number: &AccountNumber, warnings: Vec<String>) -> ApiResult<AccountOut> {
    let view = service::account(state, number).await?;
    let keys = view.keys.into_iter().map(|(key, kind)| KeyOut { key, kind }).collect();
    Ok(AccountOut::new(state.bank_id.0, &state.bank_name, &view.account, keys, warnings))
}

#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", summary = "Open an account",
    description = "Opens an account. A new individual or company account gets its holder's CPF/CNPJ as a Pix key \
        when that key is still free in the consortium; otherwise `warnings` says why not.",
    request_body(content = OpenAccountIn, example = json!({
        "kind": "individual", "holders": [{"name": "Ana Lima", "document": "529.982.247-25"}],
        "email": "ana@example.com", "phone": "+55 75 99999-1234", "password": "correct horse battery"})),
    responses(
        (status = 201, description = "The account, opened.", body = AccountOut,
            links(("LookUpItsKey" = (operation_id = "lookup_key",
                parameters(("key" = "$response.body#/pix_keys/0/key")),
                description = "Look up the CPF/CNPJ key the account was given.")))),
        (status = 400, response = super::openapi::BadRequest), (status = 409, response = super::openapi::Conflict), (status = 503, response = super::openapi::Unavailable),))]
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

#[utoipa::path(post, path = "/api/v1/sessions", tag = "accounts", summary = "Sign in",
    description = "Exchanges an e-mail and password for a bearer token. Failed sign-ins are throttled per \
        account and per client address (429 with `Retry-After`).",
    request_body(content = SessionIn, example = json!({"email": "ana@example.com", "password": "correct horse battery"})),
    responses(
        (status = 201, description = "A session: send `Authorization: Bearer <token>`.", body = SessionOut),
        (status = 400, response = super::openapi::BadRequest), (status = 401, response = super::openapi::Unauthorized), (status = 429, response = super::openapi::TooManyAttempts), (status = 503, response = super::openapi::Unavailable),))]
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

#[utoipa::path(delete, path = "/api/v1/sessions/current", tag = "accounts", summary = "Sign out",
    security(("session" = [])),
    responses((status = 204, description = "Signed out; the token no longer works."), (status = 401, response = super::openapi::Unauthorized), (status = 503, response = super::openapi::Unavailable),))]
pub async fn sign_out(state: State, session: Session) -> ApiResult<StatusCode> {
    service::sign_out(&state, session.token_hash).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/me", tag = "accounts", summary = "The signed-in account",
    security(("session" = [])),
    responses((status = 200, description = "The account, with its balance.", body = AccountOut), (status = 401, response = super::openapi::Unauthorized), (status = 503, response = super::openapi::Unavailable),))]
pub async fn me(state: State, session: Session) -> ApiResult<Json<AccountOut>> {
    Ok(Json(account_out(&state, &session.account, Vec::new()).await?))
}

fn outcome_response(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Entry(e) => (StatusCode::CREATED, Json(EntryOut::from(&e))).into_response(),
        // Deposits and withdrawals answer entries; a transfer is shaped by its own routes.
        Outcome::Transfer(t) => {
            ApiError::Internal(format!("a deposit or withdrawal answered transfer {}", t.id)).into_response()
        }
        // The writer reads replays back before answering; one reaching here is a bug.
        Outcome::Replayed(r) => ApiError::Internal(format!("unresolved replay {r:?}")).into_response(),
    }
}

#[utoipa::path(post, path = "/api/v1/deposits", tag = "money", summary = "Deposit",
    security(("session" = [])), params(super::openapi::IdempotencyHeader),
    request_body(content = DepositIn, example = json!({"amount_cents": 10000, "method": "cash"})),
    responses((status = 201, description = "The statement entry of the deposit.", body = EntryOut),
        (status = 400, response = super::openapi::BadRequest), (status = 401, response = super::openapi::Unauthorized), (status = 422, response = super::openapi::Unprocessable), (status = 503, response = super::openapi::Unavailable),))]
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

#[utoipa::path(post, path = "/api/v1/withdrawals", tag = "money", summary = "Withdraw",
    description = "A withdrawal beyond the available money is rejected: 422 `insufficient_funds`.",
    security(("session" = [])), params(super::openapi::IdempotencyHeader),
    request_body(content = WithdrawalIn, example = json!({"amount_cents": 2500})),
    responses((status = 201, description = "The statement entry of the withdrawal.", body = EntryOut),
        (status = 400, response = super::openapi::BadRequest), (status = 401, response = super::openapi::Unauthorized), (status = 422, response = super::openapi::Unprocessable), (status = 503, response = super::openapi::Unavailable),))]
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

#[utoipa::path(post, path = "/api/v1/pix-keys", tag = "pix-keys", summary = "Register a Pix key",
    description = "Registers the account's e-mail or phone, or a random key, consortium-wide. A key taken anywhere \
        answers 409 `conflict`; if a bank cannot be asked, 503 `bank_unavailable`.",
    security(("session" = [])),
    request_body(content = PixKeyIn, example = json!({"type": "random"})),
    responses(
        (status = 201, description = "The key, normalised.", body = KeyOut,
            links(("LookUpTheKey" = (operation_id = "lookup_key",
                parameters(("key" = "$response.body#/key")), description = "Look the new key up.")))),
        (status = 400, response = super::openapi::BadRequest), (status = 401, response = super::openapi::Unauthorized), (status = 409, response = super::openapi::Conflict), (status = 503, response = super::openapi::Unavailable),))]
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

#[utoipa::path(get, path = "/api/v1/pix-keys/{key}", tag = "pix-keys", summary = "Look up a Pix key",
    description = "Whom a key points to, from the consortium-wide directory, with the document masked. \
        Lookups of keys nobody has are throttled per session and address (429 with `Retry-After`).",
    security(("session" = [])),
    params(("key" = String, Path, description = "A Pix key in any usual spelling.", example = "ana@example.com")),
    responses((status = 200, description = "The key's owner.", body = KeyLookupOut),
        (status = 400, response = super::openapi::BadRequest), (status = 401, response = super::openapi::Unauthorized), (status = 404, response = super::openapi::NotFound), (status = 429, response = super::openapi::TooManyAttempts), (status = 503, response = super::openapi::Unavailable),))]
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

#[utoipa::path(post, path = "/api/v1/transfers", tag = "money", summary = "Transfer (Pix or packet)",
    description = "One atomic transfer of one leg (a Pix) or several (a packet). A transfer that executes answers \
        201 whatever its outcome: `completed`, `failed` (with `failure.code`) or `pending` (poll it).",
    security(("session" = [])), params(super::openapi::IdempotencyHeader),
    request_body(content = TransferIn, example = json!({"legs": [{"to": {"key": "ana@example.com"}, "amount_cents": 1500}],
        "description": "rent"})),
    responses(
        (status = 201, description = "The transfer, executed.", body = TransferOut,
            links(("GetTheTransfer" = (operation_id = "get_transfer",
                parameters(("id" = "$response.body#/id")), description = "Poll the transfer.")))),
        (status = 400, response = super::openapi::BadRequest), (status = 401, response = super::openapi::Unauthorized), (status = 403, response = super::openapi::Forbidden), (status = 404, response = super::openapi::NotFound), (status = 409, response = super::openapi::Conflict), (status = 422, response = super::openapi::Unprocessable), (status = 503, response = super::openapi::Unavailable),))]
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
    Ok((StatusCode::CREATED, Json(super::pix::answered_out(&state, &answer))).into_response())
}

#[utoipa::path(get, path = "/api/v1/transfers/{id}", tag = "money", summary = "A transfer",
    description = "A transfer the signed-in account sent or received (the receiver sees its side).",
    security(("session" = [])),
    params(("id" = String, Path, format = Uuid, description = "The transfer's id.")),
    responses((status = 200, description = "The transfer.", body = TransferOut), (status = 400, response = super::openapi::BadRequest), (status = 401, response = super::openapi::Unauthorized), (status = 404, response = super::openapi::NotFound), (status = 503, response = super::openapi::Unavailable),))]
pub async fn get_transfer(state: State, session: Session, Path(id): Path<String>) -> ApiResult<Json<TransferOut>> {
    let id = uuid::Uuid::try_parse(&id).map(TransferId).map_err(|_| invalid("a transfer id is a UUID"))?;
    let (transfer, numbers) = service::transfer_view(&state, &session.account, id).await?;
    Ok(Json(super::pix::transfer_out(&state, &transfer, Some(&numbers))))
}

#[utoipa::path(get, path = "/api/v1/statement", tag = "money", summary = "Statement",
    description = "Entries newest first; pass `next` back as `before` for the following page.",
    security(("session" = [])),
    params(StatementQuery),
    responses((status = 200, description = "A page of the statement.", body = StatementOut), (status = 400, response = super::openapi::BadRequest), (status = 401, response = super::openapi::Unauthorized), (status = 403, response = super::openapi::Forbidden), (status = 404, response = super::openapi::NotFound), (status = 503, response = super::openapi::Unavailable),))]
pub async fn statement(state: State, session: Session, RawQuery(raw): RawQuery) -> ApiResult<Json<StatementOut>> {
    let query: StatementQuery = serde_urlencoded_query(raw.as_deref().unwrap_or(""))?;
    let limit = match query.limit.as_deref() {
        None => STATEMENT_LIMIT_DEFAULT,
        Some(text) => match plain_number(text) {
            Some(n) if (1..=STATEMENT_LIMIT_MAX as u64).contains(&n) => n as usize,
            _ => return Err(invalid(format!("limit must be a whole number from 1 to {STATEMENT_LIMIT_MAX}"))),
        },
    };
    let before = match query.before.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            plain_number(text)
                .filter(|&b| b > 0 && i64::try_from(b).is_ok())
                .ok_or_else(|| invalid("before must be a cursor from `next`"))?,
        ),
    };
    let wanted = query.account.as_deref().map(AccountNumber::parse).transpose()?;
    let (entries, next) = service::statement(&state, &session.account, wanted, before, limit).await?;
    let next = next.map(|n| n.to_string());
    Ok(Json(StatementOut { entries: entries.iter().map(EntryOut::from).collect(), next }))
}

/// A number spelled as the document says (`^[1-9][0-9]*$`): digits only, no sign, no leading
/// zero — `+5` and `05`, which `str::parse` takes, are refused like any other malformed value.
fn plain_number(text: &str) -> Option<u64> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    (digits_only && !text.starts_with('0')).then(|| text.parse().ok()).flatten()
}

/// Parses a query string strictly (unknown parameters are refused, like unknown JSON fields).
fn serde_urlencoded_query(raw: &str) -> ApiResult<StatementQuery> {
    let parsed: Query<StatementQuery> =
        Query::try_from_uri(&format!("/?{raw}").parse().map_err(|_| invalid("malformed query string"))?)
            .map_err(|e| invalid(format!("invalid query: {}", e.body_text())))?;
    Ok(parsed.0)
}

#[utoipa::path(get, path = "/api/v1/consortium/accounts", tag = "consortium",
    summary = "The customer's accounts in every bank",
    security(("session" = [])),
    responses((status = 200, description = "Accounts found by the holder's document(s), and banks that did not answer.",
        body = ConsortiumAccountsOut), (status = 401, response = super::openapi::Unauthorized), (status = 503, response = super::openapi::Unavailable),))]
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
#[utoipa::path(get, path = "/api/v1/consortium/status", tag = "consortium",
    summary = "Members, token ring and transactions in doubt",
    responses((status = 200, description = "The consortium as this bank sees it.", body = ConsortiumStatusOut), (status = 503, response = super::openapi::Unavailable),))]
pub async fn consortium_status(state: State) -> ApiResult<Json<ConsortiumStatusOut>> {
    let status = service::consortium_status(&state).await?;
    Ok(Json(ConsortiumStatusOut { seed_compat: state.seed_compat, ..status_out(&status) }))
}

fn status_out(status: &ConsortiumStatus) -> ConsortiumStatusOut {
    let members = match &status.members {
        Membership::Alone { name, url } => vec![MemberOut {
            id: status.bank_id.0,
            name: name.clone(),
            url: url.clone(),
            state: "up",
            last_seen_ms: None,
            clock: None,
        }],
        Membership::Consortium(members) => members
            .iter()
            .map(|m| MemberOut {
                id: m.id.0,
                name: m.name.clone(),
                url: m.url.clone(),
                state: m.state.as_str(),
                last_seen_ms: Some(m.last_seen_ms),
                clock: Some(m.clock.map(ClockOut::from)),
            })
            .collect(),
    };
    ConsortiumStatusOut {
        bank_id: status.bank_id.0,
        mode: status.mode.as_str(),
        members,
        ring: ring_out(status.bank_id, &status.ring),
        in_doubt: status.in_doubt,
        seed_compat: false,
    }
}

fn ring_out(bank_id: BankId, ring: &RingStatus) -> RingOut {
    let idle = |holder| RingOut {
        epoch: 0,
        holder,
        last_seen_ms: None,
        rotations_per_s: 0.0,
        queue_len: 0,
        role: None,
        suspected: None,
    };
    match ring {
        RingStatus::Token(ring) => RingOut {
            epoch: ring.epoch,
            holder: ring.holder.map(|b| b.0),
            last_seen_ms: ring.last_seen_ms,
            rotations_per_s: (ring.rotations_per_s * 100.0).round() / 100.0,
            queue_len: ring.queue_len as u64,
            role: Some(ring.role),
            suspected: Some(ring.suspected.iter().map(|b| b.0).collect()),
        },
        RingStatus::NoToken => idle(None),
        // A bank alone always holds the token; it saw it "now".
        RingStatus::Alone => RingOut { last_seen_ms: Some(0), ..idle(Some(bank_id.0)) },
    }
}
