//! Many concurrent requests against one node: money is never overdrawn, never created or lost,
//! and every success and refusal is accounted for exactly.
//!
//! Amounts come from a seeded generator; the seed is printed and can be set with
//! `BANK_TEST_SEED` to replay a run.

use bank_testkit::in_process;
use bank_testkit::rng::Rng;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bank_testkit::in_process::{Body, TestNode, key_of, number_of};
use serde_json::{Value, json};
use tokio::sync::Barrier;

const TASKS: usize = 64;

fn seed() -> u64 {
    let seed = std::env::var("BANK_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_2024);
    println!("BANK_TEST_SEED={seed}");
    seed
}

/// A signed-in customer.
#[derive(Debug, Clone)]
struct Customer {
    token: String,
    number: String,
    key: String,
}

async fn customer(node: &TestNode, n: u64, name: &str) -> Customer {
    let (token, account) = node.customer(n, name).await;
    Customer { token, number: number_of(&account), key: key_of(&account) }
}

/// What one request did, read from its answer.
#[derive(Debug, Clone)]
enum Outcome {
    /// 201 withdrawal.
    Withdrawn(i64),
    /// 422 `insufficient_funds` withdrawal.
    WithdrawalRefused,
    /// 201 `completed` transfer: (receiver index, amount) per leg.
    Transferred(Vec<(usize, i64)>),
    /// 201 `failed` / `insufficient_funds` transfer, with its number of legs.
    TransferFailed(usize),
}

fn withdrawal_outcome(status: u16, body: &Value, amount: i64) -> Outcome {
    match (status, body["code"].as_str()) {
        (201, _) => {
            assert_eq!(body["kind"], "withdrawal", "{body}");
            assert_eq!(body["amount_cents"], amount, "{body}");
            Outcome::Withdrawn(amount)
        }
        (422, Some("insufficient_funds")) => Outcome::WithdrawalRefused,
        _ => panic!("unexpected withdrawal answer {status}: {body}"),
    }
}

fn transfer_outcome(status: u16, body: &Value, legs: Vec<(usize, i64)>) -> Outcome {
    assert_eq!(status, 201, "a valid transfer always executes: {body}");
    match body["status"].as_str() {
        Some("completed") => Outcome::Transferred(legs),
        Some("failed") => {
            assert_eq!(body["failure"]["code"], "insufficient_funds", "{body}");
            Outcome::TransferFailed(legs.len())
        }
        _ => panic!("unexpected transfer status: {body}"),
    }
}

/// Polls `/me` of `tokens` until `stop`, asserting no balance is ever negative or above `ceiling`.
fn spawn_poller(
    node: Arc<TestNode>,
    tokens: Vec<String>,
    ceiling: i64,
    stop: Arc<AtomicBool>,
    polls: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            for token in &tokens {
                let (posted, held, available) = node.balance(token).await;
                assert!(available >= 0, "available went negative: {available}");
                assert!(held >= 0 && posted >= 0, "negative balance: posted {posted}, held {held}");
                assert!(posted <= ceiling, "money appeared: posted {posted} > {ceiling}");
                polls.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
}

/// 64 tasks race withdrawals and one- and two-leg transfers out of one funded account, asking for
/// far more than it holds: no balance is ever negative, every centavo is accounted for, and all of
/// it is still there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storm_of_withdrawals_and_transfers_never_overdraws_and_conserves_money() {
    const FUNDS: i64 = 10_000;
    const OPS_PER_TASK: usize = 4;
    let seed = seed();
    let node = Arc::new(in_process::spawn_node().await);
    let payer = customer(&node, 1, "Ana Souza").await;
    let mut receivers = Vec::new();
    for n in 2..=5 {
        receivers.push(customer(&node, n, &format!("Receiver {n}")).await);
    }
    node.deposit(&payer.token, FUNDS).await;

    let stop = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicUsize::new(0));
    let watched = vec![payer.token.clone(), receivers[0].token.clone()];
    let poller = spawn_poller(node.clone(), watched, FUNDS, stop.clone(), polls.clone());

    let barrier = Arc::new(Barrier::new(TASKS));
    let receivers = Arc::new(receivers);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (node, payer, receivers, barrier) = (node.clone(), payer.clone(), receivers.clone(), barrier.clone());
        let mut rng = Rng::new(seed ^ (t as u64).wrapping_mul(0xA076_1D64_78BD_642F));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut outcomes = Vec::new();
            for _ in 0..OPS_PER_TASK {
                let amount = 1 + rng.below(600u64) as i64;
                let outcome = match rng.below(4u64) {
                    0 => {
                        let body = json!({ "amount_cents": amount });
                        let (status, reply) =
                            node.call("POST", "/api/v1/withdrawals", Some(&payer.token), Some(body)).await;
                        withdrawal_outcome(status, &reply, amount)
                    }
                    kind => {
                        let leg_count = if kind == 3 { 2 } else { 1 };
                        let mut legs = Vec::new();
                        let mut plan = Vec::new();
                        for _ in 0..leg_count {
                            let r = rng.below(receivers.len() as u64) as usize;
                            let cents = 1 + rng.below(400u64) as i64;
                            let to = if rng.below(2u64) == 0 {
                                json!({ "key": receivers[r].key })
                            } else {
                                json!({ "bank_id": 1, "number": receivers[r].number })
                            };
                            legs.push(json!({ "to": to, "amount_cents": cents }));
                            plan.push((r, cents));
                        }
                        let key = uuid::Uuid::new_v4().to_string();
                        let (status, reply) = node
                            .call_with(
                                "POST",
                                "/api/v1/transfers",
                                Some(&payer.token),
                                Some(json!({ "legs": legs })),
                                Some(&key),
                            )
                            .await;
                        transfer_outcome(status, &reply, plan)
                    }
                };
                outcomes.push(outcome);
            }
            outcomes
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.expect("task"));
    }
    stop.store(true, Ordering::Relaxed);
    poller.await.expect("poller");
    assert!(polls.load(Ordering::Relaxed) > 0, "the poller never ran");

    let mut withdrawn = 0;
    let mut credited = vec![0i64; receivers.len()];
    let (mut withdrawals_ok, mut refused, mut failed_lines, mut completed_lines) = (0usize, 0usize, 0usize, 0usize);
    for outcome in &outcomes {
        match outcome {
            Outcome::Withdrawn(a) => {
                withdrawn += a;
                withdrawals_ok += 1;
            }
            Outcome::WithdrawalRefused => refused += 1,
            Outcome::Transferred(legs) => {
                for (r, a) in legs {
                    credited[*r] += a;
                }
                completed_lines += legs.len();
            }
            Outcome::TransferFailed(legs) => failed_lines += legs,
        }
    }
    let transferred: i64 = credited.iter().sum();
    println!(
        "withdrawals ok {withdrawals_ok}, refused {refused}; transfer lines completed {completed_lines}, failed {failed_lines}"
    );
    assert!(withdrawals_ok + completed_lines > 0, "something must succeed");
    assert!(refused + failed_lines > 0, "demand exceeded the money, so something must fail");

    let payer_balance = node.balance(&payer.token).await;
    assert_eq!(payer_balance, (FUNDS - withdrawn - transferred, 0, FUNDS - withdrawn - transferred));
    let mut total = payer_balance.0;
    for (r, receiver) in receivers.iter().enumerate() {
        let balance = node.balance(&receiver.token).await;
        assert_eq!(balance, (credited[r], 0, credited[r]), "receiver {r}");
        total += balance.0;
    }
    assert_eq!(total, FUNDS - withdrawn, "all posted balances = deposits - successful withdrawals");

    let statement = node.statement_all(&payer.token, None).await;
    assert_eq!(statement.len(), 1 + withdrawals_ok + completed_lines + failed_lines, "one line per operation");
    let debited: i64 = statement
        .iter()
        .filter(|e| e["direction"] == "debit" && e["status"] == "completed")
        .map(|e| e["amount_cents"].as_i64().expect("amount"))
        .sum();
    assert_eq!(debited, withdrawn + transferred, "completed debit lines = what left the account");
    assert_eq!(statement.iter().filter(|e| e["status"] == "failed").count(), failed_lines);

    // Every acknowledged operation survives a restart (DESIGN.md §8.4): same balances and lines.
    let Ok(node) = Arc::try_unwrap(node) else { panic!("a task still holds the node") };
    let node = in_process::spawn_node_in(node.stop().await).await;
    assert_eq!(node.balance(&payer.token).await, payer_balance, "payer after restart");
    for (r, receiver) in receivers.iter().enumerate() {
        assert_eq!(node.balance(&receiver.token).await.0, credited[r], "receiver {r} after restart");
    }
    assert_eq!(node.statement_all(&payer.token, None).await, statement, "payer's statement after restart");
}

