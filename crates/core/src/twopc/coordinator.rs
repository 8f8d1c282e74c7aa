//! The coordinator: decides each transaction its bank started, once, durably, and sees the
//! decision delivered to every participant. See the [module essay](super).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Backoff, Legs, LegsByBank, Message, RetryPolicy};
use super::{Decision, Vote};
use crate::ids::{BankId, TimestampMs, TransferId};

/// What the driver must do for the coordinator, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordinatorOutput {
    /// Make this record durable before carrying out any later output of the same call
    /// (write-ahead). Records of one transaction supersede each other in the order
    /// `Preparing` → `Decided` → `Finished`; the driver may keep only the newest one.
    Persist(CoordinatorRecord),
    /// Send `msg` to bank `to` (possibly this bank itself: deliver it to its participant).
    Send { to: BankId, msg: Message },
    /// The transaction is decided (and the decision durable): the customer can be told.
    Decided { tx: TransferId, decision: Decision },
    /// Every participant acknowledged the decision: every leg is posted (or released).
    Finished { tx: TransferId },
}

/// A coordinator's durable record of one transaction. Each is self-contained: the newest record
/// of a transaction is all [`Coordinator::recover`] needs of it.
///
/// Serialized as JSON named by its state, e.g. `{"finished":{"tx":"…","decision":"committed"}}`.
/// (Externally tagged on purpose: serde cannot read the integer bank ids keying `legs` back from
/// an internally tagged enum.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoordinatorRecord {
    /// Prepares may be out: the transaction is undecided until the expiry.
    Preparing { tx: TransferId, expires_at: TimestampMs, legs: LegsByBank },
    /// The decision; it is re-sent to `participants` until each acknowledges it.
    Decided { tx: TransferId, decision: Decision, participants: BTreeSet<BankId> },
    /// Every participant acknowledged the decision; kept to answer late queries truthfully.
    Finished { tx: TransferId, decision: Decision },
}

impl CoordinatorRecord {
    /// The transaction the record is about.
    pub fn tx(&self) -> TransferId {
        match self {
            CoordinatorRecord::Preparing { tx, .. }
            | CoordinatorRecord::Decided { tx, .. }
            | CoordinatorRecord::Finished { tx, .. } => *tx,
        }
    }

    /// The position of the record in a transaction's life: a newer record has a higher rank.
    fn rank(&self) -> u8 {
        match self {
            CoordinatorRecord::Preparing { .. } => 0,
            CoordinatorRecord::Decided { .. } => 1,
            CoordinatorRecord::Finished { .. } => 2,
        }
    }
}

/// Where a transaction stands at its coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxPhase {
    /// Waiting for votes.
    Preparing,
    /// Decided; delivering the decision.
    Decided(Decision),
    /// Decided, and every participant acknowledged it.
    Finished(Decision),
}

/// A transaction not yet finished.
#[derive(Debug, Clone)]
struct Active {
    participants: BTreeSet<BankId>,
    expires_at: TimestampMs,
    state: State,
    /// When to re-send `Prepare` (while preparing) or the decision (once decided).
    retry: Backoff,
}

#[derive(Debug, Clone)]
enum State {
    Preparing {
        /// Needed to re-send `Prepare`.
        legs: LegsByBank,
        /// The first vote of each participant that answered.
        votes: BTreeMap<BankId, Vote>,
        /// Read back from storage after a restart: its votes are lost, so it is aborted at once.
        recovered: bool,
    },
    Decided {
        decision: Decision,
        acked: BTreeSet<BankId>,
    },
}

/// The coordinator of the transactions one bank starts. See the [module essay](super).
///
/// Volatile state (votes, acks, retry timers) lives here; what must survive a crash goes out as
/// [`CoordinatorOutput::Persist`] and comes back through [`Coordinator::recover`].
#[derive(Debug, Clone)]
pub struct Coordinator {
    bank: BankId,
    retry: RetryPolicy,
    active: BTreeMap<TransferId, Active>,
    /// Finished transactions' decisions, to answer queries truthfully. (Safe to forget after a
    /// while: every participant of a finished transaction has applied its decision, and a
    /// participant ignores an outcome for a transaction it already decided.)
    finished: BTreeMap<TransferId, Decision>,
}

