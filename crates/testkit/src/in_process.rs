//! Nodes in the test's own process: one node on port 0 in a temp dir ([`TestNode`]), or a
//! consortium of them ([`Cluster`]), each on a port from [`crate::ports`] (the consortium file
//! must name every member's URL before any starts).

use std::net::SocketAddr;

use bank_core::ids::BankId;
use bank_node::consortium::{Consortium, ConsortiumConfig, Member, NodeSettings, SigningKey, generate_signing_key};
use bank_node::{Node, NodeConfig};
use serde_json::{Value, json};

pub use crate::http::{Body, Reply};
use crate::http::{Call, PASSWORD};
use crate::signer::{OPERATOR, sign_now};

/// The directory of a node's data inside its temp dir.
const DATA_SUBDIR: &str = "bank-1";

/// A running node; dropping it stops the server task (the temp dir goes with it).
#[derive(Debug)]
pub struct TestNode {
    pub addr: SocketAddr,
    pub url: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub async fn spawn_node() -> TestNode {
    spawn_node_with(|_| {}).await
}

pub async fn spawn_node_in(dir: tempfile::TempDir) -> TestNode {
    spawn_node_in_with(dir, |_| {}).await
}

/// A node whose configuration `tweak` adjusts first (e.g. a tiny session TTL).
pub async fn spawn_node_with(tweak: impl FnOnce(&mut NodeConfig)) -> TestNode {
    spawn_node_in_with(tempfile::tempdir().expect("tempdir"), tweak).await
}

/// A node on the data of `dir` (a fresh one, or one a stopped node gave back).
pub async fn spawn_node_in_with(dir: tempfile::TempDir, tweak: impl FnOnce(&mut NodeConfig)) -> TestNode {
    let mut config = NodeConfig::new(1, "Eleven", "127.0.0.1:0".parse().expect("addr"), dir.path().join(DATA_SUBDIR));
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
        http: crate::http::client(None),
        dir,
        stop: Some(stop),
        task: Some(task),
    }
}

/// What a rejected request must leave untouched: the balance and every statement line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub balance: (i64, i64, i64),
    pub entries: Vec<Value>,
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

    /// The node's data directory inside [`TestNode::dir`].
    pub fn data_dir(dir: &std::path::Path) -> std::path::PathBuf {
        dir.join(DATA_SUBDIR)
    }

    /// A request to `path` of this node, to be completed and sent.
    pub fn request(&self, method: &str, path: &str) -> Call {
        Call::new(method, format!("{}{path}", self.url))
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
        self.request(method, path).token(token).idem(idem).json(body).send(&self.http).await.pair()
    }

    /// Sends raw bytes as the body.
    pub async fn raw(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        self.request(method, path).token(token).body(Body::Raw(body.to_owned())).send(&self.http).await.pair()
    }

    /// Any request, with any headers; returns status, content type and body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.request(method, path).token(token).body(body).headers(headers).send(&self.http).await
    }

    /// Opens an individual account for CPF base `n` and signs in; returns (token, account).
    pub async fn customer(&self, n: u64, name: &str) -> (String, Value) {
        crate::http::open_and_sign_in(&self.http, &self.url, n, name).await
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> String {
        let reply = self.try_sign_in(email, password).await;
        assert_eq!(reply.status, 201, "sign in: {}", reply.body);
        reply.body["token"].as_str().expect("token").to_string()
    }

    pub async fn deposit(&self, token: &str, cents: i64) {
        let (status, body) = self
            .call("POST", "/api/v1/deposits", Some(token), Some(json!({ "amount_cents": cents, "method": "cash" })))
            .await;
        assert_eq!(status, 201, "deposit: {body}");
    }

    /// (posted, held, available) of the signed-in account.
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

    /// A counter or gauge of this node's `/metrics` (0 if absent).
    pub async fn metric(&self, name: &str) -> f64 {
        crate::http::metric(&self.http, &self.url, name).await
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
    crate::http::individual_account(n, "Test Person", email, PASSWORD)
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
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<TestNode>,
    pub config: ConsortiumConfig,
    /// Bank `id`'s signing key is `keys[id - 1]`.
    pub keys: Vec<SigningKey>,
    pub operator: SigningKey,
}

pub async fn cluster(n: u32) -> Cluster {
    cluster_with(n, |_| {}).await
}

/// A consortium whose every node's configuration `tweak` adjusts.
pub async fn cluster_with(n: u32, tweak: impl Fn(&mut NodeConfig)) -> Cluster {
    let keys: Vec<SigningKey> = (1..=n).map(|_| generate_signing_key().expect("key")).collect();
    let ports = crate::ports::several(keys.len());
    let members = (1..=n)
        .zip(ports)
        .map(|(id, port)| {
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
        institution_codes: Default::default(),
    };
    let mut cluster = Cluster { nodes: Vec::new(), config, keys, operator };
    for id in 1..=n {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = spawn_node_in_with(dir, |c| cluster.member_config(id, c, &tweak)).await;
        cluster.nodes.push(node);
    }
    cluster
}

impl Cluster {
    /// The node of bank `id`.
    pub fn bank(&self, id: u32) -> &TestNode {
        &self.nodes[id as usize - 1]
    }

    /// The signing key of bank `id`, or the operator's for [`OPERATOR`].
    pub fn key(&self, id: u32) -> &SigningKey {
        if id == OPERATOR.0 { &self.operator } else { &self.keys[id as usize - 1] }
    }

    /// Makes `config` bank `id` of this consortium, then applies `tweak`.
    fn member_config(&self, id: u32, config: &mut NodeConfig, tweak: impl FnOnce(&mut NodeConfig)) {
        let consortium = Consortium::new(&self.config, BankId(id), self.key(id).clone()).expect("member");
        config.bank_id = BankId(id);
        config.name = format!("Bank {id}");
        config.listen = self.config.default_listen(BankId(id)).expect("listen");
        config.consortium = Some(consortium);
        tweak(config);
    }

    /// `POST path` to bank `to`, signed by `from` (a member id, or 0: the operator).
    pub async fn signed_post(&self, from: u32, to: u32, path: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_string(body).expect("json");
        let signature = sign_now(self.key(from), BankId(from), BankId(to), "POST", path, bytes.as_bytes());
        let node = self.bank(to);
        node.request("POST", path).signed(Some(&signature)).body(Body::Raw(bytes)).send(&node.http).await.pair()
    }

    /// Stops bank `id` gracefully, hands its data directory to `inspect` while it is down, then
    /// starts it again on the same data and address with `tweak` applied.
    pub async fn restart(
        &mut self,
        id: u32,
        inspect: impl FnOnce(&std::path::Path),
        tweak: impl FnOnce(&mut NodeConfig),
    ) {
        let node = self.nodes.remove(id as usize - 1);
        let dir = node.stop().await;
        inspect(&TestNode::data_dir(dir.path()));
        let node = spawn_node_in_with(dir, |c| self.member_config(id, c, tweak)).await;
        self.nodes.insert(id as usize - 1, node);
    }

    /// Throws bank `id`'s fault switch: cut off from its peers, or reconnected.
    pub async fn cut_off(&self, id: u32, cut_off: bool) {
        let (status, answer) =
            self.signed_post(OPERATOR.0, id, "/interbank/v1/fault", &json!({ "cut_off": cut_off })).await;
        assert_eq!(status, 200, "fault switch of bank {id}: {answer}");
    }
}
