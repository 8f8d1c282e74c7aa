//! Accounts and their holders.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::Error;
use crate::contact::{Email, Phone};
use crate::document::Document;
use crate::error::quoted;
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
            _ => Err(Error::invalid(format!("{} is not an account kind (individual, company, joint)", quoted(text)))),
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

/// Checks a name as typed and gives it the one form the bank stores and shows: trimmed, runs of
/// whitespace as one space, in Unicode NFC (so "José" typed decomposed and composed is one name),
/// not empty, bounded.
///
/// Refuses control characters (C0, C1) and format characters (Unicode category Cf: zero-width
/// spaces and joiners, bidirectional embeddings, overrides and isolates, the byte-order mark…).
/// They do not show, or they reorder what shows, so a payee named `"B\u{200b}ob Lima"` or
/// `"Eve \u{202e}live"` would look like someone else on a confirmation page. The message names
/// the code point, never echoes the name.
pub fn parse_name(text: &str) -> Result<String, Error> {
    let typed = text.trim();
    if typed.is_empty() {
        return Err(Error::invalid("holder name must not be empty"));
    }
    // Checked on the name as typed: collapsing whitespace would turn a tab or a line break
    // (control characters) into a space and hide them from the check.
    if let Some((position, hidden)) = typed.chars().enumerate().find(|&(_, c)| is_hidden_in_names(c)) {
        return Err(Error::invalid(format!(
            "holder name must not contain control, invisible or text-direction characters \
             (U+{:04X} at character {})",
            u32::from(hidden),
            position + 1
        )));
    }
    let name: String = typed.split_whitespace().collect::<Vec<_>>().join(" ").nfc().collect();
    if name.chars().count() > NAME_LEN_MAX {
        return Err(Error::invalid(format!("holder name must be at most {NAME_LEN_MAX} characters")));
    }
    Ok(name)
}

/// A character a name must not hold: a control (Cc) or a format character (Cf), which either
/// does not show or changes how the characters around it show; or one of the letters and marks
/// that render as nothing (Unicode's default-ignorable ones outside Cf: the combining grapheme
/// joiner, the Hangul fillers, the Khmer inherent vowels, the Mongolian variation selectors,
/// the variation selectors).
fn is_hidden_in_names(c: char) -> bool {
    matches!(c.general_category(), GeneralCategory::Control | GeneralCategory::Format)
        || matches!(
            c,
            '\u{034F}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FFA0}'
                | '\u{E0100}'..='\u{E01EF}'
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_trimmed_spaced_once_and_stored_composed() {
        assert_eq!(parse_name("  Ana   Souza ").as_deref(), Ok("Ana Souza"));
        let decomposed = "Jose\u{301} Conceic\u{327}a\u{303}o";
        assert_eq!(parse_name(decomposed).as_deref(), Ok("Jos\u{e9} Concei\u{e7}\u{e3}o"));
        assert_eq!(parse_name(decomposed), parse_name("José Conceição"), "one name, however typed");
    }

    #[test]
    fn names_with_zero_width_or_text_direction_characters_are_refused() {
        for hidden in [
            '\u{200b}',
            '\u{200c}',
            '\u{200d}',
            '\u{200e}',
            '\u{200f}',
            '\u{202a}',
            '\u{202b}',
            '\u{202c}',
            '\u{202d}',
            '\u{202e}',
            '\u{2060}',
            '\u{2061}',
            '\u{2062}',
            '\u{2063}',
            '\u{2064}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{feff}',
            '\u{ad}',
            '\u{61c}',
            '\u{e0041}',
        ] {
            let name = format!("B{hidden}ob Lima");
            let refused = parse_name(&name).expect_err(&format!("U+{:04X} accepted", u32::from(hidden)));
            assert!(matches!(refused, Error::InvalidInput(_)));
            assert!(refused.to_string().contains(&format!("U+{:04X} at character 2", u32::from(hidden))), "{refused}");
        }
        assert!(parse_name("Eve \u{202e}evil").is_err(), "the probe's right-to-left override");
        // Letters and marks that render as nothing (not format characters, yet as invisible).
        for blank in ['\u{34f}', '\u{115f}', '\u{1160}', '\u{17b4}', '\u{180b}', '\u{3164}', '\u{fe0f}', '\u{ffa0}'] {
            assert!(parse_name(&format!("B{blank}ob Lima")).is_err(), "U+{:04X} accepted", u32::from(blank));
        }
        // A name written in another script, with its own marks, is still a name.
        assert!(parse_name("José Ñandú").is_ok() && parse_name("김민준").is_ok() && parse_name("Ἀθηνᾶ").is_ok());
        assert!(parse_name("\u{feff}Ana").is_err(), "a byte-order mark is not trimmed away as if it were a space");
    }

    #[test]
    fn names_with_c0_or_c1_control_characters_are_refused() {
        for control in ['\u{0}', '\u{7}', '\t', '\n', '\r', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}'] {
            assert!(parse_name(&format!("Ana{control}Lima")).is_err(), "U+{:04X} accepted", u32::from(control));
        }
    }

    #[test]
    fn names_in_other_scripts_and_with_marks_are_accepted() {
        for name in
            ["Zoë Brontë", "Ngũgĩ wa Thiong'o", "Ελένη Παππά", "Иван Петров", "محمد علي", "李小龙", "O'Brien-Smith"]
        {
            assert!(parse_name(name).is_ok(), "{name} refused");
        }
    }

    #[test]
    fn a_name_is_bounded_after_composition() {
        let decomposed = "e\u{301}".repeat(NAME_LEN_MAX);
        assert_eq!(parse_name(&decomposed).map(|n| n.chars().count()), Ok(NAME_LEN_MAX));
        assert!(parse_name(&"a".repeat(NAME_LEN_MAX + 1)).is_err());
    }
}
