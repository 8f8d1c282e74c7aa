//! Refunds (devoluções) between real `bank node` processes: ten parallel refunds of 60 % of one
//! Pix never refund more than its amount, and a refund whose coordinator (the receiver's bank) is
//! killed after deciding commit completes after its restart and is still counted, so nothing can
//! be refunded past the amount. `bank audit` then checks every invariant, refunds included.

use std::time::Duration;

use bank_testkit::processes::{Account, Book, Cluster, leg, status};
use serde_json::{Value, json};

/// The `bank` binary under test.
const BANK: &str = env!("CARGO_BIN_EXE_bank");

async fn refund(c: &Cluster, receiver: &Account, id: &str, cents: i64, key: &str) -> reqwest::Result<(u16, Value)> {
    let body = json!({ "amount_cents": cents, "reason": "devolução" });
    let path = format!("/api/v1/transfers/{id}/refunds");
    c.try_call(receiver.bank, "POST", &path, Some(&receiver.token), Some(key), Some(&body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_refunds_and_a_refund_across_a_crash_never_refund_more_than_the_pix() {
    let c = Cluster::start(BANK, 2).await;
    let ana = c.customer(1, "Ana Souza", &[1]).await;
    let bia = c.customer(2, "Bia Lima", &[2]).await;
    let mut book = Book::default();
    book.track_all(&ana);
    book.track_all(&bia);
    c.deposit(&mut book, ana.at(1), 1_000).await;
    let pix = c.transfer(ana.at(1), &[leg(ana.at(1), bia.at(2), 1_000)]).await;
    assert_eq!(status(&pix), "completed", "{pix}");
    book.apply(&pix);
    let id = pix["id"].as_str().expect("id").to_string();

    // Ten parallel refunds of 60 %: one fits.
    let keys: Vec<String> = (0..10).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let answers = futures::future::join_all(keys.iter().map(|key| refund(&c, bia.at(2), &id, 600, key))).await;
    let mut done = Vec::new();
    for answer in answers {
        let (code, body) = answer.expect("a refund is answered");
        match code {
            201 => done.push(c.finish(bia.at(2), body).await),
            422 => assert_eq!(body["code"], "refund_exceeds_amount", "{body}"),
            other => panic!("a refund answered {other}: {body}"),
        }
    }
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(status(&done[0]), "completed", "{}", done[0]);
    book.apply(&done[0]);

    // The receiver's bank dies right after deciding the next refund's commit; after its restart
    // the refund completes, and a repeat of the request answers that same refund.
    c.restart(2, Some("coordinator_decided_commit")).await;
    let key = uuid::Uuid::new_v4().to_string();
    let answer = refund(&c, bia.at(2), &id, 400, &key).await;
    assert!(!matches!(&answer, Ok((_, t)) if status(t) == "completed"), "no completion before delivery: {answer:?}");
    c.wait_crash(2, Duration::from_secs(10)).await;
    c.spawn(2, None);
    c.wait_healthy(2).await;
    let (code, replay) = refund(&c, bia.at(2), &id, 400, &key).await.expect("replay");
    assert_eq!(code, 201, "{replay}");
    let after_crash = c.finish(bia.at(2), replay).await;
    assert_eq!(status(&after_crash), "completed", "{after_crash}");
    book.apply(&after_crash);

    let (code, problem) = refund(&c, bia.at(2), &id, 1, &uuid::Uuid::new_v4().to_string()).await.expect("answer");
    assert_eq!((code, problem["code"].as_str()), (409, Some("not_refundable")), "{problem}");
    let lines = c.statement(ana.at(1)).await;
    let refunds: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "refund_in").collect();
    assert_eq!(refunds.len(), 2, "the payer's statement shows both refunds: {lines:?}");
    assert!(refunds.iter().all(|l| l["refund_of"] == id.as_str()));
    c.assert_invariants(&book).await;
}
