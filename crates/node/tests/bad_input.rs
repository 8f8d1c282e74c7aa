//! Every kind of bad input gets exactly the problem API.md prescribes, and changes nothing.
//!
//! Each test proves "nothing changed" by comparing the balances (`GET /api/v1/me`) and every
//! statement line of the customers involved before and after; for account opening, by showing that
//! the would-be e-mail cannot sign in and that a later valid opening for the same CPF works.

use bank_testkit::in_process;
use bank_testkit::in_process::{Body, Reply, Snapshot, TestNode, cnpj, cpf, individual_body, key_of, number_of};
use base64::Engine;
use serde_json::{Value, json};

const ANA_FUNDS: i64 = 10_000;
const BIA_FUNDS: i64 = 3_000;

/// A signed-in customer.
struct Customer {
    token: String,
    account: Value,
}

impl Customer {
    fn number(&self) -> String {
        number_of(&self.account)
    }

    fn key(&self) -> String {
        key_of(&self.account)
    }
}

/// A node with Ana (R$ 100,00) and Bia (R$ 30,00).
struct World {
    node: TestNode,
    ana: Customer,
    bia: Customer,
}

async fn world() -> World {
    let node = in_process::spawn_node().await;
    let (token, account) = node.customer(1, "Ana Souza").await;
    let ana = Customer { token, account };
    let (token, account) = node.customer(2, "Bia Lima").await;
    let bia = Customer { token, account };
    node.deposit(&ana.token, ANA_FUNDS).await;
    node.deposit(&bia.token, BIA_FUNDS).await;
    World { node, ana, bia }
}

impl World {
    async fn snapshots(&self) -> (Snapshot, Snapshot) {
        (self.node.snapshot(&self.ana.token).await, self.node.snapshot(&self.bia.token).await)
    }

    /// Ana posts `body` to `path` (optionally with an Idempotency-Key).
    async fn ana_posts(&self, path: &str, body: Body, idem: Option<&str>) -> Reply {
        let headers: Vec<(&str, &str)> = idem.map(|k| ("Idempotency-Key", k)).into_iter().collect();
        self.node.send("POST", path, Some(&self.ana.token), body, &headers).await
    }

    /// Ana posts; the answer must be the problem `status`/`code` and nothing may change.
    async fn ana_is_refused(&self, path: &str, body: Body, status: u16, code: &str, what: &str) -> Reply {
        let before = self.snapshots().await;
        let reply = self.ana_posts(path, body, None).await;
        reply.assert_problem(status, code, what);
        assert_eq!(self.snapshots().await, before, "{what}: a rejected request changed something");
        reply
    }

    fn pix_to_bia(&self, amount: Value) -> Value {
        json!({ "legs": [{ "to": { "key": self.bia.key() }, "amount_cents": amount }] })
    }
}

/// The money-moving endpoints with a body that would succeed for Ana.
fn valid_money_requests(w: &World) -> Vec<(&'static str, Value)> {
    vec![
        ("/api/v1/deposits", json!({ "amount_cents": 100, "method": "cash" })),
        ("/api/v1/withdrawals", json!({ "amount_cents": 100 })),
        ("/api/v1/transfers", w.pix_to_bia(json!(100))),
    ]
}

/// Asserts that no account was opened under `email` (sign-in refused).
async fn not_opened(node: &TestNode, email: &str, what: &str) {
    node.try_sign_in(email, "a long test passphrase").await.assert_problem(401, "unauthorized", what);
}

/// Sends each account body, expects 400 `invalid_input`, then shows that none of the would-be
/// e-mails signs in and that a valid account for CPF base `n` opens afterwards.
async fn account_bodies_are_refused(node: &TestNode, n: u64, cases: Vec<(&str, Body, Option<String>)>) {
    for (what, body, email) in &cases {
        let reply = node.send("POST", "/api/v1/accounts", None, body.clone(), &[]).await;
        reply.assert_problem(400, "invalid_input", what);
        if let Some(email) = email {
            // Sign in with exactly the credentials that were sent.
            let password = match body {
                Body::Json(b) => b["password"].as_str().unwrap_or("a long test passphrase").to_string(),
                _ => "a long test passphrase".to_string(),
            };
            node.try_sign_in(email, &password).await.assert_problem(401, "unauthorized", what);
        }
    }
    let reply = node.open(individual_body(n, &format!("valid{n}@example.com"))).await;
    assert_eq!(reply.status, 201, "a valid opening after the refusals: {}", reply.body);
    node.sign_in(&format!("valid{n}@example.com"), "a long test passphrase").await;
}

// ----- malformed bodies ---------------------------------------------------------------------

/// Truncated, garbled or empty JSON is 400 `invalid_input` on every body-taking endpoint.
#[tokio::test]
async fn malformed_json_is_invalid_input_everywhere_and_changes_nothing() {
    let w = world().await;
    let garbage = [
        "",
        "{",
        "not json",
        "{'amount_cents': 100}",
        "{\"amount_cents\": 100 \"method\": \"cash\"}",
        "{\"amount_cents\": 100, \"method\": \"cash\"} trailing",
        "{\"amount_cents\": 100, \"method\": \"cash\",}",
    ];
    for (path, valid) in valid_money_requests(&w) {
        let text = valid.to_string();
        let truncated = text[..text.len() - 1].to_string();
        w.ana_is_refused(path, Body::Raw(truncated), 400, "invalid_input", &format!("{path}: truncated")).await;
        for g in garbage {
            w.ana_is_refused(path, Body::Raw(g.into()), 400, "invalid_input", &format!("{path}: {g:?}")).await;
        }
    }
    for g in garbage {
        let reply = w.node.send("POST", "/api/v1/sessions", None, Body::Raw(g.into()), &[]).await;
        reply.assert_problem(400, "invalid_input", &format!("sessions: {g:?}"));
    }
    let text = json!({ "email": "c1@example.com", "password": "a long test passphrase" }).to_string();
    let reply = w.node.send("POST", "/api/v1/sessions", None, Body::Raw(text[..text.len() - 1].into()), &[]).await;
    reply.assert_problem(400, "invalid_input", "sessions: truncated");

    let would_be = individual_body(50, "malformed@example.com").to_string();
    let mut cases: Vec<(&str, Body, Option<String>)> = vec![(
        "accounts: truncated",
        Body::Raw(would_be[..would_be.len() - 1].into()),
        Some("malformed@example.com".into()),
    )];
    for g in garbage {
        cases.push(("accounts: garbage", Body::Raw(g.into()), None));
    }
    account_bodies_are_refused(&w.node, 50, cases).await;
}

