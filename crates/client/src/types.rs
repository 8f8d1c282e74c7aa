//! The JSON shapes of API v1 (API.md), as this client sends and reads them.
//!
//! These are the client's own types, deliberately independent of the node's: the contract is the
//! JSON, not a shared Rust crate. Responses tolerate unknown fields (the API may grow); fields the
//! contract marks optional or nullable are `Option`. Timestamps are kept as the RFC 3339 text the
//! node sends. Amounts are integer centavos (`*_cents`).

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// `GET /api/v1/bank`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankInfo {
    pub id: u32,
    pub name: String,
}

/// Kind of account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Individual,
    Company,
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
}

impl fmt::Display for AccountKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A holder of an account: a person (CPF) or a company (CNPJ).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub name: String,
    /// Bare digits in responses (a CPF may start with 0); requests may punctuate it.
    pub document: String,
}

/// `POST /api/v1/accounts` request.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct NewAccount {
    pub kind: AccountKind,
    pub holders: Vec<Holder>,
    pub email: String,
    pub phone: String,
    pub password: String,
}

impl fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAccount")
            .field("kind", &self.kind)
            .field("holders", &self.holders)
            .field("email", &self.email)
            .field("phone", &self.phone)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Type of a Pix key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PixKeyType {
    Cpf,
    Cnpj,
    Email,
    Phone,
    Random,
}

impl PixKeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            PixKeyType::Cpf => "cpf",
            PixKeyType::Cnpj => "cnpj",
            PixKeyType::Email => "email",
            PixKeyType::Phone => "phone",
            PixKeyType::Random => "random",
        }
    }
}

impl fmt::Display for PixKeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key types a customer may register by request (`POST /api/v1/pix-keys`); the CPF/CNPJ key
/// is registered automatically at account opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NewPixKeyType {
    Email,
    Phone,
    Random,
}

/// A Pix key of an account: `{ key, type }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixKey {
    pub key: String,
    #[serde(rename = "type")]
    pub key_type: PixKeyType,
}

/// Balances of an account, in centavos: `available = posted - held`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Balance {
    pub posted_cents: i64,
    pub held_cents: i64,
    pub available_cents: i64,
}

/// An account as the bank describes it to its holder (account opening, `GET /me`, sessions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub bank_id: u32,
    pub bank_name: String,
    pub number: String,
    pub kind: AccountKind,
    pub holders: Vec<Holder>,
    pub email: String,
    pub phone: String,
    #[serde(default)]
    pub pix_keys: Vec<PixKey>,
    pub balance: Balance,
    #[serde(default)]
    pub created_at: Option<String>,
    /// Why something expected did not happen at opening (e.g. the CPF key was already taken).
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Account {
    /// The address of this account as a transfer source or destination.
    pub fn address(&self) -> AccountRef {
        AccountRef { bank_id: self.bank_id, number: self.number.clone() }
    }
}

/// `POST /api/v1/sessions` request.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("email", &self.email).field("password", &"<redacted>").finish()
    }
}

/// `POST /api/v1/sessions` response: a bearer token and the account signed in to.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub token: String,
    pub expires_at: String,
    pub account: Account,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("account", &self.account)
            .finish()
    }
}

/// How cash comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepositMethod {
    Cash,
    Boleto,
    Qr,
}

impl DepositMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            DepositMethod::Cash => "cash",
            DepositMethod::Boleto => "boleto",
            DepositMethod::Qr => "qr",
        }
    }
}

/// `POST /api/v1/deposits` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewDeposit {
    pub amount_cents: i64,
    pub method: DepositMethod,
}

/// `POST /api/v1/withdrawals` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewWithdrawal {
    pub amount_cents: i64,
}

/// What a statement entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Deposit,
    Withdrawal,
    TransferOut,
    TransferIn,
    /// A refund this account sent back to the payer of a Pix it had received.
    RefundOut,
    /// A refund of a Pix this account had sent.
    RefundIn,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Deposit => "deposit",
            EntryKind::Withdrawal => "withdrawal",
            EntryKind::TransferOut => "transfer_out",
            EntryKind::TransferIn => "transfer_in",
            EntryKind::RefundOut => "refund_out",
            EntryKind::RefundIn => "refund_in",
        }
    }
}

/// Whether an entry adds to (`credit`) or takes from (`debit`) the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Credit,
    Debit,
}

/// Outcome of an entry, a transfer or one of its legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Completed,
    Failed,
    Pending,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Pending => "pending",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a statement (also the answer to a deposit or withdrawal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: u64,
    /// The account the entry belongs to (a joint account's holder reads several).
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub transfer_id: Option<Uuid>,
    pub kind: EntryKind,
    pub direction: Direction,
    pub amount_cents: i64,
    pub status: Status,
    #[serde(default)]
    pub method: Option<DepositMethod>,
    /// The other side in the customer's words: name and bank ("Bruno Lima · Automobili").
    #[serde(default)]
    pub counterparty: Option<String>,
    pub created_at: String,
    /// For a refund's line: the transfer it refunds.
    #[serde(default)]
    pub refund_of: Option<Uuid>,
}

