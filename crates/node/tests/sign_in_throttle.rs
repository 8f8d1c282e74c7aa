//! Password guessing is throttled (issue 16): five wrong passwords for an e-mail, then one
//! attempt per 30 s — refused with 429 `too_many_attempts` and `Retry-After`, even with the right
//! password — while other accounts sign in as usual; and the most common passwords are refused
//! when an account is opened.

use bank_testkit::http::PASSWORD;
use bank_testkit::in_process::{self, TestNode, individual_body};
use serde_json::{Value, json};

/// Failures allowed in a row per e-mail before throttling.
const FAILURES_ALLOWED: usize = 5;

/// `POST /api/v1/sessions`: status, `Retry-After` (seconds) if any, content type, body.
async fn sign_in(node: &TestNode, email: &str, password: &str) -> (u16, Option<u64>, String, Value) {
    let response = node
        .http
        .post(format!("{}/api/v1/sessions", node.url))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("POST /api/v1/sessions");
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let retry_after = header("retry-after").map(|v| v.parse().expect("Retry-After in seconds"));
    let content_type = header("content-type").unwrap_or_default();
    let status = response.status().as_u16();
    (status, retry_after, content_type, response.json().await.unwrap_or(Value::Null))
}

async fn fail_allowed_times(node: &TestNode, email: &str) {
    for i in 0..FAILURES_ALLOWED {
        let (status, retry_after, _, body) = sign_in(node, email, "not the password").await;
        assert_eq!((status, retry_after), (401, None), "wrong password {i}: {body}");
        assert_eq!(body["code"], "unauthorized", "{body}");
    }
}

fn assert_throttled(answer: (u16, Option<u64>, String, Value), what: &str) {
    let (status, retry_after, content_type, body) = answer;
    assert_eq!(status, 429, "{what}: {body}");
    assert_eq!(body["code"], "too_many_attempts", "{what}: {body}");
    assert_eq!(body["status"], 429, "{what}: {body}");
    assert!(body["title"].is_string() && body["detail"].is_string(), "{what}: {body}");
    assert!(content_type.starts_with("application/problem+json"), "{what}: {content_type}");
    let wait = retry_after.unwrap_or_else(|| panic!("{what}: no Retry-After"));
    assert!((1..=30).contains(&wait), "{what}: Retry-After {wait}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sixth_wrong_password_in_a_row_gets_429_with_retry_after() {
    let node = in_process::spawn_node().await;
    node.customer(1, "Ana Souza").await;
    fail_allowed_times(&node, "c1@example.com").await;
    assert_throttled(sign_in(&node, "c1@example.com", "not the password").await, "6th wrong password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_password_is_refused_too_while_throttled() {
    let node = in_process::spawn_node().await;
    node.customer(1, "Ana Souza").await;
    fail_allowed_times(&node, "c1@example.com").await;
    assert_throttled(sign_in(&node, "c1@example.com", PASSWORD).await, "right password while throttled");
    // The e-mail is normalised: another spelling of it is the same account's bucket.
    assert_throttled(sign_in(&node, "C1@Example.com", PASSWORD).await, "same e-mail, other case");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_account_is_unaffected_by_a_throttled_one() {
    let node = in_process::spawn_node().await;
    node.customer(1, "Ana Souza").await;
    node.customer(2, "Bia Lima").await;
    fail_allowed_times(&node, "c1@example.com").await;
    assert_throttled(sign_in(&node, "c1@example.com", "not the password").await, "ana throttled");
    let (status, _, _, body) = sign_in(&node, "c2@example.com", PASSWORD).await;
    assert_eq!(status, 201, "bia signs in: {body}");
    let (status, _, _, body) = sign_in(&node, "c2@example.com", "not the password").await;
    assert_eq!(status, 401, "bia's own wrong password is a plain 401: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_e_mail_is_throttled_the_same_way() {
    // Otherwise the throttle would tell which e-mails have an account.
    let node = in_process::spawn_node().await;
    fail_allowed_times(&node, "nobody@example.com").await;
    assert_throttled(sign_in(&node, "nobody@example.com", "not the password").await, "unknown e-mail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_common_password_is_refused_at_opening_and_changes_nothing() {
    let node = in_process::spawn_node().await;
    for common in ["12345678", "Password1", "senha123", "qwerty123"] {
        let mut body = individual_body(1, "c1@example.com");
        body["password"] = json!(common);
        node.open(body).await.assert_problem(400, "invalid_input", common);
        let (status, _, _, answer) = sign_in(&node, "c1@example.com", common).await;
        assert_eq!(status, 401, "no account was opened with {common}: {answer}");
    }
    // Nothing was kept: the same CPF and e-mail open the account with an uncommon password.
    let mut body = individual_body(1, "c1@example.com");
    body["password"] = json!("a far less common passphrase");
    let opened = node.open(body).await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    assert_eq!(opened.body["number"], "000001-9", "the first account number: {}", opened.body);
}

/// The sign-in page throttles as the API does, and says so in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_page_throttles_with_a_friendly_message() {
    let node = in_process::spawn_node().await;
    node.customer(1, "Ana Souza").await;
    let post = |password: &'static str| {
        node.http
            .post(format!("{}/login", node.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", node.url.clone())
            .header("sec-fetch-site", "same-origin")
            .header("accept-language", "en")
            .body(format!("email=c1%40example.com&password={password}"))
            .send()
    };
    for _ in 0..FAILURES_ALLOWED {
        assert_eq!(post("wrong").await.expect("POST /login").status().as_u16(), 401);
    }
    let page = post(PASSWORD).await.expect("POST /login");
    assert_eq!(page.status().as_u16(), 429);
    let retry_after = page.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert!(retry_after.as_deref().is_some_and(|s| s.parse::<u64>().is_ok()), "Retry-After: {retry_after:?}");
    let text = page.text().await.expect("page");
    assert!(text.contains("Too many failed sign-ins"), "{text}");
}

/// Guessing across many e-mails from one address is throttled by the address (the listener hands
/// the client's address to the handlers): at most the address's budget of failures, then 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_e_mails_guessed_from_one_address_are_throttled_by_the_address() {
    let node = in_process::spawn_node().await;
    let mut refused_at = None;
    for i in 0..80 {
        let (status, retry_after, _, body) = sign_in(&node, &format!("guess{i}@example.com"), "not the password").await;
        if status == 429 {
            assert_eq!(body["code"], "too_many_attempts", "{body}");
            assert!(retry_after.is_some_and(|s| (1..=30).contains(&s)), "attempt {i}: {retry_after:?}");
            refused_at = Some(i);
            break;
        }
        assert_eq!(status, 401, "attempt {i}: {body}");
    }
    // Each e-mail failed once (far below its own budget): only the address can have stopped it.
    let refused_at = refused_at.expect("80 failures from one address were never throttled");
    assert!(refused_at > FAILURES_ALLOWED, "throttled after only {refused_at} failures: {refused_at}");
}