impl Coordinator {
    /// A coordinator for `bank` with no transactions (a bank's first start).
    pub fn new(bank: BankId, retry: RetryPolicy) -> Self {
        Coordinator { bank, retry, active: BTreeMap::new(), finished: BTreeMap::new() }
    }

    /// Rebuilds the coordinator from its durable records, in any order (the newest of each
    /// transaction wins). Transactions still preparing are aborted — presumed abort: their votes
    /// were lost — and decided ones re-send their decision; both happen at the next
    /// [`tick`](Self::tick) (or `step` about them), so call `tick` right after.
    pub fn recover(bank: BankId, retry: RetryPolicy, records: impl IntoIterator<Item = CoordinatorRecord>) -> Self {
        let mut newest: BTreeMap<TransferId, CoordinatorRecord> = BTreeMap::new();
        for record in records {
            let tx = record.tx();
            if let (Some(known), Some(new)) = (newest.get(&tx).and_then(decision_of), decision_of(&record)) {
                assert_eq!(known, new, "the records of transaction {tx} disagree on its decision");
            }
            if newest.get(&tx).is_none_or(|known| known.rank() < record.rank()) {
                newest.insert(tx, record);
            }
        }
        let mut coordinator = Coordinator::new(bank, retry);
        // Due at once: the first tick after a restart re-sends (or aborts) everything.
        let due = Backoff::starting_at(TimestampMs(i64::MIN), retry);
        for (tx, record) in newest {
            match record {
                CoordinatorRecord::Preparing { expires_at, legs, .. } => {
                    let participants = legs.keys().copied().collect();
                    let state = State::Preparing { legs, votes: BTreeMap::new(), recovered: true };
                    coordinator.active.insert(tx, Active { participants, expires_at, state, retry: due });
                }
                CoordinatorRecord::Decided { decision, participants, .. } => {
                    let state = State::Decided { decision, acked: BTreeSet::new() };
                    let active = Active { participants, expires_at: TimestampMs(i64::MIN), state, retry: due };
                    coordinator.active.insert(tx, active);
                }
                CoordinatorRecord::Finished { decision, .. } => {
                    coordinator.finished.insert(tx, decision);
                }
            }
        }
        coordinator
    }

    /// The bank this coordinator belongs to.
    pub fn bank(&self) -> BankId {
        self.bank
    }

    /// Where `tx` stands, if this coordinator knows it.
    pub fn phase(&self, tx: &TransferId) -> Option<TxPhase> {
        if let Some(decision) = self.finished.get(tx) {
            return Some(TxPhase::Finished(*decision));
        }
        self.active.get(tx).map(|active| match &active.state {
            State::Preparing { .. } => TxPhase::Preparing,
            State::Decided { decision, .. } => TxPhase::Decided(*decision),
        })
    }

    /// Forgets finished transactions whose ids sort before `bound` (for UUIDv7 ids: created
    /// before a time), then the oldest beyond the newest `max`, returning how many. Only the
    /// memory forgets: the driver must give a finished decision back
    /// ([`recall_finished`](Self::recall_finished)) from its records before handing a message
    /// about a transaction of unknown [`phase`](Self::phase) to the coordinator, so a late query is
    /// answered with the decision, never with a presumed abort.
    pub fn forget_finished(&mut self, bound: TransferId, max: usize) -> usize {
        crate::ids::keep_newest(&mut self.finished, bound, max)
    }

    /// Remembers again a finished transaction's decision, read back from its durable record.
    /// Ignored for a transaction still active here.
    pub fn recall_finished(&mut self, tx: TransferId, decision: Decision) {
        if !self.active.contains_key(&tx) {
            self.finished.insert(tx, decision);
        }
    }

    /// Finished transactions remembered in memory.
    pub fn finished_remembered(&self) -> usize {
        self.finished.len()
    }

    /// How many transactions are not finished yet (preparing, or delivering their decision).
    pub fn in_flight(&self) -> usize {
        self.active.len()
    }

