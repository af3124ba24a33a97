//! Durability: kill -9 the real binary right after 300 notifications were accepted; after a
//! restart every one of them is in the inbox exactly once.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const KEY: &str = "crash-test-key";

fn start(dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .env("HERALD_DATA_DIR", dir)
        .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
        .env("HERALD_API_KEY", KEY)
        .env("HERALD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the herald binary starts")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn accepted_notifications_survive_kill_9_exactly_once() {
    herald_channels::init_tls();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut child = start(dir.path(), port);
    ready(&client, &base).await;
    let put = client
        .put(format!("{base}/v1/templates/ping"))
        .bearer_auth(KEY)
        .json(&json!({"channels": {"in_app": {"title": "ping {{ n }}", "body": "b"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);

    let users = ["u1", "u2", "u3"];
    let sends = (0..300).map(|n| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let r = client
                .post(format!("{base}/v1/notifications"))
                .bearer_auth(KEY)
                .json(&json!({"template": "ping", "to": [users[n % 3]], "data": {"n": n}}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
        }
    });
    let accepted: Vec<String> = futures::future::join_all(sends).await;
    // Straight after the last 202, while the lanes are still busy: SIGKILL, no chance to tidy up.
    child.kill().unwrap();
    child.wait().unwrap();

    let mut child = start(dir.path(), port);
    ready(&client, &base).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        let mut seen: Vec<String> = Vec::new();
        for u in users {
            let mut cursor = String::new();
            loop {
                let page: Value = client
                    .get(format!("{base}/v1/users/{u}/inbox?limit=100&cursor={cursor}"))
                    .bearer_auth(KEY)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                seen.extend(
                    page["items"].as_array().unwrap().iter().map(|i| i["notification_id"].as_str().unwrap().to_owned()),
                );
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = c.to_owned(),
                    None => break,
                }
            }
        }
        if seen.len() >= 300 || Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), 300, "every accepted notification is in an inbox, none twice");
    assert_eq!(unique, accepted.into_iter().collect::<HashSet<_>>());
}
