//! One bank's ring machine. See the [module essay](super).

use std::collections::{BTreeMap, BTreeSet};

use super::{Epoch, Hop, RingConfig, RingDurable, RingMessage, RingOutput, Tick, Token, TokenPosition, VoteRecord};
use crate::ids::BankId;

/// What a bank is doing in the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RingRole {
    /// Waiting for the token (and watching the loss timeout).
    Idle,
    /// Holding the token: a visit is under way.
    Holding,
    /// Passed the token; waiting for the successor's acknowledgement.
    Passing,
    /// Asking for pre-votes.
    PreCandidate,
    /// Voted for itself; asking for votes.
    Candidate,
}

/// Permission to start cross-bank work now (see [`RingNode::work_permit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkPermit {
    pub epoch: Epoch,
    pub hop: Hop,
    pub budget_ops: u32,
    pub lease_until: Tick,
}

/// The ring as one bank sees it, for its status page and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingStatus {
    pub me: BankId,
    pub role: RingRole,
    /// The highest epoch this bank knows of.
    pub epoch: Epoch,
    /// The token this bank holds, if any.
    pub holding: Option<TokenPosition>,
    /// The last holder this bank knows of: itself, or the successor that acknowledged its pass.
    pub holder: Option<BankId>,
    /// When this bank last held or passed the token (its own tick).
    pub last_seen: Option<Tick>,
    /// Visits of the token to this bank since it started: one per rotation of a healthy ring.
    pub visits: u64,
    /// Members not heard from within the loss timeout.
    pub suspected: BTreeSet<BankId>,
    pub durable: RingDurable,
}

/// A visit of the token to this bank.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Visit {
    token: Token,
    accepted_at: Tick,
    lease_until: Tick,
    /// Set when the driver reported nothing to do: the visit ends then, unless work is reported.
    idle_until: Option<Tick>,
}

/// Whether a visit started any work (decides how soon the next idle holder passes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VisitWork {
    Started,
    Nothing,
}

/// A pass waiting for its acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Pass {
    token: Token,
    to: BankId,
    first_sent_at: Tick,
    next_send_at: Tick,
}

/// One round of a (pre-)election; `started_at` is also the round's id in messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Round {
    epoch: Epoch,
    started_at: Tick,
    granted: BTreeSet<BankId>,
    answered: BTreeSet<BankId>,
    next_send_at: Tick,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Role {
    Idle,
    Holding(Visit),
    Passing(Pass),
    PreCandidate(Round),
    Candidate(Round),
}

/// One bank's token-ring machine. See the [module essay](super).
///
/// Inputs: [`step`](Self::step) for every ring message that arrives, [`tick`](Self::tick) every
/// tick, [`batch_done`](Self::batch_done) when the work of a visit is begun. Outputs are
/// [`RingOutput`]s, carried out in order (a `Persist` before anything after it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RingNode {
    config: RingConfig,
    durable: RingDurable,
    role: Role,
    /// The last ring activity: accepting, passing or creating a token, granting a vote (to any
    /// candidate, itself included), or starting. Votes wait a loss timeout after it.
    activity_at: Tick,
    /// When this incarnation started.
    started_at: Tick,
    /// The highest epoch this bank knows of (voted, accepted, or heard of).
    highest: Epoch,
    /// When each other member was last heard from (this incarnation).
    heard_at: BTreeMap<BankId, Tick>,
    /// No candidacy before this (after a failed round).
    stand_not_before: Tick,
    /// This bank's last pass went unacknowledged: it stands first.
    pass_unacked: bool,
    /// The lowest candidate that asked for a pre-vote lately, and when.
    lower_candidate: Option<(BankId, Tick)>,
    last_holder: Option<BankId>,
    last_seen: Option<Tick>,
    visits: u64,
}

impl RingNode {
    /// A bank's first start: nothing durable yet. Call [`tick`](Self::tick) next.
    pub fn new(config: RingConfig, now: Tick) -> Self {
        RingNode::recover(config, RingDurable::default(), now)
    }

    /// A restart from the durable state last persisted. The bank holds no token (it never resumes
    /// one) and counts the restart as ring activity. Call [`tick`](Self::tick) next.
    pub fn recover(config: RingConfig, durable: RingDurable, now: Tick) -> Self {
        let highest = durable.voted_epoch().max(durable.accepted_epoch());
        RingNode {
            config,
            durable,
            role: Role::Idle,
            activity_at: now,
            started_at: now,
            highest,
            heard_at: BTreeMap::new(),
            stand_not_before: now,
            pass_unacked: false,
            lower_candidate: None,
            last_holder: None,
            last_seen: None,
            visits: 0,
        }
    }

    pub fn config(&self) -> &RingConfig {
        &self.config
    }

    /// The durable state as last emitted in a [`RingOutput::Persist`].
    pub fn durable(&self) -> &RingDurable {
        &self.durable
    }

    pub fn role(&self) -> RingRole {
        match self.role {
            Role::Idle => RingRole::Idle,
            Role::Holding(_) => RingRole::Holding,
            Role::Passing(_) => RingRole::Passing,
            Role::PreCandidate(_) => RingRole::PreCandidate,
            Role::Candidate(_) => RingRole::Candidate,
        }
    }

