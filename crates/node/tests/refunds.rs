//! Pix end-to-end ids, receipts and refunds (devoluções) between real nodes in one process.

use bank_testkit::in_process::{self, key_of};
use serde_json::{Value, json};

fn key(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// Ana (bank 1) pays Bia (bank 2) `cents`; returns the transfer.
async fn pay(c: &in_process::Cluster, ana: &str, bia_account: &Value, cents: i64) -> Value {
    let body = json!({ "legs": [{ "to": { "key": key_of(bia_account) }, "amount_cents": cents }] });
    let (status, transfer) =
        c.bank(1).call_with("POST", "/api/v1/transfers", Some(ana), Some(body), Some(&key(1))).await;
    assert_eq!((status, transfer["status"].as_str()), (201, Some("completed")), "{transfer}");
    transfer
}

async fn refund(c: &in_process::Cluster, token: &str, id: &str, cents: i64, idem: u32) -> (u16, Value) {
    let body = json!({ "amount_cents": cents, "reason": "devolução" });
    c.bank(2)
        .call_with("POST", &format!("/api/v1/transfers/{id}/refunds"), Some(token), Some(body), Some(&key(idem)))
        .await
}

/// Every leg has a 32-character end-to-end id starting with `E` and the payer bank's code, and
/// both banks show the same one; either party may open the receipt, nobody else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_banks_show_the_same_end_to_end_id_and_only_the_parties_see_the_receipt() {
    let c = in_process::cluster(2).await;
    let (ana, _) = c.bank(1).customer(1, "Ana Souza").await;
    let (bia, bia_account) = c.bank(2).customer(2, "Bia Lima").await;
    let (caio, _) = c.bank(1).customer(3, "Caio Dias").await;
    c.bank(1).deposit(&ana, 1_000).await;
    let transfer = pay(&c, &ana, &bia_account, 1_000).await;
    let e2e = transfer["legs"][0]["end_to_end_id"].as_str().expect("an end-to-end id").to_string();
    assert_eq!(e2e.len(), 32, "{e2e}");
    assert!(e2e.starts_with("E90000001"), "the payer bank's derived code: {e2e}");
    let id = transfer["id"].as_str().expect("id");
    let path = format!("/api/v1/transfers/{id}/receipt");

    let (status, payer_copy) = c.bank(1).call("GET", &path, Some(&ana), None).await;
    assert_eq!(status, 200, "{payer_copy}");
    let (status, receiver_copy) = c.bank(2).call("GET", &path, Some(&bia), None).await;
    assert_eq!(status, 200, "{receiver_copy}");
    for receipt in [&payer_copy, &receiver_copy] {
        assert_eq!(receipt["end_to_end_id"], e2e.as_str(), "{receipt}");
        assert_eq!(receipt["payer"]["name"], "Ana Souza");
        assert_eq!(receipt["receiver"]["name"], "Bia Lima");
        assert_eq!(receipt["payer"]["institution_code"], "90000001");
        assert_eq!(receipt["receiver"]["institution_code"], "90000002");
        assert_eq!(receipt["amount_cents"], 1_000);
        assert!(receipt["payer"]["document"].as_str().is_some_and(|d| d.starts_with("***.")), "{receipt}");
    }
    let (status, leg) = c.bank(2).call("GET", &format!("/api/v1/transfers/{id}"), Some(&bia), None).await;
    assert_eq!(status, 200, "the receiver sees its side at its own bank: {leg}");
    assert_eq!(leg["legs"][0]["end_to_end_id"], e2e.as_str());
    let (status, _) = c.bank(1).call("GET", &path, Some(&caio), None).await;
    assert_eq!(status, 404, "a stranger may not read the receipt");
}

