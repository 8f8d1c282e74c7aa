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
}

impl Error {
    pub fn invalid(detail: impl Into<String>) -> Self {
        Error::InvalidInput(detail.into())
    }

    /// The stable machine-readable code of API.md.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidInput(_) => "invalid_input",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::UnknownKey(_) => "unknown_key",
            Error::Conflict(_) => "conflict",
            Error::IdempotencyMismatch => "idempotency_mismatch",
            Error::InsufficientFunds { .. } => "insufficient_funds",
            Error::BankUnavailable(_) => "bank_unavailable",
            Error::Overloaded => "overloaded",
        }
    }

    /// Whether retrying the same request later may succeed (the others need a changed request).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::BankUnavailable(_) | Error::Overloaded)
    }
}