    /// Whether the bank may start cross-bank work at `now`, and how much per visit.
    pub fn work_permit(&self, now: Tick) -> Option<WorkPermit> {
        match &self.role {
            Role::Holding(visit) if now < visit.lease_until => Some(WorkPermit {
                epoch: visit.token.epoch,
                hop: visit.token.hop,
                budget_ops: self.config.settings().ops_per_visit,
                lease_until: visit.lease_until,
            }),
            _ => None,
        }
    }

    /// The ring as this bank sees it at `now`.
    pub fn status(&self, now: Tick) -> RingStatus {
        let holding = match &self.role {
            Role::Holding(visit) => Some(visit.token.position()),
            _ => None,
        };
        let me = self.config.me();
        RingStatus {
            me,
            role: self.role(),
            epoch: self.highest,
            holding,
            holder: self.last_holder,
            last_seen: self.last_seen,
            visits: self.visits,
            suspected: self
                .config
                .members()
                .iter()
                .copied()
                .filter(|b| *b != me && !self.presumed_live(*b, now))
                .collect(),
            durable: self.durable.clone(),
        }
    }

    /// Handles a message from member `from` (authenticated by the transport). Messages from
    /// non-members, or from this bank itself, are ignored.
    pub fn step(&mut self, from: BankId, msg: RingMessage, now: Tick) -> Vec<RingOutput> {
        let mut out = Vec::new();
        if from == self.config.me() || !self.config.members().contains(&from) {
            return out;
        }
        self.heard_at.insert(from, now);
        match msg {
            RingMessage::Token(token) => self.on_token(from, token, now, &mut out),
            RingMessage::TokenAck { epoch, hop } => self.on_token_answer(from, TokenPosition { epoch, hop }, true, now),
            RingMessage::TokenRefused { epoch, hop, highest } => {
                self.learn(highest);
                self.on_token_answer(from, TokenPosition { epoch, hop }, false, now);
            }
            RingMessage::PreVote { epoch, round } => {
                let granted = self.on_pre_vote(from, epoch, now);
                let msg = RingMessage::PreVoteReply { epoch, round, granted, highest: self.highest };
                out.push(RingOutput::Send { to: from, msg });
            }
            RingMessage::RequestVote { epoch, round } => self.on_request_vote(from, epoch, round, now, &mut out),
            RingMessage::PreVoteReply { epoch, round, granted, highest } => {
                self.learn(highest);
                self.on_reply(from, epoch, round, granted, highest, false, now, &mut out);
            }
            RingMessage::VoteReply { epoch, round, granted, highest } => {
                self.learn(highest);
                self.on_reply(from, epoch, round, granted, highest, true, now, &mut out);
            }
        }
        out
    }

    /// Moves time to `now`: ends a visit at its lease end or idle pause, re-sends or gives up an
    /// unacknowledged pass, re-sends or ends an election round, and stands for election when the
    /// token has been silent for the loss timeout.
    pub fn tick(&mut self, now: Tick) -> Vec<RingOutput> {
        let mut out = Vec::new();
        let hop_timeout = self.config.settings().hop_timeout_ticks;
        let retry = self.config.settings().retry_ticks;
        let round_ticks = self.config.election_round_ticks();
        let majority = self.config.majority();
        let me = self.config.me();
        match &mut self.role {
            Role::Idle => {}
            Role::Holding(visit) => {
                if now >= visit.lease_until || visit.idle_until.is_some_and(|t| now >= t) {
                    // Work started in the visit is reported by `batch_done`, which ends it.
                    self.end_visit(now, VisitWork::Nothing, &mut out);
                }
            }
            Role::Passing(pass) => {
                if now >= pass.first_sent_at.plus(hop_timeout) {
                    // Never re-sent to anyone else: the successor may hold it. Regeneration
                    // replaces it, with this bank standing first.
                    self.role = Role::Idle;
                    self.pass_unacked = true;
                } else if now >= pass.next_send_at {
                    pass.next_send_at = now.plus(retry);
                    out.push(RingOutput::Send { to: pass.to, msg: RingMessage::Token(pass.token.clone()) });
                }
            }
            Role::PreCandidate(round) | Role::Candidate(round) => {
                if now >= round.started_at.plus(round_ticks) {
                    // A pre-vote round is decided at its end, so a candidate with a lower id
                    // that stood meanwhile has been heard (and deferred to) first.
                    let won_pre_vote = round.granted.len() >= majority;
                    let epoch = round.epoch;
                    if won_pre_vote && matches!(self.role, Role::PreCandidate(_)) {
                        self.start_vote(epoch, now, &mut out);
                    } else {
                        self.role = Role::Idle;
                        self.stand_not_before = now.plus(round_ticks);
                    }
                } else if now >= round.next_send_at {
                    round.next_send_at = now.plus(retry);
                    let (epoch, started_at) = (round.epoch, round.started_at);
                    // Re-asked: the silent, and those that refused — a refusal often only means
                    // the member's own loss timer runs a hop behind this bank's, and a grant a few
                    // ticks later still counts in this round (instead of costing two rounds).
                    let silent: Vec<BankId> = self
                        .config
                        .members()
                        .iter()
                        .copied()
                        .filter(|b| *b != me && !round.granted.contains(b))
                        .collect();
                    let msg = match self.role {
                        Role::PreCandidate(_) => RingMessage::PreVote { epoch, round: started_at },
                        _ => RingMessage::RequestVote { epoch, round: started_at },
                    };
                    out.extend(silent.into_iter().map(|to| RingOutput::Send { to, msg: msg.clone() }));
                }
            }
        }
        if self.role == Role::Idle {
            self.maybe_stand(now, &mut out);
        }
        out
    }

