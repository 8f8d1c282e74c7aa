//! Inter-bank request signatures, made by the product's own signer.
//!
//! Tests sign exactly as a bank does (`bank_node::interbank::sign`), so a test passing here means
//! the product's signer and verifier agree. A forgery is made from a genuine signature with one
//! thing changed (another key, sender, addressee, body or time); [`crate::http::Call::signed`]
//! sends any of them, and [`crate::http::Call`] without it sends an unsigned request.

use bank_core::ids::BankId;
use bank_node::consortium::SigningKey;
pub use bank_node::interbank::sign::{OPERATOR, SignedHeaders, unix_now_ms};
use bank_node::interbank::sign::{fresh_nonce, sign};

/// The headers `from` (a member, or [`OPERATOR`]) signs a request to `to` with, now.
pub fn sign_now(key: &SigningKey, from: BankId, to: BankId, method: &str, path: &str, body: &[u8]) -> SignedHeaders {
    sign_at(key, from, to, method, path, body, unix_now_ms())
}

/// As [`sign_now`], dated `timestamp_ms` (a stale request, or one from a skewed clock).
pub fn sign_at(
    key: &SigningKey,
    from: BankId,
    to: BankId,
    method: &str,
    path: &str,
    body: &[u8],
    timestamp_ms: u64,
) -> SignedHeaders {
    sign(key, from, to, method, path, body, timestamp_ms, fresh_nonce().expect("a random nonce"))
}
