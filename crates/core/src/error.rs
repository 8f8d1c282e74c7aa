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
    /// The transfer cannot be refunded by this customer: not a Pix they received, not
    /// completed, older than the refund window, or already refunded in full.
    #[error("{0}")]
    NotRefundable(String),
    /// A refund larger than what is left to refund of the Pix.
    #[error("at most {remaining_cents} centavos of this Pix can still be refunded, {requested_cents} requested")]
    RefundExceedsAmount { remaining_cents: i64, requested_cents: i64 },
    /// Too many failed attempts lately (sign-ins, or lookups of keys nobody has); the next one
    /// is allowed after a pause.
    #[error("too many failed {}; try again in {retry_after_s} s", attempts.as_str())]
    TooManyAttempts { attempts: Attempts, retry_after_s: u64 },
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
            Error::NotRefundable(_) => ErrorCode::NotRefundable,
            Error::RefundExceedsAmount { .. } => ErrorCode::RefundExceedsAmount,
            Error::TooManyAttempts { .. } => ErrorCode::TooManyAttempts,
        }
    }

    /// Whether retrying the same request later may succeed (the others need a changed request).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::BankUnavailable(_) | Error::Overloaded)
    }
}

/// What kind of attempt failed too often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempts {
    SignIns,
    /// Lookups of Pix keys that no account has (walking the directory for who has a key).
    KeyLookups,
}

impl Attempts {
    pub fn as_str(self) -> &'static str {
        match self {
            Attempts::SignIns => "sign-ins",
            Attempts::KeyLookups => "lookups of unknown Pix keys",
        }
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
    NotRefundable,
    RefundExceedsAmount,
}

impl ErrorCode {
    /// Every code, for exhaustive tests and documentation.
    pub const ALL: [ErrorCode; 15] = [
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
        ErrorCode::NotRefundable,
        ErrorCode::RefundExceedsAmount,
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
            ErrorCode::NotRefundable => "not_refundable",
            ErrorCode::RefundExceedsAmount => "refund_exceeds_amount",
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

/// Most characters of a caller's input an error message repeats: enough to recognise what was
/// sent, never the whole of it (a 60 KB "Pix key" used to come back whole in the answer).
pub const ECHO_CHARS_MAX: usize = 64;

/// `input` as an error message quotes it: `{:?}`-quoted (so controls show escaped), cut after
/// [`ECHO_CHARS_MAX`] characters — characters, not bytes, so a cut never splits one — and then
/// marked with an ellipsis after the closing quote.
pub fn quoted(input: &str) -> String {
    match input.char_indices().nth(ECHO_CHARS_MAX) {
        None => format!("{input:?}"),
        Some((cut, _)) => format!("{:?}…", &input[..cut]),
    }
}

/// `message` with every quoted part — between `"` (with `\\` escapes, as `{:?}` writes them) or
/// between backticks — cut after [`ECHO_CHARS_MAX`] characters like [`quoted`] cuts. For messages
/// that embed input through another library's error: a JSON parser's quotes a whole string
/// value (`invalid type: string "…60 KB…", expected i64`), a strict one a whole unknown field.
pub fn with_quotes_cut(message: &str) -> std::borrow::Cow<'_, str> {
    let mut out = String::new();
    let mut rest = message;
    let mut cut_any = false;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = if rest[open..].starts_with('"') { '"' } else { '`' };
        let inside = &rest[open + 1..];
        let Some(close) = closing_quote(inside, quote) else { break };
        out.push_str(&rest[..=open]);
        match inside[..close].char_indices().nth(ECHO_CHARS_MAX) {
            Some((cut, _)) => {
                out.push_str(&inside[..cut]);
                out.push(quote);
                out.push('…');
                cut_any = true;
            }
            None => {
                out.push_str(&inside[..close]);
                out.push(quote);
            }
        }
        rest = &inside[close + quote.len_utf8()..];
    }
    if !cut_any {
        return std::borrow::Cow::Borrowed(message);
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Where the quoted part that `text` starts with ends: the first `quote` not escaped by `\\`
/// (backtick-quoted parts have no escapes).
fn closing_quote(text: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quote == '"' => escaped = true,
            c if c == quote => return Some(at),
            _ => {}
        }
    }
    None
}

