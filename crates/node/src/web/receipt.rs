//! The Pix receipt page (comprovante, `/transfers/{id}/receipt`) and its refund form
//! (`POST /transfers/{id}/refunds`). Either party of a Pix may open its receipt; its receiver
//! also sees the refund form while something is left to refund. The page prints cleanly (a print
//! stylesheet hides the bank's menus and the form).

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bank_core::Error;
use bank_core::ids::TransferId;

use super::i18n::when;
use super::pages::status_id;
use super::words::friendly;
use super::{Fields, Shell, Tr, WebSession, brl, new_idempotency_key, parse_amount, render_status};
use crate::problem::status_of;
use crate::service::{self, Bank, Receipt, ServiceError};

type St = State<Arc<Bank>>;

/// One side of the Pix, as printed.
struct PartyView {
    name: String,
    document: String,
    bank: String,
}

#[derive(Template)]
#[template(path = "receipt.html")]
struct ReceiptPage {
    shell: Shell,
    id: String,
    leg: u16,
    end_to_end_id: String,
    is_refund: bool,
    refund_of_id: String,
    refund_of_e2e: String,
    payer: PartyView,
    receiver: PartyView,
    key: String,
    amount: String,
    status: &'static str,
    /// The status in the page's language.
    status_label: String,
    /// "Transfer …, leg …" in the page's language.
    transfer_line: String,
    created_at: String,
    description: String,
    refunded: String,
    /// Shown to the receiver while something is left to refund.
    refund: Option<RefundForm>,
}

/// The refund form, with what was typed and why it was refused (if it was).
struct RefundForm {
    left: String,
    amount: String,
    reason: String,
    idempotency_key: String,
    error: Option<String>,
}

fn party_view(tr: &Tr, p: &service::Party) -> PartyView {
    let document = if p.document.is_empty() { "—".to_string() } else { p.document.clone() };
    PartyView {
        name: if p.name.is_empty() { "—".to_string() } else { p.name.clone() },
        document,
        bank: tr.t2("receipt-bank-code", ("bank", p.bank_name.as_str()), ("code", p.institution_code.to_string())),
    }
}

fn page(state: &Bank, tr: &Tr, customer: String, r: &Receipt, form: Option<RefundForm>) -> ReceiptPage {
    let refund = form.or_else(|| {
        r.refundable_cents.filter(|&left| left > 0).map(|left| RefundForm {
            left: brl(left),
            amount: String::new(),
            reason: String::new(),
            idempotency_key: new_idempotency_key(),
            error: None,
        })
    });
    ReceiptPage {
        shell: Shell::new(
            state,
            tr,
            if r.refund_of.is_some() { "title-refund-receipt" } else { "title-receipt" },
            Some(customer),
        ),
        id: r.transfer_id.to_string(),
        leg: r.leg,
        end_to_end_id: r.end_to_end_id.clone(),
        is_refund: r.refund_of.is_some(),
        refund_of_id: r.refund_of.as_ref().map(|o| o.transfer_id.to_string()).unwrap_or_default(),
        refund_of_e2e: r.refund_of.as_ref().map(|o| o.end_to_end_id.clone()).unwrap_or_default(),
        payer: party_view(tr, &r.payer),
        receiver: party_view(tr, &r.receiver),
        key: r.key.clone().unwrap_or_default(),
        amount: brl(r.amount_cents),
        status: r.status.as_str(),
        status_label: tr.t(status_id(r.status.as_str())),
        // Counted from 1, as the pages and the core's refusals count a transfer's parts.
        transfer_line: tr.t2("receipt-transfer-leg", ("id", r.transfer_id.to_string()), ("leg", u32::from(r.leg) + 1)),
        created_at: when(tr.lang, r.created_at),
        description: r.description.clone().unwrap_or_default(),
        refunded: if r.refunded_cents > 0 { brl(r.refunded_cents) } else { String::new() },
        refund,
    }
}

