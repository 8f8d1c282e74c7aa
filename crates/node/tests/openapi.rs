//! The OpenAPI document (issue 16) against the code: every route is described, the document is
//! served as generated, a real node answers as it says, and the client crate's types fit it.

use std::collections::BTreeSet;

use bank_client as client;
use bank_core::error::ErrorCode;
use bank_node::api::openapi;
use bank_testkit::http::{Body, Reply};
use bank_testkit::in_process::{self, TestNode};
use serde::Serialize;
use serde_json::{Value, json};

fn doc() -> Value {
    serde_json::from_str(openapi::json()).expect("the document is JSON")
}

/// (method, path) of every route of `router`, read from its `Debug` text (axum has no other way
/// to list a router's routes): `RouteId(n): "/path"` and `RouteId(n): MethodRouter(… allow_header:
/// Bytes(b"GET,HEAD") })`. HEAD comes with GET and is not listed.
fn routes_of<S>(router: &axum::Router<S>) -> BTreeSet<(String, String)> {
    let whole = format!("{router:?}");
    // The fallback router (`/` and a catch-all) follows the routes; it is not a route.
    let text = &whole[..whole.find("fallback_router:").expect("a fallback router")];
    let id_at = |s: &str| -> Option<(String, usize)> {
        let start = s.find("RouteId(")? + "RouteId(".len();
        let end = start + s[start..].find(')')?;
        Some((s[start..end].to_owned(), end + 3))
    };
    let (mut paths, mut methods) = (std::collections::HashMap::new(), std::collections::HashMap::new());
    let mut rest = text;
    while let Some((id, after)) = id_at(rest) {
        rest = &rest[after..];
        if let Some(quoted) = rest.strip_prefix('"') {
            paths.insert(id, quoted[..quoted.find('"').expect("closing quote")].to_owned());
        } else if rest.starts_with("MethodRouter(") {
            let allow = &rest[rest.find("allow_header: Bytes(b\"").expect("allow header") + 22..];
            methods.insert(id, allow[..allow.find('"').expect("closing quote")].to_owned());
        }
    }
    assert!(!paths.is_empty() && paths.len() == methods.len(), "could not read the routes of {text}");
    let mut out = BTreeSet::new();
    for (id, path) in paths {
        for method in methods[&id].split(',').filter(|m| *m != "HEAD") {
            out.insert((method.to_ascii_lowercase(), path.clone()));
        }
    }
    out
}

fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.insert((method.clone(), path.clone()));
        }
    }
    out
}

#[test]
fn every_api_route_is_documented_and_every_documented_route_is_served() {
    let doc = doc();
    let documented = documented_operations(&doc);
    let mut served = routes_of(&bank_node::api::routes());
    assert!(served.len() >= 17, "the API router lists too few routes: {served:?}");
    // The seed-compatible routes are described too, under their own tag; their CORS preflights
    // (OPTIONS) are not operations of the API.
    let seed: BTreeSet<_> = routes_of(&bank_node::seed::routes()).into_iter().filter(|(m, _)| m != "options").collect();
    assert!(seed.len() >= 6, "the seed router lists too few routes: {seed:?}");
    for (method, path) in &seed {
        assert_eq!(doc["paths"][path][method]["tags"], json!(["seed-compatible"]), "{method} {path}");
    }
    served.extend(seed);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(undocumented.is_empty(), "routes without a description (add them through `routes!`): {undocumented:?}");
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(unserved.is_empty(), "described but not served: {unserved:?}");
    // The other faces of a node must not grow /api/v1 routes behind the document's back.
    for other in [routes_of(&bank_node::web::routes()), routes_of(&bank_node::interbank::routes())] {
        let stray: Vec<_> = other.iter().filter(|(_, p)| p.starts_with("/api/v1")).collect();
        assert!(stray.is_empty(), "/api/v1 routes outside the API router: {stray:?}");
    }
}

/// The check above is only as good as the route reader: a plain `.route()` (no description) on
/// the API router must show up as undocumented.
#[test]
fn a_route_added_without_a_description_is_caught() {
    let router = bank_node::api::routes().route("/api/v1/undescribed", axum::routing::put(|| async { "x" }));
    let served = routes_of(&router);
    let extra = ("put".to_owned(), "/api/v1/undescribed".to_owned());
    assert!(served.contains(&extra), "{served:?}");
    assert!(!documented_operations(&doc()).contains(&extra));
}

