//! `bench::run` end to end against a small in-memory fake of the API (port 0): the setup, the
//! load loop, the outcome counting, the 503 retry with the same key and the conservation check.
//! The real node's API and cluster tests live elsewhere; this only proves the bench's own logic.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bank_cli::bench::{self, Mode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Fake {
    accounts: Vec<(String, String, i64)>, // email, password, posted cents
    tokens: HashMap<String, usize>,
    answered: HashMap<String, (Value, Value)>, // idempotency key -> (request, response)
    transfer_posts: u64,
    overload_every: u64,
    /// When set, the fake loses one centavo per completed transfer (to prove the check bites).
    leak: bool,
}

type Shared = Arc<Mutex<Fake>>;

fn problem(status: StatusCode, code: &str) -> Response {
    let body = json!({"type": "about:blank", "title": code, "status": status.as_u16(), "detail": code, "code": code});
    (status, [("content-type", "application/problem+json")], body.to_string()).into_response()
}

fn number(index: usize) -> String {
    format!("{:06}-0", index + 1)
}

fn account_json(fake: &Fake, index: usize) -> Value {
    let (email, _, posted) = &fake.accounts[index];
    json!({"bank_id": 1, "bank_name": "Fake", "number": number(index), "kind": "individual",
           "holders": [{"name": "x", "document": "52998224725"}], "email": email, "phone": "+5575999991234",
           "pix_keys": [], "balance": {"posted_cents": posted, "held_cents": 0, "available_cents": posted},
           "created_at": "2025-01-01T00:00:00Z", "warnings": []})
}

fn session_of(fake: &Fake, headers: &HeaderMap) -> Option<usize> {
    let token = headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")?;
    fake.tokens.get(token).copied()
}

async fn open(State(s): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut fake = s.lock().expect("lock");
    let email = body["email"].as_str().unwrap_or_default().to_owned();
    if fake.accounts.iter().any(|(e, _, _)| *e == email) {
        return problem(StatusCode::CONFLICT, "conflict");
    }
    fake.accounts.push((email, body["password"].as_str().unwrap_or_default().to_owned(), 0));
    let index = fake.accounts.len() - 1;
    (StatusCode::CREATED, Json(account_json(&fake, index))).into_response()
}

async fn login(State(s): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut fake = s.lock().expect("lock");
    let found =
        fake.accounts.iter().position(|(e, p, _)| body["email"] == e.as_str() && body["password"] == p.as_str());
    let Some(index) = found else { return problem(StatusCode::UNAUTHORIZED, "unauthorized") };
    let token = format!("token-{index}");
    fake.tokens.insert(token.clone(), index);
    let account = account_json(&fake, index);
    (StatusCode::CREATED, Json(json!({"token": token, "expires_at": "2030-01-01T00:00:00Z", "account": account})))
        .into_response()
}

async fn me(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let fake = s.lock().expect("lock");
    match session_of(&fake, &headers) {
        Some(index) => Json(account_json(&fake, index)).into_response(),
        None => problem(StatusCode::UNAUTHORIZED, "unauthorized"),
    }
}

async fn deposit(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut fake = s.lock().expect("lock");
    let Some(index) = session_of(&fake, &headers) else { return problem(StatusCode::UNAUTHORIZED, "unauthorized") };
    let amount = body["amount_cents"].as_i64().unwrap_or_default();
    fake.accounts[index].2 += amount;
    let entry = json!({"id": 1, "transfer_id": null, "kind": "deposit", "direction": "credit", "amount_cents": amount,
                       "status": "completed", "method": "cash", "counterparty": null, "created_at": "2025-01-01T00:00:00Z"});
    (StatusCode::CREATED, Json(entry)).into_response()
}

