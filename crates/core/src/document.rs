//! Brazilian taxpayer documents: CPF (people) and CNPJ (companies), with check digits.
//!
//! Input is accepted with or without punctuation; values are stored as bare characters
//! (11 digits for a CPF; 14 characters for a CNPJ, whose first 12 may be upper-case letters
//! in the alphanumeric form introduced by the Receita Federal, the last two always digits).
//! A document whose characters are all the same is invalid even though its check digits compute.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::Error;
use crate::error::quoted;

/// A CPF: 11 digits with valid check digits, stored bare.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cpf(String);

/// A CNPJ: 12 alphanumeric characters and 2 check digits, stored bare and upper-case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cnpj(String);

/// Either kind of document; it identifies a holder across the consortium.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Document {
    Cpf(Cpf),
    Cnpj(Cnpj),
}

/// Removes the usual punctuation (`.`, `-`, `/`, spaces); anything else is kept, to be rejected.
fn strip_punctuation(text: &str) -> String {
    text.chars().filter(|c| !matches!(c, '.' | '-' | '/' | ' ')).collect()
}

fn all_same(s: &str) -> bool {
    let first = s.as_bytes()[0];
    s.bytes().all(|b| b == first)
}

/// Check digit by modulo 11 over `values` with `weights`, as both CPF and CNPJ define it.
fn mod11_digit(values: &[u32], weights: &[u32]) -> u32 {
    let sum: u32 = values.iter().zip(weights).map(|(v, w)| v * w).sum();
    let rest = sum % 11;
    if rest < 2 { 0 } else { 11 - rest }
}

