//! The one error type of the core. Each variant is something a caller can act on; each maps to
//! one stable API code (see API.md). A rejected operation changes nothing.

use crate::ids::AccountNumber;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("no account in the consortium has the Pix key {0}")]
    UnknownKey(String),
    #[error("{0}")]
    Conflict(String),
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyMismatch,
    #[error("account {account} has {available_cents} centavos available, {requested_cents} requested")]
    InsufficientFunds { account: AccountNumber, available_cents: i64, requested_cents: i64 },
    #[error("{0}")]
    BankUnavailable(String),
    #[error("the bank is overloaded; try again shortly")]
    Overloaded,
    /// Too many failed attempts (sign-ins) lately; the next one is allowed after a pause.
    #[error("too many failed attempts; try again in {retry_after_s} s")]
    TooManyAttempts { retry_after_s: u64 },
}

impl Error {
    pub fn invalid(detail: impl Into<String>) -> Self {
        Error::InvalidInput(detail.into())
    }

    /// The stable machine-readable code of API.md.
    pub fn code(&self) -> &'static str {
        self.error_code().as_str()
    }

    /// The stable code, as the enum the protocol and the API share.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Error::InvalidInput(_) => ErrorCode::InvalidInput,
            Error::Unauthorized(_) => ErrorCode::Unauthorized,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::UnknownKey(_) => ErrorCode::UnknownKey,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::IdempotencyMismatch => ErrorCode::IdempotencyMismatch,
            Error::InsufficientFunds { .. } => ErrorCode::InsufficientFunds,
            Error::BankUnavailable(_) => ErrorCode::BankUnavailable,
            Error::Overloaded => ErrorCode::Overloaded,
            Error::TooManyAttempts { .. } => ErrorCode::TooManyAttempts,
        }
    }

    /// Whether retrying the same request later may succeed (the others need a changed request).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::BankUnavailable(_) | Error::Overloaded)
    }
}

/// Every stable code of API.md, and the reasons a bank refuses a transaction (a participant's no
/// vote, a transfer's `failure.code`). One enum for the protocol, the ledger's records and the
/// API's error mapping, so a refusal is matched by variant, never by spelling; on the wire and in
/// storage it is the snake_case text (`"insufficient_funds"`), and unknown text is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidInput,
    Unauthorized,
    Forbidden,
    NotFound,
    UnknownKey,
    Conflict,
    IdempotencyMismatch,
    InsufficientFunds,
    BankUnavailable,
    Overloaded,
    /// A prepare reached a participant after the expiry it carries.
    Expired,
    /// A prepare reached a participant that had already decided the transaction.
    AlreadyDecided,
    TooManyAttempts,
}

impl ErrorCode {
    /// Every code, for exhaustive tests and documentation.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::InvalidInput,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::UnknownKey,
        ErrorCode::Conflict,
        ErrorCode::IdempotencyMismatch,
        ErrorCode::InsufficientFunds,
        ErrorCode::BankUnavailable,
        ErrorCode::Overloaded,
        ErrorCode::Expired,
        ErrorCode::AlreadyDecided,
        ErrorCode::TooManyAttempts,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::UnknownKey => "unknown_key",
            ErrorCode::Conflict => "conflict",
            ErrorCode::IdempotencyMismatch => "idempotency_mismatch",
            ErrorCode::InsufficientFunds => "insufficient_funds",
            ErrorCode::BankUnavailable => "bank_unavailable",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Expired => "expired",
            ErrorCode::AlreadyDecided => "already_decided",
            ErrorCode::TooManyAttempts => "too_many_attempts",
        }
    }

    /// The code spelled `text`; `None` for anything else (stored or received text that is not a
    /// code is corrupt, never silently some default).
    pub fn parse(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// Why a bank refused a transaction (its no vote, a hold it could not place), or why a
/// transaction failed: a code the customer's answer and the API's error mapping match on, and a
/// sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    pub code: ErrorCode,
    pub detail: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Refusal { code, detail: detail.into() }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_back_from_its_text_and_serializes_as_it() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert_eq!(serde_json::to_string(&code).expect("serializes"), format!("\"{code}\""));
        }
        assert_eq!(ErrorCode::parse("Conflict"), None);
        assert_eq!(ErrorCode::parse(""), None);
        assert!(serde_json::from_str::<ErrorCode>("\"no_such_code\"").is_err());
    }
}
