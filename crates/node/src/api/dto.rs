//! The JSON shapes of the public API (API.md). Requests deny unknown fields; responses are built
//! from core types here and nowhere else.

use bank_core::account::Account;
use bank_core::ids::TimestampMs;
use bank_core::ledger::{Entry, Transfer};
use bank_core::pixkey::KeyType;
use bank_core::twopc::Decision;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::openapi::{
    AccountKindName, DecisionName, DepositMethodName, DirectionName, EntryKindName, FailureCode, KeyTypeName,
    NewKeyTypeName, StatusName,
};

pub fn rfc3339(ts: TimestampMs) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts.0) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HolderIn {
    #[schema(min_length = 1, max_length = 200, example = "Ana Lima")]
    pub name: String,
    #[schema(max_length = 32, example = "529.982.247-25")]
    pub document: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountIn {
    #[schema(value_type = AccountKindName)]
    pub kind: String,
    #[schema(min_items = 1, max_items = 16)]
    pub holders: Vec<HolderIn>,
    #[schema(max_length = 254, example = "ana@example.com")]
    pub email: String,
    #[schema(max_length = 32, example = "+55 75 99999-1234")]
    pub phone: String,
    #[schema(min_length = 8, max_length = 128, example = "correct horse battery")]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionIn {
    #[schema(max_length = 254, example = "ana@example.com")]
    pub email: String,
    #[schema(max_length = 128, example = "correct horse battery")]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepositIn {
    #[schema(minimum = 1, maximum = 100_000_000, example = 10_000)]
    pub amount_cents: i64,
    #[schema(value_type = DepositMethodName)]
    pub method: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalIn {
    #[schema(minimum = 1, maximum = 100_000_000, example = 10_000)]
    pub amount_cents: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PixKeyIn {
    #[serde(rename = "type")]
    #[schema(value_type = NewKeyTypeName)]
    pub kind: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountRefIn {
    #[schema(example = 1)]
    pub bank_id: u32,
    #[schema(example = "000001-9")]
    pub number: String,
}

/// `{ key }` or `{ bank_id, number }`. Parsed as one struct with optional fields (the handler
/// refuses other mixes with a leg-numbered message); described as the two shapes it accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationIn {
    pub key: Option<String>,
    pub bank_id: Option<u32>,
    pub number: Option<String>,
}

impl utoipa::PartialSchema for DestinationIn {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
        let by_key = ObjectBuilder::new()
            .title(Some("by key"))
            .property(
                "key",
                ObjectBuilder::new().schema_type(Type::String).max_length(Some(254)).examples(["ana@example.com"]),
            )
            .required("key")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let by_account = ObjectBuilder::new()
            .title(Some("by account"))
            .property("bank_id", u32::schema())
            .property("number", ObjectBuilder::new().schema_type(Type::String).examples(["000001-9"]))
            .required("bank_id")
            .required("number")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        OneOfBuilder::new().item(by_key).item(by_account).into()
    }
}

impl ToSchema for DestinationIn {}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegIn {
    /// The source account; the signed-in account when absent.
    pub from: Option<AccountRefIn>,
    pub to: DestinationIn,
    #[schema(minimum = 1, maximum = 100_000_000, example = 10_000)]
    pub amount_cents: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferIn {
    #[schema(min_items = 1, max_items = 16)]
    pub legs: Vec<LegIn>,
    #[schema(max_length = 140, example = "rent")]
    pub description: Option<String>,
}

/// A refund (devolução) of a Pix leg the signed-in customer received.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundIn {
    /// Which leg of the transfer (0 for a single Pix); needed only when the customer received
    /// several legs of it.
    #[schema(minimum = 0, maximum = 15, example = 0)]
    pub leg: Option<u16>,
    #[schema(minimum = 1, maximum = 100_000_000, example = 500)]
    pub amount_cents: i64,
    #[schema(max_length = 140, example = "charged twice")]
    pub reason: Option<String>,
}

/// Which receipt, for a transfer of several legs.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReceiptQuery {
    /// The leg (default: the first one the signed-in customer sent or received).
    #[param(value_type = Option<u16>, minimum = 0, maximum = 15)]
    pub leg: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    /// Entries per page, 1 to 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, example = 50)]
    pub limit: Option<String>,
    /// The `next` of the previous page (empty: the first page).
    #[param(pattern = "^([1-9][0-9]{0,17})?$")]
    pub before: Option<String>,
    /// One of the customer's accounts at this bank (default: the signed-in one).
    #[param(example = "000001-9")]
    pub account: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BankOut {
    pub id: u32,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HolderOut {
    pub name: String,
    pub document: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    pub key: String,
    #[serde(rename = "type")]
    #[schema(value_type = KeyTypeName)]
    pub kind: KeyType,
}

#[derive(Debug, Serialize, ToSchema)]
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

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountOut {
    pub bank_id: u32,
    pub bank_name: String,
    pub number: String,
    #[schema(value_type = AccountKindName)]
    pub kind: &'static str,
    pub holders: Vec<HolderOut>,
    pub email: String,
    pub phone: String,
    pub pix_keys: Vec<KeyOut>,
    pub balance: BalanceOut,
    #[schema(format = DateTime)]
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

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    pub token: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub account: AccountOut,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntryOut {
    pub id: u64,
    pub account: String,
    #[schema(format = Uuid)]
    pub transfer_id: Option<String>,
    #[schema(value_type = EntryKindName)]
    pub kind: &'static str,
    #[schema(value_type = DirectionName)]
    pub direction: &'static str,
    pub amount_cents: i64,
    #[schema(value_type = StatusName)]
    pub status: &'static str,
    #[schema(value_type = Option<DepositMethodName>)]
    pub method: Option<&'static str>,
    /// Who is on the other side, in the customer's words: name and bank ("Bruno Lima · Automobili").
    pub counterparty: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// For a refund's line (`refund_out`, `refund_in`): the transfer it refunds.
    #[schema(format = Uuid)]
    pub refund_of: Option<String>,
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
            refund_of: e.refund_of.map(|t| t.to_string()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatementOut {
    pub entries: Vec<EntryOut>,
    pub next: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountRefOut {
    pub bank_id: u32,
    pub number: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LegEndOut {
    pub bank_id: u32,
    pub number: String,
    pub key: Option<String>,
    pub holder_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LegOut {
    pub from: AccountRefOut,
    pub to: LegEndOut,
    pub amount_cents: i64,
    #[schema(value_type = StatusName)]
    pub status: &'static str,
    /// The Pix end-to-end id: `E` (`D` for a refund) + the payer bank's institution code +
    /// `yyyyMMddHHmm` (UTC) + 11 alphanumerics; the same at both banks.
    #[schema(
        min_length = 32,
        max_length = 32,
        pattern = "^[ED][0-9]{20}[0-9A-Z]{11}$",
        example = "E90000001202612042318ABCDEF12345"
    )]
    pub end_to_end_id: String,
}

/// The Pix leg a refund refunds.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundOfOut {
    #[schema(format = Uuid)]
    pub transfer_id: String,
    pub leg: u16,
    #[schema(min_length = 32, max_length = 32)]
    pub end_to_end_id: String,
}

impl From<&crate::service::RefundRef> for RefundOfOut {
    fn from(r: &crate::service::RefundRef) -> Self {
        RefundOfOut { transfer_id: r.transfer_id.to_string(), leg: r.leg, end_to_end_id: r.end_to_end_id.clone() }
    }
}

/// One side of a Pix on its receipt.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartyOut {
    pub name: String,
    /// Masked (`***.456.789-**`); empty when the bank does not know it.
    pub document: String,
    pub bank_id: u32,
    pub bank_name: String,
    /// The bank's 8-digit institution code.
    pub institution_code: String,
}

impl From<&crate::service::Party> for PartyOut {
    fn from(p: &crate::service::Party) -> Self {
        PartyOut {
            name: p.name.clone(),
            document: p.document.clone(),
            bank_id: p.bank_id.0,
            bank_name: p.bank_name.clone(),
            institution_code: p.institution_code.clone(),
        }
    }
}

/// A Pix receipt (comprovante) of one leg.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptOut {
    #[schema(format = Uuid)]
    pub transfer_id: String,
    pub leg: u16,
    #[schema(min_length = 32, max_length = 32)]
    pub end_to_end_id: String,
    pub payer: PartyOut,
    pub receiver: PartyOut,
    /// The Pix key the payer used, if any.
    pub key: Option<String>,
    pub amount_cents: i64,
    #[schema(value_type = StatusName)]
    pub status: &'static str,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub description: Option<String>,
    /// The sum of this leg's completed refunds.
    pub refunded_cents: i64,
    /// What the signed-in customer may still refund (only for its receiver; refunds in flight
    /// count as refunded).
    pub refundable_cents: Option<i64>,
    pub refund_of: Option<RefundOfOut>,
}

impl From<&crate::service::Receipt> for ReceiptOut {
    fn from(r: &crate::service::Receipt) -> Self {
        ReceiptOut {
            transfer_id: r.transfer_id.to_string(),
            leg: r.leg,
            end_to_end_id: r.end_to_end_id.clone(),
            payer: PartyOut::from(&r.payer),
            receiver: PartyOut::from(&r.receiver),
            key: r.key.clone(),
            amount_cents: r.amount_cents,
            status: r.status.as_str(),
            created_at: rfc3339(r.created_at),
            description: r.description.clone(),
            refunded_cents: r.refunded_cents,
            refundable_cents: r.refundable_cents,
            refund_of: r.refund_of.as_ref().map(RefundOfOut::from),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailureOut {
    #[schema(value_type = FailureCode)]
    pub code: String,
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransferOut {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(value_type = StatusName)]
    pub status: &'static str,
    pub legs: Vec<LegOut>,
    pub failure: Option<FailureOut>,
    #[schema(value_type = Option<DecisionName>)]
    pub decision: Option<&'static str>,
    pub description: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// For a refund: the Pix leg it refunds.
    pub refund_of: Option<RefundOfOut>,
}

impl TransferOut {
    /// The transfer with each leg's end-to-end id (`e2e`, in leg order) and, for a refund, the
    /// leg it refunds.
    pub fn new(t: &Transfer, e2e: Vec<String>, refund_of: Option<RefundOfOut>) -> Self {
        let mut e2e = e2e.into_iter();
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
                    end_to_end_id: e2e.next().unwrap_or_default(),
                })
                .collect(),
            failure: t
                .failure
                .as_ref()
                .map(|f| FailureOut { code: f.code.as_str().to_owned(), detail: f.detail.clone() }),
            decision: None,
            description: t.description.clone(),
            created_at: rfc3339(t.created_at),
            refund_of,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyLookupOut {
    pub key: String,
    #[serde(rename = "type")]
    #[schema(value_type = KeyTypeName)]
    pub kind: KeyType,
    pub bank_id: u32,
    pub bank_name: String,
    pub holder_name: String,
    pub masked_document: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsortiumAccountOut {
    pub bank_id: u32,
    pub bank_name: String,
    pub number: String,
    #[schema(value_type = AccountKindName)]
    pub kind: &'static str,
    pub balance: Option<BalanceOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsortiumAccountsOut {
    pub accounts: Vec<ConsortiumAccountOut>,
    pub unreachable_banks: Vec<u32>,
}

impl TransferOut {
    /// A transfer as answered at its deadline (with the decision taken so far, if pending).
    pub fn answered(answer: &crate::service::TransferAnswer, e2e: Vec<String>, refund_of: Option<RefundOfOut>) -> Self {
        let mut out = TransferOut::new(&answer.transfer, e2e, refund_of);
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

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOut {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// A member bank as `GET /api/v1/consortium/status` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberOut {
    pub id: u32,
    pub name: String,
    #[schema(example = "http://127.0.0.1:8081")]
    pub url: String,
    #[schema(value_type = super::openapi::MemberState)]
    pub state: &'static str,
    /// Milliseconds since the member last answered; null if never. Absent for a bank alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_ms: Option<Option<i64>>,
    /// The member's clock as this bank last read it from its answers; null before any answer.
    /// Absent for a bank alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<Option<ClockOut>>,
}

/// A peer's clock against this bank's, from its newest answer (`peer::clock`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClockOut {
    /// The peer's clock minus this bank's, in ms (positive: the peer is ahead).
    pub offset_ms: i64,
    /// Half the round trip the reading was taken in: the offset is right within it.
    pub uncertainty_ms: i64,
    /// True when the clocks are surely further apart than the consortium allows; cross-bank
    /// work with this member is then refused at once.
    pub disagrees: bool,
}

impl From<crate::service::PeerClock> for ClockOut {
    fn from(c: crate::service::PeerClock) -> Self {
        ClockOut { offset_ms: c.offset_ms, uncertainty_ms: c.uncertainty_ms, disagrees: c.disagrees }
    }
}

/// The token ring as this bank sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RingOut {
    pub epoch: u64,
    /// The bank this bank last knew to hold the token, or null.
    pub holder: Option<u32>,
    /// Milliseconds since this bank last held or passed the token; null if never.
    pub last_seen_ms: Option<u64>,
    /// Visits of the token to this bank per second, over the last ten seconds.
    pub rotations_per_s: f64,
    pub queue_len: u64,
    /// This bank's part in the ring (token-ring mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// Members this bank suspects of having failed (token-ring mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspected: Option<Vec<u32>>,
}

/// `GET /api/v1/consortium/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsortiumStatusOut {
    pub bank_id: u32,
    /// How cross-bank transactions are coordinated: `token-ring` or `concurrent`.
    #[schema(example = "token-ring")]
    pub mode: &'static str,
    pub members: Vec<MemberOut>,
    pub ring: RingOut,
    /// Holds this bank keeps for undecided transactions.
    pub in_doubt: i64,
    /// Whether this bank serves the seed-compatible API: the original system's routes, which
    /// have no authentication (docs/seed-compat.md). Off unless the bank was started so.
    pub seed_compat: bool,
}
