//! Users, devices, preferences, templates, auth, bad input and the OpenAPI document.

use reqwest::Method;
use serde_json::json;

use crate::common::{KEY, spawn};

#[tokio::test]
async fn user_lifecycle_and_erasure() {
    let app = spawn().await;
    let (s, u) = app
        .put(
            "/v1/users/ana",
            json!({"email": "ana@example.com", "phone": "+15551234567", "timezone": "Asia/Kolkata", "name": "Ana"}),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["timezone"], "Asia/Kolkata");
    let (s, u) = app.put("/v1/users/ana", json!({"locale": "fr"})).await;
    assert_eq!(s, 200);
    assert_eq!(u["email"], "ana@example.com", "omitted fields are kept");
    let (s, _) = app.post("/v1/users/ana/devices", json!({"kind": "fcm", "token": "abc"})).await;
    assert_eq!(s, 201);
    let (s, _) = app.req(Method::DELETE, "/v1/users/ana", None).await;
    assert_eq!(s, 204);
    let (s, _) = app.get("/v1/users/ana").await;
    assert_eq!(s, 404, "erased users are gone");
    let (s, _) = app.get("/v1/users/ana/devices").await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn devices_of_every_kind_are_validated() {
    let app = spawn().await;
    for (body, want) in [
        (json!({"kind": "apns", "token": "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"}), 201),
        (json!({"kind": "fcm", "token": "fcm-token"}), 201),
        (
            json!({"kind": "web_push", "subscription": {"endpoint": "https://push.example.com/x", "keys": {
            "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM", "auth": "tBHItJI5svbpez7KI4CCXg"}}}),
            201,
        ),
        (
            json!({"kind": "webhook", "url": "https://hooks.example.com/h", "secret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"}),
            201,
        ),
        (json!({"kind": "apns", "token": "zz"}), 422),
        (json!({"kind": "webhook", "url": "https://hooks.example.com/h", "secret": "nope"}), 422),
        (json!({"kind": "pager"}), 422),
    ] {
        let (s, b) = app.post("/v1/users/u1/devices", body.clone()).await;
        assert_eq!(s, want, "{body} -> {b}");
    }
    let (_, list) = app.get("/v1/users/u1/devices").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert!(items.iter().all(|d| d.get("secret").is_none()), "secrets are never echoed");
    let id = items[0]["id"].as_str().unwrap();
    let (s, _) = app.req(Method::DELETE, &format!("/v1/users/u1/devices/{id}"), None).await;
    assert_eq!(s, 204);
    let (s, _) = app.req(Method::DELETE, &format!("/v1/users/u1/devices/{id}"), None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn preferences_put_replaces_patch_merges() {
    let app = spawn().await;
    app.put("/v1/users/u1", json!({})).await;
    let (s, p) = app
        .put(
            "/v1/users/u1/preferences",
            json!({"channels": {"sms": false}, "quiet_hours": {"start": "22:00", "end": "07:00"}}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["channels"]["sms"], false);
    assert_eq!(p["channels"]["email"], true);
    assert_eq!(p["frequency_cap"], json!({"max": 3, "window_seconds": 3600}), "server default");
    let (_, p) = app
        .req(Method::PATCH, "/v1/users/u1/preferences", Some(json!({"categories": {"marketing": {"enabled": false}}})))
        .await;
    assert_eq!(p["channels"]["sms"], false, "patch keeps what it does not name");
    assert_eq!(p["categories"]["marketing"]["enabled"], false);
    let (_, p) = app.put("/v1/users/u1/preferences", json!({})).await;
    assert_eq!(p["channels"]["sms"], true, "put replaces");
    let token = app.token("u1").await;
    let (s, p) =
        app.req_as(Method::PATCH, "/v1/me/preferences", Some(json!({"channels": {"push": false}})), Some(&token)).await;
    assert_eq!(s, 200);
    assert_eq!(p["channels"]["push"], false);
    let (s, _) = app.put("/v1/users/u1/preferences", json!({"quiet_hours": {"start": "25:00", "end": "07:00"}})).await;
    assert_eq!(s, 422);
}

#[tokio::test]
async fn templates_store_and_preview() {
    let app = spawn().await;
    let tpl = json!({"class": "transactional", "channels": {
        "email": {"subject": "Hi {{ name }}", "text": "{{ body }}", "html": "<p>{{ body }}</p>"},
        "push": {"title": "Hi", "body": "{{ body }}"}, "sms": {"body": "Code {{ body }}"}},
        "locales": {"fr": {"channels": {"push": {"title": "Salut", "body": "{{ body }}"}}}}});
    let (s, b) = app.put("/v1/templates/receipt", tpl).await;
    assert_eq!(s, 200, "{b}");
    let (s, t) = app.get("/v1/templates/receipt").await;
    assert_eq!(s, 200);
    assert_eq!(t["class"], "transactional");
    let (s, p) = app
        .post("/v1/templates/receipt/preview", json!({"channel": "email", "data": {"name": "Ana", "body": "<script>"}}))
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["html"], "<p>&lt;script&gt;</p>");
    assert_eq!(p["text"], "<script>");
    let (_, p) = app
        .post("/v1/templates/receipt/preview", json!({"channel": "push", "locale": "fr-CA", "data": {"body": "x"}}))
        .await;
    assert_eq!(p["title"], "Salut");
    assert!(p.get("sms").is_none());
    let (_, p) =
        app.post("/v1/templates/receipt/preview", json!({"channel": "sms", "data": {"body": "€".repeat(80)}})).await;
    assert_eq!(p["sms"], json!({"encoding": "gsm7", "units": 165, "segments": 2}), "{p}");
    let (_, p) = app.post("/v1/templates/receipt/preview", json!({"channel": "sms", "data": {"body": "ü ✓"}})).await;
    assert_eq!(p["sms"], json!({"encoding": "ucs2", "units": 8, "segments": 1}), "{p}");
    let (s, p) = app.post("/v1/templates/receipt/preview", json!({"channel": "email", "data": {"name": "Ana"}})).await;
    assert_eq!(s, 422);
    assert!(p["detail"].as_str().unwrap().contains("body"), "{p}");
    let (s, _) = app.put("/v1/templates/broken", json!({"channels": {"push": {"title": "{{ x", "body": "y"}}})).await;
    assert_eq!(s, 422);
}

#[tokio::test]
async fn bad_input_is_a_problem_and_changes_nothing() {
    let app = spawn().await;
    app.put("/v1/users/ana", json!({"timezone": "Europe/Paris", "phone": "+15551234567"})).await;
    let cases = [
        (Method::PUT, "/v1/users/ana".to_owned(), Some(json!({"timezone": "Mars/Base"})), 422),
        (Method::PUT, "/v1/users/ana".to_owned(), Some(json!({"phone": "555-1234"})), 422),
        (Method::PUT, format!("/v1/users/{}", "a".repeat(129)), Some(json!({})), 422),
        (Method::PUT, "/v1/users/bad%20id".to_owned(), Some(json!({})), 422),
        (Method::POST, "/v1/notifications".to_owned(), Some(json!({"template": "nope", "to": ["ana"]})), 422),
        (Method::POST, "/v1/notifications".to_owned(), Some(json!({"to": ["ana"]})), 422),
    ];
    for (method, path, body, want) in cases {
        let (s, p) = app.req(method, &path, body).await;
        assert_eq!(s, want, "{path}: {p}");
        assert_eq!(p["status"], want, "problem+json body: {p}");
        assert!(p["title"].is_string() && p["type"].is_string() && p["detail"].is_string());
    }
    let (_, u) = app.get("/v1/users/ana").await;
    assert_eq!(u["timezone"], "Europe/Paris");
    assert_eq!(u["phone"], "+15551234567");

    let resp = app
        .client
        .post(format!("{}/v1/notifications", app.url))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body("{\"template\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");

    let huge = format!(
        "{{\"template\": \"t\", \"to\": [\"ana\"], \"data\": {{\"x\": \"{}\"}}}}",
        "a".repeat(1024 * 1024 + 10)
    );
    let resp =
        app.client.post(format!("{}/v1/notifications", app.url)).bearer_auth(KEY).body(huge).send().await.unwrap();
    assert_eq!(resp.status(), 413);

    let (_, timeline) = app.get("/v1/users/ana/timeline").await;
    assert_eq!(timeline["items"], json!([]), "nothing was sent");
}

#[tokio::test]
async fn credentials_are_required_and_scoped() {
    let app = spawn().await;
    let (s, p) = app.req_as(Method::GET, "/v1/users/ana", None, None).await;
    assert_eq!(s, 401, "{p}");
    let (s, _) = app.req_as(Method::GET, "/v1/users/ana", None, Some("wrong")).await;
    assert_eq!(s, 401);
    app.put("/v1/users/ana", json!({})).await;
    let token = app.token("ana").await;
    let (s, _) = app.req_as(Method::GET, "/v1/users/ana", None, Some(&token)).await;
    assert_eq!(s, 401, "a user token is not an API key");
    let (s, _) = app.req_as(Method::GET, "/v1/me/inbox", None, Some(KEY)).await;
    assert_eq!(s, 401, "an API key is not a user token");
    let (s, _) = app.req_as(Method::GET, "/v1/me/inbox", None, Some(&token)).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn openapi_documents_every_route() {
    let app = spawn().await;
    let (s, doc) = app.req_as(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, 200);
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/v1/users/{user_id}",
        "/v1/users/{user_id}/token",
        "/v1/users/{user_id}/devices",
        "/v1/users/{user_id}/devices/{device_id}",
        "/v1/users/{user_id}/preferences",
        "/v1/me/preferences",
        "/v1/templates/{key}",
        "/v1/templates/{key}/preview",
        "/v1/notifications",
        "/v1/notifications/batch",
        "/v1/notifications/{id}",
        "/v1/users/{user_id}/timeline",
        "/v1/me/inbox",
        "/v1/me/inbox/read",
        "/v1/me/inbox/unread",
        "/v1/me/inbox/stream",
        "/v1/users/{user_id}/inbox",
        "/v1/topics/{key}/subscribers",
        "/v1/dead-letters",
        "/v1/dead-letters/{id}/replay",
        "/v1/feedback",
        "/v1/stats",
        "/v1/unsubscribe/{token}",
        "/v1/providers/twilio/status",
        "/v1/providers/twilio/inbound",
        "/v1/web-push/vapid-public-key",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
    ] {
        assert!(paths.contains_key(route), "{route} is not documented");
    }
    let resp = app.client.get(format!("{}/docs/", app.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (s, _) = app.req_as(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, 200);
    let metrics = app.client.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("herald_http_request_seconds"), "{metrics}");
}

#[tokio::test]
async fn stats_count_by_class_channel_status_and_reason() {
    let app = spawn().await;
    let (s, b) = app
        .put(
            "/v1/templates/promo",
            json!({"class": "marketing", "channels": {"in_app": {"title": "t", "body": "{{ n }}"}, "sms": {"body": "b"}}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = app.put("/v1/users/ana", json!({"phone": "+15551234567"})).await;
    assert_eq!(s, 200);
    for n in 0..2 {
        let id = app.send(json!({"template": "promo", "to": ["ana", "bo"], "data": {"n": n}})).await;
        app.processed(&id).await;
    }
    let (s, stats) = app.get("/v1/stats").await;
    assert_eq!(s, 200, "{stats}");
    assert_eq!(stats["notifications"], json!({"total": 2, "by_class": {"marketing": 2}}));
    assert_eq!(stats["deliveries"]["by_channel"]["in_app"]["delivered"], 4, "{stats}");
    assert_eq!(stats["deliveries"]["by_class"]["marketing"]["delivered"], 4, "{stats}");
    // Marketing never goes by SMS without an explicit opt-in; Bo has no phone anyway.
    assert_eq!(stats["suppressed"]["by_reason"]["no_sms_opt_in"], 4, "{stats}");
    assert_eq!(stats["dead_letters"], 0);
    let (_, later) = app.get("/v1/stats?since=2999-01-01T00:00:00Z").await;
    assert_eq!(later["notifications"]["total"], 0, "{later}");
    let (s, _) = app.get("/v1/stats?since=yesterday").await;
    assert_eq!(s, 422);
    let (s, _) = app.req_as(Method::GET, "/v1/stats", None, None).await;
    assert_eq!(s, 401);
}
