//! Parsing the original's request shapes into core values, once. Its clients send amounts as
//! strings (`"12.34"`, the web interface) or integers (`20000`, `tests.py`), always in reais;
//! flags as `"true"`/`"false"`/`"none"` (any case: `tests.py` sends `"True"`); bank ids as
//! one-character strings. Anything else is refused with a 400 naming the field.

use bank_core::document::Document;
use bank_core::error::quoted;
use bank_core::ids::BankId;
use bank_core::money::Amount;
use bank_core::pixkey::PixKey;
use serde::Deserialize;
use serde_json::Value;

use super::{SeedError, SeedResult};

/// The envelope of `POST /operations`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationIn {
    pub operation: Option<Value>,
    #[serde(rename = "clientCpfCNPJ")]
    pub client_cpf_cnpj: Option<Value>,
    pub data_operation: Option<Value>,
}

/// Longest text accepted in any field before parsing (bounds the work; names, e-mails and keys
/// are far shorter).
const FIELD_LEN_MAX: usize = 512;

/// A field of `object` as text: a JSON string, or a number written as text. Missing or `null`
/// is `None`; anything else (an object, a list, a boolean) is refused.
pub fn text_field(object: &Value, name: &str) -> SeedResult<Option<String>> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= FIELD_LEN_MAX => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(SeedError::bad_request(format!("{name} is too long"))),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(SeedError::bad_request(format!("{name} must be a string"))),
    }
}

/// A field that must be present and not empty.
pub fn required(object: &Value, name: &str) -> SeedResult<String> {
    match text_field(object, name)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(SeedError::bad_request(format!("{name} is missing"))),
    }
}

/// An amount in reais, as the original's clients send it: a string with at most two decimals
/// (`"12.34"`, `"12,34"`, `"20000"`) or a JSON number (`20000`, `12.5`). Refused: more than two
/// decimals, a sign, zero, anything not a number (`NaN`, `1e5`), more than the API's maximum.
pub fn amount(object: &Value, name: &str) -> SeedResult<Amount> {
    let text = required(object, name)?;
    let cents = reais_to_cents(text.trim()).ok_or_else(|| {
        SeedError::bad_request(format!("{name} {} is not an amount in reais (e.g. 12.34)", quoted(&text)))
    })?;
    Amount::from_cents(cents).map_err(|_| {
        SeedError::bad_request(format!("{name} must be more than 0 and at most {} reais", Amount::MAX_CENTS / 100))
    })
}

/// `12`, `12.3`, `12.34` (or with a comma) to centavos; `None` for anything else.
fn reais_to_cents(text: &str) -> Option<i64> {
    let (units, fraction) = match text.find(['.', ',']) {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, ""),
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(units) || (text.len() > units.len() && !(1..=2).contains(&fraction.len())) {
        return None;
    }
    if !fraction.is_empty() && !digits(fraction) {
        return None;
    }
    let fraction_cents = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<i64>().ok()? * 10,
        _ => fraction.parse::<i64>().ok()?,
    };
    units.parse::<i64>().ok()?.checked_mul(100)?.checked_add(fraction_cents)
}

/// One of the original's three-valued flags: `"true"`, `"false"`, `"none"` (or empty, or
/// missing), in any case; JSON booleans too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Yes,
    No,
    Unset,
}

pub fn flag(object: &Value, name: &str) -> SeedResult<Flag> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(Flag::Unset),
        Some(Value::Bool(true)) => Ok(Flag::Yes),
        Some(Value::Bool(false)) => Ok(Flag::No),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Flag::Yes),
            "false" => Ok(Flag::No),
            "" | "none" => Ok(Flag::Unset),
            _ => Err(SeedError::bad_request(format!("{name} must be \"true\" or \"false\""))),
        },
        Some(_) => Err(SeedError::bad_request(format!("{name} must be \"true\" or \"false\""))),
    }
}

