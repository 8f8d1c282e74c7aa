//! Two-phase commit across banks: the coordinator and the participant as pure state machines.
//!
//! # The problem
//!
//! A cross-bank transfer (or a packet of legs) moves money out of accounts in one or more banks
//! and into accounts in others. Each bank keeps its own ledger and no bank can write another's,
//! yet the transfer must be atomic: every leg posted, or none — also when banks crash, and when
//! messages between them are lost, duplicated, delayed or reordered. Two-phase commit gives that
//! atomicity; *holds* (DESIGN.md §3, §4) make its first phase cheap and safe: preparing a
//! transaction reserves the money it debits, so no other transaction can spend it meanwhile and
//! no account is ever overdrawn, whatever the outcome.
//!
//! # Roles and message flow
//!
//! The bank where the customer submits the transfer is its [`Coordinator`]; every bank with a
//! leg of it is a [`Participant`] (the coordinator's own bank usually is one too: it talks to
//! itself with the same messages, delivered locally).
//!
//! ```text
//!   coordinator                                   participant (each bank with legs)
//!   ───────────                                   ─────────────────────────────────
//!   begin: persist Preparing{expiry} ── Prepare ─► place holds (persisted), then
//!                                    ◄── Vote ──── vote yes, or no (nothing held)
//!   all yes: persist Commit ────────── Commit ──► post holds (persisted)
//!   a no / expiry: persist Abort ───── Abort ───► release holds (persisted)
//!                                    ◄── Ack ────
//!   every ack: persist Finished
//!                                    ◄── QueryOutcome ── a hold still here after its expiry
//!   answer from the records ────────── Outcome ──► apply it like Commit / Abort
//! ```
//!
//! Both machines are deterministic and do no I/O. The driver (crates/node) feeds them inputs —
//! [`Coordinator::begin`], `step(from, message, now)` for every message that arrives, and
//! `tick(now)` periodically — and carries out the outputs they return, in order. Time is the
//! logical `now` passed in ([`TimestampMs`]); the machines never read a clock.
//!
//! Write-ahead is the driver's half of the contract, and everything rests on it:
//!
//! - a [`CoordinatorOutput::Persist`] must be durable before any later output of the same call
//!   is carried out (so a `Prepare` never leaves before the *preparing* record, nor a `Commit`
//!   before the commit decision);
//! - the ledger [`Change`](crate::ledger::Change)s a participant call appends must be durable
//!   before any of that call's outputs is carried out (so a yes vote never leaves before its
//!   holds, nor an `Ack` before the posting or release it acknowledges).
//!
//! # Guarantees
//!
//! - **Atomicity and agreement.** A transaction is committed only if every participant voted yes
//!   (asserted when the decision is taken), and the decision is taken once, durably, by the
//!   coordinator alone; participants only carry it out. So every participant ends the same way.
//! - **No overdraft, no double spend.** A yes vote means the debits are held: the money is gone
//!   from `available` until the decision posts or releases it. Holds never wait (they succeed or
//!   fail at once), so there is no deadlock.
//! - **Idempotent messages.** A repeated `Prepare` gets the same vote and holds nothing twice; a
//!   repeated `Commit` or `Abort` changes nothing and is acknowledged again; repeated votes, acks
//!   and queries change nothing. So any message may be re-sent, and every one is.
//! - **Termination while banks come back.** The coordinator re-sends its decision (with
//!   exponential backoff in logical time, capped) until every participant has acknowledged it,
//!   also across its own restarts; a participant holding money past the transaction's expiry
//!   asks the coordinator for the outcome (also with backoff) until it learns it.
//!
//! # Failure handling
//!
//! - *Coordinator crashes before deciding.* Its votes were volatile; on recovery every
//!   transaction still *preparing* is aborted (presumed abort): the abort is persisted and sent
//!   to every participant. A participant asking about a transaction the coordinator has no record
//!   of is told it aborted: a coordinator persists *preparing* before sending any `Prepare`, so
//!   no record means no participant can hold anything for it.
//! - *Coordinator crashes after deciding.* The decision is in its records; after recovery it
//!   re-sends the decision to every participant that has not acknowledged it. Participants that
//!   already applied it acknowledge again and change nothing.
//! - *Participant crashes after voting.* Its holds and its decided transactions are in its ledger,
//!   which is durable. A yes-voter never decides alone: its hold stays (the money is visible as
//!   blocked) until the coordinator's re-sent decision arrives or, after the expiry, its own
//!   `QueryOutcome` is answered.
//! - *Participant crashes before its holds are durable.* Then it never voted; the coordinator
//!   re-sends `Prepare` until the expiry, then aborts.
//! - *Lost, duplicated, delayed, reordered messages.* Every message is idempotent and every
//!   exchange is retried. A `Prepare` arriving after the transaction was aborted places nothing
//!   (the ledger remembers every outcome); one arriving after the expiry it carries is refused
//!   and remembered as aborted, so a late prepare can never hold money that nobody will release.
//!   An `Abort` that overtakes its `Prepare` is remembered the same way.
//!
//! # What it does not handle
//!
//! - *A coordinator that never returns* leaves the holds its participants voted yes on blocked
//!   forever: 2PC's known price. Nobody else knows whether it decided commit. An operator may
//!   resolve such a transaction by hand (DESIGN.md §4.6); that is outside these machines.
//! - *Lost storage.* Durability is the driver's promise; a bank that loses its records may break
//!   agreement (presumed abort would then lie).
//! - *Byzantine banks.* Peers are authenticated by the transport (signed requests) and trusted to
//!   run this protocol; a participant only refuses messages that contradict what it already did
//!   ([`ParticipantOutput::Refused`]), for the driver to log loudly.
//! - *Validation and fairness.* Whether the customer may spend the source accounts, key
//!   resolution, and the order in which coordinators start transactions (the token ring) are the
//!   driver's concern. Transfers whose legs all touch one bank need no 2PC (DESIGN.md §4.7),
//!   though these machines handle them correctly too.

