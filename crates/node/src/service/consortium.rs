//! The consortium as a customer or an operator sees it from this bank: whose a Pix key is, the
//! customer's accounts in every bank, the members' states and the token ring.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bank_core::Error;
use bank_core::account::{Account, AccountKind};
use bank_core::error::Attempts;
use bank_core::ids::{AccountNumber, BankId};
use bank_core::pixkey::{KeyType, PixKey};

use super::{Bank, OpResult, ServiceError, gone};
use crate::config::CoordinationMode;
use crate::peer::{ACCOUNTS_OF_PATH, AccountsOf, HeldAccounts};
use crate::storage::read;
use crate::storage::ring::RingSnapshot;
use crate::storage::writer::now_ms;

/// The name of a member bank (this one included).
pub fn bank_name(bank: &Bank, id: BankId) -> String {
    if id == bank.bank_id {
        return bank.bank_name.clone();
    }
    bank.interbank
        .as_ref()
        .and_then(|ib| ib.members.get(&id))
        .map(|m| m.name.clone())
        .unwrap_or_else(|| format!("bank {}", id.0))
}

/// Whom a Pix key belongs to, as a payer may see it.
#[derive(Debug, Clone)]
pub struct KeyOwner {
    pub key: String,
    pub kind: KeyType,
    pub bank_id: u32,
    pub bank_name: String,
    pub holder_name: String,
    pub masked_document: String,
}

/// Whom a key belongs to: an account here, or one the consortium's directory knows elsewhere.
///
/// Lookups of keys nobody has are throttled per account and per client address (`who`): past
/// the budget a lookup is refused with [`Error::TooManyAttempts`] before reading anything.
pub async fn lookup_key(bank: &Arc<Bank>, who: (&AccountNumber, Option<IpAddr>), key: &PixKey) -> OpResult<KeyOwner> {
    let (account, address) = who;
    let throttle = &bank.sessions.key_lookups;
    if let Err(wait) = throttle.check(account, address, Instant::now()) {
        let retry_after_s = crate::auth::throttle::whole_seconds(wait);
        return Err(ServiceError::Core(Error::TooManyAttempts { attempts: Attempts::KeyLookups, retry_after_s }));
    }
    let found = find_key(bank, key).await;
    if matches!(found, Err(ServiceError::Core(Error::UnknownKey(_)))) {
        throttle.missed(account, address, Instant::now());
        bank.metrics.key_lookup_missed();
    }
    found
}

/// Who has `key`: an account here, or one at another bank from the directory.
async fn find_key(bank: &Arc<Bank>, key: &PixKey) -> OpResult<KeyOwner> {
    let k = key.clone();
    let view = bank.reads.run(move |c| read::key_owner(c, &k)).await?;
    if let Some(view) = view {
        let masked = view.account.holders.iter().map(|h| h.document.masked()).collect::<Vec<_>>().join(", ");
        return Ok(KeyOwner {
            key: view.key.normalized(),
            kind: view.key.key_type(),
            bank_id: bank.bank_id.0,
            bank_name: bank.bank_name.clone(),
            holder_name: view.account.display_name(),
            masked_document: masked,
        });
    }
    let k = key.clone();
    let remote = bank.reads.run(move |c| read::remote_key(c, &k)).await?;
    let remote = remote.ok_or_else(|| ServiceError::Core(Error::UnknownKey(key.normalized())))?;
    Ok(KeyOwner {
        key: key.normalized(),
        kind: key.key_type(),
        bank_id: remote.bank_id.0,
        bank_name: bank_name(bank, remote.bank_id),
        holder_name: remote.holder_name,
        masked_document: remote.masked_document,
    })
}

/// One of a customer's accounts, in any bank.
#[derive(Debug, Clone)]
pub struct HeldAccountView {
    pub bank_id: BankId,
    pub bank_name: String,
    pub number: AccountNumber,
    pub kind: AccountKind,
    pub posted_cents: i64,
    pub held_cents: i64,
}

