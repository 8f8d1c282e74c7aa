//! The HTTP client a bank uses to call its peers: every request signed (see [`super::sign`]),
//! connections pooled and kept alive, every wait bounded.
//!
//! Errors say what the caller can do: [`PeerError::Unreachable`] and [`PeerError::Timeout`] are
//! retryable (inter-bank messages are idempotent, DESIGN.md §4, so re-sending after a timeout —
//! when the peer may or may not have acted — is safe); [`PeerError::Refused`] carries the peer's
//! status and problem `code`, and is retryable only for a 502/503/504.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bank_core::ids::BankId;
use ed25519_dalek::SigningKey;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::clock::{CLOCK_HEADER, Change, ClockWatch, describe};
use super::sign::{fresh_nonce, sign, unix_now_ms};

/// Largest response body read from a peer, in bytes; a larger one is refused as a bad response.
pub const RESPONSE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Timeouts of the peer client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerOptions {
    /// Time to open a TCP connection (a dead host fails this fast).
    pub connect_timeout_ms: u64,
    /// Whole request, from sending to the last byte of the answer.
    pub request_timeout_ms: u64,
    /// How far a peer's clock may be from this bank's before it is said to disagree
    /// ([`super::clock`]).
    pub clock_skew_ms: u64,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            connect_timeout_ms: 1_000,
            request_timeout_ms: 2_000,
            clock_skew_ms: super::sign::CLOCK_SKEW_MS_DEFAULT,
        }
    }
}

/// Why a call to a peer did not return the expected answer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("bank {0} is not a member of this consortium")]
    UnknownPeer(BankId),
    #[error("bank {to} is unreachable: {detail}")]
    Unreachable { to: BankId, detail: String },
    #[error("bank {to} did not answer in time")]
    Timeout { to: BankId },
    #[error("bank {to} refused the request: {status} {code}: {detail}")]
    Refused { to: BankId, status: u16, code: String, detail: String },
    #[error("bank {to} sent an unexpected answer: {detail}")]
    BadResponse { to: BankId, detail: String },
    #[error("cannot sign a request: {0}")]
    Local(String),
}

impl PeerError {
    /// True when sending the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            PeerError::Unreachable { .. } | PeerError::Timeout { .. } => true,
            PeerError::Refused { status, .. } => matches!(status, 502..=504),
            PeerError::UnknownPeer(_) | PeerError::BadResponse { .. } | PeerError::Local(_) => false,
        }
    }
}

/// A signing HTTP client to every member of the consortium. Cheap to clone (shared pool).
#[derive(Debug, Clone)]
pub struct PeerClient {
    self_id: BankId,
    key: Arc<SigningKey>,
    urls: Arc<BTreeMap<BankId, reqwest::Url>>,
    http: reqwest::Client,
    /// The fault switch (see [`super::fault`]): while set, every call fails as unreachable.
    cut_off: Arc<std::sync::atomic::AtomicBool>,
    /// The peers' clocks, as their answers tell them.
    clocks: Arc<ClockWatch>,
}

