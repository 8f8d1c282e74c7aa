//! What a torture run records: every client operation with its invocation and completion times
//! and what the client learned ([`Op`]), and the banks' final state read by the operator
//! ([`FinalState`]). Plain data, so the checker ([`super::check`]) is pure and its tests feed it
//! hand-made histories.

use serde::Serialize;
use std::collections::BTreeMap;

/// Most operations one run records (a 2-minute run of 5 banks records a few tens of thousands);
/// past it the workers stop invoking new operations.
pub const OPS_MAX: usize = 2_000_000;

/// An account anywhere in the consortium: (bank id, account number).
pub type AccountKey = (u32, String);

/// One leg of a transfer as the client asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegSpec {
    pub from: AccountKey,
    pub to: AccountKey,
    pub cents: i64,
}

/// What kind of transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferClass {
    /// One leg between two banks.
    Pix,
    /// One leg inside one bank.
    InBank,
    /// Several legs from one customer's accounts at several banks.
    Packet,
}

/// What the client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OpKind {
    Deposit {
        account: AccountKey,
        cents: i64,
    },
    Withdraw {
        account: AccountKey,
        cents: i64,
    },
    /// `coordinator` is the bank the request was sent to.
    Transfer {
        class: TransferClass,
        coordinator: u32,
        legs: Vec<LegSpec>,
    },
    ReadBalance {
        account: AccountKey,
    },
    Statement {
        account: AccountKey,
    },
    /// A random Pix key for `account`, registered at its bank.
    RegisterKey {
        account: AccountKey,
    },
    /// A lookup at bank `at` of a key the client saw registered for `owner`.
    LookupKey {
        at: u32,
        key: String,
        owner: AccountKey,
    },
}

impl OpKind {
    /// A short name for the report's tables.
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Deposit { .. } => "deposit",
            OpKind::Withdraw { .. } => "withdraw",
            OpKind::Transfer { class: TransferClass::Pix, .. } => "pix",
            OpKind::Transfer { class: TransferClass::InBank, .. } => "in_bank",
            OpKind::Transfer { class: TransferClass::Packet, .. } => "packet",
            OpKind::ReadBalance { .. } => "read_balance",
            OpKind::Statement { .. } => "statement",
            OpKind::RegisterKey { .. } => "register_key",
            OpKind::LookupKey { .. } => "lookup_key",
        }
    }

    /// Whether it may move money.
    pub fn moves_money(&self) -> bool {
        matches!(self, OpKind::Deposit { .. } | OpKind::Withdraw { .. } | OpKind::Transfer { .. })
    }

    /// The banks a transfer touches (its coordinator and every leg's banks).
    pub fn banks(&self) -> Vec<u32> {
        let mut banks = match self {
            OpKind::Transfer { coordinator, legs, .. } => {
                let mut b = vec![*coordinator];
                b.extend(legs.iter().flat_map(|l| [l.from.0, l.to.0]));
                b
            }
            OpKind::Deposit { account, .. }
            | OpKind::Withdraw { account, .. }
            | OpKind::ReadBalance { account }
            | OpKind::Statement { account }
            | OpKind::RegisterKey { account } => vec![account.0],
            OpKind::LookupKey { at, .. } => vec![*at],
        };
        banks.sort_unstable();
        banks.dedup();
        banks
    }
}

/// A transfer's status as the bank answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    Completed,
    Failed,
    Pending,
}

/// What the client learned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The transfer executed: its id and status (and failure code when failed).
    Transfer {
        id: String,
        status: TransferStatus,
        failure: Option<String>,
    },
    /// A deposit or withdrawal executed; `completed` is its entry's status.
    Entry {
        completed: bool,
    },
    Balance {
        posted: i64,
        held: i64,
        available: i64,
    },
    Statement {
        entries: usize,
    },
    /// A key was registered.
    Key {
        key: String,
    },
    /// A lookup named the key's bank.
    KeyOwner {
        bank: u32,
    },
    /// The bank answered with a problem: the request was rejected and changed nothing.
    Rejected {
        code: String,
    },
    /// No answer (timeout, connection refused or lost): it may or may not have executed.
    Unknown {
        reason: String,
    },
}

impl Outcome {
    /// The short name of the outcome for the report: ok / failed / unknown (pending counts as
    /// unknown: the client does not know yet).
    pub fn class(&self) -> &'static str {
        match self {
            Outcome::Transfer { status: TransferStatus::Completed, .. }
            | Outcome::Entry { completed: true }
            | Outcome::Balance { .. }
            | Outcome::Statement { .. }
            | Outcome::Key { .. }
            | Outcome::KeyOwner { .. } => "ok",
            Outcome::Transfer { status: TransferStatus::Failed, .. } | Outcome::Entry { completed: false } => "failed",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Transfer { status: TransferStatus::Pending, .. } | Outcome::Unknown { .. } => "unknown",
        }
    }
}

/// One operation of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Op {
    pub index: usize,
    /// The client (worker) that ran it.
    pub worker: usize,
    #[serde(flatten)]
    pub kind: OpKind,
    /// Milliseconds since the start of the run.
    pub invoked_ms: u64,
    pub completed_ms: u64,
    pub outcome: Outcome,
    /// For an unknown or pending money movement: what the same request (same idempotency key)
    /// answered after the heal, or the transfer's final status.
    pub resolved: Option<Outcome>,
}

impl Op {
    /// What is finally known of it: the resolution when there is one.
    pub fn effective(&self) -> &Outcome {
        self.resolved.as_ref().unwrap_or(&self.outcome)
    }
}

/// One bank's final state, as the operator's audit read it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FinalBank {
    pub id: u32,
    /// Account number → (posted, held), in centavos.
    pub accounts: BTreeMap<String, (i64, i64)>,
    /// Transfer id → committed (true) or aborted (false).
    pub decisions: BTreeMap<String, bool>,
    /// Transfers it still holds money for.
    pub holds: Vec<String>,
    pub deposits_cents: i64,
    pub withdrawals_cents: i64,
    /// Its Pix key directory: key → the owner account.
    pub keys: BTreeMap<String, AccountKey>,
}

/// Every bank's final state and the audit's verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FinalState {
    pub banks: BTreeMap<u32, FinalBank>,
    /// Problems `bank audit` reported (violations, or why it could not conclude).
    pub audit_problems: Vec<String>,
    /// Each bank's ring visits, from its visit log (oldest first).
    pub visits: BTreeMap<u32, Vec<Visit>>,
}

/// One visit of the token to a bank: its position `(epoch, hop)` and when it began and ended
/// (Unix ms; `end_ms` 0 when the log has no end for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Visit {
    pub epoch: u64,
    pub hop: u64,
    pub start_ms: u64,
    pub end_ms: u64,
}
