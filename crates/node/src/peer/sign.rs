//! Signed inter-bank requests: what is signed, how, and how a receiver decides to believe it.
//!
//! The sender signs, with its Ed25519 key, the **canonical string** of the request:
//!
//! ```text
//! METHOD \n PATH?QUERY \n TIMESTAMP_MS \n NONCE \n hex(SHA-256(body)) \n FROM \n TO
//! ```
//!
//! (`\n` is one newline byte; no spaces.) It is sent in four headers: `X-Bank-Id` (sender's
//! id), `X-Bank-Timestamp` (Unix milliseconds, decimal), `X-Bank-Nonce` (128 random bits, 32
//! lowercase hex digits) and `X-Bank-Signature` (base64 of the 64-byte signature).
//!
//! `FROM` and `TO` are the sender's and the receiver's bank ids (`FROM` is 0, [`OPERATOR`], for
//! the consortium operator's audit reads, signed with the operator key). `FROM` binds the
//! signature to the `X-Bank-Id` the receiver used to pick the key; `TO` binds it to one receiver:
//! each bank keeps its own nonce cache, so without it a request captured on its way to bank 2
//! could be replayed to bank 3 within the clock-skew window.
//!
//! The [`Verifier`] refuses, in this order, and then nothing has changed:
//!
//! 1. [`SignatureError::Missing`] / [`SignatureError::Malformed`]: a header is absent or not in
//!    the form above;
//! 2. [`SignatureError::UnknownBank`]: the sender is not a member;
//! 3. [`SignatureError::Stale`]: the timestamp is more than the allowed clock skew (default
//!    30 s) away from the receiver's clock, in either direction;
//! 4. [`SignatureError::BadSignature`]: the signature does not verify (strict Ed25519) against
//!    the sender's public key over this request's canonical string;
//! 5. [`SignatureError::Replayed`]: the sender already used this nonce within the window.
//!
//! **Replay window.** A request is fresh while `|now − timestamp| ≤ skew`, so a nonce only needs
//! remembering until `timestamp + skew` — at most twice the skew after it was accepted. The cache
//! evicts by that time, per sender, and holds at most [`NONCES_PER_BANK_MAX_DEFAULT`] nonces per
//! sender: a sender beyond it is answered [`SignatureError::Overloaded`] (503, retry later)
//! rather than forgetting nonces early, which would let replays through. The cache's clock only
//! moves forward (the highest `now` seen), so concurrent calls with slightly different clocks
//! cannot evict a nonce that another call still considers fresh.
//!
//! Not handled: responses are not signed (a receiver authenticates the caller, the caller trusts
//! the TCP connection to the URL it chose; use TLS or a private network between banks), the
//! nonce cache is in memory (after a restart, requests of the last `skew` may be replayed once:
//! inter-bank messages are idempotent, DESIGN.md §4, so a replay changes nothing), and the body
//! is not encrypted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;

use axum::http::HeaderMap;
use bank_core::ids::BankId;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Sender's bank id.
pub const HEADER_BANK_ID: &str = "x-bank-id";
/// Unix time of signing, in milliseconds.
pub const HEADER_TIMESTAMP: &str = "x-bank-timestamp";
/// 128 random bits, hex.
pub const HEADER_NONCE: &str = "x-bank-nonce";
/// Base64 Ed25519 signature of the canonical string.
pub const HEADER_SIGNATURE: &str = "x-bank-signature";

/// The sender id of the consortium's operator (`bank audit`), who signs like a bank but with the
/// operator key of the consortium file. No member has id 0 (the consortium file refuses it), and
/// the operator's requests are checked by a verifier of their own (see
/// [`super::extract::OperatorSigned`]): a member's signature is never an operator's, nor the
/// reverse.
pub const OPERATOR: BankId = BankId(0);

/// Default allowed difference between the sender's and the receiver's clocks.
pub const CLOCK_SKEW_MS_DEFAULT: u64 = 30_000;
/// Default bound of remembered nonces per sender (about 70 bytes each). At the default skew it
/// allows a sustained ~6,000 signed requests per second from one bank.
pub const NONCES_PER_BANK_MAX_DEFAULT: usize = 200_000;

/// 128 random bits naming one request.
pub type Nonce = [u8; 16];

