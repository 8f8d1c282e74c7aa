//! Pix keys: how a payer names the account that receives.
//!
//! A key is a CPF, a CNPJ, an e-mail, a phone (E.164) or a random UUID. Keys are stored in a
//! normal form (bare document, lower-case e-mail, `+55…` phone, lower-case hyphenated UUID) and
//! lookups accept the usual formatted spellings, so `529.982.247-25` and `52998224725` are the
//! same key.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use crate::Error;
use crate::contact::{Email, Phone};
use crate::document::{Cnpj, Cpf};
use crate::error::quoted;

/// The kinds of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Cpf,
    Cnpj,
    Email,
    Phone,
    Random,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Cpf => "cpf",
            KeyType::Cnpj => "cnpj",
            KeyType::Email => "email",
            KeyType::Phone => "phone",
            KeyType::Random => "random",
        }
    }

    pub fn parse(text: &str) -> Result<Self, Error> {
        match text {
            "cpf" => Ok(KeyType::Cpf),
            "cnpj" => Ok(KeyType::Cnpj),
            "email" => Ok(KeyType::Email),
            "phone" => Ok(KeyType::Phone),
            "random" => Ok(KeyType::Random),
            _ => Err(Error::invalid(format!("{} is not a key type (cpf, cnpj, email, phone, random)", quoted(text)))),
        }
    }
}

/// A normalised Pix key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PixKey {
    Cpf(Cpf),
    Cnpj(Cnpj),
    Email(Email),
    Phone(Phone),
    Random(Uuid),
}

impl PixKey {
    /// Longest key text accepted before any parsing (an e-mail is the longest kind).
    pub const LEN_MAX: usize = 254;

    /// Recognises the kind of key from its text. A `+` prefix means phone; a UUID is random; an
    /// `@` means e-mail; 11 digits with valid CPF check digits is a CPF, 14 characters with valid
    /// CNPJ check digits a CNPJ; otherwise, unless it is dotted like a document, a national phone
    /// number is tried.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.len() > Self::LEN_MAX {
            return Err(Error::invalid(format!("{} is not a Pix key", quoted(text))));
        }
        if trimmed.starts_with('+') {
            return Phone::parse(trimmed).map(PixKey::Phone);
        }
        if trimmed.contains('@') {
            return Email::parse(trimmed).map(PixKey::Email);
        }
        if let Ok(uuid) = Uuid::try_parse(trimmed)
            && trimmed.len() == 36
        {
            return Ok(PixKey::Random(uuid));
        }
        if let Ok(cpf) = Cpf::parse(trimmed) {
            return Ok(PixKey::Cpf(cpf));
        }
        if let Ok(cnpj) = Cnpj::parse(trimmed) {
            return Ok(PixKey::Cnpj(cnpj));
        }
        // A dotted number is a mistyped document, never a phone.
        if trimmed.contains('.') {
            return Err(Error::invalid(format!("{} is not a valid CPF or CNPJ", quoted(text))));
        }
        Phone::parse(trimmed).map(PixKey::Phone).map_err(|_| {
            Error::invalid(format!("{} is not a Pix key (CPF, CNPJ, e-mail, phone or random key)", quoted(text)))
        })
    }

    pub fn key_type(&self) -> KeyType {
        match self {
            PixKey::Cpf(_) => KeyType::Cpf,
            PixKey::Cnpj(_) => KeyType::Cnpj,
            PixKey::Email(_) => KeyType::Email,
            PixKey::Phone(_) => KeyType::Phone,
            PixKey::Random(_) => KeyType::Random,
        }
    }

    /// The stored, normal form.
    pub fn normalized(&self) -> String {
        match self {
            PixKey::Cpf(c) => c.as_str().to_string(),
            PixKey::Cnpj(c) => c.as_str().to_string(),
            PixKey::Email(e) => e.as_str().to_string(),
            PixKey::Phone(p) => p.as_str().to_string(),
            PixKey::Random(u) => u.hyphenated().to_string(),
        }
    }
}

impl TryFrom<String> for PixKey {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        PixKey::parse(&s)
    }
}

impl From<PixKey> for String {
    fn from(k: PixKey) -> String {
        k.normalized()
    }
}

impl fmt::Display for PixKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_every_kind_and_normalises() {
        let cases = [
            ("529.982.247-25", KeyType::Cpf, "52998224725"),
            ("52998224725", KeyType::Cpf, "52998224725"),
            ("11.222.333/0001-81", KeyType::Cnpj, "11222333000181"),
            ("12.abc.345/01de-35", KeyType::Cnpj, "12ABC34501DE35"),
            ("Ana@Example.com", KeyType::Email, "ana@example.com"),
            ("+55 (75) 99999-1234", KeyType::Phone, "+5575999991234"),
            ("(75) 99999-1234", KeyType::Phone, "+5575999991234"),
            ("7D9F0C1E-8B2A-4C3D-9E4F-5A6B7C8D9E0F", KeyType::Random, "7d9f0c1e-8b2a-4c3d-9e4f-5a6b7c8d9e0f"),
        ];
        for (text, kind, normal) in cases {
            let key = PixKey::parse(text);
            assert_eq!(key.as_ref().map(PixKey::key_type), Ok(kind), "{text}");
            assert_eq!(key.map(|k| k.normalized()), Ok(normal.to_string()), "{text}");
        }
    }

    #[test]
    fn rejects_what_is_no_key() {
        for text in ["", "   ", "hello", "529.982.247-24", "+1 555 0100", "@", &"a".repeat(300)] {
            assert!(PixKey::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn normal_form_parses_back_to_the_same_key() {
        for text in
            ["529.982.247-25", "11222333000181", "x@y.com", "+5575999991234", "7d9f0c1e-8b2a-4c3d-9e4f-5a6b7c8d9e0f"]
        {
            let key = PixKey::parse(text).expect("valid key");
            assert_eq!(PixKey::parse(&key.normalized()), Ok(key));
        }
    }
}