/// Follows a local `$ref` (`#/components/...`) until it reaches a non-reference.
fn resolve<'d>(doc: &'d Value, mut value: &'d Value) -> &'d Value {
    while let Some(pointer) = value.get("$ref").and_then(Value::as_str) {
        value = doc.pointer(pointer.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling $ref {pointer}"));
    }
    value
}

#[test]
fn the_document_describes_problems_sessions_and_idempotency_keys() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["session"],
        json!({"type": "http", "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["session"]["description"]})
    );
    let codes: BTreeSet<&str> = doc["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .expect("code enum")
        .iter()
        .map(|c| c.as_str().expect("code"))
        .collect();
    for code in ErrorCode::ALL {
        assert!(codes.contains(code.as_str()), "{code} missing from the problem codes");
    }
    assert!(codes.contains("internal"));
    const PUBLIC: [&str; 6] = [
        "/api/v1/bank",
        "/api/v1/accounts",
        "/api/v1/sessions",
        "/api/v1/consortium/status",
        "/api/v1/openapi.json",
        "/api/v1/reference",
    ];
    let money_moving =
        ["/api/v1/deposits", "/api/v1/withdrawals", "/api/v1/transfers", "/api/v1/transfers/{id}/refunds"];
    // The seed-compatible routes answer the original's way (plain-text refusals, no sessions);
    // `every_api_route_is_documented_and_every_documented_route_is_served` covers them.
    for (method, path) in documented_operations(&doc) {
        let op = &doc["paths"][&path][&method];
        if op["tags"] == json!(["seed-compatible"]) {
            continue;
        }
        let responses = op["responses"].as_object().expect("responses");
        let success: Vec<_> = responses.keys().filter(|s| s.starts_with('2')).collect();
        assert_eq!(success.len(), 1, "{method} {path}: one success status");
        let secured = op.get("security").is_some();
        assert!(!secured || responses.contains_key("401"), "{method} {path}: a session route documents 401");
        assert_eq!(secured, path.starts_with("/api/v1/") && !PUBLIC.contains(&path.as_str()), "{method} {path}");
        if op.get("requestBody").is_some() {
            assert!(responses.contains_key("400"), "{method} {path}: a body can be invalid");
        }
        for (status, response) in responses.iter().filter(|(s, _)| !s.starts_with('2')) {
            let response = resolve(&doc, response);
            assert!(
                response["content"]["application/problem+json"]["schema"]["$ref"] == "#/components/schemas/Problem",
                "{method} {path} {status}: errors are problems"
            );
        }
        if path.starts_with("/api/v1/") && !["/api/v1/openapi.json", "/api/v1/reference"].contains(&path.as_str()) {
            assert!(responses.contains_key("503"), "{method} {path}: load shedding answers 503");
        }
        let idempotent = op["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"));
        assert_eq!(idempotent, money_moving.contains(&path.as_str()), "{method} {path}: Idempotency-Key");
    }
    assert!(
        resolve(&doc, &doc["paths"]["/api/v1/sessions"]["post"]["responses"]["429"])["headers"]
            .get("Retry-After")
            .is_some()
    );
}

/// A validator for `schema` (which may `$ref` into the document's components).
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    let object = root.as_object_mut().expect("a schema object");
    object.insert("components".into(), doc["components"].clone());
    jsonschema::draft202012::options().should_validate_formats(true).build(&root).expect("a valid JSON Schema")
}

#[track_caller]
fn assert_valid(doc: &Value, schema: &Value, instance: &Value, what: &str) {
    let validator = validator(doc, schema);
    let errors: Vec<String> =
        validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{what}: {instance} does not fit its schema: {errors:?}");
}

#[test]
fn every_example_in_the_document_fits_its_schema() {
    let doc = doc();
    let mut checked = 0;
    for (method, path) in documented_operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let mut media = vec![("request", &op["requestBody"]["content"]["application/json"])];
        for (status, response) in op["responses"].as_object().expect("responses") {
            for (_, content) in resolve(&doc, response)["content"].as_object().into_iter().flatten() {
                media.push((status.as_str(), content));
            }
        }
        for (what, content) in media {
            if let Some(example) = content.get("example") {
                assert_valid(&doc, &content["schema"], example, &format!("{method} {path} {what} example"));
                checked += 1;
            }
        }
    }
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        if let Some(example) = schema.get("example") {
            assert_valid(&doc, &json!({ "$ref": format!("#/components/schemas/{name}") }), example, name);
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} examples");
}

/// The schema a documented answer of `method path` with `status` must fit, and its media type.
fn response_schema(doc: &Value, method: &str, path: &str, status: u16) -> Option<(String, Value)> {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    let response = op["responses"].get(status.to_string()).unwrap_or_else(|| {
        panic!("{method} {path} answered {status}, which the document does not list");
    });
    let content = resolve(doc, response)["content"].as_object()?;
    let (media, body) = content.iter().next().expect("a media type");
    Some((media.clone(), body["schema"].clone()))
}

