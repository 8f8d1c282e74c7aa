//! Cross-bank transfers by two-phase commit between real nodes on 127.0.0.1 (in one process).

use bank_testkit::in_process::{self, number_of};
use serde_json::json;

/// A packet debiting the customer's accounts at banks 1 and 2 credits bank 3 on every leg:
/// every balance moves exactly, nothing stays held, and each bank's statement shows its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_from_two_banks_to_a_third_commits_every_leg() {
    let c = in_process::cluster(3).await;
    let (ana1, _) = c.bank(1).customer(1, "Ana Souza").await;
    let (ana2, acc2) = c.bank(2).customer(1, "Ana Souza").await;
    let (bia3, acc3) = c.bank(3).customer(2, "Bia Lima").await;
    c.bank(1).deposit(&ana1, 10_000).await;
    c.bank(2).deposit(&ana2, 5_000).await;

    let body = json!({ "legs": [
        { "to": { "bank_id": 3, "number": number_of(&acc3) }, "amount_cents": 1_000 },
        { "from": { "bank_id": 2, "number": number_of(&acc2) }, "to": { "bank_id": 3, "number": number_of(&acc3) }, "amount_cents": 2_000 },
    ]});
    let (status, transfer) = c.bank(1).call("POST", "/api/v1/transfers", Some(&ana1), Some(body)).await;
    assert_eq!(status, 201, "{transfer}");
    assert_eq!(transfer["status"], "completed", "{transfer}");
    assert_eq!(c.bank(1).balance(&ana1).await, (9_000, 0, 9_000));
    assert_eq!(c.bank(2).balance(&ana2).await, (3_000, 0, 3_000));
    assert_eq!(c.bank(3).balance(&bia3).await, (3_000, 0, 3_000));

    let (_, statement) = c.bank(3).call("GET", "/api/v1/statement", Some(&bia3), None).await;
    let lines = statement["entries"].as_array().expect("entries");
    assert_eq!(lines.len(), 2, "{statement}");
    assert!(lines.iter().all(|l| l["kind"] == "transfer_in" && l["transfer_id"] == transfer["id"]));

    let id = transfer["id"].as_str().expect("id");
    let (status, again) = c.bank(1).call("GET", &format!("/api/v1/transfers/{id}"), Some(&ana1), None).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("completed")));
}

/// One leg short of funds: the whole packet fails with `insufficient_funds`, nothing moves and
/// every hold is released at every bank.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_with_one_leg_short_of_funds_moves_nothing() {
    let c = in_process::cluster(3).await;
    let (ana1, _) = c.bank(1).customer(1, "Ana Souza").await;
    let (ana2, acc2) = c.bank(2).customer(1, "Ana Souza").await;
    let (bia3, acc3) = c.bank(3).customer(2, "Bia Lima").await;
    c.bank(1).deposit(&ana1, 10_000).await;
    c.bank(2).deposit(&ana2, 500).await;

    let body = json!({ "legs": [
        { "to": { "bank_id": 3, "number": number_of(&acc3) }, "amount_cents": 1_000 },
        { "from": { "bank_id": 2, "number": number_of(&acc2) }, "to": { "bank_id": 3, "number": number_of(&acc3) }, "amount_cents": 2_000 },
    ]});
    let (status, transfer) = c.bank(1).call("POST", "/api/v1/transfers", Some(&ana1), Some(body)).await;
    assert_eq!(status, 201, "{transfer}");
    assert_eq!(transfer["status"], "failed", "{transfer}");
    assert_eq!(transfer["failure"]["code"], "insufficient_funds", "{transfer}");
    // Holds are released by the abort, which may still be on its way to the other banks.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let balances = (c.bank(1).balance(&ana1).await, c.bank(2).balance(&ana2).await, c.bank(3).balance(&bia3).await);
        if balances == ((10_000, 0, 10_000), (500, 0, 500), (0, 0, 0)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "holds not released: {balances:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A session may not spend another customer's account at another bank: the participant refuses
/// (the coordinator's assertion names a document that does not hold it) and nothing moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spending_someone_elses_account_at_another_bank_is_refused() {
    let c = in_process::cluster(2).await;
    let (ana1, acc1) = c.bank(1).customer(1, "Ana Souza").await;
    let (bia2, acc2) = c.bank(2).customer(2, "Bia Lima").await;
    c.bank(2).deposit(&bia2, 5_000).await;
    let body = json!({ "legs": [
        { "from": { "bank_id": 2, "number": number_of(&acc2) }, "to": { "bank_id": 1, "number": number_of(&acc1) }, "amount_cents": 100 },
    ]});
    let (status, transfer) = c.bank(1).call("POST", "/api/v1/transfers", Some(&ana1), Some(body)).await;
    assert_eq!(status, 201, "{transfer}");
    assert_eq!(transfer["status"], "failed");
    assert_eq!(transfer["failure"]["code"], "forbidden", "{transfer}");
    assert_eq!(c.bank(2).balance(&bia2).await, (5_000, 0, 5_000));
    assert_eq!(c.bank(1).balance(&ana1).await, (0, 0, 0));
}

