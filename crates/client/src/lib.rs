//! A typed async client of a bank node's public API, `/api/v1` (see `API.md`).
//!
//! [`Client`] holds a base URL, an optional bearer token and a pooled `reqwest` connection pool;
//! cloning it is cheap (the pool is shared), and [`Client::with_token`] gives a copy acting for a
//! session. Each method is one HTTP request; none retries on its own, because only the caller
//! knows whether a retry is wanted.
//!
//! Money-moving requests (deposits, withdrawals, transfers) carry an `Idempotency-Key`. The
//! `*_with_key` methods take the key, so that a caller who lost an answer (timeout, 503) can
//! repeat the request with the same key and be sure it executes at most once; the plain methods
//! draw a fresh v4 UUID for callers who will not retry.
//!
//! Errors: see [`Error`]. A non-2xx answer becomes [`Error::Api`] carrying the problem's `code`.
//!
//! Not handled here: TLS (the workspace builds reqwest without a TLS stack; banks talk plain HTTP
//! on a trusted network), cookies (the web pages' session mechanism), automatic retries.

mod error;
mod types;

pub use error::{Error, Problem};
pub use types::*;

use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Result of a client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Name of the header that makes a money-moving request idempotent.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// Largest response body read, in bytes; anything larger is a [`Error::Decode`]. A statement page
/// or a transfer of 16 legs is a few kilobytes.
pub const RESPONSE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Draws a fresh idempotency key: a UUIDv7, unique and time-ordered, so the bank's on-disk
/// index of keys grows at its end instead of taking a random page per request.
pub fn new_idempotency_key() -> Uuid {
    Uuid::now_v7()
}

/// Connection settings of a [`Client`]. Every wait is bounded.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time to establish a TCP connection.
    pub connect_timeout_ms: u64,
    /// Time for a whole request, from sending to the last byte of the answer. Above the node's
    /// transfer deadline (5 s), so that a slow transfer still answers `pending` rather than
    /// timing out here.
    pub request_timeout_ms: u64,
    /// How long an idle pooled connection is kept for reuse.
    pub pool_idle_timeout_ms: u64,
    /// Idle connections kept per host.
    pub pool_idle_per_host_max: usize,
    /// TCP keep-alive probe interval on pooled connections.
    pub tcp_keepalive_ms: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout_ms: 2_000,
            request_timeout_ms: 15_000,
            // Below the banks' keep-alive limit (10 s), so a request never races a bank's close.
            pool_idle_timeout_ms: 5_000,
            pool_idle_per_host_max: 256,
            tcp_keepalive_ms: 30_000,
        }
    }
}

impl ClientOptions {
    /// Builds the `reqwest` client these options describe: no proxy (banks talk directly),
    /// pooled keep-alive connections, `TCP_NODELAY` (requests are small and latency matters).
    pub fn build_http(&self) -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_millis(self.connect_timeout_ms))
            .timeout(Duration::from_millis(self.request_timeout_ms))
            .pool_idle_timeout(Duration::from_millis(self.pool_idle_timeout_ms))
            .pool_max_idle_per_host(self.pool_idle_per_host_max)
            .tcp_keepalive(Duration::from_millis(self.tcp_keepalive_ms))
            .tcp_nodelay(true)
            .user_agent(concat!("bank-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::Transport)
    }
}

