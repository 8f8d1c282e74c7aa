//! The public HTTP API (`/api/v1`, API.md), plus `/healthz` and `/metrics`.
//!
//! Handlers only translate: they parse raw input into core types once (a parse failure is a 400
//! `invalid_input` and changes nothing), send a command to the ledger writer or run a read query,
//! and shape the answer. Every rule lives in the core. Errors become problems in [`problem`].

pub mod dto;
mod handlers;
pub mod problem;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{delete, get, post};
use bank_core::Error;
use bank_core::ids::{AccountNumber, BankId, Fingerprint, IdempotencyKey};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{SessionCache, TokenRefusal};
use crate::config::Limits;
use crate::metrics::Metrics;
use crate::storage::read::ReadPool;
use crate::storage::writer::{WriterHandle, now_ms};
use problem::{ApiError, invalid};

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub bank_id: BankId,
    pub bank_name: String,
    pub public_url: String,
    pub writer: WriterHandle,
    pub reads: ReadPool,
    pub entry_index: Arc<crate::storage::EntryIndex>,
    pub sessions: SessionCache,
    pub hashers: crate::auth::HasherPool,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// The consortium link (verifier and peer client); `None` for a bank running alone.
    pub interbank: Option<Arc<crate::interbank::Interbank>>,
    pub coordination: Arc<crate::coordination::Coordination>,
    /// The coordination mode this bank runs (a bank alone reports its configured mode).
    pub coordination_mode: crate::config::CoordinationMode,
    /// The token ring as the writer last published it; `None` unless in `token-ring` mode.
    pub ring: Option<Arc<crate::storage::ring::RingView>>,
    /// Whether the operator's fault switch route is enabled.
    pub fault_switch: bool,
}

pub type State = axum::extract::State<Arc<AppState>>;

/// The whole HTTP application of a node.
pub fn router(state: Arc<AppState>) -> Router {
    let limits = state.limits.clone();
    let routes = Router::new()
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
        .merge(crate::interbank::routes())
        .merge(crate::coordination::routes())
        .merge(crate::web::routes())
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(limits.body_bytes_max));
    // `Router::layer` wraps every route separately (each would get its own concurrency limit),
    // so the whole router goes behind the shared limits as one service.
    Router::new()
        .fallback_service(routes)
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(|_| {
                    problem::problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", "an internal error occurred".into())
                }))
                .layer(HandleErrorLayer::new(shed_or_timeout))
                .load_shed()
                .concurrency_limit(limits.in_flight_max)
                .timeout(Duration::from_millis(limits.request_timeout_ms)),
        )
        .layer(TraceLayer::new_for_http())
}

async fn shed_or_timeout(err: tower::BoxError) -> Response {
    if err.is::<tower::timeout::error::Elapsed>() {
        problem::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the request took too long; try again shortly".into(),
        )
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        problem::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the bank is overloaded; try again shortly".into(),
        )
    } else {
        problem::problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("unhandled: {err}"))
    }
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

impl FromRequestParts<Arc<AppState>> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
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
