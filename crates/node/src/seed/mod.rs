//! The seed-compatible API (issue 11): the client-facing routes of the original Python system
//! (`GET /bank`, `POST /account/login`, `GET /account/data/<n>`,
//! `POST /account/transaction/pix/infos`, `POST /operations`, `GET /accounts`), so that its web
//! interface, its `tests.py` and its Postman collection work against our banks unmodified —
//! while the money goes through the same service calls as `/api/v1` (ledger, 2PC, token ring,
//! the same 5 s deadline).
//!
//! **Off by default, and unsafe by design**: the original protocol has no authentication
//! (`/operations` trusts `clientCpfCNPJ`, a public Pix key; `/account/data/<n>` serves any
//! account). It is mounted only when the bank is started with `--seed-compat` (or
//! `BANK_SEED_COMPAT`, or `seed_compat = true` in the consortium file's `[node]` table); the node
//! logs a warning at start and the status page and route say so. See docs/seed-compat.md.
//!
//! Answers follow the original: camelCase JSON on success, short plain text with a real 4xx on
//! refusal (its interface shows `response.text()` and checks only `response.ok`), and CORS on
//! every answer of these routes, refusals and preflights included. None of the original's
//! bank-to-bank routes exist: inter-bank work stays on the signed `/interbank/v1`.
//!
//! Like `api` and `web`, it calls `service` and nothing beside it.

mod account;
mod handlers;
mod input;
pub mod openapi;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use bank_core::ids::TransferId;
use bank_core::ledger::Transfer;

use crate::service::{Bank, ServiceError};

/// The routes of the original's clients, with CORS on every answer; registered by `app` only
/// when the bank runs with the seed-compatible API turned on.
pub fn routes() -> Router<Arc<Bank>> {
    let shared = Arc::new(SeedState::default());
    Router::new()
        .route("/bank", get(handlers::bank).options(preflight))
        .route("/account/login", post(handlers::login).options(preflight))
        .route("/account/data/{number}", get(handlers::account_data).options(preflight))
        .route("/account/transaction/pix/infos", post(handlers::pix_infos).options(preflight))
        .route("/operations", post(handlers::operations).options(preflight))
        .route("/accounts", get(handlers::accounts).options(preflight))
        .layer(axum::Extension(shared))
        .layer(axum::middleware::map_response(with_cors))
}

/// The original answered every origin (flask-cors with its defaults); so do these routes —
/// they carry no cookie and no credential, so `*` exposes nothing a plain request would not.
async fn with_cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type"));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    response
}

/// A CORS preflight: 200 (the CORS headers are added to every answer by [`with_cors`]).
async fn preflight() -> StatusCode {
    StatusCode::OK
}

/// State of the seed routes alone: the banks where a document has accounts, remembered briefly
/// because the original's interface polls `GET /account/data/<n>` every second per open page
/// and finding them asks every other bank.
///
/// It also remembers the decided cross-bank transfers this bank coordinated that the Account
/// JSON has shown (their records name who was paid; a decided transfer never changes).
#[derive(Debug, Default)]
pub struct SeedState {
    banks_lists: Mutex<HashMap<String, (Instant, Vec<String>)>>,
    transfers: Mutex<HashMap<TransferId, Transfer>>,
}

/// Most decided transfers remembered; past it the whole map is cleared (a cache, as above).
const TRANSFERS_MAX: usize = 10_000;
/// How long a document's list of banks is reused before other banks are asked again.
const BANKS_LIST_TTL: Duration = Duration::from_secs(5);
/// Most documents whose bank lists are remembered; past it the whole map is cleared (it is a
/// cache: the next reads ask the banks again).
const BANKS_LISTS_MAX: usize = 10_000;

impl SeedState {
    fn banks_list(&self, document: &str) -> Option<Vec<String>> {
        let lists = self.banks_lists.lock().ok()?;
        let (at, list) = lists.get(document)?;
        (at.elapsed() < BANKS_LIST_TTL).then(|| list.clone())
    }

    fn transfer(&self, id: &TransferId) -> Option<Transfer> {
        self.transfers.lock().ok()?.get(id).cloned()
    }

    /// Remembers a decided transfer (the caller checks that it is decided).
    fn remember_transfer(&self, transfer: &Transfer) {
        if let Ok(mut transfers) = self.transfers.lock() {
            if transfers.len() >= TRANSFERS_MAX {
                transfers.clear();
            }
            transfers.insert(transfer.id, transfer.clone());
        }
    }

    fn remember_banks_list(&self, document: &str, list: &[String]) {
        if let Ok(mut lists) = self.banks_lists.lock() {
            if lists.len() >= BANKS_LISTS_MAX {
                lists.clear();
            }
            lists.insert(document.to_string(), (Instant::now(), list.to_vec()));
        }
    }
}

/// A refusal as the original answered it: a short plain text and a real status.
#[derive(Debug)]
pub struct SeedError {
    status: StatusCode,
    text: String,
}

impl SeedError {
    fn new(status: StatusCode, text: impl Into<String>) -> Self {
        SeedError { status, text: text.into() }
    }

    fn bad_request(text: impl Into<String>) -> Self {
        SeedError::new(StatusCode::BAD_REQUEST, text)
    }

    fn not_found(text: impl Into<String>) -> Self {
        SeedError::new(StatusCode::NOT_FOUND, text)
    }
}

impl From<ServiceError> for SeedError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Core(e) => SeedError::new(crate::problem::status_of(&e), e.to_string()),
            ServiceError::Internal(cause) => {
                tracing::error!(%cause, "seed-compatible request failed");
                SeedError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

impl From<bank_core::Error> for SeedError {
    fn from(e: bank_core::Error) -> Self {
        ServiceError::Core(e).into()
    }
}

impl IntoResponse for SeedError {
    fn into_response(self) -> Response {
        let mut text = self.text;
        if text.len() > 400 {
            let mut end = 400;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        (self.status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
    }
}

type SeedResult<T> = Result<T, SeedError>;
