//! A customer's operations, each written once, shared by the JSON API (`api`), the web pages
//! (`web`) and the inter-bank routes (`interbank`): the same core calls, reads and waits behind
//! all of them, so a page never does what the API would refuse. Callers parse input and shape
//! the answer; this module returns domain values and a [`ServiceError`].
//!
//! It may import `driver`, `peer`, `storage`, `auth`, `metrics`, `config` and the core; nothing
//! above it (`api`, `web`, `interbank`, `app`).

mod consortium;
mod customer;
mod refund;
mod transfer;

pub use consortium::{
    ConsortiumAccounts, ConsortiumStatus, HeldAccountView, KeyOwner, MemberState, MemberStatus, Membership, PeerClock,
    RingStatus, bank_name, consortium_accounts, consortium_status, lookup_key,
};
pub use customer::{
    DocumentKey, OpenedAccount, SignedIn, account, accounts_of_document, deposit, open_account, open_session, sign_in,
    sign_out, statement, visible_accounts, withdraw,
};
pub use refund::{
    Party, Receipt, RefundAsk, RefundRef, end_to_end_ids, institution_code, leg_end_to_end_id, original_end_to_end_id,
    receipt, refund, transfer_view,
};
pub use transfer::{TransferAnswer, register_consortium_key, register_key, transfer, transfer_of};

use std::sync::Arc;

use bank_core::Error;
use bank_core::ids::BankId;

use crate::auth::SessionCache;
use crate::config::Limits;
use crate::metrics::Metrics;
use crate::storage::StorageError;
use crate::storage::read::ReadPool;
use crate::storage::writer::WriterHandle;

/// One bank's services and what they share: every handler (API, pages, inter-bank) holds an
/// `Arc<Bank>` and calls the operations below.
#[derive(Debug)]
pub struct Bank {
    pub bank_id: BankId,
    pub bank_name: String,
    pub public_url: String,
    pub writer: WriterHandle,
    pub reads: ReadPool,
    pub sessions: SessionCache,
    pub hashers: crate::auth::HasherPool,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// The consortium link (verifier and peer client); `None` for a bank running alone.
    pub interbank: Option<Arc<crate::peer::Interbank>>,
    pub driver: crate::driver::Driver,
    /// The coordination mode this bank runs (a bank alone reports its configured mode).
    pub coordination_mode: crate::config::CoordinationMode,
    /// The token ring as the writer last published it; `None` unless in `token-ring` mode.
    pub ring: Option<Arc<crate::storage::ring::RingView>>,
    /// Whether the operator's fault switch route is enabled.
    pub fault_switch: bool,
    /// Whether the seed-compatible API (unauthenticated, `crate::seed`) is served.
    pub seed_compat: bool,
}

/// Why an operation did not happen: a refusal of the core (the client's to fix, or retryable),
/// or an internal failure (logged, answered opaquely).
#[derive(Debug)]
pub enum ServiceError {
    Core(Error),
    Internal(String),
}

impl From<Error> for ServiceError {
    fn from(e: Error) -> Self {
        ServiceError::Core(e)
    }
}

impl From<StorageError> for ServiceError {
    fn from(e: StorageError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Core(e) => e.fmt(f),
            ServiceError::Internal(cause) => write!(f, "internal error: {cause}"),
        }
    }
}

pub type OpResult<T> = Result<T, ServiceError>;

/// The signed-in account vanished (it cannot, today; a stale session must not crash a handler).
fn gone() -> ServiceError {
    ServiceError::Core(Error::Unauthorized("the signed-in account no longer exists".into()))
}
