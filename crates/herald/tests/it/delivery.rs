//! Delivery that survives: dead letters and replay, retries on the clock, circuit breakers with
//! failover to a secondary provider, the hourly ceiling, the daily SMS budget, rate limits,
//! provider feedback and overload shedding.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use herald::config::ProviderList;
use herald_channels::{Provider, SendCommand, SendError, Sent};
use jiff::SignedDuration;
use serde_json::{Value, json};

use crate::common::{Providers, TestApp, spawn, spawn_custom, spawn_with, wait_for};
use crate::webhook::{SECRET, delivery, receiver, settled, setup};

const NOON: &str = "2026-06-01T12:00:00Z";

fn reply() -> Value {
    json!({"template": "new_reply", "to": ["ana"], "data": {"sender": "Bo", "excerpt": "hi", "thread": 3}})
}

/// The delivery on `channel` of the notification's first recipient, once it has this status.
async fn delivery_with(app: &TestApp, id: &str, channel: &str, status: &str) -> Value {
    wait_for(&format!("{channel} delivery of {id} to be {status}"), || async {
        let (_, n) = app.get(&format!("/v1/notifications/{id}")).await;
        let d = n["recipients"][0]["deliveries"].as_array()?.iter().find(|d| d["channel"] == channel)?.clone();
        (d["status"] == status).then_some(d)
    })
    .await
}

async fn timeline_has(app: &TestApp, user: &str, decision: &str, reason: &str) -> bool {
    let (_, t) = app.get(&format!("/v1/users/{user}/timeline?limit=100")).await;
    t["items"].as_array().unwrap().iter().any(|i| i["decision"] == decision && i["reason"] == reason)
}

#[tokio::test]
async fn a_refused_webhook_is_dead_lettered_then_delivered_after_replay() {
    let app = spawn().await;
    let (url, r) = receiver(vec![400]).await;
    setup(&app, &url).await;
    let id = app.send(reply()).await;
    let d = delivery(&settled(&app, &id).await);
    assert_eq!(d["status"], "failed");
    assert_eq!(d["dead_letter"], true);
    assert!(d["dispatched_at"].is_string());

    let (s, list) = app.get("/v1/dead-letters").await;
    assert_eq!(s, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["id"], d["id"]);
    assert_eq!(items[0]["notification_id"], id.as_str());
    assert_eq!(items[0]["user_id"], "ana");
    assert_eq!(items[0]["channel"], "webhook");
    assert_eq!(items[0]["attempts"], 1);
    assert!(items[0]["error"].as_str().unwrap().contains("400"));
    assert!(items[0]["created_at"].is_string() && items[0]["dead_lettered_at"].is_string());
    let (_, other) = app.get("/v1/dead-letters?channel=email").await;
    assert_eq!(other["items"], json!([]));
    let (s, _) = app.get("/v1/dead-letters?channel=pigeon").await;
    assert_eq!(s, 422);

    // The endpoint is fixed (the receiver answers 200 from now on); the operator replays.
    let dl = d["id"].as_str().unwrap();
    let (s, b) = app.post(&format!("/v1/dead-letters/{dl}/replay"), json!({})).await;
    assert_eq!(s, 202, "{b}");
    let d = delivery_with(&app, &id, "webhook", "delivered").await;
    assert_eq!(d["attempts"], 1, "attempts start again on replay");
    assert_eq!(d["dead_letter"], false);
    let hits = r.hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|(h, _)| h["webhook-id"] == dl), "the replay keeps the delivery id");
    let (_, list) = app.get("/v1/dead-letters").await;
    assert_eq!(list["items"], json!([]));
    assert!(timeline_has(&app, "ana", "delivering", "replayed").await);
    let (s, _) = app.post(&format!("/v1/dead-letters/{dl}/replay"), json!({})).await;
    assert_eq!(s, 404, "a delivered notification is not a dead letter");
    let (s, _) = app.post("/v1/dead-letters/not-a-uuid/replay", json!({})).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn a_retry_waits_for_its_time_on_the_clock() {
    let app = spawn_custom(NOON, |c| c.channels.webhook.retry_schedule_seconds = vec![600], Providers::new()).await;
    let (url, r) = receiver(vec![503]).await;
    setup(&app, &url).await;
    let id = app.send(reply()).await;
    let d = wait_for("the first attempt to fail", || async {
        let (_, n) = app.get(&format!("/v1/notifications/{id}")).await;
        let d = n["recipients"][0]["deliveries"].as_array()?.iter().find(|d| d["channel"] == "webhook")?.clone();
        (d["attempts"] == 1 && d["status"] == "queued").then_some(d)
    })
    .await;
    let next: jiff::Timestamp = d["next_attempt_at"].as_str().unwrap().parse().unwrap();
    let at: jiff::Timestamp = NOON.parse().unwrap();
    assert!(next >= at + SignedDuration::from_secs(600) && next <= at + SignedDuration::from_secs(660), "{next}");
    assert!(d["error"].as_str().unwrap().contains("503"));
    assert_eq!(r.hits.lock().unwrap().len(), 1);
    let (_, n) = app.get(&format!("/v1/notifications/{id}")).await;
    assert_eq!(n["status"], "delivering", "a delivery waiting for its retry is not completed: {n}");
    app.advance(SignedDuration::from_secs(661));
    let d = delivery_with(&app, &id, "webhook", "delivered").await;
    assert_eq!(d["attempts"], 2);
    assert_eq!(r.hits.lock().unwrap().len(), 2);
    let (_, n) = app.get(&format!("/v1/notifications/{id}")).await;
    assert_eq!(n["status"], "completed", "{n}");
}

