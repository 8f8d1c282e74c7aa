//! Money as an integer number of centavos.
//!
//! Floats never touch money. [`Amount`] is a strictly positive quantity moved by one operation
//! (at most [`Amount::MAX_CENTS`]); [`Cents`] is a signed balance-like quantity used for sums.
//! Parsing and formatting in Brazilian notation (`R$ 1.234,56`) live here and are meant for the
//! edges only (CLI, web pages); the API speaks integer `amount_cents`.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::Error;
use crate::error::quoted;

/// A strictly positive amount of money moved by one operation, in centavos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Amount(i64);

impl Amount {
    /// One operation moves at most R$ 1.000.000,00 (API.md, limits).
    pub const MAX_CENTS: i64 = 100_000_000;

    /// Validates a raw centavo count: `1..=MAX_CENTS`.
    pub fn from_cents(cents: i64) -> Result<Self, Error> {
        if cents <= 0 {
            return Err(Error::invalid("amount_cents must be greater than zero"));
        }
        if cents > Self::MAX_CENTS {
            return Err(Error::invalid(format!("amount_cents must be at most {} (R$ 1.000.000,00)", Self::MAX_CENTS)));
        }
        Ok(Amount(cents))
    }

    pub fn cents(self) -> i64 {
        self.0
    }

    /// Parses a customer-typed amount: `1234,56`, `1234.56`, `1.234,56`, `R$ 1.234,56`, `10`.
    /// At most two decimal places; the result must be a valid [`Amount`].
    pub fn parse_brl(text: &str) -> Result<Self, Error> {
        Self::from_cents(parse_brl_cents(text)?)
    }
}

impl TryFrom<i64> for Amount {
    type Error = Error;
    fn try_from(cents: i64) -> Result<Self, Error> {
        Amount::from_cents(cents)
    }
}

impl From<Amount> for i64 {
    fn from(a: Amount) -> i64 {
        a.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_brl(self.0))
    }
}

/// Parses Brazilian or dotted-decimal money text into centavos (may be zero or negative only if
/// written so; callers validate the range).
fn parse_brl_cents(text: &str) -> Result<i64, Error> {
    let bad = || Error::invalid(format!("{} is not an amount of money (e.g. 1234,56)", quoted(text)));
    let mut s = text.trim();
    if let Some(rest) = s.strip_prefix("R$") {
        s = rest.trim_start();
    }
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if s.is_empty() || s.len() > 32 {
        return Err(bad());
    }
    // The decimal separator is the last ',' or '.' followed by one or two digits at the end;
    // every other '.' must be a thousands separator between groups of three digits.
    let (int_part, frac_part) = match s.rfind([',', '.']) {
        Some(pos) if (1..=2).contains(&(s.len() - pos - 1)) => (&s[..pos], &s[pos + 1..]),
        _ => (s, ""),
    };
    if int_part.contains(',') || frac_part.chars().any(|c| !c.is_ascii_digit()) {
        return Err(bad());
    }
    let digits: String = if int_part.contains('.') {
        let groups: Vec<&str> = int_part.split('.').collect();
        let first_ok = (1..=3).contains(&groups[0].len());
        let rest_ok = groups[1..].iter().all(|g| g.len() == 3);
        if !first_ok || !rest_ok {
            return Err(bad());
        }
        groups.concat()
    } else {
        int_part.to_string()
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() > 15 {
        return Err(bad());
    }
    let units: i64 = digits.parse().map_err(|_| bad())?;
    let frac: i64 = match frac_part.len() {
        0 => 0,
        1 => frac_part.parse::<i64>().map_err(|_| bad())? * 10,
        _ => frac_part.parse().map_err(|_| bad())?,
    };
    let cents = units.checked_mul(100).and_then(|u| u.checked_add(frac)).ok_or_else(bad)?;
    Ok(if negative { -cents } else { cents })
}

/// Formats centavos as `R$ 1.234,56` (negative as `-R$ 1,00`).
pub fn format_brl(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let units = (abs / 100).to_string();
    let mut grouped = String::with_capacity(units.len() + units.len() / 3);
    for (i, ch) in units.chars().enumerate() {
        if i > 0 && (units.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(ch);
    }
    format!("{sign}R$ {grouped},{:02}", abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn amount_rejects_zero_negative_and_huge() {
        assert!(Amount::from_cents(0).is_err());
        assert!(Amount::from_cents(-1).is_err());
        assert!(Amount::from_cents(Amount::MAX_CENTS + 1).is_err());
        assert_eq!(Amount::from_cents(Amount::MAX_CENTS).map(|a| a.cents()), Ok(100_000_000));
        assert_eq!(Amount::from_cents(1).map(|a| a.cents()), Ok(1));
    }

    #[test]
    fn parses_customer_spellings() {
        for (text, cents) in [
            ("1234,56", 123_456),
            ("1234.56", 123_456),
            ("1.234,56", 123_456),
            ("R$ 1.234,56", 123_456),
            ("R$1.234,5", 123_450),
            ("10", 1000),
            ("0,01", 1),
            (" 7,00 ", 700),
            ("1.000.000,00", 100_000_000),
        ] {
            assert_eq!(Amount::parse_brl(text).map(|a| a.cents()), Ok(cents), "{text}");
        }
    }

    #[test]
    fn rejects_garbage_zero_negative_and_too_many_decimals() {
        for text in ["", "abc", "1,2,3", "12.34.5", "1.23,4.5", "-5", "0", "0,00", "1,234", "1.2345", "R$", "1e3", "١٢"]
        {
            assert!(Amount::parse_brl(text).is_err(), "{text:?} should be rejected");
        }
    }

    #[test]
    fn formats_with_thousands_separators() {
        assert_eq!(format_brl(0), "R$ 0,00");
        assert_eq!(format_brl(5), "R$ 0,05");
        assert_eq!(format_brl(123_456), "R$ 1.234,56");
        assert_eq!(format_brl(100_000_000), "R$ 1.000.000,00");
        assert_eq!(format_brl(-100), "-R$ 1,00");
    }

    proptest! {
        /// Formatting then parsing gives back the same amount, for every valid amount.
        #[test]
        fn format_parse_roundtrip(cents in 1i64..=Amount::MAX_CENTS) {
            let text = format_brl(cents);
            prop_assert_eq!(Amount::parse_brl(&text).map(|a| a.cents()), Ok(cents));
        }

        /// Serde accepts exactly the valid range.
        #[test]
        fn serde_enforces_range(cents in any::<i64>()) {
            let parsed: Result<Amount, _> = serde_json::from_str(&cents.to_string());
            prop_assert_eq!(parsed.is_ok(), (1..=Amount::MAX_CENTS).contains(&cents));
        }
    }
}
