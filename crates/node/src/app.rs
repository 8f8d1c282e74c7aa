//! The top of a node: the whole HTTP application, assembled from its three faces — the public
//! API (`api`), the customers' pages (`web`) and the inter-bank routes (`interbank`) — behind the
//! shared limits every request passes (body size, panics, load shedding, concurrency, timeout,
//! tracing). Nothing below imports this module.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::Response;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::service::Bank;
use crate::{api, interbank, web};

/// The state every handler shares: the bank's services.
pub type AppState = Bank;

/// The whole HTTP application of a node.
pub fn router(state: Arc<Bank>) -> Router {
    let limits = state.limits.clone();
    let routes = Router::new()
        .merge(api::routes())
        .merge(interbank::routes())
        .merge(web::routes())
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(limits.body_bytes_max));
    // `Router::layer` wraps every route separately (each would get its own concurrency limit),
    // so the whole router goes behind the shared limits as one service.
    Router::new()
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
                .layer(HandleErrorLayer::new(shed_or_timeout))
                .load_shed()
                .concurrency_limit(limits.in_flight_max)
                .timeout(Duration::from_millis(limits.request_timeout_ms)),
        )
        .layer(TraceLayer::new_for_http())
}

async fn shed_or_timeout(err: tower::BoxError) -> Response {
    if err.is::<tower::timeout::error::Elapsed>() {
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