/// A JSON body that is not an object (array, string, number, null, bool) is 400 `invalid_input`.
#[tokio::test]
async fn json_of_the_wrong_type_is_invalid_input_and_changes_nothing() {
    let w = world().await;
    for (path, valid) in valid_money_requests(&w) {
        let shapes = [json!([]), json!([valid.clone()]), json!("amount_cents"), json!(100), Value::Null, json!(true)];
        for shape in shapes {
            let what = format!("{path}: {shape}");
            w.ana_is_refused(path, Body::Json(shape), 400, "invalid_input", &what).await;
        }
    }
    // Fields of the wrong type.
    let bia_key = w.bia.key();
    let fields = [
        ("/api/v1/deposits", json!({ "amount_cents": 100, "method": 1 })),
        ("/api/v1/deposits", json!({ "amount_cents": [100], "method": "cash" })),
        ("/api/v1/transfers", json!({ "legs": { "to": { "key": bia_key }, "amount_cents": 100 } })),
        ("/api/v1/transfers", json!({ "legs": [{ "to": bia_key, "amount_cents": 100 }] })),
        ("/api/v1/transfers", json!({ "legs": [{ "to": { "key": 5 }, "amount_cents": 100 }] })),
        ("/api/v1/transfers", json!({ "legs": [{ "to": { "key": bia_key }, "amount_cents": 100 }], "description": 7 })),
        (
            "/api/v1/transfers",
            json!({ "legs": [{ "from": "000001-3", "to": { "key": bia_key }, "amount_cents": 100 }] }),
        ),
        (
            "/api/v1/transfers",
            json!({ "legs": [{ "to": { "bank_id": "1", "number": w.bia.number() }, "amount_cents": 100 }] }),
        ),
    ];
    for (path, body) in fields {
        let what = format!("{path}: {body}");
        w.ana_is_refused(path, Body::Json(body), 400, "invalid_input", &what).await;
    }
    for shape in [json!([]), json!("c1@example.com"), Value::Null, json!({ "email": "c1@example.com", "password": 1 })]
    {
        let reply = w.node.send("POST", "/api/v1/sessions", None, Body::Json(shape.clone()), &[]).await;
        reply.assert_problem(400, "invalid_input", &format!("sessions: {shape}"));
    }
    let mut holders_object = individual_body(51, "wt1@example.com");
    holders_object["holders"] = json!({ "name": "X", "document": cpf(51) });
    let mut document_number = individual_body(51, "wt3@example.com");
    document_number["holders"][0]["document"] = json!(cpf(51).parse::<u64>().expect("digits"));
    let mut password_number = individual_body(51, "wt2@example.com");
    password_number["password"] = json!(12_345_678);
    account_bodies_are_refused(
        &w.node,
        51,
        vec![
            (
                "accounts: array",
                Body::Json(json!([individual_body(51, "wt0@example.com")])),
                Some("wt0@example.com".into()),
            ),
            ("accounts: string", Body::Json(json!("individual")), None),
            ("accounts: holders object", Body::Json(holders_object), Some("wt1@example.com".into())),
            ("accounts: numeric password", Body::Json(password_number), Some("wt2@example.com".into())),
            ("accounts: numeric document", Body::Json(document_number), Some("wt3@example.com".into())),
        ],
    )
    .await;
}

/// Leaving out a required field is 400 `invalid_input`.
#[tokio::test]
async fn missing_fields_are_invalid_input_and_change_nothing() {
    let w = world().await;
    let bia_key = w.bia.key();
    let cases = [
        ("/api/v1/deposits", json!({})),
        ("/api/v1/deposits", json!({ "method": "cash" })),
        ("/api/v1/deposits", json!({ "amount_cents": 100 })),
        ("/api/v1/withdrawals", json!({})),
        ("/api/v1/transfers", json!({})),
        ("/api/v1/transfers", json!({ "legs": [{ "amount_cents": 100 }] })),
        ("/api/v1/transfers", json!({ "legs": [{ "to": { "key": bia_key } }] })),
        ("/api/v1/transfers", json!({ "legs": [{ "to": {}, "amount_cents": 100 }] })),
        ("/api/v1/transfers", json!({ "legs": [{ "to": { "bank_id": 1 }, "amount_cents": 100 }] })),
        ("/api/v1/transfers", json!({ "legs": [{ "to": { "number": w.bia.number() }, "amount_cents": 100 }] })),
        (
            "/api/v1/transfers",
            json!({ "legs": [{ "to": { "key": bia_key, "bank_id": 1, "number": w.bia.number() }, "amount_cents": 100 }] }),
        ),
        (
            "/api/v1/transfers",
            json!({ "legs": [{ "from": { "bank_id": 1 }, "to": { "key": bia_key }, "amount_cents": 100 }] }),
        ),
        (
            "/api/v1/transfers",
            json!({ "legs": [{ "from": { "number": w.ana.number() }, "to": { "key": bia_key }, "amount_cents": 100 }] }),
        ),
    ];
    for (path, body) in cases {
        let what = format!("{path}: {body}");
        w.ana_is_refused(path, Body::Json(body), 400, "invalid_input", &what).await;
    }
    for body in [json!({}), json!({ "email": "c1@example.com" }), json!({ "password": "a long test passphrase" })] {
        let reply = w.node.send("POST", "/api/v1/sessions", None, Body::Json(body.clone()), &[]).await;
        reply.assert_problem(400, "invalid_input", &format!("sessions: {body}"));
    }
    let mut cases = Vec::new();
    for (i, field) in ["kind", "holders", "email", "phone", "password"].into_iter().enumerate() {
        let email = format!("missing{i}@example.com");
        let mut body = individual_body(52, &email);
        body.as_object_mut().expect("object").remove(field);
        cases.push(("accounts: missing top-level field", Body::Json(body), Some(email)));
    }
    for (i, field) in ["name", "document"].into_iter().enumerate() {
        let email = format!("missingh{i}@example.com");
        let mut body = individual_body(52, &email);
        body["holders"][0].as_object_mut().expect("object").remove(field);
        cases.push(("accounts: missing holder field", Body::Json(body), Some(email)));
    }
    account_bodies_are_refused(&w.node, 52, cases).await;
}

/// Unknown (and duplicated) fields are refused, at the top level and nested.
#[tokio::test]
async fn unknown_fields_are_invalid_input_and_change_nothing() {
    let w = world().await;
    let bia_key = w.bia.key();
    let cases = [
        ("/api/v1/deposits", json!({ "amount_cents": 100, "method": "cash", "account": w.bia.number() })),
        ("/api/v1/withdrawals", json!({ "amount_cents": 100, "method": "cash" })),
        (
            "/api/v1/transfers",
            json!({ "legs": [{ "to": { "key": bia_key }, "amount_cents": 100 }], "priority": "high" }),
        ),
        ("/api/v1/transfers", json!({ "legs": [{ "to": { "key": bia_key }, "amount_cents": 100, "fee_cents": 0 }] })),
        ("/api/v1/transfers", json!({ "legs": [{ "to": { "key": bia_key, "name": "Bia" }, "amount_cents": 100 }] })),
        (
            "/api/v1/transfers",
            json!({ "legs": [{ "from": { "bank_id": 1, "number": w.ana.number(), "branch": "0001" },
                               "to": { "key": bia_key }, "amount_cents": 100 }] }),
        ),
    ];
    for (path, body) in cases {
        let what = format!("{path}: {body}");
        w.ana_is_refused(path, Body::Json(body), 400, "invalid_input", &what).await;
    }
    let duplicated = r#"{"amount_cents": 1, "amount_cents": 5000, "method": "cash"}"#;
    w.ana_is_refused("/api/v1/deposits", Body::Raw(duplicated.into()), 400, "invalid_input", "duplicate field").await;

    let reply = w
        .node
        .send(
            "POST",
            "/api/v1/sessions",
            None,
            Body::Json(json!({ "email": "c1@example.com", "password": "a long test passphrase", "remember": true })),
            &[],
        )
        .await;
    reply.assert_problem(400, "invalid_input", "sessions: unknown field");

    let mut top = individual_body(53, "unknown0@example.com");
    top["admin"] = json!(true);
    let mut nested = individual_body(53, "unknown1@example.com");
    nested["holders"][0]["birth_date"] = json!("1990-01-01");
    account_bodies_are_refused(
        &w.node,
        53,
        vec![
            ("accounts: unknown top-level field", Body::Json(top), Some("unknown0@example.com".into())),
            ("accounts: unknown holder field", Body::Json(nested), Some("unknown1@example.com".into())),
        ],
    )
    .await;
}

