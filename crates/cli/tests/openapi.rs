//! `bank openapi` prints exactly the document a node serves at `/api/v1/openapi.json`.

use std::process::Command;

use bank_testkit::in_process;

#[tokio::test]
async fn bank_openapi_prints_the_served_document() {
    let output = Command::new(env!("CARGO_BIN_EXE_bank")).arg("openapi").output().expect("run bank openapi");
    assert!(output.status.success(), "bank openapi: {}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).expect("UTF-8");

    let node = in_process::spawn_node().await;
    let served = node.http.get(format!("{}/api/v1/openapi.json", node.url)).send().await.expect("get");
    assert_eq!(served.status(), 200);
    let served = served.text().await.expect("body");
    assert_eq!(printed, served, "the printed and the served documents differ");
    let doc: serde_json::Value = serde_json::from_str(&printed).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
}
