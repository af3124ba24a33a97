//! Every error is an RFC 9457 problem document naming the field in plain words: query and path
//! parameters, bodies of the wrong shape, methods, routes and sizes; and the OpenAPI document
//! lists those answers.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{KEY, TestApp, spawn};

/// Words that would mean a Rust type name or serde's jargon reached a client.
const JARGON: [&str; 10] =
    ["u32", "u64", "i64", "struct ", "enum ", "untagged", "sequence", "a map", "Audience", "NotificationRequest"];

/// Sends a request with a raw body and answers the status, the headers and the parsed body.
async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut r = app.client.request(method, format!("{}{path}", app.url)).bearer_auth(KEY).body(body);
    if let Some(t) = content_type {
        r = r.header("content-type", t);
    }
    let resp = r.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Asserts a problem+json answer with `status` whose first field error is `field`, in plain words.
fn assert_problem(status: u16, headers: &reqwest::header::HeaderMap, p: &Value, want: u16, field: &str) {
    assert_eq!(status, want, "{p}");
    assert_eq!(headers["content-type"], "application/problem+json", "{p}");
    assert_eq!(p["status"], want, "{p}");
    assert!(p["type"].is_string() && p["title"].is_string() && p["detail"].is_string(), "{p}");
    if !field.is_empty() {
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    let text = p.to_string();
    for word in JARGON {
        assert!(!text.contains(word), "`{word}` in {p}");
    }
}

async fn get(app: &TestApp, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    raw(app, Method::GET, path, None, Vec::new()).await
}

async fn send(app: &TestApp, body: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    raw(app, Method::POST, "/v1/notifications", Some("application/json"), body.as_bytes().to_vec()).await
}

#[tokio::test]
async fn query_and_path_parameters_are_named() {
    let app = spawn().await;
    app.put("/v1/users/ana", json!({})).await;
    for query in ["limit=abc", "limit=0", "limit=101", "limit=-1"] {
        let (s, h, p) = get(&app, &format!("/v1/users/ana/timeline?{query}")).await;
        assert_problem(s, &h, &p, 422, "limit");
        assert_eq!(p["errors"][0]["message"], "must be a whole number from 1 to 100", "{p}");
    }
    let (s, h, p) = get(&app, "/v1/users/ana/inbox?unread=maybe").await;
    assert_problem(s, &h, &p, 422, "unread");
    assert_eq!(p["errors"][0]["message"], "must be true or false");
    let (s, h, p) = get(&app, "/v1/users/ana/inbox?limit=1&limit=2").await;
    assert_problem(s, &h, &p, 422, "limit");

    let (s, h, p) = get(&app, "/v1/users/bad%20id").await;
    assert_problem(s, &h, &p, 422, "user_id");
    let (s, h, p) = get(&app, "/v1/users/%FF/devices").await;
    assert_problem(s, &h, &p, 422, "user_id");
    // An id Herald issued that cannot exist is simply not found.
    let (s, h, p) = get(&app, "/v1/notifications/not-a-uuid").await;
    assert_problem(s, &h, &p, 404, "");
}

#[tokio::test]
async fn a_cursor_the_list_did_not_return_is_named() {
    let app = spawn().await;
    app.reply_template().await;
    app.put("/v1/users/ana", json!({})).await;
    app.put("/v1/topics/news/subscribers", json!({"user_ids": ["ana", "bob"]})).await;
    let (_, subscribers) = app.get("/v1/topics/news/subscribers?limit=1").await;
    let another_lists = subscribers["next_cursor"].as_str().expect("a second page").to_owned();
    let id = app
        .send(json!({"template": "new_reply", "to": ["ana"], "data": {"sender": "s", "excerpt": "x", "thread": 1}}))
        .await;
    let lists = [
        "/v1/users/ana/timeline".to_owned(),
        "/v1/users/ana/inbox".to_owned(),
        "/v1/dead-letters".to_owned(),
        "/v1/address-blocks".to_owned(),
        "/v1/topics/other/subscribers".to_owned(),
        format!("/v1/notifications/{id}"),
    ];
    // `12` is a bare row number, which cursors no longer are.
    for list in &lists {
        for cursor in ["garbage", "12", &another_lists] {
            let (s, h, p) = get(&app, &format!("{list}?cursor={cursor}")).await;
            assert_problem(s, &h, &p, 422, "cursor");
            assert_eq!(p["errors"][0]["message"], "is not a cursor this API returned", "{list}: {p}");
        }
    }
}

#[tokio::test]
async fn methods_routes_and_media_types_are_problems() {
    let app = spawn().await;
    let (s, h, p) = raw(&app, Method::PATCH, "/v1/notifications", None, Vec::new()).await;
    assert_problem(s, &h, &p, 405, "");
    assert_eq!(h["allow"], "POST");
    assert!(p["detail"].as_str().unwrap().contains("PATCH"), "{p}");

    let (s, h, p) = get(&app, "/v1/no/such/route").await;
    assert_problem(s, &h, &p, 404, "");

    let (s, h, p) = raw(&app, Method::POST, "/v1/notifications", Some("text/plain"), b"{}".to_vec()).await;
    assert_problem(s, &h, &p, 415, "");
    // curl's `-d` declares a form; the README's commands rely on it being read as JSON.
    let (s, h, p) =
        raw(&app, Method::POST, "/v1/notifications", Some("application/x-www-form-urlencoded"), b"{}".to_vec()).await;
    assert_problem(s, &h, &p, 422, "template");
}

#[tokio::test]
async fn body_errors_carry_the_json_path_in_plain_words() {
    let app = spawn().await;
    let cases = [
        (r#"[{"template": "t"}]"#, "body", "must be a JSON object"),
        (r#"{"template": "t", "to": 5}"#, "to", "must be a list of user ids or {\"topic\": key}"),
        (r#"{"template": "t", "to": ["ok", 7]}"#, "to[1]", "must be a string"),
        (r#"{"template": "t", "to": ["ok"], "data": "x"}"#, "data", "must be a JSON object"),
        (r#"{"to": ["ok"]}"#, "template", "is required"),
        (r#"{"template": "t", "to": ["ok"], "colour": 1}"#, "colour", "is not a field of this request"),
        (r#"{"template": "t", "to": ["ok"], "ttl_seconds": "x"}"#, "ttl_seconds", "must be a whole number"),
        (r#"{"template": "t", "to": {"topic": 5}}"#, "to.topic", "must be a string"),
    ];
    for (body, field, message) in cases {
        let (s, h, p) = send(&app, body).await;
        assert_problem(s, &h, &p, 422, field);
        assert_eq!(p["errors"][0]["message"], message, "{body}: {p}");
    }
    let (s, h, p) = app_put_template(&app, json!({"channels": {"email": {"text": "x"}}})).await;
    assert_problem(s, &h, &p, 422, "channels.email.subject");
    assert_eq!(p["errors"][0]["message"], "is required");
    // A device's fields are named too, whatever its kind.
    let devices: [(&[u8], &str, &str); 4] = [
        (br#"{"kind": "apns", "token": 5}"#, "token", "must be a string"),
        (br#"{"kind": "apns"}"#, "token", "is required"),
        (br#"{"kind": "fcm", "token": "t", "url": "https://example.com"}"#, "url", "is not a field of this request"),
        (
            br#"{"kind": "web_push", "subscription": {"endpoint": "https://push.example", "keys": {"p256dh": "k", "auth": 1}}}"#,
            "subscription.keys.auth",
            "must be a string",
        ),
    ];
    for (body, field, message) in devices {
        let (s, h, p) = raw(&app, Method::POST, "/v1/users/ana/devices", Some("application/json"), body.to_vec()).await;
        assert_problem(s, &h, &p, 422, field);
        assert_eq!(p["errors"][0]["message"], message, "{p}");
    }

    let (s, h, p) = send(&app, "{\"template\": ").await;
    assert_problem(s, &h, &p, 400, "");
    assert!(p["detail"].as_str().unwrap().contains("line 1, column 13"), "{p}");

    let huge =
        format!("{{\"template\": \"t\", \"to\": [\"ana\"], \"data\": {{\"x\": \"{}\"}}}}", "a".repeat(1024 * 1024));
    let (s, h, p) = send(&app, &huge).await;
    assert_problem(s, &h, &p, 413, "");
    let (_, timeline) = app.get("/v1/users/ana/timeline").await;
    assert_eq!(timeline["status"], 404, "nothing was created: {timeline}");
}

async fn app_put_template(app: &TestApp, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
    raw(app, Method::PUT, "/v1/templates/t", Some("application/json"), body.to_string().into_bytes()).await
}

#[tokio::test]
async fn batch_items_are_named_by_their_place() {
    let app = spawn().await;
    let (s, b) = app
        .post(
            "/v1/notifications/batch",
            json!({"notifications": [[], {"template": "t", "to": ["a", 7]}, {"to": ["a"]}, {"template": "nope", "to": ["a"]}]}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let fields: Vec<&Value> =
        b["results"].as_array().unwrap().iter().map(|r| &r["error"]["errors"][0]["field"]).collect();
    assert_eq!(
        fields,
        [
            &json!("notifications[0]"),
            &json!("notifications[1].to[1]"),
            &json!("notifications[2].template"),
            &json!("notifications[3].template")
        ],
        "{b}"
    );
    assert!(!b.to_string().contains("NotificationRequest"), "{b}");
}

#[tokio::test]
async fn the_openapi_document_lists_the_errors() {
    let app = spawn().await;
    let (s, doc) = app.get("/openapi.json").await;
    assert_eq!(s, 200);
    let send = &doc["paths"]["/v1/notifications"]["post"]["responses"];
    for status in ["400", "401", "413", "415", "422"] {
        assert!(send[status]["description"].as_str().is_some_and(|d| !d.is_empty()), "{status}: {send}");
        assert_eq!(
            send[status]["content"]["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem",
            "{status}"
        );
    }
    let timeline = doc["paths"]["/v1/users/{user_id}/timeline"]["get"]["parameters"].as_array().unwrap();
    let limit = timeline.iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(limit["schema"]["minimum"], 1, "{limit}");
    assert_eq!(limit["schema"]["maximum"], 100, "{limit}");
    let healthz = &doc["paths"]["/healthz"]["get"]["responses"];
    assert!(healthz.get("401").is_none(), "no credentials, no 401: {healthz}");

    let page = app.client.get(format!("{}/docs", app.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<base href=\"/docs/\">") && html.contains("/openapi.json"), "{html}");
}
