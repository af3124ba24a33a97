//! Every real provider end to end, each against a local fake that speaks its protocol: email to
//! an SMTP server with one-click unsubscribe, APNs over HTTP/2, FCM HTTP v1 with its OAuth2
//! grant, Web Push decrypted as a browser would; plus the dev outbox that the zero-configuration
//! default writes to. Twilio has its own file.

use std::time::Duration;

use herald::config::{ApnsSection, FcmSection, SmtpSection};
use herald_testkit::apns::{FakeApns, signing_key};
use herald_testkit::fcm::{CLIENT_EMAIL, FakeFcm, PUBLIC_KEY, fcm_error, service_account};
use herald_testkit::smtp::{FakeSmtp, Options, Security};
use herald_testkit::web_push::{FakePushService, Subscriber, verify_vapid};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use crate::common::{TestApp, spawn, spawn_with, wait_for};

/// The delivery on `channel` of a notification's first recipient, once it is no longer queued.
pub async fn settled_on(app: &TestApp, id: &str, channel: &str) -> Value {
    wait_for(&format!("{channel} delivery of {id} to settle"), || async {
        let (_, n) = app.get(&format!("/v1/notifications/{id}")).await;
        let d = n["recipients"][0]["deliveries"].as_array()?.iter().find(|d| d["channel"] == channel)?.clone();
        (!matches!(d["status"].as_str(), Some("queued" | "sending"))).then_some(d)
    })
    .await
}

