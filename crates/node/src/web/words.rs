//! Refusals in a customer's words and language.
//!
//! The core's errors ([`bank_core::Error`]) carry English sentences written for the API's
//! `detail`. The pages recognise the ones a customer can meet by their shape ([`CORE_SENTENCES`]:
//! `{}` stands for a part that varies) and show the matching Fluent message in the page's language
//! instead; the unit tests build each error the way the core does, so a reworded core sentence
//! fails a test here rather than silently falling back. A sentence not recognised (an operator's
//! or a peer's refusal, a new rule) is shown inside a generic message (`err-other`), in English.
//!
//! The durable fix is typed refusal reasons in the core (one variant per rule, its facts as
//! fields); until then this table is the seam.

use bank_core::Error;
use bank_core::error::Attempts;

use super::brl;
use super::i18n::{Tr, msg};
use crate::service::ServiceError;

/// A core sentence's shape, the message that says it, and the names of its varying parts in
/// order (`_` for a part the message leaves out). Longer shapes come before their prefixes.
const CORE_SENTENCES: &[(&str, &str, &[&str])] = &[
    ("{} is not a valid CPF or CNPJ", msg("err-document-invalid"), &["input"]),
    ("{} is not a valid CPF", msg("err-cpf-invalid"), &["input"]),
    ("{} is not a valid CNPJ", msg("err-cnpj-invalid"), &["input"]),
    ("{} is not a valid e-mail address", msg("err-email-invalid"), &["input"]),
    ("{} is not a valid Brazilian phone number (e.g. +55 75 99999-1234)", msg("err-phone-invalid"), &["input"]),
    ("{} is not a Pix key (CPF, CNPJ, e-mail, phone or random key)", msg("err-key-invalid"), &["input"]),
    ("{} is not a Pix key", msg("err-key-invalid"), &["input"]),
    ("{} is not an account kind (individual, company, joint)", msg("err-kind-invalid"), &["input"]),
    ("{} is not a deposit method (cash, boleto, qr)", msg("err-method-invalid"), &["input"]),
    ("{} is not an amount of money (e.g. 1234,56)", msg("err-amount-invalid"), &["input"]),
    ("amount_cents must be greater than zero", msg("err-amount-positive"), &[]),
    ("amount_cents must be at most {} (R$ 1.000.000,00)", msg("err-amount-too-big"), &["_"]),
    ("holder name must not be empty", msg("err-name-empty"), &[]),
    (
        "holder name must not contain control, invisible or text-direction characters {}",
        msg("err-name-invisible"),
        &["_"],
    ),
    ("holder name must be at most {} characters", msg("err-name-long"), &["max"]),
    ("password must have between {} and {} characters", msg("err-password-length"), &["min", "max"]),
    (
        "this password is one of the most common ones, which guessers try first; choose another",
        msg("err-password-common"),
        &[],
    ),
    ("wrong e-mail or password", msg("err-sign-in-wrong"), &[]),
    ("an account with e-mail {} already exists at this bank", msg("err-email-taken"), &["email"]),
    ("the Pix key {} is already registered", msg("err-key-taken"), &["key"]),
    ("an account has at most {} Pix keys", msg("err-key-limit"), &["max"]),
    ("a joint account has no CPF/CNPJ key", msg("err-key-joint"), &[]),
    ("the destination is the source account itself", msg("err-self-transfer"), &[]),
    ("you may not spend from account {}", msg("err-not-yours"), &["account"]),
    ("account {} is not yours", msg("err-not-yours"), &["account"]),
    ("bank {} is not a member of this consortium", msg("err-bank-not-member"), &["bank"]),
    ("account {} does not exist", msg("err-account-unknown"), &["account"]),
    ("account {} cannot receive this much money", msg("err-receive-limit"), &["account"]),
    ("no transfer {} of yours", msg("err-transfer-unknown"), &["_"]),
    ("an individual account has exactly one holder, with a CPF", msg("err-individual-holders"), &[]),
    ("a company account has exactly one holder, with a CNPJ", msg("err-company-holders"), &[]),
    ("a joint account has two or more holders, each with a CPF", msg("err-joint-holders"), &[]),
    ("a joint account has at most {} holders", msg("err-joint-max"), &["max"]),
    ("the holders of a joint account must be different people", msg("err-joint-distinct"), &[]),
    ("this deposit would take the balance over the account limit", msg("err-deposit-limit"), &[]),
    ("a transfer has between 1 and {} legs", msg("err-legs-count"), &["max"]),
    ("the signed-in account no longer exists", msg("err-account-gone"), &[]),
    ("the bank is shutting down", msg("err-shutting-down"), &[]),
    ("the key could not be registered at every bank: {}", msg("err-key-not-everywhere"), &["_"]),
    ("this bank has no account numbers left", msg("err-no-numbers"), &[]),
];

