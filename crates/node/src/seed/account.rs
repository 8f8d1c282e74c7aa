//! The original's Account JSON, built from our account, its keys, its statement and the banks
//! where its holder has accounts; and the mapping of our account numbers to the integers the
//! original's interface routes by (`/logged/<bank>/<int>`).
//!
//! **Numbers**: ours are `NNNNNN-C` (six digits of sequence, one check digit); the integer is
//! the sequence, `1..=999_999`, and back is [`AccountNumber::from_seq`]. Both directions are
//! exact, so no two accounts of a bank share an integer. An integer outside that range names no
//! account (404).

use std::collections::HashMap;

use bank_core::account::{Account, AccountKind};
use bank_core::ids::{AccountNumber, TimestampMs, TransferId};
use bank_core::ledger::{Entry, Status, Transfer};
use bank_core::pixkey::KeyType;
use serde::Serialize;

use crate::storage::read::AccountView;

/// The integer the original's clients know an account by.
pub fn seed_number(number: &AccountNumber) -> u64 {
    number.seq()
}

/// Our account number for the original's integer, if it can be one.
pub fn our_number(seed: u64) -> Option<AccountNumber> {
    (1..=AccountNumber::SEQ_MAX).contains(&seed).then(|| AccountNumber::from_seq(seed))
}

/// Centavos as the original printed money: `"1400.25"` (its interface runs `parseFloat` on it).
pub fn reais(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// The original's Account JSON.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountJson {
    pub account_number: u64,
    /// Money that can be spent now (posted less held).
    pub balance: String,
    /// Money reserved by transfers not yet decided.
    pub blocked_balance: String,
    pub bank: String,
    pub banks_list: Vec<String>,
    #[serde(rename = "cpfCNPJ1")]
    pub cpf_cnpj1: String,
    pub name1: String,
    #[serde(rename = "cpfCNPJ2", skip_serializing_if = "Option::is_none")]
    pub cpf_cnpj2: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name2: Option<String>,
    pub email: String,
    pub telephone: String,
    pub key_pix: String,
    pub is_fisic_account: &'static str,
    pub is_joinet: &'static str,
    pub transactions: Vec<TransactionJson>,
}

/// One statement line as the original's transaction, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionJson {
    pub id_transaction: u64,
    pub type_transaction: String,
    pub value: String,
    /// `true`, `"pending"` or `"error"`, as the original's interface compares it.
    #[schema(schema_with = concluded_schema)]
    pub concluded: serde_json::Value,
    pub date_transaction: String,
    pub source: String,
    pub receptor: String,
    pub bank_source: String,
    pub bank_receptor: String,
}

/// `concluded`'s schema: `true`, or the text `"pending"` or `"error"`.
fn concluded_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    let one_of = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([true])))
        .item(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["pending", "error"])))
        .description(Some("`true` once completed, else `\"pending\"` or `\"error\"` (the original's values)"))
        .build();
    utoipa::openapi::RefOr::T(Schema::OneOf(one_of))
}

/// The bank that coordinated the cross-bank transfer of a statement line, if the line is one:
/// such a line names the transfer, not the other side (`Pix <id> (coordinated by bank N)`).
pub fn coordinator_of(entry: &Entry) -> Option<u32> {
    let counterparty = entry.counterparty.as_deref()?;
    let rest = counterparty.strip_prefix("Pix ")?;
    rest.rsplit_once("(coordinated by bank ")?.1.trim_end_matches(')').parse().ok()
}

/// What the original's Account JSON is built from, besides the account itself.
pub struct AccountParts<'a> {
    /// This bank: its name and id.
    pub bank_name: &'a str,
    pub bank_id: u32,
    /// The banks where the holder has accounts, this bank first.
    pub banks_list: Vec<String>,
    /// The newest statement lines.
    pub entries: &'a [Entry],
    /// The records of the cross-bank transfers among `entries` that this bank coordinated: they
    /// name who was paid (or who paid), which the lines themselves do not.
    pub transfers: &'a HashMap<TransferId, Transfer>,
    /// A bank's name by id.
    pub bank_of: &'a dyn Fn(u32) -> String,
}

/// The original's Account JSON of `view`.
pub fn account_json(view: &AccountView, mut parts: AccountParts<'_>) -> AccountJson {
    let banks_list = std::mem::take(&mut parts.banks_list);
    let (bank_name, entries) = (parts.bank_name, parts.entries);
    let account = &view.account;
    let first = account.holders.first();
    let second = account.holders.get(1).filter(|_| account.kind == AccountKind::Joint);
    let document_key = view.keys.iter().any(|(_, kind)| matches!(kind, KeyType::Cpf | KeyType::Cnpj));
    let key_pix = match (document_key, first) {
        (true, Some(holder)) => holder.document.formatted(),
        _ => view.keys.first().map(|(key, _)| key.clone()).unwrap_or_default(),
    };
    AccountJson {
        account_number: seed_number(&account.number),
        balance: reais(account.available_cents()),
        blocked_balance: reais(account.held_cents),
        bank: bank_name.to_string(),
        banks_list,
        cpf_cnpj1: first.map(|h| h.document.formatted()).unwrap_or_default(),
        name1: first.map(|h| h.name.clone()).unwrap_or_default(),
        cpf_cnpj2: second.map(|h| h.document.formatted()),
        name2: second.map(|h| h.name.clone()),
        email: account.email.as_str().to_string(),
        telephone: account.phone.as_str().to_string(),
        key_pix,
        is_fisic_account: if account.kind == AccountKind::Company { "false" } else { "true" },
        is_joinet: if account.kind == AccountKind::Joint { "true" } else { "false" },
        transactions: entries.iter().map(|e| transaction_json(account, e, &parts)).collect(),
    }
}