async fn transfer(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut fake = s.lock().expect("lock");
    let Some(from) = session_of(&fake, &headers) else { return problem(StatusCode::UNAUTHORIZED, "unauthorized") };
    let Some(key) = headers.get("idempotency-key").and_then(|k| k.to_str().ok()).map(str::to_owned) else {
        return problem(StatusCode::BAD_REQUEST, "invalid_input");
    };
    if let Some((request, response)) = fake.answered.get(&key) {
        if *request != body {
            return problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_mismatch");
        }
        return (StatusCode::CREATED, Json(response.clone())).into_response();
    }
    fake.transfer_posts += 1;
    if fake.overload_every > 0 && fake.transfer_posts.is_multiple_of(fake.overload_every) {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    }
    let leg = &body["legs"][0];
    let amount = leg["amount_cents"].as_i64().unwrap_or_default();
    let to_number = leg["to"]["number"].as_str().unwrap_or_default();
    let Some(to) = (0..fake.accounts.len()).find(|&i| number(i) == to_number) else {
        return problem(StatusCode::NOT_FOUND, "not_found");
    };
    let status = if fake.accounts[from].2 >= amount {
        fake.accounts[from].2 -= amount;
        fake.accounts[to].2 += amount - i64::from(fake.leak);
        "completed"
    } else {
        "failed"
    };
    let response = json!({"id": uuid::Uuid::new_v4(), "status": status,
        "legs": [{"from": {"bank_id": 1, "number": number(from)}, "to": {"bank_id": 1, "number": to_number, "key": null,
                  "holder_name": "x"}, "amount_cents": amount, "status": status}],
        "failure": if status == "failed" { json!({"code": "insufficient_funds", "detail": "no money"}) } else { Value::Null },
        "decision": null, "description": null, "created_at": "2025-01-01T00:00:00Z"});
    fake.answered.insert(key, (body, response.clone()));
    (StatusCode::CREATED, Json(response)).into_response()
}

async fn serve(fake: Fake) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(fake));
    let app = Router::new()
        .route("/api/v1/bank", get(|| async { Json(json!({"id": 1, "name": "Fake"})) }))
        .route("/api/v1/accounts", post(open))
        .route("/api/v1/sessions", post(login))
        .route("/api/v1/me", get(me))
        .route("/api/v1/deposits", post(deposit))
        .route("/api/v1/transfers", post(transfer))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (url, shared)
}

fn options(url: &str) -> bench::Options {
    let mut options = bench::Options::new(url);
    options.accounts = 5;
    options.transfers = 300;
    options.concurrency = 4;
    options.seed = Some(42);
    options
}

/// Every transfer is counted once, 503s are retried with the same key, and money is conserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_outcomes_retries_and_checks_conservation() {
    let (url, shared) = serve(Fake { overload_every: 7, ..Fake::default() }).await;
    let mut options = options(&url);
    // Small deposits against amounts up to R$ 10,00: some transfers must fail for lack of money.
    options.deposit_cents = 2_000;
    let summary = bench::run(&options).await.expect("bench");
    assert_eq!(summary.mode, Mode::InBank);
    assert_eq!(summary.completed + summary.failed + summary.pending + summary.errors, 300);
    assert_eq!(summary.errors, 0, "{:?}", summary.error_codes);
    assert!(summary.failed > 0, "some transfers should fail for lack of money");
    assert!(summary.retries > 0, "every 7th first attempt was answered 503");
    assert!(summary.conserved, "{}", summary.verdict());
    assert_eq!(summary.deposited_cents, 5 * 2_000);
    assert_eq!(summary.posted_cents, 5 * 2_000);
    assert!(summary.ops_per_s > 0.0 && summary.latency_ms.max >= summary.latency_ms.p50);
    let fake = shared.lock().expect("lock");
    assert_eq!(fake.answered.len(), 300, "each transfer executed once, retries replayed nothing new");
}

/// A node that loses money is caught by the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detects_a_node_that_loses_money() {
    let (url, _shared) = serve(Fake { leak: true, ..Fake::default() }).await;
    let summary = bench::run(&options(&url)).await.expect("bench");
    assert!(summary.completed > 0);
    assert!(!summary.conserved);
    assert_eq!(summary.posted_cents, summary.deposited_cents - summary.completed as i64);
    assert!(summary.verdict().starts_with("NOT CONSERVED"), "{}", summary.verdict());
}
