//! The token ring: which bank may start cross-bank work now, as a pure state machine.
//!
//! # The problem
//!
//! The consortium orders its cross-bank work with a token (DESIGN.md §5): a bank starts
//! coordinating cross-bank transactions only while it holds the token, within a lease, in a
//! bounded batch. Money does not depend on the ring — holds already prevent overdraft and double
//! spend — but order and fairness do, and so does keeping two coordinators from racing for the
//! same funds. The original design skipped a silent successor at once and regenerated a lost
//! token on a timer; both can leave two tokens alive. This ring keeps the token unique and its
//! holders one at a time, under lost, duplicated, delayed and reordered messages, crashes,
//! restarts and partitions, and still circulates quickly.
//!
//! # The pieces
//!
//! - **Members** are the consortium's banks, sorted by id (fixed by the consortium file). A
//!   majority is more than half of *all* members, up or not.
//! - **Time** is logical [`Tick`]s. Each bank only compares its own ticks with each other (a
//!   duration since something it saw), never with another bank's: clocks may disagree by any
//!   offset, but must run at the same rate.
//! - **A token** is `Token { epoch, hop, skip }`. An [`Epoch`] is created by an election (epoch
//!   1 too); [`Hop`] counts passes within the epoch (its creator holds hop 0); `skip` lists the
//!   members the token passes over, because they did not answer the election that created it.
//! - **Durable state** ([`RingDurable`]) is all a bank remembers across a restart: the highest
//!   epoch it voted in and for whom, and the last `(epoch, hop)` it accepted. Every change of it
//!   goes out as [`RingOutput::Persist`] *before* the outputs that act on it (write-ahead): the
//!   driver makes it durable before carrying out any later output of the same call.
//!
//! # Message flow
//!
//! ```text
//!   holder H (visit ends)                         successor S (next member not skipped)
//!   ─────────────────────                         ─────────────────────────────────────
//!   StopWork; Token{e, h+1, skip} ──────────────► (e, h+1) newer than last accepted and
//!   (re-sent only to S, only within                e ≥ epoch voted in: Persist, then
//!    hop_timeout of the first send)  ◄── TokenAck  StartWork{e, h+1, budget, lease_until}
//!                                    ◄── TokenAck  a repeat of the last accepted: acked again
//!                                    ◄── TokenRefused{highest}  older: refused (it dies here)
//!
//!   candidate C (token not seen for the loss timeout)          every other member V
//!   ─────────────────────────────────────────────────          ────────────────────
//!   PreVote{E, round} ──────────────────────────────────────► would vote? (nothing changes)
//!                     ◄── PreVoteReply{granted, highest}
//!   majority: Persist(vote E for C); RequestVote{E, round} ─► may vote: Persist(vote E for C)
//!                     ◄── VoteReply{granted, highest}           then grant
//!   majority within the round: Persist(accepted (E, 0)), StartWork; skip = who did not answer
//! ```
//!
//! # The rules
//!
//! 1. **Accepting.** A bank accepts `Token{e, h}` iff `e ≥` the epoch it voted in and `(e, h)` is
//!    newer (lexicographically) than the last `(epoch, hop)` it accepted. It persists `(e, h)`,
//!    then acknowledges and starts a visit. A repeat of exactly its last accepted pass is
//!    acknowledged again and changes nothing (a retry is safe); anything else is refused, and
//!    the refusal tells the sender the highest epoch the refuser knows.
//! 2. **Visiting.** On accepting, the holder emits [`RingOutput::StartWork`]: it may start up to
//!    `ops_per_visit` cross-bank transactions before `lease_until = accepted_at + lease_ticks`.
//!    The visit ends when the driver reports its batch *begun* ([`RingNode::batch_done`] with at
//!    least one operation: the transactions' records and prepares are in the batch that commits
//!    before the pass leaves); when it reports nothing to do, at once if the token has not yet
//!    gone a whole rotation without work (`Token::idle_visits`: a busy ring does not wait at its
//!    idle members), else after `idle_pause_ticks` (an idle ring does not spin); and at the
//!    latest at the lease end. The ring orders the *start* of cross-bank work; the transactions
//!    then finish under the two-phase commit, which never needs the token, while the token moves
//!    on — so many visits' batches are in flight at once, and the lease only has to cover
//!    starting a batch. It then emits [`RingOutput::StopWork`] and passes to the next
//!    member in id order that is not skipped. (It un-skips members it heard from within the
//!    loss timeout; it never adds to `skip`, so an epoch's token visits at least the banks that
//!    elected it.) A ring of one bank starts a new visit at once and never passes.
//! 3. **An unacknowledged pass is not a lost token.** The holder re-sends `Token{e, h+1}` to the
//!    same successor every `retry_ticks`, only until `hop_timeout_ticks` after the first send.
//!    With no ack by then it gives up: it never sends the token of that epoch to anyone else, and
//!    waits for regeneration (with the first priority, since it knows first).
//! 4. **Losing it.** A bank with no *ring activity* — accepting, passing or creating a token,
//!    granting a vote, or restarting — for the loss timeout (plus `priority_stagger_ticks` per
//!    live member with a lower id, none if its own pass went unacknowledged) starts a
//!    **pre-vote** round for epoch `E = highest epoch it knows + 1`. Pre-votes commit nobody, so
//!    a bank cut off from the ring cannot inflate epochs or disturb a healthy ring. A pre-vote
//!    round lasts `election_round_ticks` and is decided at its end; meanwhile the lowest id goes
//!    first: a bank asked by a lower-id candidate drops its own pre-vote round and stands back
//!    for two rounds, a pre-candidate refuses higher-id candidates, and a bank refuses a higher
//!    id while a lower one asked it within two rounds. So candidates do not duel, even with no
//!    stagger.
//! 5. **Voting.** A bank grants a (pre-)vote for `E` to candidate `C` iff `E` is above both the
//!    epoch it voted in and the epoch it last accepted, it is neither holding nor passing a
//!    token, and it has had no ring activity for the loss timeout. (DESIGN.md §5 asks for a
//!    lease since it last held or passed the token. That is not enough: a pass may be accepted
//!    up to `2H` after it was sent, and with four or more banks a majority can miss both ends of
//!    the last pass; the simulator then finds two banks working at once. Hence the loss timeout,
//!    derived below.) A real vote is persisted before it is granted; a bank votes at most once
//!    per epoch, and repeats the same grant to the same candidate (retries are safe). A
//!    candidate with pre-votes from a majority at the end of its round votes for itself
//!    (persisted) and asks for votes; with grants from a majority of the whole consortium, all
//!    replying to its current round and within `election_round_ticks` of the round's start, it
//!    persists `(E, 0)` as accepted and holds the new token. Replies carry the round (the
//!    candidate's tick when it began), so a grant from an older round never counts.
//! 6. **Genesis.** Epoch 1 is elected the same way, except that only the lowest member may stand,
//!    with no pre-vote and no activity rule (no older token can exist), and every member grants
//!    it once it has voted in and accepted nothing. So "the lowest id creates epoch 1 at start",
//!    and a bank that starts late with empty storage cannot create a second first token.
//! 7. **Restarting.** A bank recovers only its durable state. It never resumes a token it held
//!    before (it acknowledges a repeat, but does not take it again): its visit and its pass died
//!    with it, and regeneration replaces the token if it was lost. Its activity clock starts at
//!    the restart.
//!
//! # Guarantees, and why
//!
//! Assumption (A1): a message arrives within `hop_timeout_ticks` of being sent, or never. The
//! inter-bank transport refuses requests older than its freshness window (DESIGN.md §6), so the
//! driver chooses `hop_timeout_ticks` to cover that window plus clock skew.
//! Assumption (A2): the driver ticks the ring every tick and stops starting work at
//! `lease_until` (or at [`RingOutput::StopWork`], if earlier).
//!
//! - **At most one token per epoch.** A token of epoch `E ≥ 1` is created only by a candidate
//!   granted `E` by a majority; each bank grants `E` at most once, durably; two majorities
//!   intersect. Within an epoch, each `(E, h + 1)` is only ever sent by the holder of `(E, h)`
//!   to one successor, and accepted at most once there (later copies are repeats), and no bank
//!   takes a token again after a restart: the epoch's tokens form a single chain.
//! - **No stale acceptance.** A bank refuses every token older than the epoch it voted in.
//! - **A minority never regenerates**: the majority is of the whole consortium.
//! - **Never two banks working at once.** Let `L = lease_ticks`, `H = hop_timeout_ticks`,
//!   `W = election_round_ticks = 2H`, and `n` members. A visit ends by `accepted_at + L`, and a
//!   pass is accepted within `2H` of its first send (re-sends stop at `H`, each copy is at most
//!   `H` old by A1), so a chain moves at most one hop per `L + 2H`. Take a new epoch `E`, the
//!   epoch `x < E` of any other token, and a bank `V` counted by both elections (majorities
//!   intersect; for `x = 1`, by genesis' election). `V` is in `x`'s ring (`skip` never grows), so
//!   from `V`'s last ring activity — its grant for `x` (then `x` was created within `W`), a pass,
//!   or a restart — `x`'s chain either reaches `V` within `n - 1` hops, where `V` accepts it
//!   (new activity) or, once `V` voted higher, refuses it (the chain ends), or ends before. Every
//!   `x` visit therefore ends within `W + (n - 1)(L + 2H)` of `V`'s last activity, and `V`'s
//!   grant for `E` waits exactly that long: the **loss timeout**,
//!   `loss_timeout_ticks = 2H + (n - 1)(L + 2H)`. The same bound, by the same argument, lets
//!   each bank's loss timer trust that a live token would have come by.
//! - **Liveness.** Once messages flow again and a majority is up, a pass succeeds or fails within
//!   `H`, a lost token is noticed within the loss timeout, the lowest candidate's pre-vote and
//!   vote each take one round (the others defer to it), and the new token skips only banks that
//!   did not answer. A skipped bank that is up keeps asking for pre-votes, which every member
//!   hears, so the next holder un-skips it. The simulator bounds the whole recovery
//!   (`tests/ring_sim/mod.rs`, `heal_bound_ticks`).
//!
//! # What it does not handle
//!
//! - *Unbounded delays or clock rates that drift apart.* Leases are time, so mutual exclusion
//!   rests on A1 and on equal clock rates (a driver maps ticks to a monotonic clock; a long pause
//!   of a process is a broken assumption, made visible by the 2PC layer, which does not rely on
//!   the ring for money).
//! - *Lost storage.* A bank that forgets its vote may vote twice in an epoch.
//! - *Byzantine banks*, and changes of membership: members come from the consortium file.
//! - *What work is done.* The queue, the batch and the 2PC transactions are the driver's; the
//!   ring only says when a bank may start some and how many.

