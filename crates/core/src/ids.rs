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

/// A bank's 8-digit institution code (like a real ISPB), from the consortium file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstitutionCode(String);

impl InstitutionCode {
    /// The code a bank gets when the consortium file names none (files from before codes
    /// existed): `9` then the bank id in seven digits, so it never clashes between members.
    pub fn derived(bank: BankId) -> Self {
        InstitutionCode(format!("9{:07}", bank.0 % 10_000_000))
    }

    /// Exactly eight ASCII digits.
    pub fn parse(text: &str) -> Result<Self, Error> {
        if text.len() == 8 && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(InstitutionCode(text.to_string()))
        } else {
            Err(Error::invalid(format!("{} is not an institution code (8 digits)", quoted(text))))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InstitutionCode {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        InstitutionCode::parse(&s)
    }
}

impl From<InstitutionCode> for String {
    fn from(c: InstitutionCode) -> String {
        c.0
    }
}

impl fmt::Display for InstitutionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an end-to-end id identifies: a payment (`E`) or a refund of one (`D`, devolução).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndToEndKind {
    Payment,
    Refund,
}

/// Length of an end-to-end id: 1 + 8 + 12 + 11.
pub const END_TO_END_ID_LEN: usize = 32;

/// The end-to-end id of leg `leg` of `transfer`, in the Pix format: `E` (or `D`) + the payer
/// bank's institution code + `yyyyMMddHHmm` (UTC) + 11 upper-case alphanumerics.
///
/// It is derived from the transfer id alone (a UUIDv7: its time and 74 random bits), so every
/// bank computes the same id with nothing more to store or send: the time part is the id's
/// minute, and the 11 characters encode, in base 36, the millisecond within that minute, the leg
/// and 36 of the id's random bits — two transfers share an end-to-end id only if they were made
/// in the same millisecond with the same 36 random bits.
pub fn end_to_end_id(kind: EndToEndKind, payer: &InstitutionCode, transfer: TransferId, leg: u16) -> String {
    let bytes = transfer.0.as_bytes();
    let mut ms_bytes = [0u8; 8];
    ms_bytes[2..].copy_from_slice(&bytes[..6]);
    let ms = u64::from_be_bytes(ms_bytes);
    let mut rand_bytes = [0u8; 8];
    rand_bytes.copy_from_slice(&bytes[8..]);
    let random = u64::from_be_bytes(rand_bytes) & ((1 << 36) - 1);
    let in_minute = ms % 60_000;
    let mut value = (in_minute << 40) | (u64::from(leg & 0xF) << 36) | random;
    let mut tail = [b'0'; 11];
    for slot in tail.iter_mut().rev() {
        *slot = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[(value % 36) as usize];
        value /= 36;
    }
    debug_assert_eq!(value, 0, "56 bits fit in 11 base-36 digits");
    let prefix = match kind {
        EndToEndKind::Payment => 'E',
        EndToEndKind::Refund => 'D',
    };
    let tail = std::str::from_utf8(&tail).expect("ASCII");
    format!("{prefix}{payer}{}{tail}", utc_minute((ms / 60_000) as i64))
}

/// `yyyyMMddHHmm` of a Unix minute, UTC (the civil-from-days algorithm of H. Hinnant).
fn utc_minute(minutes: i64) -> String {
    let (days, minute_of_day) = (minutes.div_euclid(1440), minutes.rem_euclid(1440));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}{:02}{:02}", minute_of_day / 60, minute_of_day % 60)
}

/// Forgets the entries of a map keyed by transaction (UUIDv7 ids sort by time, oldest first)
/// that sort before `bound`, then the oldest beyond the newest `max`; returns how many it forgot.
/// Costs O(forgotten + log n): the map is split, and only the keys it forgets are walked.
pub(crate) fn keep_newest<V>(
    map: &mut std::collections::BTreeMap<TransferId, V>,
    bound: TransferId,
    max: usize,
) -> usize {
    let before = map.len();
    *map = map.split_off(&bound);
    if map.len() > max {
        match map.keys().nth(map.len() - max).copied() {
            Some(first_kept) => *map = map.split_off(&first_kept),
            None => map.clear(), // max == 0
        }
    }
    before - map.len()
}

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

    #[test]
    fn an_end_to_end_id_has_the_pix_format_and_the_transfer_minute() {
        // 2026-12-04 23:18:27.123 UTC, as a UUIDv7.
        let ms: u128 = 1_796_426_307_123;
        let id = TransferId(Uuid::from_u128((ms << 80) | (0x7 << 76) | 0xABCD_EF01_2345));
        let code = InstitutionCode::parse("12345678").expect("valid");
        let e2e = end_to_end_id(EndToEndKind::Payment, &code, id, 0);
        assert_eq!(e2e.len(), END_TO_END_ID_LEN);
        assert!(e2e.starts_with("E12345678202612042318"), "{e2e}");
        assert!(e2e[21..].bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()), "{e2e}");
        let refund = end_to_end_id(EndToEndKind::Refund, &code, id, 0);
        assert_eq!(&refund[1..], &e2e[1..]);
        assert!(refund.starts_with('D'));
        assert_ne!(end_to_end_id(EndToEndKind::Payment, &code, id, 1), e2e, "each leg has its own");
    }

    #[test]
    fn utc_minutes_are_civil_dates() {
        assert_eq!(utc_minute(0), "197001010000");
        assert_eq!(utc_minute(951_782_400 / 60), "200002290000");
        assert_eq!(utc_minute(1_796_426_307 / 60), "202612042318");
    }

    #[test]
    fn institution_codes_are_eight_digits_and_derive_per_bank() {
        assert!(InstitutionCode::parse("1234567").is_err());
        assert!(InstitutionCode::parse("1234567a").is_err());
        assert_eq!(InstitutionCode::derived(BankId(3)).as_str(), "90000003");
    }
}