    /// The driver reports the batch of this visit begun: `ops_started` operations were started
    /// under the current permit. With at least one, the visit ends now and the token moves on;
    /// with none (nothing to do), it moves on too while the ring is busy (the token went less
    /// than a whole rotation without work); in an idle ring it stays for the idle pause after its
    /// acceptance, and work arriving meanwhile may still be started (then call this again).
    /// Ignored when not holding.
    pub fn batch_done(&mut self, now: Tick, ops_started: u32) -> Vec<RingOutput> {
        let mut out = Vec::new();
        let idle_pause = self.config.settings().idle_pause_ticks;
        if let Role::Holding(visit) = &mut self.role {
            let idle_until = visit.accepted_at.plus(idle_pause);
            let members = self.config.members().len() as u32;
            if ops_started > 0 {
                self.end_visit(now, VisitWork::Started, &mut out);
            } else if now >= idle_until || visit.token.idle_visits < members {
                // Nothing to do here, but others may have: while the token has not gone a whole
                // rotation without work, it moves on at once, so a busy ring does not wait at
                // its idle members. An idle ring pauses at every member.
                self.end_visit(now, VisitWork::Nothing, &mut out);
            } else {
                visit.idle_until = Some(idle_until);
            }
        }
        out
    }

    // ----- the token ------------------------------------------------------------------------------

    fn on_token(&mut self, from: BankId, token: Token, now: Tick, out: &mut Vec<RingOutput>) {
        let position = token.position();
        self.learn(position.epoch);
        let ack = RingMessage::TokenAck { epoch: position.epoch, hop: position.hop };
        if self.durable.accepted == Some(position) {
            // A repeat (a retry, a duplicate, or the pass whose ack was lost): acknowledge it
            // again, and take nothing: this bank took it already, and has passed it on or lost
            // it in a restart.
            out.push(RingOutput::Send { to: from, msg: ack });
            return;
        }
        let newer = self.durable.accepted.is_none_or(|accepted| position > accepted);
        if !newer || position.epoch < self.durable.voted_epoch() {
            let msg = RingMessage::TokenRefused { epoch: position.epoch, hop: position.hop, highest: self.highest };
            out.push(RingOutput::Send { to: from, msg });
            return;
        }
        self.durable.accepted = Some(position);
        out.push(RingOutput::Persist(self.durable.clone()));
        // Holding an older token now would break the timing the module essay relies on; if it
        // happens anyway (a driver that broke an assumption), the newer token wins.
        if let Role::Holding(visit) = &self.role {
            out.push(RingOutput::StopWork { epoch: visit.token.epoch, hop: visit.token.hop });
        }
        out.push(RingOutput::Send { to: from, msg: ack });
        self.begin_visit(token, now, out);
    }

    /// An acknowledgement (`acked`) or refusal of a pass.
    fn on_token_answer(&mut self, from: BankId, position: TokenPosition, acked: bool, now: Tick) {
        let Role::Passing(pass) = &self.role else { return };
        if pass.to != from || pass.token.position() != position {
            return;
        }
        self.role = Role::Idle;
        if acked {
            self.last_holder = Some(from);
            self.last_seen = Some(now);
            self.activity_at = now;
        }
        // Refused: the successor knows a newer token; this one ends here.
    }

    fn begin_visit(&mut self, token: Token, now: Tick, out: &mut Vec<RingOutput>) {
        let settings = *self.config.settings();
        let lease_until = now.plus(settings.lease_ticks);
        out.push(RingOutput::StartWork {
            epoch: token.epoch,
            hop: token.hop,
            budget_ops: settings.ops_per_visit,
            lease_until,
        });
        self.learn(token.epoch);
        self.role = Role::Holding(Visit { token, accepted_at: now, lease_until, idle_until: None });
        self.activity_at = now;
        self.last_seen = Some(now);
        self.last_holder = Some(self.config.me());
        self.pass_unacked = false;
        self.visits += 1;
    }

    /// Ends the visit: stops work and passes the token to the next member not skipped.
    fn end_visit(&mut self, now: Tick, work: VisitWork, out: &mut Vec<RingOutput>) {
        let Role::Holding(visit) = std::mem::replace(&mut self.role, Role::Idle) else { return };
        out.push(RingOutput::StopWork { epoch: visit.token.epoch, hop: visit.token.hop });
        if now > visit.lease_until {
            // The driver ticked late (assumption A2 broken): a pass now could outlive the loss
            // timeout other banks count on. Let the token go; regeneration replaces it.
            self.pass_unacked = true;
            return;
        }
        let mut skip = visit.token.skip;
        skip.retain(|b| !self.heard_recently(*b, now));
        let members = self.config.members().len() as u32;
        let idle_visits = match work {
            VisitWork::Started => 0,
            VisitWork::Nothing => (visit.token.idle_visits + 1).min(members),
        };
        let Some(to) = self.successor(&skip) else {
            // A ring of one: the next visit is this bank's again.
            assert_eq!(members, 1, "a token with every other member skipped");
            self.begin_visit(Token { skip, idle_visits, ..visit.token }, now, out);
            return;
        };
        let token = Token { epoch: visit.token.epoch, hop: Hop(visit.token.hop.0 + 1), skip, idle_visits };
        out.push(RingOutput::Send { to, msg: RingMessage::Token(token.clone()) });
        let next_send_at = now.plus(self.config.settings().retry_ticks);
        self.role = Role::Passing(Pass { token, to, first_sent_at: now, next_send_at });
        self.activity_at = now;
        self.last_seen = Some(now);
    }

