//! The peers of this bank: the signed transport to them and the inter-bank wire types.
//!
//! - [`sign`]: the canonical string, the headers, and the [`sign::Verifier`] that refuses
//!   unsigned, wrongly signed, stale and replayed requests (with a bounded nonce cache);
//! - [`client`]: [`client::PeerClient`], the pooled HTTP client that signs every request it
//!   sends, with errors split into retryable (unreachable, timeout) and refusals;
//! - [`Interbank`]: this bank's place in the consortium (members, verifiers, the peer client);
//! - the bodies banks exchange (`Envelope`, `RingEnvelope`, `AccountsOf`, ...), their paths and
//!   their size limits, shared by the driver (which sends them) and `interbank` (which receives
//!   them).
//!
//! This module does no protocol work and knows nothing of the driver or the HTTP handlers.

pub mod client;
pub mod clock;
pub mod sign;

use std::collections::BTreeMap;

use bank_core::ids::{BankId, TimestampMs};
use bank_core::ring::RingMessage;
use bank_core::twopc::Message;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::config::Limits;
use crate::consortium::{Consortium, Member};
use client::{PeerClient, PeerError, PeerOptions};
use sign::Verifier;

/// This bank's place in the consortium: its peers, how it checks them and how it calls them.
#[derive(Debug)]
pub struct Interbank {
    pub self_id: BankId,
    pub members: BTreeMap<BankId, Member>,
    /// Every member's institution code (the start of its Pix end-to-end ids).
    pub institution_codes: BTreeMap<BankId, bank_core::ids::InstitutionCode>,
    pub operator_key: VerifyingKey,
    /// Checks member banks' requests.
    pub verifier: Verifier,
    /// Checks the operator's requests: knows only the operator key, under [`sign::OPERATOR`].
    pub operator_verifier: Verifier,
    pub peers: PeerClient,
}

impl Interbank {
    /// Builds the verifier and the peer client of bank `self_id` (a member of `consortium`).
    /// Refused when `self_id` is not the member whose key `consortium` holds.
    pub fn new(self_id: BankId, consortium: &Consortium, limits: &Limits) -> Result<Interbank, PeerError> {
        let own_key = consortium.signing_key.verifying_key();
        if consortium.members.get(&self_id).map(|m| m.public_key) != Some(own_key) {
            return Err(PeerError::Local(format!(
                "bank {self_id} is not a member of the consortium, or its signing key is not the one listed for it"
            )));
        }
        if consortium.members.contains_key(&sign::OPERATOR) {
            // The file loader refuses it too; a consortium built in code must not either, or a
            // member's signature could pass for the operator's.
            return Err(PeerError::Local(format!("no member may have id {}: it is the operator's", sign::OPERATOR)));
        }
        let keys = consortium.members.values().map(|m| (m.id, m.public_key)).collect();
        let verifier = Verifier::new(self_id, keys)
            .with_clock_skew_ms(limits.clock_skew_ms)
            .with_nonces_per_bank_max(limits.nonces_per_bank_max);
        let operator_verifier =
            Verifier::new(self_id, [(sign::OPERATOR, consortium.operator_key)].into_iter().collect())
                .with_clock_skew_ms(limits.clock_skew_ms)
                .with_nonces_per_bank_max(limits.nonces_per_bank_max);
        let options = PeerOptions {
            connect_timeout_ms: limits.peer_connect_timeout_ms,
            request_timeout_ms: limits.peer_request_timeout_ms,
            clock_skew_ms: limits.peer_clock_skew_ms,
        };
        let urls = consortium.members.values().map(|m| (m.id, m.url.clone()));
        let peers = PeerClient::new(self_id, consortium.signing_key.clone(), urls, options)?;
        Ok(Interbank {
            self_id,
            institution_codes: consortium.institution_codes.clone(),
            members: consortium.members.clone(),
            operator_key: consortium.operator_key,
            verifier,
            operator_verifier,
            peers,
        })
    }
}

/// Most messages in one inter-bank request.
pub const BATCH_MESSAGES_MAX: usize = 512;
/// Messages waiting for one peer; more are dropped (and re-sent by the protocol).
pub const OUTBOX_LEN_MAX: usize = 16_384;
/// Path of the message exchange.
pub const MESSAGES_PATH: &str = "/interbank/v1/messages";
/// Path of the token ring's message exchange (apart from the two-phase commit's, so a pass never
/// waits behind a large batch of prepares).
pub const RING_PATH: &str = "/interbank/v1/ring";
/// Most ring messages in one request (a handful in practice).
pub const RING_BATCH_MAX: usize = 64;
/// Ring messages waiting for one peer; more are dropped (the ring re-sends or regenerates).
pub const RING_OUTBOX_LEN_MAX: usize = 256;

/// One ring message with the time it was produced (the sender's clock, Unix ms): the receiver
/// drops it if it is older than the ring may rely on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StampedRingMessage {
    pub sent_at_ms: i64,
    pub message: RingMessage,
}

/// The body of a ring message exchange, both ways.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingEnvelope {
    pub messages: Vec<StampedRingMessage>,
}

impl RingEnvelope {
    pub fn into_pairs(self) -> Vec<(TimestampMs, RingMessage)> {
        self.messages.into_iter().map(|m| (TimestampMs(m.sent_at_ms), m.message)).collect()
    }
}

/// The body of a message exchange, both ways.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub messages: Vec<Message>,
}

/// Path of the "accounts of this document" query.
pub const ACCOUNTS_OF_PATH: &str = "/interbank/v1/accounts-of";

/// The query: whose accounts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsOf {
    pub document: bank_core::document::Document,
}

/// One account of a document, as another bank reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldAccount {
    pub number: bank_core::ids::AccountNumber,
    pub kind: bank_core::account::AccountKind,
    pub posted_cents: i64,
    pub held_cents: i64,
}

/// The answer: every account of this bank the document holds (joint ones included).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeldAccounts {
    pub accounts: Vec<HeldAccount>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consortium::SigningKey;

    fn member(id: u32, key: &SigningKey) -> Member {
        Member {
            id: BankId(id),
            name: format!("Bank {id}"),
            url: format!("http://127.0.0.1:{}", 9000 + id),
            public_key: key.verifying_key(),
        }
    }

    #[test]
    fn no_member_may_take_the_operators_id() {
        let (zero, one, operator) =
            (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]), SigningKey::from_bytes(&[3; 32]));
        let mut consortium = Consortium {
            members: [(BankId(1), member(1, &one))].into_iter().collect(),
            operator_key: operator.verifying_key(),
            signing_key: one.clone(),
            institution_codes: Default::default(),
        };
        let interbank = Interbank::new(BankId(1), &consortium, &Limits::default()).expect("a consortium of one");
        assert_eq!(interbank.operator_verifier.self_id(), BankId(1));
        consortium.members.insert(sign::OPERATOR, member(0, &zero));
        let err = Interbank::new(BankId(1), &consortium, &Limits::default()).expect_err("member 0");
        assert!(err.to_string().contains("operator"), "{err}");
    }
}