/// Why a signed request was refused. Every variant but `Overloaded` is a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request is not signed: header {0} is missing")]
    Missing(&'static str),
    #[error("header {0} is malformed")]
    Malformed(&'static str),
    #[error("bank {0} is not a member of this consortium")]
    UnknownBank(BankId),
    #[error("the signature does not match the request and the sender's key")]
    BadSignature,
    #[error("the request is stale: signed at {timestamp_ms} ms, now is {now_ms} ms, allowed skew {skew_ms} ms")]
    Stale { timestamp_ms: u64, now_ms: u64, skew_ms: u64 },
    #[error("the request was already received (nonce replayed)")]
    Replayed,
    #[error("too many recent requests from bank {0}; try again shortly")]
    Overloaded(BankId),
}

/// Milliseconds since the Unix epoch by the system clock.
pub fn unix_now_ms() -> u64 {
    crate::clock::wall_ms().max(0) as u64
}

/// A fresh random nonce.
pub fn fresh_nonce() -> Result<Nonce, getrandom::Error> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce)?;
    Ok(nonce)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn parse_nonce(text: &str) -> Option<Nonce> {
    if text.len() != 32 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut nonce = [0u8; 16];
    for (i, byte) in nonce.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(nonce)
}

/// The bytes that are signed (see the module documentation).
pub fn canonical_string(
    from: BankId,
    to: BankId,
    method: &str,
    path_and_query: &str,
    timestamp_ms: u64,
    nonce: &Nonce,
    body: &[u8],
) -> String {
    format!("{method}\n{path_and_query}\n{timestamp_ms}\n{}\n{}\n{from}\n{to}", hex(nonce), hex(&Sha256::digest(body)))
}

/// The four authentication headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub bank_id: BankId,
    pub timestamp_ms: u64,
    pub nonce: Nonce,
    pub signature: Signature,
}

impl SignedHeaders {
    /// `(header name, value)` pairs, ready to add to a request.
    pub fn pairs(&self) -> [(&'static str, String); 4] {
        [
            (HEADER_BANK_ID, self.bank_id.to_string()),
            (HEADER_TIMESTAMP, self.timestamp_ms.to_string()),
            (HEADER_NONCE, hex(&self.nonce)),
            (HEADER_SIGNATURE, BASE64.encode(self.signature.to_bytes())),
        ]
    }
}

/// Signs a request from `from` to `to`. Pure: the caller supplies the time and the nonce (see
/// [`unix_now_ms`], [`fresh_nonce`]), so tests can sign stale or repeated requests on purpose.
#[allow(clippy::too_many_arguments)] // each is one field of the canonical string
pub fn sign(
    key: &SigningKey,
    from: BankId,
    to: BankId,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp_ms: u64,
    nonce: Nonce,
) -> SignedHeaders {
    let message = canonical_string(from, to, method, path_and_query, timestamp_ms, &nonce, body);
    SignedHeaders { bank_id: from, timestamp_ms, nonce, signature: key.sign(message.as_bytes()) }
}

/// Checks signed requests addressed to one bank (see the module documentation).
#[derive(Debug)]
pub struct Verifier {
    self_id: BankId,
    keys: BTreeMap<BankId, VerifyingKey>,
    skew_ms: u64,
    nonces_per_bank_max: usize,
    cache: Mutex<NonceCache>,
}

#[derive(Debug, Default)]
struct NonceCache {
    /// The highest `now` seen: the cache's clock never goes back.
    now_ms: u64,
    banks: BTreeMap<BankId, BankNonces>,
}

/// One sender's remembered nonces, by nonce (replay check) and by timestamp (eviction).
#[derive(Debug, Default)]
struct BankNonces {
    by_nonce: HashMap<Nonce, u64>,
    by_time: BTreeSet<(u64, Nonce)>,
}

impl BankNonces {
    /// Forgets nonces whose requests are stale at `now` (timestamp < now − skew).
    fn evict(&mut self, oldest_fresh_ms: u64) {
        while let Some(&(timestamp_ms, nonce)) = self.by_time.first() {
            if timestamp_ms >= oldest_fresh_ms {
                break;
            }
            self.by_time.pop_first();
            self.by_nonce.remove(&nonce);
        }
    }
}

impl Verifier {
    /// A verifier for requests to `self_id`, from the members in `keys`, with the default skew
    /// and nonce bound.
    pub fn new(self_id: BankId, keys: BTreeMap<BankId, VerifyingKey>) -> Verifier {
        Verifier {
            self_id,
            keys,
            skew_ms: CLOCK_SKEW_MS_DEFAULT,
            nonces_per_bank_max: NONCES_PER_BANK_MAX_DEFAULT,
            cache: Mutex::new(NonceCache::default()),
        }
    }

    /// Sets the allowed clock skew.
    pub fn with_clock_skew_ms(mut self, skew_ms: u64) -> Verifier {
        self.skew_ms = skew_ms;
        self
    }