// ----- account opening ----------------------------------------------------------------------

/// Invalid CPFs and CNPJs (check digits, all-same digits, letters, length) are refused.
#[tokio::test]
async fn invalid_documents_are_invalid_input_and_open_nothing() {
    let node = in_process::spawn_node().await;
    let good_cpf = cpf(60);
    let bad_cpf = format!("{}{}", &good_cpf[..10], (good_cpf.as_bytes()[10] - b'0' + 1) % 10);
    let good_cnpj = cnpj(60);
    let bad_cnpj = format!("{}{}", &good_cnpj[..13], (good_cnpj.as_bytes()[13] - b'0' + 1) % 10);
    let cases = [
        ("individual", bad_cpf.as_str(), "CPF with a wrong check digit"),
        ("individual", "111.111.111-11", "all-same-digit CPF (formatted)"),
        ("individual", "00000000000", "all-zero CPF"),
        ("individual", "99999999999", "all-nine CPF"),
        ("individual", "1234567890a", "CPF with a letter"),
        ("individual", "123456789", "CPF too short"),
        ("individual", "", "empty document"),
        ("company", bad_cnpj.as_str(), "CNPJ with a wrong check digit"),
        ("company", "11.111.111/1111-11", "all-same-digit CNPJ"),
        ("company", "00000000000000", "all-zero CNPJ"),
        ("company", "1234567800019", "CNPJ too short"),
    ];
    let mut bodies = Vec::new();
    for (i, (kind, document, what)) in cases.into_iter().enumerate() {
        let email = format!("doc{i}@example.com");
        let mut body = individual_body(60, &email);
        body["kind"] = json!(kind);
        body["holders"][0]["document"] = json!(document);
        bodies.push((what, Body::Json(body), Some(email)));
    }
    account_bodies_are_refused(&node, 60, bodies).await;
    // The valid CNPJ of the same root opens a company account: only the bad spellings were refused.
    let mut company = individual_body(60, "company60@example.com");
    company["kind"] = json!("company");
    company["holders"][0]["document"] = json!(good_cnpj);
    assert_eq!(node.open(company).await.status, 201);
}

/// Holders that do not fit the account kind are refused.
#[tokio::test]
async fn holders_that_do_not_fit_the_kind_are_invalid_input_and_open_nothing() {
    let node = in_process::spawn_node().await;
    let holder = |n: u64| json!({ "name": format!("Holder {n}"), "document": cpf(n) });
    let formatted = bank_core::document::Cpf::from_base(61).formatted();
    let cases = [
        ("individual with a CNPJ", "individual", json!([{ "name": "Acme", "document": cnpj(61) }])),
        ("individual with two holders", "individual", json!([holder(61), holder(62)])),
        ("individual with no holder", "individual", json!([])),
        ("company with a CPF", "company", json!([holder(61)])),
        ("joint with one holder", "joint", json!([holder(61)])),
        ("joint with a repeated CPF", "joint", json!([holder(61), holder(61)])),
        (
            "joint with a repeated CPF spelled twice",
            "joint",
            json!([holder(61), { "name": "Again", "document": formatted }]),
        ),
        ("joint with a CNPJ holder", "joint", json!([holder(61), { "name": "Acme", "document": cnpj(61) }])),
        ("unknown kind", "savings", json!([holder(61)])),
        ("empty holder name", "individual", json!([{ "name": "   ", "document": cpf(61) }])),
        ("holder name with a control character", "individual", json!([{ "name": "Ana\u{7}", "document": cpf(61) }])),
    ];
    let mut bodies = Vec::new();
    for (i, (what, kind, holders)) in cases.into_iter().enumerate() {
        let email = format!("kind{i}@example.com");
        let mut body = individual_body(61, &email);
        body["kind"] = json!(kind);
        body["holders"] = holders;
        bodies.push((what, Body::Json(body), Some(email)));
    }
    account_bodies_are_refused(&node, 61, bodies).await;
}

/// Bad e-mails, phones and passwords are refused.
#[tokio::test]
async fn bad_email_phone_or_password_is_invalid_input_and_opens_nothing() {
    let node = in_process::spawn_node().await;
    let long_email = format!("{}@example.com", "a".repeat(250));
    let mut bodies = Vec::new();
    for email in ["", "no-at-sign.example.com", "a@b", "@example.com", "a b@example.com", "ana@", long_email.as_str()] {
        let mut body = individual_body(62, "placeholder@example.com");
        body["email"] = json!(email);
        bodies.push(("bad e-mail", Body::Json(body), Some(email.to_string())));
    }
    for (i, phone) in ["", "123", "abc", "+1 202 555 0100", "(00) 99999-1234", "+55 75 8999-1234", "+55 75 99999-12345"]
        .into_iter()
        .enumerate()
    {
        let email = format!("phone{i}@example.com");
        let mut body = individual_body(62, &email);
        body["phone"] = json!(phone);
        bodies.push(("bad phone", Body::Json(body), Some(email)));
    }
    let too_long = "p".repeat(129);
    for (i, password) in ["", "short", "1234567", too_long.as_str()].into_iter().enumerate() {
        let email = format!("password{i}@example.com");
        let mut body = individual_body(62, &email);
        body["password"] = json!(password);
        bodies.push(("bad password", Body::Json(body), Some(email)));
    }
    account_bodies_are_refused(&node, 62, bodies).await;
}

/// An e-mail already used at this bank (in any case) is 409 `conflict`, and opens nothing.
#[tokio::test]
async fn duplicate_email_is_conflict_and_opens_nothing() {
    let node = in_process::spawn_node().await;
    let (_, ana) = node.customer(1, "Ana Souza").await;
    for (i, email) in ["c1@example.com", "C1@Example.COM"].into_iter().enumerate() {
        let mut body = individual_body(70 + i as u64, email);
        body["password"] = json!("another-password");
        node.open(body).await.assert_problem(409, "conflict", email);
        // The newcomer's password does not open the address: the first account still owns it.
        node.try_sign_in("c1@example.com", "another-password").await.assert_problem(401, "unauthorized", email);
    }
    let (status, session) = node
        .call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(json!({ "email": "c1@example.com", "password": "a long test passphrase" })),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(session["account"]["number"], ana["number"]);
    // The refused CPFs are still free.
    assert_eq!(node.open(individual_body(70, "c70@example.com")).await.status, 201);
    assert_eq!(node.open(individual_body(71, "c71@example.com")).await.status, 201);
}

