//! The participant: places, posts and releases one bank's holds as the coordinator says, and
//! asks for the outcome of holds left in doubt. See the [module essay](super).

use std::collections::BTreeMap;

use super::{Backoff, Message, RetryPolicy};
use super::{Decision, Vote};
use crate::error::ErrorCode;
use crate::ids::{BankId, TimestampMs, TransferId};
use crate::ledger::{Change, HoldSet, Ledger};

/// Most `QueryOutcome`s one [`Participant::tick`] sends, so a bank with many holds in doubt (its
/// coordinators down) does not flood the network in one tick. The rest wait for the next ticks:
/// those just asked back off, so every hold gets its turn.
pub const QUERIES_PER_TICK_MAX: usize = 256;

/// The first debited account that `customer` does not hold (an unknown account is left to
/// `place_holds`, which answers `not_found`). Debits without a customer are refused too: a
/// coordinator must always say whose money it moves.
fn unauthorised_debit(
    ledger: &Ledger,
    debits: &[(crate::ids::AccountNumber, crate::money::Amount)],
    customer: Option<&crate::document::Document>,
) -> Option<crate::ids::AccountNumber> {
    debits
        .iter()
        .map(|(number, _)| number)
        .find(|number| match (ledger.account(number), customer) {
            (None, _) => false,
            (Some(account), Some(doc)) => !account.has_holder(doc),
            (Some(_), None) => true,
        })
        .cloned()
}

/// What the driver must do for the participant, in order — after the ledger changes the same
/// call appended are durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParticipantOutput {
    /// Send `msg` to bank `to` (possibly this bank itself: deliver it to its coordinator).
    Send { to: BankId, msg: Message },
    /// A message this bank will not carry out because it contradicts what it already did (a
    /// commit for a transaction aborted here, a decision from a bank that is not the
    /// transaction's coordinator, ...). Nothing changed and nothing is answered. It means a peer
    /// or this code is broken: the driver logs it loudly.
    Refused { from: BankId, tx: TransferId, reason: String },
}

/// The participant of one bank: the protocol around its [`Ledger`]'s holds.
///
/// Its durable state *is* the ledger (holds, and the outcome of every transaction the bank saw),
/// passed in to every call; the struct itself keeps only volatile state — the backoff of its
/// outcome queries — so after a restart a fresh [`Participant::new`] is all there is to rebuild.
///
/// Write-ahead: every call appends to `changes` what the ledger did; the driver makes those
/// changes durable *before* carrying out any returned output (a yes vote must never leave before
/// its holds are durable, nor an ack before the posting it acknowledges).
#[derive(Debug, Clone)]
pub struct Participant {
    bank: BankId,
    retry: RetryPolicy,
    /// Re-send timers of outcome queries, per transaction held in doubt.
    queries: BTreeMap<TransferId, Backoff>,
}

impl Participant {
    /// The participant of `bank` (at start-up, or after a restart).
    pub fn new(bank: BankId, retry: RetryPolicy) -> Self {
        Participant { bank, retry, queries: BTreeMap::new() }
    }

    /// The bank this participant belongs to.
    pub fn bank(&self) -> BankId {
        self.bank
    }