mod coordinator;
mod participant;

use serde::{Deserialize, Serialize};

use crate::document::Document;
use crate::error::ErrorCode;
use crate::ids::{AccountNumber, BankId, TimestampMs, TransferId};
use crate::ledger::{KeyClaim, PixLeg, Settlement};
use crate::money::Amount;

pub use crate::ledger::{Legs, LegsByBank};
pub use coordinator::{Coordinator, CoordinatorOutput, CoordinatorRecord, TxPhase};
pub use participant::{Participant, ParticipantOutput, QUERIES_PER_TICK_MAX};

pub use crate::error::Refusal;

/// A participant's vote on a prepare: yes (its holds are placed and durable), or no with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Vote {
    Yes,
    No { code: ErrorCode, detail: String },
}

impl From<Result<(), Refusal>> for Vote {
    fn from(placed: Result<(), Refusal>) -> Self {
        match placed {
            Ok(()) => Vote::Yes,
            Err(Refusal { code, detail }) => Vote::No { code, detail },
        }
    }
}

/// How a transaction ends: decided once by its coordinator, carried out by every participant
/// (commit posts its holds, abort releases them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Committed,
    Aborted,
}

impl Decision {
    /// What the decision does to a participant's holds.
    pub fn settlement(self) -> Settlement {
        match self {
            Decision::Committed => Settlement::Posted,
            Decision::Aborted => Settlement::Released,
        }
    }
}

impl From<Settlement> for Decision {
    fn from(settlement: Settlement) -> Self {
        match settlement {
            Settlement::Posted => Decision::Committed,
            Settlement::Released => Decision::Aborted,
        }
    }
}

/// A message between banks. Every one is idempotent: receiving it twice has the effect of
/// receiving it once (and is answered again, so a lost answer is recovered by a re-send).
///
/// Serialized as JSON with a `type` tag, e.g.
/// `{"type":"commit","tx":"…"}`. The sending bank is known to the receiver from the transport
/// (signed request); the `from` fields repeat it for logs and must agree with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Coordinator → participant: hold these legs and vote. `expires_at` is when the coordinator
    /// gives up waiting for votes; a participant refuses a prepare that arrives after it.
    Prepare {
        tx: TransferId,
        coordinator: BankId,
        expires_at: TimestampMs,
        debits: Vec<(AccountNumber, Amount)>,
        credits: Vec<(AccountNumber, Amount)>,
        /// Whose money the debits are: every debited account must have this holder.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_behalf_of: Option<Document>,
        /// Pix keys to reserve (a key registration).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        keys: Vec<KeyClaim>,
        /// The Pix legs touching the participant, kept there once posted (receipts, refunds).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pix: Vec<PixLeg>,
    },
    /// Participant → coordinator: the answer to a prepare (the same on every repeat).
    Vote { tx: TransferId, from: BankId, vote: Vote },
    /// Coordinator → participant: post the holds.
    Commit { tx: TransferId },
    /// Coordinator → participant: release the holds (or remember the abort if none were placed).
    Abort { tx: TransferId },
    /// Participant → coordinator: the decision is applied and durable here.
    Ack { tx: TransferId, from: BankId },
    /// Participant → coordinator: what became of `tx`? (Sent for holds past their expiry.)
    QueryOutcome { tx: TransferId, from: BankId },
    /// Coordinator → participant: the answer to a query; `None` while still undecided.
    Outcome { tx: TransferId, decision: Option<Decision> },
}

/// Which of a bank's two machines a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Coordinator,
    Participant,
}