    /// Sets the bound of remembered nonces per sender.
    pub fn with_nonces_per_bank_max(mut self, nonces_max: usize) -> Verifier {
        assert!(nonces_max > 0, "a verifier must remember at least one nonce per bank");
        self.nonces_per_bank_max = nonces_max;
        self
    }

    /// The bank this verifier accepts requests for.
    pub fn self_id(&self) -> BankId {
        self.self_id
    }

    /// Nonces remembered now, over all senders.
    pub fn remembered_nonces(&self) -> usize {
        let cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.banks.values().map(|b| b.by_nonce.len()).sum()
    }

    /// Checks one request; on success returns the sender and remembers its nonce.
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
        now_ms: u64,
    ) -> Result<BankId, SignatureError> {
        let header = |name: &'static str| -> Result<&str, SignatureError> {
            let value = headers.get(name).ok_or(SignatureError::Missing(name))?;
            value.to_str().map_err(|_| SignatureError::Malformed(name))
        };
        let from = header(HEADER_BANK_ID)?;
        let timestamp = header(HEADER_TIMESTAMP)?;
        let nonce = header(HEADER_NONCE)?;
        let signature = header(HEADER_SIGNATURE)?;
        let from = BankId(from.parse().map_err(|_| SignatureError::Malformed(HEADER_BANK_ID))?);
        let timestamp_ms: u64 = timestamp
            .parse()
            .ok()
            .filter(|_| timestamp.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(SignatureError::Malformed(HEADER_TIMESTAMP))?;
        let nonce = parse_nonce(nonce).ok_or(SignatureError::Malformed(HEADER_NONCE))?;
        let signature = BASE64
            .decode(signature)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .ok_or(SignatureError::Malformed(HEADER_SIGNATURE))?;
        let key = self.keys.get(&from).ok_or(SignatureError::UnknownBank(from))?;
        self.check_fresh(timestamp_ms, now_ms)?;
        let message = canonical_string(from, self.self_id, method, path_and_query, timestamp_ms, &nonce, body);
        key.verify_strict(message.as_bytes(), &signature).map_err(|_| SignatureError::BadSignature)?;
        self.remember(from, timestamp_ms, nonce, now_ms)?;
        Ok(from)
    }

    fn check_fresh(&self, timestamp_ms: u64, now_ms: u64) -> Result<(), SignatureError> {
        if timestamp_ms.abs_diff(now_ms) > self.skew_ms {
            return Err(SignatureError::Stale { timestamp_ms, now_ms, skew_ms: self.skew_ms });
        }
        Ok(())
    }

    /// The replay check, after the signature: unsigned junk never fills the cache.
    fn remember(&self, from: BankId, timestamp_ms: u64, nonce: Nonce, now_ms: u64) -> Result<(), SignatureError> {
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.now_ms = cache.now_ms.max(now_ms);
        let now_ms = cache.now_ms;
        // Fresh by the cache's clock too, so nothing evicted below can still be accepted.
        self.check_fresh(timestamp_ms, now_ms)?;
        let bank = cache.banks.entry(from).or_default();
        bank.evict(now_ms.saturating_sub(self.skew_ms));
        if bank.by_nonce.contains_key(&nonce) {
            return Err(SignatureError::Replayed);
        }
        if bank.by_nonce.len() >= self.nonces_per_bank_max {
            return Err(SignatureError::Overloaded(from));
        }
        bank.by_nonce.insert(nonce, timestamp_ms);
        bank.by_time.insert((timestamp_ms, nonce));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    const NOW: u64 = 1_700_000_000_000;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    /// Bank 2's verifier; banks 1 and 2 are members.
    fn verifier() -> Verifier {
        let keys = [1u8, 2].into_iter().map(|n| (BankId(u32::from(n)), key(n).verifying_key())).collect();
        Verifier::new(BankId(2), keys)
    }

    fn headers_of(signed: &SignedHeaders) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in signed.pairs() {
            headers.insert(name, HeaderValue::from_str(&value).expect("header"));
        }
        headers
    }

    /// A request from bank 1 to bank 2, signed at `at` with nonce `n`.
    fn signed(at: u64, n: u8) -> HeaderMap {
        headers_of(&sign(&key(1), BankId(1), BankId(2), "POST", "/interbank/v1/x?a=1", b"{}", at, [n; 16]))
    }