impl PeerClient {
    /// A client for bank `self_id`, signing with `key`, reaching each member at its base URL.
    pub fn new(
        self_id: BankId,
        key: SigningKey,
        urls: impl IntoIterator<Item = (BankId, String)>,
        options: PeerOptions,
    ) -> Result<PeerClient, PeerError> {
        let urls = urls
            .into_iter()
            .map(|(id, url)| {
                reqwest::Url::parse(&url)
                    .map(|u| (id, u))
                    .map_err(|e| PeerError::Local(format!("bank {id}'s url: {e}")))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let http = reqwest::Client::builder()
            // Peers are addressed directly; an HTTP(S)_PROXY of the environment must not
            // intercept (and see) inter-bank traffic.
            .no_proxy()
            .connect_timeout(Duration::from_millis(options.connect_timeout_ms))
            .timeout(Duration::from_millis(options.request_timeout_ms))
            .tcp_nodelay(true)
            // Below the server's keep-alive limit (`Limits::header_read_timeout_ms`, 10 s): a pooled
            // connection is dropped here before the peer closes it, so a request never races
            // the peer's close.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| PeerError::Local(format!("cannot build the HTTP client: {e}")))?;
        Ok(PeerClient {
            self_id,
            key: Arc::new(key),
            urls: Arc::new(urls),
            http,
            cut_off: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            clocks: Arc::new(ClockWatch::new(options.clock_skew_ms as i64)),
        })
    }

    /// The peers' clocks, as their answers told them.
    pub fn clocks(&self) -> &Arc<ClockWatch> {
        &self.clocks
    }

    /// Cuts this bank off from its peers (`true`) or reconnects it: the fault switch.
    pub fn set_cut_off(&self, cut_off: bool) {
        self.cut_off.store(cut_off, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the fault switch cuts this bank off.
    pub fn is_cut_off(&self) -> bool {
        self.cut_off.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The bank this client signs for.
    pub fn self_id(&self) -> BankId {
        self.self_id
    }

    /// `POST path` to bank `to` with `body` as JSON; parses a 2xx answer as `Resp`.
    pub async fn post_json<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        to: BankId,
        path: &str,
        body: &Req,
    ) -> Result<Resp, PeerError> {
        let bytes = serde_json::to_vec(body).map_err(|e| PeerError::Local(format!("cannot encode the body: {e}")))?;
        let answer = self.send(to, reqwest::Method::POST, path, bytes).await?;
        parse_answer(to, &answer)
    }

    /// `GET path` from bank `to`; parses a 2xx answer as `Resp`.
    pub async fn get_json<Resp: DeserializeOwned>(&self, to: BankId, path: &str) -> Result<Resp, PeerError> {
        let answer = self.send(to, reqwest::Method::GET, path, Vec::new()).await?;
        parse_answer(to, &answer)
    }

    /// Sends one signed request; returns the body of a 2xx answer, or the refusal.
    async fn send(&self, to: BankId, method: reqwest::Method, path: &str, body: Vec<u8>) -> Result<Vec<u8>, PeerError> {
        let base = self.urls.get(&to).ok_or(PeerError::UnknownPeer(to))?;
        if self.is_cut_off() {
            return Err(PeerError::Unreachable { to, detail: "this bank is cut off by the fault switch".into() });
        }
        let url = base.join(path).map_err(|e| PeerError::Local(format!("bad path {path:?}: {e}")))?;
        // Sign what is actually sent: the URL's normalised path and query.
        let path_and_query = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        let nonce = fresh_nonce().map_err(|e| PeerError::Local(format!("no randomness for a nonce: {e}")))?;
        let signed = sign(&self.key, self.self_id, to, method.as_str(), &path_and_query, &body, unix_now_ms(), nonce);
        let mut request = self.http.request(method, url);
        for (name, value) in signed.pairs() {
            request = request.header(name, value);
        }
        if !body.is_empty() {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        let sent_ms = crate::clock::wall_ms();
        let mut response = request.send().await.map_err(|e| transport(to, &e))?;
        self.read_clock(to, sent_ms, response.headers());
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(to, &e))? {
            if bytes.len() + chunk.len() > RESPONSE_BYTES_MAX {
                return Err(PeerError::BadResponse {
                    to,
                    detail: format!("answer larger than {RESPONSE_BYTES_MAX} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(bytes);
        }
        // A problem+json from the peer: keep its code and detail for the caller.
        let problem: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let text = |field: &str| problem.get(field).and_then(|v| v.as_str()).map(str::to_owned);
        Err(PeerError::Refused {
            to,
            status: status.as_u16(),
            code: text("code").unwrap_or_else(|| "unknown".into()),
            detail: text("detail").unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect()),
        })
    }
}

impl PeerClient {
    /// Notes the peer's clock from its answer's [`CLOCK_HEADER`], and logs when its agreement
    /// with this bank's clock changes.
    fn read_clock(&self, to: BankId, sent_ms: i64, headers: &reqwest::header::HeaderMap) {
        let Some(peer_ms) = headers.get(CLOCK_HEADER).and_then(|v| v.to_str().ok()?.parse::<i64>().ok()) else {
            return;
        };
        let allowed = self.clocks.allowed_ms();
        match self.clocks.record(to, sent_ms, crate::clock::wall_ms(), peer_ms) {
            Some(Change::Disagrees(reading)) => {
                tracing::warn!(peer = %to, offset_ms = reading.offset_ms, "{}", describe(to, &reading, allowed))
            }
            Some(Change::AgreesAgain(reading)) => {
                tracing::info!(peer = %to, offset_ms = reading.offset_ms, "bank {to}'s clock agrees with this bank's again")
            }
            None => {}
        }
    }
}

fn parse_answer<Resp: DeserializeOwned>(to: BankId, bytes: &[u8]) -> Result<Resp, PeerError> {
    serde_json::from_slice(bytes).map_err(|e| PeerError::BadResponse { to, detail: format!("invalid JSON: {e}") })
}

fn transport(to: BankId, e: &reqwest::Error) -> PeerError {
    if e.is_timeout() {
        PeerError::Timeout { to }
    } else {
        // Connection refused or reset, DNS, a body cut short: the peer may come back.
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            detail.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        PeerError::Unreachable { to, detail }
    }
}
