//! Signed webhooks: the Standard Webhooks body and signature, retries with a stable
//! `webhook-id`, and permanent failures.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::{TestApp, spawn, wait_for};

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Clone, Default)]
pub struct Receiver {
    pub hits: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    /// Status codes to answer, in order; 200 once exhausted.
    script: Arc<Mutex<Vec<u16>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    r.hits.lock().unwrap().push((headers, body));
    let mut script = r.script.lock().unwrap();
    let code = if script.is_empty() { 200 } else { script.remove(0) };
    StatusCode::from_u16(code).unwrap()
}

pub async fn receiver(script: Vec<u16>) -> (String, Receiver) {
    let r = Receiver { script: Arc::new(Mutex::new(script)), ..Default::default() };
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, r)
}

/// Verifies a Standard Webhooks signature, written from the specification independently of Herald's signer.
fn verify(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let id = headers["webhook-id"].to_str().unwrap();
    let ts = headers["webhook-timestamp"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    headers["webhook-signature"].to_str().unwrap().split(' ').any(|s| s == format!("v1,{expected}"))
}

pub async fn setup(app: &TestApp, url: &str) {
    app.reply_template().await;
    let (s, b) = app.post("/v1/users/ana/devices", json!({"kind": "webhook", "url": url, "secret": SECRET})).await;
    assert_eq!(s, 201, "{b}");
}

pub fn delivery(n: &Value) -> Value {
    n["recipients"][0]["deliveries"].as_array().unwrap().iter().find(|d| d["channel"] == "webhook").unwrap().clone()
}

pub async fn settled(app: &TestApp, id: &str) -> Value {
    wait_for("the webhook delivery to settle", || async {
        let (_, n) = app.get(&format!("/v1/notifications/{id}")).await;
        let d = n["recipients"][0]["deliveries"].as_array()?.iter().find(|d| d["channel"] == "webhook")?.clone();
        (d["status"] != "queued" && d["status"] != "sending").then_some(n)
    })
    .await
}

#[tokio::test]
async fn the_webhook_is_signed_per_standard_webhooks() {
    let app = spawn().await;
    let (url, r) = receiver(vec![]).await;
    setup(&app, &url).await;
    let id = app
        .send(json!({"template": "new_reply", "to": ["ana"], "data": {"sender": "Bo", "excerpt": "hi", "thread": 3}}))
        .await;
    let n = settled(&app, &id).await;
    assert_eq!(delivery(&n)["status"], "delivered");
    let hits = r.hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 1);
    let (headers, body) = &hits[0];
    assert!(verify(SECRET, headers, body), "signature verifies");
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["type"], "notification");
    assert_eq!(v["data"]["notification_id"], id);
    assert_eq!(v["data"]["user_id"], "ana");
    assert_eq!(v["data"]["template"], "new_reply");
    assert_eq!(v["data"]["class"], "social");
    assert_eq!(v["data"]["category"], "replies");
    assert_eq!(v["data"]["title"], "Bo replied");
    assert_eq!(v["data"]["body"], "hi");
    assert_eq!(v["data"]["data"]["thread"], 3);
    assert_eq!(v["data"]["digest"], Value::Null);
    assert!(v["timestamp"].is_string());
    reference_check(headers, body);
}

/// Cross-checks with the Standard Webhooks reference library (Python) when it is installed.
fn reference_check(headers: &HeaderMap, body: &str) {
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
d = json.load(sys.stdin)
Webhook(d["secret"]).verify(d["body"], d["headers"])
print("verified")
"#;
    let input = json!({
        "secret": SECRET,
        "body": body,
        "headers": {
            "webhook-id": headers["webhook-id"].to_str().unwrap(),
            "webhook-timestamp": headers["webhook-timestamp"].to_str().unwrap(),
            "webhook-signature": headers["webhook-signature"].to_str().unwrap(),
        }
    });
    // CI installs the library and sets the variable, so there the cross-check can never be skipped.
    if !herald_testkit::python::available("standardwebhooks", "TESTKIT_REQUIRE_WEBHOOK_REFERENCE") {
        return;
    }
    let out = herald_testkit::python::run(script, &input);
    assert!(out.status.success(), "reference library refused the signature: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn transient_failures_are_retried_with_one_webhook_id() {
    let app = spawn().await;
    let (url, r) = receiver(vec![503, 503]).await;
    setup(&app, &url).await;
    let id = app
        .send(json!({"template": "new_reply", "to": ["ana"], "data": {"sender": "Bo", "excerpt": "hi", "thread": 3}}))
        .await;
    let n = settled(&app, &id).await;
    let d = delivery(&n);
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["attempts"], 3);
    let hits = r.hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 3);
    let ids: std::collections::HashSet<_> =
        hits.iter().map(|(h, _)| h["webhook-id"].to_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 1, "webhook-id is stable across retries");
    assert!(hits.iter().all(|(h, b)| verify(SECRET, h, b)));
}

#[tokio::test]
async fn permanent_failures_fail_and_are_explained() {
    let app = spawn().await;
    let (url, r) = receiver(vec![400]).await;
    setup(&app, &url).await;
    let id = app
        .send(json!({"template": "new_reply", "to": ["ana"], "data": {"sender": "Bo", "excerpt": "hi", "thread": 3}}))
        .await;
    let n = settled(&app, &id).await;
    let d = delivery(&n);
    assert_eq!(d["status"], "failed");
    assert_eq!(d["attempts"], 1);
    assert!(d["error"].as_str().unwrap().contains("400"));
    assert_eq!(r.hits.lock().unwrap().len(), 1, "a 400 is not retried");
    let (_, t) = app.get("/v1/users/ana/timeline").await;
    assert!(
        t["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["decision"] == "failed" && i["reason"] == "provider_rejected" && i["channel"] == "webhook"),
        "{t}"
    );
}

#[tokio::test]
async fn a_disabled_channel_never_receives() {
    let app = spawn().await;
    let (url, r) = receiver(vec![]).await;
    setup(&app, &url).await;
    app.put("/v1/users/ana/preferences", json!({"channels": {"webhook": false}})).await;
    let id = app
        .send(json!({"template": "new_reply", "to": ["ana"], "data": {"sender": "Bo", "excerpt": "hi", "thread": 3}}))
        .await;
    let n = app.processed(&id).await;
    assert_eq!(delivery(&n)["status"], "suppressed");
    assert_eq!(delivery(&n)["error"], "channel_disabled");
    assert!(r.hits.lock().unwrap().is_empty());
}