/// A provider that answers 503 until it is told it is healthy.
#[derive(Default)]
struct Flaky {
    calls: AtomicUsize,
    healthy: AtomicBool,
}

#[async_trait]
impl Provider for Flaky {
    fn name(&self) -> &'static str {
        "flaky-smtp"
    }
    async fn send(&self, _: &SendCommand) -> Result<Sent, SendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.healthy.load(Ordering::SeqCst) {
            Ok(Sent::default())
        } else {
            Err(SendError::Transient { message: "503 service unavailable".into(), retry_after: None })
        }
    }
}

/// A provider that always works and counts.
#[derive(Default)]
struct Backup(AtomicUsize);

#[async_trait]
impl Provider for Backup {
    fn name(&self) -> &'static str {
        "backup-smtp"
    }
    async fn send(&self, _: &SendCommand) -> Result<Sent, SendError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Sent::default())
    }
}

async fn metric(app: &TestApp, line_start: &str) -> Option<String> {
    let text = app.client.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    text.lines().find(|l| l.starts_with(line_start)).map(|l| l[line_start.len()..].trim().to_owned())
}

#[tokio::test]
async fn a_dead_provider_opens_its_breaker_and_the_secondary_takes_over() {
    let flaky = Arc::new(Flaky::default());
    let backup = Arc::new(Backup::default());
    let providers = Providers::from([
        ("flaky-smtp".to_owned(), flaky.clone() as Arc<dyn Provider>),
        ("backup-smtp".to_owned(), backup.clone() as Arc<dyn Provider>),
    ]);
    let app = spawn_custom(
        NOON,
        |c| {
            c.channels.email.provider = Some(ProviderList::Many(vec!["flaky-smtp".into(), "backup-smtp".into()]));
            c.channels.email.breaker.failure_threshold = 2;
            c.channels.email.breaker.open_seconds = 60;
            c.defaults.frequency_cap.max = 100;
        },
        providers,
    )
    .await;
    let (s, b) = app
        .put(
            "/v1/templates/alert",
            json!({"class": "social", "channels": {"in_app": {"title": "t {{ n }}", "body": "b"},
                   "email": {"subject": "s {{ n }}", "text": "t"}}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    app.put("/v1/users/ana", json!({"email": "ana@example.com"})).await;
    let (url, hook) = receiver(vec![]).await;
    app.post("/v1/users/ana/devices", json!({"kind": "webhook", "url": url, "secret": SECRET})).await;
    let breaker = r#"herald_breaker_state{channel="email",circuit="flaky-smtp"}"#;

    let mut expect_calls = [1, 2, 2];
    for (n, calls) in expect_calls.iter_mut().enumerate() {
        let id = app.send(json!({"template": "alert", "to": ["ana"], "data": {"n": n}})).await;
        let email = delivery_with(&app, &id, "email", "sent").await;
        assert_eq!(email["provider"], "backup-smtp", "the secondary delivers while the primary is down");
        assert_eq!(email["attempts"], 1, "failover happens within the attempt");
        delivery_with(&app, &id, "webhook", "delivered").await;
        assert_eq!(flaky.calls.load(Ordering::SeqCst), *calls, "an open breaker skips the primary");
    }
    assert_eq!(backup.0.load(Ordering::SeqCst), 3);
    assert_eq!(metric(&app, breaker).await.as_deref(), Some("2"), "open, in /metrics");
    assert_eq!(hook.hits.lock().unwrap().len(), 3, "a dead email provider degrades only email");

    // The primary recovers; after the open period one probe goes through and closes the circuit.
    flaky.healthy.store(true, Ordering::SeqCst);
    app.advance(SignedDuration::from_secs(61));
    let id = app.send(json!({"template": "alert", "to": ["ana"], "data": {"n": 9}})).await;
    let email = delivery_with(&app, &id, "email", "sent").await;
    assert_eq!(email["provider"], "flaky-smtp");
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
    assert_eq!(metric(&app, breaker).await.as_deref(), Some("0"), "closed again");
}

#[tokio::test]
async fn the_hourly_ceiling_and_the_daily_sms_budget_hold_whatever_the_class() {
    let app = spawn_with(|c| {
        c.delivery.hourly_ceiling = 2;
        c.channels.sms.daily_budget = Some(1);
    })
    .await;
    let (s, b) = app
        .put(
            "/v1/templates/alarm",
            json!({"class": "critical", "channels": {"in_app": {"title": "t {{ n }}", "body": "b"}}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (url, r) = receiver(vec![]).await;
    setup(&app, &url).await;
    let mut last = String::new();
    for n in 0..3 {
        last = app.send(json!({"template": "alarm", "to": ["ana"], "data": {"n": n}})).await;
        settled(&app, &last).await;
    }
    assert_eq!(r.hits.lock().unwrap().len(), 2, "never more than the ceiling per hour, not even critical");
    let d = delivery(&settled(&app, &last).await);
    assert_eq!(d["status"], "suppressed");
    assert_eq!(d["error"], "hourly_ceiling");
    assert!(timeline_has(&app, "ana", "suppressed", "hourly_ceiling").await);
    let (_, inbox) = app.get("/v1/users/ana/inbox").await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 3, "the inbox is not capped");

    let (s, b) = app
        .put("/v1/templates/code", json!({"class": "transactional", "channels": {"sms": {"body": "Code {{ c }}"}}}))
        .await;
    assert_eq!(s, 200, "{b}");
    app.put("/v1/users/p1", json!({"phone": "+15550000001"})).await;
    app.put("/v1/users/p2", json!({"phone": "+15550000002"})).await;
    let first = app.send(json!({"template": "code", "to": ["p1"], "data": {"c": 1}})).await;
    delivery_with(&app, &first, "sms", "sent").await;
    let second = app.send(json!({"template": "code", "to": ["p2"], "data": {"c": 2}})).await;
    let d = delivery_with(&app, &second, "sms", "suppressed").await;
    assert_eq!(d["error"], "sms_budget");
    assert!(timeline_has(&app, "p2", "suppressed", "sms_budget").await);
}

#[tokio::test]
async fn email_waits_for_its_domain_rate_and_loses_nothing() {
    let app = spawn_with(|c| {
        c.channels.email.domain_rate_limit = Some(herald::config::RateConfig { per_second: 5.0, burst: Some(1) })
    })
    .await;
    let (s, b) = app
        .put(
            "/v1/templates/receipt",
            json!({"class": "transactional", "channels": {"email": {"subject": "s", "text": "t"}}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let users = ["r1", "r2", "r3", "r4"];
    for u in users {
        app.put(&format!("/v1/users/{u}"), json!({"email": format!("{u}@rate-limited.example")})).await;
    }
    let started = std::time::Instant::now();
    let id = app.send(json!({"template": "receipt", "to": users})).await;
    wait_for("every receipt to be sent", || async {
        let (_, n) = app.get(&format!("/v1/notifications/{id}")).await;
        let sent = n["recipients"].as_array()?.iter().filter(|r| r["deliveries"][0]["status"] == "sent").count();
        (sent == users.len()).then_some(())
    })
    .await;
    // One token at a time at 5 per second: the last of four waits at least 0.6 s for its domain.
    assert!(started.elapsed() >= std::time::Duration::from_millis(590), "{:?}", started.elapsed());
    let waits = metric(&app, r#"herald_rate_limited_total{channel="email",scope="domain"}"#).await;
    assert!(waits.is_some_and(|w| w.parse::<f64>().unwrap() >= 3.0));
}

#[tokio::test]
async fn provider_feedback_blocks_switches_off_and_removes() {
    let app = spawn().await;
    let (s, b) = app
        .put(
            "/v1/templates/mail",
            json!({"class": "transactional", "channels": {"email": {"subject": "s", "text": "t"}}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    for u in ["ana", "bo", "cy"] {
        app.put(&format!("/v1/users/{u}"), json!({"email": format!("{u}@example.com")})).await;
    }

    // A hard bounce for a delivery: the delivery shows it, and the address is never used again.
    let id = app.send(json!({"template": "mail", "to": ["cy"]})).await;
    let d = delivery_with(&app, &id, "email", "sent").await;
    let (s, b) = app
        .post(
            "/v1/feedback",
            json!({"channel": "email", "address": "cy@example.com", "kind": "hard_bounce", "delivery_id": d["id"]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["address_blocked"], true);
    assert_eq!(b["delivery_updated"], true);
    delivery_with(&app, &id, "email", "bounced").await;
    assert!(timeline_has(&app, "cy", "bounced", "hard_bounce").await);
    let again = app.send(json!({"template": "mail", "to": ["cy"], "data": {"again": true}})).await;
    let d = delivery_with(&app, &again, "email", "suppressed").await;
    assert_eq!(d["error"], "address_blocked");
    assert!(timeline_has(&app, "cy", "suppressed", "address_blocked").await);

    // A complaint switches email off for the user behind the address.
    let (s, b) =
        app.post("/v1/feedback", json!({"channel": "email", "address": "bo@example.com", "kind": "complaint"})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["users_affected"], 1);
    let (_, prefs) = app.get("/v1/users/bo/preferences").await;
    assert_eq!(prefs["channels"]["email"], false, "{prefs}");
    let n = app.send(json!({"template": "mail", "to": ["bo"]})).await;
    let d = delivery_with(&app, &n, "email", "suppressed").await;
    assert_eq!(d["error"], "channel_disabled");

    // An invalid token removes the device.
    let (s, b) = app
        .post(
            "/v1/users/ana/devices",
            json!({"kind": "apns", "token": "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) =
        app.post("/v1/feedback", json!({"channel": "push", "address": "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6", "kind": "invalid_token"})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["devices_removed"], 1);
    let (_, devices) = app.get("/v1/users/ana/devices").await;
    assert_eq!(devices["items"], json!([]));

    // Bad reports are refused and change nothing.
    for bad in [
        json!({"channel": "email", "address": "ana@example.com", "kind": "invalid_token"}),
        json!({"channel": "email", "address": "not an address", "kind": "hard_bounce"}),
        json!({"channel": "push", "address": "", "kind": "invalid_token"}),
    ] {
        let (s, b) = app.post("/v1/feedback", bad.clone()).await;
        assert_eq!(s, 422, "{bad} -> {b}");
    }
    let (s, _) = app.post("/v1/feedback", json!({"channel": "email", "address": "a@b.co", "kind": "shrug"})).await;
    assert!(s == 400 || s == 422);
    let ok = app.send(json!({"template": "mail", "to": ["ana"]})).await;
    delivery_with(&app, &ok, "email", "sent").await;
}

/// A webhook endpoint that holds every request until the test lets it go.
async fn gate() -> (String, Arc<tokio::sync::Semaphore>, Arc<AtomicUsize>) {
    let open = Arc::new(tokio::sync::Semaphore::new(0));
    let arrived = Arc::new(AtomicUsize::new(0));
    let (o, a) = (open.clone(), arrived.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let (o, a) = (o.clone(), a.clone());
            async move {
                a.fetch_add(1, Ordering::SeqCst);
                let _ = o.acquire().await.map(|p| p.forget());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, open, arrived)
}

#[tokio::test]
async fn under_overload_marketing_waits_and_critical_flows() {
    let app = spawn_custom(
        NOON,
        |c| {
            c.overload.shed_marketing_at = 1;
            c.overload.shed_social_at = 1000;
            c.overload.shed_transactional_at = 1000;
            c.channels.webhook.timeout_seconds = 30;
            c.defaults.frequency_cap.max = 100;
        },
        Providers::new(),
    )
    .await;
    for (key, class) in [("note", "social"), ("promo", "marketing"), ("alarm", "critical")] {
        let (s, b) = app
            .put(
                &format!("/v1/templates/{key}"),
                json!({"class": class, "channels": {"in_app": {"title": key, "body": "b"}}}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let (slow_url, open, arrived) = gate().await;
    app.post("/v1/users/slow/devices", json!({"kind": "webhook", "url": slow_url, "secret": SECRET})).await;
    let (url, r) = receiver(vec![]).await;
    app.post("/v1/users/ana/devices", json!({"kind": "webhook", "url": url, "secret": SECRET})).await;

    // One delivery stuck in flight puts the queue at the marketing threshold.
    let stuck = app.send(json!({"template": "note", "to": ["slow"]})).await;
    wait_for("the slow endpoint to hold a request", || async { (arrived.load(Ordering::SeqCst) == 1).then_some(()) })
        .await;
    let promo = app.send(json!({"template": "promo", "to": ["ana"]})).await;
    let n = app.processed(&promo).await;
    assert_eq!(n["status"], "waiting");
    assert_eq!(n["recipients"][0]["decision"], "deferred");
    assert_eq!(n["recipients"][0]["reason"], "overload");
    assert!(timeline_has(&app, "ana", "deferred", "overload").await);
    let (_, inbox) = app.get("/v1/users/ana/inbox").await;
    assert_eq!(inbox["items"][0]["title"], "promo", "the inbox is never shed");
    let alarm = app.send(json!({"template": "alarm", "to": ["ana"]})).await;
    delivery_with(&app, &alarm, "webhook", "delivered").await;
    assert_eq!(r.hits.lock().unwrap().len(), 1, "critical flows while marketing waits");

    // The load passes; the shed notification goes out when it is decided again.
    open.add_permits(1);
    delivery_with(&app, &stuck, "webhook", "delivered").await;
    app.advance(SignedDuration::from_secs(61));
    delivery_with(&app, &promo, "webhook", "delivered").await;
    assert_eq!(r.hits.lock().unwrap().len(), 2);
}

/// An SMS provider that fails until told otherwise (the channel's only provider).
#[derive(Default)]
struct Outage(AtomicBool);

#[async_trait]
impl Provider for Outage {
    fn name(&self) -> &'static str {
        "outage-sms"
    }
    async fn send(&self, _: &SendCommand) -> Result<Sent, SendError> {
        if self.0.load(Ordering::SeqCst) {
            Ok(Sent::default())
        } else {
            Err(SendError::Transient { message: "connection refused".into(), retry_after: None })
        }
    }
}

#[tokio::test]
async fn with_no_provider_left_a_delivery_waits_for_the_breaker_without_using_up_retries() {
    let outage = Arc::new(Outage::default());
    let app = spawn_custom(
        NOON,
        |c| {
            c.channels.sms.provider = Some(ProviderList::One("outage-sms".into()));
            c.channels.sms.retry_schedule_seconds = vec![1];
            c.channels.sms.breaker.failure_threshold = 1;
            c.channels.sms.breaker.open_seconds = 300;
        },
        Providers::from([("outage-sms".to_owned(), outage.clone() as Arc<dyn Provider>)]),
    )
    .await;
    let (s, b) = app
        .put("/v1/templates/code", json!({"class": "transactional", "channels": {"sms": {"body": "Code {{ c }}"}}}))
        .await;
    assert_eq!(s, 200, "{b}");
    app.put("/v1/users/ana", json!({"phone": "+15550000009"})).await;
    let id = app.send(json!({"template": "code", "to": ["ana"], "data": {"c": 7}})).await;
    let sms = |error: &'static str| {
        let app = &app;
        let id = id.clone();
        async move {
            wait_for(&format!("the SMS to wait with {error}"), || async {
                let (_, n) = app.get(&format!("/v1/notifications/{id}")).await;
                let d = n["recipients"][0]["deliveries"].as_array()?.iter().find(|d| d["channel"] == "sms")?.clone();
                (d["status"] == "queued" && d["error"].as_str()?.contains(error)).then_some(d)
            })
            .await
        }
    };
    let d = sms("connection refused").await;
    assert_eq!(d["attempts"], 1);
    // The retry falls due while the circuit is open: the delivery waits for it, not counted as an attempt.
    app.advance(SignedDuration::from_secs(2));
    let d = sms("circuit open").await;
    assert_eq!(d["attempts"], 1, "waiting on an open circuit does not use up the retry schedule");
    let until: jiff::Timestamp = d["next_attempt_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(until, NOON.parse::<jiff::Timestamp>().unwrap() + SignedDuration::from_secs(300));
    outage.0.store(true, Ordering::SeqCst);
    app.advance(SignedDuration::from_secs(300));
    let d = delivery_with(&app, &id, "sms", "sent").await;
    assert_eq!(d["attempts"], 2);
    assert_eq!(d["provider"], "outage-sms");
}