/// A packet touching a bank that is down fails fast with `bank_unavailable` and moves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_touching_a_down_bank_fails_fast() {
    let mut c = in_process::cluster(3).await;
    let (ana1, _) = c.bank(1).customer(1, "Ana Souza").await;
    let (_, acc3) = c.bank(3).customer(2, "Bia Lima").await;
    c.bank(1).deposit(&ana1, 10_000).await;
    let down = c.nodes.pop().expect("bank 3");
    let _dir = down.stop().await;
    let started = std::time::Instant::now();
    let body = json!({ "legs": [{ "to": { "bank_id": 3, "number": number_of(&acc3) }, "amount_cents": 1_000 }] });
    let (status, transfer) = c.bank(1).call("POST", "/api/v1/transfers", Some(&ana1), Some(body)).await;
    assert_eq!(status, 201, "{transfer}");
    assert_eq!(transfer["status"], "failed", "{transfer}");
    assert_eq!(transfer["failure"]["code"], "bank_unavailable", "{transfer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "fails fast, not at a timeout");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while c.bank(1).balance(&ana1).await != (10_000, 0, 10_000) {
        assert!(std::time::Instant::now() < deadline, "the local hold is released");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The automatic CPF key of an account at bank 1 is in every bank's directory: bank 2 looks it
/// up locally (with bank 1's name) and a Pix to it from bank 2 lands at bank 1. The same CPF
/// opening an account at bank 2 gets no second key, with a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_registered_consortium_wide_and_pix_by_key_crosses_banks() {
    let c = in_process::cluster(3).await;
    let (ana1, acc1) = c.bank(1).customer(1, "Ana Souza").await;
    let ana_key = acc1["pix_keys"][0]["key"].as_str().expect("cpf key").to_string();
    assert!(acc1.get("warnings").is_none(), "{acc1}");
    let (bia2, _) = c.bank(2).customer(2, "Bia Lima").await;
    c.bank(2).deposit(&bia2, 5_000).await;

    // Looked up at the owner's bank and, from its own directory, at another bank.
    for (bank, token) in [(1, &ana1), (2, &bia2)] {
        let (status, found) = c.bank(bank).call("GET", &format!("/api/v1/pix-keys/{ana_key}"), Some(token), None).await;
        assert_eq!(status, 200, "bank {bank}: {found}");
        assert_eq!(found["bank_id"], 1);
        assert_eq!(found["bank_name"], "Bank 1");
        assert_eq!(found["holder_name"], "Ana Souza");
        assert!(found["masked_document"].as_str().is_some_and(|d| d.starts_with("***.")), "{found}");
    }

    let body = json!({ "legs": [{ "to": { "key": ana_key }, "amount_cents": 1_234 }] });
    let (status, transfer) = c.bank(2).call("POST", "/api/v1/transfers", Some(&bia2), Some(body)).await;
    assert_eq!(status, 201, "{transfer}");
    assert_eq!(transfer["status"], "completed", "{transfer}");
    assert_eq!(transfer["legs"][0]["to"]["bank_id"], 1);
    assert_eq!(c.bank(1).balance(&ana1).await, (1_234, 0, 1_234));
    assert_eq!(c.bank(2).balance(&bia2).await, (3_766, 0, 3_766));

    // The same CPF at bank 2: its key is taken consortium-wide.
    let (status, second) = c
        .bank(2)
        .call(
            "POST",
            "/api/v1/accounts",
            None,
            Some(json!({ "kind": "individual", "holders": [{ "name": "Ana Souza", "document": ana_key }],
                         "email": "ana.two@example.com", "phone": "+5575999990000", "password": "a long test passphrase" })),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["pix_keys"].as_array().map(Vec::len), Some(0), "{second}");
    assert!(second["warnings"][0].as_str().is_some_and(|w| w.contains("CPF")), "{second}");
}