/// 64 concurrent transfers of equal amounts, 48 of which exactly empty the account: exactly 48
/// complete, 16 fail with `insufficient_funds`, and the balance ends at exactly zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_drain_an_account_to_exactly_zero() {
    const AMOUNT: i64 = 125;
    const FUNDED: usize = 48;
    let node = Arc::new(in_process::spawn_node().await);
    let payer = customer(&node, 1, "Ana Souza").await;
    let mut receivers = Vec::new();
    for n in 2..=4 {
        receivers.push(customer(&node, n, &format!("Receiver {n}")).await);
    }
    let funds = AMOUNT * FUNDED as i64;
    node.deposit(&payer.token, funds).await;

    let stop = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicUsize::new(0));
    let poller = spawn_poller(node.clone(), vec![payer.token.clone()], funds, stop.clone(), polls.clone());
    let barrier = Arc::new(Barrier::new(TASKS));
    let receivers = Arc::new(receivers);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (node, payer, receivers, barrier) = (node.clone(), payer.clone(), receivers.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let r = t % receivers.len();
            let body = json!({ "legs": [{ "to": { "key": receivers[r].key }, "amount_cents": AMOUNT }] });
            barrier.wait().await;
            let (status, reply) = node.call("POST", "/api/v1/transfers", Some(&payer.token), Some(body)).await;
            transfer_outcome(status, &reply, vec![(r, AMOUNT)])
        }));
    }
    let mut credited = vec![0i64; receivers.len()];
    let (mut completed, mut failed) = (0, 0);
    for task in tasks {
        match task.await.expect("task") {
            Outcome::Transferred(legs) => {
                completed += 1;
                for (r, a) in legs {
                    credited[r] += a;
                }
            }
            Outcome::TransferFailed(_) => failed += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    poller.await.expect("poller");
    assert!(polls.load(Ordering::Relaxed) > 0, "the poller never ran");

    assert_eq!((completed, failed), (FUNDED, TASKS - FUNDED));
    assert_eq!(node.balance(&payer.token).await, (0, 0, 0));
    for (r, receiver) in receivers.iter().enumerate() {
        assert_eq!(node.balance(&receiver.token).await.0, credited[r], "receiver {r}");
    }
    assert_eq!(credited.iter().sum::<i64>(), funds);
    let statement = node.statement_all(&payer.token, None).await;
    assert_eq!(statement.len(), 1 + TASKS);
    assert_eq!(statement.iter().filter(|e| e["status"] == "failed").count(), TASKS - FUNDED);
}

/// 64 concurrent withdrawals of equal amounts, 40 of which exactly empty the account: exactly 40
/// succeed, 24 are refused with 422 `insufficient_funds`, and the balance ends at zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_withdrawals_drain_an_account_to_exactly_zero() {
    const AMOUNT: i64 = 100;
    const FUNDED: usize = 40;
    let node = Arc::new(in_process::spawn_node().await);
    let payer = customer(&node, 1, "Ana Souza").await;
    node.deposit(&payer.token, AMOUNT * FUNDED as i64).await;
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (node, payer, barrier) = (node.clone(), payer.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let body = json!({ "amount_cents": AMOUNT });
            let (status, reply) = node.call("POST", "/api/v1/withdrawals", Some(&payer.token), Some(body)).await;
            withdrawal_outcome(status, &reply, AMOUNT)
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for task in tasks {
        match task.await.expect("task") {
            Outcome::Withdrawn(_) => ok += 1,
            Outcome::WithdrawalRefused => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, refused), (FUNDED, TASKS - FUNDED));
    assert_eq!(node.balance(&payer.token).await, (0, 0, 0));
    assert_eq!(node.statement_all(&payer.token, None).await.len(), 1 + FUNDED, "refusals leave no line");
}

/// 64 concurrent copies of one transfer under one Idempotency-Key: all get the same answer and the
/// money moves once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_under_one_idempotency_key_move_money_once() {
    let node = Arc::new(in_process::spawn_node().await);
    let payer = customer(&node, 1, "Ana Souza").await;
    let receiver = customer(&node, 2, "Bia Lima").await;
    node.deposit(&payer.token, 10_000).await;
    let key = uuid::Uuid::new_v4().to_string();
    let body = json!({ "legs": [{ "to": { "key": receiver.key }, "amount_cents": 1_234 }] });
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (node, payer, barrier, key, body) =
            (node.clone(), payer.clone(), barrier.clone(), key.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            node.send("POST", "/api/v1/transfers", Some(&payer.token), Body::Json(body), &[("Idempotency-Key", &key)])
                .await
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("task"));
    }
    let first = &replies[0];
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["status"], "completed");
    for reply in &replies {
        assert_eq!(reply.status, 201, "{}", reply.body);
        assert_eq!(reply.body, first.body, "every retry answers the first response");
    }
    assert_eq!(node.balance(&payer.token).await, (10_000 - 1_234, 0, 10_000 - 1_234));
    assert_eq!(node.balance(&receiver.token).await, (1_234, 0, 1_234));
    assert_eq!(node.statement_all(&payer.token, None).await.len(), 2);
}

