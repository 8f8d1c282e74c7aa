//! The top of a node: the whole HTTP application, assembled from its faces — the public
//! API (`api`), the customers' pages (`web`), the inter-bank routes (`interbank`) and, when turned
//! on, the seed-compatible API (`seed`) — behind the
//! shared limits every request passes (body size, panics, load shedding, concurrency, timeout,
//! tracing) and the security headers every answer carries ([`security_headers`]). Nothing below
//! imports this module.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::service::Bank;
use crate::{api, interbank, seed, web};

/// The state every handler shares: the bank's services.
pub type AppState = Bank;

/// The whole HTTP application of a node.
pub fn router(state: Arc<Bank>) -> Router {
    let limits = state.limits.clone();
    // The original system's unauthenticated routes, only when this bank was told to serve them.
    let seed = if state.seed_compat { seed::routes() } else { Router::new() };
    let routes = Router::new()
        .merge(api::routes())
        .merge(seed)
        .merge(interbank::routes())
        .merge(web::routes())
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(limits.body_bytes_max));
    // `Router::layer` wraps every route separately (each would get its own concurrency limit),
    // so the whole router goes behind the shared limits as one service.
    let app = Router::new()
        .fallback_service(routes)
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(|_| {
                    crate::problem::problem(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "an internal error occurred".into(),
                    )
                }))
                .layer(axum::middleware::from_fn(track_execution))
                .layer(HandleErrorLayer::new(shed_or_timeout))
                .load_shed()
                .concurrency_limit(limits.in_flight_max)
                .timeout(Duration::from_millis(limits.request_timeout_ms))
                .layer(axum::middleware::from_fn(scope_execution)),
        )
        .layer(TraceLayer::new_for_http());
    // Outermost, so that refusals made by the limits above (503, 500 after a panic) carry them too.
    security_headers(app)
}

/// The policy for every answer: nothing is fetched from elsewhere, no script runs, nothing may
/// frame a page (clickjacking of the Pix confirmation), no `<base>` may redirect its links.
///
/// Styles allow `'unsafe-inline'` because the pages carry the bank's hue in a `<style>` element
/// and a few `style` attributes; with scripts refused outright and every value HTML-escaped by
/// the templates, inline CSS cannot run code. The QR codes are inline SVG elements, part of the
/// page itself, so `img-src` does not concern them.
///
/// `form-action 'self'`: `default-src` does not cover forms, and without it markup injected into
/// a page (were the escaping ever to fail) could post the page's fields elsewhere. The bank's
/// forms all post to the bank itself; a form on another site posting here is refused by the
/// server's cross-site guard (`web::csrf_guard`), which the browser test
/// (crates/cli/tests/e2e_web.rs) checks from a page of another origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Adds the security headers to every answer of `app` — pages, API answers, inter-bank replies
/// and errors alike (one rule is easier to audit than a list of routes that hold personal data).
/// No page address (they hold transfer ids) is sent as a referrer to another site.
///
/// `Cache-Control: no-store` keeps balances, statements and CPFs out of browser and proxy caches;
/// it is set only where a handler chose no policy itself, so the stylesheet stays cacheable.
fn security_headers(app: Router) -> Router {
    let always = |name, value: &'static str| SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value));
    app.layer(always(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .layer(always(header::X_FRAME_OPTIONS, "DENY"))
        .layer(always(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Not `no-referrer`: under it browsers send `Origin: null` with every form post, and the
        // pages' cross-site form guard (`web::csrf_guard`) then refuses the bank's own forms.
        .layer(always(header::REFERRER_POLICY, "same-origin"))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
}

/// Whether a request has handed work to the ledger's writer, shared between the layer outside the
/// request timeout (which answers when the timeout fires) and the handler inside it.
#[derive(Debug, Clone, Default)]
struct Executing(Arc<AtomicBool>);

async fn track_execution(mut request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    request.extensions_mut().insert(Executing::default());
    next.run(request).await
}

async fn scope_execution(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let flag = request.extensions().get::<Executing>().cloned().unwrap_or_default();
    crate::storage::writer::noting_acceptance(flag.0, next.run(request)).await
}

/// The answer when the shared limits stop a request: 503 `overloaded` only when it was refused
/// before anything executed. A request that timed out after its command reached the writer may
/// still be applied: it gets 500 `internal`, which the API does not count as a rejection, and is
/// told to repeat itself under the same Idempotency-Key to learn the outcome.
async fn shed_or_timeout(executing: Option<axum::Extension<Executing>>, err: tower::BoxError) -> Response {
    let executed = executing.is_some_and(|e| e.0.0.load(Ordering::Relaxed));
    if err.is::<tower::timeout::error::Elapsed>() && executed {
        crate::problem::problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the bank took too long to answer, after the request had reached the ledger: it may have been \
             applied. Send it again with the same Idempotency-Key to learn its outcome (it is never applied twice)"
                .into(),
        )
    } else if err.is::<tower::timeout::error::Elapsed>() {
        crate::problem::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the request took too long; try again shortly".into(),
        )
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        crate::problem::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the bank is overloaded; try again shortly".into(),
        )
    } else {
        crate::problem::problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("unhandled: {err}"))
    }
}