/// Ten parallel refunds of 60 % each: exactly one succeeds, the others are refused with
/// `refund_exceeds_amount`; then the rest is refunded, and nothing more can be. The payer's
/// statement shows the refund linked to the original.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_parallel_refunds_of_sixty_percent_never_refund_more_than_the_amount() {
    let c = in_process::cluster(2).await;
    let (ana, _) = c.bank(1).customer(1, "Ana Souza").await;
    let (bia, bia_account) = c.bank(2).customer(2, "Bia Lima").await;
    c.bank(1).deposit(&ana, 1_000).await;
    let transfer = pay(&c, &ana, &bia_account, 1_000).await;
    let id = transfer["id"].as_str().expect("id").to_string();

    let attempts = (0..10).map(|i| {
        let (c, bia, id) = (&c, bia.clone(), id.clone());
        async move { refund(c, &bia, &id, 600, 100 + i).await }
    });
    let answers = futures::future::join_all(attempts).await;
    let done: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 201).map(|(_, t)| t).collect();
    assert_eq!(done.len(), 1, "{answers:?}");
    assert_eq!(done[0]["status"], "completed", "{}", done[0]);
    assert!(answers.iter().filter(|(s, _)| *s != 201).all(|(s, p)| *s == 422 && p["code"] == "refund_exceeds_amount"));
    let refund_e2e = done[0]["legs"][0]["end_to_end_id"].as_str().expect("an end-to-end id");
    assert!(refund_e2e.starts_with("D90000002"), "a refund's id starts with D and its payer's code: {refund_e2e}");
    assert_eq!(done[0]["refund_of"]["end_to_end_id"], transfer["legs"][0]["end_to_end_id"]);

    let (status, rest) = refund(&c, &bia, &id, 400, 200).await;
    assert_eq!((status, rest["status"].as_str()), (201, Some("completed")), "{rest}");
    let (status, problem) = refund(&c, &bia, &id, 1, 201).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("not_refundable")), "{problem}");
    assert_eq!(c.bank(1).balance(&ana).await, (1_000, 0, 1_000));
    assert_eq!(c.bank(2).balance(&bia).await, (0, 0, 0));

    let lines = c.bank(1).statement_all(&ana, None).await;
    let refunds: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "refund_in").collect();
    assert_eq!(refunds.len(), 2, "{lines:?}");
    assert!(refunds.iter().all(|l| l["refund_of"] == id.as_str() && l["direction"] == "credit"));
    assert!(refunds.iter().all(|l| l["counterparty"].as_str().is_some_and(|c| c.starts_with("Bia Lima · "))));
    let (_, receipt) = c.bank(1).call("GET", &format!("/api/v1/transfers/{id}/receipt"), Some(&ana), None).await;
    assert_eq!(receipt["refunded_cents"], 1_000, "{receipt}");
}

/// A repeated refund request answers its first outcome; the payer cannot refund what they sent;
/// a refund survives a restart of the receiver's bank, which still refuses to refund past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_are_idempotent_for_the_receiver_only_and_survive_a_restart() {
    let mut c = in_process::cluster(2).await;
    let (ana, _) = c.bank(1).customer(1, "Ana Souza").await;
    let (bia, bia_account) = c.bank(2).customer(2, "Bia Lima").await;
    c.bank(1).deposit(&ana, 1_000).await;
    let transfer = pay(&c, &ana, &bia_account, 1_000).await;
    let id = transfer["id"].as_str().expect("id").to_string();
    let (status, first) = refund(&c, &bia, &id, 700, 7).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = refund(&c, &bia, &id, 700, 7).await;
    assert_eq!((status, &again["id"]), (201, &first["id"]), "a repeat answers the first refund");
    let body = json!({ "amount_cents": 100 });
    let (status, problem) = c
        .bank(1)
        .call_with("POST", &format!("/api/v1/transfers/{id}/refunds"), Some(&ana), Some(body), Some(&key(8)))
        .await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("not_refundable")), "{problem}");

    c.restart(2, |_| {}, |_| {}).await;
    let bia = c.bank(2).sign_in("c2@example.com", bank_testkit::http::PASSWORD).await;
    let (status, problem) = refund(&c, &bia, &id, 301, 9).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("refund_exceeds_amount")), "{problem}");
    let (status, rest) = refund(&c, &bia, &id, 300, 10).await;
    assert_eq!((status, rest["status"].as_str()), (201, Some("completed")), "{rest}");
}

/// Memory keeps received legs for the memory window only (here 1 ms), and a restart loads only
/// those: a refund of an older Pix reads its leg and figures back from storage, so it still
/// refunds, and never past the amount — before and after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pix_older_than_the_memory_window_is_read_back_to_be_refunded() {
    let short = |c: &mut bank_node::config::NodeConfig| c.limits.decision_memory_ms = 1;
    let mut c = in_process::cluster_with(2, short).await;
    let (ana, _) = c.bank(1).customer(1, "Ana Souza").await;
    let (bia, bia_account) = c.bank(2).customer(2, "Bia Lima").await;
    c.bank(1).deposit(&ana, 1_000).await;
    let transfer = pay(&c, &ana, &bia_account, 1_000).await;
    let id = transfer["id"].as_str().expect("id").to_string();
    // Past the window, and past a few of the writer's ticks that forget it.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (status, first) = refund(&c, &bia, &id, 700, 7).await;
    assert_eq!((status, first["status"].as_str()), (201, Some("completed")), "{first}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (status, problem) = refund(&c, &bia, &id, 301, 8).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("refund_exceeds_amount")), "{problem}");

    c.restart(2, |_| {}, short).await;
    let bia = c.bank(2).sign_in("c2@example.com", bank_testkit::http::PASSWORD).await;
    let (status, problem) = refund(&c, &bia, &id, 301, 9).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("refund_exceeds_amount")), "{problem}");
    let (status, rest) = refund(&c, &bia, &id, 300, 10).await;
    assert_eq!((status, rest["status"].as_str()), (201, Some("completed")), "{rest}");
    let (status, problem) = refund(&c, &bia, &id, 1, 11).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("not_refundable")), "{problem}");
}