/// Two customers paying each other concurrently in both directions: the total never changes and
/// each final balance is exactly the sum of what completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_in_both_directions_conserve_the_total() {
    let seed = seed();
    let node = Arc::new(in_process::spawn_node().await);
    let ana = customer(&node, 1, "Ana Souza").await;
    let bia = customer(&node, 2, "Bia Lima").await;
    node.deposit(&ana.token, 3_000).await;
    node.deposit(&bia.token, 3_000).await;
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (node, barrier) = (node.clone(), barrier.clone());
        let (from, to) = if t % 2 == 0 { (ana.clone(), bia.clone()) } else { (bia.clone(), ana.clone()) };
        let mut rng = Rng::new(seed ^ (t as u64 + 1).wrapping_mul(0xE703_7ED1_A0B4_28DB));
        tasks.push(tokio::spawn(async move {
            let amount = 1 + rng.below(500u64) as i64;
            let body = json!({ "legs": [{ "to": { "key": to.key }, "amount_cents": amount }] });
            barrier.wait().await;
            let (status, reply) = node.call("POST", "/api/v1/transfers", Some(&from.token), Some(body)).await;
            let signed = if t % 2 == 0 { -amount } else { amount };
            (transfer_outcome(status, &reply, vec![(0, amount)]), signed)
        }));
    }
    let mut ana_delta = 0;
    for task in tasks {
        if let (Outcome::Transferred(_), signed) = task.await.expect("task") {
            ana_delta += signed;
        }
    }
    let (a, b) = (node.balance(&ana.token).await, node.balance(&bia.token).await);
    assert_eq!(a, (3_000 + ana_delta, 0, 3_000 + ana_delta));
    assert_eq!(b, (3_000 - ana_delta, 0, 3_000 - ana_delta));
}