/// A client of one bank node, optionally acting for one session.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Base URL of the node, always ending in `/` so that relative joins append.
    base: Arc<Url>,
    token: Option<Arc<str>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Client {
    /// A client of the node at `base_url` (e.g. `http://127.0.0.1:8081`) with default options.
    pub fn new(base_url: &str) -> Result<Self> {
        Self::with_options(base_url, &ClientOptions::default())
    }

    /// A client with explicit connection options.
    pub fn with_options(base_url: &str, options: &ClientOptions) -> Result<Self> {
        Self::with_http(base_url, options.build_http()?)
    }

    /// A client sharing an existing connection pool (e.g. one pool for many nodes or sessions).
    pub fn with_http(base_url: &str, http: reqwest::Client) -> Result<Self> {
        Ok(Client { http, base: Arc::new(parse_base_url(base_url)?), token: None })
    }

    /// A copy of this client that authenticates with `token` (sharing the connection pool).
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Client { http: self.http.clone(), base: self.base.clone(), token: Some(Arc::from(token.into())) }
    }

    /// A copy of this client without a token.
    pub fn without_token(&self) -> Self {
        Client { http: self.http.clone(), base: self.base.clone(), token: None }
    }

    /// The bearer token this client sends, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The node's base URL (with a trailing `/`).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The underlying `reqwest` client (to share its pool).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    // ---- the API -------------------------------------------------------------------------

    /// `GET /healthz`: succeeds when the node answers 2xx.
    pub async fn health(&self) -> Result<()> {
        let url = self.url(&["healthz"])?;
        self.send_empty(self.http.get(url)).await
    }

    /// `GET /api/v1/bank`: which bank this node is.
    pub async fn bank(&self) -> Result<BankInfo> {
        self.call(Method::GET, &["bank"], None::<&()>, None).await
    }

    /// `POST /api/v1/accounts`: opens an account (no authentication needed).
    pub async fn open_account(&self, request: &NewAccount) -> Result<Account> {
        self.call(Method::POST, &["accounts"], Some(request), None).await
    }

    /// `POST /api/v1/sessions`: signs in. Use [`Client::with_token`] with the returned token.
    pub async fn login(&self, email: &str, password: &str) -> Result<Session> {
        let credentials = Credentials { email: email.to_owned(), password: password.to_owned() };
        self.call(Method::POST, &["sessions"], Some(&credentials), None).await
    }

    /// `DELETE /api/v1/sessions/current`: ends this client's session.
    pub async fn logout(&self) -> Result<()> {
        let url = self.api_url(&["sessions", "current"])?;
        self.send_empty(self.request(Method::DELETE, url)).await
    }

    /// `GET /api/v1/me`: the signed-in account with its balance.
    pub async fn me(&self) -> Result<Account> {
        self.call(Method::GET, &["me"], None::<&()>, None).await
    }

    /// `POST /api/v1/deposits` with a fresh idempotency key.
    pub async fn deposit(&self, amount_cents: i64, method: DepositMethod) -> Result<Entry> {
        self.deposit_with_key(amount_cents, method, new_idempotency_key()).await
    }

    /// `POST /api/v1/deposits`; repeating it with the same key deposits once.
    pub async fn deposit_with_key(&self, amount_cents: i64, method: DepositMethod, key: Uuid) -> Result<Entry> {
        let body = NewDeposit { amount_cents, method };
        self.call(Method::POST, &["deposits"], Some(&body), Some(key)).await
    }

    /// `POST /api/v1/withdrawals` with a fresh idempotency key.
    pub async fn withdraw(&self, amount_cents: i64) -> Result<Entry> {
        self.withdraw_with_key(amount_cents, new_idempotency_key()).await
    }

    /// `POST /api/v1/withdrawals`; repeating it with the same key withdraws once.
    pub async fn withdraw_with_key(&self, amount_cents: i64, key: Uuid) -> Result<Entry> {
        let body = NewWithdrawal { amount_cents };
        self.call(Method::POST, &["withdrawals"], Some(&body), Some(key)).await
    }

    /// `POST /api/v1/pix-keys`: registers an extra key (email, phone or random) for the account.
    pub async fn create_pix_key(&self, key_type: NewPixKeyType) -> Result<PixKey> {
        self.call(Method::POST, &["pix-keys"], Some(&NewPixKey { key_type }), None).await
    }

    /// `GET /api/v1/pix-keys/{key}`: whom a key points to. The key is percent-encoded.
    pub async fn lookup_pix_key(&self, key: &str) -> Result<PixKeyInfo> {
        self.call(Method::GET, &["pix-keys", key], None::<&()>, None).await
    }

    /// `POST /api/v1/transfers` with a fresh idempotency key.
    pub async fn transfer(&self, request: &NewTransfer) -> Result<Transfer> {
        self.transfer_with_key(request, new_idempotency_key()).await
    }

    /// `POST /api/v1/transfers`; repeating it with the same key executes it once. A transfer that
    /// executed answers `Ok` even when its status is `failed`.
    pub async fn transfer_with_key(&self, request: &NewTransfer, key: Uuid) -> Result<Transfer> {
        self.call(Method::POST, &["transfers"], Some(request), Some(key)).await
    }

    /// `GET /api/v1/transfers/{id}`.
    pub async fn get_transfer(&self, id: Uuid) -> Result<Transfer> {
        self.call(Method::GET, &["transfers", &id.to_string()], None::<&()>, None).await
    }

    /// `POST /api/v1/transfers/{id}/refunds` under `key`: refunds (part of) a Pix the customer
    /// received; the refund executed answers `Ok` even when `failed`.
    pub async fn refund_with_key(&self, id: Uuid, request: &NewRefund, key: Uuid) -> Result<Transfer> {
        self.call(Method::POST, &["transfers", &id.to_string(), "refunds"], Some(request), Some(key)).await
    }

    /// `GET /api/v1/transfers/{id}/receipt` (the customer's first leg of it).
    pub async fn receipt(&self, id: Uuid) -> Result<Receipt> {
        self.call(Method::GET, &["transfers", &id.to_string(), "receipt"], None::<&()>, None).await
    }

    /// `GET /api/v1/statement`: a page of entries, newest first. Pass a page's `next` as `before`
    /// to get the following page.
    pub async fn statement(&self, limit: Option<u32>, before: Option<&str>) -> Result<Statement> {
        let mut url = self.api_url(&["statement"])?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(limit) = limit {
                query.append_pair("limit", &limit.to_string());
            }
            if let Some(before) = before {
                query.append_pair("before", before);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.send_json(self.request(Method::GET, url)).await
    }

    /// `GET /api/v1/consortium/accounts`: the customer's accounts in every bank.
    pub async fn consortium_accounts(&self) -> Result<ConsortiumAccounts> {
        self.call(Method::GET, &["consortium", "accounts"], None::<&()>, None).await
    }

    /// `GET /api/v1/consortium/status`: members and token ring as this node sees them.
    pub async fn consortium_status(&self) -> Result<ConsortiumStatus> {
        self.call(Method::GET, &["consortium", "status"], None::<&()>, None).await
    }

    // ---- plumbing ------------------------------------------------------------------------

    /// `base/<segments...>`, each segment percent-encoded (so a key like `+5575...` or one with
    /// `/` stays one segment).
    fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = (*self.base).clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| Error::InvalidUrl(self.base.to_string()))?;
            path.pop_if_empty();
            path.extend(segments);
        }
        Ok(url)
    }

    fn api_url(&self, segments: &[&str]) -> Result<Url> {
        let mut all = Vec::with_capacity(segments.len() + 2);
        all.extend_from_slice(&["api", "v1"]);
        all.extend_from_slice(segments);
        self.url(&all)
    }

    /// A request with the bearer token, if any.
    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let builder = self.http.request(method, url);
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
        idempotency_key: Option<Uuid>,
    ) -> Result<T> {
        let url = self.api_url(segments)?;
        let mut builder = self.request(method, url);
        if let Some(key) = idempotency_key {
            builder = builder.header(IDEMPOTENCY_KEY_HEADER, key.to_string());
        }
        if let Some(body) = body {
            builder = builder.json(body);
        }
        self.send_json(builder).await
    }

    async fn send_json<T: DeserializeOwned>(&self, builder: RequestBuilder) -> Result<T> {
        let (status, body) = send(builder).await?;
        if !status.is_success() {
            return Err(error::from_error_response(status.as_u16(), &body));
        }
        serde_json::from_slice(&body)
            .map_err(|e| Error::Decode(format!("{e} in a {} answer of {} bytes", status.as_u16(), body.len())))
    }

    async fn send_empty(&self, builder: RequestBuilder) -> Result<()> {
        let (status, body) = send(builder).await?;
        if !status.is_success() {
            return Err(error::from_error_response(status.as_u16(), &body));
        }
        Ok(())
    }
}