impl Message {
    /// The transaction the message is about.
    pub fn tx(&self) -> TransferId {
        match self {
            Message::Prepare { tx, .. }
            | Message::Vote { tx, .. }
            | Message::Commit { tx }
            | Message::Abort { tx }
            | Message::Ack { tx, .. }
            | Message::QueryOutcome { tx, .. }
            | Message::Outcome { tx, .. } => *tx,
        }
    }

    /// The machine that handles the message at the receiving bank: votes, acks and queries go to
    /// its [`Coordinator`], the rest to its [`Participant`].
    pub fn addressee(&self) -> Role {
        match self {
            Message::Vote { .. } | Message::Ack { .. } | Message::QueryOutcome { .. } => Role::Coordinator,
            Message::Prepare { .. } | Message::Commit { .. } | Message::Abort { .. } | Message::Outcome { .. } => {
                Role::Participant
            }
        }
    }

    /// The message that carries `decision` to a participant.
    pub fn decision(tx: TransferId, decision: Decision) -> Message {
        match decision {
            Decision::Committed => Message::Commit { tx },
            Decision::Aborted => Message::Abort { tx },
        }
    }
}

/// How often an unanswered message is re-sent: first after `first_ms`, then at doubling
/// intervals up to `max_ms` (logical milliseconds of the `now` passed in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub first_ms: i64,
    pub max_ms: i64,
}

impl RetryPolicy {
    /// A re-send after 200 ms, doubling up to 5 s: quick when a message was merely lost, gentle
    /// on a bank that is down.
    pub const DEFAULT: RetryPolicy = RetryPolicy { first_ms: 200, max_ms: 5_000 };

    /// A policy; panics unless `0 < first_ms ≤ max_ms`.
    pub fn new(first_ms: i64, max_ms: i64) -> Self {
        assert!(0 < first_ms && first_ms <= max_ms, "retry policy needs 0 < first_ms ≤ max_ms");
        RetryPolicy { first_ms, max_ms }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::DEFAULT
    }
}

/// The re-send timer of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Backoff {
    next_at: TimestampMs,
    interval_ms: i64,
}

impl Backoff {
    /// A timer that first fires at `at`.
    fn starting_at(at: TimestampMs, policy: RetryPolicy) -> Self {
        Backoff { next_at: at, interval_ms: policy.first_ms }
    }

    /// A timer for a message just sent at `now`: it fires after the first interval, then after
    /// doubled ones.
    fn after_send(now: TimestampMs, policy: RetryPolicy) -> Self {
        Backoff {
            next_at: TimestampMs(now.0.saturating_add(policy.first_ms)),
            interval_ms: policy.first_ms.saturating_mul(2).min(policy.max_ms),
        }
    }

    /// Whether the timer is due at `now`; if so, re-arms it at the next, doubled, interval.
    fn fire(&mut self, now: TimestampMs, policy: RetryPolicy) -> bool {
        if now < self.next_at {
            return false;
        }
        self.next_at = TimestampMs(now.0.saturating_add(self.interval_ms));
        self.interval_ms = self.interval_ms.saturating_mul(2).min(policy.max_ms);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::new(10, 35);
        let mut b = Backoff::starting_at(TimestampMs(0), policy);
        let mut fired = Vec::new();
        for now in 0..200 {
            if b.fire(TimestampMs(now), policy) {
                fired.push(now);
            }
        }
        assert_eq!(fired, vec![0, 10, 30, 65, 100, 135, 170]);
    }

    #[test]
    fn messages_travel_as_tagged_json_and_come_back_equal() {
        let tx = TransferId(Uuid::from_u128(7));
        let amount = Amount::from_cents(150).expect("valid");
        let messages = vec![
            Message::Prepare {
                tx,
                coordinator: BankId(1),
                expires_at: TimestampMs(99),
                debits: vec![(AccountNumber::from_seq(1), amount)],
                credits: vec![(AccountNumber::from_seq(2), amount)],
                on_behalf_of: None,
                keys: Vec::new(),
                pix: Vec::new(),
            },
            Message::Vote { tx, from: BankId(2), vote: Vote::Yes },
            Message::Vote {
                tx,
                from: BankId(2),
                vote: Vote::No { code: crate::error::ErrorCode::Conflict, detail: "y".into() },
            },
            Message::Commit { tx },
            Message::Abort { tx },
            Message::Ack { tx, from: BankId(2) },
            Message::QueryOutcome { tx, from: BankId(2) },
            Message::Outcome { tx, decision: None },
            Message::Outcome { tx, decision: Some(Decision::Committed) },
        ];
        for message in messages {
            let json = serde_json::to_string(&message).expect("serializes");
            let back: Message = serde_json::from_str(&json).expect("parses");
            assert_eq!(back, message, "{json}");
        }
        let json = serde_json::to_string(&Message::Commit { tx }).expect("serializes");
        assert_eq!(json, r#"{"type":"commit","tx":"00000000-0000-0000-0000-000000000007"}"#);
    }
}