/// Two banks registering the same e-mail key at the same time: at most one wins, the other gets
/// 409 (or 503 when both reserved it first), and every bank's directory agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_banks_registering_one_key_at_once_never_both_win() {
    let cluster = in_process::cluster(3).await;
    let c = &cluster;
    // Same e-mail address at two banks (e-mail is unique per bank only).
    let open = |bank: u32, n: u64| async move {
        let cpf = bank_core::document::Cpf::from_base(n);
        let body = json!({ "kind": "individual", "holders": [{ "name": format!("Cliente {n}"), "document": cpf.as_str() }],
                           "email": "shared@example.com", "phone": "+5575999990000", "password": "a long test passphrase" });
        let (status, acc) = c.bank(bank).call("POST", "/api/v1/accounts", None, Some(body)).await;
        assert_eq!(status, 201, "{acc}");
        c.bank(bank).sign_in("shared@example.com", "a long test passphrase").await
    };
    let t1 = open(1, 11).await;
    let t2 = open(2, 12).await;
    let register = |bank: u32, token: String| async move {
        c.bank(bank).call("POST", "/api/v1/pix-keys", Some(&token), Some(json!({ "type": "email" }))).await
    };
    let ((s1, b1), (s2, b2)) = tokio::join!(register(1, t1.clone()), register(2, t2.clone()));
    let wins = [s1, s2].iter().filter(|&&s| s == 201).count();
    assert!(wins <= 1, "both won: {b1} {b2}");
    for (s, b) in [(s1, &b1), (s2, &b2)] {
        assert!(s == 201 || s == 409 || s == 503, "{s}: {b}");
    }
    // Every bank's directory says the same about the key.
    let mut owners = Vec::new();
    for (bank, token) in [(1, &t1), (2, &t2)] {
        let (status, found) = c.bank(bank).call("GET", "/api/v1/pix-keys/shared@example.com", Some(token), None).await;
        owners.push((status, found["bank_id"].clone()));
    }
    assert_eq!(owners[0], owners[1], "directories disagree: {owners:?}");
    if wins == 1 {
        let winner = if s1 == 201 { 1 } else { 2 };
        assert_eq!(owners[0], (200, json!(winner)));
    } else {
        assert_eq!(owners[0].0, 404);
    }
}

/// GET /api/v1/consortium/accounts lists the customer's accounts at every bank (by document),
/// and names the banks it could not reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_accounts_across_the_consortium_name_unreachable_banks() {
    let mut c = in_process::cluster(3).await;
    let (ana1, _) = c.bank(1).customer(1, "Ana Souza").await;
    let (ana2, _) = c.bank(2).customer(1, "Ana Souza").await;
    c.bank(2).deposit(&ana2, 700).await;
    let _ = c.bank(3).customer(2, "Bia Lima").await;
    let (status, mine) = c.bank(1).call("GET", "/api/v1/consortium/accounts", Some(&ana1), None).await;
    assert_eq!(status, 200, "{mine}");
    let banks: Vec<i64> =
        mine["accounts"].as_array().expect("accounts").iter().filter_map(|a| a["bank_id"].as_i64()).collect();
    assert_eq!(banks, vec![1, 2], "{mine}");
    assert_eq!(mine["accounts"][1]["balance"]["available_cents"], 700);
    assert_eq!(mine["unreachable_banks"], json!([]));

    let down = c.nodes.pop().expect("bank 3");
    let _dir = down.stop().await;
    let (status, mine) = c.bank(1).call("GET", "/api/v1/consortium/accounts", Some(&ana1), None).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["unreachable_banks"], json!([3]), "{mine}");
    assert_eq!(mine["accounts"].as_array().map(Vec::len), Some(2));
}

