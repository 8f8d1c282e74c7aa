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
pub mod i18n;
mod pages;
mod receipt;
mod words;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use bank_core::Error;
use bank_core::ids::{AccountNumber, Fingerprint, IdempotencyKey};
use sha2::{Digest, Sha256};

pub use self::i18n::{Lang, Tr, when};
pub use self::words::friendly;
use crate::service::Bank;
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
        .route("/transfers/{id}/receipt", get(receipt::receipt))
        .route("/transfers/{id}/refunds", post(receipt::refund))
        .route("/receive", get(pages::receive))
        .route("/receive/keys", post(pages::register_key))
        .route("/consortium", get(pages::consortium))
        .route("/lang", post(switch_language))
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
        let tr = Tr::new(Lang::of_request(request.headers()));
        let body = format!(
            "<!doctype html><html lang=\"{lang}\"><meta charset=\"utf-8\"><title>{title}</title>\
             <h1>{heading}</h1><p>{text} <a href=\"/\">{go}</a>.</p></html>",
            lang = tr.lang.tag(),
            title = tr.t("csrf-title"),
            heading = tr.t("csrf-heading"),
            text = tr.t1("csrf-body", "why", tr.t(why)),
            go = tr.t("csrf-go"),
        );
        return (StatusCode::FORBIDDEN, Html(body)).into_response();
    }
    next.run(request).await
}

/// Why a form post is not this bank's own, as a message id.
fn same_origin(headers: &HeaderMap) -> Result<(), &'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        match site.as_bytes() {
            b"same-origin" | b"none" => {}
            b"same-site" => return Err(i18n::msg("csrf-why-same-site")),
            _ => return Err(i18n::msg("csrf-why-cross-site")),
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        let origin = origin.to_str().unwrap_or_default();
        let ok = !host.is_empty()
            && (origin.strip_prefix("http://") == Some(host) || origin.strip_prefix("https://") == Some(host));
        if !ok {
            return Err(i18n::msg("csrf-why-origin"));
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

/// What every page shows around its content: the bank's name and colour, who is signed in, and
/// the page's language (its translator, which templates call as `shell.t("nav-pix")`).
#[derive(Debug, Clone)]
pub struct Shell {
    pub bank_id: u32,
    pub bank_name: String,
    /// The bank's colour: a hue spread around the wheel by bank id.
    pub hue: u32,
    pub customer: Option<String>,
    pub title: String,
    pub tr: Tr,
}

impl Shell {
    /// `title_id` is the message id of the page's title.
    pub fn new(state: &Bank, tr: &Tr, title_id: &str, customer: Option<String>) -> Self {
        Shell {
            bank_id: state.bank_id.0,
            bank_name: state.bank_name.clone(),
            hue: bank_hue(state.bank_id.0),
            customer,
            title: tr.t(title_id),
            tr: tr.clone(),
        }
    }

    /// Message `id` in the page's language.
    pub fn t(&self, id: &str) -> String {
        self.tr.t(id)
    }

    /// Message `id` with one variable.
    pub fn t1<'a>(&self, id: &str, name: &'a str, value: impl Into<fluent_bundle::FluentValue<'a>>) -> String {
        self.tr.t1(id, name, value)
    }

    /// The `lang` attribute of the page.
    pub fn lang(&self) -> &'static str {
        self.tr.lang.tag()
    }

    /// The language switch's choices: tag, own name (message id), and whether it is this page's.
    pub fn languages(&self) -> Vec<(&'static str, String, bool)> {
        Lang::ALL.into_iter().map(|l| (l.tag(), self.t(l.name_id()), l == self.tr.lang)).collect()
    }
}

/// The page's translator: the language of the request ([`Lang::of_request`]) and where the
/// language switch comes back to (this page; a form post's page comes back to its form).
impl<S: Send + Sync> FromRequestParts<S> for Tr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let lang = Lang::of_request(&parts.headers);
        let path = parts.uri.path();
        let here = if parts.method == axum::http::Method::GET {
            parts.uri.path_and_query().map_or(path, |p| p.as_str()).to_string()
        } else {
            form_page(path).to_string()
        };
        Ok(Tr { lang, here })
    }
}

/// The page a form posted to `path` is shown on, for coming back to it by GET.
fn form_page(path: &str) -> &str {
    match path {
        "/pix/send" => "/pix",
        "/receive/keys" => "/receive",
        "/logout" => "/login",
        "/login" | "/signup" | "/deposit" | "/withdraw" | "/pix" | "/packet" => path,
        _ => "/",
    }
}

/// `POST /lang` (`lang`, `back`): remembers the language in a cookie and goes back to the page.
/// `back` must be a path of this bank (never `//host` or a URL), else the dashboard.
async fn switch_language(body: axum::body::Bytes) -> Response {
    let f = Fields::parse(&body);
    let back = f.get("back");
    let local = back.starts_with('/') && !back.starts_with("//") && !back.starts_with("/\\");
    let mut response = Redirect::to(if local { &back } else { "/" }).into_response();
    if let Some(lang) = Lang::parse(&f.get("lang")) {
        let cookie = format!(
            "{}={}; Path=/; SameSite=Lax; HttpOnly; Max-Age={}",
            i18n::LANG_COOKIE,
            lang.tag(),
            i18n::LANG_COOKIE_MAX_AGE_S
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
    }
    response
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
            // No translator here (the template that failed held it): both languages, briefly.
            let body = "<h1 lang=\"pt-BR\">Algo deu errado</h1><h1 lang=\"en\">Something went wrong</h1>";
            (StatusCode::INTERNAL_SERVER_ERROR, Html(body.to_string())).into_response()
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
pub fn parse_amount(text: &str, tr: &Tr) -> Result<bank_core::money::Amount, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(tr.t("err-amount-empty"));
    }
    match bank_core::money::Amount::parse_brl(text) {
        Ok(amount) => Ok(amount),
        Err(_) if text.starts_with('-') => Err(tr.t("err-amount-positive")),
        Err(Error::InvalidInput(d)) if d.contains("greater than zero") => Err(tr.t("err-amount-positive")),
        Err(Error::InvalidInput(d)) if d.contains("at most") => Err(tr.t("err-amount-too-big")),
        Err(_) => Err(tr.t1("err-amount-invalid", "input", text)),
    }
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
        let en = Tr::new(Lang::En);
        assert_eq!(parse_amount("1234,56", &en).map(|a| a.cents()), Ok(123_456));
        assert_eq!(parse_amount("1234.56", &en).map(|a| a.cents()), Ok(123_456));
        assert_eq!(parse_amount("R$ 1.234,56", &en).map(|a| a.cents()), Ok(123_456));
        assert!(parse_amount("abc", &en).is_err_and(|e| e.contains("not an amount")));
        assert!(parse_amount("-5", &en).is_err_and(|e| e.contains("greater than zero")));
        assert!(parse_amount("0", &en).is_err_and(|e| e.contains("greater than zero")));
        assert!(parse_amount("", &en).is_err());
        let pt = Tr::new(Lang::PtBr);
        assert!(parse_amount("abc", &pt).is_err_and(|e| e.contains("não é um valor")));
        assert!(parse_amount("0", &pt).is_err_and(|e| e.contains("maior que zero")));
        assert_eq!(brl(123_456), "R$ 1.234,56");
    }

    #[test]
    fn the_language_switch_comes_back_to_a_page_of_this_bank_only() {
        assert_eq!(form_page("/pix/send"), "/pix");
        assert_eq!(form_page("/deposit"), "/deposit");
        assert_eq!(form_page("/lang"), "/");
    }
}
