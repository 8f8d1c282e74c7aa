//! The public HTTP API (`/api/v1`, API.md), plus `/healthz` and `/metrics`.
//!
//! Handlers only translate: they parse raw input into core types once (a parse failure is a 400
//! `invalid_input` and changes nothing), send a command to the ledger writer or run a read query,
//! and shape the answer. Every rule lives in the core. Errors become problems in [`crate::problem`].

pub mod dto;
mod handlers;

/// Problems are answered in one place, shared with `interbank`; kept reachable here.
pub use crate::problem;
pub use handlers::{method_not_allowed, not_found};

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{delete, get, post};
use bank_core::Error;
use bank_core::ids::{AccountNumber, Fingerprint, IdempotencyKey};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::auth::TokenRefusal;
use crate::problem::{ApiError, invalid};
use crate::service::Bank;
use crate::storage::writer::now_ms;

/// State every API handler takes.
pub type State = axum::extract::State<Arc<Bank>>;

/// The `/api/v1` routes, `/healthz` and `/metrics`; [`not_found`] and [`method_not_allowed`] answer the rest.
pub fn routes() -> Router<Arc<Bank>> {
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/metrics", get(handlers::metrics))
        .route("/api/v1/bank", get(handlers::bank))
        .route("/api/v1/accounts", post(handlers::open_account))
        .route("/api/v1/sessions", post(handlers::sign_in))
        .route("/api/v1/sessions/current", delete(handlers::sign_out))
        .route("/api/v1/me", get(handlers::me))
        .route("/api/v1/deposits", post(handlers::deposit))
        .route("/api/v1/withdrawals", post(handlers::withdraw))
        .route("/api/v1/pix-keys", post(handlers::register_key))
        .route("/api/v1/pix-keys/{key}", get(handlers::lookup_key))
        .route("/api/v1/transfers", post(handlers::transfer))
        .route("/api/v1/transfers/{id}", get(handlers::get_transfer))
        .route("/api/v1/statement", get(handlers::statement))
        .route("/api/v1/consortium/accounts", get(handlers::consortium_accounts))
        .route("/api/v1/consortium/status", get(handlers::consortium_status))
}

/// A JSON body, parsed strictly, with the digest of its raw bytes (for idempotency).
#[derive(Debug)]
pub struct ApiJson<T> {
    pub value: T,
    pub digest: [u8; 32],
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let path = req.uri().path().to_string();
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                invalid("the request body is too large")
            } else {
                invalid(format!("could not read the request body: {e}"))
            }
        })?;
        // Parsed straight into `T` first: that refuses duplicate and unknown fields.
        let value = serde_json::from_slice(&bytes).map_err(|e| invalid(format!("invalid JSON body: {e}")))?;
        // The fingerprint covers the body's meaning, not its spelling: the canonical form of the
        // parsed JSON (object keys sorted), so reordered fields are still "the same body".
        let canonical = serde_json::from_slice::<serde_json::Value>(&bytes)
            .and_then(|json| serde_json::to_vec(&json))
            .map_err(|e| invalid(format!("invalid JSON body: {e}")))?;
        let mut hasher = Sha256::new();
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(&canonical);
        Ok(ApiJson { value, digest: hasher.finalize().into() })
    }
}

/// The signed-in account, from `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct Session {
    pub account: AccountNumber,
    pub token_hash: [u8; 32],
}

impl FromRequestParts<Arc<Bank>> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<Bank>) -> Result<Self, Self::Rejection> {
        let unauthorized = |d: &str| ApiError::Core(Error::Unauthorized(d.to_string()));
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("sign in first: send Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .ok_or_else(|| unauthorized("the Authorization header must be: Bearer <token>"))?;
        match state.sessions.check(token, now_ms()) {
            Ok((account, token_hash)) => Ok(Session { account, token_hash }),
            Err(TokenRefusal::Expired) => Err(unauthorized("the session has expired; sign in again")),
            Err(TokenRefusal::Unknown) => Err(unauthorized("the token is not valid (unknown or signed out)")),
        }
    }
}

/// The `Idempotency-Key` header: the client's UUID, or a fresh one when absent (then the request
/// cannot be safely retried, which is the client's choice).
#[derive(Debug, Clone, Copy)]
pub struct Idempotency(pub IdempotencyKey);

impl<S: Send + Sync> FromRequestParts<S> for Idempotency {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get("idempotency-key") {
            None => Ok(Idempotency(IdempotencyKey(uuid::Uuid::new_v4()))),
            Some(value) => {
                let text = value.to_str().map_err(|_| invalid("Idempotency-Key must be a UUID"))?;
                Ok(Idempotency(IdempotencyKey::parse(text)?))
            }
        }
    }
}

impl Idempotency {
    pub fn with(self, digest: [u8; 32]) -> (IdempotencyKey, Fingerprint) {
        (self.0, Fingerprint(digest))
    }
}
