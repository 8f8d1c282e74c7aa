//! The seed-compatible API (issue 11): the original system's client routes, driven with the
//! exact request shapes its web interface and `tests.py` send, against real nodes in one process.
//! Money moves only through our service layer; every bad input is a 4xx that changes nothing.

use bank_core::document::{Cnpj, Cpf};
use bank_testkit::in_process::{self, Cluster, TestNode};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

fn cpf(n: u64) -> String {
    Cpf::from_base(n).formatted()
}

fn cnpj(n: u64) -> String {
    Cnpj::from_base(n).formatted()
}

async fn seed_cluster(n: u32) -> Cluster {
    in_process::cluster_with(n, |c| c.seed_compat = true).await
}

/// An answer: status, CORS origin header, content type, body text.
struct Answer {
    status: u16,
    cors: Option<String>,
    content_type: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", self.text))
    }
}

async fn request(node: &TestNode, method: &str, path: &str, body: Option<&Value>) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut call = node.http.request(method, format!("{}{path}", node.url)).header("Origin", "http://localhost:5173");
    if let Some(body) = body {
        call = call.header("Content-Type", "application/json").body(body.to_string());
    }
    let response = call.send().await.expect("request");
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (cors, content_type) = (header("access-control-allow-origin"), header("content-type").unwrap_or_default());
    let status = response.status().as_u16();
    Answer { status, cors, content_type, text: response.text().await.expect("body") }
}

async fn post(node: &TestNode, path: &str, body: Value) -> Answer {
    request(node, "POST", path, Some(&body)).await
}

/// The interface's sign-up body (`cardCreateAccount.jsx`).
fn create(name1: &str, doc1: &str, email: &str, fisic: &str, joint: &str, second: Option<(&str, &str)>) -> Value {
    let (name2, doc2) = second.unwrap_or(("", ""));
    json!({
        "operation": "create",
        "clientCpfCNPJ": doc1,
        "dataOperation": {
            "name1": name1, "cpfCNPJ1": doc1, "name2": name2, "cpfCNPJ2": doc2,
            "email": email, "password": PASSWORD, "telephone": "(75) 99999-1234",
            "isFisicAccount": fisic, "isJoinetAccount": joint
        }
    })
}

fn deposit(doc: &str, value: Value) -> Value {
    json!({ "operation": "deposit", "clientCpfCNPJ": doc, "dataOperation": { "value": value, "method": "money" } })
}

fn send_pix(doc: &str, value: Value, key: &str, bank: &str) -> Value {
    json!({ "operation": "sendPix", "clientCpfCNPJ": doc, "dataOperation": {
        "value": value, "keyPix": key, "idBank": bank, "bankNameReceiver": "Bank", "nameReceiver": "Someone" } })
}

fn packet(doc: &str, legs: Value) -> Value {
    json!({ "operation": "packetPix", "clientCpfCNPJ": doc, "dataOperation": legs })
}

