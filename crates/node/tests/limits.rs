//! Bounded resources: past its limits the node sheds load with 503 `overloaded` instead of
//! queueing without bound, and a timed-out request changes nothing.

use bank_testkit::in_process;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// With one request slot, a request that holds it (its body still arriving) makes the next one
/// shed at once with a 503 `overloaded` problem; once the slot frees, requests are served again.
#[tokio::test]
async fn a_full_node_sheds_load_with_503_overloaded() {
    let node = in_process::spawn_node_with(|c| c.limits.in_flight_max = 1).await;
    let (token, _) = node.customer(1, "Ana Souza").await;

    // Hold the only slot: headers promise 100 bytes of body, only 10 arrive.
    let mut slow = tokio::net::TcpStream::connect(node.addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/deposits HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"amount_"
    );
    slow.write_all(head.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (status, body) = node.call("GET", "/api/v1/me", Some(&token), None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "overloaded");

    drop(slow);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = node.call("GET", "/api/v1/me", Some(&token), None).await;
    assert_eq!(status, 200, "the slot frees when the slow client goes");
    assert_eq!(node.balance(&token).await, (0, 0, 0), "the abandoned deposit moved nothing");
}

/// A request that exceeds the request timeout gets a 503 problem and moves nothing.
#[tokio::test]
async fn a_request_past_its_timeout_is_answered_503_and_changes_nothing() {
    let node = in_process::spawn_node_with(|c| c.limits.request_timeout_ms = 300).await;
    let (token, _) = node.customer(1, "Ana Souza").await;
    let mut slow = tokio::net::TcpStream::connect(node.addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/deposits HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: 45\r\n\r\n{{\"amount_cents\": 5"
    );
    slow.write_all(head.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 4096];
        let n = slow.read(&mut buf).await.expect("read");
        response.extend_from_slice(&buf[..n]);
    })
    .await;
    assert!(read.is_ok(), "the node answered before the client finished");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("overloaded"), "{text}");
    assert_eq!(node.balance(&token).await, (0, 0, 0));
}