/// A second individual account for the same CPF at this bank is 409 `conflict`, however spelled.
#[tokio::test]
async fn second_individual_account_for_a_cpf_is_conflict_and_opens_nothing() {
    let node = in_process::spawn_node().await;
    node.customer(1, "Ana Souza").await;
    let formatted = bank_core::document::Cpf::from_base(1).formatted();
    for (i, document) in [cpf(1), formatted].into_iter().enumerate() {
        let email = format!("again{i}@example.com");
        let mut body = individual_body(1, &email);
        body["holders"][0]["document"] = json!(document);
        node.open(body).await.assert_problem(409, "conflict", &document);
        not_opened(&node, &email, &document).await;
    }
    // The same CNPJ twice as company accounts is refused the same way.
    let mut company = individual_body(0, "acme@example.com");
    company["kind"] = json!("company");
    company["holders"][0]["document"] = json!(cnpj(5));
    assert_eq!(node.open(company.clone()).await.status, 201);
    company["email"] = json!("acme2@example.com");
    node.open(company).await.assert_problem(409, "conflict", "second company account for a CNPJ");
    not_opened(&node, "acme2@example.com", "second company account").await;
}

// ----- amounts ------------------------------------------------------------------------------

/// Amounts that are not an integer in 1..=100_000_000.
fn bad_amounts() -> Vec<(&'static str, Value)> {
    vec![
        ("zero", json!(0)),
        ("negative", json!(-100)),
        ("over the limit", json!(100_000_001)),
        ("fractional", json!(12.5)),
        ("whole float", json!(10.0)),
        ("huge", json!(1e30)),
        ("string", json!("10")),
        ("null", Value::Null),
        ("bool", json!(true)),
    ]
}

/// Bad deposit amounts are 400 `invalid_input` and deposit nothing.
#[tokio::test]
async fn bad_deposit_amounts_are_invalid_input_and_change_nothing() {
    let w = world().await;
    for (what, amount) in bad_amounts() {
        let body = json!({ "amount_cents": amount, "method": "cash" });
        w.ana_is_refused("/api/v1/deposits", Body::Json(body), 400, "invalid_input", what).await;
    }
    let body = json!({ "amount_cents": 100, "method": "cheque" });
    w.ana_is_refused("/api/v1/deposits", Body::Json(body), 400, "invalid_input", "unknown method").await;
}

/// Bad withdrawal amounts are 400 `invalid_input` (never 422) and withdraw nothing.
#[tokio::test]
async fn bad_withdrawal_amounts_are_invalid_input_and_change_nothing() {
    let w = world().await;
    for (what, amount) in bad_amounts() {
        let body = json!({ "amount_cents": amount });
        w.ana_is_refused("/api/v1/withdrawals", Body::Json(body), 400, "invalid_input", what).await;
    }
}

/// Bad leg amounts are 400 `invalid_input`, even beside a good leg, and move nothing.
#[tokio::test]
async fn bad_transfer_leg_amounts_are_invalid_input_and_change_nothing() {
    let w = world().await;
    for (what, amount) in bad_amounts() {
        w.ana_is_refused("/api/v1/transfers", Body::Json(w.pix_to_bia(amount.clone())), 400, "invalid_input", what)
            .await;
        let two = json!({ "legs": [
            { "to": { "key": w.bia.key() }, "amount_cents": 100 },
            { "to": { "bank_id": 1, "number": w.bia.number() }, "amount_cents": amount },
        ] });
        w.ana_is_refused("/api/v1/transfers", Body::Json(two), 400, "invalid_input", &format!("second leg {what}"))
            .await;
    }
}

/// The limit itself (R$ 1.000.000,00) is accepted: the refusals above are about the amount.
#[tokio::test]
async fn amount_at_the_limit_is_accepted() {
    let w = world().await;
    let reply = w
        .ana_posts("/api/v1/deposits", Body::Json(json!({ "amount_cents": 100_000_000, "method": "boleto" })), None)
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(w.node.balance(&w.ana.token).await.0, ANA_FUNDS + 100_000_000);
    let reply = w.ana_posts("/api/v1/transfers", Body::Json(w.pix_to_bia(json!(100_000_000))), None).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["status"], "completed");
    assert_eq!(w.node.balance(&w.bia.token).await.0, BIA_FUNDS + 100_000_000);
}

/// A transfer has 1 to 16 legs: 0 and 17 are 400 `invalid_input`; 16 executes.
#[tokio::test]
async fn transfer_leg_count_outside_1_to_16_is_invalid_input() {
    let w = world().await;
    let leg = json!({ "to": { "key": w.bia.key() }, "amount_cents": 10 });
    w.ana_is_refused("/api/v1/transfers", Body::Json(json!({ "legs": [] })), 400, "invalid_input", "0 legs").await;
    let seventeen = json!({ "legs": vec![leg.clone(); 17] });
    w.ana_is_refused("/api/v1/transfers", Body::Json(seventeen), 400, "invalid_input", "17 legs").await;
    let reply = w.ana_posts("/api/v1/transfers", Body::Json(json!({ "legs": vec![leg; 16] })), None).await;
    assert_eq!(reply.status, 201, "16 legs: {}", reply.body);
    assert_eq!(reply.body["status"], "completed");
    assert_eq!(w.node.balance(&w.ana.token).await, (ANA_FUNDS - 160, 0, ANA_FUNDS - 160));
    assert_eq!(w.node.balance(&w.bia.token).await, (BIA_FUNDS + 160, 0, BIA_FUNDS + 160));
}

// ----- keys and destinations ----------------------------------------------------------------

/// A transfer to a key no bank has is 404 `unknown_key` and moves nothing.
#[tokio::test]
async fn transfer_to_unknown_pix_key_is_unknown_key_and_changes_nothing() {
    let w = world().await;
    let random = uuid::Uuid::new_v4().to_string();
    for key in [cpf(999), "nobody@example.com".to_string(), "+5575988887777".to_string(), random, cnpj(999)] {
        let body = json!({ "legs": [{ "to": { "key": key }, "amount_cents": 100 }] });
        w.ana_is_refused("/api/v1/transfers", Body::Json(body), 404, "unknown_key", &key).await;
    }
}

/// Looking up a key no bank has is 404 `unknown_key`; a malformed key is 400.
#[tokio::test]
async fn key_lookup_unknown_is_404_and_malformed_is_400() {
    let w = world().await;
    let random = uuid::Uuid::new_v4().to_string();
    for key in [cpf(999), "nobody@example.com".to_string(), "+5575988887777".to_string(), random] {
        let reply = w.node.send("GET", &format!("/api/v1/pix-keys/{key}"), Some(&w.ana.token), Body::None, &[]).await;
        reply.assert_problem(404, "unknown_key", &key);
    }
    let long = "9".repeat(300);
    for key in ["not-a-key", "123.456", "ana@", "12345", long.as_str()] {
        let reply = w.node.send("GET", &format!("/api/v1/pix-keys/{key}"), Some(&w.ana.token), Body::None, &[]).await;
        reply.assert_problem(400, "invalid_input", key);
    }
}