    /// Handles a message from bank `from` (authenticated by the transport): a prepare, a
    /// decision, or the answer to a query. Messages for the coordinator are ignored.
    ///
    /// - `Prepare`: votes yes if its holds are (or were already) placed; no if the funds are
    ///   short, an account is unknown, the transaction is already decided here, or `now` is past
    ///   the prepare's `expires_at` (then the transaction is remembered as aborted, so no later
    ///   copy can place a hold nobody would release).
    /// - `Commit` / `Abort`: posts / releases the holds and acknowledges; a repeat acknowledges
    ///   again and changes nothing.
    /// - `Outcome`: applies a decision like `Commit` / `Abort` (and acknowledges it); an
    ///   undecided answer, or an answer about a transaction decided here already, changes
    ///   nothing.
    pub fn step(
        &mut self,
        ledger: &mut Ledger,
        from: BankId,
        msg: Message,
        now: TimestampMs,
        changes: &mut Vec<Change>,
    ) -> Vec<ParticipantOutput> {
        match msg {
            Message::Prepare { tx, coordinator, expires_at, debits, credits, on_behalf_of, keys, pix } => {
                if coordinator != from {
                    return refused(from, tx, format!("a prepare naming bank {coordinator} as coordinator"));
                }
                let vote = if ledger.holds(&tx).is_some() {
                    // Placed before: the same answer, nothing placed twice.
                    Vote::Yes
                } else if ledger.settlement(&tx).is_none() && now > expires_at {
                    // Too late: the coordinator has given up (or will). Remember the abort.
                    ledger.release_holds(tx, changes).expect("an undecided transaction can be aborted");
                    Vote::No {
                        code: ErrorCode::Expired,
                        detail: format!("the prepare of {tx} arrived after its expiry"),
                    }
                } else if let Some(number) = unauthorised_debit(ledger, &debits, on_behalf_of.as_ref()) {
                    // Not the customer's money: refuse, and remember the abort.
                    ledger.release_holds(tx, changes).expect("an undecided transaction can be aborted");
                    Vote::No {
                        code: ErrorCode::Forbidden,
                        detail: format!("the customer is not a holder of account {number} at bank {}", self.bank),
                    }
                } else {
                    let set = HoldSet { debits, credits, placed_at: now, coordinator, expires_at, keys, pix };
                    Vote::from(ledger.place_holds(tx, set, changes))
                };
                vec![ParticipantOutput::Send { to: coordinator, msg: Message::Vote { tx, from: self.bank, vote } }]
            }
            Message::Commit { tx } => self.apply(ledger, from, tx, Decision::Committed, changes),
            Message::Abort { tx } => self.apply(ledger, from, tx, Decision::Aborted, changes),
            Message::Outcome { tx, decision: Some(decision) } if ledger.settlement(&tx).is_none() => {
                self.apply(ledger, from, tx, decision, changes)
            }
            Message::Outcome { tx, decision: Some(decision) } => match ledger.settlement(&tx).map(Decision::from) {
                // A stale answer (the decision came first by another way), or a contradiction.
                Some(here) if here != decision => {
                    refused(from, tx, format!("an outcome of {decision:?}, but it is {here:?} here"))
                }
                _ => Vec::new(),
            },
            Message::Outcome { decision: None, .. }
            | Message::Vote { .. }
            | Message::Ack { .. }
            | Message::QueryOutcome { .. } => Vec::new(),
        }
    }

    /// Moves time to `now`: for every hold whose `expires_at` has come (the coordinator should
    /// have decided by then), asks its coordinator for the outcome, re-asking with backoff until
    /// the answer arrives. Never decides alone: the hold stays until a decision comes. After a
    /// restart the first tick asks about every hold in doubt at once.
    pub fn tick(&mut self, ledger: &Ledger, now: TimestampMs) -> Vec<ParticipantOutput> {
        // Forget the timers of transactions decided since.
        self.queries.retain(|tx, _| ledger.holds(tx).is_some());
        let retry = self.retry;
        let mut out = Vec::new();
        for (tx, set) in ledger.holds_iter() {
            if out.len() >= QUERIES_PER_TICK_MAX {
                break;
            }
            if now < set.expires_at {
                continue;
            }
            let timer = self.queries.entry(*tx).or_insert_with(|| Backoff::starting_at(now, retry));
            if timer.fire(now, retry) {
                let msg = Message::QueryOutcome { tx: *tx, from: self.bank };
                out.push(ParticipantOutput::Send { to: set.coordinator, msg });
            }
        }
        out
    }

    /// Carries out the decision of `tx` sent by `from`, and acknowledges it.
    fn apply(
        &mut self,
        ledger: &mut Ledger,
        from: BankId,
        tx: TransferId,
        decision: Decision,
        changes: &mut Vec<Change>,
    ) -> Vec<ParticipantOutput> {
        if let Some(set) = ledger.holds(&tx)
            && set.coordinator != from
        {
            return refused(
                from,
                tx,
                format!("a decision from a bank that is not its coordinator ({})", set.coordinator),
            );
        }
        let applied = match decision {
            Decision::Committed => ledger.post_holds(tx, changes),
            Decision::Aborted => ledger.release_holds(tx, changes),
        };
        match applied {
            Ok(()) => {
                self.queries.remove(&tx);
                vec![ParticipantOutput::Send { to: from, msg: Message::Ack { tx, from: self.bank } }]
            }
            Err(error) => refused(from, tx, format!("a decision of {decision:?}: {error}")),
        }
    }
}

