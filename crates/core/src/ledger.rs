//! The ledger of one bank: a pure, deterministic state machine.
//!
//! # What it does
//!
//! It holds every account of the bank with its `posted` and `held` balances, the bank's Pix keys,
//! the holds placed by pending cross-bank transactions, the outcome of every transaction it took
//! part in, and the first outcome of every idempotent request. Each operation either is
//! **rejected** (an [`Error`], and the ledger is exactly as before — every check runs before the
//! first mutation) or **applies**, returning its outcome and appending [`Change`]s that describe,
//! in order, what storage must write so that a restart rebuilds the same state.
//!
//! # Guarantees
//!
//! - `available = posted − held ≥ 0` for every account, always; `held ≥ 0`.
//! - Money is conserved: `Σ posted = deposits − withdrawals + posted remote credits − posted
//!   remote debits`. In-bank transfers only move money between accounts.
//! - A transfer is atomic: all its legs are posted, or it fails and nothing moves.
//! - Idempotency: a request repeated under the same (account, key) returns its first outcome and
//!   moves nothing; the same key with a different request is rejected. Rejections are not
//!   remembered, so a corrected request may reuse the key.
//! - Holds (for two-phase commit): placing is idempotent, posting and releasing happen once, and a
//!   transaction's outcome is remembered so a late `place_holds` after a release places nothing.
//!
//! # What it does not do
//!
//! No I/O, clock or randomness: the driver passes `now` and random values in, and persists the
//! changes (durably, before acknowledging anything). Password hashing, sessions and cross-bank
//! coordination live elsewhere.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Error;
use crate::account::{Account, AccountKind, NewAccount};
use crate::document::Document;
use crate::error::{ErrorCode, Refusal};
use crate::ids::{AccountNumber, BankId, EntryId, Fingerprint, IdempotencyKey, TimestampMs, TransferId};
use crate::money::Amount;
use crate::pixkey::{KeyType, PixKey};

mod refunds;
pub use refunds::{REFUND_WINDOW_MS, RefundOf, RefundRequest, Refundable};

/// Largest balance a deposit or an in-bank transfer may bring an account to (R$ 100 bilhões), far
/// beyond any real account and far below `i64::MAX`, so sums over many accounts cannot overflow.
/// A credit of a committed cross-bank transaction is posted even past it: a participant that voted
/// yes cannot refuse the commit, and money is never cut off.
pub const BALANCE_MAX_CENTS: i64 = 10_000_000_000_000;
/// Hard bound asserted on every balance: the soft limit plus room for every credit that a voted
/// transaction may still post.
const BALANCE_HARD_MAX_CENTS: i64 = i64::MAX / 4;
/// Most legs in one transfer (API.md).
pub const LEGS_MAX: usize = 16;
/// Most Pix keys per account (the Pix rule: 5 for people, 20 for companies; we use one limit).
pub const KEYS_PER_ACCOUNT_MAX: usize = 20;
/// Longest transfer description, in characters.
pub const DESCRIPTION_LEN_MAX: usize = 140;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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

    pub fn parse(text: &str) -> Result<Self, Error> {
        match text {
            "cash" => Ok(DepositMethod::Cash),
            "boleto" => Ok(DepositMethod::Boleto),
            "qr" => Ok(DepositMethod::Qr),
            _ => Err(Error::invalid(format!(
                "{} is not a deposit method (cash, boleto, qr)",
                crate::error::quoted(text)
            ))),
        }
    }
}

/// An account anywhere in the consortium.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountRef {
    pub bank_id: BankId,
    pub number: AccountNumber,
}

/// Where a leg sends money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Key(PixKey),
    Account(AccountRef),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegRequest {
    /// `None` means the signed-in account.
    pub from: Option<AccountRef>,
    pub to: Destination,
    pub amount: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRequest {
    pub idempotency_key: IdempotencyKey,
    pub fingerprint: Fingerprint,
    /// The signed-in account acting.
    pub actor: AccountNumber,
    pub legs: Vec<LegRequest>,
    pub description: Option<String>,
    /// The id the transfer gets if it executes (chosen by the driver: ids are random).
    pub transfer_id: TransferId,
    pub now: TimestampMs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Completed,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }
}

/// The receiving end of a leg, with what the payer may see of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegEnd {
    pub bank_id: BankId,
    pub number: AccountNumber,
    pub key: Option<PixKey>,
    pub holder_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferLeg {
    pub from: AccountRef,
    pub from_name: String,
    pub to: LegEnd,
    pub amount: Amount,
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: crate::error::ErrorCode,
    pub detail: String,
}

/// A transfer that executed (completed or failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub id: TransferId,
    pub status: Status,
    pub legs: Vec<TransferLeg>,
    pub failure: Option<Failure>,
    pub description: Option<String>,
    pub actor: AccountNumber,
    pub created_at: TimestampMs,
    /// The Pix leg this transfer refunds (a devolução), if it is a refund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_of: Option<RefundOf>,
}

/// What both ends of one Pix leg know of it: the coordinator sends it with the prepare to the
/// payer's and the receiver's bank, and each keeps it once the leg is posted, for receipts,
/// statements and refunds (the receiver's bank is the one that may refund it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixLeg {
    pub transfer_id: TransferId,
    /// The leg's position in its transfer (0 for a single Pix).
    pub leg: u16,
    pub from: AccountRef,
    pub from_name: String,
    /// The payer's document, masked (`***.456.789-**`); empty when unknown.
    pub from_document: String,
    pub to: LegEnd,
    /// The receiver's document, masked; empty when unknown.
    pub to_document: String,
    pub amount: Amount,
    /// When the coordinator planned the transfer.
    pub created_at: TimestampMs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_of: Option<RefundOf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

    pub fn is_debit(self) -> bool {
        matches!(self, EntryKind::Withdrawal | EntryKind::TransferOut | EntryKind::RefundOut)
    }
}

/// One immutable line of an account's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: EntryId,
    pub account: AccountNumber,
    pub transfer_id: Option<TransferId>,
    pub kind: EntryKind,
    pub method: Option<DepositMethod>,
    pub amount: Amount,
    pub status: Status,
    pub counterparty: Option<String>,
    pub created_at: TimestampMs,
    /// For a refund's line: the transfer it refunds (the original Pix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_of: Option<TransferId>,
}

/// The refusal of a key beyond [`KEYS_PER_ACCOUNT_MAX`].
fn key_limit_reached() -> Error {
    Error::Conflict(format!("an account has at most {KEYS_PER_ACCOUNT_MAX} Pix keys"))
}

/// A transfer's description, trimmed and checked; empty means none.
fn clean_description(text: Option<&str>) -> Result<Option<String>, Error> {
    match text.map(str::trim) {
        Some(d) if d.chars().count() > DESCRIPTION_LEN_MAX => {
            Err(Error::invalid(format!("description must be at most {DESCRIPTION_LEN_MAX} characters")))
        }
        Some(d) if d.chars().any(char::is_control) => {
            Err(Error::invalid("description must not contain control characters"))
        }
        Some("") | None => Ok(None),
        Some(d) => Ok(Some(d.to_string())),
    }
}

