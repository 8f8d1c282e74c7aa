//! The inter-bank API, `/interbank/v1`, inbound: how this bank answers the others. (The signed
//! transport, [`sign`] and [`client`], and the bodies banks exchange live in [`crate::peer`], below
//! the driver that sends them; they are re-exported here under their old paths.)
//!
//! Every request between banks is signed by the sending bank with its Ed25519 key and verified by
//! the receiver against the public keys of the consortium file (DESIGN.md §6):
//!
//! - [`extract`]: the axum extractors [`extract::SignedBody`] and [`extract::Signed`] (a member
//!   bank's signature) and [`extract::OperatorSigned`] (the consortium operator's) that handlers
//!   under `/interbank/v1` take, so an unverified request never reaches a handler;
//! - [`audit`]: `GET /interbank/v1/audit`, the operator's consistent read of this bank's
//!   accounts, totals, holds, decisions, coordinator records and Pix keys (for `bank audit`).
//!
//! A bank started without a consortium file has no [`Interbank`]: it refuses every inter-bank
//! request (401) and calls no one.
//!
//! Routes so far: `GET /interbank/v1/ping` answers `{ "bank_id": <this bank>, "from": <caller> }`
//! to a correctly signed request: a way to check keys, clocks and addresses end to end.
//! `GET /interbank/v1/audit` answers the operator only (see [`audit`]); so does
//! `POST /interbank/v1/fault`, the test-only fault switch (see [`fault`]).
//! `POST /interbank/v1/messages` and `/interbank/v1/ring` hand a peer's protocol batch to the
//! driver and answer with this bank's replies; `POST /interbank/v1/accounts-of` lists the
//! accounts here of a document (see `exchange`).

pub mod audit;
mod exchange;
pub mod extract;
pub mod fault;

// The transport lives in `peer` (the driver sends with it); its public paths stay here.
pub use crate::peer::{Interbank, client, sign};

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use bank_core::ids::BankId;
use serde::{Deserialize, Serialize};

use crate::service::Bank;
use extract::{InterbankState, SignedBody};
use sign::Verifier;

/// The state every `/interbank/v1` handler takes.
pub type State = axum::extract::State<Arc<Bank>>;

impl InterbankState for Arc<Bank> {
    fn verifier(&self) -> Option<&Verifier> {
        self.interbank.as_deref().map(|interbank| &interbank.verifier)
    }
    fn operator_verifier(&self) -> Option<&Verifier> {
        self.interbank.as_deref().map(|interbank| &interbank.operator_verifier)
    }
    fn cut_off(&self) -> bool {
        self.interbank.as_deref().is_some_and(|interbank| interbank.peers.is_cut_off())
    }
}

/// Path of the ping route.
pub const PING_PATH: &str = "/interbank/v1/ping";

/// The answer to a ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pong {
    /// The bank that answered.
    pub bank_id: BankId,
    /// The bank that asked, as its signature proved.
    pub from: BankId,
}

/// `GET /interbank/v1/ping`.
pub async fn ping(state: State, signed: SignedBody) -> Json<Pong> {
    Json(Pong { bank_id: state.bank_id, from: signed.from })
}

/// Every `/interbank/v1` route, merged into the node's router. Every answer, refusals included,
/// carries this bank's clock ([`crate::peer::clock`]), so a peer whose clock disagrees learns it
/// even from the refusal of its stale signature.
pub fn routes() -> Router<Arc<Bank>> {
    Router::new()
        .route(PING_PATH, get(ping))
        .route(audit::AUDIT_PATH, get(audit::audit))
        .route(fault::FAULT_PATH, axum::routing::post(fault::fault))
        .merge(exchange::routes())
        .layer(axum::middleware::map_response(stamp_clock))
}

async fn stamp_clock(mut response: axum::response::Response) -> axum::response::Response {
    let now = axum::http::HeaderValue::from(crate::clock::wall_ms());
    response.headers_mut().insert(crate::peer::clock::CLOCK_HEADER, now);
    response
}