    /// Starts transaction `tx` with its legs at each participant bank; prepares expire at
    /// `expires_at`. Emits the *preparing* record, then a `Prepare` to every participant.
    ///
    /// Preconditions (the driver's to check; a violation is a bug and panics): `tx` is new,
    /// `legs` names at least one bank and every bank's legs are non-empty, `expires_at > now`.
    pub fn begin(
        &mut self,
        tx: TransferId,
        legs: LegsByBank,
        expires_at: TimestampMs,
        now: TimestampMs,
    ) -> Vec<CoordinatorOutput> {
        assert!(self.phase(&tx).is_none(), "transaction {tx} was already begun");
        assert!(!legs.is_empty(), "transaction {tx} has no participant");
        assert!(legs.values().all(|l| !l.is_empty()), "transaction {tx} names a bank with no legs");
        assert!(expires_at > now, "transaction {tx} expires before it begins");
        let mut out =
            vec![CoordinatorOutput::Persist(CoordinatorRecord::Preparing { tx, expires_at, legs: legs.clone() })];
        for (bank, bank_legs) in &legs {
            out.push(CoordinatorOutput::Send { to: *bank, msg: self.prepare(tx, expires_at, bank_legs) });
        }
        let participants = legs.keys().copied().collect();
        let state = State::Preparing { legs, votes: BTreeMap::new(), recovered: false };
        self.active.insert(tx, Active { participants, expires_at, state, retry: Backoff::after_send(now, self.retry) });
        out
    }

    /// Handles a message from bank `from` (authenticated by the transport): a vote, an ack or a
    /// query. Messages for the participant, and messages whose `from` field disagrees with the
    /// sender, are ignored; so are votes and acks of banks that are not participants.
    pub fn step(&mut self, from: BankId, msg: Message, now: TimestampMs) -> Vec<CoordinatorOutput> {
        let mut out = Vec::new();
        match msg {
            Message::Vote { tx, from: voter, vote } if voter == from => self.on_vote(tx, from, vote, now, &mut out),
            Message::Ack { tx, from: acker } if acker == from => self.on_ack(tx, from, &mut out),
            Message::QueryOutcome { tx, from: asker } if asker == from => {
                self.expire_if_due(tx, now, &mut out);
                let decision = match self.phase(&tx) {
                    Some(TxPhase::Preparing) => None,
                    Some(TxPhase::Decided(d) | TxPhase::Finished(d)) => Some(d),
                    // No record: no prepare was ever sent (presumed abort).
                    None => Some(Decision::Aborted),
                };
                out.push(CoordinatorOutput::Send { to: from, msg: Message::Outcome { tx, decision } });
            }
            _ => {}
        }
        out
    }

    /// Moves time to `now`: aborts transactions whose votes are missing at their expiry (or that
    /// were preparing before a restart), re-sends `Prepare` to silent participants before the
    /// expiry, and re-sends each decision to participants that have not acknowledged it — each
    /// with exponential backoff.
    pub fn tick(&mut self, now: TimestampMs) -> Vec<CoordinatorOutput> {
        let mut out = Vec::new();
        let txs: Vec<TransferId> = self.active.keys().copied().collect();
        for tx in txs {
            if self.expire_if_due(tx, now, &mut out) {
                continue;
            }
            let retry = self.retry;
            let Some(active) = self.active.get_mut(&tx) else { continue };
            if !active.retry.fire(now, retry) {
                continue;
            }
            match &active.state {
                State::Preparing { legs, votes, .. } => {
                    for (bank, bank_legs) in legs {
                        if !votes.contains_key(bank) {
                            let msg = prepare_message(self.bank, tx, active.expires_at, bank_legs);
                            out.push(CoordinatorOutput::Send { to: *bank, msg });
                        }
                    }
                }
                State::Decided { decision, acked } => {
                    for bank in active.participants.difference(acked) {
                        out.push(CoordinatorOutput::Send { to: *bank, msg: Message::decision(tx, *decision) });
                    }
                }
            }
        }
        out
    }

    fn prepare(&self, tx: TransferId, expires_at: TimestampMs, legs: &Legs) -> Message {
        prepare_message(self.bank, tx, expires_at, legs)
    }

    /// Aborts `tx` if it is preparing and must not wait any longer: its expiry has come, or it
    /// was read back from storage. Returns whether it did.
    fn expire_if_due(&mut self, tx: TransferId, now: TimestampMs, out: &mut Vec<CoordinatorOutput>) -> bool {
        let due = match self.active.get(&tx) {
            Some(Active { state: State::Preparing { recovered, .. }, expires_at, .. }) => {
                *recovered || now >= *expires_at
            }
            _ => false,
        };
        if due {
            self.decide(tx, Decision::Aborted, now, out);
        }
        due
    }

