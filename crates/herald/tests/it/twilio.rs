//! SMS through Twilio end to end, against a fake of its Messages API: the request's shape,
//! signed status callbacks (and forged ones refused), STOP / START / HELP, late failures handing
//! over to the next channel, reports about superseded attempts, and segments.

use std::time::Duration;

use herald::config::{Config, RateConfig, TwilioSection};
use herald_testkit::twilio::{Failure, FakeTwilio};
use serde_json::{Value, json};

use crate::common::{TestApp, spawn_on, spawn_with, wait_for};
use crate::providers::{device, put_ok, reasons, settled_on};
use crate::webhook::{SECRET, receiver};

const SID: &str = "AC00000000000000000000000000000001";
const AUTH_TOKEN: &str = "twilio-auth-token";
const ANA: &str = "+15551230001";
const INBOUND: &str = "/v1/providers/twilio/inbound";

/// A Herald whose SMS go to `twilio`, with a `code` template of `class` and Ana's phone.
async fn app_with(twilio: &FakeTwilio, class: &str, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let base_url = twilio.base_url();
    let app = spawn_with(move |c| {
        c.channels.sms.twilio = Some(TwilioSection {
            base_url,
            account_sid: SID.into(),
            auth_token: AUTH_TOKEN.into(),
            from: "+15550000000".into(),
            help_text: Some("Herald alerts. Reply STOP to stop.".into()),
            ..TwilioSection::default()
        });
        c.channels.sms.retry_schedule_seconds = vec![0, 0];
        tweak(c);
    })
    .await;
    put_ok(&app, "/v1/users/ana", json!({"phone": ANA})).await;
    put_ok(
        &app,
        "/v1/templates/code",
        json!({"class": class, "channels": {"sms": {"body": "Your code is {{ code }}"}}}),
    )
    .await;
    app
}

fn code(n: u32) -> Value {
    json!({"template": "code", "to": ["ana"], "data": {"code": n}})
}