mod node;

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::ids::BankId;

pub use node::{RingNode, RingRole, RingStatus, WorkPermit};

/// A point of logical time. Only the driver maps ticks to wall time; the ring only subtracts a
/// bank's own ticks from each other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tick(pub u64);

impl Tick {
    /// `ticks` later (saturating: a far-away deadline is simply never reached).
    pub fn plus(self, ticks: u64) -> Tick {
        Tick(self.0.saturating_add(ticks))
    }
}

impl fmt::Display for Tick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// A generation of the token. Epoch 0 means "none yet"; the first token is epoch 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch of the first token, created at the consortium's start.
    pub const GENESIS: Epoch = Epoch(1);

    /// The epoch after this one.
    pub fn next(self) -> Epoch {
        Epoch(self.0 + 1)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}

/// The number of passes of a token within its epoch; its creator holds hop 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hop(pub u64);

/// Where a token is in the ring's history: ordered by epoch, then hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TokenPosition {
    pub epoch: Epoch,
    pub hop: Hop,
}

impl fmt::Display for TokenPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, h{})", self.epoch, self.hop.0)
    }
}

/// The token as it travels: its position and the members it passes over.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Token {
    pub epoch: Epoch,
    pub hop: Hop,
    /// Members that did not answer the election of this epoch (and were not heard from since):
    /// a holder passes over them. Holders only ever remove members from it.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub skip: BTreeSet<BankId>,
    /// Visits in a row, up to the one that passed it, that started no work (at most the number of
    /// members). Below the number of members, a holder with nothing to do passes at once; at it
    /// (a whole rotation idle), the holder keeps the token for the idle pause. Only timing
    /// depends on it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub idle_visits: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Token {
    pub fn position(&self) -> TokenPosition {
        TokenPosition { epoch: self.epoch, hop: self.hop }
    }
}