    #[test]
    fn a_correctly_signed_request_is_accepted_once() {
        let v = verifier();
        assert_eq!(v.verify("POST", "/interbank/v1/x?a=1", &signed(NOW, 1), b"{}", NOW), Ok(BankId(1)));
        assert_eq!(v.remembered_nonces(), 1);
        // Within the skew either way.
        assert_eq!(v.verify("POST", "/interbank/v1/x?a=1", &signed(NOW - 29_000, 2), b"{}", NOW), Ok(BankId(1)));
        assert_eq!(v.verify("POST", "/interbank/v1/x?a=1", &signed(NOW + 29_000, 3), b"{}", NOW), Ok(BankId(1)));
    }

    #[test]
    fn missing_and_malformed_headers_are_refused() {
        let v = verifier();
        let full = signed(NOW, 1);
        for name in [HEADER_BANK_ID, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE] {
            let mut headers = full.clone();
            headers.remove(name);
            assert_eq!(
                v.verify("POST", "/interbank/v1/x?a=1", &headers, b"{}", NOW),
                Err(SignatureError::Missing(name))
            );
        }
        for (name, value) in [
            (HEADER_BANK_ID, "one"),
            (HEADER_TIMESTAMP, "+1700000000000"),
            (HEADER_NONCE, "ABCDEF"),
            (HEADER_NONCE, "0101010101010101010101010101010G"),
            (HEADER_SIGNATURE, "bm90IGEgc2lnbmF0dXJl"),
        ] {
            let mut headers = full.clone();
            headers.insert(name, HeaderValue::from_static(value));
            assert_eq!(
                v.verify("POST", "/interbank/v1/x?a=1", &headers, b"{}", NOW),
                Err(SignatureError::Malformed(name)),
                "{name}: {value}"
            );
        }
        assert_eq!(v.remembered_nonces(), 0, "refusals remember nothing");
    }

    #[test]
    fn an_unknown_bank_is_refused() {
        let v = verifier();
        let headers = headers_of(&sign(&key(9), BankId(9), BankId(2), "GET", "/p", b"", NOW, [1; 16]));
        assert_eq!(v.verify("GET", "/p", &headers, b"", NOW), Err(SignatureError::UnknownBank(BankId(9))));
    }

    #[test]
    fn a_wrong_key_or_another_receiver_is_a_bad_signature() {
        let v = verifier();
        // Bank 1's id, someone else's key.
        let forged = headers_of(&sign(&key(7), BankId(1), BankId(2), "GET", "/p", b"", NOW, [1; 16]));
        assert_eq!(v.verify("GET", "/p", &forged, b"", NOW), Err(SignatureError::BadSignature));
        // Signed by bank 1 for bank 3: not good at bank 2 (no cross-receiver replay).
        let elsewhere = headers_of(&sign(&key(1), BankId(1), BankId(3), "GET", "/p", b"", NOW, [2; 16]));
        assert_eq!(v.verify("GET", "/p", &elsewhere, b"", NOW), Err(SignatureError::BadSignature));
        // Another method.
        let headers = headers_of(&sign(&key(1), BankId(1), BankId(2), "GET", "/p", b"", NOW, [3; 16]));
        assert_eq!(v.verify("DELETE", "/p", &headers, b"", NOW), Err(SignatureError::BadSignature));
        assert_eq!(v.remembered_nonces(), 0);
    }

    #[test]
    fn stale_requests_are_refused_both_ways() {
        let v = verifier();
        for at in [NOW - 30_001, NOW + 30_001, 0] {
            let result = v.verify("POST", "/interbank/v1/x?a=1", &signed(at, 1), b"{}", NOW);
            assert!(matches!(result, Err(SignatureError::Stale { .. })), "{at}: {result:?}");
        }
        let strict = verifier().with_clock_skew_ms(1_000);
        let result = strict.verify("POST", "/interbank/v1/x?a=1", &signed(NOW - 1_001, 1), b"{}", NOW);
        assert!(matches!(result, Err(SignatureError::Stale { skew_ms: 1_000, .. })), "{result:?}");
    }

    #[test]
    fn a_replayed_nonce_is_refused_until_the_request_is_stale() {
        let v = verifier();
        let headers = signed(NOW, 1);
        assert_eq!(v.verify("POST", "/interbank/v1/x?a=1", &headers, b"{}", NOW), Ok(BankId(1)));
        assert_eq!(v.verify("POST", "/interbank/v1/x?a=1", &headers, b"{}", NOW), Err(SignatureError::Replayed));
        assert_eq!(
            v.verify("POST", "/interbank/v1/x?a=1", &headers, b"{}", NOW + 30_000),
            Err(SignatureError::Replayed),
            "still remembered at the edge of the window"
        );
        let later = v.verify("POST", "/interbank/v1/x?a=1", &headers, b"{}", NOW + 30_001);
        assert!(matches!(later, Err(SignatureError::Stale { .. })), "{later:?}");
        // The same nonce at another timestamp is a replay too (nonces are single-use).
        assert_eq!(
            v.verify("POST", "/interbank/v1/x?a=1", &signed(NOW + 1, 1), b"{}", NOW),
            Err(SignatureError::Replayed)
        );
    }

