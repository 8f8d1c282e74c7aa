//! A bank whose wall clock disagrees with its peers' (issue "Faults for real": measured before,
//! transfers towards it failed `expired` and transfers from it hung `pending` until the deadline,
//! with nothing saying why). Real processes; bank 3 runs with its wall clock 3 s ahead
//! (`--clock-offset-ms`, its monotonic clock untouched, as on a machine whose clock is wrong).
//! Both sides see it from each other's answers; cross-bank work between them is refused at once
//! with the reason; the status, the metrics and the log say it; work between the other banks goes
//! on; and once the clock is right again, transfers with bank 3 complete.

use std::time::{Duration, Instant};

use bank_testkit::processes::{Account, Book, Cluster, Request, leg, status};
use serde_json::Value;

const BANK: &str = env!("CARGO_BIN_EXE_bank");

/// Bank `observer`'s view of bank `peer`'s clock, from its status.
async fn clock_of(cluster: &Cluster, observer: u32, peer: u32) -> Value {
    let (code, status) = cluster.call(observer, "GET", "/api/v1/consortium/status", None, None).await;
    assert_eq!(code, 200, "{status}");
    let members = status["members"].as_array().expect("members").clone();
    members.into_iter().find(|m| m["id"] == peer).map(|m| m["clock"].clone()).unwrap_or(Value::Null)
}

async fn wait_clock(cluster: &Cluster, observer: u32, peer: u32, disagrees: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let clock = clock_of(cluster, observer, peer).await;
        if clock["disagrees"] == disagrees {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "bank {observer} never saw bank {peer}'s clock disagree={disagrees}: {clock}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_whose_clock_disagrees_is_named_and_cross_bank_work_with_it_fails_at_once() {
    let cluster = Cluster::start(BANK, 3).await;
    let ana = cluster.customer(101, "Ana Souza", &[1]).await;
    let bia = cluster.customer(202, "Bia Lima", &[3]).await;
    let carla = cluster.customer(303, "Carla Dias", &[2]).await;
    let mut book = Book::default();
    for account in [ana.at(1), bia.at(3), carla.at(2)] {
        book.track(account);
    }
    cluster.deposit(&mut book, ana.at(1), 10_000).await;
    cluster.deposit(&mut book, bia.at(3), 10_000).await;

    // A Pix to bank 3 while the clocks agree; its repeat is asked again below.
    let before_skew = Request::new(ana.at(1), vec![leg(ana.at(1), bia.at(3), 300)]);
    let (code, first) = cluster.send(&before_skew).await.expect("an answer");
    assert_eq!(code, 201, "{first}");
    let first = cluster.finish_request(&before_skew, first).await;
    assert_eq!(status(&first), "completed", "{first}");
    book.apply(&first);

    // Bank 3 restarts with its wall clock 3 s ahead.
    cluster.kill(3);
    cluster.spawn_with(3, None, &["--clock-offset-ms", "3000"]);
    cluster.wait_healthy(3).await;
    wait_clock(&cluster, 1, 3, true).await;
    wait_clock(&cluster, 3, 1, true).await;
    let seen = clock_of(&cluster, 1, 3).await;
    let offset = seen["offset_ms"].as_i64().expect("offset");
    assert!((2_500..=3_500).contains(&offset), "bank 1 reads bank 3 about 3 s ahead: {seen}");

    // Both ways, the transfer is refused at once, saying why, and nothing moves.
    for (from, to) in [(ana.at(1), bia.at(3)), (bia.at(3), ana.at(1))] {
        let started = Instant::now();
        let request = Request::new(from, vec![leg(from, to, 500)]);
        let (code, answer) = cluster.send(&request).await.expect("an answer");
        assert_eq!(code, 503, "refused, not pending: {answer}");
        assert_eq!(answer["code"], "bank_unavailable", "{answer}");
        assert!(answer["detail"].as_str().unwrap_or_default().contains("clock"), "says why: {answer}");
        assert!(started.elapsed() < Duration::from_secs(2), "at once, not at the deadline: {:?}", started.elapsed());
    }
    // A repeat of the Pix made before is answered with its outcome, not refused as new work.
    let (code, again) = cluster.send(&before_skew).await.expect("an answer");
    assert_eq!((code, again["id"].clone()), (201, first["id"].clone()), "the repeat replays: {again}");
    let metrics =
        reqwest::get(format!("{}/metrics", cluster.url(1))).await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("bank_peer_clock_disagrees{peer=\"3\"} 1"), "{metrics}");
    assert!(!cluster.log_lines(1, "bank 3's clock is").is_empty(), "bank 1's log names bank 3's clock");

    // Work that does not touch bank 3 goes on.
    complete(
        &cluster,
        &mut book,
        ana.at(1),
        leg(ana.at(1), carla.at(2), 100),
        "banks 1 and 2 while bank 3's clock is wrong",
    )
    .await;

    // The clock is put right: bank 3 and its peers agree again, and transfers with it complete.
    cluster.kill(3);
    cluster.spawn(3, None);
    cluster.wait_healthy(3).await;
    wait_clock(&cluster, 1, 3, false).await;
    complete(
        &cluster,
        &mut book,
        ana.at(1),
        leg(ana.at(1), bia.at(3), 700),
        "bank 1 to bank 3 once its clock is right",
    )
    .await;
    cluster.assert_invariants(&book).await;
}

/// Sends `leg` from `session` until it completes (a refusal or a failure moves nothing, and the
/// ring may need a moment after bank 3's restarts); books it.
async fn complete(cluster: &Cluster, book: &mut Book, session: &Account, leg: Value, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = Request::new(session, vec![leg.clone()]);
        let last = match cluster.send(&request).await {
            Ok((201, answer)) => cluster.finish_request(&request, answer).await,
            Ok((_, answer)) => answer,
            Err(e) => Value::String(e.to_string()),
        };
        if status(&last) == "completed" {
            book.apply(&last);
            return;
        }
        assert!(Instant::now() < deadline, "{what}: no transfer completed; the last answer: {last}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
