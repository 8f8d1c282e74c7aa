//! What the driver shares with the handlers: the waiters of transactions, why watched ones were
//! refused, and how each peer answered lately. Plain data behind mutexes, holding no channel to
//! the loop, so sharing it makes no reference cycle.

use std::collections::HashMap;
use std::sync::Mutex;

use bank_core::ids::{BankId, TransferId};
use bank_core::twopc::{Decision, Refusal};
use tokio::sync::watch;

use crate::storage::writer::now_ms;

/// Where a transaction stands, as its waiters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Preparing,
    Decided(Decision),
    Finished(Decision),
}

/// The last time this bank heard from a peer: an answer to one of its requests, or a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerSeen {
    /// Whether the last request reached it.
    pub up: Option<bool>,
    /// When it last answered (Unix ms), if ever.
    pub last_answer_ms: Option<i64>,
}

/// Whether a request to a peer (or from it) got through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Answered,
    Unreachable,
}

/// The state handlers and the loop both touch.
#[derive(Debug, Default)]
pub struct Shared {
    waiters: Mutex<HashMap<TransferId, watch::Sender<Progress>>>,
    /// Why watched transactions were aborted (the first refusal's code and detail).
    refusals: Mutex<HashMap<TransferId, Refusal>>,
    /// How each peer answered its last request.
    peers: Mutex<HashMap<BankId, PeerSeen>>,
}

impl Shared {
    pub fn peers_seen(&self) -> HashMap<BankId, PeerSeen> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn saw(&self, peer: BankId, reach: Reach) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let seen = peers.entry(peer).or_default();
        seen.up = Some(reach == Reach::Answered);
        if reach == Reach::Answered {
            seen.last_answer_ms = Some(now_ms().0);
        }
    }

    pub fn watch(&self, tx: TransferId) -> watch::Receiver<Progress> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters.entry(tx).or_insert_with(|| watch::channel(Progress::Preparing).0).subscribe()
    }

    pub fn notify(&self, tx: TransferId, progress: Progress) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = waiters.get(&tx) {
            let _ = sender.send(progress);
            if sender.receiver_count() == 0 {
                // Its waiter is gone (a client that hung up): so is whatever it would have read.
                waiters.remove(&tx);
                self.refusals.lock().unwrap_or_else(|p| p.into_inner()).remove(&tx);
            } else if matches!(progress, Progress::Finished(_)) {
                waiters.remove(&tx);
            }
        }
    }

    pub fn decided(&self, tx: TransferId, decision: Decision, refusal: Option<Refusal>) {
        if let Some(refusal) = refusal {
            // Under the waiters' lock (then the refusals'), as in `unwatch`: a waiter that leaves
            // meanwhile takes its refusal with it, so none stays behind unread.
            let waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
            if waiters.contains_key(&tx) {
                self.refusals.lock().unwrap_or_else(|p| p.into_inner()).insert(tx, refusal);
            }
        }
        self.notify(tx, Progress::Decided(decision));
    }

    pub fn take_refusal(&self, tx: TransferId) -> Option<Refusal> {
        self.refusals.lock().unwrap_or_else(|p| p.into_inner()).remove(&tx)
    }

    pub fn unwatch(&self, tx: TransferId) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if waiters.get(&tx).is_some_and(|s| s.receiver_count() <= 1) {
            waiters.remove(&tx);
            self.refusals.lock().unwrap_or_else(|p| p.into_inner()).remove(&tx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bank_core::ErrorCode;

    fn tx(n: u128) -> TransferId {
        TransferId(uuid::Uuid::from_u128(n))
    }

    /// A watched transaction's refusal waits for its waiter, who takes it before leaving; a
    /// refusal for a transaction nobody watches (any more) is not kept.
    #[test]
    fn a_refusal_is_kept_only_while_its_transaction_is_watched() {
        let shared = Shared::default();
        let _progress = shared.watch(tx(1));
        shared.decided(tx(1), Decision::Aborted, Some(Refusal::new(ErrorCode::Conflict, "taken")));
        assert_eq!(shared.take_refusal(tx(1)).map(|r| r.code), Some(ErrorCode::Conflict));

        let progress = shared.watch(tx(2));
        shared.decided(tx(2), Decision::Aborted, Some(Refusal::new(ErrorCode::Conflict, "taken")));
        drop(progress);
        shared.unwatch(tx(2));
        assert!(shared.take_refusal(tx(2)).is_none(), "left with its waiter");

        shared.decided(tx(3), Decision::Aborted, Some(Refusal::new(ErrorCode::Conflict, "taken")));
        assert!(shared.refusals.lock().expect("lock").is_empty(), "nobody watched tx 3");

        // A waiter that hung up without leaving: its refusal goes with the next news.
        drop(shared.watch(tx(4)));
        shared.decided(tx(4), Decision::Aborted, Some(Refusal::new(ErrorCode::Conflict, "taken")));
        assert!(shared.refusals.lock().expect("lock").is_empty(), "nobody is left to read it");
    }
}
