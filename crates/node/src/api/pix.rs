//! Pix receipts and refunds (`/api/v1/transfers/{id}/receipt`, `/api/v1/transfers/{id}/refunds`),
//! and the shaping of a transfer with its end-to-end ids, shared with the transfer routes.

use axum::Json;
use axum::extract::{Path, Query, RawQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bank_core::ids::TransferId;
use bank_core::ledger::{DESCRIPTION_LEN_MAX, Transfer};
use bank_core::money::Amount;

use super::dto::{ReceiptOut, ReceiptQuery, RefundIn, RefundOfOut, TransferOut};
use super::{ApiJson, Idempotency, Session, State};
use crate::problem::{ApiError, invalid};
use crate::service::{self, Bank, TransferAnswer};

type ApiResult<T> = Result<T, ApiError>;

/// A transfer with each leg's end-to-end id; `numbers` are the legs' numbers in the transfer
/// when the transfer shown is only the legs kept here (`None`: every leg, in order).
pub fn transfer_out(bank: &Bank, t: &Transfer, numbers: Option<&[u16]>) -> TransferOut {
    let refund = t.refund_of.is_some();
    let e2e = t
        .legs
        .iter()
        .enumerate()
        .map(|(i, leg)| {
            let n = numbers.and_then(|ns| ns.get(i).copied()).unwrap_or(i as u16);
            service::leg_end_to_end_id(bank, t.id, n, leg.from.bank_id, refund)
        })
        .collect();
    TransferOut::new(t, e2e, refund_of_out(bank, t))
}

/// A transfer as answered at its deadline, with its end-to-end ids.
pub fn answered_out(bank: &Bank, answer: &TransferAnswer) -> TransferOut {
    let e2e = service::end_to_end_ids(bank, &answer.transfer);
    TransferOut::answered(answer, e2e, refund_of_out(bank, &answer.transfer))
}

/// The leg a refund refunds: its receiver (the refund's destination) was the original's payer.
fn refund_of_out(bank: &Bank, t: &Transfer) -> Option<RefundOfOut> {
    let of = t.refund_of?;
    let payer_bank = t.legs.first()?.to.bank_id;
    Some(RefundOfOut {
        transfer_id: of.transfer_id.to_string(),
        leg: of.leg,
        end_to_end_id: service::original_end_to_end_id(bank, &of, payer_bank),
    })
}

/// A leg's number within a transfer (from 0), or a 400 saying what it may be.
fn leg_number(n: u16) -> ApiResult<u16> {
    if usize::from(n) < bank_core::ledger::LEGS_MAX { Ok(n) } else { Err(leg_invalid()) }
}

fn leg_invalid() -> ApiError {
    invalid(format!("leg is a number from 0 to {}", bank_core::ledger::LEGS_MAX - 1))
}

fn transfer_id(text: &str) -> ApiResult<TransferId> {
    uuid::Uuid::try_parse(text).map(TransferId).map_err(|_| invalid("a transfer id is a UUID"))
}

#[utoipa::path(post, path = "/api/v1/transfers/{id}/refunds", tag = "money", summary = "Refund a Pix (devolução)",
    description = "The receiver of a completed Pix leg sends (part of) it back to the payer's account, within 90 \
        days, in one or more refunds; their sum never exceeds the leg's amount (refunds in flight count). The refund \
        is a transfer (the same 2PC as any Pix) with its own `D…` end-to-end id and `refund_of`; it executes like \
        a transfer: 201 `completed`, `failed` or `pending`. A refund of a failed, pending, foreign or too old \
        transfer, or of one refunded in full, is 409 `not_refundable`; more than what is left, 422 \
        `refund_exceeds_amount`.",
    security(("session" = [])), params(super::openapi::IdempotencyHeader,
        ("id" = String, Path, format = Uuid, description = "The id of the Pix received.")),
    request_body(content = RefundIn, example = json!({"amount_cents": 500, "reason": "charged twice"})),
    responses(
        (status = 201, description = "The refund, executed.", body = TransferOut),
        (status = 400, response = super::openapi::BadRequest), (status = 401, response = super::openapi::Unauthorized), (status = 403, response = super::openapi::Forbidden), (status = 404, response = super::openapi::NotFound), (status = 409, response = super::openapi::Conflict), (status = 422, response = super::openapi::Unprocessable), (status = 503, response = super::openapi::Unavailable),))]
pub async fn refund(
    state: State,
    session: Session,
    idem: Idempotency,
    Path(id): Path<String>,
    body: ApiJson<RefundIn>,
) -> ApiResult<Response> {
    let original = transfer_id(&id)?;
    let input = &body.value;
    let amount = Amount::from_cents(input.amount_cents)?;
    if let Some(leg) = input.leg {
        leg_number(leg)?;
    }
    if input.reason.as_ref().is_some_and(|r| r.chars().count() > DESCRIPTION_LEN_MAX) {
        return Err(invalid(format!("reason must be at most {DESCRIPTION_LEN_MAX} characters")));
    }
    let ask = service::RefundAsk { original, leg: input.leg, amount, reason: input.reason.clone() };
    let idempotency = (idem.0, bank_core::ids::Fingerprint(body.digest));
    let answer = service::refund(&state, session.account.clone(), ask, idempotency).await?;
    Ok((StatusCode::CREATED, Json(answered_out(&state, &answer))).into_response())
}

#[utoipa::path(get, path = "/api/v1/transfers/{id}/receipt", tag = "money", summary = "A Pix receipt (comprovante)",
    description = "The receipt of one leg of a transfer: end-to-end id, payer and receiver (names, masked \
        documents, banks with their institution codes), key, amount, time, status, and what was refunded. Only \
        the payer or the receiver may read it.",
    security(("session" = [])),
    params(("id" = String, Path, format = Uuid, description = "The transfer's id."), ReceiptQuery),
    responses((status = 200, description = "The receipt.", body = ReceiptOut), (status = 400, response = super::openapi::BadRequest), (status = 401, response = super::openapi::Unauthorized), (status = 404, response = super::openapi::NotFound), (status = 503, response = super::openapi::Unavailable),))]
pub async fn receipt(
    state: State,
    session: Session,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<ReceiptOut>> {
    let id = transfer_id(&id)?;
    let uri = format!("/?{}", raw.unwrap_or_default()).parse().map_err(|_| invalid("malformed query string"))?;
    let query: Query<ReceiptQuery> =
        Query::try_from_uri(&uri).map_err(|e| invalid(format!("invalid query: {}", e.body_text())))?;
    let leg = match query.0.leg.as_deref() {
        None => None,
        Some(text) => Some(text.parse::<u16>().map_err(|_| leg_invalid()).and_then(leg_number)?),
    };
    let receipt = service::receipt(&state, &session.account, id, leg).await?;
    Ok(Json(ReceiptOut::from(&receipt)))
}
