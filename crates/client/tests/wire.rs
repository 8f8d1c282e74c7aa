//! What the client puts on the wire and how it reads answers, against a one-shot fake server
//! (the real node's API tests live with the node).

use bank_client::{Client, DepositMethod, Destination, Error, NewTransfer, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Serves exactly one request with `status` and `body`, and hands back the raw request text.
async fn one_shot(
    status: &'static str,
    content_type: &'static str,
    body: &'static str,
) -> (String, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.expect("read");
            assert!(n > 0, "client closed before sending a whole request");
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).into_owned();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let content_length = text[..head_end]
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .map_or(0, |v| v.parse::<usize>().expect("length"));
                if request.len() >= head_end + 4 + content_length {
                    break;
                }
            }
        }
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await.expect("write");
        socket.shutdown().await.ok();
        String::from_utf8_lossy(&request).into_owned()
    });
    (base, server)
}

const ENTRY: &str = r#"{"id":12,"transfer_id":null,"kind":"deposit","direction":"credit","amount_cents":100,
"status":"completed","method":"cash","counterparty":null,"created_at":"2025-01-01T00:00:00Z"}"#;

/// A deposit sends the bearer token, the idempotency key chosen by the caller and the JSON body.
#[tokio::test]
async fn deposit_sends_token_key_and_body() {
    let (base, server) = one_shot("201 Created", "application/json", ENTRY).await;
    let key = uuid::Uuid::new_v4();
    let entry = Client::new(&base)
        .expect("client")
        .with_token("tok123")
        .deposit_with_key(100, DepositMethod::Cash, key)
        .await
        .expect("deposit");
    assert_eq!(entry.id, 12);
    let request = server.await.expect("server").to_ascii_lowercase();
    assert!(request.starts_with("post /api/v1/deposits http/1.1\r\n"), "{request}");
    assert!(request.contains("authorization: bearer tok123\r\n"), "{request}");
    assert!(request.contains(&format!("idempotency-key: {key}\r\n")), "{request}");
    assert!(request.ends_with(r#"{"amount_cents":100,"method":"cash"}"#), "{request}");
}

/// A problem document becomes `Error::Api` with its code and detail.
#[tokio::test]
async fn problem_becomes_api_error() {
    let body = r#"{"type":"about:blank","title":"Unprocessable","status":422,"detail":"only R$ 0,05 available","code":"insufficient_funds"}"#;
    let (base, server) = one_shot("422 Unprocessable Entity", "application/problem+json", body).await;
    let err = Client::new(&base).expect("client").with_token("t").withdraw(500).await.expect_err("rejected");
    match &err {
        Error::Api { status, code, detail } => {
            assert_eq!(
                (*status, code.as_str(), detail.as_str()),
                (422, "insufficient_funds", "only R$ 0,05 available")
            );
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    let request = server.await.expect("server").to_ascii_lowercase();
    assert!(request.contains("idempotency-key: "), "a withdrawal always carries a key: {request}");
}

/// A transfer answered 201 with status `failed` is a success of the call, not an error.
#[tokio::test]
async fn failed_transfer_is_an_ok_answer() {
    let body = r#"{"id":"0190b1a4-7c2e-7d5e-9f00-000000000001","status":"failed","legs":[],
        "failure":{"code":"insufficient_funds","detail":"no money"},"decision":"abort","description":null,
        "created_at":"2025-01-01T00:00:00Z"}"#;
    let (base, server) = one_shot("201 Created", "application/json", body).await;
    let request = NewTransfer::single(Destination::Key { key: "+5575999991234".into() }, 1, None);
    let transfer = Client::new(&base).expect("client").with_token("t").transfer(&request).await.expect("transfer");
    assert_eq!(transfer.status, Status::Failed);
    let request = server.await.expect("server");
    assert!(request.ends_with(r#"{"legs":[{"to":{"key":"+5575999991234"},"amount_cents":1}]}"#), "{request}");
}

/// Statement paging puts limit and cursor in the query string, encoded.
#[tokio::test]
async fn statement_query_carries_limit_and_cursor() {
    let (base, server) = one_shot("200 OK", "application/json", r#"{"entries":[],"next":null}"#).await;
    let page =
        Client::new(&base).expect("client").with_token("t").statement(Some(20), Some("a b&c")).await.expect("page");
    assert!(page.entries.is_empty());
    let request = server.await.expect("server");
    assert!(request.starts_with("GET /api/v1/statement?limit=20&before=a+b%26c HTTP/1.1"), "{request}");
}

/// Logout expects 204 and an empty body.
#[tokio::test]
async fn logout_accepts_no_content() {
    let (base, server) = one_shot("204 No Content", "text/plain", "").await;
    Client::new(&base).expect("client").with_token("t").logout().await.expect("logout");
    assert!(server.await.expect("server").starts_with("DELETE /api/v1/sessions/current HTTP/1.1"));
}

/// A success answer that is not the promised JSON is a decode error.
#[tokio::test]
async fn garbage_success_is_a_decode_error() {
    let (base, server) = one_shot("200 OK", "application/json", "<html>hello</html>").await;
    let err = Client::new(&base).expect("client").bank().await.expect_err("garbage");
    assert_eq!(err.code(), "decode");
    server.await.expect("server");
}