/// A node's answer checked against the document: a listed status, its media type, its schema.
#[track_caller]
fn assert_documented(doc: &Value, method: &str, path: &str, reply: &Reply) {
    let Some((media, schema)) = response_schema(doc, method, path, reply.status) else {
        return;
    };
    assert!(reply.content_type.starts_with(&media), "{method} {path}: {} is not {media}", reply.content_type);
    assert_valid(doc, &schema, &reply.body, &format!("{method} {path} {}", reply.status));
}

/// Sends a request and checks the answer against the document; `template` names the operation.
async fn call(
    doc: &Value,
    node: &TestNode,
    (method, template, path): (&str, &str, &str),
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let body = body.map_or(Body::None, Body::Json);
    let reply = node.send(method, path, token, body, &[]).await;
    assert_documented(doc, method, template, &reply);
    reply
}

#[tokio::test]
async fn the_served_document_is_the_generated_one_and_needs_no_session() {
    let node = in_process::spawn_node().await;
    let response = node.http.get(format!("{}/api/v1/openapi.json", node.url)).send().await.expect("get");
    assert_eq!(response.status(), 200);
    let media = response.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(media.starts_with("application/json"), "{media}");
    assert_eq!(response.text().await.expect("body"), openapi::json());

    let page = node.send("GET", "/api/v1/reference", None, Body::None, &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"), "{}", page.content_type);
    let html = page.body.as_str().expect("text");
    for (method, path) in documented_operations(&doc()) {
        let heading = format!("<code>{} {}</code>", method.to_ascii_uppercase(), path);
        assert!(html.contains(&heading), "the reference page lacks {heading}");
    }
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"), "self-contained");
}

/// What every client request type puts on the wire fits its operation's request schema — and the
/// node's own parser takes it.
#[test]
fn client_requests_fit_the_document() {
    let doc = doc();
    let request_schema =
        |path: &str| doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"].clone();
    let check = |path: &str, value: Value, what: &str| assert_valid(&doc, &request_schema(path), &value, what);
    let to_json = |v: &dyn erased::Json| v.json();
    let account = client::NewAccount {
        kind: client::AccountKind::Joint,
        holders: vec![
            client::Holder { name: "Ana Lima".into(), document: in_process::cpf(1) },
            client::Holder { name: "Bia Lima".into(), document: in_process::cpf(2) },
        ],
        email: "ana@example.com".into(),
        phone: "+5575999991234".into(),
        password: "correct horse battery".into(),
    };
    check("/api/v1/accounts", to_json(&account), "NewAccount");
    for kind in [client::AccountKind::Individual, client::AccountKind::Company] {
        check("/api/v1/accounts", to_json(&client::NewAccount { kind, ..account.clone() }), "NewAccount kind");
    }
    let credentials = client::Credentials { email: "ana@example.com".into(), password: "correct horse battery".into() };
    check("/api/v1/sessions", to_json(&credentials), "Credentials");
    for method in [client::DepositMethod::Cash, client::DepositMethod::Boleto, client::DepositMethod::Qr] {
        check("/api/v1/deposits", to_json(&client::NewDeposit { amount_cents: 100, method }), "NewDeposit");
    }
    check("/api/v1/withdrawals", to_json(&client::NewWithdrawal { amount_cents: 100 }), "NewWithdrawal");
    for key_type in [client::NewPixKeyType::Email, client::NewPixKeyType::Phone, client::NewPixKeyType::Random] {
        check("/api/v1/pix-keys", to_json(&client::NewPixKey { key_type }), "NewPixKey");
    }
    let by_key = client::NewTransfer::single(client::Destination::Key { key: "ana@example.com".into() }, 5, None);
    check("/api/v1/transfers", to_json(&by_key), "NewTransfer by key");
    let packet = client::NewTransfer {
        legs: vec![client::NewLeg {
            from: Some(client::AccountRef { bank_id: 1, number: "000001-9".into() }),
            to: client::Destination::Account(client::AccountRef { bank_id: 2, number: "000002-7".into() }),
            amount_cents: 5,
        }],
        description: Some("rent".into()),
    };
    check("/api/v1/transfers", to_json(&packet), "NewTransfer by account");
}

/// Lets the request types (some without `Clone`/`Debug` of secrets) share one helper.
mod erased {
    pub trait Json {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("serialises")
        }
    }
}