/// The status page lists every member: up once it answered, suspected when it stopped answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_lists_members_and_suspects_a_silent_one() {
    let mut c = in_process::cluster(3).await;
    let (ana1, _) = c.bank(1).customer(1, "Ana Souza").await;
    let (_, acc2) = c.bank(2).customer(2, "Bia Lima").await;
    c.bank(1).deposit(&ana1, 1_000).await;
    let pay = json!({ "legs": [{ "to": { "bank_id": 2, "number": number_of(&acc2) }, "amount_cents": 10 }] });
    let (status, _) = c.bank(1).call("POST", "/api/v1/transfers", Some(&ana1), Some(pay)).await;
    assert_eq!(status, 201);
    let (status, view) = c.bank(1).call("GET", "/api/v1/consortium/status", None, None).await;
    assert_eq!(status, 200, "{view}");
    let states: Vec<(i64, String)> = view["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["id"].as_i64().unwrap_or(0), m["state"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(states[0], (1, "up".to_string()));
    assert_eq!(states[1], (2, "up".to_string()), "{view}");
    assert_eq!(view["in_doubt"], 0);

    let down = c.nodes.remove(1);
    let _dir = down.stop().await;
    let pay = json!({ "legs": [{ "to": { "bank_id": 2, "number": number_of(&acc2) }, "amount_cents": 10 }] });
    let (_, failed) = c.bank(1).call("POST", "/api/v1/transfers", Some(&ana1), Some(pay)).await;
    assert_eq!(failed["failure"]["code"], "bank_unavailable", "{failed}");
    let (_, view) = c.bank(1).call("GET", "/api/v1/consortium/status", None, None).await;
    assert_eq!(view["members"][1]["state"], "suspected", "{view}");
}

/// Memory keeps only recent decisions (`decision_memory_ms`; 0 here: forgotten at every tick).
/// Late copies of protocol messages about forgotten transactions are answered from storage as if
/// nothing had been forgotten: a repeated commit is acknowledged and moves nothing, a repeated
/// prepare places nothing, and a late query gets the real decision, not a presumed abort.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgotten_decisions_are_read_back_so_late_messages_get_the_same_answers() {
    let c = in_process::cluster_with(2, |n| n.limits.decision_memory_ms = 0).await;
    let (ana, _) = c.bank(1).customer(1, "Ana Souza").await;
    let (bia, acc_bia) = c.bank(2).customer(2, "Bia Lima").await;
    c.bank(1).deposit(&ana, 5_000).await;
    let to_bia = |cents: i64| json!({ "legs": [{ "to": { "bank_id": 2, "number": number_of(&acc_bia) }, "amount_cents": cents }] });
    let (_, done) = c.bank(1).call("POST", "/api/v1/transfers", Some(&ana), Some(to_bia(1_000))).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (_, failed) = c.bank(1).call("POST", "/api/v1/transfers", Some(&ana), Some(to_bia(9_000))).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (committed, aborted) = (done["id"].as_str().expect("id"), failed["id"].as_str().expect("id"));

    let messages = "/interbank/v1/messages";
    let (code, answer) =
        c.signed_post(1, 2, messages, &json!({ "messages": [{ "type": "commit", "tx": committed }] })).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["messages"][0], json!({ "type": "ack", "tx": committed, "from": 2 }), "{answer}");

    let expires_at = bank_node::interbank::sign::unix_now_ms() + 60_000;
    let prepare = json!({ "messages": [{
        "type": "prepare", "tx": committed, "coordinator": 1, "expires_at": expires_at,
        "debits": [], "credits": [[number_of(&acc_bia), 1_000]],
    }]});
    let (code, answer) = c.signed_post(1, 2, messages, &prepare).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["messages"][0]["vote"]["No"]["code"], "already_decided", "{answer}");
    assert_eq!(c.bank(2).balance(&bia).await, (1_000, 0, 1_000), "nothing posted or held twice");

    for (tx, decision) in [(committed, "committed"), (aborted, "aborted")] {
        let query = json!({ "messages": [{ "type": "query_outcome", "tx": tx, "from": 2 }] });
        let (code, answer) = c.signed_post(2, 1, messages, &query).await;
        assert_eq!(code, 200, "{answer}");
        assert_eq!(answer["messages"][0], json!({ "type": "outcome", "tx": tx, "decision": decision }), "{answer}");
    }
    assert_eq!(c.bank(1).balance(&ana).await, (4_000, 0, 4_000));
}
