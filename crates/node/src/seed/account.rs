//! The original's Account JSON, built from our account, its keys, its statement and the banks
//! where its holder has accounts; and the mapping of our account numbers to the integers the
//! original's interface routes by (`/logged/<bank>/<int>`).
//!
//! **Numbers**: ours are `NNNNNN-C` (six digits of sequence, one check digit); the integer is
//! the sequence, `1..=999_999`, and back is [`AccountNumber::from_seq`]. Both directions are
//! exact, so no two accounts of a bank share an integer. An integer outside that range names no
//! account (404).

use bank_core::account::{Account, AccountKind};
use bank_core::ids::{AccountNumber, TimestampMs};
use bank_core::ledger::{Entry, Status};
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

#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionJson {
    pub id_transaction: u64,
    pub type_transaction: String,
    pub value: String,
    /// `true`, `"pending"` or `"error"`, as the original's interface compares it.
    pub concluded: serde_json::Value,
    pub date_transaction: String,
    pub source: String,
    pub receptor: String,
    pub bank_source: String,
    pub bank_receptor: String,
}

/// The original's Account JSON of `view`: `banks_list` names the banks where its holder has
/// accounts; `entries` are its newest statement lines; `bank_of` names a bank by id.
pub fn account_json(
    bank_name: &str,
    view: &AccountView,
    banks_list: Vec<String>,
    entries: &[Entry],
    bank_of: &dyn Fn(u32) -> String,
) -> AccountJson {
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
        transactions: entries.iter().map(|e| transaction_json(bank_name, account, e, bank_of)).collect(),
    }
}

/// One statement line as the original's transaction. The other side's name and bank come from
/// the line's counterparty text (`Name (number)` or `Name (number, bank N)`).
fn transaction_json(
    bank_name: &str,
    account: &Account,
    entry: &Entry,
    bank_of: &dyn Fn(u32) -> String,
) -> TransactionJson {
    let own_name = account.display_name();
    let counterparty = entry.counterparty.clone().unwrap_or_default();
    let other_bank_id =
        counterparty.rsplit_once("bank ").and_then(|(_, rest)| rest.trim_end_matches(')').parse::<u32>().ok());
    let other_bank = other_bank_id.map(bank_of).unwrap_or_else(|| bank_name.to_string());
    // A participant's line of a cross-bank Pix names the transfer, not the payer
    // (`Pix <id> (coordinated by bank N)`): the payer is shown by their bank.
    let other_name = match counterparty.split(" (").next().unwrap_or_default() {
        name if name.starts_with("Pix ") => format!("Pix from {other_bank}"),
        name => name.to_string(),
    };
    // Matched on the kind's name so that kinds added later show under their own name.
    let (type_transaction, outgoing) = match entry.kind.as_str() {
        "deposit" => ("deposit".to_string(), false),
        "withdrawal" => ("withdrawal".to_string(), true),
        "transfer_out" => ("send Pix".to_string(), true),
        "transfer_in" => ("receive Pix".to_string(), false),
        other => (other.to_string(), false),
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