/// `schema` with `additionalProperties: false` on every object that lists its properties, so a
/// client type that writes a field the document does not have fails too.
fn closed(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> = map.iter().map(|(k, v)| (k.clone(), closed(v))).collect();
            if out.contains_key("properties") && !out.contains_key("additionalProperties") {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(closed).collect()),
        other => other.clone(),
    }
}

/// A node's answer read into the client's type and written back: it must still fit the
/// document (no field lost, renamed or retyped), and with no field the document lacks.
#[track_caller]
fn assert_client_round_trip<T: serde::de::DeserializeOwned + Serialize>(
    doc: &Value,
    (method, path, status): (&str, &str, u16),
    answer: &Value,
) {
    let (_, schema) = response_schema(doc, method, path, status).expect("a body");
    let typed: T = serde_json::from_value(answer.clone())
        .unwrap_or_else(|e| panic!("{method} {path}: the client cannot read {answer}: {e}"));
    let back = serde_json::to_value(&typed).expect("serialises");
    let strict = json!({ "components": closed(&doc["components"]) });
    assert_valid(&strict, &closed(&schema), &back, &format!("client type of {method} {path}"));
}

#[tokio::test]
async fn a_customer_journey_answers_as_documented_and_the_client_reads_every_answer() {
    let doc = doc();
    let node = in_process::spawn_node().await;
    let d = &doc;
    let n = &node;

    let bank = call(d, n, ("GET", "/api/v1/bank", "/api/v1/bank"), None, None).await;
    assert_client_round_trip::<client::BankInfo>(d, ("GET", "/api/v1/bank", 200), &bank.body);
    call(d, n, ("GET", "/healthz", "/healthz"), None, None).await;
    let metrics = node.send("GET", "/metrics", None, Body::None, &[]).await;
    assert!(metrics.content_type.starts_with("application/openmetrics-text"), "{}", metrics.content_type);

    let accounts = ("POST", "/api/v1/accounts", "/api/v1/accounts");
    let opened = call(d, n, accounts, None, Some(in_process::individual_body(1, "ana@example.com"))).await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    assert_client_round_trip::<client::Account>(d, ("POST", "/api/v1/accounts", 201), &opened.body);
    let other = call(d, n, accounts, None, Some(in_process::individual_body(2, "bia@example.com"))).await;
    call(d, n, accounts, None, Some(in_process::individual_body(1, "ana2@example.com"))).await.assert_problem(
        409,
        "conflict",
        "same CPF twice",
    );
    call(d, n, accounts, None, Some(json!({"kind": "individual"}))).await.assert_problem(400, "invalid_input", "half");

    let sessions = ("POST", "/api/v1/sessions", "/api/v1/sessions");
    let password = in_process::individual_body(1, "x@y.z")["password"].clone();
    let session = call(d, n, sessions, None, Some(json!({"email": "ana@example.com", "password": password}))).await;
    assert_eq!(session.status, 201, "{}", session.body);
    assert_client_round_trip::<client::Session>(d, ("POST", "/api/v1/sessions", 201), &session.body);
    let wrong = json!({"email": "ana@example.com", "password": "not the password"});
    call(d, n, sessions, None, Some(wrong)).await.assert_problem(401, "unauthorized", "wrong password");
    let token = session.body["token"].as_str().expect("token").to_owned();
    let t = Some(token.as_str());

    let me = call(d, n, ("GET", "/api/v1/me", "/api/v1/me"), t, None).await;
    assert_client_round_trip::<client::Account>(d, ("GET", "/api/v1/me", 200), &me.body);
    call(d, n, ("GET", "/api/v1/me", "/api/v1/me"), Some("nonsense"), None).await.assert_problem(
        401,
        "unauthorized",
        "bad token",
    );

    let deposits = ("POST", "/api/v1/deposits", "/api/v1/deposits");
    let entry = call(d, n, deposits, t, Some(json!({"amount_cents": 10_000, "method": "qr"}))).await;
    assert_client_round_trip::<client::Entry>(d, ("POST", "/api/v1/deposits", 201), &entry.body);
    let withdrawals = ("POST", "/api/v1/withdrawals", "/api/v1/withdrawals");
    let entry = call(d, n, withdrawals, t, Some(json!({"amount_cents": 100}))).await;
    assert_client_round_trip::<client::Entry>(d, ("POST", "/api/v1/withdrawals", 201), &entry.body);
    call(d, n, withdrawals, t, Some(json!({"amount_cents": 100_000_000}))).await.assert_problem(
        422,
        "insufficient_funds",
        "too much",
    );

    let key = call(d, n, ("POST", "/api/v1/pix-keys", "/api/v1/pix-keys"), t, Some(json!({"type": "random"}))).await;
    assert_client_round_trip::<client::PixKey>(d, ("POST", "/api/v1/pix-keys", 201), &key.body);
    let other_key = in_process::key_of(&other.body);
    let lookup_path = format!("/api/v1/pix-keys/{other_key}");
    let found = call(d, n, ("GET", "/api/v1/pix-keys/{key}", &lookup_path), t, None).await;
    assert_client_round_trip::<client::PixKeyInfo>(d, ("GET", "/api/v1/pix-keys/{key}", 200), &found.body);
    let unknown = "/api/v1/pix-keys/nobody@example.com";
    call(d, n, ("GET", "/api/v1/pix-keys/{key}", unknown), t, None).await.assert_problem(404, "unknown_key", "unknown");

    let transfers = ("POST", "/api/v1/transfers", "/api/v1/transfers");
    let pix = json!({"legs": [{"to": {"key": other_key}, "amount_cents": 1_500}], "description": "rent"});
    let done = call(d, n, transfers, t, Some(pix)).await;
    assert_eq!(done.body["status"], "completed", "{}", done.body);
    assert_client_round_trip::<client::Transfer>(d, ("POST", "/api/v1/transfers", 201), &done.body);
    let too_much = json!({"legs": [{"to": {"key": other_key}, "amount_cents": 99_000_000}]});
    let failed = call(d, n, transfers, t, Some(too_much)).await;
    assert_eq!(failed.body["failure"]["code"], "insufficient_funds", "{}", failed.body);
    assert_client_round_trip::<client::Transfer>(d, ("POST", "/api/v1/transfers", 201), &failed.body);
    let mixed = json!({"legs": [{"to": {"key": other_key, "bank_id": 1}, "amount_cents": 1}]});
    call(d, n, transfers, t, Some(mixed)).await.assert_problem(400, "invalid_input", "mixed destination");

    let transfer_path = format!("/api/v1/transfers/{}", done.body["id"].as_str().expect("id"));
    let fetched = call(d, n, ("GET", "/api/v1/transfers/{id}", &transfer_path), t, None).await;
    assert_client_round_trip::<client::Transfer>(d, ("GET", "/api/v1/transfers/{id}", 200), &fetched.body);

    let statement = call(d, n, ("GET", "/api/v1/statement", "/api/v1/statement?limit=2"), t, None).await;
    assert!(statement.body["next"].is_string(), "{}", statement.body);
    assert_client_round_trip::<client::Statement>(d, ("GET", "/api/v1/statement", 200), &statement.body);
    // Numbers are spelled as the document's patterns say: no sign, no leading zero; an empty
    // cursor is the first page (schemathesis found `before=` accepted against the first pattern).
    for query in ["limit=0", "limit=%2B5", "limit=05", "before=%2B3", "before=03", "before=-1", "limit=1.0"] {
        let path = format!("/api/v1/statement?{query}");
        call(d, n, ("GET", "/api/v1/statement", &path), t, None).await.assert_problem(400, "invalid_input", query);
    }
    let first = call(d, n, ("GET", "/api/v1/statement", "/api/v1/statement?before=&limit=2"), t, None).await;
    assert_eq!(first.body, statement.body, "an empty cursor is the first page");

    let mine = call(d, n, ("GET", "/api/v1/consortium/accounts", "/api/v1/consortium/accounts"), t, None).await;
    assert_client_round_trip::<client::ConsortiumAccounts>(d, ("GET", "/api/v1/consortium/accounts", 200), &mine.body);
    let status = call(d, n, ("GET", "/api/v1/consortium/status", "/api/v1/consortium/status"), None, None).await;
    assert_client_round_trip::<client::ConsortiumStatus>(d, ("GET", "/api/v1/consortium/status", 200), &status.body);

    let out = ("DELETE", "/api/v1/sessions/current", "/api/v1/sessions/current");
    assert_eq!(call(d, n, out, t, None).await.status, 204);
    call(d, n, out, t, None).await.assert_problem(401, "unauthorized", "signed out already");
}

/// In a consortium the status lists every member with `last_seen_ms` and the ring's role.
#[tokio::test]
async fn a_consortium_status_answers_as_documented() {
    let doc = doc();
    let cluster = in_process::cluster(2).await;
    let path = "/api/v1/consortium/status";
    let status = call(&doc, cluster.bank(1), ("GET", path, path), None, None).await;
    assert_eq!(status.body["members"].as_array().map(Vec::len), Some(2), "{}", status.body);
    assert_client_round_trip::<client::ConsortiumStatus>(&doc, ("GET", path, 200), &status.body);
}
