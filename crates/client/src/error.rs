//! The one error type of the client.
//!
//! Three things can go wrong with a call, and a caller acts differently on each:
//! - [`Error::Api`]: the bank answered with a problem (`application/problem+json`); the request
//!   was rejected and changed nothing. `code` is the stable code of API.md (`insufficient_funds`,
//!   `unauthorized`, ...).
//! - [`Error::Transport`]: no complete answer arrived (refused connection, timeout, reset). A
//!   money-moving request may or may not have executed: retry it with the *same* idempotency key.
//! - [`Error::Decode`]: an answer arrived but is not the JSON this client expects.

use serde::Deserialize;

/// What went wrong with a call to a bank's API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bank rejected the request with a problem document (or at least an error status).
    #[error("{detail} ({code}, HTTP {status})")]
    Api { status: u16, code: String, detail: String },
    /// The request or its response did not make it through the network.
    #[error("transport failure")]
    Transport(#[source] reqwest::Error),
    /// A success response whose body is not what the API promises.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// The base URL given to the client cannot be used.
    #[error("invalid base URL: {0}")]
    InvalidUrl(String),
}

impl Error {
    /// The stable code of an API error (`insufficient_funds`, `overloaded`, ...); for the other
    /// variants a pseudo-code naming the variant: `transport`, `decode` or `invalid_url`.
    pub fn code(&self) -> &str {
        match self {
            Error::Api { code, .. } => code,
            Error::Transport(_) => "transport",
            Error::Decode(_) => "decode",
            Error::InvalidUrl(_) => "invalid_url",
        }
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether repeating the same request later may succeed: the bank said it was overloaded or
    /// unavailable (503), or the network failed. Money-moving requests must be repeated with the
    /// same idempotency key, so that at most one of the attempts executes.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api { status, .. } => *status == 503,
            Error::Transport(e) => e.is_timeout() || e.is_connect() || e.is_request(),
            Error::Decode(_) | Error::InvalidUrl(_) => false,
        }
    }
}

/// An RFC 9457 problem document as the node sends it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Problem {
    #[serde(rename = "type", default)]
    pub type_: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
}

/// Longest part of a non-problem error body quoted in an [`Error::Api`] detail.
const RAW_DETAIL_CHARS_MAX: usize = 200;

/// Builds the error for a non-success answer. A problem document gives code and detail; any
/// other body (a proxy page, an empty 503) still yields an `Api` error with code `http_<status>`,
/// so that callers can act on the status.
pub(crate) fn from_error_response(status: u16, body: &[u8]) -> Error {
    if let Ok(problem) = serde_json::from_slice::<Problem>(body)
        && (problem.code.is_some() || problem.detail.is_some())
    {
        let detail = problem.detail.or(problem.title).unwrap_or_default();
        let code = problem.code.unwrap_or_else(|| format!("http_{status}"));
        return Error::Api { status, code, detail };
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let detail = if text.is_empty() {
        format!("HTTP status {status} without a problem document")
    } else {
        text.chars().take(RAW_DETAIL_CHARS_MAX).collect()
    };
    Error::Api { status, code: format!("http_{status}"), detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_document_gives_code_and_detail() {
        let body = br#"{"type":"https://bank/problems/insufficient_funds","title":"Insufficient funds",
            "status":422,"detail":"account 000001-4 has 5 centavos","code":"insufficient_funds","extra":1}"#;
        let err = from_error_response(422, body);
        assert_eq!(err.code(), "insufficient_funds");
        assert_eq!(err.status(), Some(422));
        assert!(err.to_string().contains("account 000001-4 has 5 centavos"));
        assert!(!err.is_retryable());
    }

    #[test]
    fn non_problem_body_still_keeps_the_status() {
        let err = from_error_response(503, b"");
        assert_eq!(err.code(), "http_503");
        assert!(err.is_retryable());
        let err = from_error_response(404, b"Not Found");
        assert!(matches!(&err, Error::Api { detail, .. } if detail == "Not Found"));
    }
}
