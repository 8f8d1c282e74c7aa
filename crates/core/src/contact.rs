//! Contact data: e-mail addresses (sign-in, Pix keys) and Brazilian phone numbers in E.164.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::Error;
use crate::error::quoted;

/// An e-mail address, validated and stored in lower case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Longest address accepted (RFC 5321 path limit).
    pub const LEN_MAX: usize = 254;

    pub fn parse(text: &str) -> Result<Self, Error> {
        let trimmed = text.trim();
        let invalid = || Error::invalid(format!("{} is not a valid e-mail address", quoted(text)));
        if trimmed.is_empty() || trimmed.len() > Self::LEN_MAX || !trimmed.contains('@') {
            return Err(invalid());
        }
        let parsed = email_address::EmailAddress::parse_with_options(
            trimmed,
            email_address::Options::default().without_display_text().without_domain_literal(),
        )
        .map_err(|_| invalid())?;
        // A sign-in address needs a dotted domain: "a@b" is valid RFC but never a real mailbox.
        if !parsed.domain().contains('.') {
            return Err(invalid());
        }
        Ok(Email(parsed.as_str().to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Brazilian phone number in E.164: `+55`, a two-digit area code (DDD) and an 8-digit landline
/// or 9-digit mobile number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    /// Accepts `+55 75 99999-1234`, `(75) 99999-1234`, `75999991234`, `+5575999991234`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = || {
            Error::invalid(format!("{} is not a valid Brazilian phone number (e.g. +55 75 99999-1234)", quoted(text)))
        };
        let compact: String = text.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.')).collect();
        let national = if let Some(rest) = compact.strip_prefix("+55") {
            rest.to_string()
        } else if compact.starts_with('+') {
            return Err(invalid());
        } else {
            compact
        };
        if !national.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let b = national.as_bytes();
        let ddd_ok = b.len() >= 2 && b[0] != b'0' && b[1] != b'0';
        let number_ok = match b.len() {
            11 => b[2] == b'9',
            10 => (b'2'..=b'5').contains(&b[2]),
            _ => false,
        };
        if !ddd_ok || !number_ok {
            return Err(invalid());
        }
        Ok(Phone(format!("+55{national}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_conversions {
    ($ty:ty) => {
        impl TryFrom<String> for $ty {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> {
                <$ty>::parse(&s)
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
string_conversions!(Email);
string_conversions!(Phone);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_validated_and_lowercased() {
        assert_eq!(Email::parse(" Ana.Silva@Example.COM ").map(|e| e.0), Ok("ana.silva@example.com".into()));
        for bad in ["", "ana", "ana@", "@example.com", "ana@example", "ana silva@example.com", "a@b@c.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn phones_normalise_to_e164() {
        for text in ["+55 75 99999-1234", "(75) 99999-1234", "75999991234", "+5575999991234"] {
            assert_eq!(Phone::parse(text).map(|p| p.0), Ok("+5575999991234".into()), "{text}");
        }
        assert_eq!(Phone::parse("(11) 3333-4444").map(|p| p.0), Ok("+551133334444".into()));
        for bad in ["", "+1 555 123 4567", "7599999123", "(07) 99999-1234", "75 89999-1234", "75a999991234", "+55"] {
            assert!(Phone::parse(bad).is_err(), "{bad:?}");
        }
    }
}