/// One statement line as the original's transaction. The other side's name and bank come from
/// the line's counterparty text: `Name · Bank` (every line since Pix legs travel with the
/// prepare), or the coordinating bank's name alone (`Pix via <bank>` / `Pix from <bank>`). Lines
/// written before that read `Name (number)`, `Name (number, bank N)`, or name only their transfer
/// (`Pix <id> (coordinated by bank N)`): then the other side comes from the transfer's record when
/// this bank coordinated it, else it is shown by the coordinating bank.
fn transaction_json(account: &Account, entry: &Entry, parts: &AccountParts<'_>) -> TransactionJson {
    let bank_name = parts.bank_name;
    let own_name = account.display_name();
    let counterparty = entry.counterparty.clone().unwrap_or_default();
    let other_bank_id =
        counterparty.rsplit_once("bank ").and_then(|(_, rest)| rest.trim_end_matches(')').parse::<u32>().ok());
    let other_bank = other_bank_id.map(parts.bank_of).unwrap_or_else(|| bank_name.to_string());
    // Matched on the kind's name so that kinds added later show under their own name.
    let (type_transaction, outgoing) = match entry.kind.as_str() {
        "deposit" => ("deposit".to_string(), false),
        "withdrawal" => ("withdrawal".to_string(), true),
        "transfer_out" => ("send Pix".to_string(), true),
        "transfer_in" => ("receive Pix".to_string(), false),
        other => (other.to_string(), false),
    };
    let recorded = entry.transfer_id.and_then(|id| parts.transfers.get(&id));
    let (other_name, other_bank) = match (coordinator_of(entry), recorded) {
        // Lines written since Pix legs travel with the prepare: `Name · Bank`, or the
        // coordinating bank's name alone for a packet's leg drawn here (older lines have
        // parentheses: `Name (number, bank N)`, `Pix <id> (coordinated by bank N)`).
        _ if let Some((name, bank)) = counterparty.rsplit_once(" · ") => (name.to_string(), bank.to_string()),
        _ if entry.transfer_id.is_some() && !counterparty.is_empty() && !counterparty.contains('(') => {
            let shown = if outgoing { format!("Pix via {counterparty}") } else { format!("Pix from {counterparty}") };
            (shown, counterparty.clone())
        }
        (Some(_), Some(transfer)) => other_side(transfer, parts.bank_id, &account.number, outgoing, parts.bank_of)
            .unwrap_or_else(|| (format!("Pix via {other_bank}"), other_bank)),
        (Some(_), None) if outgoing => (format!("Pix via {other_bank}"), other_bank),
        (Some(_), None) => (format!("Pix from {other_bank}"), other_bank),
        (None, _) => (counterparty.split(" (").next().unwrap_or_default().to_string(), other_bank),
    };
    let (source, receptor, bank_source, bank_receptor) = match (entry.kind.as_str(), outgoing) {
        ("deposit" | "withdrawal", _) => (own_name.clone(), own_name, bank_name.to_string(), bank_name.to_string()),
        (_, true) => (own_name, other_name, bank_name.to_string(), other_bank),
        (_, false) => (other_name, own_name, other_bank, bank_name.to_string()),
    };
    let concluded = match entry.status {
        Status::Completed => serde_json::Value::Bool(true),
        Status::Pending => serde_json::Value::from("pending"),
        Status::Failed => serde_json::Value::from("error"),
    };
    TransactionJson {
        id_transaction: entry.id.0,
        type_transaction,
        value: reais(entry.amount.cents()),
        concluded,
        date_transaction: iso8601(entry.created_at),
        source,
        receptor,
        bank_source,
        bank_receptor,
    }
}

/// Who was paid by (`outgoing`) or paid (otherwise) the account `number` of bank `here` in
/// `transfer`: the names and the banks of the other ends of its legs touching the account, each
/// once, joined with `, ` (a packet may pay several people); `None` if no leg names anyone.
fn other_side(
    transfer: &Transfer,
    here: u32,
    number: &AccountNumber,
    outgoing: bool,
    bank_of: &dyn Fn(u32) -> String,
) -> Option<(String, String)> {
    let (mut names, mut banks): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for leg in &transfer.legs {
        let (mine, name, bank) = if outgoing {
            (leg.from.bank_id.0 == here && &leg.from.number == number, &leg.to.holder_name, leg.to.bank_id.0)
        } else {
            (leg.to.bank_id.0 == here && &leg.to.number == number, &leg.from_name, leg.from.bank_id.0)
        };
        if !mine || name.is_empty() {
            continue;
        }
        if !names.contains(name) {
            names.push(name.clone());
        }
        let bank = bank_of(bank);
        if !banks.contains(&bank) {
            banks.push(bank);
        }
    }
    (!names.is_empty()).then(|| (names.join(", "), banks.join(", ")))
}

/// `2026-12-04T23:05:00.123Z`: the interface runs `new Date(...)` on it.
fn iso8601(ts: TimestampMs) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts.0) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_numbers_map_to_integers_and_back_exactly() {
        for seq in [1, 2, 10, 12_345, AccountNumber::SEQ_MAX] {
            let ours = AccountNumber::from_seq(seq);
            assert_eq!(seed_number(&ours), seq);
            assert_eq!(our_number(seq), Some(ours));
        }
        assert_eq!(our_number(0), None);
        assert_eq!(our_number(AccountNumber::SEQ_MAX + 1), None);
    }

    #[test]
    fn money_is_printed_in_reais_with_two_decimals() {
        assert_eq!(reais(140_025), "1400.25");
        assert_eq!(reais(5), "0.05");
        assert_eq!(reais(0), "0.00");
    }
}
