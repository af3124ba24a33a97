//! The decision engine end to end: the cap with digests, quiet hours across midnight in a
//! UTC+5:30 zone, presence, draining, collapse keys, breakthrough budgets, transactional.

use jiff::SignedDuration;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestApp, spawn_at, spawn_on, wait_for};
use crate::webhook::{Receiver, SECRET, receiver};

async fn setup(app: &TestApp, user: &str, prefs: Value) -> (String, Receiver) {
    let (s, b) = app
        .put(
            "/v1/templates/new_reply",
            json!({"class": "social", "category": "replies",
               "channels": {"in_app": {"title": "{{ sender }} replied", "body": "{{ excerpt }}"}},
               "digest": {"title": "{{ count }} new replies", "body": "{{ first.sender }} and {{ count - 1 }} more"}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (url, r) = receiver(vec![]).await;
    let (s, b) =
        app.post(&format!("/v1/users/{user}/devices"), json!({"kind": "webhook", "url": url, "secret": SECRET})).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = app.put(&format!("/v1/users/{user}/preferences"), prefs).await;
    assert_eq!(s, 200, "{b}");
    (url, r)
}

fn reply(user: &str, i: usize) -> Value {
    json!({"template": "new_reply", "to": [user], "data": {"sender": format!("s{i}"), "excerpt": "x"}})
}

async fn timeline(app: &TestApp, user: &str) -> Vec<Value> {
    let (_, t) = app.get(&format!("/v1/users/{user}/timeline?limit=100")).await;
    t["items"].as_array().unwrap().clone()
}

fn count(items: &[Value], decision: &str, reason: &str) -> usize {
    items.iter().filter(|i| i["decision"] == decision && i["reason"] == reason).count()
}

async fn hits(r: &Receiver, n: usize) -> Vec<Value> {
    wait_for(&format!("{n} webhook hits"), || async {
        let hits = r.hits.lock().unwrap().clone();
        (hits.len() >= n).then(|| hits.iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect())
    })
    .await
}

#[tokio::test]
async fn twenty_concurrent_social_notifications_under_a_cap_of_three() {
    let app = spawn_at("2026-06-01T12:00:00Z").await;
    let (_, r) = setup(&app, "ana", json!({"frequency_cap": {"max": 3, "window_seconds": 3600}})).await;
    let sends = (0..20).map(|i| app.send(reply("ana", i)));
    let ids = futures::future::join_all(sends).await;
    for id in &ids {
        app.processed(id).await;
    }
    let first = hits(&r, 3).await;
    assert_eq!(first.len(), 3, "exactly three interruptions");
    let (_, inbox) = app.get("/v1/users/ana/inbox?limit=100").await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 20, "every notification reaches the inbox");
    let t = timeline(&app, "ana").await;
    assert_eq!(count(&t, "batched", "frequency_cap"), 17, "seventeen say why they waited");

    app.advance(SignedDuration::from_secs(3601));
    let all = hits(&r, 4).await;
    assert_eq!(all.len(), 4, "one digest, not seventeen");
    let digest = &all[3]["data"];
    assert_eq!(digest["digest"]["count"], 17);
    assert_eq!(digest["digest"]["items"].as_array().unwrap().len(), 17);
    assert_eq!(digest["title"], "17 new replies");
    let t = timeline(&app, "ana").await;
    assert_eq!(count(&t, "delivering", "digest"), 1);
    let n = app.processed(digest["notification_id"].as_str().unwrap()).await;
    assert_eq!(n["recipients"][0]["reason"], "digest");
    app.advance(SignedDuration::from_secs(7200));
    assert_eq!(r.hits.lock().unwrap().len(), 4, "nothing is sent twice");
}

#[tokio::test]
async fn quiet_hours_hold_across_midnight_in_kolkata() {
    // 23:30 in Asia/Kolkata (UTC+5:30).
    let app = spawn_at("2026-06-01T18:00:00Z").await;
    app.put("/v1/users/ravi", json!({"timezone": "Asia/Kolkata"})).await;
    let (_, r) = setup(&app, "ravi", json!({"quiet_hours": {"start": "22:00", "end": "07:00"}})).await;
    let id = app.send(reply("ravi", 1)).await;
    let n = app.processed(&id).await;
    assert_eq!(n["recipients"][0]["decision"], "deferred");
    assert_eq!(n["recipients"][0]["reason"], "quiet_hours");
    let (_, inbox) = app.get("/v1/users/ravi/inbox").await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1, "the inbox is never deferred");
    app.advance(SignedDuration::from_mins(60)); // 00:30 local: still quiet
    let (_, n) = app.get(&format!("/v1/notifications/{id}")).await;
    assert_eq!(n["recipients"][0]["decision"], "deferred");
    assert!(r.hits.lock().unwrap().is_empty());
    app.advance(SignedDuration::from_mins(391)); // 07:01 local
    let got = hits(&r, 1).await;
    assert_eq!(got[0]["data"]["notification_id"], id.as_str());
    let (_, inbox) = app.get("/v1/users/ravi/inbox").await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1, "no second inbox item after the deferral");
    let t = timeline(&app, "ravi").await;
    assert_eq!(count(&t, "deferred", "quiet_hours"), 1);
}