    /// The first member after this one, cyclically by id, that is not skipped.
    fn successor(&self, skip: &BTreeSet<BankId>) -> Option<BankId> {
        let me = self.config.me();
        let members = self.config.members();
        let after = members.iter().filter(|b| **b > me);
        let before = members.iter().filter(|b| **b < me);
        after.chain(before).copied().find(|b| !skip.contains(b))
    }

    // ----- elections ------------------------------------------------------------------------------

    /// Whether this bank would now give a fresh vote for `epoch` to `candidate` (rule 5 and 6 of
    /// the module essay). A repeat of the vote it already gave is handled by the caller.
    fn may_vote_afresh(&self, epoch: Epoch, candidate: BankId, now: Tick) -> bool {
        if self.durable.accepted_epoch() >= epoch || self.durable.voted_epoch() >= epoch {
            return false;
        }
        if epoch == Epoch::GENESIS {
            // No token can be older than the first one: no activity rule.
            return candidate == self.config.lowest() && self.durable.voted.is_none();
        }
        let busy = matches!(self.role, Role::Holding(_) | Role::Passing(_));
        !busy && now >= self.activity_at.plus(self.config.loss_timeout_ticks())
    }

    /// Answers a pre-vote, and lets the lowest candidate go first: a bank defers its own
    /// candidacy to a candidate with a lower id, stands up for itself against a higher one, and
    /// refuses a higher one while a lower one asked recently.
    fn on_pre_vote(&mut self, from: BankId, epoch: Epoch, now: Tick) -> bool {
        let me = self.config.me();
        let defer_ticks = 2 * self.config.election_round_ticks();
        if from < me {
            if matches!(self.role, Role::PreCandidate(_)) {
                self.role = Role::Idle;
            }
            self.stand_not_before = self.stand_not_before.max(now.plus(defer_ticks));
        }
        let recent_lower = self.lower_candidate.filter(|(_, at)| now < at.plus(defer_ticks));
        if recent_lower.is_none_or(|(lower, _)| from <= lower) {
            self.lower_candidate = Some((from, now));
        }
        let lower_stands = recent_lower.is_some_and(|(lower, _)| lower < from)
            || (me < from && matches!(self.role, Role::PreCandidate(_) | Role::Candidate(_)));
        !lower_stands && self.may_vote_afresh(epoch, from, now)
    }

    fn on_request_vote(&mut self, from: BankId, epoch: Epoch, round: Tick, now: Tick, out: &mut Vec<RingOutput>) {
        let granted = if self.durable.voted == Some(VoteRecord { epoch, candidate: from })
            && self.durable.accepted_epoch() < epoch
        {
            // The vote this bank already gave (a retry, or a new round of the first epoch).
            self.activity_at = now;
            true
        } else if self.may_vote_afresh(epoch, from, now) {
            self.durable.voted = Some(VoteRecord { epoch, candidate: from });
            out.push(RingOutput::Persist(self.durable.clone()));
            self.activity_at = now;
            if matches!(self.role, Role::PreCandidate(_) | Role::Candidate(_)) {
                self.role = Role::Idle;
            }
            true
        } else {
            false
        };
        // A request means its candidate voted for itself in `epoch`: a later candidacy here
        // aims above it rather than duel.
        self.learn(epoch);
        out.push(RingOutput::Send {
            to: from,
            msg: RingMessage::VoteReply { epoch, round, granted, highest: self.highest },
        });
    }

    /// A reply to this bank's pre-vote (`vote == false`) or vote request.
    #[allow(clippy::too_many_arguments)]
    fn on_reply(
        &mut self,
        from: BankId,
        epoch: Epoch,
        round_id: Tick,
        granted: bool,
        highest: Epoch,
        vote: bool,
        now: Tick,
        out: &mut Vec<RingOutput>,
    ) {
        let round_ticks = self.config.election_round_ticks();
        let majority = self.config.majority();
        let round = match &mut self.role {
            Role::PreCandidate(round) if !vote => round,
            Role::Candidate(round) if vote => round,
            _ => return,
        };
        if round.epoch != epoch || round.started_at != round_id || now >= round.started_at.plus(round_ticks) {
            return;
        }
        round.answered.insert(from);
        if granted {
            round.granted.insert(from);
            // A pre-vote round goes on to its end (see `tick`); a vote is won at once.
            if vote && round.granted.len() >= majority {
                self.create(now, out);
            }
        } else if highest > epoch || (!vote && highest >= epoch) {
            // A newer epoch exists (or, for a pre-vote, is being voted on): this round is lost.
            self.role = Role::Idle;
            self.stand_not_before = now.plus(round_ticks);
        }
    }

