//! The one place errors become HTTP responses: `application/problem+json` (RFC 9457) with the
//! stable `code` of API.md. Internal errors are logged with their cause and answered opaquely.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bank_core::Error;
use serde::Serialize;

/// The service's error, on its way to the client (the name the handlers know it by).
pub use crate::service::ServiceError as ApiError;

pub fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::Core(Error::InvalidInput(detail.into()))
}

pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::InvalidInput(_) => StatusCode::BAD_REQUEST,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) | Error::UnknownKey(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) | Error::NotRefundable(_) => StatusCode::CONFLICT,
        Error::IdempotencyMismatch | Error::InsufficientFunds { .. } | Error::RefundExceedsAmount { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Error::BankUnavailable(_) | Error::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        Error::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
    }
}

fn title_of(code: &str) -> &'static str {
    match code {
        "invalid_input" => "Invalid input",
        "unauthorized" => "Not signed in",
        "forbidden" => "Not allowed",
        "not_found" => "Not found",
        "unknown_key" => "Unknown Pix key",
        "conflict" => "Conflict",
        "idempotency_mismatch" => "Idempotency key reused",
        "insufficient_funds" => "Insufficient funds",
        "overloaded" => "Overloaded",
        "bank_unavailable" => "Bank unavailable",
        "too_many_attempts" => "Too many attempts",
        "not_refundable" => "Not refundable",
        "refund_exceeds_amount" => "Refund exceeds the amount",
        _ => "Internal error",
    }
}

/// The `Retry-After` header (seconds) an error asks the client to honour, if any.
pub fn retry_after(e: &Error) -> Option<HeaderValue> {
    match e {
        Error::TooManyAttempts { retry_after_s, .. } => Some(HeaderValue::from(*retry_after_s)),
        _ => None,
    }
}

/// An error answer, `application/problem+json` (RFC 9457), with the stable `code` of API.md.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "https://bank.example/problems/insufficient_funds", "title": "Insufficient funds", "status": 422,
    "detail": "account 000001-9 has 500 centavos available, 1000 requested", "code": "insufficient_funds"
}))]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// A sentence for people; at most 400 characters.
    #[schema(max_length = 400)]
    pub detail: String,
    #[schema(value_type = crate::api::openapi::ProblemCode)]
    pub code: &'static str,
}

/// Longest `detail` an answer carries, in characters.
pub const DETAIL_CHARS_MAX: usize = 400;

/// A detail as a client may see it. Our own messages quote input already cut
/// ([`bank_core::error::quoted`]); here other libraries' messages get the same cut (a JSON
/// parser's error repeats a whole mistyped string value), and every detail a length bound.
fn bounded(detail: String) -> String {
    use bank_core::error::{shortened, with_quotes_cut};
    match with_quotes_cut(&detail) {
        std::borrow::Cow::Borrowed(_) if detail.chars().count() <= DETAIL_CHARS_MAX => detail,
        cut => shortened(&cut, DETAIL_CHARS_MAX).into_owned(),
    }
}

pub fn problem(status: StatusCode, code: &'static str, detail: String) -> Response {
    let detail = bounded(detail);
    let body = Problem {
        kind: format!("https://bank.example/problems/{code}"),
        title: title_of(code),
        status: status.as_u16(),
        detail,
        code,
    };
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Core(e) => {
                let mut response = problem(status_of(&e), e.code(), e.to_string());
                if let Some(value) = retry_after(&e) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred; it was logged".into(),
                )
            }
        }
    }
}