/// Reasons given to `user` for `channel`.
pub async fn reasons(app: &TestApp, user: &str, channel: &str) -> Vec<String> {
    let (_, t) = app.get(&format!("/v1/users/{user}/timeline?limit=100")).await;
    t["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["channel"] == channel)
        .filter_map(|i| i["reason"].as_str().map(str::to_owned))
        .collect()
}

pub async fn put_ok(app: &TestApp, path: &str, body: Value) {
    let (s, b) = app.put(path, body).await;
    assert_eq!(s, 200, "{path}: {b}");
}

pub async fn device(app: &TestApp, user: &str, body: Value) -> String {
    let (s, b) = app.post(&format!("/v1/users/{user}/devices"), body).await;
    assert_eq!(s, 201, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

async fn device_ids(app: &TestApp, user: &str) -> Vec<String> {
    let (_, list) = app.get(&format!("/v1/users/{user}/devices")).await;
    list["items"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect()
}

fn write(dir: &std::path::Path, name: &str, contents: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[tokio::test]
async fn email_arrives_with_both_parts_escaped_html_and_a_working_one_click_unsubscribe() {
    let smtp = FakeSmtp::start(Options::new(Security::Plain)).await;
    let port = smtp.port();
    let app = spawn_with(|c| {
        c.channels.email.smtp = Some(SmtpSection { host: "127.0.0.1".into(), port, ..SmtpSection::default() });
        c.channels.email.from = Some("Herald <noreply@herald.test>".into());
        c.channels.email.retry_schedule_seconds = vec![0];
    })
    .await;
    put_ok(&app, "/v1/users/ana", json!({"name": "Ana", "email": "ana@example.com"})).await;
    put_ok(
        &app,
        "/v1/templates/weekly",
        json!({"class": "marketing", "category": "news",
               "channels": {"email": {"subject": "News from {{ shop }}", "text": "Hi {{ user.name }}, {{ shop }} has news.",
                                      "html": "<p>Hi {{ user.name }}, <b>{{ shop }}</b> has news.</p>"}}}),
    )
    .await;
    let id = app.send(json!({"template": "weekly", "to": ["ana"], "data": {"shop": "<Bo & Co>"}})).await;

    let mail = smtp.wait_for_messages(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(mail.recipients, vec!["ana@example.com"]);
    assert_eq!(mail.header("From").as_deref(), Some("Herald <noreply@herald.test>"));
    assert_eq!(mail.decoded_header("Subject").as_deref(), Some("News from <Bo & Co>"));
    let text = mail.part("text/plain").expect("a text part");
    let html = mail.part("text/html").expect("an HTML part");
    assert_eq!(text.body.trim_end(), "Hi Ana, <Bo & Co> has news.");
    assert_eq!(html.body.trim_end(), "<p>Hi Ana, <b>&lt;Bo &amp; Co&gt;</b> has news.</p>");
    assert_eq!(mail.header("List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
    let link = mail.header("List-Unsubscribe").unwrap();
    let link = link.trim_start_matches('<').trim_end_matches('>');
    assert!(link.starts_with("http://127.0.0.1:8080/v1/unsubscribe/"), "{link}");
    let d = settled_on(&app, &id, "email").await;
    assert_eq!((d["status"].as_str(), d["provider"].as_str()), (Some("sent"), Some("smtp")), "{d}");

    // The link, as the mail client would use it. A GET (a link scanner) changes nothing.
    let path = &link["http://127.0.0.1:8080".len()..];
    let page = app.client.get(format!("{}{path}", app.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = page.text().await.unwrap();
    assert!(page.contains("<form method=\"post\">") && page.contains("“news” emails"), "{page}");
    let (_, prefs) = app.get("/v1/users/ana/preferences").await;
    assert!(prefs["categories"]["news"].is_null(), "a GET does not unsubscribe: {prefs}");
    let tampered = format!("{}{}x", app.url, path);
    assert_eq!(app.client.post(&tampered).send().await.unwrap().status(), 404);

    let done = app
        .client
        .post(format!("{}{path}", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("no longer receive"));
    let (_, prefs) = app.get("/v1/users/ana/preferences").await;
    let channels = prefs["categories"]["news"]["channels"].as_array().expect("news keeps its other channels");
    assert!(!channels.contains(&json!("email")) && channels.contains(&json!("push")), "{prefs}");

    let again = app.send(json!({"template": "weekly", "to": ["ana"], "data": {"shop": "Bo"}})).await;
    let n = app.processed(&again).await;
    assert_eq!(n["recipients"][0]["decision"], "suppressed", "{n}");
    assert!(reasons(&app, "ana", "email").await.contains(&"category_opt_out".to_owned()));
    assert_eq!(smtp.messages().len(), 1, "nothing more reaches the inbox");
}

#[tokio::test]
async fn a_mailbox_that_does_not_exist_is_blocked_after_its_bounce() {
    let smtp = FakeSmtp::start(
        Options::new(Security::Plain).rcpt_reply("gone@example.com", "550 5.1.1 <gone@example.com>: User unknown"),
    )
    .await;
    let port = smtp.port();
    let app = spawn_with(|c| {
        c.channels.email.smtp = Some(SmtpSection { host: "127.0.0.1".into(), port, ..SmtpSection::default() });
        c.channels.email.from = Some("noreply@herald.test".into());
    })
    .await;
    put_ok(&app, "/v1/users/cy", json!({"email": "gone@example.com"})).await;
    put_ok(
        &app,
        "/v1/templates/receipt",
        json!({"class": "transactional", "channels": {"email": {"subject": "Receipt", "text": "Thanks"}}}),
    )
    .await;
    let id = app.send(json!({"template": "receipt", "to": ["cy"], "data": {"order": 1}})).await;
    let d = settled_on(&app, &id, "email").await;
    assert_eq!(d["status"], "bounced", "{d}");
    assert!(d["error"].as_str().unwrap().contains("5.1.1"), "{d}");
    assert!(reasons(&app, "cy", "email").await.contains(&"hard_bounce".to_owned()));

    let again = app.send(json!({"template": "receipt", "to": ["cy"], "data": {"order": 2}})).await;
    app.processed(&again).await;
    assert!(reasons(&app, "cy", "email").await.contains(&"address_blocked".to_owned()));
    assert!(smtp.messages().is_empty());
}

/// Apple device tokens: hexadecimal, as Herald requires.
const LIVE_APPLE: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const DEAD_APPLE: &str = "deadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef";

#[tokio::test]
async fn apns_and_fcm_get_what_they_expect_and_dead_tokens_are_removed() {
    let apns = FakeApns::start().await;
    apns.refuse(DEAD_APPLE, 410, "Unregistered");
    let fcm = FakeFcm::start().await;
    fcm.refuse("fcm-gone", 404, fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."));
    let keys = tempfile::tempdir().unwrap();
    let key_path = write(keys.path(), "AuthKey_KEY1234567.p8", &signing_key().0);
    let account_path = write(keys.path(), "service-account.json", &service_account(fcm.token_uri()));
    let (apns_url, fcm_url) = (apns.url().to_owned(), fcm.endpoint().to_owned());
    let app = spawn_with(move |c| {
        c.channels.push.apns = Some(ApnsSection {
            endpoint: apns_url,
            key_path,
            key_id: "KEY1234567".into(),
            team_id: "TEAM123456".into(),
            topic: "com.example.app".into(),
        });
        c.channels.push.fcm = Some(FcmSection { endpoint: fcm_url, service_account_path: account_path });
    })
    .await;
    for token in [LIVE_APPLE, DEAD_APPLE] {
        device(&app, "ana", json!({"kind": "apns", "token": token})).await;
    }
    for token in ["fcm-1", "fcm-gone"] {
        device(&app, "ana", json!({"kind": "fcm", "token": token})).await;
    }
    put_ok(
        &app,
        "/v1/templates/order",
        json!({"class": "transactional", "channels": {"push": {"title": "Order {{ n }}", "body": "On its way"}}}),
    )
    .await;
    let before = jiff::Timestamp::now().as_second() as u64;
    let id = app
        .send(json!({"template": "order", "to": ["ana"], "data": {"n": 7}, "collapse_key": "order-7", "ttl_seconds": 600}))
        .await;
    let d = settled_on(&app, &id, "push").await;
    assert_eq!((d["status"].as_str(), d["provider"].as_str()), (Some("sent"), Some("apns+fcm")), "{d}");

    let seen = apns.requests();
    assert_eq!(seen.len(), 2, "one request per Apple device");
    let req = seen.iter().find(|r| r.path == format!("/3/device/{LIVE_APPLE}")).expect("the live device was pushed");
    assert_eq!(req.version, axum::http::Version::HTTP_2);
    assert_eq!(req.header("apns-topic"), Some("com.example.app"));
    assert_eq!(req.header("apns-push-type"), Some("alert"));
    assert_eq!(req.header("apns-priority"), Some("10"), "transactional is immediate");
    assert_eq!(req.header("apns-collapse-id"), Some("order-7"));
    let expiration: u64 = req.header("apns-expiration").unwrap().parse().unwrap();
    assert!((before + 600..=before + 610).contains(&expiration), "{expiration}");
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["aps"]["alert"], json!({"title": "Order 7", "body": "On its way"}));
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let jwt = jsonwebtoken::decode::<Value>(
        req.bearer(),
        &DecodingKey::from_ec_pem(signing_key().1.as_bytes()).unwrap(),
        &validation,
    )
    .expect("the provider token verifies against the .p8 key");
    assert_eq!(jwt.header.kid.as_deref(), Some("KEY1234567"));
    assert_eq!(jwt.claims["iss"], "TEAM123456");

    let grant = &fcm.grants()[0];
    assert_eq!(grant["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[fcm.token_uri()]);
    validation.set_issuer(&[CLIENT_EMAIL]);
    let assertion = jsonwebtoken::decode::<Value>(
        &grant["assertion"],
        &DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap(),
        &validation,
    )
    .expect("the grant verifies against the service account key");
    assert_eq!(assertion.claims["scope"], "https://www.googleapis.com/auth/firebase.messaging");
    let sends = fcm.sends();
    assert_eq!(sends.len(), 2, "one request per Android device");
    assert!(
        sends
            .iter()
            .all(|s| s.path == "/v1/projects/herald-test/messages:send" && s.authorization == "Bearer access-1")
    );
    let message = sends.iter().map(|s| s.json()).find(|m| m["message"]["token"] == "fcm-1").unwrap();
    assert_eq!(message["message"]["notification"], json!({"title": "Order 7", "body": "On its way"}));
    assert_eq!(message["message"]["android"]["collapse_key"], "order-7");

    // 410 Unregistered and UNREGISTERED removed their devices; the live ones stay.
    let (_, list) = app.get("/v1/users/ana/devices").await;
    let mut tokens: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|d| d["token"].as_str().unwrap()).collect();
    tokens.sort();
    assert_eq!(tokens, vec![LIVE_APPLE, "fcm-1"]);
}

#[tokio::test]
async fn web_push_decrypts_like_a_browser_and_its_vapid_token_verifies_against_the_published_key() {
    let service = FakePushService::start().await;
    let app = spawn_with(|c| c.channels.web_push.subject = Some("mailto:ops@herald.test".into())).await;
    let (s, key) = app
        .client
        .get(format!("{}/v1/web-push/vapid-public-key", app.url))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(s, 200, "no credentials needed");
    let public_key = key.json::<Value>().await.unwrap()["public_key"].as_str().unwrap().to_owned();
    let browser = Subscriber::new();
    let subscription = |endpoint: String| json!({"kind": "web_push", "subscription": {"endpoint": endpoint, "keys": {"p256dh": browser.p256dh(), "auth": browser.auth()}}});
    device(&app, "ana", subscription(format!("{}/201/live", service.origin()))).await;
    let expired = device(&app, "ana", subscription(format!("{}/410/expired", service.origin()))).await;
    put_ok(
        &app,
        "/v1/templates/alert",
        json!({"class": "critical", "channels": {"web_push": {"title": "New sign-in", "body": "From {{ city }}"}}}),
    )
    .await;
    let id = app.send(json!({"template": "alert", "to": ["ana"], "data": {"city": "Lisbon"}})).await;
    let d = settled_on(&app, &id, "web_push").await;
    assert_eq!((d["status"].as_str(), d["provider"].as_str()), (Some("sent"), Some("web_push")), "{d}");

    let hits = service.hits();
    let hit = hits.iter().find(|h| h.path == "/201/live").expect("the live subscription was pushed");
    let claims = verify_vapid(hit.header("authorization").unwrap(), &public_key, service.origin());
    assert_eq!(claims["sub"], "mailto:ops@herald.test");
    assert_eq!(hit.header("content-encoding"), Some("aes128gcm"));
    assert_eq!(hit.header("urgency"), Some("high"), "critical is urgent");
    assert!(hit.header("ttl").is_some());
    let message: Value = serde_json::from_slice(&browser.open(&hit.body)).unwrap();
    assert_eq!((message["title"].as_str(), message["body"].as_str()), (Some("New sign-in"), Some("From Lisbon")));
    assert!(!device_ids(&app, "ana").await.contains(&expired), "410 removes the subscription");
}

#[tokio::test]
async fn with_no_configuration_every_channel_writes_to_the_dev_outbox() {
    let app = spawn().await;
    put_ok(&app, "/v1/users/ana", json!({"email": "ana@example.com", "phone": "+15551230001", "locale": "fr-CA"}))
        .await;
    device(&app, "ana", json!({"kind": "apns", "token": LIVE_APPLE})).await;
    let browser = Subscriber::new();
    device(
        &app,
        "ana",
        json!({"kind": "web_push", "subscription": {"endpoint": "https://push.example/1", "keys": {"p256dh": browser.p256dh(), "auth": browser.auth()}}}),
    )
    .await;
    put_ok(
        &app,
        "/v1/templates/all",
        json!({"class": "critical", "channels": {
            "push": {"title": "t", "body": "push body"}, "web_push": {"title": "t", "body": "web body"},
            "email": {"subject": "s", "text": "email body"}, "sms": {"body": "sms body"}},
            "locales": {"fr": {"channels": {"push": {"title": "t", "body": "push body en français"}}}}}),
    )
    .await;
    let id = app.send(json!({"template": "all", "to": ["ana"]})).await;
    for channel in ["push", "web_push", "email", "sms"] {
        let d = settled_on(&app, &id, channel).await;
        assert_eq!((d["status"].as_str(), d["provider"].as_str()), (Some("sent"), Some("dev")), "{d}");
        let file = app.dir.path().join("outbox").join(channel).join(format!("{}.json", d["id"].as_str().unwrap()));
        let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(written["channel"], channel);
        assert!(written["content"].to_string().contains("body"), "{written}");
    }
    // The user's locale `fr-CA` has no block of its own: the language's (`fr`) is used, and
    // channels without a French block keep the default.
    let push = app.dir.path().join("outbox/push");
    let written: Value = serde_json::from_slice(
        &std::fs::read(std::fs::read_dir(push).unwrap().next().unwrap().unwrap().path()).unwrap(),
    )
    .unwrap();
    assert_eq!(written["content"]["body"], "push body en français");
    let sms = app.dir.path().join("outbox/sms");
    let written: Value = serde_json::from_slice(
        &std::fs::read(std::fs::read_dir(sms).unwrap().next().unwrap().unwrap().path()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (written["content"]["segments"].as_u64(), written["content"]["encoding"].as_str()),
        (Some(1), Some("gsm7"))
    );
}

#[tokio::test]
async fn a_provider_that_cannot_work_stops_the_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let start = |tweak: &dyn Fn(&mut herald::config::Config)| {
        let mut config = herald::config::Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().to_path_buf(),
            ..herald::config::Config::default()
        };
        tweak(&mut config);
        async move {
            let clock: std::sync::Arc<dyn herald_runtime::Clock> = std::sync::Arc::new(herald_runtime::SystemClock);
            match herald::startup::Application::build_with(config, clock, None).await {
                Ok(_) => panic!("the start should have been refused"),
                Err(e) => e.to_string(),
            }
        }
    };
    let e = start(&|c| c.channels.email.smtp = Some(SmtpSection::default())).await;
    assert!(e.contains("channels.email.from"), "{e}");
    let e = start(&|c| {
        c.channels.push.apns =
            Some(ApnsSection { key_path: "/nonexistent/AuthKey.p8".into(), ..ApnsSection::default() })
    })
    .await;
    assert!(e.contains("/nonexistent/AuthKey.p8"), "{e}");
    let e = start(&|c| c.channels.web_push.subject = Some("ops@example.com".into())).await;
    assert!(e.contains("mailto:"), "{e}");
    let e = start(&|c| c.channels.sms.provider = Some(herald::config::ProviderList::One("smtp".into()))).await;
    assert!(e.contains("not a provider of sms") && e.contains("twilio, dev"), "{e}");
}

#[tokio::test]
async fn an_email_without_a_category_unsubscribes_from_its_own_template() {
    let app = spawn().await;
    put_ok(&app, "/v1/users/bo", json!({"email": "bo@example.com"})).await;
    put_ok(
        &app,
        "/v1/templates/weekly_report",
        json!({"class": "social", "channels": {"email": {"subject": "s", "text": "t {{ n }}"}}}),
    )
    .await;
    put_ok(
        &app,
        "/v1/templates/other",
        json!({"class": "social", "channels": {"email": {"subject": "s", "text": "o"}}}),
    )
    .await;
    let id = app.send(json!({"template": "weekly_report", "to": ["bo"], "data": {"n": 1}})).await;
    let d = settled_on(&app, &id, "email").await;
    let file = app.dir.path().join("outbox/email").join(format!("{}.json", d["id"].as_str().unwrap()));
    let written: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let link = written["unsubscribe_url"].as_str().unwrap();
    let path = &link["http://127.0.0.1:8080".len()..];
    let page = app.client.get(format!("{}{path}", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("“weekly_report” emails"), "the link names what it came with: {page}");
    let done = app.client.post(format!("{}{path}", app.url)).send().await.unwrap();
    assert_eq!(done.status(), 200);

    let again = app.send(json!({"template": "weekly_report", "to": ["bo"], "data": {"n": 2}})).await;
    assert_eq!(app.processed(&again).await["recipients"][0]["reason"], "category_opt_out");
    let other = app.send(json!({"template": "other", "to": ["bo"]})).await;
    assert_eq!(settled_on(&app, &other, "email").await["status"], "sent", "other emails still go");
}
