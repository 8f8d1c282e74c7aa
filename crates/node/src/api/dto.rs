//! The JSON shapes of the public API (API.md). Requests deny unknown fields; responses are built
//! from core types here and nowhere else.

use bank_core::account::Account;
use bank_core::ids::TimestampMs;
use bank_core::ledger::{Entry, Transfer};
use bank_core::pixkey::KeyType;
use bank_core::twopc::Decision;
use serde::{Deserialize, Serialize};

pub fn rfc3339(ts: TimestampMs) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts.0) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderIn {
    pub name: String,
    pub document: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountIn {
    pub kind: String,
    pub holders: Vec<HolderIn>,
    pub email: String,
    pub phone: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionIn {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepositIn {
    pub amount_cents: i64,
    pub method: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalIn {
    pub amount_cents: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PixKeyIn {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRefIn {
    pub bank_id: u32,
    pub number: String,
}

/// `{ key }` or `{ bank_id, number }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationIn {
    pub key: Option<String>,
    pub bank_id: Option<u32>,
    pub number: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegIn {
    pub from: Option<AccountRefIn>,
    pub to: DestinationIn,
    pub amount_cents: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferIn {
    pub legs: Vec<LegIn>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    pub limit: Option<String>,
    pub before: Option<String>,
    pub account: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BankOut {
    pub id: u32,
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct HolderOut {
    pub name: String,
    pub document: String,
}

#[derive(Debug, Serialize)]
pub struct KeyOut {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: KeyType,
}

#[derive(Debug, Serialize)]
pub struct BalanceOut {
    pub posted_cents: i64,
    pub held_cents: i64,
    pub available_cents: i64,
}

impl BalanceOut {
    pub fn of(a: &Account) -> Self {
        BalanceOut { posted_cents: a.posted_cents, held_cents: a.held_cents, available_cents: a.available_cents() }
    }
}

#[derive(Debug, Serialize)]
pub struct AccountOut {
    pub bank_id: u32,
    pub bank_name: String,
    pub number: String,
    pub kind: &'static str,
    pub holders: Vec<HolderOut>,
    pub email: String,
    pub phone: String,
    pub pix_keys: Vec<KeyOut>,
    pub balance: BalanceOut,
    pub created_at: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl AccountOut {
    pub fn new(bank_id: u32, bank_name: &str, a: &Account, keys: Vec<KeyOut>, warnings: Vec<String>) -> Self {
        AccountOut {
            bank_id,
            bank_name: bank_name.to_string(),
            number: a.number.to_string(),
            kind: a.kind.as_str(),
            holders: a
                .holders
                .iter()
                .map(|h| HolderOut { name: h.name.clone(), document: h.document.as_str().to_string() })
                .collect(),
            email: a.email.to_string(),
            phone: a.phone.to_string(),
            pix_keys: keys,
            balance: BalanceOut::of(a),
            created_at: rfc3339(a.created_at),
            warnings,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SessionOut {
    pub token: String,
    pub expires_at: String,
    pub account: AccountOut,
}

#[derive(Debug, Serialize)]
pub struct EntryOut {
    pub id: u64,
    pub account: String,
    pub transfer_id: Option<String>,
    pub kind: &'static str,
    pub direction: &'static str,
    pub amount_cents: i64,
    pub status: &'static str,
    pub method: Option<&'static str>,
    pub counterparty: Option<String>,
    pub created_at: String,
}

impl From<&Entry> for EntryOut {
    fn from(e: &Entry) -> Self {
        EntryOut {
            id: e.id.0,
            account: e.account.to_string(),
            transfer_id: e.transfer_id.map(|t| t.to_string()),
            kind: e.kind.as_str(),
            direction: if e.kind.is_debit() { "debit" } else { "credit" },
            amount_cents: e.amount.cents(),
            status: e.status.as_str(),
            method: e.method.map(|m| m.as_str()),
            counterparty: e.counterparty.clone(),
            created_at: rfc3339(e.created_at),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct StatementOut {
    pub entries: Vec<EntryOut>,
    pub next: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AccountRefOut {
    pub bank_id: u32,
    pub number: String,
}

#[derive(Debug, Serialize)]
pub struct LegEndOut {
    pub bank_id: u32,
    pub number: String,
    pub key: Option<String>,
    pub holder_name: String,
}

#[derive(Debug, Serialize)]
pub struct LegOut {
    pub from: AccountRefOut,
    pub to: LegEndOut,
    pub amount_cents: i64,
    pub status: &'static str,
}

#[derive(Debug, Serialize)]
pub struct FailureOut {
    pub code: String,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct TransferOut {
    pub id: String,
    pub status: &'static str,
    pub legs: Vec<LegOut>,
    pub failure: Option<FailureOut>,
    pub decision: Option<&'static str>,
    pub description: Option<String>,
    pub created_at: String,
}

impl From<&Transfer> for TransferOut {
    fn from(t: &Transfer) -> Self {
        TransferOut {
            id: t.id.to_string(),
            status: t.status.as_str(),
            legs: t
                .legs
                .iter()
                .map(|l| LegOut {
                    from: AccountRefOut { bank_id: l.from.bank_id.0, number: l.from.number.to_string() },
                    to: LegEndOut {
                        bank_id: l.to.bank_id.0,
                        number: l.to.number.to_string(),
                        key: l.to.key.as_ref().map(|k| k.normalized()),
                        holder_name: l.to.holder_name.clone(),
                    },
                    amount_cents: l.amount.cents(),
                    status: l.status.as_str(),
                })
                .collect(),
            failure: t
                .failure
                .as_ref()
                .map(|f| FailureOut { code: f.code.as_str().to_owned(), detail: f.detail.clone() }),
            decision: None,
            description: t.description.clone(),
            created_at: rfc3339(t.created_at),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct KeyLookupOut {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: KeyType,
    pub bank_id: u32,
    pub bank_name: String,
    pub holder_name: String,
    pub masked_document: String,
}

#[derive(Debug, Serialize)]
pub struct ConsortiumAccountOut {
    pub bank_id: u32,
    pub bank_name: String,
    pub number: String,
    pub kind: &'static str,
    pub balance: Option<BalanceOut>,
}

#[derive(Debug, Serialize)]
pub struct ConsortiumAccountsOut {
    pub accounts: Vec<ConsortiumAccountOut>,
    pub unreachable_banks: Vec<u32>,
}

impl From<&crate::service::TransferAnswer> for TransferOut {
    fn from(answer: &crate::service::TransferAnswer) -> Self {
        let mut out = TransferOut::from(&answer.transfer);
        out.decision = answer.decision.map(|d| match d {
            Decision::Committed => "commit",
            Decision::Aborted => "abort",
        });
        out
    }
}

impl From<crate::service::KeyOwner> for KeyLookupOut {
    fn from(o: crate::service::KeyOwner) -> Self {
        KeyLookupOut {
            key: o.key,
            kind: o.kind,
            bank_id: o.bank_id,
            bank_name: o.bank_name,
            holder_name: o.holder_name,
            masked_document: o.masked_document,
        }
    }
}

impl From<&crate::service::HeldAccountView> for ConsortiumAccountOut {
    fn from(a: &crate::service::HeldAccountView) -> Self {
        ConsortiumAccountOut {
            bank_id: a.bank_id.0,
            bank_name: a.bank_name.clone(),
            number: a.number.to_string(),
            kind: a.kind.as_str(),
            balance: Some(BalanceOut {
                posted_cents: a.posted_cents,
                held_cents: a.held_cents,
                available_cents: a.available_cents(),
            }),
        }
    }
}