/// However busy the memory window, memory keeps at most `decision_memory_max` (here 2) of each
/// finished thing — the payer's bank its decisions, the receiver's its settlements and received
/// legs — and a start loads no more: a refund of a leg forgotten by number reads it back, and
/// never refunds past the amount, before and after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_window_keeps_at_most_the_newest_legs_and_decisions_and_reads_the_others_back() {
    let small = |c: &mut bank_node::config::NodeConfig| c.limits.decision_memory_max = 2;
    let mut c = in_process::cluster_with(2, small).await;
    let (ana, _) = c.bank(1).customer(1, "Ana Souza").await;
    let (bia, bia_account) = c.bank(2).customer(2, "Bia Lima").await;
    c.bank(1).deposit(&ana, 5_000).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let body = json!({ "legs": [{ "to": { "key": key_of(&bia_account) }, "amount_cents": 1_000 }] });
        let (status, transfer) =
            c.bank(1).call_with("POST", "/api/v1/transfers", Some(&ana), Some(body), Some(&key(100 + n))).await;
        assert_eq!((status, transfer["status"].as_str()), (201, Some("completed")), "{transfer}");
        ids.push(transfer["id"].as_str().expect("id").to_string());
    }
    let remembered = |kind: &str| format!("bank_remembered{{kind=\"{kind}\"}}");
    // A few of the writer's ticks, which forget beyond the bound.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(c.bank(1).metric(&remembered("decisions")).await, 2.0, "5 decided, the newest 2 kept");
    assert_eq!(c.bank(2).metric(&remembered("settlements")).await, 2.0);
    assert_eq!(c.bank(2).metric(&remembered("pix_legs")).await, 2.0);

    let (status, first) = refund(&c, &bia, &ids[0], 700, 7).await;
    assert_eq!((status, first["status"].as_str()), (201, Some("completed")), "{first}");
    let (status, problem) = refund(&c, &bia, &ids[0], 301, 8).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("refund_exceeds_amount")), "{problem}");

    c.restart(2, |_| {}, small).await;
    let bia = c.bank(2).sign_in("c2@example.com", bank_testkit::http::PASSWORD).await;
    assert!(c.bank(2).metric(&remembered("pix_legs")).await <= 2.0, "a start loads the newest 2 only");
    let (status, problem) = refund(&c, &bia, &ids[0], 301, 9).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("refund_exceeds_amount")), "{problem}");
    let (status, rest) = refund(&c, &bia, &ids[0], 300, 10).await;
    assert_eq!((status, rest["status"].as_str()), (201, Some("completed")), "{rest}");
    let (status, second) = refund(&c, &bia, &ids[1], 1_000, 11).await;
    assert_eq!((status, second["status"].as_str()), (201, Some("completed")), "{second}");
}

/// A leg number that no transfer can have, or that is not a number, is a 400 naming the range,
/// for the receipt and for a refund, and the refused refund changes nothing at either bank.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_out_of_range_is_refused_and_changes_nothing() {
    let c = in_process::cluster(2).await;
    let (ana, _) = c.bank(1).customer(1, "Ana Souza").await;
    let (bia, bia_account) = c.bank(2).customer(2, "Bia Lima").await;
    c.bank(1).deposit(&ana, 1_000).await;
    let transfer = pay(&c, &ana, &bia_account, 1_000).await;
    let id = transfer["id"].as_str().expect("id");
    for leg in ["99", "abc", "-1"] {
        let (status, problem) =
            c.bank(2).call("GET", &format!("/api/v1/transfers/{id}/receipt?leg={leg}"), Some(&bia), None).await;
        assert_eq!((status, problem["code"].as_str()), (400, Some("invalid_input")), "leg {leg}: {problem}");
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("leg is a number from 0 to")), "{problem}");
    }
    let (ana_before, bia_before) = (c.bank(1).snapshot(&ana).await, c.bank(2).snapshot(&bia).await);
    let body = json!({ "leg": 99, "amount_cents": 100 });
    let (status, problem) = c
        .bank(2)
        .call_with("POST", &format!("/api/v1/transfers/{id}/refunds"), Some(&bia), Some(body), Some(&key(7)))
        .await;
    assert_eq!((status, problem["code"].as_str()), (400, Some("invalid_input")), "{problem}");
    assert_eq!(c.bank(1).snapshot(&ana).await, ana_before);
    assert_eq!(c.bank(2).snapshot(&bia).await, bia_before);
    let (status, refund) = refund(&c, &bia, id, 100, 8).await;
    assert_eq!((status, refund["status"].as_str()), (201, Some("completed")), "{refund}");
}
