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
    let config = NodeConfig::new(1, "Eleven", "127.0.0.1:0".parse().expect("addr"), dir.path().join("bank-1"));
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