/// A durable vote: `candidate` got this bank's vote in `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VoteRecord {
    pub epoch: Epoch,
    pub candidate: BankId,
}

/// Everything a bank must remember of the ring across a restart. Each [`RingOutput::Persist`]
/// carries all of it; the newest one replaces the previous.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RingDurable {
    /// The highest epoch this bank voted in, and for whom.
    pub voted: Option<VoteRecord>,
    /// The last token position this bank accepted (or created).
    pub accepted: Option<TokenPosition>,
}

impl RingDurable {
    /// The epoch voted in (0 if none).
    pub fn voted_epoch(&self) -> Epoch {
        self.voted.map_or(Epoch(0), |v| v.epoch)
    }

    /// The epoch last accepted (0 if none).
    pub fn accepted_epoch(&self) -> Epoch {
        self.accepted.map_or(Epoch(0), |a| a.epoch)
    }
}

/// A message between the ring machines of two banks. The sender is known from the transport
/// (signed request). Every message is safe to receive twice.
///
/// Serialized as JSON with a `type` tag, e.g. `{"type":"token_ack","epoch":3,"hop":7}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RingMessage {
    /// Holder → successor: take the token.
    Token(Token),
    /// Successor → holder: `(epoch, hop)` is durable here.
    TokenAck { epoch: Epoch, hop: Hop },
    /// Successor → holder: that token is older than what this bank accepted or voted for.
    TokenRefused { epoch: Epoch, hop: Hop, highest: Epoch },
    /// Candidate → member: would you vote for me in `epoch`? (Commits nobody.)
    PreVote { epoch: Epoch, round: Tick },
    /// Member → candidate: the answer to a pre-vote; `highest` is the highest epoch it knows.
    PreVoteReply { epoch: Epoch, round: Tick, granted: bool, highest: Epoch },
    /// Candidate → member: vote for me in `epoch`.
    RequestVote { epoch: Epoch, round: Tick },
    /// Member → candidate: the vote (persisted before a grant is sent).
    VoteReply { epoch: Epoch, round: Tick, granted: bool, highest: Epoch },
}