/// `text` cut to at most `chars_max` characters by taking out its middle (marked `…`): the
/// last bound on a message, whose end ("at line 1 column 9") is worth keeping.
pub fn shortened(text: &str, chars_max: usize) -> std::borrow::Cow<'_, str> {
    let len = text.chars().count();
    if len <= chars_max {
        return std::borrow::Cow::Borrowed(text);
    }
    let tail_chars = chars_max / 3;
    let head_chars = chars_max.saturating_sub(tail_chars + 1);
    let head: String = text.chars().take(head_chars).collect();
    let tail: String = text.chars().skip(len - tail_chars).collect();
    std::borrow::Cow::Owned(format!("{head}…{tail}"))
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

    #[test]
    fn short_input_is_quoted_whole() {
        assert_eq!(quoted("ana@example"), "\"ana@example\"");
        assert_eq!(quoted(""), "\"\"");
        let exactly = "x".repeat(ECHO_CHARS_MAX);
        assert_eq!(quoted(&exactly), format!("\"{exactly}\""));
    }

    #[test]
    fn long_input_is_quoted_cut_by_characters_with_an_ellipsis() {
        assert_eq!(quoted(&"k".repeat(60_000)), format!("\"{}\"…", "k".repeat(ECHO_CHARS_MAX)));
        // Multi-byte characters are never split: the cut is after 64 of them, not 64 bytes.
        let accented = "ç".repeat(100);
        assert_eq!(quoted(&accented), format!("\"{}\"…", "ç".repeat(ECHO_CHARS_MAX)));
        let emoji = "💸".repeat(65);
        assert_eq!(quoted(&emoji), format!("\"{}\"…", "💸".repeat(ECHO_CHARS_MAX)));
    }

    #[test]
    fn quoted_parts_of_another_librarys_message_are_cut_and_the_rest_kept() {
        let value = "9".repeat(70);
        let message = format!("invalid type: string \"{value}\", expected i64 at line 1 column 80");
        assert_eq!(
            with_quotes_cut(&message),
            format!("invalid type: string \"{}\"…, expected i64 at line 1 column 80", "9".repeat(ECHO_CHARS_MAX))
        );
        let field = "f".repeat(100);
        let message = format!("unknown field `{field}`, expected one of `kind`, `holders`");
        assert_eq!(
            with_quotes_cut(&message),
            format!("unknown field `{}`…, expected one of `kind`, `holders`", "f".repeat(ECHO_CHARS_MAX))
        );
        // An escaped quote does not end the part; short parts and unquoted text are untouched.
        let escaped = format!("string \"a\\\"{}\" here", "b".repeat(80));
        assert_eq!(with_quotes_cut(&escaped), format!("string \"a\\\"{}\"… here", "b".repeat(ECHO_CHARS_MAX - 3)));
        for untouched in ["leg 2: \"abc\" is not a Pix key", "no quotes at all", "an \"unterminated quote"] {
            assert_eq!(with_quotes_cut(untouched), untouched);
        }
    }

    #[test]
    fn a_long_message_keeps_its_head_and_tail_within_the_bound() {
        assert_eq!(shortened("short", 10), "short");
        let message = format!("invalid type: string \"{}\", expected u64 at line 1 column 60010", "é".repeat(60_000));
        let cut = shortened(&message, 300);
        assert_eq!(cut.chars().count(), 300);
        assert!(cut.starts_with("invalid type: string \"ééé"), "{cut}");
        assert!(cut.ends_with("\", expected u64 at line 1 column 60010") && cut.contains('…'), "{cut}");
    }
}