/// Opens an individual account through `/operations`; returns its Account JSON.
async fn open(node: &TestNode, name: &str, doc: &str, email: &str) -> Value {
    let answer = post(node, "/operations", create(name, doc, email, "true", "false", None)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json()
}

async fn data(node: &TestNode, number: &Value) -> Value {
    let answer = request(node, "GET", &format!("/account/data/{number}"), None).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json()
}

async fn balance(node: &TestNode, number: &Value) -> String {
    data(node, number).await["balance"].as_str().expect("balance").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_routes_do_not_exist_unless_the_bank_is_told_to_serve_them() {
    let c = in_process::cluster(1).await;
    let node = c.bank(1);
    assert_eq!(request(node, "GET", "/bank", None).await.status, 404);
    assert_eq!(post(node, "/operations", deposit(&cpf(1), json!(10))).await.status, 404);
    assert_eq!(request(node, "GET", "/account/data/1", None).await.status, 404);
    let (_, status) = node.call("GET", "/api/v1/consortium/status", None, None).await;
    assert_eq!(status["seed_compat"], false, "{status}");
    let page = request(node, "GET", "/consortium", None).await;
    assert!(page.status == 200 && !page.text.contains("LIGADA"), "{}", page.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interfaces_journey_opens_signs_in_deposits_and_reads_the_account() {
    let c = seed_cluster(1).await;
    let node = c.bank(1);
    let bank = request(node, "GET", "/bank", None).await;
    assert_eq!((bank.status, bank.json()), (200, json!({ "nameBank": "Bank 1" })));

    let ana = open(node, "Ana Souza", &cpf(11), "ana@example.com").await;
    let number = ana["accountNumber"].clone();
    assert!(number.is_u64(), "accountNumber must be an integer: {ana}");
    assert_eq!((ana["balance"].as_str(), ana["blockedBalance"].as_str()), (Some("0.00"), Some("0.00")));
    assert_eq!((ana["isFisicAccount"].as_str(), ana["isJoinet"].as_str()), (Some("true"), Some("false")));
    assert_eq!((ana["cpfCNPJ1"].as_str(), ana["keyPix"].as_str()), (Some(cpf(11).as_str()), Some(cpf(11).as_str())));
    assert_eq!(ana["banksList"], json!(["Bank 1"]));
    assert_eq!(ana["bank"], "Bank 1");

    let login = post(node, "/account/login", json!({ "email": "ana@example.com", "password": PASSWORD })).await;
    assert_eq!((login.status, login.json()["accountNumber"].clone()), (200, number.clone()), "{}", login.text);
    let wrong =
        post(node, "/account/login", json!({ "email": "ana@example.com", "password": "not the password" })).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.content_type.starts_with("text/plain"), "{}", wrong.content_type);

    // The interface sends strings with up to two decimals, the scripts integers in reais.
    assert_eq!(post(node, "/operations", deposit(&cpf(11), json!("12.34"))).await.status, 200);
    assert_eq!(post(node, "/operations", deposit(&cpf(11), json!(20000))).await.status, 200);
    let qr = json!({ "operation": "deposit", "clientCpfCNPJ": cpf(11), "dataOperation": { "value": "0.66", "method": "qrCode" } });
    assert_eq!(post(node, "/operations", qr).await.status, 200);
    let account = data(node, &number).await;
    assert_eq!(account["balance"], "20013.00", "{account}");
    let lines = account["transactions"].as_array().expect("transactions");
    assert_eq!(lines.len(), 3, "{account}");
    assert_eq!((lines[0]["value"].as_str(), lines[2]["value"].as_str()), (Some("0.66"), Some("12.34")), "newest first");
    assert!(
        lines
            .iter()
            .all(|l| l["typeTransaction"] == "deposit" && l["concluded"] == true && l["idTransaction"].is_u64())
    );
    assert!(lines[0]["dateTransaction"].as_str().is_some_and(|d| d.ends_with('Z')), "{}", lines[0]);

    for missing in ["/account/data/999999999", "/account/data/0", "/account/data/abc", "/account/data/77"] {
        assert_eq!(request(node, "GET", missing, None).await.status, 404, "{missing}");
    }
    let (_, status) = node.call("GET", "/api/v1/consortium/status", None, None).await;
    assert_eq!(status["seed_compat"], true, "the status says the unauthenticated API is on: {status}");
    let page = request(node, "GET", "/consortium", None).await;
    assert!(
        page.text.contains("API COMPATÍVEL COM O SISTEMA ORIGINAL LIGADA"),
        "the consortium page warns: {}",
        page.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn company_and_joint_accounts_open_with_the_original_flags_and_documents_stay_unique() {
    let c = seed_cluster(1).await;
    let node = c.bank(1);
    let company =
        post(node, "/operations", create("Padaria Lima", &cnpj(21), "pad@example.com", "false", "none", None)).await;
    assert_eq!(company.status, 200, "{}", company.text);
    let company = company.json();
    assert_eq!(
        (company["isFisicAccount"].as_str(), company["cpfCNPJ1"].as_str()),
        (Some("false"), Some(cnpj(21).as_str()))
    );

    let pair = Some(("Bia Lima", cpf(23)));
    let pair = pair.as_ref().map(|(n, d)| (*n, d.as_str()));
    let joint =
        post(node, "/operations", create("Caio Lima", &cpf(22), "lima@example.com", "true", "true", pair)).await;
    assert_eq!(joint.status, 200, "{}", joint.text);
    let joint = joint.json();
    assert_eq!((joint["isJoinet"].as_str(), joint["name2"].as_str()), (Some("true"), Some("Bia Lima")), "{joint}");
    assert_eq!(joint["cpfCNPJ2"].as_str(), Some(cpf(23).as_str()));
    // The joint account is the one its first holder's document names: deposits land there.
    assert_eq!(post(node, "/operations", deposit(&cpf(22), json!("5"))).await.status, 200);
    assert_eq!(balance(node, &joint["accountNumber"]).await, "5.00");

    let again =
        post(node, "/operations", create("Caio Lima", &cpf(22), "other@example.com", "true", "false", None)).await;
    assert_eq!(again.status, 409, "{}", again.text);
    let same_email =
        post(node, "/operations", create("Duda", &cpf(24), "pad@example.com", "true", "false", None)).await;
    assert_eq!(same_email.status, 409, "{}", same_email.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_cors_and_preflights_are_200() {
    let c = seed_cluster(1).await;
    let node = c.bank(1);
    for path in ["/operations", "/account/login", "/account/transaction/pix/infos", "/bank", "/account/data/1"] {
        let response = node
            .http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", node.url))
            .header("Origin", "http://localhost:5173")
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
            .send()
            .await
            .expect("preflight");
        assert_eq!(response.status(), 200, "{path}");
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_lowercase();
        assert_eq!(header("access-control-allow-origin"), "*", "{path}");
        assert!(header("access-control-allow-methods").contains("post"), "{path}");
        assert!(header("access-control-allow-headers").contains("content-type"), "{path}");
    }
    let answers = [
        request(node, "GET", "/bank", None).await,
        post(node, "/operations", json!({ "operation": "withdrawAll" })).await,
        request(node, "GET", "/account/data/5", None).await,
        request(node, "GET", "/accounts", None).await,
        post(node, "/account/login", json!({ "email": "nobody@example.com", "password": PASSWORD })).await,
    ];
    for answer in answers {
        assert_eq!(answer.cors.as_deref(), Some("*"), "{} {}", answer.status, answer.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_a_4xx_with_a_short_text_and_changes_nothing() {
    let c = seed_cluster(2).await;
    let node = c.bank(1);
    let ana = open(node, "Ana Souza", &cpf(31), "ana@example.com").await;
    let bia = open(c.bank(2), "Bia Lima", &cpf(32), "bia@example.com").await;
    assert_eq!(post(node, "/operations", deposit(&cpf(31), json!("100"))).await.status, 200);
    let before = data(node, &ana["accountNumber"]).await;
    let leg = |value: Value, key: &str, bank: &str, source: Value| json!({ "value": value, "keyPix": key, "idBank": bank, "nameReceiver": "Bia", "bankSourceMoney": source });
    let b = cpf(32);
    let mut bad = vec![
        json!({}),
        json!({ "operation": "withdrawAll", "clientCpfCNPJ": cpf(31), "dataOperation": {} }),
        json!({ "operation": 7 }),
        json!({ "operation": "deposit" }),
        json!({ "operation": "deposit", "clientCpfCNPJ": cpf(31), "dataOperation": "ten" }),
        json!({ "operation": "create", "dataOperation": { "name1": "X" } }),
        create("Ana", &cpf(33), "x@example.com", "none", "none", None),
        create("Ana", "123.456.789-00", "y@example.com", "true", "false", None),
        json!({ "operation": "create", "clientCpfCNPJ": cpf(34), "dataOperation": {
            "name1": "Eva", "cpfCNPJ1": cpf(34), "email": "eva@example.com", "password": "12345678",
            "telephone": "(75) 99999-1234", "isFisicAccount": "True", "isJoinetAccount": "False" } }),
        deposit(&cpf(31), json!("-5")),
        deposit(&cpf(31), json!(-5)),
        deposit(&cpf(31), json!("0")),
        deposit(&cpf(31), json!("1.234")),
        deposit(&cpf(31), json!("NaN")),
        deposit(&cpf(31), json!("1000000.01")),
        deposit(&cpf(31), json!(null)),
        deposit(&cpf(35), json!("5")),
        deposit("not a document", json!("5")),
        send_pix(&cpf(31), json!("5"), &b, "1"),
        send_pix(&cpf(31), json!("5"), &cpf(36), "2"),
        send_pix(&cpf(31), json!("5"), &cpf(31), "1"),
        send_pix(&cpf(31), json!("5"), "nonsense", "2"),
        send_pix(&cpf(31), json!("-1"), &b, "2"),
        send_pix(&cpf(31), json!("5"), &b, "x"),
        packet(&cpf(31), json!([])),
        packet(&cpf(31), json!({ "value": "1" })),
        packet(&cpf(31), json!([{ "keyPix": b, "idBank": "2", "bankSourceMoney": "Bank 1" }])),
        packet(&cpf(31), json!([leg(json!(""), &b, "2", json!("Bank 1"))])),
        packet(&cpf(31), json!([leg(json!("1"), &b, "2", json!(""))])),
        packet(&cpf(31), json!([leg(json!("1"), &b, "2", json!(null))])),
        packet(&cpf(31), json!([leg(json!("1"), &b, "2", json!("Bank 9"))])),
        packet(
            &cpf(31),
            json!([leg(json!("1"), &b, "2", json!("Bank 1")), leg(json!("1.001"), &b, "2", json!("Bank 1"))]),
        ),
        packet(&cpf(31), Value::Array(vec![leg(json!("1"), &b, "2", json!("Bank 1")); 17])),
    ];
    bad.push(json!([1, 2, 3]));
    for body in &bad {
        let answer = post(node, "/operations", body.clone()).await;
        assert!((400..500).contains(&answer.status), "{body} answered {} {}", answer.status, answer.text);
        assert!(answer.content_type.starts_with("text/plain") && !answer.text.is_empty() && answer.text.len() <= 400);
    }
    for raw in ["not json", "", "{\"operation\":"] {
        let answer = node.http.post(format!("{}/operations", node.url)).body(raw).send().await.expect("send");
        assert_eq!(answer.status(), 400, "{raw:?}");
    }
    let infos = |key: &str, bank: &str| json!({ "keyPix": key, "bankID": bank });
    for (body, status) in
        [(infos(&cpf(36), "2"), 400), (infos(&b, "1"), 404), (infos("nonsense", "2"), 400), (json!({}), 400)]
    {
        assert_eq!(post(node, "/account/transaction/pix/infos", body.clone()).await.status, status, "{body}");
    }
    assert_eq!(request(node, "GET", "/accounts", None).await.status, 401, "never public");
    assert_eq!(data(node, &ana["accountNumber"]).await, before, "refusals changed nothing");

    // Valid, but more than she has: the transfer executes and fails; nothing moves.
    let short = post(node, "/operations", send_pix(&cpf(31), json!("100.01"), &b, "2")).await;
    assert_eq!(short.status, 422, "{}", short.text);
    assert_eq!(balance(node, &ana["accountNumber"]).await, "100.00");
    assert_eq!(balance(c.bank(2), &bia["accountNumber"]).await, "0.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_bank_pix_and_a_three_bank_packet_go_through_operations() {
    let c = seed_cluster(3).await;
    let ana1 = open(c.bank(1), "Ana Souza", &cpf(41), "ana@example.com").await;
    let ana2 = open(c.bank(2), "Ana Souza", &cpf(41), "ana@example.com").await;
    let bia3 = open(c.bank(3), "Bia Lima", &cpf(42), "bia@example.com").await;
    assert_eq!(post(c.bank(1), "/operations", deposit(&cpf(41), json!("100"))).await.status, 200);
    assert_eq!(post(c.bank(2), "/operations", deposit(&cpf(41), json!(50))).await.status, 200);
    let login = post(c.bank(1), "/account/login", json!({ "email": "ana@example.com", "password": PASSWORD })).await;
    assert_eq!(login.json()["banksList"], json!(["Bank 1", "Bank 2"]), "{}", login.text);

    // The interface looks the key up (`3?<cpf>` typed, split by the interface) and then sends.
    let infos = post(c.bank(1), "/account/transaction/pix/infos", json!({ "keyPix": cpf(42), "bankID": "3" })).await;
    assert_eq!(infos.status, 200, "{}", infos.text);
    let infos = infos.json();
    assert_eq!((infos["name"].as_str(), infos["bank"].as_str()), (Some("Bia Lima"), Some("Bank 3")));
    assert!(infos["cpfCNPJ1"].as_str().is_some_and(|m| m.contains("***")), "{infos}");

    let sent = post(c.bank(1), "/operations", send_pix(&cpf(41), json!("10.50"), &cpf(42), "3")).await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    assert_eq!(balance(c.bank(1), &ana1["accountNumber"]).await, "89.50");
    assert_eq!(balance(c.bank(3), &bia3["accountNumber"]).await, "10.50");
    let bia = data(c.bank(3), &bia3["accountNumber"]).await;
    let line = &bia["transactions"][0];
    assert_eq!(
        (line["typeTransaction"].as_str(), line["source"].as_str()),
        (Some("receive Pix"), Some("Ana Souza")),
        "{bia}"
    );
    assert_eq!(line["bankSource"], "Bank 1", "{bia}");
    // The payer's line names who was paid and where (the interface shows `receptor` under "To"):
    // its bank coordinated the transfer and has its record. The original's interface showed it.
    let ana = data(c.bank(1), &ana1["accountNumber"]).await;
    let line = &ana["transactions"][0];
    assert_eq!(
        (line["typeTransaction"].as_str(), line["receptor"].as_str(), line["bankReceptor"].as_str()),
        (Some("send Pix"), Some("Bia Lima"), Some("Bank 3")),
        "{ana}"
    );
    assert_eq!((line["source"].as_str(), line["bankSource"].as_str()), (Some("Ana Souza"), Some("Bank 1")));

    // One packet, money from Ana's accounts at banks 1 and 2, all to Bia at bank 3: all or none.
    let leg = |value: &str, source: &str| json!({ "value": value, "keyPix": cpf(42), "idBank": "3", "nameReceiver": "Bia Lima", "bankSourceMoney": source });
    let too_much =
        post(c.bank(1), "/operations", packet(&cpf(41), json!([leg("1", "Bank 1"), leg("50.01", "Bank 2")]))).await;
    assert_eq!(too_much.status, 422, "{}", too_much.text);
    let ok =
        post(c.bank(1), "/operations", packet(&cpf(41), json!([leg("9.50", "Bank 1"), leg("20", "Bank 2")]))).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    // A failed packet's holds are released by its abort, which may still be travelling.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let balances = (
            balance(c.bank(1), &ana1["accountNumber"]).await,
            balance(c.bank(2), &ana2["accountNumber"]).await,
            balance(c.bank(3), &bia3["accountNumber"]).await,
        );
        if balances == ("80.00".into(), "30.00".into(), "40.00".into()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "balances {balances:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The packet's leg drawn on bank 2 (coordinated by bank 1) names its receiver too: the leg
    // travelled with the prepare.
    let line = &data(c.bank(2), &ana2["accountNumber"]).await["transactions"][0];
    assert_eq!((line["receptor"].as_str(), line["bankReceptor"].as_str()), (Some("Bia Lima"), Some("Bank 3")));
    let line = &data(c.bank(1), &ana1["accountNumber"]).await["transactions"][0];
    assert_eq!((line["receptor"].as_str(), line["bankReceptor"].as_str()), (Some("Bia Lima"), Some("Bank 3")));
}
