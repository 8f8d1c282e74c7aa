//! Passwords and sessions.
//!
//! Passwords are hashed with Argon2id (PHC string format, random salt). Session tokens are 256
//! random bits, base64url; only their SHA-256 is stored, so a leaked database holds no usable
//! token. Live sessions are cached in memory (loaded at start, added only after the session row
//! is durable), so checking a token costs a hash and a map lookup, not a query.
//!
//! Failed sign-ins are throttled per e-mail and per client address ([`throttle`]), and the most
//! common passwords are refused when an account is opened ([`is_common_password`]).

pub mod throttle;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{OnceLock, RwLock};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use bank_core::ids::{AccountNumber, TimestampMs};
use base64::Engine;
use sha2::{Digest, Sha256};

/// Hashes a password (slow on purpose: run it on the blocking pool).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Checks a password against a stored hash. A malformed hash never verifies.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// A hash that matches no password, verified when the e-mail is unknown so that the answer
/// takes as long as for a wrong password (no account enumeration by timing).
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that nobody has").unwrap_or_default())
}

/// A new random token and its SHA-256.
pub fn new_token() -> Result<(String, [u8; 32]), String> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| e.to_string())?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let hash = token_hash(&token);
    Ok((token, hash))
}

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The passwords people pick most, one a line (lowercase; `#` starts a comment line).
const COMMON_PASSWORDS: &str = include_str!("auth/common-passwords.txt");

/// Whether `password` is one of the most common ones (ignoring case and surrounding spaces):
/// those are what a guesser tries first, so an account may not be opened with one.
pub fn is_common_password(password: &str) -> bool {
    static COMMON: OnceLock<HashSet<&'static str>> = OnceLock::new();
    let common = COMMON.get_or_init(|| {
        COMMON_PASSWORDS.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
    });
    common.contains(password.trim().to_lowercase().as_str())
}

/// The client's address, when the server was started to record it (axum's
/// `ConnectInfo<SocketAddr>` in the request's extensions); `None` otherwise, and then only the
/// per-account limits apply — one bucket shared by every unknown client would let one attacker
/// lock everybody out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())))
    }
}

/// The live sessions, by token hash, and the sign-in attempts that may open one.
///
/// Bounded: each account keeps at most `per_account_max` live sessions (a new sign-in past it
/// ends the account's oldest), so the cache is O(accounts) however often customers — or a
/// script with a stolen password — sign in.
#[derive(Debug, Default)]
pub struct SessionCache {
    sessions: RwLock<Live>,
    /// Failed sign-ins, per e-mail and per address.
    pub sign_ins: throttle::SignInThrottle,
    /// Lookups of keys nobody has, per account and per address.
    pub key_lookups: throttle::LookupThrottle,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Expired,
}

/// The sessions by token hash, and each account's in the order they were opened.
#[derive(Debug, Default)]
struct Live {
    by_token: HashMap<[u8; 32], (AccountNumber, TimestampMs)>,
    by_account: HashMap<AccountNumber, std::collections::VecDeque<[u8; 32]>>,
}

impl Live {
    fn forget(&mut self, hash: &[u8; 32]) {
        let Some((account, _)) = self.by_token.remove(hash) else { return };
        if let Some(tokens) = self.by_account.get_mut(&account) {
            tokens.retain(|t| t != hash);
            if tokens.is_empty() {
                self.by_account.remove(&account);
            }
        }
    }
}

/// What opening a session did to the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    /// Live sessions now.
    pub live: usize,
    /// The account's oldest sessions it ended to stay within the per-account bound: their
    /// revocation must be made durable too.
    pub ended: Vec<[u8; 32]>,
}

impl SessionCache {
    /// Adds a session of `account`; ends the account's oldest ones beyond `per_account_max`.
    pub fn insert(
        &self,
        hash: [u8; 32],
        account: AccountNumber,
        expires_at: TimestampMs,
        per_account_max: usize,
    ) -> Inserted {
        let mut live = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        live.forget(&hash);
        live.by_token.insert(hash, (account.clone(), expires_at));
        let tokens = live.by_account.entry(account).or_default();
        tokens.push_back(hash);
        let excess = tokens.len().saturating_sub(per_account_max.max(1));
        let ended: Vec<[u8; 32]> = tokens.drain(..excess).collect();
        for old in &ended {
            live.by_token.remove(old);
        }
        Inserted { live: live.by_token.len(), ended }
    }

    pub fn remove(&self, hash: &[u8; 32]) -> usize {
        let mut live = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        live.forget(hash);
        live.by_token.len()
    }

    /// The account of a live token.
    pub fn check(&self, token: &str, now: TimestampMs) -> Result<(AccountNumber, [u8; 32]), TokenRefusal> {
        let hash = token_hash(token);
        let live = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        match live.by_token.get(&hash) {
            None => Err(TokenRefusal::Unknown),
            Some((_, expires)) if *expires <= now => Err(TokenRefusal::Expired),
            Some((account, _)) => Ok((account.clone(), hash)),
        }
    }