/// The legs of one transaction at one bank: the accounts it debits and credits there (what a
/// cross-bank transaction holds, then posts or releases, at each bank).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Legs {
    pub debits: Vec<(AccountNumber, Amount)>,
    pub credits: Vec<(AccountNumber, Amount)>,
    /// The customer the coordinator authenticated, by document: the participant debits only
    /// accounts this document holds (the coordinator's signed assertion, DESIGN.md §4.1). `None`
    /// when the bank has no debits to authorise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<Document>,
    /// Pix keys to reserve, then record, in the bank's directory (a key registration).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyClaim>,
    /// The Pix legs that touch this bank (as payer's or receiver's bank), for its records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pix: Vec<PixLeg>,
}

impl Legs {
    /// Whether the bank has nothing to do in the transaction.
    pub fn is_empty(&self) -> bool {
        self.debits.is_empty() && self.credits.is_empty() && self.keys.is_empty()
    }
}

/// The legs of one transaction, per participant bank.
pub type LegsByBank = BTreeMap<BankId, Legs>;

/// What [`Ledger::plan_transfer`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Run here (or a repeat): this is the outcome.
    Done(Outcome),
    /// Recorded as pending; the coordinator must run these legs at these banks.
    CrossBank { transfer: Transfer, legs: LegsByBank },
}

/// A Pix key claimed for an account, carried by a key registration's two-phase commit: every
/// bank reserves the key (refusing if it is taken or reserved), then records it on commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyClaim {
    pub key: PixKey,
    pub owner: RemoteKey,
}

/// A key of an account at another bank, as the consortium directory has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteKey {
    pub bank_id: BankId,
    pub account: AccountNumber,
    pub holder_name: String,
    pub masked_document: String,
}

/// What an idempotent request did. A repeat answers [`Outcome::Replayed`], naming the first
/// outcome, which the driver reads back from storage: the ledger keeps only the reference, so
/// remembering a request costs tens of bytes of memory, not a copy of the transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Entry(Entry),
    Transfer(Transfer),
    Replayed(OutcomeRef),
}

/// Where the first outcome of an idempotent request is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutcomeRef {
    Entry(EntryId),
    Transfer(TransferId),
}

impl Outcome {
    /// The reference a repeat of this outcome answers with.
    pub fn reference(&self) -> OutcomeRef {
        match self {
            Outcome::Entry(e) => OutcomeRef::Entry(e.id),
            Outcome::Transfer(t) => OutcomeRef::Transfer(t.id),
            Outcome::Replayed(r) => *r,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub fingerprint: Fingerprint,
    pub outcome: OutcomeRef,
}

/// How a transaction's holds ended at this bank: posted (the money moved) or released (it
/// did not). Remembered for every transaction the bank saw, so a repeat changes nothing and a
/// late request to hold finds the transaction over. (The protocol's words for the same facts —
/// commit, abort — are the two-phase commit's, [`crate::twopc::Decision`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Settlement {
    Posted,
    Released,
}

/// The holds one transaction placed here: debits reserve money, credits wait to be posted.
///
/// It also names who decides the transaction and until when it may stay undecided, so that a
/// participant holding it can ask the right bank for the outcome once `expires_at` has passed
/// (see [`crate::twopc`]), also after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldSet {
    pub debits: Vec<(AccountNumber, Amount)>,
    pub credits: Vec<(AccountNumber, Amount)>,
    pub placed_at: TimestampMs,
    /// The bank coordinating the transaction: the one to ask for its outcome.
    pub coordinator: BankId,
    /// The coordinator decides by then at the latest; a hold still here after it is in doubt.
    pub expires_at: TimestampMs,
    /// Keys this transaction reserves in the directory (a key registration).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyClaim>,
    /// The Pix legs of the transaction that touch this bank (recorded when posted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pix: Vec<PixLeg>,
}

/// What storage must write, in order, for an applied operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    AccountOpened(Box<Account>),
    Balance {
        account: AccountNumber,
        posted_cents: i64,
        held_cents: i64,
    },
    /// A key of an account at another bank entered this bank's directory.
    RemoteKeyRegistered {
        key: PixKey,
        owner: RemoteKey,
    },
    KeyRegistered {
        key: PixKey,
        account: AccountNumber,
    },
    EntryAdded(Box<Entry>),
    TransferRecorded(Box<Transfer>),
    IdempotencyRecorded {
        scope: AccountNumber,
        key: IdempotencyKey,
        record: Box<IdempotencyRecord>,
    },
    HoldsPlaced {
        transfer: TransferId,
        holds: Box<HoldSet>,
    },
    /// The transaction is settled here; its holds (if any) are gone.
    Settled {
        transfer: TransferId,
        settlement: Settlement,
    },
    /// A Pix leg touching this bank was posted (completed): kept for receipts and refunds.
    PixLegRecorded(Box<PixLeg>),
    /// How much of a Pix leg received here is refunded and how much is reserved by refunds in
    /// flight (replacing the previous figures).
    RefundState {
        of: RefundOf,
        refunded_cents: i64,
        reserved_cents: i64,
    },
    /// A refund was begun: it reserves `amount` of the leg it refunds until it settles.
    RefundOpened {
        refund: TransferId,
        of: RefundOf,
        amount: Amount,
    },
    /// A refund settled (completed or failed); its reservation is gone.
    RefundClosed {
        refund: TransferId,
    },
}

/// What a key request asks for: the account's own e-mail or phone, or a new random key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRequest {
    Email,
    Phone,
    /// The driver supplies the UUID (the core has no randomness).
    Random(Uuid),
}

/// The result of opening an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub account: Account,
    pub keys: Vec<PixKey>,
    pub warnings: Vec<String>,
}

/// Idempotency records kept in memory by default: ~100 bytes each, so ~6.5 MiB. A busy bank
/// repeats requests within seconds, so the cache answers nearly every repeat; older ones are
/// read back from storage (`Recall::idempotency`).
pub const IDEMPOTENCY_CACHE_DEFAULT: usize = 65_536;

/// A bounded map of idempotency records, the oldest evicted first (first in, first out: a
/// record's age, not its use, says how likely a repeat is).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RecentKeys {
    map: HashMap<(AccountNumber, IdempotencyKey), IdempotencyRecord>,
    order: VecDeque<(AccountNumber, IdempotencyKey)>,
    limit: usize,
}

impl RecentKeys {
    fn new(limit: usize) -> Self {
        RecentKeys { map: HashMap::new(), order: VecDeque::new(), limit }
    }

    fn insert(&mut self, id: (AccountNumber, IdempotencyKey), record: IdempotencyRecord) {
        if self.map.insert(id.clone(), record).is_none() {
            self.order.push_back(id);
        }
        self.evict();
    }

    fn evict(&mut self) {
        while self.order.len() > self.limit {
            if let Some(oldest) = self.order.pop_front() {
                self.map.remove(&oldest);
            }
        }
    }
}