/// Concurrent openings racing for one e-mail, and for one CPF: exactly one of each wins (201),
/// every other gets 409 `conflict`, and only the winner can sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_openings_for_one_email_or_cpf_open_exactly_one_account() {
    const RACERS: usize = 16;
    let node = Arc::new(in_process::spawn_node().await);
    let barrier = Arc::new(Barrier::new(2 * RACERS));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        // Same e-mail, different CPFs; and same CPF, different e-mails.
        let same_email = in_process::individual_body(100 + i as u64, "race@example.com");
        let same_cpf = in_process::individual_body(99, &format!("cpf-race{i}@example.com"));
        for body in [same_email, same_cpf] {
            let (node, barrier) = (node.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let reply = node.open(body.clone()).await;
                (body, reply)
            }));
        }
    }
    let (mut email_wins, mut cpf_wins) = (Vec::new(), Vec::new());
    for task in tasks {
        let (body, reply) = task.await.expect("task");
        let by_email = body["email"] == "race@example.com";
        if reply.status == 201 {
            if by_email { email_wins.push(body) } else { cpf_wins.push(body) }
        } else {
            reply.assert_problem(409, "conflict", &body.to_string());
        }
    }
    assert_eq!((email_wins.len(), cpf_wins.len()), (1, 1), "exactly one opening wins each race");
    let (status, session) = node
        .call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(json!({ "email": "race@example.com", "password": "a long test passphrase" })),
        )
        .await;
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["account"]["holders"][0]["document"], email_wins[0]["holders"][0]["document"]);
    for i in 0..RACERS {
        let email = format!("cpf-race{i}@example.com");
        let reply = node.try_sign_in(&email, "a long test passphrase").await;
        if email == cpf_wins[0]["email"] {
            assert_eq!(reply.status, 201, "{}", reply.body);
        } else {
            reply.assert_problem(401, "unauthorized", &email);
        }
    }
}