    /// Drops expired sessions; returns how many remain.
    pub fn purge_expired(&self, now: TimestampMs) -> usize {
        let mut live = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        let expired: Vec<[u8; 32]> =
            live.by_token.iter().filter(|(_, (_, expires))| *expires <= now).map(|(hash, _)| *hash).collect();
        for hash in &expired {
            live.forget(hash);
        }
        live.by_token.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_verifies_only_the_right_password() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert!(!verify_password("decoy password", decoy_hash()) || decoy_hash().is_empty());
    }

    #[test]
    fn the_most_common_passwords_are_known_whatever_their_case() {
        for common in ["12345678", "password1", "Senha123", " qwerty123 ", "FLAMENGO10"] {
            assert!(is_common_password(common), "{common}");
        }
        for rare in ["correct horse battery", "another-password", "senha da conta", "Bench-x-pw-0"] {
            assert!(!is_common_password(rare), "{rare}");
        }
    }

    #[tokio::test]
    async fn the_client_address_comes_from_connect_info_when_the_server_records_it() {
        let (mut parts, ()) = axum::http::Request::new(()).into_parts();
        let Ok(unknown) = ClientAddr::from_request_parts(&mut parts, &()).await;
        assert_eq!(unknown, ClientAddr(None));
        parts.extensions.insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 7], 40_000))));
        let Ok(known) = ClientAddr::from_request_parts(&mut parts, &()).await;
        assert_eq!(known, ClientAddr(Some(IpAddr::from([192, 0, 2, 7]))));
    }

    #[test]
    fn an_account_keeps_at_most_its_bound_of_sessions_and_the_oldest_end_first() {
        let cache = SessionCache::default();
        let (ana, bia) = (AccountNumber::from_seq(1), AccountNumber::from_seq(2));
        let tokens: Vec<(String, [u8; 32])> = (0..5).map(|_| new_token().expect("token")).collect();
        for (i, (_, hash)) in tokens.iter().enumerate().take(3) {
            assert_eq!(
                cache.insert(*hash, ana.clone(), TimestampMs(10_000), 3),
                Inserted { live: i + 1, ended: vec![] }
            );
        }
        let (bia_token, bia_hash) = new_token().expect("token");
        cache.insert(bia_hash, bia.clone(), TimestampMs(10_000), 3);
        let fourth = cache.insert(tokens[3].1, ana.clone(), TimestampMs(10_000), 3);
        assert_eq!(fourth, Inserted { live: 4, ended: vec![tokens[0].1] }, "Ana's oldest ends, not Bia's");
        assert_eq!(cache.check(&tokens[0].0, TimestampMs(0)).map(|(a, _)| a), Err(TokenRefusal::Unknown));
        for (token, _) in &tokens[1..4] {
            assert_eq!(cache.check(token, TimestampMs(0)).map(|(a, _)| a), Ok(ana.clone()));
        }
        assert_eq!(cache.check(&bia_token, TimestampMs(0)).map(|(a, _)| a), Ok(bia));
        // Signing out frees a place: the next sign-in ends nothing.
        assert_eq!(cache.remove(&tokens[1].1), 3);
        assert_eq!(cache.insert(tokens[4].1, ana, TimestampMs(10_000), 3).ended, Vec::<[u8; 32]>::new());
        assert_eq!(cache.purge_expired(TimestampMs(10_000)), 0, "every session expired, every index emptied");
    }

    #[test]
    fn tokens_are_random_and_expire() {
        let (t1, h1) = new_token().expect("token");
        let (t2, _) = new_token().expect("token");
        assert_ne!(t1, t2);
        let cache = SessionCache::default();
        let acc = AccountNumber::from_seq(1);
        cache.insert(h1, acc.clone(), TimestampMs(1_000), 16);
        assert_eq!(cache.check(&t1, TimestampMs(999)).map(|(a, _)| a), Ok(acc));
        assert_eq!(cache.check(&t1, TimestampMs(1_000)).map(|(a, _)| a), Err(TokenRefusal::Expired));
        assert_eq!(cache.check(&t2, TimestampMs(0)).map(|(a, _)| a), Err(TokenRefusal::Unknown));
        assert_eq!(cache.purge_expired(TimestampMs(2_000)), 0);
    }
}

/// A small pool of threads for password hashing.
///
/// Argon2id is slow and uses 19 MiB per hash on purpose. Run on tokio's blocking pool, a burst
/// of sign-ins would hash on hundreds of threads at once — gigabytes, kept by the allocator's
/// per-thread arenas — and starve the CPU. Here at most `threads` hashes run at once, and at most
/// `queue_len_max` wait; beyond that the caller is told the bank is overloaded.
#[derive(Debug, Clone)]
pub struct HasherPool {
    jobs: std::sync::mpsc::SyncSender<Box<dyn FnOnce() + Send>>,
}

impl HasherPool {
    pub fn new(threads: usize, queue_len_max: usize) -> std::io::Result<Self> {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Box<dyn FnOnce() + Send>>(queue_len_max);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new().name(format!("password-hasher-{i}")).spawn(move || {
                loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            })?;
        }
        Ok(HasherPool { jobs })
    }

    /// Runs `f` on the pool; `None` when the pool is saturated (answer 503 `overloaded`).
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Box<dyn FnOnce() + Send> = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.try_send(job).ok()?;
        rx.await.ok()
    }
}
