//! Error details quote what the client sent, cut short (issue 16: a 60 KB key came back whole).

use bank_core::error::ECHO_CHARS_MAX;
use bank_node::problem::DETAIL_CHARS_MAX;
use bank_testkit::http::{PASSWORD, individual_account};
use bank_testkit::in_process;
use serde_json::json;

/// The answer is the usual invalid_input, its detail bounded and without the input's tail.
#[track_caller]
fn assert_cut(reply: &bank_testkit::http::Reply, sent: &str, what: &str) {
    reply.assert_problem(400, "invalid_input", what);
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(detail.chars().count() <= DETAIL_CHARS_MAX, "{what}: {} characters of detail", detail.chars().count());
    let longer: String = sent.chars().take(ECHO_CHARS_MAX + 1).collect();
    assert!(!detail.contains(&longer), "{what}: more than {ECHO_CHARS_MAX} characters echoed: {detail}");
}

#[tokio::test]
async fn a_huge_pix_key_email_or_amount_is_refused_without_being_echoed_whole() {
    let node = in_process::spawn_node().await;
    let (token, _) = node.customer(81, "Ana Souza").await;
    let huge_key = "k".repeat(60_000);

    let transfer = json!({ "legs": [{ "to": { "key": huge_key }, "amount_cents": 100 }] });
    let reply = node.send(
        "POST",
        "/api/v1/transfers",
        Some(&token),
        bank_testkit::http::Body::Json(transfer),
        &[("Idempotency-Key", "8d3f4f2e-8a55-4a0e-9a7e-2c6a1f0b9e11")],
    );
    let reply = reply.await;
    assert_cut(&reply, &huge_key, "a 60 KB Pix key in a transfer");
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(&format!("\"{}\"…", "k".repeat(ECHO_CHARS_MAX))), "the cut is marked: {detail}");

    // Accented characters are cut whole (by character, not by byte).
    let accented = "é".repeat(5_000);
    let lookup = node
        .send("GET", &format!("/api/v1/pix-keys/{accented}"), Some(&token), bank_testkit::http::Body::None, &[])
        .await;
    assert_cut(&lookup, &accented, "a long accented key looked up");

    let email = format!("{}@example.com", "a".repeat(50_000));
    let open = node.open(individual_account(82, "Bia Lima", &email, PASSWORD)).await;
    assert_cut(&open, &email, "a 50 KB e-mail");

    // A JSON parser's message quotes a whole mistyped string: bounded too.
    let mistyped = "9".repeat(1_000) + &"x".repeat(50_000);
    let deposit = node
        .send(
            "POST",
            "/api/v1/deposits",
            Some(&token),
            bank_testkit::http::Body::Json(json!({ "amount_cents": mistyped, "method": "cash" })),
            &[("Idempotency-Key", "0b6c1d8e-3f5a-4c2b-9e7d-1a2b3c4d5e6f")],
        )
        .await;
    assert_cut(&deposit, &mistyped, "a 51 KB string where a number belongs");
    assert_eq!(node.balance(&token).await.0, 0, "nothing was deposited");
}