/// What the driver must do for the ring, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RingOutput {
    /// Make this durable state durable (replacing the previous one) before carrying out any later
    /// output of the same call.
    Persist(RingDurable),
    /// Send `msg` to bank `to`.
    Send { to: BankId, msg: RingMessage },
    /// This bank holds the token: it may start up to `budget_ops` cross-bank transactions, none
    /// at or after `lease_until` (its own tick), until [`RingOutput::StopWork`].
    StartWork { epoch: Epoch, hop: Hop, budget_ops: u32, lease_until: Tick },
    /// Start no more cross-bank work under this visit (those already started finish normally).
    StopWork { epoch: Epoch, hop: Hop },
}

/// The ring's tunable settings, in ticks. Every node of a consortium must use the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RingSettings {
    /// How long after accepting the token a holder may start work; also the longest visit.
    pub lease_ticks: u64,
    /// How long a pass may go unacknowledged (re-sent meanwhile); also the bound on a message's
    /// age that the ring relies on (assumption A1 of the module essay).
    pub hop_timeout_ticks: u64,
    /// How long a holder with nothing to do keeps the token, so an idle ring does not spin.
    pub idle_pause_ticks: u64,
    /// Interval of re-sends (an unacknowledged pass, (pre-)vote requests not yet granted).
    pub retry_ticks: u64,
    /// Extra wait before candidacy per live member with a lower id.
    pub priority_stagger_ticks: u64,
    /// Most cross-bank transactions a holder starts per visit (1 reproduces the original design).
    pub ops_per_visit: u32,
}