/// A malformed key or account number as a transfer destination is 400 `invalid_input`.
#[tokio::test]
async fn malformed_destination_is_invalid_input_and_changes_nothing() {
    let w = world().await;
    let mut bad_number = w.bia.number();
    let last = bad_number.pop().expect("check digit");
    bad_number.push(if last == '9' { '0' } else { (last as u8 + 1) as char });
    let cases = [
        json!({ "key": "not-a-key" }),
        json!({ "key": "123.456.789" }),
        json!({ "key": "" }),
        json!({ "bank_id": 1, "number": bad_number }),
        json!({ "bank_id": 1, "number": "12" }),
    ];
    for to in cases {
        let body = json!({ "legs": [{ "to": to.clone(), "amount_cents": 100 }] });
        w.ana_is_refused("/api/v1/transfers", Body::Json(body), 400, "invalid_input", &to.to_string()).await;
    }
}

/// An account number with a valid check digit that no account has is 404 `not_found`.
#[tokio::test]
async fn unknown_destination_account_is_not_found_and_changes_nothing() {
    let w = world().await;
    let nobody = bank_core::ids::AccountNumber::from_seq(999).to_string();
    let body = json!({ "legs": [{ "to": { "bank_id": 1, "number": nobody }, "amount_cents": 100 }] });
    w.ana_is_refused("/api/v1/transfers", Body::Json(body), 404, "not_found", "unknown account").await;
}

/// Sending to the source account itself is 400 `invalid_input`, by key or by number.
#[tokio::test]
async fn sending_to_own_source_account_is_invalid_input_and_changes_nothing() {
    let w = world().await;
    let by_key = json!({ "legs": [{ "to": { "key": w.ana.key() }, "amount_cents": 100 }] });
    w.ana_is_refused("/api/v1/transfers", Body::Json(by_key), 400, "invalid_input", "own key").await;
    let by_number = json!({ "legs": [{ "to": { "bank_id": 1, "number": w.ana.number() }, "amount_cents": 100 }] });
    w.ana_is_refused("/api/v1/transfers", Body::Json(by_number), 400, "invalid_input", "own number").await;
    let explicit = json!({ "legs": [{
        "from": { "bank_id": 1, "number": w.ana.number() },
        "to": { "key": w.ana.key() }, "amount_cents": 100,
    }] });
    w.ana_is_refused("/api/v1/transfers", Body::Json(explicit), 400, "invalid_input", "explicit from").await;
    let mixed = json!({ "legs": [
        { "to": { "key": w.bia.key() }, "amount_cents": 100 },
        { "to": { "key": w.ana.key() }, "amount_cents": 100 },
    ] });
    w.ana_is_refused("/api/v1/transfers", Body::Json(mixed), 400, "invalid_input", "second leg to self").await;
}

// ----- money that is not there ----------------------------------------------------------------

/// A withdrawal beyond the available money is 422 `insufficient_funds`; exactly all of it works.
#[tokio::test]
async fn withdrawal_beyond_available_is_insufficient_funds_and_changes_nothing() {
    let w = world().await;
    for amount in [ANA_FUNDS + 1, ANA_FUNDS * 2, 100_000_000] {
        let body = json!({ "amount_cents": amount });
        w.ana_is_refused("/api/v1/withdrawals", Body::Json(body), 422, "insufficient_funds", &amount.to_string()).await;
    }
    let reply = w.ana_posts("/api/v1/withdrawals", Body::Json(json!({ "amount_cents": ANA_FUNDS })), None).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(w.node.balance(&w.ana.token).await, (0, 0, 0));
    w.ana_is_refused(
        "/api/v1/withdrawals",
        Body::Json(json!({ "amount_cents": 1 })),
        422,
        "insufficient_funds",
        "empty",
    )
    .await;
}

/// A transfer beyond the available money executes and fails: 201, `failed`/`insufficient_funds`,
/// no money moves, and the payer's statement shows the failed line.
#[tokio::test]
async fn transfer_beyond_available_fails_with_a_record_and_moves_nothing() {
    let w = world().await;
    let (ana_before, bia_before) = w.snapshots().await;
    let cases = [
        ("one leg", w.pix_to_bia(json!(ANA_FUNDS + 1))),
        (
            "legs that fit alone but not together",
            json!({ "legs": [
                { "to": { "key": w.bia.key() }, "amount_cents": 6_000 },
                { "to": { "bank_id": 1, "number": w.bia.number() }, "amount_cents": 5_000 },
            ] }),
        ),
    ];
    let mut failed_lines = 0;
    for (what, body) in cases {
        let legs = body["legs"].as_array().expect("legs").len();
        let reply = w.ana_posts("/api/v1/transfers", Body::Json(body), None).await;
        assert_eq!(reply.status, 201, "{what}: {}", reply.body);
        let t = &reply.body;
        assert_eq!(t["status"], "failed", "{what}: {t}");
        assert_eq!(t["failure"]["code"], "insufficient_funds", "{what}: {t}");
        assert!(t["legs"].as_array().expect("legs").iter().all(|l| l["status"] == "failed"), "{what}: {t}");
        failed_lines += legs;

        let after = w.node.snapshot(&w.ana.token).await;
        assert_eq!(after.balance, ana_before.balance, "{what}: the payer's balance moved");
        assert_eq!(after.entries.len(), ana_before.entries.len() + failed_lines, "{what}: statement lines");
        let line = &after.entries[0];
        assert_eq!(line["kind"], "transfer_out", "{what}: {line}");
        assert_eq!(line["status"], "failed", "{what}: {line}");
        assert_eq!(line["transfer_id"], t["id"], "{what}: {line}");
        assert_eq!(w.node.snapshot(&w.bia.token).await, bia_before, "{what}: the payee saw something");

        let id = t["id"].as_str().expect("id");
        let (status, again) = w.node.call("GET", &format!("/api/v1/transfers/{id}"), Some(&w.ana.token), None).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["status"], "failed");
    }
}

// ----- authentication -----------------------------------------------------------------------

/// A wrong password and an unknown e-mail get the same 401, with the same detail.
#[tokio::test]
async fn wrong_password_and_unknown_email_are_the_same_unauthorized() {
    let node = in_process::spawn_node().await;
    node.customer(1, "Ana Souza").await;
    let wrong_password = node.try_sign_in("c1@example.com", "password124").await;
    wrong_password.assert_problem(401, "unauthorized", "wrong password");
    let unknown_email = node.try_sign_in("nobody@example.com", "a long test passphrase").await;
    unknown_email.assert_problem(401, "unauthorized", "unknown e-mail");
    assert_eq!(wrong_password.body["detail"], unknown_email.body["detail"]);
    assert_eq!(wrong_password.body, unknown_email.body, "the two refusals must be indistinguishable");
}

