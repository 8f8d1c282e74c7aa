//! The pure core of a bank of the consortium.
//!
//! Everything here is deterministic: no I/O, no clock, no threads, no randomness. Time and random
//! values come in as arguments; effects go out as values ([`ledger::Change`]) for the driver to
//! persist. That is what lets the ledger (and, later, the protocols) be tested exhaustively.
//!
//! - [`money`]: [`Amount`] in centavos, Brazilian formatting and parsing.
//! - [`document`], [`contact`], [`pixkey`]: CPF/CNPJ with check digits, e-mail, phone, Pix keys.
//! - [`ids`]: identifier newtypes.
//! - [`account`]: account kinds, holders, who may spend what.
//! - [`ledger`]: the ledger state machine (accounts, balances, holds, idempotency).
//! - [`twopc`]: two-phase commit across banks, the coordinator and the participant as state
//!   machines over the ledger's holds.
//! - [`ring`]: the token ring that orders cross-bank work, as one state machine per bank.
//! - [`bank`]: one whole bank — ledger, 2PC, key directory, ring gate — composed into one
//!   state machine, `step(now, input) -> effects`.

pub mod account;
pub mod bank;
pub mod contact;
pub mod document;
pub mod error;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod pixkey;
pub mod ring;
pub mod twopc;

pub use error::{Error, ErrorCode};
pub use money::Amount;
