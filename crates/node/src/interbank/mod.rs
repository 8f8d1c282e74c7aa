//! The inter-bank API, `/interbank/v1`: how banks of the consortium call each other.
//!
//! Every request between banks is signed by the sending bank with its Ed25519 key and verified by
//! the receiver against the public keys of the consortium file (DESIGN.md §6):
//!
//! - [`sign`]: the canonical string, the headers, and the [`sign::Verifier`] that refuses
//!   unsigned, wrongly signed, stale and replayed requests (with a bounded nonce cache);
//! - [`client`]: [`client::PeerClient`], the pooled HTTP client that signs every request it
//!   sends, with errors split into retryable (unreachable, timeout) and refusals;
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

pub mod audit;
pub mod client;
pub mod extract;
pub mod fault;
pub mod sign;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use bank_core::ids::BankId;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::config::Limits;
use crate::consortium::{Consortium, Member};
use client::{PeerClient, PeerError, PeerOptions};
use extract::{InterbankState, SignedBody};
use sign::Verifier;

/// This bank's place in the consortium: its peers, how it checks them and how it calls them.
#[derive(Debug)]
pub struct Interbank {
    pub self_id: BankId,
    pub members: BTreeMap<BankId, Member>,
    pub operator_key: VerifyingKey,
    /// Checks member banks' requests.
    pub verifier: Verifier,
    /// Checks the operator's requests: knows only the operator key, under [`sign::OPERATOR`].
    pub operator_verifier: Verifier,
    pub peers: PeerClient,
}

impl Interbank {
    /// Builds the verifier and the peer client of bank `self_id` (a member of `consortium`).
    /// Refused when `self_id` is not the member whose key `consortium` holds.
    pub fn new(self_id: BankId, consortium: &Consortium, limits: &Limits) -> Result<Interbank, PeerError> {
        let own_key = consortium.signing_key.verifying_key();
        if consortium.members.get(&self_id).map(|m| m.public_key) != Some(own_key) {
            return Err(PeerError::Local(format!(
                "bank {self_id} is not a member of the consortium, or its signing key is not the one listed for it"
            )));
        }
        if consortium.members.contains_key(&sign::OPERATOR) {
            // The file loader refuses it too; a consortium built in code must not either, or a
            // member's signature could pass for the operator's.
            return Err(PeerError::Local(format!("no member may have id {}: it is the operator's", sign::OPERATOR)));
        }
        let keys = consortium.members.values().map(|m| (m.id, m.public_key)).collect();
        let verifier = Verifier::new(self_id, keys)
            .with_clock_skew_ms(limits.clock_skew_ms)
            .with_nonces_per_bank_max(limits.nonces_per_bank_max);
        let operator_verifier =
            Verifier::new(self_id, [(sign::OPERATOR, consortium.operator_key)].into_iter().collect())
                .with_clock_skew_ms(limits.clock_skew_ms)
                .with_nonces_per_bank_max(limits.nonces_per_bank_max);
        let options = PeerOptions {
            connect_timeout_ms: limits.peer_connect_timeout_ms,
            request_timeout_ms: limits.peer_request_timeout_ms,
        };
        let urls = consortium.members.values().map(|m| (m.id, m.url.clone()));
        let peers = PeerClient::new(self_id, consortium.signing_key.clone(), urls, options)?;
        Ok(Interbank {
            self_id,
            members: consortium.members.clone(),
            operator_key: consortium.operator_key,
            verifier,
            operator_verifier,
            peers,
        })
    }
}

impl InterbankState for Arc<AppState> {
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
pub async fn ping(state: crate::api::State, signed: SignedBody) -> Json<Pong> {
    Json(Pong { bank_id: state.bank_id, from: signed.from })
}

/// Every `/interbank/v1` route, merged into the node's router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(PING_PATH, get(ping))
        .route(audit::AUDIT_PATH, get(audit::audit))
        .route(fault::FAULT_PATH, axum::routing::post(fault::fault))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consortium::SigningKey;

    fn member(id: u32, key: &SigningKey) -> Member {
        Member {
            id: BankId(id),
            name: format!("Bank {id}"),
            url: format!("http://127.0.0.1:{}", 9000 + id),
            public_key: key.verifying_key(),
        }
    }

    #[test]
    fn no_member_may_take_the_operators_id() {
        let (zero, one, operator) =
            (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]), SigningKey::from_bytes(&[3; 32]));
        let mut consortium = Consortium {
            members: [(BankId(1), member(1, &one))].into_iter().collect(),
            operator_key: operator.verifying_key(),
            signing_key: one.clone(),
        };
        let interbank = Interbank::new(BankId(1), &consortium, &Limits::default()).expect("a consortium of one");
        assert_eq!(interbank.operator_verifier.self_id(), BankId(1));
        consortium.members.insert(sign::OPERATOR, member(0, &zero));
        let err = Interbank::new(BankId(1), &consortium, &Limits::default()).expect_err("member 0");
        assert!(err.to_string().contains("operator"), "{err}");
    }
}