/// Without a valid token, every signed-in endpoint is 401 and nothing moves.
#[tokio::test]
async fn missing_garbage_or_forged_token_is_unauthorized_and_changes_nothing() {
    let w = world().await;
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).expect("random");
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
    let tampered = format!("{}x", w.ana.token);
    let headers: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("garbage", Some("Bearer garbage".into())),
        ("forged", Some(format!("Bearer {forged}"))),
        ("tampered", Some(format!("Bearer {tampered}"))),
        ("empty bearer", Some("Bearer ".into())),
        ("basic scheme", Some("Basic YW5hOnBhc3N3b3JkMTIz".into())),
        ("token without scheme", Some(w.ana.token.clone())),
        ("oversized", Some(format!("Bearer {}", "A".repeat(4000)))),
    ];
    let bia_key = w.bia.key();
    let requests: Vec<(&str, String, Body)> = vec![
        ("GET", "/api/v1/me".into(), Body::None),
        ("GET", "/api/v1/statement".into(), Body::None),
        ("GET", format!("/api/v1/pix-keys/{bia_key}"), Body::None),
        ("GET", "/api/v1/consortium/accounts".into(), Body::None),
        ("GET", format!("/api/v1/transfers/{}", uuid::Uuid::new_v4()), Body::None),
        ("POST", "/api/v1/deposits".into(), Body::Json(json!({ "amount_cents": 100, "method": "cash" }))),
        ("POST", "/api/v1/withdrawals".into(), Body::Json(json!({ "amount_cents": 100 }))),
        ("POST", "/api/v1/transfers".into(), Body::Json(w.pix_to_bia(json!(100)))),
        ("POST", "/api/v1/pix-keys".into(), Body::Json(json!({ "type": "random" }))),
        ("DELETE", "/api/v1/sessions/current".into(), Body::None),
    ];
    let before = w.snapshots().await;
    for (what, header) in &headers {
        for (method, path, body) in &requests {
            let h: Vec<(&str, &str)> = header.iter().map(|v| ("Authorization", v.as_str())).collect();
            let reply = w.node.send(method, path, None, body.clone(), &h).await;
            reply.assert_problem(401, "unauthorized", &format!("{what}: {method} {path}"));
        }
    }
    assert_eq!(w.snapshots().await, before);
    let (_, me) = w.node.call("GET", "/api/v1/me", Some(&w.ana.token), None).await;
    assert_eq!(me["pix_keys"].as_array().expect("keys").len(), 1, "no key was registered");
}

/// A signed-out token is refused; another session of the same account still works.
#[tokio::test]
async fn token_after_sign_out_is_unauthorized() {
    let w = world().await;
    let other = w.node.sign_in("c1@example.com", "a long test passphrase").await;
    let reply = w.node.send("DELETE", "/api/v1/sessions/current", Some(&w.ana.token), Body::None, &[]).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    let before = w.node.snapshot(&other).await;
    w.node.send("GET", "/api/v1/me", Some(&w.ana.token), Body::None, &[]).await.assert_problem(
        401,
        "unauthorized",
        "me",
    );
    let deposit = Body::Json(json!({ "amount_cents": 100, "method": "cash" }));
    w.node.send("POST", "/api/v1/deposits", Some(&w.ana.token), deposit, &[]).await.assert_problem(
        401,
        "unauthorized",
        "deposit",
    );
    w.node.send("DELETE", "/api/v1/sessions/current", Some(&w.ana.token), Body::None, &[]).await.assert_problem(
        401,
        "unauthorized",
        "second sign-out",
    );
    assert_eq!(w.node.snapshot(&other).await, before);
}

/// A session past its lifetime is refused.
#[tokio::test]
async fn expired_token_is_unauthorized() {
    let node = in_process::spawn_node_with(|c| c.limits.session_ttl_s = 1).await;
    let (token, _) = node.customer(1, "Ana Souza").await;
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    node.send("GET", "/api/v1/me", Some(&token), Body::None, &[]).await.assert_problem(401, "unauthorized", "me");
    let deposit = Body::Json(json!({ "amount_cents": 100, "method": "cash" }));
    node.send("POST", "/api/v1/deposits", Some(&token), deposit, &[]).await.assert_problem(
        401,
        "unauthorized",
        "deposit",
    );
    let fresh = node.sign_in("c1@example.com", "a long test passphrase").await;
    let after = node.snapshot(&fresh).await;
    assert_eq!((after.balance, after.entries.len()), ((0, 0, 0), 0), "the expired session moved nothing");
}

// ----- who may see and spend what -------------------------------------------------------------

/// Spending another customer's account is 403 `forbidden` and moves nothing.
#[tokio::test]
async fn spending_another_customers_account_is_forbidden() {
    let w = world().await;
    let (_, carla) = w.node.customer(3, "Carla Dias").await;
    let cases = [
        json!({ "legs": [{ "from": { "bank_id": 1, "number": w.bia.number() }, "to": { "key": key_of(&carla) }, "amount_cents": 100 }] }),
        json!({ "legs": [{ "from": { "bank_id": 1, "number": w.bia.number() }, "to": { "key": w.ana.key() }, "amount_cents": 100 }] }),
        json!({ "legs": [
            { "to": { "key": key_of(&carla) }, "amount_cents": 100 },
            { "from": { "bank_id": 1, "number": w.bia.number() }, "to": { "key": key_of(&carla) }, "amount_cents": 100 },
        ] }),
    ];
    for body in cases {
        w.ana_is_refused("/api/v1/transfers", Body::Json(body.clone()), 403, "forbidden", &body.to_string()).await;
    }
}

/// Another customer's transfer is 404 `not_found`, as is an unknown id; a non-UUID id is 400.
#[tokio::test]
async fn another_customers_transfer_is_not_found() {
    let w = world().await;
    let (carla, _) = w.node.customer(3, "Carla Dias").await;
    let reply = w.ana_posts("/api/v1/transfers", Body::Json(w.pix_to_bia(json!(100))), None).await;
    assert_eq!(reply.status, 201);
    let id = reply.body["id"].as_str().expect("id");
    for token in [&w.ana.token, &w.bia.token] {
        let (status, _) = w.node.call("GET", &format!("/api/v1/transfers/{id}"), Some(token), None).await;
        assert_eq!(status, 200, "a party of the transfer sees it");
    }
    let cases = [
        (format!("/api/v1/transfers/{id}"), 404, "not_found", "another's transfer"),
        (format!("/api/v1/transfers/{}", uuid::Uuid::new_v4()), 404, "not_found", "unknown id"),
        ("/api/v1/transfers/not-a-uuid".to_string(), 400, "invalid_input", "non-UUID id"),
    ];
    for (path, status, code, what) in cases {
        w.node.send("GET", &path, Some(&carla), Body::None, &[]).await.assert_problem(status, code, what);
    }
}

