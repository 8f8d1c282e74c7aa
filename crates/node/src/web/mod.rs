//! The customers' web pages (DESIGN.md §6): server-rendered with askama, usable without
//! JavaScript, in the bank's own name and colour.
//!
//! Pages run the same operations as the JSON API ([`crate::service`]), so a page never does what the
//! API would refuse; a refused form is shown again with the reason in plain words and what was
//! typed. Sessions are the API's sessions, carried in an HttpOnly, SameSite=Strict cookie named
//! after the bank (several banks on one host keep their own). State-changing requests that a
//! browser marks as coming from another site or origin are refused ([`csrf_guard`]). Every
//! successful form post answers with a redirect (post/redirect/get).

pub mod brcode;
mod pages;
mod receipt;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use bank_core::Error;
use bank_core::error::Attempts;
use bank_core::ids::{AccountNumber, Fingerprint, IdempotencyKey};
use sha2::{Digest, Sha256};

use crate::service::Bank;
use crate::service::ServiceError;
use crate::storage::writer::now_ms;

/// The pages' routes; merged into the node's router.
pub fn routes() -> Router<Arc<Bank>> {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/signup", get(pages::signup_form).post(pages::signup))
        .route("/deposit", get(pages::deposit_form).post(pages::deposit))
        .route("/withdraw", get(pages::withdraw_form).post(pages::withdraw))
        .route("/pix", get(pages::pix_form).post(pages::pix_confirm))
        .route("/pix/send", post(pages::pix_send))
        .route("/packet", get(pages::packet_form).post(pages::packet))
        .route("/statement", get(pages::statement))
        .route("/transfers/{id}", get(pages::transfer_detail))
        .route("/transfers/{id}/receipt", get(receipt::receipt)).route("/transfers/{id}/refunds", post(receipt::refund))
        .route("/receive", get(pages::receive))
        .route("/receive/keys", post(pages::register_key))
        .route("/consortium", get(pages::consortium))
        .route("/static/web.css", get(stylesheet))
        .layer(axum::middleware::from_fn(csrf_guard))
}

const STYLESHEET: &str = include_str!("../../static/web.css");

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], STYLESHEET)
        .into_response()
}

/// Refuses a state-changing request that a browser says comes from another site or origin
/// (`Sec-Fetch-Site`, else `Origin` against `Host`). Requests without either header (scripts,
/// old browsers) pass: the SameSite=Strict cookie keeps cross-site forms signed out anyway.
pub async fn csrf_guard(request: Request, next: Next) -> Response {
    if !request.method().is_safe()
        && let Err(why) = same_origin(request.headers())
    {
        tracing::info!(path = %request.uri().path(), why, "cross-site form post refused");
        let body = format!(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Refused</title>\
             <h1>Request refused</h1><p>This form was sent from another site ({why}). \
             Nothing was changed. <a href=\"/\">Go to your bank</a>.</p></html>"
        );
        return (StatusCode::FORBIDDEN, Html(body)).into_response();
    }
    next.run(request).await
}

fn same_origin(headers: &HeaderMap) -> Result<(), &'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        match site.as_bytes() {
            b"same-origin" | b"none" => {}
            b"same-site" => return Err("another origin of this site"),
            _ => return Err("a cross-site request"),
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        let origin = origin.to_str().unwrap_or_default();
        let ok = !host.is_empty()
            && (origin.strip_prefix("http://") == Some(host) || origin.strip_prefix("https://") == Some(host));
        if !ok {
            return Err("the Origin is not this bank");
        }
    }
    Ok(())
}

/// The session cookie's name: one per bank, since browsers share cookies across ports.
pub fn cookie_name(state: &Bank) -> String {
    format!("bank{}_session", state.bank_id.0)
}

fn session_cookie(state: &Bank, token: &str, max_age_s: u64) -> HeaderValue {
    let value = format!("{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}", cookie_name(state));
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("x=; Max-Age=0"))
}

/// The signed-in customer of a page; a page without one redirects to `/login`.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub account: AccountNumber,
    pub token_hash: [u8; 32],
}

impl FromRequestParts<Arc<Bank>> for WebSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<Bank>) -> Result<Self, Self::Rejection> {
        let jar = axum_extra::extract::CookieJar::from_headers(&parts.headers);
        let token = jar.get(&cookie_name(state)).map(|c| c.value().to_string());
        match token.and_then(|t| state.sessions.check(&t, now_ms()).ok()) {
            Some((account, token_hash)) => Ok(WebSession { account, token_hash }),
            None => Err(Redirect::to("/login").into_response()),
        }
    }
}

/// What every page shows around its content: the bank's name and colour, and who is signed in.
#[derive(Debug, Clone)]
pub struct Shell {
    pub bank_id: u32,
    pub bank_name: String,
    /// The bank's colour: a hue spread around the wheel by bank id.
    pub hue: u32,
    pub customer: Option<String>,
    pub title: String,
}

impl Shell {
    pub fn new(state: &Bank, title: &str, customer: Option<String>) -> Self {
        Shell {
            bank_id: state.bank_id.0,
            bank_name: state.bank_name.clone(),
            hue: bank_hue(state.bank_id.0),
            customer,
            title: title.to_string(),
        }
    }
}

/// A distinct, stable hue per bank id (golden-angle steps, starting at a blue).
pub fn bank_hue(id: u32) -> u32 {
    (210 + id.wrapping_mul(137)) % 360
}

