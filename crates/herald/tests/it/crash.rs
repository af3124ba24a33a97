//! Durability of the real binary: kill -9 right after 300 notifications were accepted (every
//! one reaches the inbox exactly once after a restart), kill -9 in the middle of 300 webhook
//! deliveries (all arrive, a redelivery keeps its `webhook-id`), and SIGTERM (sends in flight
//! finish and are recorded before the process exits).

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
        // What the killed server had claimed is taken over once its lease runs out: soon, here.
        .env("HERALD_QUEUE__LEASE_SECONDS", "2")
        // The webhook sinks listen on loopback.
        .env("HERALD_OUTBOUND__ALLOW_PRIVATE", "127.0.0.0/8,::1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the herald binary starts")
}

/// A client that never reuses a connection (a server killed with -9 on the same port must not
/// leave one behind to hang on) and never waits forever.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a test client")
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
    let client = client();
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

/// A webhook endpoint that takes `hold` to answer each request, recording `(webhook-id, notification_id)`.
#[derive(Clone, Default)]
struct SlowSink {
    hits: Arc<Mutex<Vec<(String, String)>>>,
    arrived: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

async fn slow_sink(hold: Duration) -> (String, SlowSink) {
    let sink = SlowSink::default();
    let s = sink.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let s = s.clone();
            async move {
                s.arrived.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(hold).await;
                let v: Value = serde_json::from_str(&body).unwrap_or_default();
                let id = headers.get("webhook-id").and_then(|h| h.to_str().ok()).unwrap_or_default().to_owned();
                let notification = v["data"]["notification_id"].as_str().unwrap_or_default().to_owned();
                s.hits.lock().unwrap().push((id, notification));
                s.answered.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, sink)
}

/// A transactional template whose only interrupting channel is the webhook, and `users` with the sink as endpoint.
async fn webhook_setup(client: &reqwest::Client, base: &str, url: &str, users: &[String]) {
    let put = client
        .put(format!("{base}/v1/templates/order"))
        .bearer_auth(KEY)
        .json(&json!({"class": "transactional", "channels": {"in_app": {"title": "order {{ n }}", "body": "b"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    for u in users {
        let r = client
            .post(format!("{base}/v1/users/{u}/devices"))
            .bearer_auth(KEY)
            .json(&json!({"kind": "webhook", "url": url, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
}

async fn send_all(client: &reqwest::Client, base: &str, users: &[String], count: usize) -> Vec<String> {
    let sends = (0..count).map(|n| {
        let (client, base, user) = (client.clone(), base.to_owned(), users[n % users.len()].clone());
        async move {
            let r = client
                .post(format!("{base}/v1/notifications"))
                .bearer_auth(KEY)
                .json(&json!({"template": "order", "to": [user], "data": {"n": n}}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
        }
    });
    futures::future::join_all(sends).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_survive_kill_9_mid_delivery_with_stable_ids() {
    herald_channels::init_tls();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = client();
    let (url, sink) = slow_sink(Duration::from_millis(150)).await;
    let users: Vec<String> = (0..10).map(|i| format!("w{i}")).collect();
    let mut child = start(dir.path(), port);
    ready(&client, &base).await;
    webhook_setup(&client, &base, &url, &users).await;
    let accepted = send_all(&client, &base, &users, 300).await;
    // Kill while deliveries are going out: some answered, some in flight, some still queued.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink.answered.load(Ordering::SeqCst) < 60 {
        assert!(Instant::now() < deadline, "deliveries did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = sink.answered.load(Ordering::SeqCst);

    let mut child = start(dir.path(), port);
    ready(&client, &base).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen: HashSet<String> = sink.hits.lock().unwrap().iter().map(|(_, n)| n.clone()).collect();
        if seen.len() >= 300 {
            break;
        }
        assert!(Instant::now() < deadline, "only {} of 300 webhooks arrived after the restart", seen.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let hits = sink.hits.lock().unwrap().clone();
    assert!(at_kill < 300, "the kill came before the last delivery ({at_kill} answered)");
    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    for (id, notification) in &hits {
        ids.entry(notification.clone()).or_default().insert(id.clone());
    }
    assert_eq!(ids.keys().cloned().collect::<HashSet<_>>(), accepted.into_iter().collect::<HashSet<_>>());
    assert!(ids.values().all(|s| s.len() == 1), "a redelivery keeps its webhook-id");
    let distinct: HashSet<&String> = hits.iter().map(|(id, _)| id).collect();
    assert_eq!(distinct.len(), 300, "one webhook-id per notification");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_sends_in_flight_finish_and_records_them() {
    herald_channels::init_tls();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = client();
    let (url, sink) = slow_sink(Duration::from_millis(1500)).await;
    let users: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
    let mut child = start(dir.path(), port);
    ready(&client, &base).await;
    webhook_setup(&client, &base, &url, &users).await;
    let accepted = send_all(&client, &base, &users, 5).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.arrived.load(Ordering::SeqCst) < 5 {
        assert!(Instant::now() < deadline, "the sends did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "a clean exit: {status}");
    assert_eq!(sink.answered.load(Ordering::SeqCst), 5, "every send in flight was answered before the exit");

    // After a restart each delivery reads delivered after one attempt: nothing is sent twice.
    let mut child = start(dir.path(), port);
    ready(&client, &base).await;
    for id in &accepted {
        let n: Value = client
            .get(format!("{base}/v1/notifications/{id}"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let d =
            n["recipients"][0]["deliveries"].as_array().unwrap().iter().find(|d| d["channel"] == "webhook").unwrap();
        assert_eq!(d["status"], "delivered", "{n}");
        assert_eq!(d["attempts"], 1, "{n}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(sink.arrived.load(Ordering::SeqCst), 5);
}