/// The statement of another customer's account is 403 `forbidden`.
#[tokio::test]
async fn statement_of_another_customers_account_is_forbidden() {
    let w = world().await;
    let path = format!("/api/v1/statement?account={}", w.bia.number());
    w.node.send("GET", &path, Some(&w.ana.token), Body::None, &[]).await.assert_problem(403, "forbidden", "bia's");
    let own = format!("/api/v1/statement?account={}", w.ana.number());
    let reply = w.node.send("GET", &own, Some(&w.ana.token), Body::None, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let malformed = "/api/v1/statement?account=12";
    w.node.send("GET", malformed, Some(&w.ana.token), Body::None, &[]).await.assert_problem(
        400,
        "invalid_input",
        "malformed account",
    );
}

/// Unknown statement parameters and limits outside 1..=200 are 400 `invalid_input`.
#[tokio::test]
async fn statement_rejects_unknown_parameters_and_bad_limits() {
    let w = world().await;
    for query in
        ["foo=1", "limit=0", "limit=1000", "limit=201", "limit=-1", "limit=abc", "limit=1.5", "before=abc", "before=-3"]
    {
        let reply =
            w.node.send("GET", &format!("/api/v1/statement?{query}"), Some(&w.ana.token), Body::None, &[]).await;
        reply.assert_problem(400, "invalid_input", query);
    }
    for query in ["limit=1", "limit=200"] {
        let reply =
            w.node.send("GET", &format!("/api/v1/statement?{query}"), Some(&w.ana.token), Body::None, &[]).await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.body);
    }
}

/// A holder of a joint account may spend it from their individual session.
#[tokio::test]
async fn joint_holder_may_spend_the_joint_account_from_an_individual_session() {
    let node = in_process::spawn_node().await;
    let (ana, _) = node.customer(1, "Ana Souza").await;
    let (bia, _) = node.customer(2, "Bia Lima").await;
    let (_, carla) = node.customer(3, "Carla Dias").await;
    let joint = node
        .open(json!({
            "kind": "joint",
            "holders": [{ "name": "Ana Souza", "document": cpf(1) }, { "name": "Bia Lima", "document": cpf(2) }],
            "email": "casal@example.com", "phone": "+5575999990000", "password": "a long test passphrase"
        }))
        .await;
    assert_eq!(joint.status, 201, "{}", joint.body);
    let joint_token = node.sign_in("casal@example.com", "a long test passphrase").await;
    node.deposit(&joint_token, 5_000).await;
    for (who, token) in [("ana", &ana), ("bia", &bia)] {
        let body = json!({ "legs": [{
            "from": { "bank_id": 1, "number": number_of(&joint.body) },
            "to": { "key": key_of(&carla) }, "amount_cents": 1_000,
        }] });
        let (status, t) = node.call("POST", "/api/v1/transfers", Some(token), Some(body)).await;
        assert_eq!(status, 201, "{who}: {t}");
        assert_eq!(t["status"], "completed", "{who}: {t}");
    }
    assert_eq!(node.balance(&joint_token).await, (3_000, 0, 3_000));
    assert_eq!(node.balance(&ana).await, (0, 0, 0));
    let carla_token = node.sign_in("c3@example.com", "a long test passphrase").await;
    assert_eq!(node.balance(&carla_token).await, (2_000, 0, 2_000));
}

/// A joint account's session acts only on it: spending a holder's individual account is 403.
#[tokio::test]
async fn joint_session_may_not_spend_a_holders_individual_account() {
    let node = in_process::spawn_node().await;
    let (ana, ana_acc) = node.customer(1, "Ana Souza").await;
    node.customer(2, "Bia Lima").await;
    let (carla, carla_acc) = node.customer(3, "Carla Dias").await;
    node.deposit(&ana, 5_000).await;
    let joint = node
        .open(json!({
            "kind": "joint",
            "holders": [{ "name": "Ana Souza", "document": cpf(1) }, { "name": "Bia Lima", "document": cpf(2) }],
            "email": "casal@example.com", "phone": "+5575999990000", "password": "a long test passphrase"
        }))
        .await;
    assert_eq!(joint.status, 201, "{}", joint.body);
    let joint_token = node.sign_in("casal@example.com", "a long test passphrase").await;
    node.deposit(&joint_token, 5_000).await;
    let before = (node.snapshot(&ana).await, node.snapshot(&joint_token).await, node.snapshot(&carla).await);

    let from_ana = json!({ "legs": [{
        "from": { "bank_id": 1, "number": number_of(&ana_acc) },
        "to": { "key": key_of(&carla_acc) }, "amount_cents": 1_000,
    }] });
    node.send("POST", "/api/v1/transfers", Some(&joint_token), Body::Json(from_ana), &[]).await.assert_problem(
        403,
        "forbidden",
        "joint session spending ana's account",
    );
    // A non-holder may not spend the joint account either.
    let from_joint = json!({ "legs": [{
        "from": { "bank_id": 1, "number": number_of(&joint.body) },
        "to": { "key": key_of(&ana_acc) }, "amount_cents": 1_000,
    }] });
    node.send("POST", "/api/v1/transfers", Some(&carla), Body::Json(from_joint), &[]).await.assert_problem(
        403,
        "forbidden",
        "carla spending the joint account",
    );
    let after = (node.snapshot(&ana).await, node.snapshot(&joint_token).await, node.snapshot(&carla).await);
    assert_eq!(after, before);
}

// ----- idempotency --------------------------------------------------------------------------

/// The same key with the same body answers the first response again and moves money once.
#[tokio::test]
async fn same_idempotency_key_and_body_replays_and_moves_once() {
    let w = world().await;
    let cases = [
        ("/api/v1/deposits", json!({ "amount_cents": 700, "method": "qr" }), 700, 0),
        ("/api/v1/withdrawals", json!({ "amount_cents": 300 }), -300, 0),
        ("/api/v1/transfers", w.pix_to_bia(json!(1_000)), -1_000, 1_000),
    ];
    for (path, body, ana_delta, bia_delta) in cases {
        let key = uuid::Uuid::new_v4().to_string();
        let (ana_before, bia_before) = (w.node.balance(&w.ana.token).await.0, w.node.balance(&w.bia.token).await.0);
        let first = w.ana_posts(path, Body::Json(body.clone()), Some(&key)).await;
        assert_eq!(first.status, 201, "{path}: {}", first.body);
        let lines = w.node.statement_all(&w.ana.token, None).await.len();
        for _ in 0..3 {
            let again = w.ana_posts(path, Body::Json(body.clone()), Some(&key)).await;
            assert_eq!(again.status, 201, "{path}: {}", again.body);
            assert_eq!(again.body, first.body, "{path}: a replay answers the first response");
        }
        assert!(first.body["id"].is_string() || first.body["id"].is_u64(), "{path}: {}", first.body);
        assert_eq!(w.node.balance(&w.ana.token).await.0, ana_before + ana_delta, "{path}: moved once");
        assert_eq!(w.node.balance(&w.bia.token).await.0, bia_before + bia_delta, "{path}: moved once");
        assert_eq!(w.node.statement_all(&w.ana.token, None).await.len(), lines, "{path}: no new lines");
    }
}

