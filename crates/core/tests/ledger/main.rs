//! Tests of the ledger state machine through the public API of `bank_core` only.
//!
//! Every operation is checked for its exact balances and the exact [`Change`]s it emits; every
//! rejection is checked to leave the ledger equal to its clone from before and to emit nothing
//! (STYLE.md §11); the property tests at the end run random sequences of operations against a
//! small reference model and check the invariants of DESIGN.md §8 after every step.
//!
//! One test binary, one file per area; `support` holds the fixtures and the expectation builders.

mod support;

mod accounts;
mod deposits;
mod failures;
mod holds;
mod idempotency;
mod keys;
mod model;
mod permissions;
mod refunds;
mod rejections;
mod transfers;