/// Renders a template, or a plain error page if rendering fails.
pub fn render(template: &impl askama::Template) -> Response {
    render_status(StatusCode::OK, template)
}

pub fn render_status(status: StatusCode, template: &impl askama::Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Html("<h1>Something went wrong</h1>".to_string())).into_response()
        }
    }
}

/// The fields of a form post, in order (repeated names allowed, unknown names ignored).
#[derive(Debug, Default, Clone)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Fields {
        Fields(serde_urlencoded::from_bytes(body).unwrap_or_default())
    }

    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> String {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default()
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    /// The form's `idempotency_key` (set when the form was shown) and a digest of what it asks
    /// for: a form sent twice runs once, like an API request repeated with its key.
    pub fn idempotency(&self, path: &str, meaning: &str) -> (IdempotencyKey, Fingerprint) {
        let key = IdempotencyKey::parse(&self.get("idempotency_key"))
            .unwrap_or_else(|_| IdempotencyKey(uuid::Uuid::now_v7()));
        let mut hasher = Sha256::new();
        hasher.update(b"web:");
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(meaning.as_bytes());
        (key, Fingerprint(hasher.finalize().into()))
    }
}

/// A fresh key for a form about to be shown.
pub fn new_idempotency_key() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Parses a typed amount (`1234,56`, `1234.56`, `R$ 1.234,56`) with a message a customer reads.
pub fn parse_amount(text: &str) -> Result<bank_core::money::Amount, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("Type an amount, e.g. 1234,56.".into());
    }
    match bank_core::money::Amount::parse_brl(text) {
        Ok(amount) => Ok(amount),
        Err(_) if text.starts_with('-') => Err("The amount must be greater than zero.".into()),
        Err(Error::InvalidInput(d)) if d.contains("greater than zero") => {
            Err("The amount must be greater than zero.".into())
        }
        Err(Error::InvalidInput(d)) if d.contains("at most") => {
            Err("One operation moves at most R$ 1.000.000,00.".into())
        }
        Err(_) => Err(format!("\u{201c}{text}\u{201d} is not an amount of money; type it like 1234,56.")),
    }
}

/// An error of the core or the API, in words for a customer.
pub fn friendly(e: &ServiceError) -> String {
    match e {
        ServiceError::Internal(_) => "Something went wrong on our side; nothing was changed. Try again.".into(),
        ServiceError::Core(e) => match e {
            Error::InsufficientFunds { available_cents, requested_cents, .. } => format!(
                "Not enough money: {} available, {} asked.",
                bank_core::money::format_brl(*available_cents),
                bank_core::money::format_brl(*requested_cents)
            ),
            Error::UnknownKey(key) => format!("No account in the consortium has the Pix key {key}."),
            Error::Overloaded => "The bank is busy right now; nothing was changed. Try again shortly.".into(),
            Error::TooManyAttempts { attempts: Attempts::SignIns, retry_after_s } => format!(
                "Too many failed sign-ins. To protect your account, wait {retry_after_s} seconds before \
                 trying again."
            ),
            Error::TooManyAttempts { attempts: Attempts::KeyLookups, retry_after_s } => format!(
                "Too many lookups of keys nobody has. Check the key, and wait {retry_after_s} seconds \
                 before looking up another."
            ),
            Error::BankUnavailable(d) => format!("A bank could not be reached, so nothing was done: {d}."),
            Error::IdempotencyMismatch => "This form was already sent with other values; open it again.".into(),
            other => capitalise(&other.to_string()),
        },
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    let first = chars.next().map(|c| c.to_uppercase().to_string()).unwrap_or_default();
    let rest: String = chars.collect();
    let mut out = first + &rest;
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// A moment as a customer reads it: `2026-12-04 18:20:00` (UTC, to the second).
pub fn when(at: bank_core::ids::TimestampMs) -> String {
    let rfc3339 = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.0) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    rfc3339.replace('T', " ").chars().take(19).collect()
}

/// `R$ 1.234,56`.
pub fn brl(cents: i64) -> String {
    bank_core::money::format_brl(cents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_site_and_foreign_origins_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8081"));
        assert!(same_origin(&h).is_ok(), "no browser headers: a script");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8081"));
        assert!(same_origin(&h).is_ok());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h).is_ok());
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(same_origin(&h).is_err());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(same_origin(&h).is_err());
        h.remove("sec-fetch-site");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8082"));
        assert!(same_origin(&h).is_err(), "another bank's port");
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(same_origin(&h).is_err());
    }

    #[test]
    fn amounts_are_read_the_brazilian_and_the_dotted_way() {
        assert_eq!(parse_amount("1234,56").map(|a| a.cents()), Ok(123_456));
        assert_eq!(parse_amount("1234.56").map(|a| a.cents()), Ok(123_456));
        assert_eq!(parse_amount("R$ 1.234,56").map(|a| a.cents()), Ok(123_456));
        assert!(parse_amount("abc").is_err_and(|e| e.contains("not an amount")));
        assert!(parse_amount("-5").is_err_and(|e| e.contains("greater than zero")));
        assert!(parse_amount("0").is_err_and(|e| e.contains("greater than zero")));
        assert!(parse_amount("").is_err());
        assert_eq!(brl(123_456), "R$ 1.234,56");
    }
}
