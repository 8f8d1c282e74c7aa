//! Sessions are bounded per account: a new sign-in past `Limits::sessions_per_account_max` ends
//! the account's oldest session — refused at once, and still refused after a restart — so the
//! session cache stays O(accounts) however often someone signs in.

use bank_testkit::http::PASSWORD;
use bank_testkit::in_process::{TestNode, spawn_node_in_with, spawn_node_with};

const BOUND: usize = 4;

async fn me(node: &TestNode, token: &str) -> u16 {
    node.call("GET", "/api/v1/me", Some(token), None).await.0
}

#[tokio::test]
async fn signing_in_past_the_bound_ends_the_oldest_session_also_across_a_restart() {
    let node = spawn_node_with(|c| c.limits.sessions_per_account_max = BOUND).await;
    let (first, _) = node.customer(1, "Ana Souza").await;
    let (_other, _) = node.customer(2, "Bia Lima").await;
    let mut tokens = vec![first];
    for _ in 0..BOUND + 2 {
        tokens.push(node.sign_in("c1@example.com", PASSWORD).await);
    }
    let (ended, kept) = tokens.split_at(tokens.len() - BOUND);
    for token in ended {
        assert_eq!(me(&node, token).await, 401, "an old session past the bound is ended");
    }
    for token in kept {
        assert_eq!(me(&node, token).await, 200, "the newest sessions live");
    }
    assert_eq!(node.metric("bank_sessions").await, (BOUND + 1) as f64, "Ana's bound, plus Bia's one");

    let dir = node.stop().await;
    let node = spawn_node_in_with(dir, |c| c.limits.sessions_per_account_max = BOUND).await;
    for token in ended {
        assert_eq!(me(&node, token).await, 401, "an ended session is not revived by a restart");
    }
    for token in kept {
        assert_eq!(me(&node, token).await, 200, "the newest sessions survive a restart");
    }
}