#[tokio::test]
async fn critical_breaks_through_on_a_budget() {
    let app = spawn_at("2026-06-01T18:00:00Z").await;
    app.put("/v1/users/ravi", json!({"timezone": "Asia/Kolkata"})).await;
    let (_, r) = setup(
        &app,
        "ravi",
        json!({"quiet_hours": {"start": "22:00", "end": "07:00"}, "categories": {"replies": {"enabled": false}}}),
    )
    .await;
    for i in 0..3 {
        let mut critical = reply("ravi", i);
        critical["class"] = json!("critical");
        let id = app.send(critical).await;
        app.processed(&id).await;
    }
    hits(&r, 2).await;
    let t = timeline(&app, "ravi").await;
    assert_eq!(count(&t, "deferred", "quiet_hours"), 1, "the third in an hour is handled as transactional");
    assert_eq!(r.hits.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn online_users_get_the_inbox_and_their_batch_drains() {
    let app = spawn_at("2026-06-01T12:00:00Z").await;
    let (_, r) = setup(&app, "ana", json!({"frequency_cap": {"max": 1, "window_seconds": 600}})).await;
    for i in 0..3 {
        let id = app.send(reply("ana", i)).await;
        app.processed(&id).await;
    }
    hits(&r, 1).await;
    let token = app.token("ana").await;
    let stream = app.client.get(format!("{}/v1/me/inbox/stream?token={token}", app.url)).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    wait_for("the batch to drain", || async {
        (count(&timeline(&app, "ana").await, "delivered", "drained_to_inbox") == 2).then_some(())
    })
    .await;
    let id = app.send(reply("ana", 9)).await;
    let n = app.processed(&id).await;
    let webhook = n["recipients"][0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["channel"] == "webhook")
        .unwrap()
        .clone();
    assert_eq!(webhook["error"], "user_online");
    drop(stream);
    app.advance(SignedDuration::from_secs(1200));
    assert_eq!(r.hits.lock().unwrap().len(), 1, "drained notifications never come back as a digest");
}

#[tokio::test]
async fn a_newer_collapse_key_replaces_a_pending_older_one() {
    let app = spawn_at("2026-06-01T12:00:00Z").await;
    let (_, r) = setup(&app, "ana", json!({"frequency_cap": {"max": 1, "window_seconds": 600}})).await;
    let first = app.send(reply("ana", 0)).await;
    app.processed(&first).await;
    let mut typing = reply("ana", 1);
    typing["collapse_key"] = json!("thread:1:typing");
    let older = app.send(typing.clone()).await;
    app.processed(&older).await;
    let newer = app.send(typing).await;
    app.processed(&newer).await;
    let (_, n) = app.get(&format!("/v1/notifications/{older}")).await;
    assert_eq!(n["recipients"][0]["reason"], "collapsed");
    app.advance(SignedDuration::from_secs(601));
    let got = hits(&r, 2).await;
    assert_eq!(got[1]["data"]["digest"]["count"], 1, "only the newer one is left to send");
}

#[tokio::test]
async fn transactional_uses_one_channel() {
    let app = spawn_at("2026-06-01T12:00:00Z").await;
    app.put("/v1/users/ana", json!({"email": "ana@example.com"})).await;
    let (_, r) = setup(&app, "ana", json!({})).await;
    let (s, b) = app
        .put("/v1/templates/receipt", json!({"class": "transactional", "channels": {
            "email": {"subject": "Receipt", "text": "Paid {{ amount }}"}, "webhook": {"title": "Receipt", "body": "Paid {{ amount }}"}}}))
        .await;
    assert_eq!(s, 200, "{b}");
    let id = app.send(json!({"template": "receipt", "to": ["ana"], "data": {"amount": "9 EUR"}})).await;
    app.processed(&id).await;
    let n = wait_for("the email to go out", || async {
        let (_, n) = app.get(&format!("/v1/notifications/{id}")).await;
        let sent = n["recipients"][0]["deliveries"]
            .as_array()?
            .iter()
            .any(|d| d["channel"] == "email" && d["status"] == "sent");
        sent.then_some(n)
    })
    .await;
    let deliveries = n["recipients"][0]["deliveries"].as_array().unwrap().clone();
    let webhook = deliveries.iter().find(|d| d["channel"] == "webhook").unwrap();
    assert!(webhook["status"] == "standby" || webhook["error"] == "fallback_not_needed", "{webhook}");
    let (_, t) = app.req(Method::GET, "/v1/users/ana/timeline", None).await;
    assert!(
        t["items"].as_array().unwrap().iter().all(|i| i["channel"] != "webhook"),
        "email first, and only one channel"
    );
    assert!(r.hits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn user_tokens_expire_on_herald_clock() {
    let app = spawn_at("2026-06-01T12:00:00Z").await;
    app.put("/v1/users/ana", json!({})).await;
    let (_, t) = app.post("/v1/users/ana/token", json!({"ttl_seconds": 60})).await;
    let token = t["token"].as_str().unwrap().to_owned();
    assert_eq!(t["expires_at"], "2026-06-01T12:01:00Z");
    let (s, _) = app.req_as(Method::GET, "/v1/me/inbox", None, Some(&token)).await;
    assert_eq!(s, 200);
    app.advance(SignedDuration::from_secs(120));
    let (s, _) = app.req_as(Method::GET, "/v1/me/inbox", None, Some(&token)).await;
    assert_eq!(s, 401, "expired");
}

#[tokio::test]
async fn the_same_content_by_another_path_is_a_duplicate() {
    let app = spawn_at("2026-06-01T12:00:00Z").await;
    let (_, r) = setup(&app, "ana", json!({})).await;
    app.put("/v1/topics/thread:1/subscribers", json!({"user_ids": ["ana"]})).await;
    let direct = app.send(reply("ana", 1)).await;
    app.processed(&direct).await;
    let mut by_topic = reply("ana", 1);
    by_topic["to"] = json!({"topic": "thread:1"});
    let again = app.send(by_topic).await;
    let n = app.processed(&again).await;
    assert_eq!(n["recipients"][0]["decision"], "suppressed");
    assert_eq!(n["recipients"][0]["reason"], "duplicate");
    let (_, inbox) = app.get("/v1/users/ana/inbox").await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1);
    hits(&r, 1).await;
    app.advance(SignedDuration::from_mins(11));
    let later = app.send(reply("ana", 1)).await;
    let n = app.processed(&later).await;
    assert_eq!(n["recipients"][0]["decision"], "delivering", "outside the window it is news again");
}

#[tokio::test]
async fn pending_digests_and_their_timers_survive_a_restart() {
    let app = spawn_at("2026-06-01T12:00:00Z").await;
    let (_, r) = setup(&app, "ana", json!({"frequency_cap": {"max": 1, "window_seconds": 600}})).await;
    for i in 0..3 {
        let id = app.send(reply("ana", i)).await;
        app.processed(&id).await;
    }
    hits(&r, 1).await;
    let (dir, then) = (app.dir.clone(), app.now());
    app.stop().await;

    let app = spawn_on(dir, then + SignedDuration::from_secs(601)).await;
    app.advance(SignedDuration::ZERO);
    let got = hits(&r, 2).await;
    assert_eq!(got[1]["data"]["digest"]["count"], 2, "the batch was rebuilt from the store");
}

#[tokio::test]
async fn a_cancelled_notification_leaves_the_pending_digest() {
    let app = spawn_at("2026-06-01T12:00:00Z").await;
    let (_, r) = setup(&app, "ana", json!({"frequency_cap": {"max": 1, "window_seconds": 600}})).await;
    let first = app.send(reply("ana", 0)).await;
    app.processed(&first).await;
    let batched = app.send(reply("ana", 1)).await;
    let n = app.processed(&batched).await;
    assert_eq!(n["recipients"][0]["decision"], "batched");
    let (s, c) = app.req(Method::DELETE, &format!("/v1/notifications/{batched}"), None).await;
    assert_eq!((s, c["cancelled"].as_u64()), (200, Some(1)));
    hits(&r, 1).await;
    app.advance(SignedDuration::from_secs(601));
    let (_, n) = app.get(&format!("/v1/notifications/{batched}")).await;
    assert_eq!(n["status"], "cancelled");
    app.advance(SignedDuration::from_secs(601));
    assert_eq!(r.hits.lock().unwrap().len(), 1, "a cancelled notification is never part of a digest");
}

#[tokio::test]
async fn a_channel_that_cannot_render_hands_over_to_the_next() {
    let app = spawn_at("2026-06-01T12:00:00Z").await;
    app.put("/v1/users/ana", json!({"email": "ana@example.com"})).await;
    let (_, r) = setup(&app, "ana", json!({})).await;
    let (s, b) = app
        .put(
            "/v1/templates/code",
            json!({"class": "transactional", "channels": {
                "email": {"subject": "Hi {{ user.name }}", "text": "Code {{ code }}"},
                "webhook": {"title": "Code", "body": "Code {{ code }}"}}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let id = app.send(json!({"template": "code", "to": ["ana"], "data": {"code": "42"}})).await;
    let got = hits(&r, 1).await;
    assert_eq!(got[0]["data"]["body"], "Code 42", "ana has no name, so email cannot render; the webhook takes over");
    let t = timeline(&app, "ana").await;
    assert!(t.iter().any(|i| i["channel"] == "email" && i["reason"] == "render_error"));
    assert!(
        t.iter().any(|i| i["channel"] == "webhook" && i["reason"] == "fallback" && i["notification_id"] == id.as_str())
    );
}