impl HeldAccountView {
    pub fn available_cents(&self) -> i64 {
        self.posted_cents - self.held_cents
    }
}

/// A customer's accounts in every bank, and the banks that could not be asked.
#[derive(Debug, Clone, Default)]
pub struct ConsortiumAccounts {
    pub accounts: Vec<HeldAccountView>,
    pub unreachable: Vec<BankId>,
}

/// The customer's accounts: this bank's (joint ones included), then every other bank's found
/// by the customer's document (a joint account's session asks no one).
pub async fn consortium_accounts(bank: &Arc<Bank>, number: &AccountNumber) -> OpResult<ConsortiumAccounts> {
    let n = number.clone();
    let found = bank
        .reads
        .run(move |c| {
            let Some(view) = read::account(c, &n)? else { return Ok(None) };
            let mut accounts = Vec::new();
            for s in read::spendable(c, &view.account)? {
                if let Some(v) = read::account(c, &s)? {
                    accounts.push(v.account);
                }
            }
            Ok(Some((view.account, accounts)))
        })
        .await?;
    let (actor, accounts) = found.ok_or_else(gone)?;
    let mut out = ConsortiumAccounts::default();
    out.accounts.extend(accounts.iter().map(|a| HeldAccountView {
        bank_id: bank.bank_id,
        bank_name: bank.bank_name.clone(),
        number: a.number.clone(),
        kind: a.kind,
        posted_cents: a.posted_cents,
        held_cents: a.held_cents,
    }));
    ask_other_banks(bank, &actor, &mut out).await;
    Ok(out)
}

/// Asks every other member, at once, for the accounts of `actor`'s document.
async fn ask_other_banks(bank: &Arc<Bank>, actor: &Account, out: &mut ConsortiumAccounts) {
    let (Some(interbank), Some(document)) = (&bank.interbank, actor.acting_document()) else { return };
    let query = AccountsOf { document: document.clone() };
    let asks = interbank.members.values().filter(|m| m.id != bank.bank_id).map(|member| {
        let (client, query) = (interbank.peers.clone(), query.clone());
        async move { (member, client.post_json::<_, HeldAccounts>(member.id, ACCOUNTS_OF_PATH, &query).await) }
    });
    for (member, answer) in futures::future::join_all(asks).await {
        match answer {
            Ok(held) => out.accounts.extend(held.accounts.into_iter().map(|a| HeldAccountView {
                bank_id: member.id,
                bank_name: member.name.clone(),
                number: a.number,
                kind: a.kind,
                posted_cents: a.posted_cents,
                held_cents: a.held_cents,
            })),
            Err(_) => out.unreachable.push(member.id),
        }
    }
}

/// How this bank sees a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// This bank, or a member whose last request from here got an answer.
    Up,
    /// A member whose last request from here got none.
    Suspected,
    /// A member not asked anything yet.
    Unknown,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Up => "up",
            MemberState::Suspected => "suspected",
            MemberState::Unknown => "unknown",
        }
    }
}

/// One member of the consortium as this bank sees it.
#[derive(Debug, Clone)]
pub struct MemberStatus {
    pub id: BankId,
    pub name: String,
    pub url: String,
    pub state: MemberState,
    /// Milliseconds since it last answered, if ever.
    pub last_seen_ms: Option<i64>,
    /// Its clock, as its answers told it (`peer::clock`): how far ahead (negative: behind) of
    /// this bank's, and whether surely beyond the skew the consortium allows.
    pub clock: Option<PeerClock>,
}

/// A peer's clock as this bank last read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerClock {
    pub offset_ms: i64,
    pub uncertainty_ms: i64,
    pub disagrees: bool,
}

/// The members: this bank alone, or every member of its consortium.
#[derive(Debug, Clone)]
pub enum Membership {
    Alone { name: String, url: String },
    Consortium(Vec<MemberStatus>),
}

