//! Accounts and their holders.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::contact::{Email, Phone};
use crate::document::Document;
use crate::ids::{AccountNumber, TimestampMs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    /// One person, by CPF.
    Individual,
    /// One company, by CNPJ.
    Company,
    /// Two or more people, by CPF; any holder may move its money.
    Joint,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Individual => "individual",
            AccountKind::Company => "company",
            AccountKind::Joint => "joint",
        }
    }

    pub fn parse(text: &str) -> Result<Self, Error> {
        match text {
            "individual" => Ok(AccountKind::Individual),
            "company" => Ok(AccountKind::Company),
            "joint" => Ok(AccountKind::Joint),
            _ => Err(Error::invalid(format!("{text:?} is not an account kind (individual, company, joint)"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub name: String,
    pub document: Document,
}

/// Validated input for opening an account. The password is already hashed by the caller
/// (hashing is slow and belongs outside the ledger's single writer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub kind: AccountKind,
    pub holders: Vec<Holder>,
    pub email: Email,
    pub phone: Phone,
    pub password_hash: String,
}

/// Most holders a joint account may have.
pub const JOINT_HOLDERS_MAX: usize = 8;
/// Longest holder name, in characters.
pub const NAME_LEN_MAX: usize = 120;
/// Shortest and longest password, in characters.
pub const PASSWORD_LEN_MIN: usize = 8;
pub const PASSWORD_LEN_MAX: usize = 128;

/// Checks a name as typed: trimmed, not empty, no control characters, bounded.
pub fn parse_name(text: &str) -> Result<String, Error> {
    let name = text.trim();
    if name.is_empty() {
        return Err(Error::invalid("holder name must not be empty"));
    }
    if name.chars().count() > NAME_LEN_MAX {
        return Err(Error::invalid(format!("holder name must be at most {NAME_LEN_MAX} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid("holder name must not contain control characters"));
    }
    Ok(name.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Checks a new password's length (its strength beyond that is the customer's business).
pub fn check_password(password: &str) -> Result<(), Error> {
    let len = password.chars().count();
    if !(PASSWORD_LEN_MIN..=PASSWORD_LEN_MAX).contains(&len) {
        return Err(Error::invalid(format!(
            "password must have between {PASSWORD_LEN_MIN} and {PASSWORD_LEN_MAX} characters"
        )));
    }
    Ok(())
}

impl NewAccount {
    /// Checks that the holders fit the kind: one CPF for an individual, one CNPJ for a company,
    /// two or more distinct CPFs for a joint account.
    pub fn validate(&self) -> Result<(), Error> {
        let cpfs = self.holders.iter().filter(|h| matches!(h.document, Document::Cpf(_))).count();
        match self.kind {
            AccountKind::Individual if self.holders.len() != 1 || cpfs != 1 => {
                Err(Error::invalid("an individual account has exactly one holder, with a CPF"))
            }
            AccountKind::Company if self.holders.len() != 1 || cpfs != 0 => {
                Err(Error::invalid("a company account has exactly one holder, with a CNPJ"))
            }
            AccountKind::Joint if self.holders.len() < 2 || cpfs != self.holders.len() => {
                Err(Error::invalid("a joint account has two or more holders, each with a CPF"))
            }
            AccountKind::Joint if self.holders.len() > JOINT_HOLDERS_MAX => {
                Err(Error::invalid(format!("a joint account has at most {JOINT_HOLDERS_MAX} holders")))
            }
            _ => {
                let mut docs: Vec<&Document> = self.holders.iter().map(|h| &h.document).collect();
                docs.sort();
                docs.dedup();
                if docs.len() != self.holders.len() {
                    return Err(Error::invalid("the holders of a joint account must be different people"));
                }
                Ok(())
            }
        }
    }
}

/// An account as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub number: AccountNumber,
    pub kind: AccountKind,
    pub holders: Vec<Holder>,
    pub email: Email,
    pub phone: Phone,
    pub password_hash: String,
    pub created_at: TimestampMs,
    /// Settled money.
    pub posted_cents: i64,
    /// Money reserved by pending debits (holds); `posted_cents - held_cents` is spendable.
    pub held_cents: i64,
}

impl Account {
    pub fn available_cents(&self) -> i64 {
        self.posted_cents - self.held_cents
    }

    /// The document a session signed in to this account acts for; `None` for a joint account,
    /// whose sessions act only on the account itself.
    pub fn acting_document(&self) -> Option<&Document> {
        match self.kind {
            AccountKind::Joint => None,
            AccountKind::Individual | AccountKind::Company => self.holders.first().map(|h| &h.document),
        }
    }

    pub fn has_holder(&self, document: &Document) -> bool {
        self.holders.iter().any(|h| &h.document == document)
    }

    /// API.md "who may spend what": a session of an individual or company account may spend any
    /// account its document holds (joint ones included); a joint account's session only itself.
    pub fn may_spend(&self, source: &Account) -> bool {
        match self.acting_document() {
            None => self.number == source.number,
            Some(document) => source.has_holder(document),
        }
    }

    /// The name shown to counterparties: the holders' names joined.
    pub fn display_name(&self) -> String {
        self.holders.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(" e ")
    }
}