fn refused(from: BankId, tx: TransferId, reason: String) -> Vec<ParticipantOutput> {
    vec![ParticipantOutput::Refused { from, tx, reason }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{AccountKind, Holder, NewAccount};
    use crate::contact::{Email, Phone};
    use crate::document::{Cpf, Document};
    use crate::ids::{AccountNumber, Fingerprint, IdempotencyKey};
    use crate::ledger::DepositMethod;
    use crate::money::Amount;
    use uuid::Uuid;

    const ME: BankId = BankId(2);
    const COORDINATOR: BankId = BankId(1);
    const T0: TimestampMs = TimestampMs(1_000);
    const EXPIRY: TimestampMs = TimestampMs(2_000);
    const RETRY: RetryPolicy = RetryPolicy { first_ms: 100, max_ms: 400 };

    fn tx() -> TransferId {
        TransferId(Uuid::from_u128(42))
    }

    fn cents(c: i64) -> Amount {
        Amount::from_cents(c).expect("valid")
    }

    /// A ledger with two accounts, the first holding 10,00.
    fn ledger() -> (Ledger, AccountNumber, AccountNumber) {
        let mut ledger = Ledger::new(ME);
        let mut changes = Vec::new();
        let mut open = |base: u64| {
            let new = NewAccount {
                kind: AccountKind::Individual,
                holders: vec![Holder { name: "Ana".into(), document: Document::Cpf(Cpf::from_base(base)) }],
                email: Email::parse(&format!("a{base}@example.com")).expect("valid"),
                phone: Phone::parse("+5575999991234").expect("valid"),
                password_hash: "x".into(),
            };
            ledger.open_account(new, T0, &mut changes).expect("opens").account.number
        };
        let (a, b) = (open(1), open(2));
        let idem = (IdempotencyKey(Uuid::from_u128(1)), Fingerprint([0; 32]));
        ledger.deposit(&a, cents(1_000), DepositMethod::Cash, idem, T0, &mut changes).expect("deposits");
        (ledger, a, b)
    }

    fn prepare(debit: &AccountNumber, amount_cents: i64, credit: &AccountNumber) -> Message {
        Message::Prepare {
            tx: tx(),
            coordinator: COORDINATOR,
            expires_at: EXPIRY,
            debits: vec![(debit.clone(), cents(amount_cents))],
            credits: vec![(credit.clone(), cents(amount_cents))],
            on_behalf_of: Some(Document::Cpf(Cpf::from_base(1))),
            keys: Vec::new(),
            pix: Vec::new(),
        }
    }

    #[test]
    fn a_prepare_debiting_another_customers_account_is_refused_and_remembered() {
        let (mut ledger, a, b) = ledger();
        let before = ledger.clone();
        let mut msg = prepare(&a, 100, &b);
        if let Message::Prepare { on_behalf_of, .. } = &mut msg {
            *on_behalf_of = Some(Document::Cpf(Cpf::from_base(2)));
        }
        let mut p = Participant::new(ME, RetryPolicy::DEFAULT);
        let mut changes = Vec::new();
        let out = p.step(&mut ledger, COORDINATOR, msg.clone(), T0, &mut changes);
        assert!(
            matches!(&out[..], [ParticipantOutput::Send { msg: Message::Vote { vote: Vote::No { code, .. }, .. }, .. }] if *code == ErrorCode::Forbidden)
        );
        assert_eq!(ledger.account(&a), before.account(&a), "nothing held");
        assert_eq!(
            ledger.settlement(&tx()),
            Some(crate::ledger::Settlement::Released),
            "remembered: a repeat places nothing"
        );
        if let Message::Prepare { on_behalf_of, .. } = &mut msg {
            *on_behalf_of = None;
        }
        let out = p.step(&mut ledger, COORDINATOR, msg, T0, &mut changes);
        assert!(matches!(&out[..], [ParticipantOutput::Send { msg: Message::Vote { vote: Vote::No { .. }, .. }, .. }]));
    }

    fn vote(vote: Vote) -> Vec<ParticipantOutput> {
        vec![ParticipantOutput::Send { to: COORDINATOR, msg: Message::Vote { tx: tx(), from: ME, vote } }]
    }

    fn ack() -> Vec<ParticipantOutput> {
        vec![ParticipantOutput::Send { to: COORDINATOR, msg: Message::Ack { tx: tx(), from: ME } }]
    }

    fn held(ledger: &Ledger, account: &AccountNumber) -> (i64, i64) {
        let acc = ledger.account(account).expect("exists");
        (acc.posted_cents, acc.held_cents)
    }

    #[test]
    fn a_prepare_places_the_holds_in_the_changes_and_votes_yes() {
        let (mut ledger, a, b) = ledger();
        let mut p = Participant::new(ME, RETRY);
        let mut changes = Vec::new();
        assert_eq!(p.step(&mut ledger, COORDINATOR, prepare(&a, 300, &b), T0, &mut changes), vote(Vote::Yes));
        assert!(changes.iter().any(|c| matches!(c, Change::HoldsPlaced { .. })), "{changes:?}");
        let set = ledger.holds(&tx()).expect("held");
        assert_eq!((set.coordinator, set.expires_at, set.placed_at), (COORDINATOR, EXPIRY, T0));
        assert_eq!(held(&ledger, &a), (1_000, 300));
    }

    #[test]
    fn a_repeated_prepare_answers_its_first_vote_even_after_the_expiry() {
        let (mut ledger, a, b) = ledger();
        let mut p = Participant::new(ME, RETRY);
        let mut changes = Vec::new();
        p.step(&mut ledger, COORDINATOR, prepare(&a, 300, &b), T0, &mut changes);
        let mut changes = Vec::new();
        let late = TimestampMs(EXPIRY.0 + 1);
        assert_eq!(p.step(&mut ledger, COORDINATOR, prepare(&a, 300, &b), late, &mut changes), vote(Vote::Yes));
        assert_eq!(changes, vec![], "nothing placed twice, and a yes is never taken back");
        assert_eq!(held(&ledger, &a), (1_000, 300));
    }

    #[test]
    fn a_prepare_after_its_expiry_votes_no_and_remembers_the_abort() {
        let (mut ledger, a, b) = ledger();
        let mut p = Participant::new(ME, RETRY);
        let mut changes = Vec::new();
        let outputs = p.step(&mut ledger, COORDINATOR, prepare(&a, 300, &b), TimestampMs(EXPIRY.0 + 1), &mut changes);
        assert!(
            matches!(&outputs[..], [ParticipantOutput::Send { msg: Message::Vote { vote: Vote::No { code, .. }, .. }, .. }] if *code == ErrorCode::Expired)
        );
        assert_eq!(changes, vec![Change::Settled { transfer: tx(), settlement: crate::ledger::Settlement::Released }]);
        assert_eq!(held(&ledger, &a), (1_000, 0));
    }

    #[test]
    fn a_prepare_that_overspends_votes_no_and_holds_nothing() {
        let (mut ledger, a, b) = ledger();
        let mut p = Participant::new(ME, RETRY);
        let mut changes = Vec::new();
        let outputs = p.step(&mut ledger, COORDINATOR, prepare(&a, 1_001, &b), T0, &mut changes);
        assert!(
            matches!(&outputs[..], [ParticipantOutput::Send { msg: Message::Vote { vote: Vote::No { code, .. }, .. }, .. }] if *code == ErrorCode::InsufficientFunds)
        );
        assert_eq!(held(&ledger, &a), (1_000, 0));
    }

    #[test]
    fn commit_posts_and_acks_and_a_repeat_acks_again_changing_nothing() {
        let (mut ledger, a, b) = ledger();
        let mut p = Participant::new(ME, RETRY);
        let mut changes = Vec::new();
        p.step(&mut ledger, COORDINATOR, prepare(&a, 300, &b), T0, &mut changes);
        assert_eq!(p.step(&mut ledger, COORDINATOR, Message::Commit { tx: tx() }, T0, &mut changes), ack());
        assert_eq!((held(&ledger, &a), held(&ledger, &b)), ((700, 0), (300, 0)));
        let mut changes = Vec::new();
        assert_eq!(p.step(&mut ledger, COORDINATOR, Message::Commit { tx: tx() }, T0, &mut changes), ack());
        assert_eq!(changes, vec![]);
        assert_eq!((held(&ledger, &a), held(&ledger, &b)), ((700, 0), (300, 0)));
    }

    #[test]
    fn an_abort_before_its_prepare_is_remembered_so_the_prepare_holds_nothing() {
        let (mut ledger, a, b) = ledger();
        let mut p = Participant::new(ME, RETRY);
        let mut changes = Vec::new();
        assert_eq!(p.step(&mut ledger, COORDINATOR, Message::Abort { tx: tx() }, T0, &mut changes), ack());
        let outputs = p.step(&mut ledger, COORDINATOR, prepare(&a, 300, &b), T0, &mut changes);
        assert!(matches!(
            &outputs[..],
            [ParticipantOutput::Send { msg: Message::Vote { vote: Vote::No { .. }, .. }, .. }]
        ));
        assert_eq!(held(&ledger, &a), (1_000, 0));
    }

    #[test]
    fn contradictions_and_impostors_are_refused_and_change_nothing() {
        let (mut ledger, a, b) = ledger();
        let mut p = Participant::new(ME, RETRY);
        let mut changes = Vec::new();
        let impostor = BankId(3);
        let refused = |outputs: Vec<ParticipantOutput>| matches!(&outputs[..], [ParticipantOutput::Refused { .. }]);
        assert!(refused(p.step(&mut ledger, impostor, prepare(&a, 300, &b), T0, &mut changes)));
        p.step(&mut ledger, COORDINATOR, prepare(&a, 300, &b), T0, &mut changes);
        let before = ledger.clone();
        let mut changes = Vec::new();
        assert!(refused(p.step(&mut ledger, impostor, Message::Abort { tx: tx() }, T0, &mut changes)));
        p.step(&mut ledger, COORDINATOR, Message::Abort { tx: tx() }, T0, &mut changes);
        let after_abort = ledger.clone();
        let mut changes = Vec::new();
        assert!(refused(p.step(&mut ledger, COORDINATOR, Message::Commit { tx: tx() }, T0, &mut changes)));
        let outcome = Message::Outcome { tx: tx(), decision: Some(Decision::Committed) };
        assert!(refused(p.step(&mut ledger, COORDINATOR, outcome, T0, &mut changes)));
        assert_eq!(changes, vec![]);
        assert_eq!(ledger, after_abort);
        assert_ne!(before, after_abort);
    }

    #[test]
    fn a_hold_in_doubt_past_its_expiry_is_queried_with_backoff_until_decided() {
        let (mut ledger, a, b) = ledger();
        let mut p = Participant::new(ME, RETRY);
        let mut changes = Vec::new();
        p.step(&mut ledger, COORDINATOR, prepare(&a, 300, &b), T0, &mut changes);
        let query =
            vec![ParticipantOutput::Send { to: COORDINATOR, msg: Message::QueryOutcome { tx: tx(), from: ME } }];
        assert_eq!(p.tick(&ledger, TimestampMs(EXPIRY.0 - 1)), vec![], "not in doubt before the expiry");
        let fired: Vec<i64> = (0..1_000)
            .filter(|ms| {
                let outputs = p.tick(&ledger, TimestampMs(EXPIRY.0 + ms));
                assert!(outputs.is_empty() || outputs == query);
                !outputs.is_empty()
            })
            .collect();
        assert_eq!(fired, vec![0, 100, 300, 700]);
        // "Still undecided" changes nothing; the answer settles it, and the queries stop.
        let undecided = Message::Outcome { tx: tx(), decision: None };
        assert_eq!(p.step(&mut ledger, COORDINATOR, undecided, EXPIRY, &mut changes), vec![]);
        assert_eq!(held(&ledger, &a), (1_000, 300));
        let decided = Message::Outcome { tx: tx(), decision: Some(Decision::Committed) };
        assert_eq!(p.step(&mut ledger, COORDINATOR, decided.clone(), EXPIRY, &mut changes), ack());
        assert_eq!(held(&ledger, &a), (700, 0));
        assert_eq!(p.tick(&ledger, TimestampMs(EXPIRY.0 + 10_000)), vec![]);
        // A stale copy of the answer changes nothing.
        let mut changes = Vec::new();
        assert_eq!(p.step(&mut ledger, COORDINATOR, decided, EXPIRY, &mut changes), vec![]);
        assert_eq!(changes, vec![]);
    }
}