fn problem_page(state: &Bank, tr: &Tr, customer: Option<String>, e: &ServiceError) -> Response {
    let status = match e {
        ServiceError::Core(e) => status_of(e),
        ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    super::pages::message(state, tr, customer, status, "title-no-pix", &friendly(e, tr))
}

/// The customer's name for the page's header; a session whose account is gone signs in again.
async fn customer(state: &Arc<Bank>, tr: &Tr, session: &WebSession) -> Result<String, Response> {
    match service::account(state, &session.account).await {
        Ok(view) => Ok(view.account.display_name()),
        Err(ServiceError::Core(Error::Unauthorized(_))) => Err(Redirect::to("/login").into_response()),
        Err(e) => Err(problem_page(state, tr, None, &e)),
    }
}

fn transfer_id(text: &str) -> Result<TransferId, ServiceError> {
    uuid::Uuid::try_parse(text)
        .map(TransferId)
        .map_err(|_| ServiceError::Core(Error::NotFound("a transfer id is a UUID".into())))
}

fn leg_of(raw: Option<&str>) -> Option<u16> {
    let query: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default()).unwrap_or_default();
    query.iter().find(|(k, _)| k == "leg").and_then(|(_, v)| v.parse().ok())
}

/// `GET /transfers/{id}/receipt[?leg=N]`.
pub async fn receipt(
    state: St,
    tr: Tr,
    session: WebSession,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let who = match customer(&state, &tr, &session).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let found = match transfer_id(&id) {
        Ok(id) => service::receipt(&state, &session.account, id, leg_of(raw.as_deref())).await,
        Err(e) => Err(e),
    };
    match found {
        Ok(r) => render_status(StatusCode::OK, &page(&state, &tr, who, &r, None)),
        Err(e) => problem_page(&state, &tr, Some(who), &e),
    }
}

/// `POST /transfers/{id}/refunds`: the receiver refunds (part of) the Pix, then sees the
/// refund's receipt; a refusal shows the receipt again with the reason and what was typed.
pub async fn refund(state: St, tr: Tr, session: WebSession, Path(id): Path<String>, body: Bytes) -> Response {
    let who = match customer(&state, &tr, &session).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let f = Fields::parse(&body);
    let original = match transfer_id(&id) {
        Ok(id) => id,
        Err(e) => return problem_page(&state, &tr, Some(who), &e),
    };
    let leg = f.get("leg").parse::<u16>().ok();
    let reason = Some(f.get("reason").trim().to_string()).filter(|r| !r.is_empty());
    let sent = match parse_amount(&f.get("amount"), &tr) {
        Err(e) => Err((StatusCode::BAD_REQUEST, e)),
        Ok(amount) => {
            let meaning = format!("{id}|{leg:?}|{}|{}", amount.cents(), reason.clone().unwrap_or_default());
            let idem = f.idempotency(&format!("/transfers/{id}/refunds"), &meaning);
            let ask = service::RefundAsk { original, leg, amount, reason };
            service::refund(&state, session.account.clone(), ask, idem).await.map_err(|e| {
                let status = match &e {
                    ServiceError::Core(core) => status_of(core),
                    ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                };
                (status, friendly(&e, &tr))
            })
        }
    };
    let (status, error) = match sent {
        Ok(answer) => return Redirect::to(&format!("/transfers/{}/receipt", answer.transfer.id)).into_response(),
        Err(refused) => refused,
    };
    match service::receipt(&state, &session.account, original, leg).await {
        Ok(r) => {
            let form = RefundForm {
                left: brl(r.refundable_cents.unwrap_or(0)),
                amount: f.get("amount"),
                reason: f.get("reason"),
                idempotency_key: f.get("idempotency_key"),
                error: Some(error),
            };
            render_status(status, &page(&state, &tr, who, &r, Some(form)))
        }
        Err(e) => problem_page(&state, &tr, Some(who), &e),
    }
}
