//! The inbound half of the driver's exchanges: `POST /interbank/v1/messages` (two-phase commit),
//! `POST /interbank/v1/ring` (token ring) and `POST /interbank/v1/accounts-of` (a customer's
//! accounts here, asked by the bank they signed in at).
//!
//! A handler checks the batch size, hands the batch to the driver and carries the driver's answer
//! for the sender back in the HTTP response. The protocol work is the driver's.

use std::sync::Arc;

use super::State;
use super::extract::Signed;
use crate::peer::{
    ACCOUNTS_OF_PATH, AccountsOf, BATCH_MESSAGES_MAX, Envelope, HeldAccount, HeldAccounts, MESSAGES_PATH,
    RING_BATCH_MAX, RING_PATH, RingEnvelope,
};
use crate::problem::{ApiError, invalid};
use crate::service::Bank;

/// `POST /interbank/v1/ring`: a peer's token-ring messages; the answer carries this bank's
/// answers to them.
async fn receive_ring(state: State, signed: Signed<RingEnvelope>) -> Result<axum::Json<RingEnvelope>, ApiError> {
    if signed.value.messages.len() > RING_BATCH_MAX {
        return Err(invalid(format!("at most {RING_BATCH_MAX} ring messages per request")));
    }
    let messages = state.driver.receive_ring(signed.from, signed.value.into_pairs()).await?;
    Ok(axum::Json(RingEnvelope { messages }))
}

/// The `/interbank/v1` routes of the two-phase commit and the token ring.
pub fn routes() -> axum::Router<Arc<Bank>> {
    axum::Router::new()
        .route(MESSAGES_PATH, axum::routing::post(receive_messages))
        .route(RING_PATH, axum::routing::post(receive_ring))
        .route(ACCOUNTS_OF_PATH, axum::routing::post(accounts_of))
}

/// `POST /interbank/v1/accounts-of`: the accounts here of which a document is a holder. Asked by
/// a member bank on behalf of its signed-in customer (the customer's consortium-wide view).
async fn accounts_of(state: State, signed: Signed<AccountsOf>) -> Result<axum::Json<HeldAccounts>, ApiError> {
    let document = signed.value.document;
    let accounts = state.reads.run(move |c| crate::storage::read::accounts_of_document(c, &document)).await?;
    let accounts = accounts
        .into_iter()
        .map(|a| HeldAccount { number: a.number, kind: a.kind, posted_cents: a.posted_cents, held_cents: a.held_cents })
        .collect();
    Ok(axum::Json(HeldAccounts { accounts }))
}

/// `POST /interbank/v1/messages`: a peer's protocol messages; the answer carries this bank's
/// messages for that peer (votes for its prepares, acks for its decisions, ...).
async fn receive_messages(state: State, signed: Signed<Envelope>) -> Result<axum::Json<Envelope>, ApiError> {
    if signed.value.messages.len() > BATCH_MESSAGES_MAX {
        return Err(invalid(format!("at most {BATCH_MESSAGES_MAX} messages per request")));
    }
    let messages = state.driver.receive(signed.from, signed.value.messages).await?;
    Ok(axum::Json(Envelope { messages }))
}
