//! Identifier newtypes. Raw input is parsed into them once, at the boundary.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use crate::Error;
use crate::error::quoted;

/// A member bank of the consortium.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BankId(pub u32);

impl fmt::Display for BankId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A bank-local account number: six digits, a hyphen and a check digit (`000123-5`).
/// The check digit catches a mistyped digit before any lookup.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountNumber(String);

impl AccountNumber {
    /// Largest sequence number an account can have (six digits).
    pub const SEQ_MAX: u64 = 999_999;

    /// EAN-style check digit (weights 3, 1 alternating, mod 10): it catches every single-digit
    /// substitution, since 1 and 3 are both coprime with 10.
    fn check_digit(digits: &[u8]) -> u8 {
        let sum: u32 =
            digits.iter().enumerate().map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 }).sum();
        b'0' + ((10 - sum % 10) % 10) as u8
    }

    /// The number of the `seq`-th account opened at a bank (`seq` in `1..=SEQ_MAX`).
    pub fn from_seq(seq: u64) -> Self {
        assert!((1..=Self::SEQ_MAX).contains(&seq), "account sequence {seq} out of range");
        let base = format!("{seq:06}");
        let check = Self::check_digit(base.as_bytes()) as char;
        AccountNumber(format!("{base}-{check}"))
    }

    /// Accepts `000123-5` or `0001235`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bare: String = text.trim().chars().filter(|&c| c != '-').collect();
        let b = bare.as_bytes();
        if b.len() != 7 || !b.iter().all(u8::is_ascii_digit) || Self::check_digit(&b[..6]) != b[6] {
            return Err(Error::invalid(format!("{} is not a valid account number (e.g. 000123-5)", quoted(text))));
        }
        Ok(AccountNumber(format!("{}-{}", &bare[..6], &bare[6..])))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The sequence number the account was opened with (the inverse of [`Self::from_seq`]).
    pub fn seq(&self) -> u64 {
        // Every constructor checked six leading digits: failing here is a bug, not bad input.
        self.0[..6].parse().expect("an account number starts with six digits")
    }
}

impl TryFrom<String> for AccountNumber {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        AccountNumber::parse(&s)
    }
}

impl From<AccountNumber> for String {
    fn from(n: AccountNumber) -> String {
        n.0
    }
}

impl fmt::Display for AccountNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A transfer (one atomic unit of one or more legs), also the 2PC transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransferId(pub Uuid);

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TransferId {
    /// The smallest id of the millisecond `ms` (Unix): UUIDv7 ids sort by creation time, so every
    /// transaction created before `ms` sorts below it, and every later one above.
    pub fn first_at(ms: i64) -> TransferId {
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&(ms.max(0) as u64).to_be_bytes()[2..]);
        TransferId(Uuid::from_bytes(bytes))
    }
}

/// A ledger entry's position in this bank's ledger; strictly increasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EntryId(pub u64);

/// The client-chosen id of a money movement (the `Idempotency-Key` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(pub Uuid);

impl IdempotencyKey {
    pub fn parse(text: &str) -> Result<Self, Error> {
        Uuid::try_parse(text.trim()).map(IdempotencyKey).map_err(|_| Error::invalid("Idempotency-Key must be a UUID"))
    }
}

/// A digest of a request's content, computed by the caller, so a reused idempotency key with a
/// different request can be told apart. The core never looks inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(pub [u8; 32]);

/// Milliseconds since the Unix epoch, injected by the driver (the core has no clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimestampMs(pub i64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_numbers_roundtrip_and_catch_typos() {
        for seq in [1, 2, 9, 10, 123, 99_999, 999_999] {
            let n = AccountNumber::from_seq(seq);
            assert_eq!(AccountNumber::parse(n.as_str()), Ok(n.clone()));
            assert_eq!(AccountNumber::parse(&n.as_str().replace('-', "")), Ok(n.clone()));
            // Any single changed digit among the first six is caught.
            for pos in 0..6 {
                let mut b = n.as_str().as_bytes().to_vec();
                b[pos] = if b[pos] == b'9' { b'0' } else { b[pos] + 1 };
                let typo = String::from_utf8(b).unwrap_or_default();
                assert!(AccountNumber::parse(&typo).is_err(), "{typo}");
            }
        }
        assert!(AccountNumber::parse("abc").is_err());
        assert!(AccountNumber::parse("").is_err());
    }

    #[test]
    fn an_account_number_gives_back_its_sequence() {
        for seq in [1, 2, 123, 99_999, AccountNumber::SEQ_MAX] {
            assert_eq!(AccountNumber::from_seq(seq).seq(), seq);
            let parsed = AccountNumber::parse(AccountNumber::from_seq(seq).as_str()).expect("valid");
            assert_eq!(parsed.seq(), seq);
        }
    }

    #[test]
    fn the_first_id_of_a_millisecond_sorts_after_every_earlier_id_and_before_every_later_one() {
        let at = TransferId::first_at(1_000);
        let v7 = |ms: u128, rest: u128| TransferId(Uuid::from_u128((ms << 80) | (0x7 << 76) | rest));
        assert!(v7(999, u128::from(u64::MAX)) < at);
        assert!(at <= v7(1_000, 0));
        assert!(at < v7(1_001, 0));
        assert_eq!(TransferId::first_at(-5), TransferId::first_at(0));
    }
}