impl Entry {
    /// The amount with its sign: negative for a debit.
    pub fn signed_cents(&self) -> i64 {
        match self.direction {
            Direction::Credit => self.amount_cents,
            Direction::Debit => -self.amount_cents,
        }
    }
}

/// `GET /api/v1/statement` response: entries newest first; `next`, when present, is passed back
/// as `before` to get the following (older) page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub entries: Vec<Entry>,
    #[serde(default)]
    pub next: Option<String>,
}

/// `POST /api/v1/pix-keys` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewPixKey {
    #[serde(rename = "type")]
    pub key_type: NewPixKeyType,
}

/// `GET /api/v1/pix-keys/{key}` response: whom a key points to, with the document masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixKeyInfo {
    pub key: String,
    #[serde(rename = "type")]
    pub key_type: PixKeyType,
    pub bank_id: u32,
    pub bank_name: String,
    pub holder_name: String,
    pub masked_document: String,
}

/// An account anywhere in the consortium: `{ bank_id, number }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccountRef {
    pub bank_id: u32,
    pub number: String,
}

/// Where a leg sends money: a Pix key or an account address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Destination {
    Key { key: String },
    Account(AccountRef),
}

/// One leg of a transfer request. `from: None` means the signed-in account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewLeg {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<AccountRef>,
    pub to: Destination,
    pub amount_cents: i64,
}

/// `POST /api/v1/transfers` request: one leg for a Pix, several for a packet (at most 16).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewTransfer {
    pub legs: Vec<NewLeg>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl NewTransfer {
    /// A single-leg transfer from the signed-in account.
    pub fn single(to: Destination, amount_cents: i64, description: Option<String>) -> Self {
        NewTransfer { legs: vec![NewLeg { from: None, to, amount_cents }], description }
    }
}

/// The destination of an executed leg, resolved to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegDestination {
    pub bank_id: u32,
    pub number: String,
    /// The key the leg was addressed to, if it was addressed by key.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub holder_name: Option<String>,
}

/// One leg of an executed transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    pub from: AccountRef,
    pub to: LegDestination,
    pub amount_cents: i64,
    pub status: Status,
    /// The Pix end-to-end id (`E…`, `D…` for a refund), the same at both banks.
    #[serde(default)]
    pub end_to_end_id: Option<String>,
}

/// The Pix leg a refund refunds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundOf {
    pub transfer_id: Uuid,
    pub leg: u16,
    pub end_to_end_id: String,
}

/// `POST /api/v1/transfers/{id}/refunds` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRefund {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leg: Option<u16>,
    pub amount_cents: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One side of a Pix on its receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub name: String,
    pub document: String,
    pub bank_id: u32,
    pub bank_name: String,
    pub institution_code: String,
}

/// `GET /api/v1/transfers/{id}/receipt`: a Pix receipt (comprovante) of one leg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub transfer_id: Uuid,
    pub leg: u16,
    pub end_to_end_id: String,
    pub payer: Party,
    pub receiver: Party,
    #[serde(default)]
    pub key: Option<String>,
    pub amount_cents: i64,
    pub status: Status,
    pub created_at: String,
    #[serde(default)]
    pub description: Option<String>,
    pub refunded_cents: i64,
    #[serde(default)]
    pub refundable_cents: Option<i64>,
    #[serde(default)]
    pub refund_of: Option<RefundOf>,
}

/// Why a transfer failed: a stable code (`insufficient_funds`, `bank_unavailable`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub detail: String,
}

/// The coordinator's decision about a transfer, once taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Commit,
    Abort,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Commit => "commit",
            Decision::Abort => "abort",
        }
    }
}

/// An executed transfer (`POST /api/v1/transfers`, `GET /api/v1/transfers/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub id: Uuid,
    pub status: Status,
    pub legs: Vec<Leg>,
    #[serde(default)]
    pub failure: Option<Failure>,
    #[serde(default)]
    pub decision: Option<Decision>,
    #[serde(default)]
    pub description: Option<String>,
    pub created_at: String,
    /// For a refund: the Pix leg it refunds.
    #[serde(default)]
    pub refund_of: Option<RefundOf>,
}

/// One of the customer's accounts somewhere in the consortium.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsortiumAccount {
    pub bank_id: u32,
    pub bank_name: String,
    pub number: String,
    pub kind: AccountKind,
    #[serde(default)]
    pub balance: Option<Balance>,
}

/// `GET /api/v1/consortium/accounts` response. The shape of an unreachable bank is not fixed by
/// the contract (an id or an object), so it is kept as raw JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsortiumAccounts {
    pub accounts: Vec<ConsortiumAccount>,
    #[serde(default)]
    pub unreachable_banks: Vec<serde_json::Value>,
}

/// A member bank as seen in `GET /api/v1/consortium/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: u32,
    pub name: String,
    pub url: String,
    pub state: String,
}

/// The token ring as one bank sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RingStatus {
    pub epoch: u64,
    /// The bank this bank last knew to hold the token.
    #[serde(default)]
    pub holder: Option<u32>,
    #[serde(default)]
    pub last_seen_ms: Option<u64>,
    #[serde(default)]
    pub rotations_per_s: Option<f64>,
    #[serde(default)]
    pub queue_len: Option<u64>,
}