    fn on_vote(
        &mut self,
        tx: TransferId,
        from: BankId,
        vote: Vote,
        now: TimestampMs,
        out: &mut Vec<CoordinatorOutput>,
    ) {
        // Past the expiry the vote comes too late: the abort goes to every participant.
        if self.expire_if_due(tx, now, out) {
            return;
        }
        let Some(active) = self.active.get_mut(&tx) else { return };
        if !active.participants.contains(&from) {
            return;
        }
        match &mut active.state {
            State::Preparing { votes, .. } => {
                let vote = votes.entry(from).or_insert(vote).clone();
                let all_yes = votes.len() == active.participants.len() && votes.values().all(|v| *v == Vote::Yes);
                if matches!(vote, Vote::No { .. }) {
                    self.decide(tx, Decision::Aborted, now, out);
                } else if all_yes {
                    self.decide(tx, Decision::Committed, now, out);
                }
            }
            // A late or repeated vote: this participant may be waiting for the decision (its
            // copy may have been lost), so send it now rather than at the next retry.
            State::Decided { decision, acked } => {
                if !acked.contains(&from) {
                    out.push(CoordinatorOutput::Send { to: from, msg: Message::decision(tx, *decision) });
                }
            }
        }
    }

    fn on_ack(&mut self, tx: TransferId, from: BankId, out: &mut Vec<CoordinatorOutput>) {
        let Some(active) = self.active.get_mut(&tx) else { return };
        let State::Decided { decision, acked } = &mut active.state else { return };
        if !active.participants.contains(&from) {
            return;
        }
        acked.insert(from);
        if *acked == active.participants {
            let decision = *decision;
            self.active.remove(&tx);
            self.finished.insert(tx, decision);
            out.push(CoordinatorOutput::Persist(CoordinatorRecord::Finished { tx, decision }));
            out.push(CoordinatorOutput::Finished { tx });
        }
    }

    /// Takes the decision: persists it, then sends it to every participant.
    fn decide(&mut self, tx: TransferId, decision: Decision, now: TimestampMs, out: &mut Vec<CoordinatorOutput>) {
        let retry = self.retry;
        let active = self.active.get_mut(&tx).expect("only an active transaction is decided");
        let State::Preparing { votes, recovered, .. } = &active.state else {
            panic!("transaction {tx} decided twice");
        };
        if decision == Decision::Committed {
            // The heart of 2PC: commit only on a yes from every participant, in time.
            assert!(!recovered, "transaction {tx}: commit after a restart lost its votes");
            assert!(now < active.expires_at, "transaction {tx}: commit after the expiry");
            assert!(
                active.participants.iter().all(|bank| votes.get(bank) == Some(&Vote::Yes)),
                "transaction {tx}: commit without a yes from every participant"
            );
        }
        out.push(CoordinatorOutput::Persist(CoordinatorRecord::Decided {
            tx,
            decision,
            participants: active.participants.clone(),
        }));
        for bank in &active.participants {
            out.push(CoordinatorOutput::Send { to: *bank, msg: Message::decision(tx, decision) });
        }
        out.push(CoordinatorOutput::Decided { tx, decision });
        active.state = State::Decided { decision, acked: BTreeSet::new() };
        active.retry = Backoff::after_send(now, retry);
    }
}

fn prepare_message(coordinator: BankId, tx: TransferId, expires_at: TimestampMs, legs: &Legs) -> Message {
    Message::Prepare {
        tx,
        coordinator,
        expires_at,
        debits: legs.debits.clone(),
        credits: legs.credits.clone(),
        on_behalf_of: legs.on_behalf_of.clone(),
        keys: legs.keys.clone(),
        pix: legs.pix.clone(),
    }
}