/// The token ring as this bank sees it.
#[derive(Debug, Clone)]
pub enum RingStatus {
    /// `token-ring` mode in a consortium: the ring as the writer last published it.
    Token(RingSnapshot),
    /// A consortium without a token (`concurrent` mode): every bank coordinates at any time.
    NoToken,
    /// A bank alone: a ring of one that always holds the token.
    Alone,
}

/// The consortium as this bank sees it.
#[derive(Debug, Clone)]
pub struct ConsortiumStatus {
    pub bank_id: BankId,
    pub mode: CoordinationMode,
    pub members: Membership,
    pub ring: RingStatus,
    /// Holds this bank keeps for undecided transactions.
    pub in_doubt: i64,
}

/// The members' states, the token ring and the transactions held in doubt — what the status
/// route answers and the consortium page shows.
pub async fn consortium_status(bank: &Arc<Bank>) -> OpResult<ConsortiumStatus> {
    refresh_disagreeing_clocks(bank);
    let members = match &bank.interbank {
        None => Membership::Alone { name: bank.bank_name.clone(), url: bank.public_url.clone() },
        Some(ib) => {
            let seen = bank.driver.peers_seen();
            let now = now_ms().0;
            let members = ib.members.values().map(|m| {
                let peer = seen.get(&m.id).copied().unwrap_or_default();
                let state = match (m.id == bank.bank_id, peer.up) {
                    (true, _) | (false, Some(true)) => MemberState::Up,
                    (false, Some(false)) => MemberState::Suspected,
                    (false, None) => MemberState::Unknown,
                };
                let last_seen_ms = peer.last_answer_ms.map(|t| now - t);
                let clocks = ib.peers.clocks();
                let clock = clocks.reading(m.id).map(|r| PeerClock {
                    offset_ms: r.offset_ms,
                    uncertainty_ms: r.uncertainty_ms,
                    disagrees: r.disagrees(clocks.allowed_ms()),
                });
                MemberStatus { id: m.id, name: m.name.clone(), url: m.url.clone(), state, last_seen_ms, clock }
            });
            Membership::Consortium(members.collect())
        }
    };
    let in_doubt = bank.reads.run(|c| read::holds_count(c)).await?;
    let ring = match (&bank.ring, bank.interbank.is_some()) {
        (Some(view), _) => RingStatus::Token(view.snapshot()),
        (None, true) => RingStatus::NoToken,
        (None, false) => RingStatus::Alone,
    };
    Ok(ConsortiumStatus { bank_id: bank.bank_id, mode: bank.coordination_mode, members, ring, in_doubt })
}

/// How old a disagreeing peer's clock reading may be before it is read again.
const CLOCK_RECHECK_MS: i64 = 1_000;

/// Reads again, in the background (a signed ping, whose answer carries the peer's clock), the
/// clock of every peer whose last reading disagreed and is over [`CLOCK_RECHECK_MS`] old; one
/// such round at a time. Without it a disagreement could outlive its cause: this bank refuses
/// cross-bank work with that peer, so no other answer of the peer might come to clear it. A peer
/// that does not answer keeps its last reading.
pub fn refresh_disagreeing_clocks(bank: &Arc<Bank>) {
    let Some(interbank) = bank.interbank.clone() else { return };
    let clocks = interbank.peers.clocks().clone();
    if !clocks.any_disagreement() {
        return;
    }
    let now = now_ms().0;
    let stale: Vec<BankId> = clocks
        .readings()
        .into_iter()
        .filter(|(_, r)| r.disagrees(clocks.allowed_ms()) && now - r.at_ms > CLOCK_RECHECK_MS)
        .map(|(peer, _)| peer)
        .collect();
    if stale.is_empty() || !clocks.begin_recheck() {
        return;
    }
    tokio::spawn(async move {
        let pings = stale
            .into_iter()
            .map(|peer| interbank.peers.get_json::<crate::interbank::Pong>(peer, crate::interbank::PING_PATH));
        let _ = futures::future::join_all(pings).await;
        clocks.end_recheck();
    });
}