impl Cpf {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bare = strip_punctuation(text);
        let invalid = || Error::invalid(format!("{} is not a valid CPF", quoted(text)));
        if bare.len() != 11 || !bare.bytes().all(|b| b.is_ascii_digit()) || all_same(&bare) {
            return Err(invalid());
        }
        let digits: Vec<u32> = bare.bytes().map(|b| u32::from(b - b'0')).collect();
        let (d1, d2) = Self::check_digits(&digits[..9]);
        if digits[9] != d1 || digits[10] != d2 {
            return Err(invalid());
        }
        Ok(Cpf(bare))
    }

    fn check_digits(base: &[u32]) -> (u32, u32) {
        let d1 = mod11_digit(base, &[10, 9, 8, 7, 6, 5, 4, 3, 2]);
        let mut with_d1 = base.to_vec();
        with_d1.push(d1);
        let d2 = mod11_digit(&with_d1, &[11, 10, 9, 8, 7, 6, 5, 4, 3, 2]);
        (d1, d2)
    }

    /// Builds the valid CPF whose first nine digits are `base` (mod 10^9), for tests and the
    /// benchmark. Bases whose digits would all be equal are shifted by one.
    pub fn from_base(base: u64) -> Self {
        let mut base = base % 1_000_000_000;
        if base.is_multiple_of(111_111_111) {
            base = (base + 1) % 1_000_000_000;
        }
        let base_text = format!("{base:09}");
        let digits: Vec<u32> = base_text.bytes().map(|b| u32::from(b - b'0')).collect();
        let (d1, d2) = Self::check_digits(&digits);
        Cpf(format!("{base_text}{d1}{d2}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `***.456.789-**`: the middle six digits, as Pix shows a counterparty.
    pub fn masked(&self) -> String {
        format!("***.{}.{}-**", &self.0[3..6], &self.0[6..9])
    }

    /// `123.456.789-09`.
    pub fn formatted(&self) -> String {
        let s = &self.0;
        format!("{}.{}.{}-{}", &s[0..3], &s[3..6], &s[6..9], &s[9..11])
    }
}

impl Cnpj {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bare = strip_punctuation(text).to_ascii_uppercase();
        let invalid = || Error::invalid(format!("{} is not a valid CNPJ", quoted(text)));
        let b = bare.as_bytes();
        if b.len() != 14
            || !b[..12].iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
            || !b[12..].iter().all(u8::is_ascii_digit)
            || all_same(&bare)
        {
            return Err(invalid());
        }
        let (d1, d2) = Self::check_digits(&b[..12]);
        if u32::from(b[12] - b'0') != d1 || u32::from(b[13] - b'0') != d2 {
            return Err(invalid());
        }
        Ok(Cnpj(bare))
    }

    /// Each character is worth its ASCII code minus 48 ('0' = 0, 'A' = 17), which makes the
    /// alphanumeric rule coincide with the classic numeric one for digits.
    fn check_digits(base: &[u8]) -> (u32, u32) {
        let mut values: Vec<u32> = base.iter().map(|&c| u32::from(c) - 48).collect();
        let d1 = mod11_digit(&values, &[5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]);
        values.push(d1);
        let d2 = mod11_digit(&values, &[6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]);
        (d1, d2)
    }

    /// Builds the valid numeric CNPJ of the company with root `root` (mod 10^8), branch 0001.
    pub fn from_base(root: u64) -> Self {
        let mut root = root % 100_000_000;
        if root == 0 {
            root = 1;
        }
        let base = format!("{root:08}0001");
        let (d1, d2) = Self::check_digits(base.as_bytes());
        Cnpj(format!("{base}{d1}{d2}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `**.345.678/0001-**`.
    pub fn masked(&self) -> String {
        let s = &self.0;
        format!("**.{}.{}/{}-**", &s[2..5], &s[5..8], &s[8..12])
    }

    /// `12.345.678/0001-95`.
    pub fn formatted(&self) -> String {
        let s = &self.0;
        format!("{}.{}.{}/{}-{}", &s[0..2], &s[2..5], &s[5..8], &s[8..12], &s[12..14])
    }
}

impl Document {
    /// Parses a CPF or a CNPJ, deciding by length once punctuation is removed.
    pub fn parse(text: &str) -> Result<Self, Error> {
        match strip_punctuation(text).len() {
            11 => Cpf::parse(text).map(Document::Cpf),
            14 => Cnpj::parse(text).map(Document::Cnpj),
            _ => Err(Error::invalid(format!("{} is not a valid CPF or CNPJ", quoted(text)))),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Document::Cpf(c) => c.as_str(),
            Document::Cnpj(c) => c.as_str(),
        }
    }

    pub fn masked(&self) -> String {
        match self {
            Document::Cpf(c) => c.masked(),
            Document::Cnpj(c) => c.masked(),
        }
    }

    pub fn formatted(&self) -> String {
        match self {
            Document::Cpf(c) => c.formatted(),
            Document::Cnpj(c) => c.formatted(),
        }
    }
}

macro_rules! string_conversions {
    ($ty:ty, $parse:path) => {
        impl TryFrom<String> for $ty {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> {
                $parse(&s)
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.as_str().to_string()
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.formatted())
            }
        }
    };
}
string_conversions!(Cpf, Cpf::parse);
string_conversions!(Cnpj, Cnpj::parse);
string_conversions!(Document, Document::parse);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_cpf_vectors() {
        for text in ["529.982.247-25", "52998224725", "111.444.777-35", "390.533.447-05", "000.000.001-91"] {
            assert!(Cpf::parse(text).is_ok(), "{text}");
        }
        assert_eq!(Cpf::parse("529.982.247-25").map(|c| c.as_str().to_string()), Ok("52998224725".into()));
    }

    #[test]
    fn invalid_cpf_vectors() {
        for text in [
            "529.982.247-24", // wrong second digit
            "529.982.247-15", // wrong first digit
            "111.111.111-11", // all same, digits compute
            "000.000.000-00",
            "5299822472",     // too short
            "529982247255",   // too long
            "529.982.247-2a", // letter
            "",
        ] {
            assert!(Cpf::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn valid_cnpj_vectors_numeric_and_alphanumeric() {
        for text in ["11.222.333/0001-81", "11222333000181", "12.ABC.345/01DE-35", "12abc34501de35"] {
            assert!(Cnpj::parse(text).is_ok(), "{text}");
        }
        assert_eq!(Cnpj::parse("12abc34501de35").map(|c| c.as_str().to_string()), Ok("12ABC34501DE35".into()));
    }

    #[test]
    fn invalid_cnpj_vectors() {
        for text in [
            "11.222.333/0001-82",
            "11.222.333/0001-91",
            "00.000.000/0000-00",
            "11.111.111/1111-11",
            "12.ABC.345/01DE-36",
            "12.ABC.345/01DE-3A", // check digits must be digits
            "1122233300018",
            "11.222.333/0001-8!",
        ] {
            assert!(Cnpj::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn document_dispatches_by_length_and_masks() {
        let cpf = Document::parse("529.982.247-25").map(|d| d.masked());
        assert_eq!(cpf, Ok("***.982.247-**".to_string()));
        let cnpj = Document::parse("11222333000181").map(|d| d.masked());
        assert_eq!(cnpj, Ok("**.222.333/0001-**".to_string()));
        assert!(Document::parse("123").is_err());
    }

    proptest! {
        /// Every generated CPF validates, in bare and formatted spellings.
        #[test]
        fn generated_cpfs_validate(base in 0u64..1_000_000_000) {
            let cpf = Cpf::from_base(base);
            prop_assert_eq!(Cpf::parse(cpf.as_str()), Ok(cpf.clone()));
            prop_assert_eq!(Cpf::parse(&cpf.formatted()), Ok(cpf));
        }

        /// Changing a check digit of a valid CPF makes it invalid. (Mod 11 with the 0/1 collapse
        /// does not catch every change in the first nine digits, so that is not claimed.)
        #[test]
        fn check_digit_change_is_caught(base in 0u64..1_000_000_000, pos in 9usize..11, delta in 1u8..10) {
            let cpf = Cpf::from_base(base);
            let mut bytes = cpf.as_str().as_bytes().to_vec();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap_or_default();
            prop_assert!(Cpf::parse(&changed).is_err());
        }

        #[test]
        fn generated_cnpjs_validate(root in 0u64..100_000_000) {
            let cnpj = Cnpj::from_base(root);
            prop_assert_eq!(Cnpj::parse(&cnpj.formatted()), Ok(cnpj));
        }

        #[test]
        fn cnpj_check_digit_change_is_caught(root in 0u64..100_000_000, pos in 12usize..14, delta in 1u8..10) {
            let cnpj = Cnpj::from_base(root);
            let mut bytes = cnpj.as_str().as_bytes().to_vec();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap_or_default();
            prop_assert!(Cnpj::parse(&changed).is_err());
        }
    }
}