    /// Stands for election if the token has been silent long enough (or starts the first epoch).
    fn maybe_stand(&mut self, now: Tick, out: &mut Vec<RingOutput>) {
        if now < self.stand_not_before {
            return;
        }
        let me = self.config.me();
        let genesis_pending = me == self.config.lowest()
            && self.durable.accepted.is_none()
            && self.highest <= Epoch::GENESIS
            && self.durable.voted.is_none_or(|v| v == VoteRecord { epoch: Epoch::GENESIS, candidate: me });
        if genesis_pending {
            self.start_vote(Epoch::GENESIS, now, out);
            return;
        }
        let settings = self.config.settings();
        let rank = if self.pass_unacked {
            0
        } else {
            self.config.members().iter().filter(|b| **b < me && self.presumed_live(**b, now)).count() as u64
        };
        let wait = self.config.loss_timeout_ticks() + rank * settings.priority_stagger_ticks;
        if now < self.activity_at.plus(wait) {
            return;
        }
        let epoch = self.highest.max(Epoch::GENESIS).next();
        if !self.may_vote_afresh(epoch, me, now) {
            return;
        }
        let round = self.open_round(epoch, now, out, |epoch, round| RingMessage::PreVote { epoch, round });
        if round.granted.len() >= self.config.majority() {
            self.start_vote(epoch, now, out);
        } else {
            self.role = Role::PreCandidate(round);
        }
    }

    /// Votes for itself in `epoch` (persisted) and asks every other member for its vote.
    fn start_vote(&mut self, epoch: Epoch, now: Tick, out: &mut Vec<RingOutput>) {
        let me = self.config.me();
        let mine = VoteRecord { epoch, candidate: me };
        let again = self.durable.voted == Some(mine) && self.durable.accepted_epoch() < epoch;
        if !again && !self.may_vote_afresh(epoch, me, now) {
            self.role = Role::Idle;
            return;
        }
        if !again {
            self.durable.voted = Some(mine);
            out.push(RingOutput::Persist(self.durable.clone()));
        }
        self.learn(epoch);
        self.activity_at = now;
        let round = self.open_round(epoch, now, out, |epoch, round| RingMessage::RequestVote { epoch, round });
        self.role = Role::Candidate(round);
        if self.config.majority() == 1 {
            self.create(now, out);
        }
    }

    /// A new round for `epoch`: this bank's own answer counted, a request to every other member.
    fn open_round(
        &self,
        epoch: Epoch,
        now: Tick,
        out: &mut Vec<RingOutput>,
        request: impl Fn(Epoch, Tick) -> RingMessage,
    ) -> Round {
        let me = self.config.me();
        for to in self.config.members().iter().copied().filter(|b| *b != me) {
            out.push(RingOutput::Send { to, msg: request(epoch, now) });
        }
        Round {
            epoch,
            started_at: now,
            granted: BTreeSet::from([me]),
            answered: BTreeSet::from([me]),
            next_send_at: now.plus(self.config.settings().retry_ticks),
        }
    }

    /// Won the election: persists the new token as accepted, then holds it.
    fn create(&mut self, now: Tick, out: &mut Vec<RingOutput>) {
        let Role::Candidate(round) = std::mem::replace(&mut self.role, Role::Idle) else { return };
        assert!(round.granted.len() >= self.config.majority(), "created {} without a majority", round.epoch);
        let position = TokenPosition { epoch: round.epoch, hop: Hop(0) };
        assert!(self.durable.accepted.is_none_or(|a| a < position), "created {position} twice");
        self.durable.accepted = Some(position);
        out.push(RingOutput::Persist(self.durable.clone()));
        let skip = self.config.members().iter().copied().filter(|b| !round.answered.contains(b)).collect();
        self.begin_visit(Token { epoch: round.epoch, hop: Hop(0), skip, idle_visits: 0 }, now, out);
    }

    // ----- helpers --------------------------------------------------------------------------------

    fn learn(&mut self, epoch: Epoch) {
        self.highest = self.highest.max(epoch);
    }

    /// Whether `bank` was heard from within the loss timeout.
    fn heard_recently(&self, bank: BankId, now: Tick) -> bool {
        self.heard_at.get(&bank).is_some_and(|t| now < t.plus(self.config.loss_timeout_ticks()))
    }

    /// Whether `bank` counts as up for the candidacy order: heard from within the loss timeout
    /// (or, before anything was heard of it, the loss timeout since this bank started).
    fn presumed_live(&self, bank: BankId, now: Tick) -> bool {
        let since = self.heard_at.get(&bank).copied().unwrap_or(self.started_at);
        now < since.plus(self.config.loss_timeout_ticks())
    }
}

#[cfg(test)]
mod tests {
    use super::super::RingSettings;
    use super::*;

    const SETTINGS: RingSettings = RingSettings {
        lease_ticks: 10,
        hop_timeout_ticks: 4,
        idle_pause_ticks: 2,
        retry_ticks: 1,
        priority_stagger_ticks: 3,
        ops_per_visit: 8,
    };

    fn node(me: u32, banks: u32, now: u64) -> RingNode {
        let config = RingConfig::new(BankId(me), (1..=banks).map(BankId), SETTINGS).expect("valid config");
        RingNode::new(config, Tick(now))
    }

    fn sends(out: &[RingOutput]) -> Vec<(BankId, RingMessage)> {
        out.iter()
            .filter_map(|o| match o {
                RingOutput::Send { to, msg } => Some((*to, msg.clone())),
                _ => None,
            })
            .collect()
    }

    fn position(epoch: u64, hop: u64) -> TokenPosition {
        TokenPosition { epoch: Epoch(epoch), hop: Hop(hop) }
    }

