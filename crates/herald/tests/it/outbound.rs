//! Webhook targets on private addresses: refused for good unless `outbound.allow_private` covers
//! them, whether the URL names the address or a host name that resolves to it.

use serde_json::{Value, json};

use crate::common::{TestApp, spawn, spawn_with};
use crate::webhook::{delivery, receiver, settled, setup};

/// Sends one notification to `ana` and returns its webhook delivery once settled.
async fn notify(app: &TestApp) -> Value {
    let id = app
        .send(json!({"template": "new_reply", "to": ["ana"], "data": {"sender": "Bo", "excerpt": "hi", "thread": 3}}))
        .await;
    delivery(&settled(app, &id).await)
}

#[tokio::test]
async fn a_webhook_on_loopback_fails_for_good_by_default() {
    let app = spawn_with(|c| c.outbound.allow_private.clear()).await;
    let (url, r) = receiver(vec![]).await;
    setup(&app, &url).await;
    let d = notify(&app).await;
    assert_eq!((d["status"].as_str(), d["attempts"].as_u64()), (Some("failed"), Some(1)), "not retried: {d}");
    assert_eq!(d["error"], "webhook target 127.0.0.1 is a private address; allow it with outbound.allow_private");
    assert!(r.hits.lock().unwrap().is_empty(), "the receiver got nothing");
}

#[tokio::test]
async fn a_host_name_resolving_to_loopback_is_refused_too() {
    let app = spawn_with(|c| c.outbound.allow_private.clear()).await;
    let (url, r) = receiver(vec![]).await;
    setup(&app, &url.replace("127.0.0.1", "localhost")).await;
    let d = notify(&app).await;
    assert_eq!(d["status"], "failed", "{d}");
    let error = d["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("webhook target localhost resolves only to private addresses")
            && error.ends_with("allow them with outbound.allow_private"),
        "{error}"
    );
    assert!(r.hits.lock().unwrap().is_empty(), "the receiver got nothing");
}

#[tokio::test]
async fn an_allowed_private_network_is_delivered_to() {
    // The test harness allows loopback, as a deployment with internal webhooks would.
    let app = spawn().await;
    let (url, r) = receiver(vec![]).await;
    setup(&app, &url.replace("127.0.0.1", "localhost")).await;
    assert_eq!(notify(&app).await["status"], "delivered");
    assert_eq!(r.hits.lock().unwrap().len(), 1);
}