/// A service error in words for a customer, in `tr`'s language.
pub fn friendly(e: &ServiceError, tr: &Tr) -> String {
    match e {
        ServiceError::Internal(_) => tr.t("err-internal"),
        ServiceError::Core(e) => core_words(e, tr),
    }
}

fn core_words(e: &Error, tr: &Tr) -> String {
    match e {
        Error::InsufficientFunds { available_cents, requested_cents, .. } => {
            tr.t2("err-insufficient", ("available", brl(*available_cents)), ("requested", brl(*requested_cents)))
        }
        Error::UnknownKey(key) => tr.t1("err-unknown-key", "key", key.as_str()),
        Error::Overloaded => tr.t("err-overloaded"),
        Error::TooManyAttempts { attempts: Attempts::SignIns, retry_after_s } => {
            tr.t1("err-sign-ins", "seconds", *retry_after_s)
        }
        Error::TooManyAttempts { attempts: Attempts::KeyLookups, retry_after_s } => {
            tr.t1("err-key-lookups", "seconds", *retry_after_s)
        }
        Error::IdempotencyMismatch => tr.t("err-idempotency"),
        Error::BankUnavailable(detail) => sentence(detail, tr).unwrap_or_else(|| tr.t("err-bank-unavailable")),
        // Every other refusal carries its sentence (and any variant added later falls here).
        other => {
            let detail = other.to_string();
            sentence(&detail, tr).unwrap_or_else(|| tr.t1("err-other", "detail", detail.trim_end_matches('.')))
        }
    }
}

/// A core sentence in the page's words, if its shape is known. `leg N: …` is said of that leg.
fn sentence(detail: &str, tr: &Tr) -> Option<String> {
    if let Some(rest) = detail.strip_prefix("leg ")
        && let Some((n, reason)) = rest.split_once(": ")
        && let Ok(n) = n.parse::<u32>()
    {
        return Some(tr.t2("err-in-leg", ("n", n), ("reason", sentence(reason, tr)?)));
    }
    for (shape, id, names) in CORE_SENTENCES {
        let Some(parts) = captures(shape, detail) else { continue };
        let named = names.iter().zip(parts).filter(|(name, _)| **name != "_");
        let args: Vec<(&str, String)> = named.map(|(name, part)| (*name, unquoted(part))).collect();
        return Some(match args.as_slice() {
            [] => tr.t(id),
            [(n1, v1)] => tr.t1(id, n1, v1.as_str()),
            [(n1, v1), (n2, v2), ..] => tr.t2(id, (n1, v1.as_str()), (n2, v2.as_str())),
        });
    }
    None
}

/// The varying parts of `text` if it has `shape` (`{}` marks each, never empty), else `None`.
fn captures<'t>(shape: &str, text: &'t str) -> Option<Vec<&'t str>> {
    let mut literals = shape.split("{}");
    let mut rest = text.strip_prefix(literals.next().unwrap_or_default())?;
    let literals: Vec<&str> = literals.collect();
    if literals.is_empty() {
        return rest.is_empty().then(Vec::new);
    }
    let mut out = Vec::new();
    for (i, literal) in literals.iter().enumerate() {
        let part = if i + 1 == literals.len() {
            let part = rest.strip_suffix(literal)?;
            rest = "";
            part
        } else {
            let at = rest.find(literal)?;
            let part = &rest[..at];
            rest = &rest[at + literal.len()..];
            part
        };
        if part.is_empty() {
            return None;
        }
        out.push(part);
    }
    Some(out)
}