/// `GET /api/v1/consortium/status` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsortiumStatus {
    pub bank_id: u32,
    pub mode: String,
    #[serde(default)]
    pub members: Vec<Member>,
    #[serde(default)]
    pub ring: Option<RingStatus>,
    #[serde(default)]
    pub in_doubt: u64,
    /// Whether the bank serves the seed-compatible API (unauthenticated; docs/seed-compat.md).
    /// Absent from banks older than it: read as off.
    #[serde(default)]
    pub seed_compat: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn account_json() -> serde_json::Value {
        json!({
            "bank_id": 1, "bank_name": "Eleven", "number": "000001-4", "kind": "individual",
            "holders": [{"name": "Ana", "document": "52998224725"}],
            "email": "ana@example.com", "phone": "+5575999991234",
            "pix_keys": [{"key": "52998224725", "type": "cpf"}],
            "balance": {"posted_cents": 0, "held_cents": 0, "available_cents": 0},
            "created_at": "2025-01-01T00:00:00Z", "warnings": [], "some_future_field": {"x": 1}
        })
    }

    #[test]
    fn account_reads_the_contract_shape_and_tolerates_new_fields() {
        let account: Account = serde_json::from_value(account_json()).expect("account");
        assert_eq!(account.number, "000001-4");
        assert_eq!(account.pix_keys[0].key_type, PixKeyType::Cpf);
        assert_eq!(account.address(), AccountRef { bank_id: 1, number: "000001-4".into() });
    }

    #[test]
    fn account_without_optional_fields_still_reads() {
        let mut value = account_json();
        let object = value.as_object_mut().expect("object");
        object.remove("warnings");
        object.remove("created_at");
        let account: Account = serde_json::from_value(value).expect("account");
        assert!(account.warnings.is_empty());
    }

    #[test]
    fn transfer_request_writes_key_and_account_destinations() {
        let by_key = NewTransfer::single(Destination::Key { key: "a@b.c".into() }, 100, None);
        assert_eq!(
            serde_json::to_value(&by_key).expect("json"),
            json!({"legs": [{"to": {"key": "a@b.c"}, "amount_cents": 100}]})
        );
        let by_account = NewTransfer {
            legs: vec![NewLeg {
                from: Some(AccountRef { bank_id: 1, number: "000001-4".into() }),
                to: Destination::Account(AccountRef { bank_id: 2, number: "000002-1".into() }),
                amount_cents: 5,
            }],
            description: Some("rent".into()),
        };
        assert_eq!(
            serde_json::to_value(&by_account).expect("json"),
            json!({"legs": [{"from": {"bank_id": 1, "number": "000001-4"}, "to": {"bank_id": 2, "number": "000002-1"},
                   "amount_cents": 5}], "description": "rent"})
        );
    }

    #[test]
    fn transfer_reads_failed_and_pending_shapes() {
        let failed: Transfer = serde_json::from_value(json!({
            "id": "0190b1a4-7c2e-7d5e-9f00-000000000001", "status": "failed",
            "legs": [{"from": {"bank_id": 1, "number": "000001-4"},
                      "to": {"bank_id": 1, "number": "000002-1", "key": null, "holder_name": "Bia"},
                      "amount_cents": 100, "status": "failed"}],
            "failure": {"code": "insufficient_funds", "detail": "not enough"},
            "decision": "abort", "description": null, "created_at": "2025-01-01T00:00:00Z"
        }))
        .expect("transfer");
        assert_eq!(failed.status, Status::Failed);
        assert_eq!(failed.failure.map(|f| f.code).as_deref(), Some("insufficient_funds"));
        let pending: Transfer = serde_json::from_value(json!({
            "id": "0190b1a4-7c2e-7d5e-9f00-000000000002", "status": "pending", "legs": [],
            "failure": null, "decision": null, "created_at": "2025-01-01T00:00:00Z"
        }))
        .expect("transfer");
        assert_eq!(pending.decision, None);
    }

    #[test]
    fn entry_and_statement_read_nullable_fields() {
        let statement: Statement = serde_json::from_value(json!({
            "entries": [
                {"id": 12, "transfer_id": null, "kind": "deposit", "direction": "credit", "amount_cents": 100,
                 "status": "completed", "method": "cash", "counterparty": null, "created_at": "2025-01-01T00:00:00Z"},
                {"id": 13, "transfer_id": "0190b1a4-7c2e-7d5e-9f00-000000000001", "kind": "transfer_out",
                 "direction": "debit", "amount_cents": 40, "status": "failed", "method": null,
                 "counterparty": "Bia", "created_at": "2025-01-01T00:00:01Z"}
            ],
            "next": null
        }))
        .expect("statement");
        assert_eq!(statement.entries[0].method, Some(DepositMethod::Cash));
        assert_eq!(statement.entries[1].signed_cents(), -40);
        assert_eq!(statement.next, None);
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let creds = Credentials { email: "a@b.c".into(), password: "hunter2".into() };
        assert!(!format!("{creds:?}").contains("hunter2"));
    }
}
