//! The security headers every answer carries (issue 16: the probe found none): pages, API answers
//! with personal data and errors alike, through a real node.

use bank_node::app::CONTENT_SECURITY_POLICY;
use bank_testkit::in_process::{self, TestNode};

async fn get(node: &TestNode, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = node.http.get(format!("{}{path}", node.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request")
}

fn header<'r>(response: &'r reqwest::Response, name: &str) -> &'r str {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// Framing refused both ways, no sniffing, no referrer to other sites, and the restrictive policy.
fn assert_protected(response: &reqwest::Response, what: &str) {
    assert_eq!(header(response, "x-frame-options"), "DENY", "{what}");
    assert_eq!(header(response, "x-content-type-options"), "nosniff", "{what}");
    // `same-origin`, not `no-referrer`: the latter makes browsers post forms with `Origin: null`,
    // which the pages' cross-site guard refuses (found by the browser test, crates/cli/tests/e2e_web.rs).
    assert_eq!(header(response, "referrer-policy"), "same-origin", "{what}");
    let csp = header(response, "content-security-policy");
    assert_eq!(csp, CONTENT_SECURITY_POLICY, "{what}");
    for directive in ["frame-ancestors 'none'", "default-src 'none'", "form-action 'self'", "base-uri 'none'"] {
        assert!(csp.contains(directive), "{what}: {directive} missing from {csp}");
    }
}

#[tokio::test]
async fn pages_api_answers_and_errors_are_unframeable_unsniffable_and_never_cached() {
    let node = in_process::spawn_node().await;
    let (token, _) = node.customer(1, "Ana Souza").await;

    let page = get(&node, "/login", None).await;
    assert_eq!(page.status(), 200);
    assert_protected(&page, "sign-in page");
    assert_eq!(header(&page, "cache-control"), "no-store", "sign-in page");

    let me = get(&node, "/api/v1/me", Some(&token)).await;
    assert_eq!(me.status(), 200);
    assert_protected(&me, "GET /api/v1/me");
    assert_eq!(header(&me, "cache-control"), "no-store", "an answer with a CPF and a balance");

    let statement = get(&node, "/api/v1/statement", Some(&token)).await;
    assert_eq!(statement.status(), 200);
    assert_eq!(header(&statement, "cache-control"), "no-store", "a statement");

    let unauthorised = get(&node, "/api/v1/me", None).await;
    assert_eq!(unauthorised.status(), 401);
    assert_protected(&unauthorised, "401 problem");

    let missing = get(&node, "/api/v1/no-such-route", None).await;
    assert_eq!(missing.status(), 404);
    assert_protected(&missing, "404 problem");
    assert_eq!(header(&missing, "cache-control"), "no-store", "404 problem");
}

#[tokio::test]
async fn the_stylesheet_keeps_its_own_cache_policy_but_is_not_sniffed_either() {
    let node = in_process::spawn_node().await;
    let css = get(&node, "/static/web.css", None).await;
    assert_eq!(css.status(), 200);
    assert_protected(&css, "stylesheet");
    assert_eq!(header(&css, "cache-control"), "public, max-age=3600");
}

#[tokio::test]
async fn the_pix_qr_code_is_inline_svg_the_policy_lets_show() {
    // The policy allows inline styles and no images from elsewhere; the QR code must need
    // neither a script, an external image nor a style attribute of its own.
    let node = in_process::spawn_node().await;
    node.customer(2, "Bia Lima").await;
    // A browser's sign-in: the session cookie comes with the redirect, which is not followed.
    let browser =
        reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let signed_in = browser
        .post(format!("{}/login", node.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("email=c2%40example.com&password={}", bank_testkit::http::PASSWORD))
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed_in.status(), 303);
    assert_protected(&signed_in, "the redirect after signing in");
    let session = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.split(';').next().map(str::to_owned))
        .expect("a session cookie");
    let receive = browser
        .get(format!("{}/receive?amount=12,34", node.url))
        .header("cookie", session)
        .send()
        .await
        .expect("receive page");
    assert_eq!(receive.status(), 200);
    assert_protected(&receive, "receive page");
    let html = receive.text().await.expect("html");
    let svg = &html[html.find("<svg").expect("an inline QR code")..];
    let svg = &svg[..svg.find("</svg>").expect("end of the QR code")];
    assert!(!svg.contains("style=") && !svg.contains("<script") && !svg.contains("href"), "{svg}");
}