impl RingSettings {
    /// For a 10 ms tick: a 500 ms lease, a 200 ms hop timeout, a 50 ms idle pause, 50 ms
    /// re-sends, 200 ms per priority rank and 64 operations per visit. Five banks then notice a
    /// lost token after 4 s (the loss timeout), not the original's 30–90 s.
    pub const DEFAULT: RingSettings = RingSettings {
        lease_ticks: 50,
        hop_timeout_ticks: 20,
        idle_pause_ticks: 5,
        retry_ticks: 5,
        priority_stagger_ticks: 20,
        ops_per_visit: 64,
    };

    /// Checks the settings are consistent: every duration positive, the idle pause within the
    /// lease, re-sends within the hop timeout, at least one operation per visit.
    pub fn validate(&self) -> Result<(), Error> {
        let checks = [
            (self.lease_ticks >= 1, "lease_ticks must be at least 1"),
            (self.hop_timeout_ticks >= 1, "hop_timeout_ticks must be at least 1"),
            (self.idle_pause_ticks <= self.lease_ticks, "idle_pause_ticks must not exceed lease_ticks"),
            (self.retry_ticks >= 1, "retry_ticks must be at least 1"),
            (self.retry_ticks <= self.hop_timeout_ticks, "retry_ticks must not exceed hop_timeout_ticks"),
            (self.ops_per_visit >= 1, "ops_per_visit must be at least 1"),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err(Error::invalid(*why)),
            None => Ok(()),
        }
    }
}

impl Default for RingSettings {
    fn default() -> Self {
        RingSettings::DEFAULT
    }
}

/// One bank's view of the ring: who it is, who the members are, and the settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RingConfig {
    me: BankId,
    members: Vec<BankId>,
    settings: RingSettings,
}

impl RingConfig {
    /// A configuration for bank `me` among `members` (any order; `me` must be one of them, and
    /// no id may repeat).
    pub fn new(me: BankId, members: impl IntoIterator<Item = BankId>, settings: RingSettings) -> Result<Self, Error> {
        settings.validate()?;
        let mut members: Vec<BankId> = members.into_iter().collect();
        members.sort();
        let len = members.len();
        members.dedup();
        if members.len() != len {
            return Err(Error::invalid("a bank appears twice among the ring's members"));
        }
        if !members.contains(&me) {
            return Err(Error::invalid(format!("bank {me} is not a member of the ring")));
        }
        Ok(RingConfig { me, members, settings })
    }

    pub fn me(&self) -> BankId {
        self.me
    }

    /// The members, sorted by id.
    pub fn members(&self) -> &[BankId] {
        &self.members
    }

    pub fn settings(&self) -> &RingSettings {
        &self.settings
    }

    /// The votes an election needs: more than half of all members.
    pub fn majority(&self) -> usize {
        self.members.len() / 2 + 1
    }

    /// The bank that creates the first token.
    pub fn lowest(&self) -> BankId {
        self.members[0]
    }

    /// How long an election round (pre-vote or vote) lasts: a round trip under assumption A1.
    pub fn election_round_ticks(&self) -> u64 {
        2 * self.settings.hop_timeout_ticks
    }

    /// The loss timeout, `2H + (n - 1)(L + 2H)`: how long a live token can take to come by, and
    /// how long a bank waits after its last ring activity before it may vote (module essay).
    pub fn loss_timeout_ticks(&self) -> u64 {
        let hop_ticks = self.settings.lease_ticks + 2 * self.settings.hop_timeout_ticks;
        self.election_round_ticks() + (self.members.len() as u64 - 1) * hop_ticks
    }
}
