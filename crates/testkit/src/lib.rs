//! The one test harness of the workspace: everything a test needs to start banks and talk to
//! them, written once. Dev-only (`publish = false`); no product code depends on it.
//!
//! - [`ports`]: ports for servers whose address must be known before they start, from one
//!   process-wide allocator that never hands out the same port twice.
//! - [`http`]: one way to send a request to a node ([`http::Call`]) and read its [`http::Reply`].
//! - [`signer`]: inter-bank request signatures, made by the product's own
//!   `bank_node::interbank::sign` (tests sign exactly as banks do, and forge from there).
//! - [`in_process`]: a node on port 0 in a temp dir ([`in_process::TestNode`]) and a consortium
//!   of such nodes in one process ([`in_process::Cluster`]).
//! - [`processes`]: a consortium of real `bank node` processes that tests crash, freeze and
//!   restart, with its customers, its book and the consortium-wide invariant checks.
//! - [`up`]: `bank up` as a process ([`up::Up`]).
//! - [`browser`]: headless Chromium through chromedriver ([`browser::Browser`]).
//! - [`rng`]: the simulators' seeded generator (the file lives with the core's simulators).
//!
//! The harnesses that start processes take the path of the `bank` binary, which only the cli
//! crate's tests know (`env!("CARGO_BIN_EXE_bank")`).

pub mod browser;
pub mod http;
pub mod in_process;
pub mod messages;
pub mod ports;
pub mod processes;
pub mod signer;
pub mod up;

/// The simulators' SplitMix64, shared with `crates/core/tests/support` (the core's tests cannot
/// depend on this crate: it depends on the node, which depends on the core).
#[path = "../../core/tests/support/rng.rs"]
pub mod rng;
