//! Holder names through the API (issue 16: look-alike names): a name with invisible or
//! text-direction characters is refused and opens nothing; a name is stored in one form (NFC).

use bank_testkit::http::{PASSWORD, individual_account};
use bank_testkit::in_process;

#[tokio::test]
async fn a_look_alike_name_is_invalid_input_and_opens_nothing() {
    let node = in_process::spawn_node().await;
    let email = "bob@example.com";
    for name in ["B\u{200b}ob Lima", "Eve \u{202e}evil", "\u{feff}Bob Lima", "Bob\u{2066} Lima"] {
        let refused = node.open(individual_account(71, name, email, PASSWORD)).await;
        refused.assert_problem(400, "invalid_input", name);
        let detail = refused.body["detail"].as_str().unwrap_or_default();
        assert!(!detail.contains(name), "the detail echoes the hidden characters: {detail}");
        node.try_sign_in(email, PASSWORD).await.assert_problem(401, "unauthorized", "no account was opened");
    }
    // The same CPF and e-mail are still free: the refusals left no trace.
    let opened = node.open(individual_account(71, "Bob Lima", email, PASSWORD)).await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    assert_eq!(opened.body["holders"][0]["name"], "Bob Lima");
}

#[tokio::test]
async fn a_name_typed_decomposed_is_stored_and_shown_composed() {
    let node = in_process::spawn_node().await;
    let opened =
        node.open(individual_account(72, "Jose\u{301}  Conceic\u{327}a\u{303}o", "jose@example.com", PASSWORD)).await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    assert_eq!(opened.body["holders"][0]["name"], "Jos\u{e9} Concei\u{e7}\u{e3}o");
    let token = node.sign_in("jose@example.com", PASSWORD).await;
    let (status, me) = node.call("GET", "/api/v1/me", Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(me["holders"][0]["name"], "Jos\u{e9} Concei\u{e7}\u{e3}o", "{me}");
}
