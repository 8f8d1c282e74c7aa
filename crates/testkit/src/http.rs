//! One way to send a request to a node and read its answer, for every harness.

use bank_node::interbank::sign::SignedHeaders;
use serde_json::Value;

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    None,
    Json(Value),
    /// Raw text sent as `application/json` (a malformed body, or exact signed bytes).
    Raw(String),
}

/// A whole answer: status, content type and the body (JSON if it parses, else a string).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Reply {
    /// Status and body, as most tests compare them.
    pub fn pair(self) -> (u16, Value) {
        (self.status, self.body)
    }

    /// Asserts the answer is an `application/problem+json` with this status and `code`; `what`
    /// names the case in the failure message.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str, what: &str) {
        assert_eq!(self.status, status, "{what}: status of {}", self.body);
        assert!(
            self.content_type.starts_with("application/problem+json"),
            "{what}: content type {:?} of {}",
            self.content_type,
            self.body
        );
        assert_eq!(self.body["code"], code, "{what}: code of {}", self.body);
        assert_eq!(self.body["status"], status, "{what}: status field of {}", self.body);
        for field in ["type", "title", "detail"] {
            assert!(self.body[field].is_string(), "{what}: problem field {field} in {}", self.body);
        }
    }
}

/// One request: method and URL, then whatever it carries.
#[derive(Debug, Clone)]
pub struct Call {
    method: String,
    url: String,
    token: Option<String>,
    body: Body,
    headers: Vec<(String, String)>,
}

impl Call {
    /// `method` of the full `url`, with nothing else yet.
    pub fn new(method: &str, url: impl Into<String>) -> Call {
        Call { method: method.to_owned(), url: url.into(), token: None, body: Body::None, headers: Vec::new() }
    }

    /// Bearer session token, when there is one.
    pub fn token(mut self, token: Option<&str>) -> Call {
        self.token = token.map(str::to_owned);
        self
    }

    /// The `Idempotency-Key` header, when there is one.
    pub fn idem(self, key: Option<&str>) -> Call {
        match key {
            Some(key) => self.header("Idempotency-Key", key),
            None => self,
        }
    }

    pub fn body(mut self, body: Body) -> Call {
        self.body = body;
        self
    }

    pub fn json(self, body: Option<Value>) -> Call {
        self.body(body.map_or(Body::None, Body::Json))
    }

    pub fn header(mut self, name: &str, value: &str) -> Call {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn headers(self, headers: &[(&str, &str)]) -> Call {
        headers.iter().fold(self, |call, (name, value)| call.header(name, value))
    }

    /// The inter-bank authentication headers, when there are some (none: an unsigned request).
    pub fn signed(self, signature: Option<&SignedHeaders>) -> Call {
        let pairs = signature.map(SignedHeaders::pairs).into_iter().flatten();
        pairs.fold(self, |call, (name, value)| call.header(name, &value))
    }

    /// Sends it; `Err` when the node could not be reached or did not answer.
    pub async fn try_send(self, http: &reqwest::Client) -> reqwest::Result<Reply> {
        let mut request = http.request(self.method.parse().expect("an HTTP method"), &self.url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request = match self.body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Raw(text) => request.header("content-type", "application/json").body(text),
        };
        let response = request.send().await?;
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let text = response.text().await?;
        Ok(Reply { status, content_type, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }

    /// Sends it; a node that cannot be reached fails the test, naming the request.
    pub async fn send(self, http: &reqwest::Client) -> Reply {
        let what = format!("{} {}", self.method, self.url);
        self.try_send(http).await.unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}

/// The client every harness uses: no proxy (the machine's proxy settings must not reach
/// 127.0.0.1), and `timeout` per request when given.
pub fn client(timeout: Option<std::time::Duration>) -> reqwest::Client {
    let builder = reqwest::Client::builder().no_proxy();
    let builder = match timeout {
        Some(timeout) => builder.timeout(timeout),
        None => builder,
    };
    builder.build().expect("an HTTP client")
}

/// Whether the node at `base_url` answers `/healthz` with success now.
pub async fn healthy(http: &reqwest::Client, base_url: &str) -> bool {
    matches!(http.get(format!("{base_url}/healthz")).send().await, Ok(r) if r.status().is_success())
}

/// Polls `/healthz` of the node at `base_url` until it answers, or fails the test after `within`.
pub async fn wait_healthy(http: &reqwest::Client, base_url: &str, within: std::time::Duration) {
    let deadline = std::time::Instant::now() + within;
    while !healthy(http, base_url).await {
        assert!(std::time::Instant::now() < deadline, "the node at {base_url} did not answer /healthz in {within:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A counter or gauge of the node's `/metrics` (0 if absent).
pub async fn metric(http: &reqwest::Client, base_url: &str, name: &str) -> f64 {
    let response = http.get(format!("{base_url}/metrics")).send().await.expect("GET /metrics");
    let text = response.text().await.expect("the text of /metrics");
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

/// The body that opens an individual account for the valid CPF of base `cpf_base`.
pub fn individual_account(cpf_base: u64, name: &str, email: &str, password: &str) -> Value {
    let cpf = bank_core::document::Cpf::from_base(cpf_base);
    serde_json::json!({
        "kind": "individual",
        "holders": [{ "name": name, "document": cpf.as_str() }],
        "email": email, "phone": "+5575999990000", "password": password
    })
}

/// The password of every customer a harness opens.
pub const PASSWORD: &str = "a long test passphrase";

/// Opens an individual account for CPF base `cpf_base` at the node at `base_url` (email
/// `c{cpf_base}@example.com`) and signs in: (session token, the account as answered).
pub async fn open_and_sign_in(http: &reqwest::Client, base_url: &str, cpf_base: u64, name: &str) -> (String, Value) {
    let email = format!("c{cpf_base}@example.com");
    let body = individual_account(cpf_base, name, &email, PASSWORD);
    let open = Call::new("POST", format!("{base_url}/api/v1/accounts")).json(Some(body)).send(http).await;
    assert_eq!(open.status, 201, "open {name}'s account at {base_url}: {}", open.body);
    let login = serde_json::json!({ "email": email, "password": PASSWORD });
    let session = Call::new("POST", format!("{base_url}/api/v1/sessions")).json(Some(login)).send(http).await;
    assert_eq!(session.status, 201, "sign {name} in at {base_url}: {}", session.body);
    (session.body["token"].as_str().expect("a session token").to_owned(), open.body)
}
