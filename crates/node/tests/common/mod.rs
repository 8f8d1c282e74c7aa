//! Test support: a node on port 0 in a temp dir, and a small JSON client.
#![allow(dead_code)]

use std::net::SocketAddr;

use bank_node::{Node, NodeConfig};
use serde_json::{Value, json};

/// A running node; dropping it stops the server task (the temp dir goes with it).
pub struct TestNode {
    pub addr: SocketAddr,
    pub url: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub async fn spawn_node() -> TestNode {
    let dir = tempfile::tempdir().expect("tempdir");
    spawn_node_in(dir).await
}

pub async fn spawn_node_in(dir: tempfile::TempDir) -> TestNode {
    spawn_node_in_with(dir, |_| {}).await
}

/// A node whose configuration `tweak` adjusts first (e.g. a tiny session TTL).
pub async fn spawn_node_with(tweak: impl FnOnce(&mut NodeConfig)) -> TestNode {
    let dir = tempfile::tempdir().expect("tempdir");
    spawn_node_in_with(dir, tweak).await
}

pub async fn spawn_node_in_with(dir: tempfile::TempDir, tweak: impl FnOnce(&mut NodeConfig)) -> TestNode {
    let mut config = NodeConfig::new(1, "Eleven", "127.0.0.1:0".parse().expect("addr"), dir.path().join("bank-1"));
    tweak(&mut config);
    let node = Node::start(config).await.expect("node starts");
    let addr = node.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        node.run_until(async move {
            let _ = stopped.await;
        })
        .await
        .expect("node runs");
    });
    TestNode {
        addr,
        url: format!("http://{addr}"),
        http: reqwest::Client::builder().no_proxy().build().expect("client"),
        dir,
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestNode {
    /// Graceful stop (flushes the ledger); gives back the data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("node task");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        self.call_with(method, path, token, body, None).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        idem: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method.parse().expect("method"), format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = idem {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Sends raw bytes as the body.
    pub async fn raw(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().expect("method"), format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Opens an individual account for CPF base `n` and signs in; returns (token, account).
    pub async fn customer(&self, n: u64, name: &str) -> (String, Value) {
        let cpf = bank_core::document::Cpf::from_base(n);
        let email = format!("c{n}@example.com");
        let (status, account) = self
            .call(
                "POST",
                "/api/v1/accounts",
                None,
                Some(json!({
                    "kind": "individual",
                    "holders": [{ "name": name, "document": cpf.as_str() }],
                    "email": email, "phone": "+5575999990000", "password": "password123"
                })),
            )
            .await;
        assert_eq!(status, 201, "open account: {account}");
        let token = self.sign_in(&email, "password123").await;
        (token, account)
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> String {
        let (status, session) =
            self.call("POST", "/api/v1/sessions", None, Some(json!({ "email": email, "password": password }))).await;
        assert_eq!(status, 201, "sign in: {session}");
        session["token"].as_str().expect("token").to_string()
    }

    pub async fn deposit(&self, token: &str, cents: i64) {
        let (status, body) = self
            .call("POST", "/api/v1/deposits", Some(token), Some(json!({ "amount_cents": cents, "method": "cash" })))
            .await;
        assert_eq!(status, 201, "deposit: {body}");
    }

    pub async fn balance(&self, token: &str) -> (i64, i64, i64) {
        let (status, me) = self.call("GET", "/api/v1/me", Some(token), None).await;
        assert_eq!(status, 200, "me: {me}");
        let b = &me["balance"];
        (
            b["posted_cents"].as_i64().expect("posted"),
            b["held_cents"].as_i64().expect("held"),
            b["available_cents"].as_i64().expect("available"),
        )
    }
}

/// A request body for [`TestNode::send`].
#[derive(Debug, Clone)]
pub enum Body {
    None,
    Json(Value),
    /// Raw text sent as `application/json`.
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

/// What a rejected request must leave untouched: the balance and every statement line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub balance: (i64, i64, i64),
    pub entries: Vec<Value>,
}

impl TestNode {
    /// Any request, with any headers; returns status, content type and body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.http.request(method.parse().expect("method"), format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Raw(text) => req.header("content-type", "application/json").body(text),
        };
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let text = resp.text().await.expect("body");
        Reply { status, content_type, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    /// Every statement line of the signed-in account (or `?account=`), newest first, all pages.
    pub async fn statement_all(&self, token: &str, account: Option<&str>) -> Vec<Value> {
        let mut entries = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let mut path = "/api/v1/statement?limit=200".to_string();
            if let Some(a) = account {
                path.push_str(&format!("&account={a}"));
            }
            if let Some(b) = &before {
                path.push_str(&format!("&before={b}"));
            }
            let (status, page) = self.call("GET", &path, Some(token), None).await;
            assert_eq!(status, 200, "statement: {page}");
            entries.extend(page["entries"].as_array().expect("entries").iter().cloned());
            match page["next"].as_str() {
                Some(next) => before = Some(next.to_string()),
                None => return entries,
            }
        }
    }

    /// Balance and statement of the signed-in account.
    pub async fn snapshot(&self, token: &str) -> Snapshot {
        Snapshot { balance: self.balance(token).await, entries: self.statement_all(token, None).await }
    }

    /// `POST /api/v1/accounts` with `body`.
    pub async fn open(&self, body: Value) -> Reply {
        self.send("POST", "/api/v1/accounts", None, Body::Json(body), &[]).await
    }

    /// Signs in and returns the whole answer (for checking refusals).
    pub async fn try_sign_in(&self, email: &str, password: &str) -> Reply {
        self.send("POST", "/api/v1/sessions", None, Body::Json(json!({ "email": email, "password": password })), &[])
            .await
    }
}

/// The valid CPF of base `n`, bare.
pub fn cpf(n: u64) -> String {
    bank_core::document::Cpf::from_base(n).as_str().to_string()
}

/// The valid CNPJ of root `n`, bare.
pub fn cnpj(n: u64) -> String {
    bank_core::document::Cnpj::from_base(n).as_str().to_string()
}

/// An account body that opens fine, to be spoiled by a test.
pub fn individual_body(n: u64, email: &str) -> Value {
    json!({
        "kind": "individual",
        "holders": [{ "name": "Test Person", "document": cpf(n) }],
        "email": email, "phone": "+5575999990000", "password": "password123"
    })
}

/// The account number of an account object.
pub fn number_of(account: &Value) -> String {
    account["number"].as_str().expect("account number").to_string()
}

/// The CPF/CNPJ key of an account object (its first key).
pub fn key_of(account: &Value) -> String {
    account["pix_keys"][0]["key"].as_str().expect("pix key").to_string()
}

/// A consortium of `n` banks (ids 1..=n), each a node on its own port, with fresh keys.
pub struct Cluster {
    pub nodes: Vec<TestNode>,
    pub config: bank_node::consortium::ConsortiumConfig,
    pub keys: Vec<bank_node::consortium::SigningKey>,
    pub operator: bank_node::consortium::SigningKey,
}

pub async fn cluster(n: u32) -> Cluster {
    cluster_with(n, |_| {}).await
}

/// A consortium whose every node's configuration `tweak` adjusts.
pub async fn cluster_with(n: u32, tweak: impl Fn(&mut NodeConfig)) -> Cluster {
    use bank_core::ids::BankId;
    use bank_node::consortium::{Consortium, ConsortiumConfig, Member, NodeSettings, generate_signing_key};
    let keys: Vec<_> = (1..=n).map(|_| generate_signing_key().expect("key")).collect();
    let members = (1..=n)
        .map(|id| {
            let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
            let member = Member {
                id: BankId(id),
                name: format!("Bank {id}"),
                url: format!("http://127.0.0.1:{port}"),
                public_key: keys[id as usize - 1].verifying_key(),
            };
            (BankId(id), member)
        })
        .collect();
    let operator = generate_signing_key().expect("key");
    let config = ConsortiumConfig {
        operator_key: operator.verifying_key(),
        members,
        ring: Default::default(),
        node: NodeSettings::default(),
    };
    let mut nodes = Vec::new();
    for id in 1..=n {
        let consortium = Consortium::new(&config, BankId(id), keys[id as usize - 1].clone()).expect("member");
        let listen = config.default_listen(BankId(id)).expect("listen");
        nodes.push(
            spawn_node_with(|c| {
                c.bank_id = BankId(id);
                c.name = format!("Bank {id}");
                c.listen = listen;
                c.consortium = Some(consortium);
                tweak(c);
            })
            .await,
        );
    }
    Cluster { nodes, config, keys, operator }
}

impl Cluster {
    /// The node of bank `id`.
    pub fn bank(&self, id: u32) -> &TestNode {
        &self.nodes[id as usize - 1]
    }

    /// `POST path` to bank `to`, signed by `from` (a member id, or 0: the operator).
    pub async fn signed_post(&self, from: u32, to: u32, path: &str, body: &Value) -> (u16, Value) {
        use bank_core::ids::BankId;
        use bank_node::interbank::sign::{fresh_nonce, sign, unix_now_ms};
        let key = if from == 0 { &self.operator } else { &self.keys[from as usize - 1] };
        let bytes = serde_json::to_vec(body).expect("json");
        let signed =
            sign(key, BankId(from), BankId(to), "POST", path, &bytes, unix_now_ms(), fresh_nonce().expect("nonce"));
        let mut request = self.bank(to).http.post(format!("{}{path}", self.bank(to).url));
        for (name, value) in signed.pairs() {
            request = request.header(name, value);
        }
        let response = request.header("content-type", "application/json").body(bytes).send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Stops bank `id` gracefully, hands its data directory to `inspect` while it is down, then
    /// starts it again on the same data and address with `tweak` applied.
    pub async fn restart(
        &mut self,
        id: u32,
        inspect: impl FnOnce(&std::path::Path),
        tweak: impl FnOnce(&mut NodeConfig),
    ) {
        use bank_core::ids::BankId;
        let node = self.nodes.remove(id as usize - 1);
        let dir = node.stop().await;
        inspect(&dir.path().join("bank-1"));
        let consortium =
            bank_node::consortium::Consortium::new(&self.config, BankId(id), self.keys[id as usize - 1].clone())
                .expect("member");
        let listen = self.config.default_listen(BankId(id)).expect("listen");
        let node = spawn_node_in_with(dir, |c| {
            c.bank_id = BankId(id);
            c.name = format!("Bank {id}");
            c.listen = listen;
            c.consortium = Some(consortium);
            tweak(c);
        })
        .await;
        self.nodes.insert(id as usize - 1, node);
    }

    /// Throws bank `id`'s fault switch: cut off from its peers, or reconnected.
    pub async fn cut_off(&self, id: u32, cut_off: bool) {
        let (status, answer) = self.signed_post(0, id, "/interbank/v1/fault", &json!({ "cut_off": cut_off })).await;
        assert_eq!(status, 200, "fault switch of bank {id}: {answer}");
    }
}
