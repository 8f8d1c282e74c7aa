//! Node configuration: identity, address, data directory and every limit, with defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use bank_core::ids::BankId;

use crate::consortium::Consortium;
pub use crate::storage::ring::{CoordinationMode, RingOptions};

/// Settings of one bank node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub bank_id: BankId,
    pub name: String,
    /// Address to bind; port 0 picks a free port (see [`crate::Node::local_addr`]).
    pub listen: SocketAddr,
    /// Directory holding the ledger database; created if missing, reused if present.
    pub data_dir: PathBuf,
    pub limits: Limits,
    /// The consortium this bank belongs to; `None` runs it alone (a consortium of one) that
    /// refuses every inter-bank request.
    pub consortium: Option<Consortium>,
    /// How cross-bank work is ordered: the token ring (default) or no gate.
    pub coordination: CoordinationMode,
    /// The token ring's settings (the same at every bank of a consortium).
    pub ring: RingOptions,
    /// Enables the operator's fault switch (`POST /interbank/v1/fault`), which cuts this bank off
    /// from its peers without stopping it: for tests and demonstrations only.
    pub fault_switch: bool,
    /// Serves the seed-compatible API (`crate::seed`): the original system's unauthenticated
    /// routes, for its clients. Off by default; see [`SEED_COMPAT_WARNING`].
    pub seed_compat: bool,
}

/// What the log, the status route and the consortium page say while the seed-compatible API is
/// on: its protocol has no authentication, and cannot have any.
/// Finished decisions (and, apart, settlements and received Pix legs) memory keeps at most: about
/// 64k of each, a few tens of MiB at most however busy the bank; older ones are read back from
/// disk when a message or a refund names them.
pub const DECISION_MEMORY_MAX_DEFAULT: usize = 65_536;

pub const SEED_COMPAT_WARNING: &str = "SEED-COMPATIBLE API ON: /operations, /account/data and the other routes of the \
    original system have no authentication - anyone who can reach this bank can read any account and move anyone's \
    money. For demonstrations on trusted networks only (docs/seed-compat.md)";

impl NodeConfig {
    pub fn new(bank_id: u32, name: impl Into<String>, listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        NodeConfig {
            bank_id: BankId(bank_id),
            name: name.into(),
            listen,
            data_dir: data_dir.into(),
            limits: Limits::default(),
            consortium: None,
            coordination: CoordinationMode::default(),
            ring: RingOptions::default(),
            fault_switch: false,
            seed_compat: false,
        }
    }
}

/// Every bound the node enforces. Overload answers 503 `overloaded`; it never grows memory.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted, in bytes.
    pub body_bytes_max: usize,
    /// A request taking longer than this is answered 503.
    pub request_timeout_ms: u64,
    /// Requests served at once; more are shed with 503 `overloaded`.
    pub in_flight_max: usize,
    /// Commands waiting for the ledger writer; more are shed with 503 `overloaded`.
    pub writer_queue_len_max: usize,
    /// Commands committed together in one SQLite transaction (one fsync).
    pub batch_len_max: usize,
    /// Read-only SQLite connections kept for statements and lookups.
    pub read_connections_max: usize,
    /// How long a coordinator waits for the votes of a cross-bank transaction before aborting.
    pub prepare_expiry_ms: i64,
    /// How long the decisions of finished cross-bank transactions stay in memory (coordinator
    /// and participant); older ones are read back from storage when a message names them, so
    /// this bounds memory, never what the bank answers.
    pub decision_memory_ms: i64,
    /// The most finished decisions memory keeps within that window — and, apart, the most
    /// settlements and received Pix legs (the newest): a busy window is bounded too. Older ones
    /// are read back the same way.
    pub decision_memory_max: usize,
    /// How long an idempotency key is remembered (API.md: at least 24 h); older records are
    /// deleted in the background, after which the same key is a new request.
    pub idempotency_retention_ms: i64,
    /// Idempotency records kept in memory (the most recent); older ones are read from disk.
    pub idempotency_cache_max: usize,
    /// How long a customer's transfer request waits for the outcome; past it the answer is
    /// `pending` (API.md: 5 s).
    pub transfer_deadline_ms: u64,
    /// Lifetime of a session token.
    /// Live sessions one account may have; a new sign-in past it ends the account's oldest.
    pub sessions_per_account_max: usize,
    pub session_ttl_s: u64,
    /// Threads hashing passwords (Argon2id, 19 MiB each): bounds CPU and memory of sign-ins.
    pub password_hashers: usize,
    /// Sign-ins and sign-ups waiting for a hasher; more are shed with 503 `overloaded`.
    pub password_queue_len_max: usize,
    /// Time to open a connection to a peer bank.
    pub peer_connect_timeout_ms: u64,
    /// Whole inter-bank request, sending to last byte of the answer.
    pub peer_request_timeout_ms: u64,
    /// Allowed difference between a signed request's timestamp and this bank's clock.
    pub clock_skew_ms: u64,
    /// How far apart the banks' clocks may be (the consortium file's `[ring] clock_skew_ms`): a
    /// peer whose clock is surely further is said to disagree, and cross-bank work with it is
    /// refused at once (`peer::clock`).
    pub peer_clock_skew_ms: u64,
    /// Recent nonces remembered per peer (replay check); beyond it the peer gets 503.
    pub nonces_per_bank_max: usize,
    /// Time a connection has to deliver a complete request head, counted from when the server
    /// starts waiting for it: from the accept, and again after each answer on a keep-alive
    /// connection (hyper starts the clock there), so it also closes idle keep-alive connections.
    /// A stalled or trickled request head (slowloris) is closed after it.
    pub header_read_timeout_ms: u64,
    /// A connection on which no byte moved either way for this long is closed, whatever it is
    /// doing: a request body that stopped coming, a client that stopped reading its answer.
    /// Keep it above `request_timeout_ms`, or a slow handler's connection is cut before it answers.
    pub idle_timeout_ms: u64,
    /// Connections open at once on the listener; more are accepted and closed at once (the
    /// consortium members have a small reserve beyond it). Lowered at start to what the
    /// process's open-file limit leaves room for.
    pub connections_max: usize,
    /// Connections open at once from one client IP address; more are accepted and closed at
    /// once. The consortium members' addresses are exempt: on one machine every peer is
    /// 127.0.0.1 (see `crate::listener`).
    pub connections_per_address_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes_max: 64 * 1024,
            request_timeout_ms: 10_000,
            in_flight_max: 4096,
            writer_queue_len_max: 8192,
            batch_len_max: 1024,
            read_connections_max: 8,
            prepare_expiry_ms: 2_000,
            decision_memory_ms: 10 * 60 * 1000,
            decision_memory_max: DECISION_MEMORY_MAX_DEFAULT,
            idempotency_retention_ms: 24 * 3600 * 1000,
            idempotency_cache_max: bank_core::ledger::IDEMPOTENCY_CACHE_DEFAULT,
            transfer_deadline_ms: 5_000,
            sessions_per_account_max: 16,
            session_ttl_s: 8 * 3600,
            password_hashers: 2,
            password_queue_len_max: 256,
            peer_connect_timeout_ms: 1_000,
            peer_request_timeout_ms: 2_000,
            clock_skew_ms: crate::peer::sign::CLOCK_SKEW_MS_DEFAULT,
            peer_clock_skew_ms: crate::consortium::RingTiming::default().clock_skew_ms,
            nonces_per_bank_max: crate::peer::sign::NONCES_PER_BANK_MAX_DEFAULT,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            connections_max: 4096,
            connections_per_address_max: 256,
        }
    }
}
