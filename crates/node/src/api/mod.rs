//! The public HTTP API (`/api/v1`, API.md), plus `/healthz` and `/metrics`.
//!
//! Handlers only translate: they parse raw input into core types once (a parse failure is a 400
//! `invalid_input` and changes nothing), send a command to the ledger writer or run a read query,
//! and shape the answer. Every rule lives in the core. Errors become problems in [`crate::problem`].

pub mod dto;
mod handlers;
pub mod openapi;
mod pix;
mod reference;

/// Problems are answered in one place, shared with `interbank`; kept reachable here.
pub use crate::problem;
pub use handlers::{method_not_allowed, not_found};

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use bank_core::Error;
use bank_core::ids::{AccountNumber, Fingerprint, IdempotencyKey};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TokenRefusal;
use crate::problem::{ApiError, invalid};
use crate::service::Bank;
use crate::storage::writer::now_ms;

/// State every API handler takes.
pub type State = axum::extract::State<Arc<Bank>>;

/// The `/api/v1` routes, `/healthz` and `/metrics`; [`not_found`] and [`method_not_allowed`] answer the rest.
pub fn routes() -> Router<Arc<Bank>> {
    documented().split_for_parts().0
}

/// Every route with its OpenAPI description: `routes!` takes the method and path from the
/// handler's `#[utoipa::path]`, so the router and [`openapi::document`] are built from one list.
/// Add routes only through `routes!` (the test `every_api_route_is_documented` checks that).
pub fn documented() -> OpenApiRouter<Arc<Bank>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(handlers::healthz))
        .routes(routes!(handlers::metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(reference_page))
        .routes(routes!(handlers::bank))
        .routes(routes!(handlers::open_account))
        .routes(routes!(handlers::sign_in))
        .routes(routes!(handlers::sign_out))
        .routes(routes!(handlers::me))
        .routes(routes!(handlers::deposit))
        .routes(routes!(handlers::withdraw))
        .routes(routes!(handlers::register_key))
        .routes(routes!(handlers::lookup_key))
        .routes(routes!(handlers::transfer))
        .routes(routes!(handlers::get_transfer))
        .routes(routes!(pix::refund))
        .routes(routes!(pix::receipt))
        .routes(routes!(handlers::statement))
        .routes(routes!(handlers::consortium_accounts))
        .routes(routes!(handlers::consortium_status))
}

/// This document, for tools (`bank openapi` prints the same text).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", summary = "This OpenAPI document",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", body = Object)))]
pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], openapi::json())
}

/// The same document for people: one HTML page, no script, nothing fetched from elsewhere.
#[utoipa::path(get, path = "/api/v1/reference", tag = "operations", summary = "This API's reference, as a web page",
    responses((status = 200, description = "Every operation, its parameters, answers and schemas.", body = String,
        content_type = "text/html; charset=utf-8")))]
pub async fn reference_page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], reference::html())
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

/// The `Idempotency-Key` header: the client's UUID, or a fresh time-ordered one (v7, so the key
/// index on disk grows at its end) when absent (then the request
/// cannot be safely retried, which is the client's choice).
#[derive(Debug, Clone, Copy)]
pub struct Idempotency(pub IdempotencyKey);

impl<S: Send + Sync> FromRequestParts<S> for Idempotency {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get("idempotency-key") {
            None => Ok(Idempotency(IdempotencyKey(uuid::Uuid::now_v7()))),
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