/// Posts a Twilio callback to `path`, signed with `token` for the URL Twilio would have called
/// (Herald's default `public_url` + `path`).
async fn callback(app: &TestApp, path: &str, params: &[(&str, &str)], token: &str) -> (u16, String) {
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let signature = herald_channels::twilio::signature(token, &format!("http://127.0.0.1:8080{path}"), &params);
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish();
    let resp = app
        .client
        .post(format!("{}{path}", app.url))
        .header("x-twilio-signature", signature)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The status callback path Herald gave Twilio for `delivery` and `attempt`.
fn status_path(delivery: &str, attempt: u32) -> String {
    format!("/v1/providers/twilio/status?delivery_id={delivery}&attempt={attempt}")
}

async fn keyword(app: &TestApp, body: &str) -> (u16, String) {
    callback(app, INBOUND, &[("AccountSid", SID), ("From", ANA), ("To", "+15550000000"), ("Body", body)], AUTH_TOKEN)
        .await
}

#[tokio::test]
async fn twilio_gets_the_right_request_and_signed_statuses_update_the_delivery() {
    let twilio = FakeTwilio::start(SID, AUTH_TOKEN).await.unwrap();
    let app = app_with(&twilio, "critical", |_| {}).await;
    let id = app.send(code(1234)).await;
    let sms = twilio.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(sms.path, format!("/2010-04-01/Accounts/{SID}/Messages.json"));
    assert_eq!(sms.basic_auth(), Some((SID.to_owned(), AUTH_TOKEN.to_owned())));
    assert_eq!(
        (sms.field("To"), sms.field("From"), sms.field("Body")),
        (Some(ANA), Some("+15550000000"), Some("Your code is 1234"))
    );
    let d = settled_on(&app, &id, "sms").await;
    assert_eq!((d["status"].as_str(), d["provider"].as_str()), (Some("sent"), Some("twilio")), "{d}");
    let path = status_path(d["id"].as_str().unwrap(), 1);
    assert_eq!(sms.field("StatusCallback"), Some(format!("http://127.0.0.1:8080{path}").as_str()));

    let delivered = [("AccountSid", SID), ("MessageSid", "SM1"), ("MessageStatus", "delivered"), ("To", ANA)];
    assert_eq!(callback(&app, &path, &delivered, "not-the-token").await.0, 403, "a forged report");
    let other_account = [("AccountSid", "AC99"), ("MessageSid", "SM1"), ("MessageStatus", "delivered")];
    assert_eq!(callback(&app, &path, &other_account, AUTH_TOKEN).await.0, 403, "another account's report");
    assert_eq!(callback(&app, &status_path("not-a-uuid", 1), &delivered, AUTH_TOKEN).await.0, 422, "no delivery named");
    assert_eq!(settled_on(&app, &id, "sms").await["status"], "sent", "nothing changed");
    assert_eq!(callback(&app, &path, &delivered, AUTH_TOKEN).await.0, 204);
    assert_eq!(settled_on(&app, &id, "sms").await["status"], "delivered");
    let late = [("AccountSid", SID), ("MessageSid", "SM1"), ("MessageStatus", "undelivered"), ("ErrorCode", "30003")];
    assert_eq!(callback(&app, &path, &late, AUTH_TOKEN).await.0, 204);
    assert_eq!(settled_on(&app, &id, "sms").await["status"], "delivered", "a final status never changes");
}

#[tokio::test]
async fn stop_holds_even_for_critical_until_start_and_forged_keywords_change_nothing() {
    let twilio = FakeTwilio::start(SID, AUTH_TOKEN).await.unwrap();
    let app = app_with(&twilio, "critical", |_| {}).await;
    let forged = [("AccountSid", SID), ("From", ANA), ("Body", "STOP")];
    assert_eq!(callback(&app, INBOUND, &forged, "forged").await.0, 403);
    app.send(code(1)).await;
    twilio.wait_for(1, Duration::from_secs(10)).await;

    let (s, twiml) = keyword(&app, "help").await;
    assert_eq!((s, twiml.contains("<Message>Herald alerts. Reply STOP to stop.</Message>")), (200, true), "{twiml}");
    let (s, twiml) = keyword(&app, "Stop").await;
    assert_eq!((s, twiml.contains("<Response/>")), (200, true), "{twiml}");
    let (_, blocks) = app.get("/v1/address-blocks?channel=sms").await;
    assert_eq!(blocks["items"][0]["kind"], "stop", "{blocks}");
    let held = app.send(code(2)).await;
    let n = app.processed(&held).await;
    assert_eq!(n["recipients"][0]["reason"], "sms_stop", "not even critical: {n}");
    keyword(&app, "START").await;
    app.send(code(3)).await;
    let all = twilio.wait_for(2, Duration::from_secs(10)).await;
    let bodies: Vec<_> = all.iter().filter_map(|m| m.field("Body")).collect();
    assert_eq!(bodies, vec!["Your code is 1", "Your code is 3"], "nothing went out while stopped");

    // A number that replied STOP to Twilio itself (error 21610) is blocked here too.
    twilio.opt_out(ANA);
    let refused = app.send(code(4)).await;
    let d = settled_on(&app, &refused, "sms").await;
    assert_eq!(d["status"], "bounced", "{d}");
    assert_eq!(twilio.messages().len(), 3, "the refused request reached Twilio");
    let blocked = app.send(code(5)).await;
    let n = app.processed(&blocked).await;
    assert_eq!(n["recipients"][0]["reason"], "sms_stop", "{n}");
    assert_eq!(twilio.messages().len(), 3, "the block held: Twilio saw nothing more");
}

#[tokio::test]
async fn a_failure_reported_late_hands_over_to_the_next_channel_and_old_attempts_are_ignored() {
    let twilio = FakeTwilio::start(SID, AUTH_TOKEN).await.unwrap();
    let app = app_with(&twilio, "transactional", |_| {}).await;
    // SMS comes before the webhook among transactional channels: the webhook waits on standby.
    put_ok(
        &app,
        "/v1/templates/code",
        json!({"class": "transactional", "channels": {"sms": {"body": "Your code is {{ code }}"},
                                                      "webhook": {"title": "Code", "body": "{{ code }}"}}}),
    )
    .await;
    let (url, hook) = receiver(vec![]).await;
    device(&app, "ana", json!({"kind": "webhook", "url": url, "secret": SECRET})).await;

    let id = app.send(code(7)).await;
    let d = settled_on(&app, &id, "sms").await;
    assert_eq!(d["status"], "sent");
    let webhook = settled_on(&app, &id, "webhook").await;
    assert_eq!(
        (webhook["status"].as_str(), webhook["error"].as_str()),
        (Some("suppressed"), Some("fallback_not_needed"))
    );

    // A report about an earlier attempt than the last does not count...
    let path = |attempt| status_path(d["id"].as_str().unwrap(), attempt);
    let failed = [("AccountSid", SID), ("MessageSid", "SM1"), ("MessageStatus", "undelivered"), ("ErrorCode", "30003")];
    assert_eq!(callback(&app, &path(0), &failed, AUTH_TOKEN).await.0, 204);
    assert_eq!(settled_on(&app, &id, "sms").await["status"], "sent");
    // ...the current one's does: the SMS failed, and the webhook takes over.
    assert_eq!(callback(&app, &path(1), &failed, AUTH_TOKEN).await.0, 204);
    let sms = settled_on(&app, &id, "sms").await;
    assert_eq!(sms["status"], "failed");
    assert!(sms["error"].as_str().unwrap().contains("30003"), "{sms}");
    let webhook = settled_on(&app, &id, "webhook").await;
    assert_eq!(webhook["status"], "delivered", "{webhook}");
    assert_eq!(hook.hits.lock().unwrap().len(), 1);
    let (_, dead) = app.get("/v1/dead-letters?channel=sms").await;
    assert_eq!(dead["items"][0]["id"], d["id"], "{dead}");
    assert!(reasons(&app, "ana", "webhook").await.contains(&"fallback".to_owned()));
}

#[tokio::test]
async fn a_status_that_beats_the_record_of_the_send_still_settles_it() {
    let twilio = FakeTwilio::start(SID, AUTH_TOKEN).await.unwrap();
    let app = app_with(&twilio, "critical", |_| {}).await;
    // Twilio takes two seconds to answer the send; its delivery report comes before that.
    twilio.set_latency(Duration::from_secs(2));
    let id = app.send(code(1)).await;
    twilio.wait_for(1, Duration::from_secs(10)).await;
    let d = wait_for("the send in flight", || async {
        let (_, n) = app.get(&format!("/v1/notifications/{id}")).await;
        let d = n["recipients"][0]["deliveries"].as_array()?.iter().find(|d| d["channel"] == "sms")?.clone();
        (d["status"] == "sending").then_some(d)
    })
    .await;
    let delivered = [("AccountSid", SID), ("MessageSid", "SM1"), ("MessageStatus", "delivered")];
    assert_eq!(callback(&app, &status_path(d["id"].as_str().unwrap(), 1), &delivered, AUTH_TOKEN).await.0, 204);
    assert_eq!(settled_on(&app, &id, "sms").await["status"], "delivered");
    // Stopping waits for the send in flight to get its answer and record it: that answer (201,
    // accepted) must not turn the delivered report back into `sent`.
    let dir = app.dir.clone();
    app.stop().await;
    let app = spawn_on(dir, jiff::Timestamp::now()).await;
    let d = settled_on(&app, &id, "sms").await;
    assert_eq!((d["status"].as_str(), d["attempts"].as_u64()), (Some("delivered"), Some(1)), "{d}");
    assert_eq!(twilio.messages().len(), 1);
}

#[tokio::test]
async fn a_start_does_not_lift_a_hard_bounce_but_an_operator_can() {
    let twilio = FakeTwilio::start(SID, AUTH_TOKEN).await.unwrap();
    let app = app_with(&twilio, "critical", |_| {}).await;
    twilio.fail(ANA, Failure::new(400, 21211, "The 'To' number is not a valid phone number."));
    let id = app.send(code(1)).await;
    assert_eq!(settled_on(&app, &id, "sms").await["status"], "bounced");
    keyword(&app, "STOP").await;
    keyword(&app, "START").await;
    let (_, blocks) = app.get("/v1/address-blocks?channel=sms").await;
    assert_eq!(blocks["items"].as_array().unwrap().len(), 1);
    assert_eq!(blocks["items"][0]["kind"], "hard_bounce", "{blocks}");
    let held = app.send(code(2)).await;
    assert_eq!(app.processed(&held).await["recipients"][0]["reason"], "address_blocked");

    twilio.recover(ANA);
    let lift = format!("/v1/address-blocks/sms/{}", ANA.replace('+', "%2B"));
    let (s, _) = app.req(reqwest::Method::DELETE, &lift, None).await;
    assert_eq!(s, 204);
    let (s, _) = app.req(reqwest::Method::DELETE, &lift, None).await;
    assert_eq!(s, 404, "nothing left to lift");
    let again = app.send(code(3)).await;
    assert_eq!(settled_on(&app, &again, "sms").await["status"], "sent");
}

#[tokio::test]
async fn a_stop_that_arrives_while_a_send_waits_for_its_rate_is_honoured() {
    let twilio = FakeTwilio::start(SID, AUTH_TOKEN).await.unwrap();
    // One SMS every five seconds: the second waits for its token long after the STOP arrives.
    let app = app_with(&twilio, "critical", |c| {
        c.channels.sms.rate_limit = Some(RateConfig { per_second: 0.2, burst: Some(1) })
    })
    .await;
    app.send(code(1)).await;
    twilio.wait_for(1, Duration::from_secs(10)).await;
    let waiting = app.send(code(2)).await;
    app.processed(&waiting).await;
    keyword(&app, "STOP").await;
    let d = settled_on(&app, &waiting, "sms").await;
    assert_eq!((d["status"].as_str(), d["error"].as_str()), (Some("suppressed"), Some("sms_stop")), "{d}");
    assert_eq!(twilio.messages().len(), 1);
}

#[tokio::test]
async fn a_long_sms_is_shortened_to_its_segments() {
    let twilio = FakeTwilio::start(SID, AUTH_TOKEN).await.unwrap();
    let app = app_with(&twilio, "transactional", |c| c.channels.sms.max_segments = Some(1)).await;
    put_ok(&app, "/v1/templates/long", json!({"class": "transactional", "channels": {"sms": {"body": "{{ text }}"}}}))
        .await;
    app.send(json!({"template": "long", "to": ["ana"], "data": {"text": "a".repeat(400)}})).await;
    let sms = twilio.wait_for(1, Duration::from_secs(10)).await.remove(0);
    let body = sms.field("Body").unwrap();
    assert_eq!(body.len(), 160, "one GSM-7 segment");
    assert!(body.ends_with("..."), "{body}");
}