fn decision_of(record: &CoordinatorRecord) -> Option<Decision> {
    match record {
        CoordinatorRecord::Preparing { .. } => None,
        CoordinatorRecord::Decided { decision, .. } | CoordinatorRecord::Finished { decision, .. } => Some(*decision),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AccountNumber;
    use crate::money::Amount;
    use uuid::Uuid;

    const ME: BankId = BankId(1);
    const B2: BankId = BankId(2);
    const B3: BankId = BankId(3);
    const T0: TimestampMs = TimestampMs(1_000);
    const EXPIRY: TimestampMs = TimestampMs(2_000);
    const RETRY: RetryPolicy = RetryPolicy { first_ms: 100, max_ms: 400 };

    fn tx() -> TransferId {
        TransferId(Uuid::from_u128(42))
    }

    fn at(ms: i64) -> TimestampMs {
        TimestampMs(T0.0 + ms)
    }

    /// 5,00 from account 1 of bank 2 to account 1 of bank 3.
    fn legs() -> LegsByBank {
        let amount = Amount::from_cents(500).expect("valid");
        let account = AccountNumber::from_seq(1);
        let mut legs = LegsByBank::new();
        legs.insert(
            B2,
            Legs {
                debits: vec![(account.clone(), amount)],
                credits: vec![],
                on_behalf_of: None,
                keys: vec![],
                pix: vec![],
            },
        );
        legs.insert(
            B3,
            Legs { debits: vec![], credits: vec![(account, amount)], on_behalf_of: None, keys: vec![], pix: vec![] },
        );
        legs
    }

    fn begun() -> Coordinator {
        let mut c = Coordinator::new(ME, RETRY);
        c.begin(tx(), legs(), EXPIRY, T0);
        c
    }

    fn vote(c: &mut Coordinator, from: BankId, vote: Vote, now: TimestampMs) -> Vec<CoordinatorOutput> {
        c.step(from, Message::Vote { tx: tx(), from, vote }, now)
    }

    fn no() -> Vote {
        Vote::No { code: crate::error::ErrorCode::InsufficientFunds, detail: String::new() }
    }

    fn sends(outputs: &[CoordinatorOutput]) -> Vec<(BankId, Message)> {
        outputs
            .iter()
            .filter_map(|o| match o {
                CoordinatorOutput::Send { to, msg } => Some((*to, msg.clone())),
                _ => None,
            })
            .collect()
    }

    fn decided(decision: Decision) -> Vec<CoordinatorOutput> {
        let participants = BTreeSet::from([B2, B3]);
        vec![
            CoordinatorOutput::Persist(CoordinatorRecord::Decided { tx: tx(), decision, participants }),
            CoordinatorOutput::Send { to: B2, msg: Message::decision(tx(), decision) },
            CoordinatorOutput::Send { to: B3, msg: Message::decision(tx(), decision) },
            CoordinatorOutput::Decided { tx: tx(), decision },
        ]
    }

    #[test]
    fn begin_persists_the_preparing_record_before_any_prepare() {
        let mut c = Coordinator::new(ME, RETRY);
        let outputs = c.begin(tx(), legs(), EXPIRY, T0);
        assert_eq!(
            outputs[0],
            CoordinatorOutput::Persist(CoordinatorRecord::Preparing { tx: tx(), expires_at: EXPIRY, legs: legs() })
        );
        let prepares = sends(&outputs[1..]);
        assert_eq!(prepares.len(), 2);
        assert_eq!(prepares[0].0, B2);
        assert!(matches!(&prepares[0].1, Message::Prepare { coordinator: ME, expires_at: EXPIRY, debits, credits, .. }
            if debits.len() == 1 && credits.is_empty()));
        assert_eq!(outputs.len(), 3);
        assert_eq!(c.phase(&tx()), Some(TxPhase::Preparing));
        assert_eq!(c.in_flight(), 1);
    }

    #[test]
    fn it_commits_only_when_every_participant_voted_yes_persisting_before_sending() {
        let mut c = begun();
        assert_eq!(vote(&mut c, B2, Vote::Yes, at(1)), vec![]);
        assert_eq!(vote(&mut c, B2, Vote::Yes, at(2)), vec![], "a repeated vote counts once");
        assert_eq!(vote(&mut c, B3, Vote::Yes, at(3)), decided(Decision::Committed));
        assert_eq!(c.phase(&tx()), Some(TxPhase::Decided(Decision::Committed)));
    }

    #[test]
    fn one_no_vote_aborts_at_once_at_every_participant() {
        let mut c = begun();
        assert_eq!(vote(&mut c, B3, no(), at(1)), decided(Decision::Aborted));
        // The other participant's late yes gets the abort straight away.
        assert_eq!(sends(&vote(&mut c, B2, Vote::Yes, at(2))), vec![(B2, Message::Abort { tx: tx() })]);
    }

    #[test]
    fn votes_missing_at_the_expiry_abort_and_a_later_yes_cannot_commit() {
        let mut c = begun();
        vote(&mut c, B2, Vote::Yes, at(1));
        assert_eq!(
            c.tick(TimestampMs(EXPIRY.0 - 1)).iter().filter(|o| matches!(o, CoordinatorOutput::Persist(_))).count(),
            0
        );
        assert_eq!(c.tick(EXPIRY), decided(Decision::Aborted));
        vote(&mut c, B3, Vote::Yes, TimestampMs(EXPIRY.0 + 1));
        assert_eq!(c.phase(&tx()), Some(TxPhase::Decided(Decision::Aborted)));
    }

    #[test]
    fn silent_participants_get_their_prepare_again_with_backoff() {
        let mut c = begun();
        vote(&mut c, B2, Vote::Yes, at(1));
        assert_eq!(c.tick(at(99)), vec![]);
        let resent = sends(&c.tick(at(100)));
        assert_eq!(resent.len(), 1);
        assert!(matches!(resent[0], (B3, Message::Prepare { .. })), "only the silent one: {resent:?}");
        // The gaps double up to the cap: 100, 200, 400.
        let fired: Vec<i64> = (101..1_000).filter(|ms| !c.tick(at(*ms)).is_empty()).collect();
        assert_eq!(fired, vec![300, 700], "and nothing more before the expiry, at 1 000");
    }

    #[test]
    fn the_decision_is_re_sent_until_every_ack_then_finished_is_persisted() {
        let mut c = begun();
        vote(&mut c, B2, Vote::Yes, at(1));
        vote(&mut c, B3, Vote::Yes, at(2));
        assert_eq!(c.step(B2, Message::Ack { tx: tx(), from: B2 }, at(3)), vec![]);
        let resent = sends(&c.tick(at(102)));
        assert_eq!(resent, vec![(B3, Message::Commit { tx: tx() })], "only to the one that has not acked");
        // The backoff doubles up to the cap: 100, 200, 400, 400, ...
        let fired: Vec<i64> = (103..1_500).filter(|ms| !c.tick(at(*ms)).is_empty()).collect();
        assert_eq!(fired, vec![302, 702, 1_102]);
        assert_eq!(
            c.step(B3, Message::Ack { tx: tx(), from: B3 }, at(1_500)),
            vec![
                CoordinatorOutput::Persist(CoordinatorRecord::Finished { tx: tx(), decision: Decision::Committed }),
                CoordinatorOutput::Finished { tx: tx() },
            ]
        );
        assert_eq!(c.phase(&tx()), Some(TxPhase::Finished(Decision::Committed)));
        assert_eq!(c.in_flight(), 0);
        assert_eq!(c.tick(at(10_000)), vec![]);
        // A late duplicate ack changes nothing.
        assert_eq!(c.step(B3, Message::Ack { tx: tx(), from: B3 }, at(10_001)), vec![]);
    }

    #[test]
    fn messages_from_strangers_or_with_a_forged_sender_are_ignored() {
        let mut c = begun();
        assert_eq!(vote(&mut c, BankId(9), no(), at(1)), vec![]);
        assert_eq!(c.step(B2, Message::Vote { tx: tx(), from: B3, vote: no() }, at(1)), vec![]);
        assert_eq!(c.step(B2, Message::Commit { tx: tx() }, at(1)), vec![]);
        assert_eq!(c.phase(&tx()), Some(TxPhase::Preparing));
    }

    #[test]
    fn recovery_aborts_what_was_preparing_and_re_sends_what_was_decided() {
        let other = TransferId(Uuid::from_u128(43));
        let done = TransferId(Uuid::from_u128(44));
        let records = vec![
            CoordinatorRecord::Preparing { tx: tx(), expires_at: EXPIRY, legs: legs() },
            CoordinatorRecord::Preparing { tx: other, expires_at: EXPIRY, legs: legs() },
            CoordinatorRecord::Preparing { tx: done, expires_at: EXPIRY, legs: legs() },
            CoordinatorRecord::Decided {
                tx: other,
                decision: Decision::Committed,
                participants: BTreeSet::from([B2, B3]),
            },
            CoordinatorRecord::Finished { tx: done, decision: Decision::Committed },
        ];
        let mut c = Coordinator::recover(ME, RETRY, records);
        assert_eq!(c.phase(&tx()), Some(TxPhase::Preparing));
        assert_eq!(c.phase(&other), Some(TxPhase::Decided(Decision::Committed)));
        assert_eq!(c.phase(&done), Some(TxPhase::Finished(Decision::Committed)));
        // A vote for the preparing one finds it aborted: its earlier votes are gone.
        let outputs = vote(&mut c, B2, Vote::Yes, at(1));
        assert_eq!(outputs, decided(Decision::Aborted));
        let outputs = c.tick(at(2));
        assert_eq!(
            sends(&outputs),
            vec![(B2, Message::Commit { tx: other }), (B3, Message::Commit { tx: other })],
            "the decided one is re-sent at once (the aborted one was just sent)"
        );
        let query = |tx| Message::QueryOutcome { tx, from: B2 };
        let outcome = |tx, decision| vec![CoordinatorOutput::Send { to: B2, msg: Message::Outcome { tx, decision } }];
        assert_eq!(c.step(B2, query(done), at(3)), outcome(done, Some(Decision::Committed)));
    }

    #[test]
    fn records_travel_as_json_and_come_back_equal() {
        let records = vec![
            CoordinatorRecord::Preparing { tx: tx(), expires_at: EXPIRY, legs: legs() },
            CoordinatorRecord::Decided {
                tx: tx(),
                decision: Decision::Aborted,
                participants: BTreeSet::from([B2, B3]),
            },
            CoordinatorRecord::Finished { tx: tx(), decision: Decision::Aborted },
        ];
        let json = serde_json::to_string(&records[2]).expect("serializes");
        assert_eq!(json, r#"{"finished":{"tx":"00000000-0000-0000-0000-00000000002a","decision":"aborted"}}"#);
        for record in records {
            let json = serde_json::to_string(&record).expect("serializes");
            assert_eq!(serde_json::from_str::<CoordinatorRecord>(&json).expect("parses"), record, "{json}");
        }
    }

    #[test]
    #[should_panic(expected = "disagree on its decision")]
    fn records_that_disagree_on_a_decision_are_a_bug() {
        let participants = BTreeSet::from([B2]);
        Coordinator::recover(
            ME,
            RETRY,
            vec![
                CoordinatorRecord::Decided { tx: tx(), decision: Decision::Committed, participants },
                CoordinatorRecord::Finished { tx: tx(), decision: Decision::Aborted },
            ],
        );
    }

    /// Forgetting finished transactions is a memory matter only: before its driver recalls the
    /// decision, a late query gets a presumed abort (which is why the driver must recall first);
    /// after, the real decision. Active transactions are never forgotten.
    #[test]
    fn forgotten_finished_transactions_answer_again_once_recalled() {
        let mut c = begun();
        vote(&mut c, B2, Vote::Yes, at(1));
        vote(&mut c, B3, Vote::Yes, at(2));
        c.step(B2, Message::Ack { tx: tx(), from: B2 }, at(3));
        c.step(B3, Message::Ack { tx: tx(), from: B3 }, at(4));
        assert_eq!(c.phase(&tx()), Some(TxPhase::Finished(Decision::Committed)));
        let later = TransferId(Uuid::from_u128(43));
        c.begin(later, legs(), EXPIRY, at(5));

        assert_eq!(c.forget_finished(TransferId(Uuid::from_u128(u128::MAX)), usize::MAX), 1, "the active one stays");
        assert_eq!((c.phase(&tx()), c.phase(&later)), (None, Some(TxPhase::Preparing)));
        let query = Message::QueryOutcome { tx: tx(), from: B2 };
        let answer = sends(&c.step(B2, query.clone(), at(6)));
        assert_eq!(answer, vec![(B2, Message::Outcome { tx: tx(), decision: Some(Decision::Aborted) })]);

        c.recall_finished(tx(), Decision::Committed);
        c.recall_finished(later, Decision::Aborted);
        assert_eq!(c.phase(&later), Some(TxPhase::Preparing), "recalling never overrides an active transaction");
        let answer = sends(&c.step(B2, query, at(7)));
        assert_eq!(answer, vec![(B2, Message::Outcome { tx: tx(), decision: Some(Decision::Committed) })]);
        assert_eq!(c.finished_remembered(), 1);
    }
}