    #[test]
    fn the_nonce_cache_forgets_by_time_and_its_clock_never_goes_back() {
        let v = verifier();
        for n in 0..10 {
            assert!(v.verify("POST", "/interbank/v1/x?a=1", &signed(NOW, n), b"{}", NOW).is_ok());
        }
        assert_eq!(v.remembered_nonces(), 10);
        // A request at a later time evicts everything stale by then.
        assert!(v.verify("POST", "/interbank/v1/x?a=1", &signed(NOW + 30_001, 99), b"{}", NOW + 30_001).is_ok());
        assert_eq!(v.remembered_nonces(), 1);
        // A caller with an older clock cannot get an evicted nonce accepted again.
        let old = v.verify("POST", "/interbank/v1/x?a=1", &signed(NOW, 0), b"{}", NOW);
        assert!(matches!(old, Err(SignatureError::Stale { .. })), "{old:?}");
    }

    #[test]
    fn a_full_nonce_cache_sheds_instead_of_forgetting() {
        let v = verifier().with_nonces_per_bank_max(2);
        assert!(v.verify("POST", "/interbank/v1/x?a=1", &signed(NOW, 1), b"{}", NOW).is_ok());
        assert!(v.verify("POST", "/interbank/v1/x?a=1", &signed(NOW, 2), b"{}", NOW).is_ok());
        assert_eq!(
            v.verify("POST", "/interbank/v1/x?a=1", &signed(NOW, 3), b"{}", NOW),
            Err(SignatureError::Overloaded(BankId(1)))
        );
        assert_eq!(v.verify("POST", "/interbank/v1/x?a=1", &signed(NOW, 1), b"{}", NOW), Err(SignatureError::Replayed));
        // Once the first ones are stale, there is room again.
        assert!(v.verify("POST", "/interbank/v1/x?a=1", &signed(NOW + 30_001, 3), b"{}", NOW + 30_001).is_ok());
    }

    #[test]
    fn canonical_string_has_the_documented_shape() {
        let text = canonical_string(BankId(1), BankId(2), "GET", "/p?q=1", 42, &[0xab; 16], b"");
        assert_eq!(
            text,
            "GET\n/p?q=1\n42\nabababababababababababababababab\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n1\n2"
        );
    }

    proptest! {
        /// Any single-byte change of the body, the path or the timestamp breaks the signature.
        #[test]
        fn any_single_byte_change_breaks_the_signature(
            body in proptest::collection::vec(any::<u8>(), 1..256),
            path in "/[a-z0-9/?=&-]{1,40}",
            timestamp_ms in 1u64..u64::MAX / 2,
            index in any::<prop::sample::Index>(),
            flip in 1u8..=255,
            target in 0u8..3,
        ) {
            let v = verifier().with_clock_skew_ms(u64::MAX);
            let headers = headers_of(&sign(&key(1), BankId(1), BankId(2), "POST", &path, &body, timestamp_ms, [5; 16]));
            let (mut body2, mut path2, mut headers2) = (body.clone(), path.clone().into_bytes(), headers.clone());
            match target {
                0 => {
                    let at = index.index(body2.len());
                    body2[at] ^= flip;
                }
                1 => {
                    let at = index.index(path2.len());
                    path2[at] ^= flip;
                }
                _ => {
                    let mut digits = timestamp_ms.to_string().into_bytes();
                    let at = index.index(digits.len());
                    // Another digit (a leading zero would be the same number, hence 1..=9 there).
                    let low = if at == 0 { b'1' } else { b'0' };
                    let choices: Vec<u8> = (low..=b'9').filter(|d| *d != digits[at]).collect();
                    digits[at] = choices[usize::from(flip) % choices.len()];
                    let text = String::from_utf8(digits).expect("digits");
                    headers2.insert(HEADER_TIMESTAMP, HeaderValue::from_str(&text).expect("header"));
                }
            }
            let path2 = String::from_utf8_lossy(&path2).into_owned();
            prop_assume!(path2 != path || body2 != body || headers2 != headers);
            prop_assert_eq!(v.verify("POST", &path2, &headers2, &body2, timestamp_ms), Err(SignatureError::BadSignature));
            prop_assert_eq!(v.verify("POST", &path, &headers, &body, timestamp_ms), Ok(BankId(1)));
        }
    }
}