/// Input as the core quotes it (`"abc"`, or `"abc…"…` when cut) without its quotes: the
/// messages put their own around it.
fn unquoted(part: &str) -> String {
    let Some(inner) = part.strip_prefix('"') else { return part.to_string() };
    match (inner.strip_suffix('"'), inner.strip_suffix("\"…")) {
        (Some(whole), _) => whole.to_string(),
        (None, Some(cut)) => format!("{cut}…"),
        (None, None) => part.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use bank_core::account::{AccountKind, Holder, NewAccount, check_password, parse_name};
    use bank_core::contact::{Email, Phone};
    use bank_core::document::Document;
    use bank_core::ledger::DepositMethod;
    use bank_core::money::Amount;
    use bank_core::pixkey::PixKey;

    use super::*;
    use crate::web::i18n::Lang;

    fn words(e: Error, lang: Lang) -> String {
        friendly(&ServiceError::Core(e), &Tr::new(lang))
    }

    /// Each sentence as the core really builds it is recognised — in both languages, never
    /// falling back to the generic message with English inside.
    #[test]
    fn the_core_refusals_a_customer_meets_are_said_in_the_page_language() {
        let built: Vec<Error> = vec![
            Document::parse("111.222.333-44").expect_err("bad CPF"),
            Document::parse("12").expect_err("bad document"),
            Email::parse("not an e-mail").expect_err("bad e-mail"),
            Phone::parse("123").expect_err("bad phone"),
            PixKey::parse("not a key").expect_err("bad key"),
            AccountKind::parse("alien").expect_err("bad kind"),
            DepositMethod::parse("gold").expect_err("bad method"),
            Amount::parse_brl("abc").expect_err("bad amount"),
            parse_name("").expect_err("empty name"),
            parse_name("Eve \u{202e}live").expect_err("hidden character"),
            parse_name(&"a".repeat(500)).expect_err("long name"),
            check_password("short").expect_err("short password"),
            Error::Unauthorized("wrong e-mail or password".into()),
            Error::Conflict("an account with e-mail a@b.co already exists at this bank".into()),
            Error::Conflict("the Pix key a@b.co is already registered".into()),
            Error::Conflict("an account has at most 20 Pix keys".into()),
            Error::invalid("leg 1: the destination is the source account itself"),
            Error::Forbidden("leg 2: you may not spend from account 000001-9".into()),
            Error::NotFound("leg 1: bank 9 is not a member of this consortium".into()),
            Error::BankUnavailable("the bank is shutting down".into()),
        ];
        let joint = NewAccount {
            kind: AccountKind::Joint,
            holders: vec![Holder {
                name: "Ana".into(),
                document: Document::parse(bank_core::document::Cpf::from_base(1).as_str()).expect("cpf"),
            }],
            email: Email::parse("a@b.co").expect("email"),
            phone: Phone::parse("+55 75 99999-1234").expect("phone"),
            password_hash: String::new(),
        };
        let built = built.into_iter().chain(joint.validate().err());
        for e in built {
            let detail = e.to_string();
            for lang in Lang::ALL {
                let said = words(e.clone(), lang);
                assert!(sentence(&detail, &Tr::new(lang)).is_some(), "{detail:?} is not recognised");
                if lang == Lang::PtBr {
                    assert!(!said.contains(&detail), "{said:?} repeats the core's English");
                }
            }
        }
    }

    #[test]
    fn refusals_read_as_sentences_in_each_language() {
        let e = Document::parse("111.222.333-44").expect_err("bad CPF");
        assert_eq!(words(e.clone(), Lang::En), "“111.222.333-44” is not a valid CPF.");
        assert_eq!(words(e, Lang::PtBr), "“111.222.333-44” não é um CPF válido.");
        let leg = Error::invalid("leg 2: the destination is the source account itself");
        assert_eq!(words(leg, Lang::PtBr), "Parte 2: o destino é a sua própria conta.");
        let funds = Error::InsufficientFunds {
            account: bank_core::ids::AccountNumber::parse("000001-9").unwrap_or_else(|e| panic!("{e}")),
            available_cents: 100_000,
            requested_cents: 500_000,
        };
        assert_eq!(words(funds, Lang::PtBr), "Saldo insuficiente: R$ 1.000,00 disponível, R$ 5.000,00 pedido.");
        let unknown = Error::Conflict("a brand-new rule".into());
        assert_eq!(words(unknown, Lang::PtBr), "O banco recusou: a brand-new rule.");
    }

    #[test]
    fn shapes_capture_their_varying_parts_only() {
        assert_eq!(captures("a {} b {} c", "a 1 b 22 c"), Some(vec!["1", "22"]));
        assert_eq!(captures("{} is x", "\"q\" is x"), Some(vec!["\"q\""]));
        assert_eq!(captures("{} is x", " is x"), None, "a part is never empty");
        assert_eq!(captures("exact", "exact"), Some(vec![]));
        assert_eq!(captures("exact", "exact and more"), None);
        assert_eq!(unquoted("\"abc\""), "abc");
        assert_eq!(unquoted("\"abc\"…"), "abc…");
        assert_eq!(unquoted("plain"), "plain");
    }
}
