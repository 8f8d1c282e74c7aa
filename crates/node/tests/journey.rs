//! The whole customer journey against a node on port 0.

use bank_testkit::in_process;
use serde_json::json;

/// Open two accounts, sign in, deposit, send Pix by CPF key, withdraw, read the statement.
#[tokio::test]
async fn customer_journey_moves_exact_money() {
    let node = in_process::spawn_node().await;
    let (ana, ana_acc) = node.customer(1, "Ana Souza").await;
    let (bia, bia_acc) = node.customer(2, "Bia Lima").await;
    assert_eq!(ana_acc["pix_keys"][0]["type"], "cpf");
    node.deposit(&ana, 10_000).await;

    let bia_key = bia_acc["pix_keys"][0]["key"].as_str().expect("key").to_string();
    let (status, lookup) = node.call("GET", &format!("/api/v1/pix-keys/{bia_key}"), Some(&ana), None).await;
    assert_eq!(status, 200, "{lookup}");
    assert_eq!(lookup["holder_name"], "Bia Lima");
    assert!(lookup["masked_document"].as_str().expect("masked").starts_with("***."));

    let (status, transfer) = node
        .call(
            "POST",
            "/api/v1/transfers",
            Some(&ana),
            Some(json!({ "legs": [{ "to": { "key": bia_key }, "amount_cents": 2_500 }] })),
        )
        .await;
    assert_eq!(status, 201, "{transfer}");
    assert_eq!(transfer["status"], "completed");
    assert_eq!(node.balance(&ana).await, (7_500, 0, 7_500));
    assert_eq!(node.balance(&bia).await, (2_500, 0, 2_500));

    let (status, entry) =
        node.call("POST", "/api/v1/withdrawals", Some(&bia), Some(json!({ "amount_cents": 500 }))).await;
    assert_eq!(status, 201, "{entry}");
    assert_eq!(entry["kind"], "withdrawal");
    assert_eq!(node.balance(&bia).await, (2_000, 0, 2_000));

    let (status, statement) = node.call("GET", "/api/v1/statement", Some(&ana), None).await;
    assert_eq!(status, 200);
    let entries = statement["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["kind"], "transfer_out");
    assert_eq!(entries[1]["kind"], "deposit");

    let id = transfer["id"].as_str().expect("id");
    let (status, again) = node.call("GET", &format!("/api/v1/transfers/{id}"), Some(&bia), None).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["legs"][0]["amount_cents"], 2_500);
    let _ = bia_acc;
}
