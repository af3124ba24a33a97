//! The inbox: paging, read and unread, and the live SSE stream with resume.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::spawn;

/// Reads SSE events (`event`, `id`, `data`) from a streaming response.
struct Events {
    resp: reqwest::Response,
    buf: String,
}

impl Events {
    async fn next(&mut self) -> (String, Option<String>, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::new(), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if event.is_empty() {
                    continue;
                }
                return (event, id, serde_json::from_str(&data).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.resp.chunk())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .expect("stream open");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn open(url: &str, token: &str, last_event_id: Option<&str>) -> Events {
    let mut r = reqwest::Client::new().get(format!("{url}/v1/me/inbox/stream?token={token}"));
    if let Some(id) = last_event_id {
        r = r.header("Last-Event-ID", id);
    }
    let resp = r.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    Events { resp, buf: String::new() }
}

#[tokio::test]
async fn a_notification_reaches_the_live_stream_rendered() {
    let app = spawn().await;
    app.reply_template().await;
    app.put("/v1/users/ana", json!({})).await;
    let token = app.token("ana").await;
    let mut events = open(&app.url, &token, None).await;
    let (kind, _, first) = events.next().await;
    assert_eq!((kind.as_str(), first["unread_count"].as_u64()), ("unread_count", Some(0)));

    let started = Instant::now();
    app.send(
        json!({"template": "new_reply", "to": ["ana"], "data": {"sender": "Bo", "excerpt": "<b>hi</b>", "thread": 7}}),
    )
    .await;
    let (kind, id, item) = events.next().await;
    let latency = started.elapsed();
    assert_eq!(kind, "notification");
    assert!(id.is_some(), "events carry an id for resume");
    assert_eq!(item["title"], "Bo replied");
    assert_eq!(item["body"], "<b>hi</b>");
    assert_eq!(item["action_url"], "/t/7");
    let (kind, _, count) = events.next().await;
    assert_eq!((kind.as_str(), count["unread_count"].as_u64()), ("unread_count", Some(1)));
    eprintln!("accept to live event: {latency:?}");
    assert!(latency < Duration::from_secs(2), "took {latency:?}");
}

#[tokio::test]
async fn the_stream_resumes_after_last_event_id() {
    let app = spawn().await;
    app.reply_template().await;
    let token = {
        app.put("/v1/users/ana", json!({})).await;
        app.token("ana").await
    };
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = app.send(json!({"template": "new_reply", "to": ["ana"], "data": {"sender": format!("s{i}"), "excerpt": "x", "thread": i}})).await;
        app.processed(&id).await;
        ids.push(id);
    }
    let mut events = open(&app.url, &token, None).await;
    let _ = events.next().await;
    let mut all = open(&app.url, &token, Some("0")).await;
    let (_, first_id, first) = all.next().await;
    assert_eq!(first["title"], "s0 replied");
    let mut resumed = open(&app.url, &token, first_id.as_deref()).await;
    let (_, _, a) = resumed.next().await;
    let (_, _, b) = resumed.next().await;
    assert_eq!((a["title"].as_str(), b["title"].as_str()), (Some("s1 replied"), Some("s2 replied")));
    let (kind, _, _) = resumed.next().await;
    assert_eq!(kind, "unread_count", "after the backlog, the count");
}

#[tokio::test]
async fn paging_and_read_state() {
    let app = spawn().await;
    app.reply_template().await;
    for i in 0..5 {
        let id = app.send(json!({"template": "new_reply", "to": ["ana", "bob"], "data": {"sender": format!("s{i}"), "excerpt": "x", "thread": i}})).await;
        app.processed(&id).await;
    }
    let token = app.token("ana").await;
    let (s, page) = app.req_as(Method::GET, "/v1/me/inbox?limit=2", None, Some(&token)).await;
    assert_eq!(s, 200);
    assert_eq!(page["items"][0]["title"], "s4 replied", "newest first");
    assert_eq!(page["unread_count"], 5);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page2) =
        app.req_as(Method::GET, &format!("/v1/me/inbox?limit=2&cursor={cursor}"), None, Some(&token)).await;
    assert_eq!(page2["items"][0]["title"], "s2 replied");
    let first = page["items"][0]["id"].clone();
    let (_, r) = app.req_as(Method::POST, "/v1/me/inbox/read", Some(json!({"ids": [first]})), Some(&token)).await;
    assert_eq!((r["updated"].as_u64(), r["unread_count"].as_u64()), (Some(1), Some(4)));
    let (_, unread) = app.req_as(Method::GET, "/v1/me/inbox?unread=true", None, Some(&token)).await;
    assert_eq!(unread["items"].as_array().unwrap().len(), 4);
    let (_, r) = app.req_as(Method::POST, "/v1/me/inbox/unread", Some(json!({"ids": [first]})), Some(&token)).await;
    assert_eq!(r["unread_count"], 5);
    let (_, r) = app.req_as(Method::POST, "/v1/me/inbox/read", Some(json!({"all": true})), Some(&token)).await;
    assert_eq!(r["unread_count"], 0);
    let (_, bob) = app.get("/v1/users/bob/inbox").await;
    assert_eq!(bob["unread_count"], 5, "another user's items are untouched");
    let (s, _) = app
        .req_as(Method::POST, "/v1/me/inbox/read", Some(json!({"ids": [bob["items"][0]["id"]]})), Some(&token))
        .await;
    assert_eq!(s, 200);
    let (_, bob) = app.get("/v1/users/bob/inbox").await;
    assert_eq!(bob["unread_count"], 5, "a user token cannot touch another user's items");
}