    fn token(epoch: u64, hop: u64) -> RingMessage {
        RingMessage::Token(Token { epoch: Epoch(epoch), hop: Hop(hop), skip: BTreeSet::new(), idle_visits: 0 })
    }

    /// Delivers every message of `out` sent by `from` to the nodes in `nodes`, at `now`.
    fn deliver(
        nodes: &mut [RingNode],
        from: BankId,
        out: Vec<RingOutput>,
        now: Tick,
    ) -> Vec<(BankId, Vec<RingOutput>)> {
        let mut replies = Vec::new();
        for (to, msg) in sends(&out) {
            let node = nodes.iter_mut().find(|n| n.config().me() == to).expect("a member");
            replies.push((to, node.step(from, msg, now)));
        }
        replies
    }

    #[test]
    fn the_loss_timeout_follows_the_formula_of_the_essay() {
        let config = RingConfig::new(BankId(1), (1..=5).map(BankId), RingSettings::DEFAULT).expect("valid");
        // 2H + (n - 1)(L + 2H) = 40 + 4 · 90.
        assert_eq!(config.loss_timeout_ticks(), 400);
        assert_eq!(config.majority(), 3);
        let solo = RingConfig::new(BankId(7), [BankId(7)], RingSettings::DEFAULT).expect("valid");
        assert_eq!(solo.loss_timeout_ticks(), 40);
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert!(RingConfig::new(BankId(4), (1..=3).map(BankId), SETTINGS).is_err());
        assert!(RingConfig::new(BankId(1), [BankId(1), BankId(2), BankId(1)], SETTINGS).is_err());
        let bad = RingSettings { idle_pause_ticks: 11, ..SETTINGS };
        assert!(RingConfig::new(BankId(1), [BankId(1)], bad).is_err());
        let bad = RingSettings { ops_per_visit: 0, ..SETTINGS };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_lowest_bank_creates_epoch_one_with_a_majority_and_passes_it_with_an_ack() {
        let mut nodes: Vec<RingNode> = (1..=3).map(|b| node(b, 3, 0)).collect();
        let out = nodes[0].tick(Tick(0));
        let own_vote = Some(VoteRecord { epoch: Epoch(1), candidate: BankId(1) });
        assert!(matches!(&out[0], RingOutput::Persist(d) if d.voted == own_vote));
        assert_eq!(sends(&out).len(), 2, "asks both others");
        let replies = deliver(&mut nodes, BankId(1), out, Tick(0));
        // Each voter persists its vote before granting it.
        for (_, reply) in &replies {
            assert!(matches!(reply[0], RingOutput::Persist(_)));
            assert!(matches!(&reply[1], RingOutput::Send { msg: RingMessage::VoteReply { granted: true, .. }, .. }));
        }
        let mut replies = replies.into_iter().map(|(from, reply)| (from, sends(&reply).remove(0)));
        let (from, (to, msg)) = replies.next().expect("bank 2's reply");
        assert_eq!((from, to), (BankId(2), BankId(1)));
        let out = nodes[0].step(BankId(2), msg, Tick(1));
        assert!(matches!(&out[0], RingOutput::Persist(d) if d.accepted == Some(position(1, 0))));
        assert!(matches!(
            out[1],
            RingOutput::StartWork { epoch: Epoch(1), hop: Hop(0), budget_ops: 8, lease_until: Tick(11) }
        ));
        assert_eq!(nodes[0].role(), RingRole::Holding);
        // Bank 3's grant comes after the election: too late to count, but bank 3 is heard from,
        // so the token will not skip it.
        let (from, (_, msg)) = replies.next().expect("bank 3's reply");
        assert!(nodes[0].step(from, msg, Tick(2)).is_empty());
        assert!(nodes[0].work_permit(Tick(10)).is_some());
        assert!(nodes[0].work_permit(Tick(11)).is_none(), "the lease ends");

        // A batch of one operation is decided: stop, then pass to bank 2.
        let out = nodes[0].batch_done(Tick(3), 1);
        assert!(matches!(out[0], RingOutput::StopWork { epoch: Epoch(1), hop: Hop(0) }));
        assert_eq!(sends(&out), vec![(BankId(2), token(1, 1))]);
        // Bank 2 persists, acks, and starts work.
        let reply = nodes[1].step(BankId(1), token(1, 1), Tick(4));
        assert!(matches!(&reply[0], RingOutput::Persist(d) if d.accepted == Some(position(1, 1))));
        assert_eq!(sends(&reply), vec![(BankId(1), RingMessage::TokenAck { epoch: Epoch(1), hop: Hop(1) })]);
        assert!(matches!(reply[2], RingOutput::StartWork { epoch: Epoch(1), hop: Hop(1), .. }));
        // A repeat is acked again and changes nothing.
        let again = nodes[1].step(BankId(1), token(1, 1), Tick(5));
        assert_eq!(
            again,
            vec![RingOutput::Send { to: BankId(1), msg: RingMessage::TokenAck { epoch: Epoch(1), hop: Hop(1) } }]
        );
        let out = nodes[0].step(BankId(2), RingMessage::TokenAck { epoch: Epoch(1), hop: Hop(1) }, Tick(5));
        assert!(out.is_empty());
        assert_eq!(nodes[0].status(Tick(5)).holder, Some(BankId(2)));
        assert_eq!(nodes[0].role(), RingRole::Idle);
    }

    #[test]
    fn an_older_token_is_refused_and_the_sender_learns_the_newer_epoch() {
        let mut bank = node(2, 3, 0);
        bank.step(BankId(1), token(3, 4), Tick(1));
        let out = bank.step(BankId(1), token(3, 2), Tick(2));
        assert_eq!(
            sends(&out),
            vec![(BankId(1), RingMessage::TokenRefused { epoch: Epoch(3), hop: Hop(2), highest: Epoch(3) })]
        );
    }

    #[test]
    fn a_bank_refuses_tokens_older_than_the_epoch_it_voted_in() {
        let mut bank = node(2, 3, 0);
        let loss = bank.config().loss_timeout_ticks();
        let now = Tick(loss);
        let out = bank.step(BankId(3), RingMessage::RequestVote { epoch: Epoch(5), round: Tick(9) }, now);
        assert!(matches!(&out[0], RingOutput::Persist(d) if d.voted_epoch() == Epoch(5)));
        let out = bank.step(BankId(1), token(4, 9), now);
        assert!(matches!(&sends(&out)[0].1, RingMessage::TokenRefused { highest: Epoch(5), .. }));
        // The epoch it voted in is accepted.
        let out = bank.step(BankId(3), token(5, 1), now);
        assert!(matches!(out[0], RingOutput::Persist(_)));
    }

    #[test]
    fn a_bank_votes_once_per_epoch_and_repeats_the_same_grant() {
        let mut bank = node(2, 3, 0);
        let now = Tick(bank.config().loss_timeout_ticks());
        let vote = |epoch, round| RingMessage::RequestVote { epoch: Epoch(epoch), round: Tick(round) };
        let granted = |out: &[RingOutput]| {
            sends(out).iter().any(|(_, m)| matches!(m, RingMessage::VoteReply { granted: true, .. }))
        };
        assert!(granted(&bank.step(BankId(3), vote(2, 1), now)));
        assert!(granted(&bank.step(BankId(3), vote(2, 1), now)), "the same candidate again");
        assert!(!granted(&bank.step(BankId(1), vote(2, 1), now)), "another candidate, same epoch");
        // A higher epoch: only after a loss timeout since its last grant.
        assert!(!granted(&bank.step(BankId(1), vote(3, 2), now.plus(1))));
        let later = now.plus(bank.config().loss_timeout_ticks());
        assert!(granted(&bank.step(BankId(1), vote(3, 2), later)));
    }

    #[test]
    fn a_bank_that_recently_saw_the_token_refuses_pre_votes_and_votes() {
        let mut bank = node(2, 3, 0);
        bank.step(BankId(1), token(1, 1), Tick(1));
        let loss = bank.config().loss_timeout_ticks();
        bank.tick(Tick(11)); // lease end: passes to bank 3
        bank.step(BankId(3), RingMessage::TokenAck { epoch: Epoch(1), hop: Hop(2) }, Tick(12));
        let ask = RingMessage::PreVote { epoch: Epoch(2), round: Tick(20) };
        let out = bank.step(BankId(3), ask.clone(), Tick(12 + loss - 1));
        assert!(matches!(&sends(&out)[0].1, RingMessage::PreVoteReply { granted: false, .. }));
        let out = bank.step(BankId(3), ask, Tick(12 + loss));
        assert!(matches!(&sends(&out)[0].1, RingMessage::PreVoteReply { granted: true, .. }));
        assert!(!out.iter().any(|o| matches!(o, RingOutput::Persist(_))), "a pre-vote commits nothing");
    }

    #[test]
    fn an_unacknowledged_pass_is_retried_to_the_same_successor_only_then_given_up() {
        let mut bank = node(2, 3, 0);
        bank.step(BankId(1), token(1, 1), Tick(0));
        let out = bank.tick(Tick(10));
        // The visit ended at its lease having started nothing: one idle visit more.
        let pass = RingMessage::Token(Token { epoch: Epoch(1), hop: Hop(2), skip: BTreeSet::new(), idle_visits: 1 });
        assert_eq!(sends(&out), vec![(BankId(3), pass.clone())]);
        let mut resent = Vec::new();
        for now in 11..30 {
            resent.extend(sends(&bank.tick(Tick(now))).into_iter().map(|(to, m)| (now, to, m)));
        }
        assert!(resent.iter().all(|(now, to, m)| *now < 14 && *to == BankId(3) && *m == pass), "{resent:?}");
        assert_eq!(resent.len(), 3);
        assert_eq!(bank.role(), RingRole::Idle);
        // After the loss timeout it stands for epoch 2 first: a pre-vote to both others.
        let loss = bank.config().loss_timeout_ticks();
        let out = bank.tick(Tick(10 + loss));
        let asked: Vec<_> = sends(&out).into_iter().map(|(to, _)| to).collect();
        assert_eq!(asked, vec![BankId(1), BankId(3)]);
        assert_eq!(bank.role(), RingRole::PreCandidate);
    }

    #[test]
    fn a_restarted_bank_never_resumes_a_token_it_held() {
        let mut bank = node(2, 3, 0);
        bank.step(BankId(1), token(1, 1), Tick(0));
        let durable = bank.durable().clone();
        let mut bank = RingNode::recover(bank.config().clone(), durable, Tick(3));
        assert_eq!(bank.role(), RingRole::Idle);
        let out = bank.step(BankId(1), token(1, 1), Tick(4));
        assert_eq!(sends(&out), vec![(BankId(1), RingMessage::TokenAck { epoch: Epoch(1), hop: Hop(1) })]);
        assert_eq!(bank.role(), RingRole::Idle, "acked, not taken");
        assert!(bank.work_permit(Tick(4)).is_none());
    }

    /// A token that went a whole rotation (three visits of three banks) without work.
    fn idle_token(epoch: u64, hop: u64, idle_visits: u32) -> RingMessage {
        RingMessage::Token(Token { epoch: Epoch(epoch), hop: Hop(hop), skip: BTreeSet::new(), idle_visits })
    }

    #[test]
    fn an_idle_holder_of_an_idle_ring_keeps_the_token_for_the_idle_pause() {
        let mut bank = node(2, 3, 0);
        bank.step(BankId(1), idle_token(1, 1, 3), Tick(0));
        assert!(bank.batch_done(Tick(0), 0).is_empty());
        assert!(bank.tick(Tick(1)).is_empty());
        let out = bank.tick(Tick(2));
        assert!(matches!(out[0], RingOutput::StopWork { .. }));
        assert_eq!(sends(&out), vec![(BankId(3), idle_token(1, 2, 3))]);
    }

    /// In a busy ring (work started within the last rotation) a holder with nothing to do passes
    /// at once, counting one more idle visit; a holder that starts work resets the count.
    #[test]
    fn an_idle_holder_of_a_busy_ring_passes_at_once() {
        let mut bank = node(2, 3, 0);
        bank.step(BankId(1), idle_token(1, 1, 1), Tick(0));
        let out = bank.batch_done(Tick(0), 0);
        assert_eq!(sends(&out), vec![(BankId(3), idle_token(1, 2, 2))]);
        bank.step(BankId(3), RingMessage::TokenAck { epoch: Epoch(1), hop: Hop(2) }, Tick(1));
        bank.step(BankId(1), idle_token(1, 4, 2), Tick(2));
        let out = bank.batch_done(Tick(2), 5);
        assert_eq!(sends(&out), vec![(BankId(3), idle_token(1, 5, 0))]);
    }

    #[test]
    fn a_ring_of_one_always_holds_the_token() {
        let mut bank = node(1, 1, 0);
        let out = bank.tick(Tick(0));
        assert!(out.iter().any(|o| matches!(o, RingOutput::StartWork { epoch: Epoch(1), .. })));
        assert!(sends(&out).is_empty());
        let out = bank.batch_done(Tick(1), 3);
        assert!(matches!(out[0], RingOutput::StopWork { .. }));
        assert!(matches!(out[1], RingOutput::StartWork { lease_until: Tick(11), .. }));
        assert_eq!(bank.status(Tick(1)).visits, 2);
    }

    #[test]
    fn a_minority_cannot_create_a_token() {
        let mut nodes: Vec<RingNode> = (1..=5).map(|b| node(b, 5, 0)).collect();
        // Bank 1 asks for the first epoch, but only bank 2 hears it.
        let out = nodes[0].tick(Tick(0));
        let to_two: Vec<RingOutput> = out
            .into_iter()
            .filter(|o| matches!(o, RingOutput::Send { to: BankId(2), .. } | RingOutput::Persist(_)))
            .collect();
        for (_, reply) in deliver(&mut nodes, BankId(1), to_two, Tick(0)) {
            for (_, msg) in sends(&reply) {
                let out = nodes[0].step(BankId(2), msg, Tick(1));
                assert!(!out.iter().any(|o| matches!(o, RingOutput::StartWork { .. })), "2 of 5 is no majority");
            }
        }
        assert_eq!(nodes[0].role(), RingRole::Candidate);
    }

    #[test]
    fn messages_travel_as_tagged_json_and_come_back_equal() {
        let skip = BTreeSet::from([BankId(4)]);
        let messages = vec![
            RingMessage::Token(Token { epoch: Epoch(3), hop: Hop(7), skip, idle_visits: 0 }),
            token(1, 1),
            RingMessage::TokenAck { epoch: Epoch(3), hop: Hop(7) },
            RingMessage::TokenRefused { epoch: Epoch(3), hop: Hop(7), highest: Epoch(4) },
            RingMessage::PreVote { epoch: Epoch(4), round: Tick(99) },
            RingMessage::PreVoteReply { epoch: Epoch(4), round: Tick(99), granted: true, highest: Epoch(3) },
            RingMessage::RequestVote { epoch: Epoch(4), round: Tick(99) },
            RingMessage::VoteReply { epoch: Epoch(4), round: Tick(99), granted: false, highest: Epoch(5) },
        ];
        for message in messages {
            let json = serde_json::to_string(&message).expect("serializes");
            let back: RingMessage = serde_json::from_str(&json).expect("parses");
            assert_eq!(back, message, "{json}");
        }
        let json = serde_json::to_string(&RingMessage::TokenAck { epoch: Epoch(3), hop: Hop(7) }).expect("serializes");
        assert_eq!(json, r#"{"type":"token_ack","epoch":3,"hop":7}"#);
        let durable = RingDurable {
            voted: Some(VoteRecord { epoch: Epoch(2), candidate: BankId(3) }),
            accepted: Some(TokenPosition { epoch: Epoch(2), hop: Hop(5) }),
        };
        let json = serde_json::to_string(&durable).expect("serializes");
        assert_eq!(serde_json::from_str::<RingDurable>(&json).expect("parses"), durable);
    }
}