/// The state of one bank's ledger. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    bank_id: BankId,
    accounts: HashMap<AccountNumber, Account>,
    by_email: HashMap<String, AccountNumber>,
    /// The individual or company account of a document (one per document per bank).
    own_account: HashMap<Document, AccountNumber>,
    /// Every account of which a document is a holder (joint ones included).
    holder_accounts: HashMap<Document, BTreeSet<AccountNumber>>,
    keys: HashMap<PixKey, AccountNumber>,
    /// The consortium directory's keys of accounts at other banks.
    remote_keys: HashMap<PixKey, RemoteKey>,
    /// Keys reserved by a key registration in progress.
    key_reservations: HashMap<PixKey, TransferId>,
    /// Whether keys are registered here alone (a consortium of one) or by a consortium-wide
    /// two-phase commit (then account opening adds no key by itself).
    direct_keys: bool,
    keys_of: HashMap<AccountNumber, Vec<PixKey>>,
    /// The most recent idempotency records, at most a bounded number; storage keeps them all for
    /// their retention period and the bank reads a forgotten one back before the ledger needs it.
    idempotency: RecentKeys,
    holds: BTreeMap<TransferId, HoldSet>,
    /// Settlements here, by transaction (UUIDv7 ids sort by time, so the oldest can be
    /// forgotten in one split; storage keeps them all, see [`Ledger::forget_settlements`]).
    settled: BTreeMap<TransferId, Settlement>,
    /// Pix legs received here that may still be refunded, with what is refunded and reserved:
    /// the refund invariant (Σ completed refunds ≤ amount) lives here. Bounded by the memory
    /// window: legs received before it with nothing in flight are forgotten (storage keeps them
    /// all, with their figures), see [`Ledger::forget_refundable`]; a refund of one reads
    /// it back first (`bank::Recall::received_legs`). Refunds older than [`REFUND_WINDOW_MS`]
    /// are refused by the refund's own check.
    refundable: BTreeMap<RefundOf, Refundable>,
    /// Refunds begun here and not settled yet, with the leg and amount each reserves. Bounded by
    /// the transfers in flight (the token queue's and the coordinator's limits).
    refunds_open: BTreeMap<TransferId, (RefundOf, Amount)>,
    /// The member banks' names, for statement lines in customers' words.
    bank_names: BTreeMap<BankId, String>,
    next_account_seq: u64,
    next_entry_id: u64,
}

impl Ledger {
    pub fn new(bank_id: BankId) -> Self {
        Ledger {
            bank_id,
            accounts: HashMap::new(),
            by_email: HashMap::new(),
            own_account: HashMap::new(),
            holder_accounts: HashMap::new(),
            keys: HashMap::new(),
            remote_keys: HashMap::new(),
            key_reservations: HashMap::new(),
            direct_keys: true,
            keys_of: HashMap::new(),
            idempotency: RecentKeys::new(IDEMPOTENCY_CACHE_DEFAULT),
            holds: BTreeMap::new(),
            settled: BTreeMap::new(),
            refundable: BTreeMap::new(),
            refunds_open: BTreeMap::new(),
            bank_names: BTreeMap::new(),
            next_account_seq: 1,
            next_entry_id: 1,
        }
    }

    pub fn bank_id(&self) -> BankId {
        self.bank_id
    }

