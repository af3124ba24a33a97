//! Accepting notifications: idempotency under concurrency, batches, topics, scheduling,
//! cancellation and the reasons recorded for suppressions.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::json;

use crate::common::{KEY, spawn};

#[tokio::test]
async fn fifty_concurrent_requests_with_one_key_make_one_notification() {
    let app = spawn().await;
    app.reply_template().await;
    let body = json!({"template": "new_reply", "to": ["ana"], "data": {"sender": "Bo", "excerpt": "hi", "thread": 1}});
    let requests = (0..50).map(|_| {
        app.client
            .post(format!("{}/v1/notifications", app.url))
            .bearer_auth(KEY)
            .header("Idempotency-Key", "order-42")
            .json(&body)
            .send()
    });
    let mut ids = HashSet::new();
    for resp in futures::future::join_all(requests).await {
        let resp = resp.unwrap();
        assert_eq!(resp.status(), 202);
        let b: serde_json::Value = resp.json().await.unwrap();
        ids.insert(b["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one notification for one key");
    let id = ids.into_iter().next().unwrap();
    app.processed(&id).await;
    let (_, inbox) = app.get("/v1/users/ana/inbox").await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1);

    let mut other = body.clone();
    other["data"]["excerpt"] = json!("something else");
    let resp = app
        .client
        .post(format!("{}/v1/notifications", app.url))
        .bearer_auth(KEY)
        .header("Idempotency-Key", "order-42")
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409, "same key, different request");
}

#[tokio::test]
async fn suppressions_are_explained_in_the_timeline_and_the_status() {
    let app = spawn().await;
    app.reply_template().await;
    app.put("/v1/users/quiet", json!({})).await;
    let hook = json!({"kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": crate::webhook::SECRET});
    let (s, b) = app.post("/v1/users/quiet/devices", hook).await;
    assert_eq!(s, 201, "{b}");
    app.put("/v1/users/quiet/preferences", json!({"categories": {"replies": {"enabled": false}}})).await;
    app.put("/v1/users/noinbox/preferences", json!({"channels": {"in_app": false}})).await;
    let id = app.send(json!({"template": "new_reply", "to": ["quiet", "noinbox", "fresh"], "data": {"sender": "Bo", "excerpt": "hi", "thread": 1}})).await;
    let n = app.processed(&id).await;
    let by_user = |u: &str| n["recipients"].as_array().unwrap().iter().find(|r| r["user_id"] == u).unwrap().clone();
    assert_eq!(by_user("quiet")["decision"], "suppressed");
    assert_eq!(by_user("quiet")["reason"], "category_opt_out");
    assert_eq!(by_user("noinbox")["reason"], "channel_disabled");
    assert_eq!(by_user("fresh")["decision"], "delivering", "unknown users are created and get their inbox");
    let inbox =
        by_user("fresh")["deliveries"].as_array().unwrap().iter().find(|d| d["channel"] == "in_app").unwrap().clone();
    assert_eq!(inbox["status"], "delivered");
    let (_, t) = app.get("/v1/users/quiet/timeline").await;
    let reasons: Vec<_> =
        t["items"].as_array().unwrap().iter().map(|i| (i["channel"].clone(), i["reason"].clone())).collect();
    assert!(reasons.contains(&(json!("in_app"), json!("category_opt_out"))), "{t}");
    assert!(reasons.contains(&(json!("webhook"), json!("category_opt_out"))), "{t}");
    let (_, inbox) = app.get("/v1/users/quiet/inbox").await;
    assert_eq!(inbox["items"], json!([]));
    // The webhook reuses the in-app block only for users with an endpoint: for the others it is
    // no channel at all, rather than a suppression on every notification.
    let (_, t) = app.get("/v1/users/fresh/timeline").await;
    let channels: Vec<_> = t["items"].as_array().unwrap().iter().map(|i| i["channel"].clone()).collect();
    assert_eq!(channels, vec![json!("in_app")], "{t}");
}

#[tokio::test]
async fn batch_accepts_each_item_on_its_own() {
    let app = spawn().await;
    app.reply_template().await;
    let ok = json!({"template": "new_reply", "to": ["a", "b"], "data": {"sender": "Bo", "excerpt": "hi", "thread": 1}});
    let (s, b) = app
        .post("/v1/notifications/batch", json!({"notifications": [ok, {"template": "missing", "to": ["a"]}, {"template": "new_reply", "to": ["c"]}]}))
        .await;
    assert_eq!(s, 202, "{b}");
    let results = b["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["recipients"], 2);
    assert_eq!(results[1]["error"]["status"], 422);
    assert_eq!(results[2]["error"]["status"], 422, "missing variables");
    app.processed(results[0]["id"].as_str().unwrap()).await;
    let (s, _) = app.post("/v1/notifications/batch", json!({"notifications": []})).await;
    assert_eq!(s, 422);
}

#[tokio::test]
async fn topics_fan_out_to_subscribers() {
    let app = spawn().await;
    app.reply_template().await;
    let (s, b) = app.put("/v1/topics/thread:42/subscribers", json!({"user_ids": ["a", "b", "c"]})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["changed"], 3);
    app.req(Method::DELETE, "/v1/topics/thread:42/subscribers", Some(json!({"user_ids": ["c"]}))).await;
    let (_, subs) = app.get("/v1/topics/thread:42/subscribers").await;
    assert_eq!(subs["items"], json!(["a", "b"]));
    let (_, accepted) = app.post("/v1/notifications", json!({"template": "new_reply", "to": {"topic": "thread:42"}, "data": {"sender": "Bo", "excerpt": "hi", "thread": 42}})).await;
    assert_eq!(accepted["recipients"], 2);
    app.processed(accepted["id"].as_str().unwrap()).await;
    for u in ["a", "b"] {
        let (_, inbox) = app.get(&format!("/v1/users/{u}/inbox")).await;
        assert_eq!(inbox["items"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn scheduled_notifications_wait_and_can_be_cancelled() {
    let app = spawn().await;
    app.reply_template().await;
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let id = app
        .send(json!({"template": "new_reply", "to": ["ana"], "send_at": later.to_string(), "data": {"sender": "Bo", "excerpt": "hi", "thread": 1}}))
        .await;
    let (_, n) = app.get(&format!("/v1/notifications/{id}")).await;
    assert_eq!(n["status"], "accepted");
    assert_eq!(n["recipients"][0]["decision"], "pending");
    let (s, c) = app.req(Method::DELETE, &format!("/v1/notifications/{id}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(c["cancelled"], 1);
    let (_, n) = app.get(&format!("/v1/notifications/{id}")).await;
    assert_eq!(n["status"], "cancelled");
    assert_eq!(n["recipients"][0]["decision"], "cancelled");
    let (_, t) = app.get("/v1/users/ana/timeline").await;
    assert_eq!(t["items"][0]["decision"], "cancelled");
}