/// A CPF or CNPJ (formatted or bare).
pub fn document(object: &Value, name: &str) -> SeedResult<Document> {
    let text = required(object, name)?;
    Document::parse(&text).map_err(|e| SeedError::bad_request(format!("{name}: {e}")))
}

/// A bank id as the original's clients send it (`"2"`, or `2`).
pub fn bank_id(object: &Value, name: &str) -> SeedResult<BankId> {
    let text = required(object, name)?;
    let id = text.trim().parse::<u32>().ok().filter(|&id| id > 0);
    id.map(BankId).ok_or_else(|| SeedError::bad_request(format!("{name} {} is not a bank id", quoted(&text))))
}

/// A Pix key. The web interface splits what the customer typed, `<bank id><any char><key>`
/// (`2?651.551.749-10`), into `bankID`/`idBank` and `keyPix` itself; a key still carrying that
/// prefix (one character, one separator that no key starts with) is accepted too.
pub fn pix_key(object: &Value, name: &str) -> SeedResult<PixKey> {
    let text = required(object, name)?;
    if let Ok(key) = PixKey::parse(&text) {
        return Ok(key);
    }
    let mut chars = text.trim().chars();
    let (first, separator) = (chars.next(), chars.next());
    match (first, separator) {
        (Some(id), Some(sep)) if id.is_ascii_digit() && !sep.is_alphanumeric() && sep != '+' => {
            PixKey::parse(chars.as_str()).map_err(|e| SeedError::bad_request(format!("{name}: {e}")))
        }
        _ => Err(SeedError::bad_request(format!("{name} {} is not a Pix key", quoted(&text)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cents(v: Value) -> Result<i64, u16> {
        amount(&json!({ "value": v }), "value").map(Amount::cents).map_err(|e| e.status.as_u16())
    }

    #[test]
    fn amounts_are_reais_as_strings_or_integers_with_at_most_two_decimals() {
        assert_eq!(cents(json!("12.34")), Ok(1234));
        assert_eq!(cents(json!("12,3")), Ok(1230));
        assert_eq!(cents(json!("20000")), Ok(2_000_000));
        assert_eq!(cents(json!(20000)), Ok(2_000_000));
        assert_eq!(cents(json!(12.5)), Ok(1250));
        assert_eq!(cents(json!("1000000")), Ok(100_000_000));
        for bad in [
            json!("12.345"),
            json!("-5"),
            json!(-5),
            json!("0"),
            json!("0.00"),
            json!("NaN"),
            json!("1e5"),
            json!(""),
            json!("12."),
            json!(".5"),
            json!("1000000.01"),
            json!(true),
            json!([1]),
            json!(null),
            json!("99999999999999999999"),
        ] {
            assert_eq!(cents(bad.clone()), Err(400), "{bad} must be refused");
        }
    }

    #[test]
    fn flags_accept_the_spellings_of_the_interface_and_of_tests_py() {
        let f = |v: Value| flag(&json!({ "f": v }), "f").map_err(|e| e.status.as_u16());
        assert_eq!(f(json!("true")), Ok(Flag::Yes));
        assert_eq!(f(json!("True")), Ok(Flag::Yes));
        assert_eq!(f(json!("False")), Ok(Flag::No));
        assert_eq!(f(json!("none")), Ok(Flag::Unset));
        assert_eq!(f(json!(false)), Ok(Flag::No));
        assert_eq!(f(json!("yes")), Err(400));
    }

    #[test]
    fn pix_keys_may_keep_the_typed_bank_prefix() {
        let k = |v: &str| pix_key(&json!({ "k": v }), "k").map(|k| k.normalized()).map_err(|e| e.status.as_u16());
        assert_eq!(k("529.982.247-25"), Ok("52998224725".into()));
        assert_eq!(k("2?529.982.247-25"), Ok("52998224725".into()));
        assert_eq!(k("1 ana@example.com"), Ok("ana@example.com".into()));
        assert_eq!(k("nonsense"), Err(400));
    }
}