/// Sends a request and reads its whole body, up to [`RESPONSE_BYTES_MAX`].
async fn send(builder: RequestBuilder) -> Result<(StatusCode, Vec<u8>)> {
    let mut response = builder.send().await.map_err(Error::Transport)?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Error::Transport)? {
        if body.len() + chunk.len() > RESPONSE_BYTES_MAX {
            return Err(Error::Decode(format!("response body larger than {RESPONSE_BYTES_MAX} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// Accepts `http://host:port` with or without a path prefix; the result ends in `/`.
fn parse_base_url(text: &str) -> Result<Url> {
    let mut url = Url::parse(text.trim()).map_err(|e| Error::InvalidUrl(format!("{text:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::InvalidUrl(format!("{text:?}: expected an http:// URL")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::InvalidUrl(format!("{text:?}: a base URL has no query or fragment")));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        Client::new(base).expect("client")
    }

    #[test]
    fn urls_append_to_the_base_path() {
        let c = client("http://127.0.0.1:8081");
        assert_eq!(c.api_url(&["bank"]).expect("url").as_str(), "http://127.0.0.1:8081/api/v1/bank");
        let c = client("http://127.0.0.1:8081/prefix");
        assert_eq!(c.api_url(&["me"]).expect("url").as_str(), "http://127.0.0.1:8081/prefix/api/v1/me");
        let c = client("http://127.0.0.1:8081/prefix/");
        assert_eq!(c.url(&["healthz"]).expect("url").as_str(), "http://127.0.0.1:8081/prefix/healthz");
    }

    #[test]
    fn pix_keys_are_percent_encoded_as_one_segment() {
        let c = client("http://localhost:1");
        let url = c.api_url(&["pix-keys", "+55 75/9?#%"]).expect("url");
        assert_eq!(url.as_str(), "http://localhost:1/api/v1/pix-keys/+55%2075%2F9%3F%23%25");
        let url = c.api_url(&["pix-keys", "ana@example.com"]).expect("url");
        assert_eq!(url.path(), "/api/v1/pix-keys/ana@example.com");
    }

    #[test]
    fn bad_base_urls_are_refused() {
        for bad in ["", "127.0.0.1:8081", "ftp://x", "http://x/?q=1", "mailto:a@b"] {
            assert!(matches!(Client::new(bad), Err(Error::InvalidUrl(_))), "{bad:?}");
        }
    }

    #[test]
    fn with_token_copies_and_keeps_the_original() {
        let c = client("http://localhost:1");
        let signed = c.with_token("secret");
        assert_eq!(signed.token(), Some("secret"));
        assert_eq!(c.token(), None);
        assert_eq!(signed.without_token().token(), None);
        assert!(!format!("{signed:?}").contains("secret"));
    }

    /// A refused connection is a retryable transport error, not an API error.
    #[tokio::test]
    async fn refused_connection_is_a_transport_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let err = client(&format!("http://{addr}")).bank().await.expect_err("nothing listens");
        assert_eq!(err.code(), "transport");
        assert!(err.is_retryable());
    }
}