/// The same key with a different body is 422 `idempotency_mismatch` and moves nothing.
#[tokio::test]
async fn same_idempotency_key_with_another_body_is_mismatch_and_changes_nothing() {
    let w = world().await;
    let cases = [
        (
            "/api/v1/deposits",
            json!({ "amount_cents": 700, "method": "qr" }),
            json!({ "amount_cents": 701, "method": "qr" }),
        ),
        ("/api/v1/withdrawals", json!({ "amount_cents": 300 }), json!({ "amount_cents": 3_000 })),
        ("/api/v1/transfers", w.pix_to_bia(json!(1_000)), w.pix_to_bia(json!(2_000))),
    ];
    for (path, body, other) in cases {
        let key = uuid::Uuid::new_v4().to_string();
        let first = w.ana_posts(path, Body::Json(body), Some(&key)).await;
        assert_eq!(first.status, 201, "{path}: {}", first.body);
        let before = w.snapshots().await;
        let reply = w.ana_posts(path, Body::Json(other), Some(&key)).await;
        reply.assert_problem(422, "idempotency_mismatch", path);
        assert_eq!(w.snapshots().await, before, "{path}: a mismatch changed something");
    }
}

/// A rejected request (4xx) is not remembered under its key: the same key works afterwards.
#[tokio::test]
async fn rejected_request_is_not_remembered_under_its_key() {
    let w = world().await;
    // Overdraft withdrawal (422), then enough money, then the very same request succeeds.
    let key = uuid::Uuid::new_v4().to_string();
    let big = json!({ "amount_cents": 20_000 });
    let reply = w.ana_posts("/api/v1/withdrawals", Body::Json(big.clone()), Some(&key)).await;
    reply.assert_problem(422, "insufficient_funds", "overdraft");
    w.node.deposit(&w.ana.token, 15_000).await;
    let reply = w.ana_posts("/api/v1/withdrawals", Body::Json(big), Some(&key)).await;
    assert_eq!(reply.status, 201, "retry after depositing: {}", reply.body);
    assert_eq!(w.node.balance(&w.ana.token).await.0, ANA_FUNDS + 15_000 - 20_000);

    // Invalid input (400), then a different, valid body under the same key: no mismatch.
    let key = uuid::Uuid::new_v4().to_string();
    let zero = json!({ "amount_cents": 0, "method": "cash" });
    w.ana_posts("/api/v1/deposits", Body::Json(zero), Some(&key)).await.assert_problem(400, "invalid_input", "zero");
    let reply =
        w.ana_posts("/api/v1/deposits", Body::Json(json!({ "amount_cents": 100, "method": "cash" })), Some(&key)).await;
    assert_eq!(reply.status, 201, "deposit after a 400 under the same key: {}", reply.body);

    // Unknown key (404) and forbidden source (403), then a valid transfer under each key.
    let key = uuid::Uuid::new_v4().to_string();
    let unknown = json!({ "legs": [{ "to": { "key": cpf(999) }, "amount_cents": 100 }] });
    w.ana_posts("/api/v1/transfers", Body::Json(unknown), Some(&key)).await.assert_problem(404, "unknown_key", "404");
    let reply = w.ana_posts("/api/v1/transfers", Body::Json(w.pix_to_bia(json!(100))), Some(&key)).await;
    assert_eq!(reply.status, 201, "transfer after a 404 under the same key: {}", reply.body);
    let key = uuid::Uuid::new_v4().to_string();
    let forbidden = json!({ "legs": [{ "from": { "bank_id": 1, "number": w.bia.number() }, "to": { "key": w.ana.key() }, "amount_cents": 100 }] });
    w.ana_posts("/api/v1/transfers", Body::Json(forbidden), Some(&key)).await.assert_problem(403, "forbidden", "403");
    let reply = w.ana_posts("/api/v1/transfers", Body::Json(w.pix_to_bia(json!(200))), Some(&key)).await;
    assert_eq!(reply.status, 201, "transfer after a 403 under the same key: {}", reply.body);
    assert_eq!(w.node.balance(&w.bia.token).await.0, BIA_FUNDS + 300);
}

/// An Idempotency-Key that is not a UUID is 400 `invalid_input` and moves nothing.
#[tokio::test]
async fn non_uuid_idempotency_key_is_invalid_input_and_changes_nothing() {
    let w = world().await;
    let long = format!("{}0", uuid::Uuid::new_v4());
    for (path, body) in valid_money_requests(&w) {
        for key in ["abc", "12345", "", long.as_str(), "not-a-uuid-at-all-but-36-chars-long!"] {
            let before = w.snapshots().await;
            let reply = w.ana_posts(path, Body::Json(body.clone()), Some(key)).await;
            reply.assert_problem(400, "invalid_input", &format!("{path}: key {key:?}"));
            assert_eq!(w.snapshots().await, before, "{path}: key {key:?} changed something");
        }
    }
}

// ----- transport ----------------------------------------------------------------------------

/// A body over 64 KiB (65_537 bytes on) is 400 `invalid_input`; the same body padded to exactly
/// 65_536 bytes works.
#[tokio::test]
async fn body_over_64_kib_is_invalid_input_and_changes_nothing() {
    let w = world().await;
    let pad = |json: &Value, total: usize| {
        let text = json.to_string();
        format!("{}{}{}", &text[..1], " ".repeat(total - text.len()), &text[1..])
    };
    for (path, body) in valid_money_requests(&w) {
        w.ana_is_refused(
            path,
            Body::Raw(pad(&body, 64 * 1024 + 1)),
            400,
            "invalid_input",
            &format!("{path}: 64 KiB + 1"),
        )
        .await;
        w.ana_is_refused(path, Body::Raw(pad(&body, 1024 * 1024)), 400, "invalid_input", &format!("{path}: 1 MiB"))
            .await;
        let reply = w.ana_posts(path, Body::Raw(pad(&body, 64 * 1024)), None).await;
        assert_eq!(reply.status, 201, "{path}: exactly 64 KiB: {}", reply.body);
    }
    let account = individual_body(80, "big@example.com");
    let reply = w.node.send("POST", "/api/v1/accounts", None, Body::Raw(pad(&account, 64 * 1024 + 1)), &[]).await;
    reply.assert_problem(400, "invalid_input", "account: 64 KiB + 1");
    not_opened(&w.node, "big@example.com", "account: 64 KiB + 1").await;
    let reply = w.node.send("POST", "/api/v1/accounts", None, Body::Raw(pad(&account, 64 * 1024)), &[]).await;
    assert_eq!(reply.status, 201, "account: exactly 64 KiB: {}", reply.body);
}

/// An unknown path is a 404 `not_found` problem.
#[tokio::test]
async fn unknown_path_is_a_not_found_problem() {
    let w = world().await;
    for (method, path) in [
        ("GET", "/api/v1/nope"),
        ("GET", "/api/v2/me"),
        ("POST", "/api/v1/deposit"),
        ("GET", "/no-such-page"),
        ("DELETE", "/api/v1/sessions/other"),
    ] {
        let reply = w.node.send(method, path, Some(&w.ana.token), Body::None, &[]).await;
        reply.assert_problem(404, "not_found", &format!("{method} {path}"));
    }
}