    pub fn account(&self, number: &AccountNumber) -> Option<&Account> {
        self.accounts.get(number)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    pub fn account_by_email(&self, email: &str) -> Option<&Account> {
        self.by_email.get(email).and_then(|n| self.accounts.get(n))
    }

    pub fn key_owner(&self, key: &PixKey) -> Option<&AccountNumber> {
        self.keys.get(key)
    }

    pub fn keys_of(&self, number: &AccountNumber) -> &[PixKey] {
        self.keys_of.get(number).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Accounts the signed-in `actor` may spend (API.md "who may spend what"), sorted.
    pub fn spendable_by(&self, actor: &AccountNumber) -> Vec<AccountNumber> {
        let Some(actor) = self.accounts.get(actor) else { return Vec::new() };
        match actor.acting_document() {
            None => vec![actor.number.clone()],
            Some(doc) => self.holder_accounts.get(doc).map(|s| s.iter().cloned().collect()).unwrap_or_default(),
        }
    }

    pub fn holds(&self, transfer: &TransferId) -> Option<&HoldSet> {
        self.holds.get(transfer)
    }

    /// Every transaction holding something here, sorted by id.
    pub fn holds_iter(&self) -> impl Iterator<Item = (&TransferId, &HoldSet)> {
        self.holds.iter()
    }

    pub fn settlement(&self, transfer: &TransferId) -> Option<Settlement> {
        self.settled.get(transfer).copied()
    }

    /// Whether this bank holds something for `transfer` or remembers its settlement.
    pub fn knows(&self, transfer: &TransferId) -> bool {
        self.settled.contains_key(transfer) || self.holds.contains_key(transfer)
    }

    /// Forgets the settlements of transactions whose ids sort before `bound` (for UUIDv7 ids:
    /// created before a time), then the oldest beyond the newest `max`, returning how many. Only
    /// the memory forgets: the driver must give a settlement back ([`Ledger::restore_settlement`])
    /// from storage before handing a message about a transaction the ledger does not
    /// [`know`](Ledger::knows) to the participant, so the answers stay exactly those of a ledger
    /// that never forgot.
    pub fn forget_settlements(&mut self, bound: TransferId, max: usize) -> usize {
        crate::ids::keep_newest(&mut self.settled, bound, max)
    }

    /// Settlements remembered in memory.
    pub fn settlements_remembered(&self) -> usize {
        self.settled.len()
    }

    /// Σ posted over every account.
    pub fn total_posted_cents(&self) -> i64 {
        self.accounts.values().map(|a| a.posted_cents).sum()
    }

    // ----- restoring from storage -------------------------------------------------------

    /// Puts back an account read from storage (start-up only).
    pub fn restore_account(&mut self, account: Account) {
        self.next_account_seq = self.next_account_seq.max(account.number.seq() + 1);
        self.index_account(account);
    }

    pub fn restore_key(&mut self, key: PixKey, account: AccountNumber) {
        self.keys_of.entry(account.clone()).or_default().push(key.clone());
        self.keys.insert(key, account);
    }

    /// Puts back an idempotency record read from storage (a forgotten one, recalled before the
    /// request that repeats it).
    pub fn restore_idempotency(&mut self, scope: AccountNumber, key: IdempotencyKey, record: IdempotencyRecord) {
        self.idempotency.insert((scope, key), record);
    }

    /// Whether the record of `(scope, key)` is in memory (if not, storage may still have it).
    pub fn remembers(&self, scope: &AccountNumber, key: IdempotencyKey) -> bool {
        self.idempotency.map.contains_key(&(scope.clone(), key))
    }

    /// Idempotency records in memory (at most [`Ledger::idempotency_cache_limit`]).
    pub fn idempotency_cached(&self) -> usize {
        self.idempotency.map.len()
    }

    pub fn idempotency_cache_limit(&self) -> usize {
        self.idempotency.limit
    }

    /// Bounds the idempotency records kept in memory (at least one); the oldest go first.
    pub fn set_idempotency_cache_limit(&mut self, limit: usize) {
        self.idempotency.limit = limit.max(1);
        self.idempotency.evict();
    }

    /// Keys are registered consortium-wide (by two-phase commit), not by this ledger alone.
    pub fn set_consortium_keys(&mut self) {
        self.direct_keys = false;
    }

    pub fn restore_remote_key(&mut self, key: PixKey, owner: RemoteKey) {
        self.remote_keys.insert(key, owner);
    }

    /// The directory's entry for `key`, wherever its account is.
    pub fn key_directory(&self, key: &PixKey) -> Option<RemoteKey> {
        if let Some(number) = self.keys.get(key) {
            let account = &self.accounts[number];
            return Some(RemoteKey {
                bank_id: self.bank_id,
                account: number.clone(),
                holder_name: account.display_name(),
                masked_document: account.holders.iter().map(|h| h.document.masked()).collect::<Vec<_>>().join(", "),
            });
        }
        self.remote_keys.get(key).cloned()
    }

    fn key_taken(&self, key: &PixKey) -> bool {
        self.keys.contains_key(key) || self.remote_keys.contains_key(key) || self.key_reservations.contains_key(key)
    }

    /// What registering a key for `account` would claim: validated here (the key is free as far
    /// as this bank knows), without changing anything. The claim then goes to every bank.
    pub fn claim_key(&self, account: &AccountNumber, request: KeyRequest) -> Result<KeyClaim, Error> {
        let acc =
            self.accounts.get(account).ok_or_else(|| Error::NotFound(format!("account {account} does not exist")))?;
        let key = match request {
            KeyRequest::Email => PixKey::Email(acc.email.clone()),
            KeyRequest::Phone => PixKey::Phone(acc.phone.clone()),
            KeyRequest::Random(uuid) => PixKey::Random(uuid),
        };
        self.claim(acc, key)
    }

    /// The claim of the automatic CPF/CNPJ key of `account` (none for a joint account).
    pub fn claim_document_key(&self, account: &AccountNumber) -> Result<Option<KeyClaim>, Error> {
        let acc =
            self.accounts.get(account).ok_or_else(|| Error::NotFound(format!("account {account} does not exist")))?;
        let key = match acc.acting_document() {
            Some(Document::Cpf(cpf)) => PixKey::Cpf(cpf.clone()),
            Some(Document::Cnpj(cnpj)) => PixKey::Cnpj(cnpj.clone()),
            None => return Ok(None),
        };
        self.claim(acc, key).map(Some)
    }

    fn claim(&self, acc: &Account, key: PixKey) -> Result<KeyClaim, Error> {
        if self.key_taken(&key) {
            return Err(Error::Conflict(format!("the Pix key {} is already registered", key.normalized())));
        }
        // Registrations still in flight count too: each is a consortium-wide two-phase commit,
        // and counting only committed keys let parallel registrations pass the limit together.
        if self.keys_held_or_reserved(&acc.number) >= KEYS_PER_ACCOUNT_MAX {
            return Err(key_limit_reached());
        }
        let owner = RemoteKey {
            bank_id: self.bank_id,
            account: acc.number.clone(),
            holder_name: acc.display_name(),
            masked_document: acc.holders.iter().map(|h| h.document.masked()).collect::<Vec<_>>().join(", "),
        };
        Ok(KeyClaim { key, owner })
    }

    /// The keys `account` (of this bank) has or may soon have: committed ones plus those reserved
    /// by registrations in flight. Reservations are few (one per registration in progress), so
    /// scanning them costs less than keeping a count that a restart would have to rebuild.
    fn keys_held_or_reserved(&self, account: &AccountNumber) -> usize {
        let reserved = self
            .key_reservations
            .iter()
            .filter(|&(key, transfer)| {
                self.holds.get(transfer).is_some_and(|set| {
                    set.keys.iter().any(|c| &c.key == key && self.owns_claim(c) && &c.owner.account == account)
                })
            })
            .count();
        self.keys_of(account).len() + reserved
    }

    fn owns_claim(&self, claim: &KeyClaim) -> bool {
        claim.owner.bank_id == self.bank_id
    }

    /// Whether reserving `claims` would take an account of this bank past the key limit. The
    /// account's own bank is the one that knows its keys, so its vote enforces the limit even
    /// when several registrations were begun before any of them reserved its key.
    fn over_key_limit(&self, claims: &[KeyClaim]) -> bool {
        let mut wanted: BTreeMap<&AccountNumber, usize> = BTreeMap::new();
        for claim in claims.iter().filter(|c| self.owns_claim(c)) {
            *wanted.entry(&claim.owner.account).or_default() += 1;
        }
        wanted.into_iter().any(|(account, n)| self.keys_held_or_reserved(account) + n > KEYS_PER_ACCOUNT_MAX)
    }

    pub fn restore_holds(&mut self, transfer: TransferId, holds: HoldSet) {
        for claim in &holds.keys {
            self.key_reservations.insert(claim.key.clone(), transfer);
        }
        self.holds.insert(transfer, holds);
    }

    pub fn restore_settlement(&mut self, transfer: TransferId, settlement: Settlement) {
        self.settled.insert(transfer, settlement);
    }

    pub fn restore_next_entry_id(&mut self, next: u64) {
        self.next_entry_id = self.next_entry_id.max(next);
    }

    fn index_account(&mut self, account: Account) {
        self.by_email.insert(account.email.as_str().to_string(), account.number.clone());
        if let Some(doc) = account.acting_document() {
            self.own_account.insert(doc.clone(), account.number.clone());
        }
        for holder in &account.holders {
            self.holder_accounts.entry(holder.document.clone()).or_default().insert(account.number.clone());
        }
        self.accounts.insert(account.number.clone(), account);
    }

    // ----- accounts and keys ---------------------------------------------------------------

    /// Opens an account. Its holder's CPF/CNPJ becomes its first key when that key is free (the
    /// response warns otherwise); a joint account gets no automatic key.
    pub fn open_account(
        &mut self,
        new: NewAccount,
        now: TimestampMs,
        changes: &mut Vec<Change>,
    ) -> Result<Opened, Error> {
        new.validate()?;
        if self.by_email.contains_key(new.email.as_str()) {
            return Err(Error::Conflict(format!("an account with e-mail {} already exists at this bank", new.email)));
        }
        if new.kind != AccountKind::Joint {
            let doc = &new.holders[0].document;
            if self.own_account.contains_key(doc) {
                return Err(Error::Conflict(format!(
                    "this bank already has an {} account for {}",
                    new.kind.as_str(),
                    doc.formatted()
                )));
            }
        }
        if self.next_account_seq > AccountNumber::SEQ_MAX {
            return Err(Error::Conflict("this bank has no account numbers left".into()));
        }
        let number = AccountNumber::from_seq(self.next_account_seq);
        self.next_account_seq += 1;
        let account = Account {
            number: number.clone(),
            kind: new.kind,
            holders: new.holders,
            email: new.email,
            phone: new.phone,
            password_hash: new.password_hash,
            created_at: now,
            posted_cents: 0,
            held_cents: 0,
        };
        let auto_key = match account.acting_document() {
            Some(Document::Cpf(cpf)) => Some(PixKey::Cpf(cpf.clone())),
            Some(Document::Cnpj(cnpj)) => Some(PixKey::Cnpj(cnpj.clone())),
            None => None,
        };
        changes.push(Change::AccountOpened(Box::new(account.clone())));
        self.index_account(account.clone());
        let mut keys = Vec::new();
        let mut warnings = Vec::new();
        if let Some(key) = auto_key.filter(|_| self.direct_keys) {
            if self.key_taken(&key) {
                warnings.push(format!(
                    "the Pix key {} already belongs to another account, so this account was opened without it",
                    key.normalized()
                ));
            } else {
                self.add_key(key.clone(), &number, changes);
                keys.push(key);
            }
        }
        Ok(Opened { account, keys, warnings })
    }

    fn add_key(&mut self, key: PixKey, account: &AccountNumber, changes: &mut Vec<Change>) {
        changes.push(Change::KeyRegistered { key: key.clone(), account: account.clone() });
        self.keys.insert(key.clone(), account.clone());
        self.keys_of.entry(account.clone()).or_default().push(key);
    }

    /// Registers an extra key for `account`.
    pub fn register_key(
        &mut self,
        account: &AccountNumber,
        request: KeyRequest,
        changes: &mut Vec<Change>,
    ) -> Result<PixKey, Error> {
        let acc =
            self.accounts.get(account).ok_or_else(|| Error::NotFound(format!("account {account} does not exist")))?;
        let key = match request {
            KeyRequest::Email => PixKey::Email(acc.email.clone()),
            KeyRequest::Phone => PixKey::Phone(acc.phone.clone()),
            KeyRequest::Random(uuid) => PixKey::Random(uuid),
        };
        if self.key_taken(&key) {
            return Err(Error::Conflict(format!("the Pix key {} is already registered", key.normalized())));
        }
        if self.keys_held_or_reserved(account) >= KEYS_PER_ACCOUNT_MAX {
            return Err(key_limit_reached());
        }
        self.add_key(key.clone(), account, changes);
        Ok(key)
    }

    // ----- money ------------------------------------------------------------------------

    /// Returns the remembered outcome of `(scope, key)`, `Err` on a mismatch, `None` if new.
    fn replay(
        &self,
        scope: &AccountNumber,
        key: IdempotencyKey,
        fingerprint: Fingerprint,
    ) -> Result<Option<Outcome>, Error> {
        match self.idempotency.map.get(&(scope.clone(), key)) {
            Some(record) if record.fingerprint == fingerprint => Ok(Some(Outcome::Replayed(record.outcome))),
            Some(_) => Err(Error::IdempotencyMismatch),
            None => Ok(None),
        }
    }

    fn remember(
        &mut self,
        scope: &AccountNumber,
        key: IdempotencyKey,
        fingerprint: Fingerprint,
        outcome: &Outcome,
        changes: &mut Vec<Change>,
    ) {
        let record = IdempotencyRecord { fingerprint, outcome: outcome.reference() };
        changes.push(Change::IdempotencyRecorded { scope: scope.clone(), key, record: Box::new(record) });
        self.idempotency.insert((scope.clone(), key), record);
    }

    fn set_balance(&mut self, number: &AccountNumber, posted_cents: i64, held_cents: i64, changes: &mut Vec<Change>) {
        assert!(held_cents >= 0 && posted_cents - held_cents >= 0, "invariant: available >= 0 for {number}");
        assert!(posted_cents <= BALANCE_HARD_MAX_CENTS, "invariant: balance bound for {number}");
        let account = self.accounts.get_mut(number).expect("balance of an existing account");
        account.posted_cents = posted_cents;
        account.held_cents = held_cents;
        changes.push(Change::Balance { account: number.clone(), posted_cents, held_cents });
    }

    fn new_entry(&mut self, account: &AccountNumber, kind: EntryKind, amount: Amount, now: TimestampMs) -> Entry {
        let id = EntryId(self.next_entry_id);
        self.next_entry_id += 1;
        Entry {
            id,
            account: account.clone(),
            transfer_id: None,
            kind,
            method: None,
            amount,
            status: Status::Completed,
            counterparty: None,
            created_at: now,
            refund_of: None,
        }
    }

    fn existing(&self, number: &AccountNumber) -> Result<&Account, Error> {
        self.accounts.get(number).ok_or_else(|| Error::NotFound(format!("account {number} does not exist")))
    }

    /// Deposits into `account`.
    pub fn deposit(
        &mut self,
        account: &AccountNumber,
        amount: Amount,
        method: DepositMethod,
        idempotency: (IdempotencyKey, Fingerprint),
        now: TimestampMs,
        changes: &mut Vec<Change>,
    ) -> Result<Outcome, Error> {
        let acc = self.existing(account)?;
        if let Some(outcome) = self.replay(account, idempotency.0, idempotency.1)? {
            return Ok(outcome);
        }
        let posted = acc
            .posted_cents
            .checked_add(amount.cents())
            .filter(|&p| p <= BALANCE_MAX_CENTS)
            .ok_or_else(|| Error::invalid("this deposit would take the balance over the account limit"))?;
        let held = acc.held_cents;
        let mut entry = self.new_entry(account, EntryKind::Deposit, amount, now);
        entry.method = Some(method);
        self.set_balance(account, posted, held, changes);
        changes.push(Change::EntryAdded(Box::new(entry.clone())));
        let outcome = Outcome::Entry(entry);
        self.remember(account, idempotency.0, idempotency.1, &outcome, changes);
        Ok(outcome)
    }

    /// Withdraws from `account`; more than the available money is rejected.
    pub fn withdraw(
        &mut self,
        account: &AccountNumber,
        amount: Amount,
        idempotency: (IdempotencyKey, Fingerprint),
        now: TimestampMs,
        changes: &mut Vec<Change>,
    ) -> Result<Outcome, Error> {
        let acc = self.existing(account)?;
        if let Some(outcome) = self.replay(account, idempotency.0, idempotency.1)? {
            return Ok(outcome);
        }
        if acc.available_cents() < amount.cents() {
            return Err(Error::InsufficientFunds {
                account: account.clone(),
                available_cents: acc.available_cents(),
                requested_cents: amount.cents(),
            });
        }
        let (posted, held) = (acc.posted_cents - amount.cents(), acc.held_cents);
        let entry = self.new_entry(account, EntryKind::Withdrawal, amount, now);
        self.set_balance(account, posted, held, changes);
        changes.push(Change::EntryAdded(Box::new(entry.clone())));
        let outcome = Outcome::Entry(entry);
        self.remember(account, idempotency.0, idempotency.1, &outcome, changes);
        Ok(outcome)
    }

    /// Plans a transfer whose legs may touch other banks (`members` lists the consortium). A
    /// transfer whose legs all touch this bank runs at once, exactly as [`Ledger::transfer`].
    /// Otherwise it is validated here — as far as this bank can: its own sources and destinations,
    /// that the other banks are members, that a joint account's session spends nothing elsewhere
    /// — then recorded as `pending` (and remembered under its idempotency key), and returned with
    /// its legs per bank for the coordinator. The other banks check their own accounts when
    /// they vote.
    pub fn plan_transfer(
        &mut self,
        request: TransferRequest,
        members: &BTreeSet<BankId>,
        changes: &mut Vec<Change>,
    ) -> Result<Plan, Error> {
        self.plan_transfer_as(request, None, members, changes)
    }

    /// [`Ledger::plan_transfer`], for a transfer that may be the refund of a Pix leg.
    fn plan_transfer_as(
        &mut self,
        request: TransferRequest,
        refund_of: Option<RefundOf>,
        members: &BTreeSet<BankId>,
        changes: &mut Vec<Change>,
    ) -> Result<Plan, Error> {
        let actor = self
            .accounts
            .get(&request.actor)
            .ok_or_else(|| Error::Unauthorized("the signed-in account no longer exists".into()))?;
        if let Some(outcome) = self.replay(&request.actor, request.idempotency_key, request.fingerprint)? {
            return Ok(Plan::Done(outcome));
        }
        let here = self.bank_id;
        let local = request.legs.iter().all(|leg| {
            leg.from.as_ref().is_none_or(|r| r.bank_id == here)
                && match &leg.to {
                    Destination::Key(key) => self.keys.contains_key(key) || !self.remote_keys.contains_key(key),
                    Destination::Account(r) => r.bank_id == here,
                }
        });
        if local {
            return self.transfer_as(request, refund_of, changes).map(Plan::Done);
        }
        if request.legs.is_empty() || request.legs.len() > LEGS_MAX {
            return Err(Error::invalid(format!("a transfer has between 1 and {LEGS_MAX} legs")));
        }
        let description = clean_description(request.description.as_deref())?;
        let customer = actor.acting_document().cloned();
        let mut legs = Vec::with_capacity(request.legs.len());
        let mut per_bank: LegsByBank = BTreeMap::new();
        for (i, leg) in request.legs.iter().enumerate() {
            let n = i + 1;
            let (from, from_name) = self.plan_source(actor, customer.as_ref(), leg, n, members)?;
            let mut to = self.plan_destination(&leg.to, n, members)?;
            if let Some(original) = refund_of.and_then(|r| self.refundable.get(&r)) {
                // A refund goes to an account at another bank: its holder is the original payer.
                to.holder_name.clone_from(&original.payer_name);
            }
            if to.bank_id == from.bank_id && to.number == from.number {
                return Err(Error::invalid(format!("leg {n}: the destination is the source account itself")));
            }
            let debited = per_bank.entry(from.bank_id).or_default();
            debited.debits.push((from.number.clone(), leg.amount));
            // Whose money: the signed-in customer's document. A joint account's session (no
            // document of its own) spends only that account, here, already checked above.
            debited.on_behalf_of = customer.clone().or_else(|| actor.holders.first().map(|h| h.document.clone()));
            per_bank.entry(to.bank_id).or_default().credits.push((to.number.clone(), leg.amount));
            let leg = TransferLeg { from, from_name, to, amount: leg.amount, status: Status::Pending };
            let pix = self.pix_leg(request.transfer_id, i, &leg, customer.as_ref(), request.now, refund_of);
            per_bank.entry(leg.from.bank_id).or_default().pix.push(pix.clone());
            if leg.to.bank_id != leg.from.bank_id {
                per_bank.entry(leg.to.bank_id).or_default().pix.push(pix);
            }
            legs.push(leg);
        }
        let transfer = Transfer {
            id: request.transfer_id,
            status: Status::Pending,
            legs,
            failure: None,
            description,
            actor: request.actor.clone(),
            created_at: request.now,
            refund_of,
        };
        changes.push(Change::TransferRecorded(Box::new(transfer.clone())));
        let outcome = Outcome::Transfer(transfer.clone());
        self.remember(&request.actor, request.idempotency_key, request.fingerprint, &outcome, changes);
        Ok(Plan::CrossBank { transfer, legs: per_bank })
    }

    /// The source of leg `n` of a cross-bank transfer, and whose name it shows: an account here
    /// the actor may spend, or one at another member bank (then the actor must act as a person
    /// or company; that bank checks the holder when it votes).
    fn plan_source(
        &self,
        actor: &Account,
        customer: Option<&Document>,
        leg: &LegRequest,
        n: usize,
        members: &BTreeSet<BankId>,
    ) -> Result<(AccountRef, String), Error> {
        let here = self.bank_id;
        let from = match &leg.from {
            None => AccountRef { bank_id: here, number: actor.number.clone() },
            Some(r) => r.clone(),
        };
        let from_name = if from.bank_id == here {
            match self.accounts.get(&from.number) {
                Some(source) if actor.may_spend(source) => source.display_name(),
                _ => return Err(Error::Forbidden(format!("leg {n}: you may not spend from account {}", from.number))),
            }
        } else if !members.contains(&from.bank_id) {
            return Err(Error::NotFound(format!("leg {n}: bank {} is not a member of this consortium", from.bank_id)));
        } else if customer.is_none() {
            return Err(Error::Forbidden(format!(
                "leg {n}: a joint account's session spends only that account, not accounts at bank {}",
                from.bank_id
            )));
        } else {
            actor.display_name()
        };
        Ok((from, from_name))
    }

    /// The destination of leg `n` of a cross-bank transfer: a key (from this bank's directory),
    /// an account here, or an account at another member (checked there).
    fn plan_destination(&self, to: &Destination, n: usize, members: &BTreeSet<BankId>) -> Result<LegEnd, Error> {
        let here = self.bank_id;
        Ok(match to {
            Destination::Key(key) => match (self.keys.get(key), self.remote_keys.get(key)) {
                (Some(owner), _) => LegEnd {
                    bank_id: here,
                    number: owner.clone(),
                    key: Some(key.clone()),
                    holder_name: self.accounts[owner].display_name(),
                },
                (None, Some(remote)) => LegEnd {
                    bank_id: remote.bank_id,
                    number: remote.account.clone(),
                    key: Some(key.clone()),
                    holder_name: remote.holder_name.clone(),
                },
                (None, None) => return Err(Error::UnknownKey(key.normalized())),
            },
            Destination::Account(r) if r.bank_id == here => match self.accounts.get(&r.number) {
                Some(receiver) => {
                    LegEnd { bank_id: here, number: r.number.clone(), key: None, holder_name: receiver.display_name() }
                }
                None => return Err(Error::NotFound(format!("leg {n}: account {} does not exist", r.number))),
            },
            Destination::Account(r) if !members.contains(&r.bank_id) => {
                return Err(Error::NotFound(format!("leg {n}: bank {} is not a member of this consortium", r.bank_id)));
            }
            Destination::Account(r) => {
                LegEnd { bank_id: r.bank_id, number: r.number.clone(), key: None, holder_name: String::new() }
            }
        })
    }

    /// Runs a transfer whose legs all touch this bank. Invalid requests are rejected; a valid one
    /// executes: every leg is posted, or — when a source lacks the money — it is recorded as
    /// failed with `insufficient_funds` and nothing moves.
    pub fn transfer(&mut self, request: TransferRequest, changes: &mut Vec<Change>) -> Result<Outcome, Error> {
        self.transfer_as(request, None, changes)
    }

    /// [`Ledger::transfer`], for a transfer that may be the refund of a Pix leg.
    fn transfer_as(
        &mut self,
        request: TransferRequest,
        refund_of: Option<RefundOf>,
        changes: &mut Vec<Change>,
    ) -> Result<Outcome, Error> {
        let actor = self
            .accounts
            .get(&request.actor)
            .ok_or_else(|| Error::Unauthorized("the signed-in account no longer exists".into()))?;
        if let Some(outcome) = self.replay(&request.actor, request.idempotency_key, request.fingerprint)? {
            return Ok(outcome);
        }
        if request.legs.is_empty() || request.legs.len() > LEGS_MAX {
            return Err(Error::invalid(format!("a transfer has between 1 and {LEGS_MAX} legs")));
        }
        let description = clean_description(request.description.as_deref())?;
        // Resolve and check every leg, then the money, before touching anything.
        let mut legs = Vec::with_capacity(request.legs.len());
        for (i, leg) in request.legs.iter().enumerate() {
            legs.push(self.resolve_local_leg(actor, leg, i + 1)?);
        }
        let (shortfall, finals) = self.local_balances(&legs)?;
        let (status, failure) = match &shortfall {
            None => (Status::Completed, None),
            Some((number, available, requested)) => (
                Status::Failed,
                Some(Failure {
                    code: ErrorCode::InsufficientFunds,
                    detail: format!(
                        "account {number} has {} available; the transfer needs {}",
                        crate::money::format_brl(*available),
                        crate::money::format_brl(*requested)
                    ),
                }),
            ),
        };
        for leg in &mut legs {
            leg.status = status;
        }
        let transfer = Transfer {
            id: request.transfer_id,
            status,
            legs,
            failure,
            description,
            actor: request.actor.clone(),
            created_at: request.now,
            refund_of,
        };
        self.record_local_transfer(&transfer, &finals, changes);
        let outcome = Outcome::Transfer(transfer);
        self.remember(&request.actor, request.idempotency_key, request.fingerprint, &outcome, changes);
        Ok(outcome)
    }

    /// Leg `n` of an in-bank transfer, resolved and checked: a source the actor may spend, an
    /// existing destination (by account or by a key of this bank), not the source itself.
    fn resolve_local_leg(&self, actor: &Account, leg: &LegRequest, n: usize) -> Result<TransferLeg, Error> {
        let not_member =
            |bank: BankId| Error::NotFound(format!("leg {n}: bank {bank} is not a member of this consortium"));
        let from = match &leg.from {
            None => actor.number.clone(),
            Some(r) if r.bank_id != self.bank_id => return Err(not_member(r.bank_id)),
            Some(r) => r.number.clone(),
        };
        let source = match self.accounts.get(&from) {
            Some(source) if actor.may_spend(source) => source,
            _ => return Err(Error::Forbidden(format!("leg {n}: you may not spend from account {from}"))),
        };
        let (to, key) = match &leg.to {
            Destination::Key(key) => match self.keys.get(key) {
                Some(owner) => (owner.clone(), Some(key.clone())),
                None => return Err(Error::UnknownKey(key.normalized())),
            },
            Destination::Account(r) if r.bank_id != self.bank_id => return Err(not_member(r.bank_id)),
            Destination::Account(r) => match self.accounts.get(&r.number) {
                Some(_) => (r.number.clone(), None),
                None => return Err(Error::NotFound(format!("leg {n}: account {} does not exist", r.number))),
            },
        };
        if to == from {
            return Err(Error::invalid(format!("leg {n}: the destination is the source account itself")));
        }
        let receiver = &self.accounts[&to];
        Ok(TransferLeg {
            from: AccountRef { bank_id: self.bank_id, number: from },
            from_name: source.display_name(),
            to: LegEnd { bank_id: self.bank_id, number: to, key, holder_name: receiver.display_name() },
            amount: leg.amount,
            status: Status::Completed,
        })
    }

    /// The money of an in-bank transfer: the first source short of the sum of its debits
    /// (`(account, available, needed)`), or else every account's final posted balance, checked,
    /// in a scratch map (nothing is mutated until all is known good).
    #[allow(clippy::type_complexity)]
    fn local_balances(
        &self,
        legs: &[TransferLeg],
    ) -> Result<(Option<(AccountNumber, i64, i64)>, BTreeMap<AccountNumber, i64>), Error> {
        let mut debits: BTreeMap<&AccountNumber, i64> = BTreeMap::new();
        for leg in legs {
            *debits.entry(&leg.from.number).or_default() += leg.amount.cents();
        }
        let shortfall = debits.iter().find_map(|(number, &sum)| {
            let available = self.accounts[*number].available_cents();
            (available < sum).then(|| ((*number).clone(), available, sum))
        });
        let mut finals: BTreeMap<AccountNumber, i64> = BTreeMap::new();
        if shortfall.is_some() {
            return Ok((shortfall, finals));
        }
        for leg in legs {
            let from_posted =
                *finals.entry(leg.from.number.clone()).or_insert(self.accounts[&leg.from.number].posted_cents);
            finals.insert(leg.from.number.clone(), from_posted - leg.amount.cents());
            let to_posted = *finals.entry(leg.to.number.clone()).or_insert(self.accounts[&leg.to.number].posted_cents);
            let credited = to_posted
                .checked_add(leg.amount.cents())
                .filter(|&p| p <= BALANCE_MAX_CENTS)
                .ok_or_else(|| Error::invalid(format!("account {} cannot receive this much money", leg.to.number)))?;
            finals.insert(leg.to.number.clone(), credited);
        }
        Ok((None, finals))
    }

    /// Applies an in-bank transfer: final balances, its record, and its statement lines (a
    /// failed transfer still leaves its outgoing lines, marked failed).
    fn record_local_transfer(
        &mut self,
        transfer: &Transfer,
        finals: &BTreeMap<AccountNumber, i64>,
        changes: &mut Vec<Change>,
    ) {
        for (number, posted) in finals {
            let held = self.accounts[number].held_cents;
            self.set_balance(number, *posted, held, changes);
        }
        changes.push(Change::TransferRecorded(Box::new(transfer.clone())));
        let (out_kind, in_kind) = Self::entry_kinds(transfer.refund_of.as_ref());
        let refund_of = transfer.refund_of.map(|r| r.transfer_id);
        for (i, leg) in transfer.legs.iter().enumerate() {
            let (from, to, amount) = (&leg.from.number, &leg.to, leg.amount);
            let mut out = self.new_entry(from, out_kind, amount, transfer.created_at);
            out.transfer_id = Some(transfer.id);
            out.status = transfer.status;
            out.counterparty = Some(self.counterparty(&to.holder_name, to.bank_id));
            out.refund_of = refund_of;
            changes.push(Change::EntryAdded(Box::new(out)));
            if transfer.status == Status::Completed {
                let mut inbound = self.new_entry(&to.number, in_kind, amount, transfer.created_at);
                inbound.transfer_id = Some(transfer.id);
                inbound.counterparty = Some(self.counterparty(&leg.from_name, leg.from.bank_id));
                inbound.refund_of = refund_of;
                changes.push(Change::EntryAdded(Box::new(inbound)));
                let pix = self.pix_leg(transfer.id, i, leg, None, transfer.created_at, transfer.refund_of);
                self.record_pix_leg(pix, changes);
            }
        }
    }

    /// The statement lines of a cross-bank transfer that failed, at its coordinating bank: one
    /// failed line per leg whose source is here — or, when every source is elsewhere, one per leg
    /// on the submitting account, so the customer still sees the attempt. Nothing moves.
    pub fn record_failed_lines(&mut self, transfer: &Transfer, changes: &mut Vec<Change>) {
        let here = self.bank_id;
        let local: Vec<&TransferLeg> = transfer.legs.iter().filter(|l| l.from.bank_id == here).collect();
        let legs: Vec<&TransferLeg> = if local.is_empty() { transfer.legs.iter().collect() } else { local };
        for leg in legs {
            let account = if leg.from.bank_id == here { leg.from.number.clone() } else { transfer.actor.clone() };
            if !self.accounts.contains_key(&account) {
                continue;
            }
            let kind = Self::entry_kinds(transfer.refund_of.as_ref()).0;
            let mut line = self.new_entry(&account, kind, leg.amount, transfer.created_at);
            line.transfer_id = Some(transfer.id);
            line.status = Status::Failed;
            line.counterparty = Some(self.counterparty(&leg.to.holder_name, leg.to.bank_id));
            line.refund_of = transfer.refund_of.map(|r| r.transfer_id);
            changes.push(Change::EntryAdded(Box::new(line)));
        }
    }

    // ----- holds (the participant's side of two-phase commit) -----------------------------

    /// Places a transaction's holds: debits reserve money (`held += amount`), credits wait.
    /// Succeeds only when every debit fits the available money; refuses otherwise, changing
    /// nothing but remembering the transaction as released, so a repeat gets the same answer. A
    /// repeat after a success succeeds again without placing anything twice; a transaction
    /// already settled is refused. The set is stored as given (`placed_at` is
    /// the caller's `now`).
    pub fn place_holds(
        &mut self,
        transfer: TransferId,
        set: HoldSet,
        changes: &mut Vec<Change>,
    ) -> Result<(), Refusal> {
        if self.holds.contains_key(&transfer) {
            return Ok(());
        }
        if let Some(settlement) = self.settled.get(&transfer) {
            // Said in the protocol's words: the peer that asked reads them.
            let decided = match settlement {
                Settlement::Posted => "Committed",
                Settlement::Released => "Aborted",
            };
            let detail = format!("transaction {transfer} is already {decided}");
            return Err(Refusal::new(ErrorCode::AlreadyDecided, detail));
        }
        let refuse = |ledger: &mut Ledger, changes: &mut Vec<Change>, code: ErrorCode, detail: String| {
            ledger.settled.insert(transfer, Settlement::Released);
            changes.push(Change::Settled { transfer, settlement: Settlement::Released });
            Err(Refusal::new(code, detail))
        };
        let mut sums: BTreeMap<&AccountNumber, i64> = BTreeMap::new();
        for (number, amount) in &set.debits {
            *sums.entry(number).or_default() += amount.cents();
        }
        for (number, _) in set.debits.iter().chain(&set.credits) {
            if !self.accounts.contains_key(number) {
                return refuse(self, changes, ErrorCode::NotFound, format!("account {number} does not exist"));
            }
        }
        for (number, &sum) in &sums {
            let available = self.accounts[*number].available_cents();
            if available < sum {
                return refuse(
                    self,
                    changes,
                    ErrorCode::InsufficientFunds,
                    format!("account {number} has {available} centavos available, {sum} needed"),
                );
            }
        }
        for claim in &set.keys {
            if self.key_taken(&claim.key) {
                let detail =
                    format!("the Pix key {} is already registered or being registered", claim.key.normalized());
                return refuse(self, changes, ErrorCode::Conflict, detail);
            }
            if claim.owner.bank_id == self.bank_id && !self.accounts.contains_key(&claim.owner.account) {
                let detail = format!("account {} does not exist", claim.owner.account);
                return refuse(self, changes, ErrorCode::NotFound, detail);
            }
        }
        if self.over_key_limit(&set.keys) {
            return refuse(self, changes, ErrorCode::Conflict, key_limit_reached().to_string());
        }
        for claim in &set.keys {
            self.key_reservations.insert(claim.key.clone(), transfer);
        }
        for (number, &sum) in &sums {
            let acc = &self.accounts[*number];
            let (posted, held) = (acc.posted_cents, acc.held_cents + sum);
            self.set_balance(&(*number).clone(), posted, held, changes);
        }
        changes.push(Change::HoldsPlaced { transfer, holds: Box::new(set.clone()) });
        self.holds.insert(transfer, set);
        Ok(())
    }

    /// Posts a transaction's holds (commit): debits leave, credits arrive. Idempotent. Committing
    /// a transaction this bank never voted yes on, or already aborted, is a protocol violation.
    pub fn post_holds(&mut self, transfer: TransferId, changes: &mut Vec<Change>) -> Result<(), Error> {
        match self.settled.get(&transfer) {
            Some(Settlement::Posted) => return Ok(()),
            Some(Settlement::Released) => {
                return Err(Error::Conflict(format!("transaction {transfer} was aborted here")));
            }
            None => {}
        }
        let Some(set) = self.holds.get(&transfer).cloned() else {
            return Err(Error::Conflict(format!("transaction {transfer} holds nothing here")));
        };
        // Compute every final balance before mutating. Credits are posted whole (never cut off).
        let mut finals: BTreeMap<AccountNumber, (i64, i64)> = BTreeMap::new();
        for (number, amount) in &set.debits {
            let acc = &self.accounts[number];
            let e = finals.entry(number.clone()).or_insert((acc.posted_cents, acc.held_cents));
            e.0 -= amount.cents();
            e.1 -= amount.cents();
        }
        for (number, amount) in &set.credits {
            let acc = &self.accounts[number];
            let e = finals.entry(number.clone()).or_insert((acc.posted_cents, acc.held_cents));
            e.0 = e.0.checked_add(amount.cents()).expect("a balance stays far below i64::MAX");
        }
        for (number, (posted, held)) in finals {
            self.set_balance(&number, posted, held, changes);
        }
        self.record_posted_lines(transfer, &set, changes);
        for claim in &set.keys {
            self.key_reservations.remove(&claim.key);
            if claim.owner.bank_id == self.bank_id {
                self.add_key(claim.key.clone(), &claim.owner.account, changes);
            } else {
                changes.push(Change::RemoteKeyRegistered { key: claim.key.clone(), owner: claim.owner.clone() });
                self.remote_keys.insert(claim.key.clone(), claim.owner.clone());
            }
        }
        self.holds.remove(&transfer);
        self.settled.insert(transfer, Settlement::Posted);
        changes.push(Change::Settled { transfer, settlement: Settlement::Posted });
        Ok(())
    }

    /// Releases a transaction's holds (abort). Idempotent; releasing an unknown transaction
    /// remembers it as aborted, so a prepare arriving later places nothing (presumed abort).
    pub fn release_holds(&mut self, transfer: TransferId, changes: &mut Vec<Change>) -> Result<(), Error> {
        match self.settled.get(&transfer) {
            Some(Settlement::Released) => return Ok(()),
            Some(Settlement::Posted) => {
                return Err(Error::Conflict(format!("transaction {transfer} was committed here")));
            }
            None => {}
        }
        if let Some(set) = self.holds.remove(&transfer) {
            for claim in &set.keys {
                self.key_reservations.remove(&claim.key);
            }
            let mut sums: BTreeMap<AccountNumber, i64> = BTreeMap::new();
            for (number, amount) in &set.debits {
                *sums.entry(number.clone()).or_default() += amount.cents();
            }
            for (number, sum) in sums {
                let acc = &self.accounts[&number];
                let (posted, held) = (acc.posted_cents, acc.held_cents - sum);
                self.set_balance(&number, posted, held, changes);
            }
        }
        self.settled.insert(transfer, Settlement::Released);
        changes.push(Change::Settled { transfer, settlement: Settlement::Released });
        Ok(())
    }

    /// Checks the ledger's internal invariants; panics (a bug) if one is broken.
    pub fn assert_invariants(&self) {
        let mut held: HashMap<&AccountNumber, i64> = HashMap::new();
        for set in self.holds.values() {
            for (number, amount) in &set.debits {
                *held.entry(number).or_default() += amount.cents();
            }
        }
        for acc in self.accounts.values() {
            assert!(acc.held_cents >= 0, "negative held on {}", acc.number);
            assert!(acc.available_cents() >= 0, "negative available on {}", acc.number);
            assert!(acc.posted_cents <= BALANCE_HARD_MAX_CENTS, "balance over bound on {}", acc.number);
            assert_eq!(
                acc.held_cents,
                held.get(&acc.number).copied().unwrap_or(0),
                "held of {} differs from its holds",
                acc.number
            );
        }
        for (key, owner) in &self.keys {
            assert!(self.accounts.contains_key(owner), "key {key} names a missing account");
        }
        self.assert_refund_invariants();
    }

    /// The key type a [`KeyRequest`] produces, for messages.
    pub fn key_type_of(request: KeyRequest) -> KeyType {
        match request {
            KeyRequest::Email => KeyType::Email,
            KeyRequest::Phone => KeyType::Phone,
            KeyRequest::Random(_) => KeyType::Random,
        }
    }
}
