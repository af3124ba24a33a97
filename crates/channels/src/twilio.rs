//! Twilio Programmable Messaging: sending SMS, request signatures, delivery statuses.
//!
//! Written by hand over reqwest: Herald needs one form-encoded POST per message, an HMAC-SHA1
//! check of Twilio's callbacks and a table of statuses, while the official SDKs are heavy and
//! bring their own HTTP stacks. Twilio takes no idempotency key when creating a message, so a
//! request that timed out after Twilio accepted it is sent again when the delivery is retried.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::Value;
use sha1::Sha1;
use uuid::Uuid;

use crate::outcome::Outcomes;
use crate::payload::truncate_utf8;
use crate::{AddressBlock, Provider, SendCommand, SendError, Sent, Target};

/// Provider error text kept in delivery messages.
const MAX_DETAIL_BYTES: usize = 300;
/// The number replied STOP (or another opt-out word) to this sender.
const CODE_UNSUBSCRIBED: u32 = 21610;
/// The `To` number is not a valid phone number.
const CODE_INVALID_TO: u32 = 21211;
/// The `To` number is not a mobile number.
const CODE_NOT_MOBILE: u32 = 21614;
/// Too many requests for the account.
const CODE_TOO_MANY_REQUESTS: u32 = 20429;
/// Delivery report: the destination handset is unknown to the carrier.
const CODE_UNKNOWN_HANDSET: u32 = 30005;
/// Delivery report: a landline, or a carrier that cannot reach the number.
const CODE_LANDLINE: u32 = 30006;

/// Which Twilio account sends, and from where.
#[derive(Clone)]
pub struct TwilioConfig {
    /// Base URL of the API, e.g. `https://api.twilio.com`.
    pub base_url: String,
    /// Account SID (`AC...`), the Basic auth user name.
    pub account_sid: String,
    /// Auth token, the Basic auth password and the key of callback signatures.
    pub auth_token: String,
    /// Sender: an E.164 number (or alphanumeric sender ID), or a Messaging Service SID (`MG...`).
    pub from: String,
    /// URL Twilio posts delivery statuses to; `delivery_id=<id>` is added to its query.
    pub status_callback: Option<String>,
}

impl fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("from", &self.from)
            .field("status_callback", &self.status_callback)
            .finish()
    }
}

/// The body of a created message; only the SID is of interest.
#[derive(Deserialize)]
struct Created {
    sid: Option<String>,
}

/// Twilio's error body: `{"code", "message", "more_info", "status"}`.
#[derive(Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
}

/// Sends SMS through Twilio's Messages API.
pub struct Twilio {
    client: reqwest::Client,
    messages_url: String,
    account_sid: String,
    auth_token: String,
    /// `From`, or `MessagingServiceSid` when sending through a Messaging Service.
    sender_param: &'static str,
    sender: String,
    status_callback: Option<String>,
}

impl Twilio {
    /// A client for the account in `config`, whose requests time out after `timeout`.
    pub fn new(config: TwilioConfig, timeout: Duration) -> Result<Twilio, String> {
        let base_url = config.base_url.trim().trim_end_matches('/');
        // The API paths are appended to it, which a query or fragment would swallow.
        if !is_http_url(base_url) || base_url.contains(['?', '#']) {
            return Err(format!("twilio base_url {base_url:?} is not an http(s) URL without query or fragment"));
        }
        let account_sid = config.account_sid.trim();
        // Also keeps the SID, which goes into the request path, free of '/', '?' and the like.
        if account_sid.len() <= 2
            || !account_sid.starts_with("AC")
            || !account_sid.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err("twilio account_sid must be an account SID (AC followed by letters and digits)".into());
        }
        let auth_token = config.auth_token.trim();
        if auth_token.is_empty() {
            return Err("twilio auth_token is empty".into());
        }
        let sender = config.from.trim();
        if sender.is_empty() {
            return Err("twilio from is empty: give a phone number or a Messaging Service SID".into());
        }
        // A Messaging Service SID is MG and 32 hex digits; an alphanumeric sender such as
        // "MGMResorts" is a sender id, not a service.
        let service =
            sender.len() == 34 && sender.starts_with("MG") && sender[2..].bytes().all(|b| b.is_ascii_hexdigit());
        let sender_param = if service { "MessagingServiceSid" } else { "From" };
        let status_callback = match config.status_callback {
            None => None,
            Some(url) => {
                let url = url.trim();
                // A fragment would swallow the query added for each delivery.
                if !is_http_url(url) || url.contains('#') {
                    return Err(format!("twilio status_callback {url:?} is not an http(s) URL without a fragment"));
                }
                Some(url.to_owned())
            }
        };
        let client = crate::http_client(timeout).build().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Twilio {
            client,
            messages_url: format!("{base_url}/2010-04-01/Accounts/{account_sid}/Messages.json"),
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            sender_param,
            sender: sender.to_owned(),
            status_callback,
        })
    }

    /// The status callback URL naming the delivery and the attempt, so the callback finds its
    /// delivery and a late report about an earlier attempt (one that timed out at Herald's end
    /// but reached Twilio) is told apart from the current one.
    fn status_callback_for(&self, delivery_id: Uuid, attempt: u32) -> Option<String> {
        let base = self.status_callback.as_deref()?;
        let separator = if base.contains('?') { '&' } else { '?' };
        // A UUID and a number need no percent-encoding.
        Some(format!("{base}{separator}delivery_id={delivery_id}&attempt={attempt}"))
    }

    /// The form-encoded parameters of one message.
    fn form(&self, cmd: &SendCommand, to: &str, body: &str) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("To", to).append_pair(self.sender_param, &self.sender).append_pair("Body", body);
        if let Some(callback) = self.status_callback_for(cmd.delivery_id, cmd.attempt) {
            form.append_pair("StatusCallback", &callback);
        }
        form.finish()
    }

    /// Sends `body` to one number.
    async fn send_one(&self, cmd: &SendCommand, to: &str, body: &str) -> Result<(), SendError> {
        let form = self.form(cmd, to, body);
        let resp = self
            .client
            .post(&self.messages_url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| SendError::Transient { message: format!("Twilio request failed: {e}"), retry_after: None })?;
        let status = resp.status();
        if status.is_success() {
            // The status is what counts: an unreadable body does not undo the acceptance.
            let sid = resp.json::<Created>().await.ok().and_then(|c| c.sid);
            let sid = sid.as_deref().unwrap_or("unknown");
            tracing::debug!(delivery_id = %cmd.delivery_id, sid, "Twilio accepted the message");
            return Ok(());
        }
        let retry_after = crate::retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        Err(classify(status, &text, retry_after))
    }
}

/// Whether `url` parses as an absolute http or https URL.
fn is_http_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// The send error for a refused request, from its status and Twilio's error body.
fn classify(status: StatusCode, text: &str, retry_after: Option<u64>) -> SendError {
    let (code, detail) = match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) => (body.code, body.message.unwrap_or_default()),
        Err(_) => (None, text.to_owned()),
    };
    let detail = truncate_utf8(detail.trim(), MAX_DETAIL_BYTES);
    let message = match code {
        Some(code) => format!("Twilio answered {status}, code {code}: {detail}"),
        None => format!("Twilio answered {status}: {detail}"),
    };
    if let Some(block) = code.and_then(block) {
        return SendError::Unreachable { message, block };
    }
    // Rejected credentials (or a suspended account) fail every message alike: the operator must
    // act, and retrying lets the circuit breaker open for the whole provider meanwhile, where a
    // permanent error would dead-letter each notification one by one.
    let config = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
    if config || code == Some(CODE_TOO_MANY_REQUESTS) {
        return SendError::Transient { message, retry_after };
    }
    SendError::from_status(status, message, retry_after)
}

/// The block a Twilio error code puts on the number, from a refused request or a delivery report.
fn block(code: u32) -> Option<AddressBlock> {
    match code {
        CODE_UNSUBSCRIBED => Some(AddressBlock::Stopped),
        CODE_INVALID_TO | CODE_NOT_MOBILE | CODE_UNKNOWN_HANDSET | CODE_LANDLINE => Some(AddressBlock::HardBounce),
        _ => None,
    }
}

#[async_trait]
impl Provider for Twilio {
    fn name(&self) -> &'static str {
        "twilio"
    }

    async fn send(&self, cmd: &SendCommand) -> Result<Sent, SendError> {
        let body = cmd
            .payload
            .get("body")
            .and_then(Value::as_str)
            .filter(|b| !b.trim().is_empty())
            .ok_or_else(|| SendError::Permanent("SMS payload has no body".into()))?;
        let mut outcomes = Outcomes::new("no phone number to send to");
        for target in &cmd.targets {
            let Target::Phone(to) = target else { continue };
            let outcome = self.send_one(cmd, to, body).await;
            match &outcome {
                Err(e @ SendError::Unreachable { .. }) => {
                    tracing::info!(delivery_id = %cmd.delivery_id, error = %e, "Twilio says the number takes no SMS");
                }
                Err(e) => tracing::warn!(delivery_id = %cmd.delivery_id, error = %e, "Twilio attempt failed"),
                Ok(()) => {}
            }
            outcomes.add(outcome.map(|()| Sent::default()));
        }
        outcomes.finish()
    }
}

/// The MAC of a Twilio request: the URL, then each parameter's name and value, sorted by name and
/// then value.
fn request_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_unstable();
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// The `X-Twilio-Signature` of a request to `url` with form `params`: base64 of HMAC-SHA1 keyed
/// with the auth token.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(request_mac(auth_token, url, params).finalize().into_bytes())
}

/// Whether `given` is the `X-Twilio-Signature` of this request, compared in constant time.
pub fn verify_signature(auth_token: &str, url: &str, params: &[(String, String)], given: &str) -> bool {
    let Ok(given) = STANDARD.decode(given.trim()) else { return false };
    request_mac(auth_token, url, params).verify_slice(&given).is_ok()
}

/// Where a message stands, from a status callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Accepted, scheduled, queued or being sent by Twilio.
    Pending,
    /// Handed to the carrier.
    Sent,
    /// The handset received (or read) it.
    Delivered,
    /// Not delivered, failed or canceled.
    Failed {
        /// Twilio's `ErrorCode`, when it gave one.
        code: Option<u32>,
        /// The block the error puts on the number.
        block: Option<AddressBlock>,
    },
}

/// The status a callback's `MessageStatus` and `ErrorCode` describe; `None` for statuses Herald
/// does not know.
pub fn status(message_status: &str, error_code: Option<&str>) -> Option<Status> {
    let is = |name: &str| message_status.trim().eq_ignore_ascii_case(name);
    if ["accepted", "scheduled", "queued", "sending"].into_iter().any(is) {
        Some(Status::Pending)
    } else if is("sent") {
        Some(Status::Sent)
    } else if ["delivered", "read"].into_iter().any(is) {
        Some(Status::Delivered)
    } else if ["undelivered", "failed", "canceled"].into_iter().any(is) {
        let code = error_code.and_then(|c| c.trim().parse::<u32>().ok());
        Some(Status::Failed { code, block: code.and_then(block) })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use herald_domain::{Channel, Class};
    use herald_testkit::twilio::{Failure, FakeTwilio, SentSms};
    use serde_json::json;

    use super::*;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "test-auth-token";
    const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";
    const CALLBACK: &str = "https://herald.example.com/v1/providers/twilio/status";
    const ANA: &str = "+15005550006";
    const BO: &str = "+15005550007";

    async fn fake() -> FakeTwilio {
        FakeTwilio::start(SID, TOKEN).await.unwrap()
    }

    fn config(fake: &FakeTwilio) -> TwilioConfig {
        TwilioConfig {
            base_url: fake.base_url(),
            account_sid: SID.into(),
            auth_token: TOKEN.into(),
            from: "+15005550001".into(),
            status_callback: Some(CALLBACK.into()),
        }
    }

    fn twilio(config: TwilioConfig) -> Twilio {
        Twilio::new(config, Duration::from_secs(5)).unwrap()
    }

    fn command(targets: Vec<Target>) -> SendCommand {
        SendCommand {
            delivery_id: Uuid::now_v7(),
            channel: Channel::Sms,
            user_id: "ana".into(),
            payload: json!({"body": "Your code is 123456"}),
            targets,
            attempt: 1,
            class: Class::Transactional,
            collapse_key: None,
            ttl: None,
            unsubscribe_url: None,
        }
    }

    fn phone(number: &str) -> Target {
        Target::Phone(number.into())
    }

    fn only(messages: Vec<SentSms>) -> SentSms {
        assert_eq!(messages.len(), 1, "{messages:?}");
        messages.into_iter().next().unwrap()
    }

    /// The error of a send to Ana that the fake answers with `failure`.
    async fn error_for(failure: Failure) -> SendError {
        let fake = fake().await;
        fake.fail(ANA, failure);
        twilio(config(&fake)).send(&command(vec![phone(ANA)])).await.unwrap_err()
    }

    #[tokio::test]
    async fn request_carries_path_basic_auth_and_form_fields() {
        let fake = fake().await;
        let cmd = command(vec![phone(ANA)]);
        assert_eq!(twilio(config(&fake)).send(&cmd).await, Ok(Sent::default()));

        let sent = only(fake.messages());
        assert_eq!(sent.method, "POST");
        assert_eq!(sent.path, format!("/2010-04-01/Accounts/{SID}/Messages.json"));
        assert_eq!(sent.basic_auth(), Some((SID.to_owned(), TOKEN.to_owned())));
        let callback = format!("{CALLBACK}?delivery_id={}&attempt=1", cmd.delivery_id);
        let expected = [("To", ANA), ("From", "+15005550001"), ("Body", "Your code is 123456")];
        let mut expected: Vec<(String, String)> =
            expected.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        expected.push(("StatusCallback".into(), callback));
        assert_eq!(sent.form, expected);
        assert!(sent.accepted() && sent.status == 201);
    }

    #[tokio::test]
    async fn messaging_service_replaces_from() {
        let fake = fake().await;
        let mut config = config(&fake);
        config.from = SERVICE.into();
        config.status_callback = None;
        twilio(config).send(&command(vec![phone(ANA)])).await.unwrap();

        let sent = only(fake.messages());
        assert_eq!(sent.field("MessagingServiceSid"), Some(SERVICE));
        assert_eq!(sent.field("From"), None);
        assert_eq!(sent.field("StatusCallback"), None, "no callback configured");
        assert!(sent.accepted());

        // An alphanumeric sender that merely starts with MG is a sender id, not a service.
        let mut config = self::config(&fake);
        config.from = "MGMResorts".into();
        twilio(config).send(&command(vec![phone(ANA)])).await.unwrap();
        let sent = fake.messages().pop().unwrap();
        assert_eq!((sent.field("From"), sent.field("MessagingServiceSid")), (Some("MGMResorts"), None));
    }

    #[tokio::test]
    async fn status_callback_with_a_query_gets_the_delivery_id_appended() {
        let fake = fake().await;
        let mut config = config(&fake);
        config.status_callback = Some(format!("{CALLBACK}?tenant=acme"));
        let cmd = command(vec![phone(ANA)]);
        twilio(config).send(&cmd).await.unwrap();

        let expected = format!("{CALLBACK}?tenant=acme&delivery_id={}&attempt=1", cmd.delivery_id);
        assert_eq!(only(fake.messages()).field("StatusCallback"), Some(expected.as_str()));
    }

    #[tokio::test]
    async fn stopped_number_is_unreachable_and_stopped() {
        let fake = fake().await;
        fake.opt_out(ANA);
        match twilio(config(&fake)).send(&command(vec![phone(ANA)])).await {
            Err(SendError::Unreachable { block, message }) => {
                assert_eq!(block, AddressBlock::Stopped);
                assert!(message.contains("400") && message.contains("21610"), "{message}");
            }
            other => panic!("expected unreachable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn invalid_and_landline_numbers_are_hard_bounces() {
        for (code, text) in [
            (21211, "The 'To' number +15005550006 is not a valid phone number."),
            (21614, "'To' number is not a valid mobile number"),
        ] {
            match error_for(Failure::new(400, code, text)).await {
                SendError::Unreachable { block, message } => {
                    assert_eq!(block, AddressBlock::HardBounce);
                    assert!(message.contains(&code.to_string()) && message.contains(text), "{message}");
                }
                other => panic!("expected unreachable for {code}, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn rate_limit_is_transient_with_retry_after_in_seconds() {
        let failure = Failure::new(429, 20429, "Too Many Requests").with_retry_after("30");
        match error_for(failure).await {
            SendError::Transient { retry_after, message } => {
                assert_eq!(retry_after, Some(30));
                assert!(message.contains("429") && message.contains("20429"), "{message}");
            }
            other => panic!("expected transient, got {other:?}"),
        }
        // Twilio's code alone marks a rate limit, whatever the status.
        let failure = Failure::new(400, 20429, "Too Many Requests");
        assert!(matches!(error_for(failure).await, SendError::Transient { retry_after: None, .. }));
    }

    #[tokio::test]
    async fn rate_limit_retry_after_may_be_a_date() {
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(90);
        let date = jiff::fmt::rfc2822::DateTimePrinter::new().timestamp_to_rfc9110_string(&later).unwrap();
        let failure = Failure::new(429, 20429, "Too Many Requests").with_retry_after(date);
        match error_for(failure).await {
            SendError::Transient { retry_after: Some(seconds), .. } => {
                assert!((85..=90).contains(&seconds), "{seconds}")
            }
            other => panic!("expected transient with a delay, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn server_errors_are_transient() {
        for status in [500, 502, 503] {
            let failure = Failure::new(status, 20500, "Internal Server Error").with_retry_after("5");
            assert_eq!(
                error_for(failure).await,
                SendError::Transient {
                    message: format!(
                        "Twilio answered {}, code 20500: Internal Server Error",
                        StatusCode::from_u16(status).unwrap()
                    ),
                    retry_after: Some(5),
                }
            );
        }
    }

    #[tokio::test]
    async fn rejected_credentials_are_transient() {
        let fake = fake().await;
        let mut config = config(&fake);
        config.auth_token = "wrong-token".into();
        match twilio(config).send(&command(vec![phone(ANA)])).await {
            Err(SendError::Transient { message, .. }) => {
                assert!(message.contains("401") && message.contains("20003"), "{message}");
            }
            other => panic!("expected transient, got {other:?}"),
        }
        assert_eq!(only(fake.messages()).status, 401);
        let failure = Failure::new(403, 20005, "Account not active");
        assert!(matches!(error_for(failure).await, SendError::Transient { .. }));
    }

    #[tokio::test]
    async fn other_client_errors_are_permanent() {
        let text = "Permission to send an SMS has not been enabled for the region indicated by the 'To' number";
        assert_eq!(
            error_for(Failure::new(400, 21408, text)).await,
            SendError::Permanent(format!("Twilio answered 400 Bad Request, code 21408: {text}"))
        );

        // The fake refuses bodies over 1600 characters as Twilio does.
        let fake = fake().await;
        let mut cmd = command(vec![phone(ANA)]);
        cmd.payload = json!({"body": "a".repeat(1601)});
        match twilio(config(&fake)).send(&cmd).await {
            Err(SendError::Permanent(message)) => assert!(message.contains("21617"), "{message}"),
            other => panic!("expected permanent, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn long_error_text_is_cut_on_a_character_boundary() {
        let message = match error_for(Failure::new(400, 21408, "é".repeat(1000))).await {
            SendError::Permanent(message) => message,
            other => panic!("expected permanent, got {other:?}"),
        };
        let detail = message.split_once(": ").unwrap().1;
        assert_eq!(detail, "é".repeat(MAX_DETAIL_BYTES / 2));
    }

    #[test]
    fn error_bodies_that_are_not_twilio_json_are_kept_as_text() {
        let error = classify(StatusCode::BAD_GATEWAY, "<html>bad gateway</html>", None);
        assert_eq!(
            error,
            SendError::Transient {
                message: "Twilio answered 502 Bad Gateway: <html>bad gateway</html>".into(),
                retry_after: None
            }
        );
        assert_eq!(
            classify(StatusCode::NOT_FOUND, "", None),
            SendError::Permanent("Twilio answered 404 Not Found: ".into())
        );
    }

    #[tokio::test]
    async fn timeout_is_transient() {
        let fake = fake().await;
        fake.set_latency(Duration::from_secs(5));
        let twilio = Twilio::new(config(&fake), Duration::from_millis(200)).unwrap();
        match twilio.send(&command(vec![phone(ANA)])).await {
            Err(SendError::Transient { message, retry_after: None }) => {
                assert!(message.starts_with("Twilio request failed"), "{message}");
            }
            other => panic!("expected transient, got {other:?}"),
        }
        assert_eq!(fake.messages().len(), 1, "the request reached Twilio");
    }

    #[tokio::test]
    async fn connection_refused_is_transient() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let mut config = TwilioConfig {
            base_url: format!("http://{addr}"),
            account_sid: SID.into(),
            auth_token: TOKEN.into(),
            from: "+15005550001".into(),
            status_callback: None,
        };
        let result = twilio(config.clone()).send(&command(vec![phone(ANA)])).await;
        assert!(matches!(result, Err(SendError::Transient { .. })), "{result:?}");
        config.base_url.push('/');
        assert!(Twilio::new(config, Duration::from_secs(1)).is_ok(), "a trailing slash is fine");
    }

    #[tokio::test]
    async fn non_phone_targets_are_ignored() {
        let fake = fake().await;
        let device = Uuid::now_v7();
        let targets = vec![
            Target::Email("ana@example.com".into()),
            phone(ANA),
            Target::Fcm { device_id: device, token: "t".into() },
        ];
        assert_eq!(twilio(config(&fake)).send(&command(targets)).await, Ok(Sent::default()));
        assert_eq!(only(fake.messages()).field("To"), Some(ANA));
    }

    #[tokio::test]
    async fn no_phone_target_is_a_permanent_error() {
        let fake = fake().await;
        let twilio = twilio(config(&fake));
        for targets in [vec![], vec![Target::Email("ana@example.com".into())]] {
            assert_eq!(
                twilio.send(&command(targets)).await,
                Err(SendError::Permanent("no phone number to send to".into()))
            );
        }
        assert!(fake.messages().is_empty());
    }

    #[tokio::test]
    async fn payload_without_a_body_is_permanent_and_sends_nothing() {
        let fake = fake().await;
        let twilio = twilio(config(&fake));
        for payload in [json!({}), json!({"body": ""}), json!({"body": "  "}), json!({"body": 42})] {
            let mut cmd = command(vec![phone(ANA)]);
            cmd.payload = payload;
            assert_eq!(twilio.send(&cmd).await, Err(SendError::Permanent("SMS payload has no body".into())));
        }
        assert!(fake.messages().is_empty());
    }

    #[tokio::test]
    async fn every_phone_target_gets_a_message() {
        let fake = fake().await;
        let cmd = command(vec![phone(ANA), phone(BO)]);
        twilio(config(&fake)).send(&cmd).await.unwrap();
        let sent = fake.wait_for(2, Duration::from_secs(1)).await;
        let to: Vec<_> = sent.iter().map(|s| s.field("To")).collect();
        assert_eq!(to, vec![Some(ANA), Some(BO)]);
        assert!(sent.iter().all(|s| s.accepted()));
        assert_ne!(sent[0].sid, sent[1].sid);
    }

    #[tokio::test]
    async fn one_accepted_number_makes_the_send_a_success() {
        let fake = fake().await;
        fake.opt_out(ANA);
        assert_eq!(twilio(config(&fake)).send(&command(vec![phone(ANA), phone(BO)])).await, Ok(Sent::default()));
        assert_eq!(fake.messages().len(), 2);
    }

    #[tokio::test]
    async fn several_failures_settle_on_the_most_hopeful() {
        let fake = fake().await;
        let twilio = twilio(config(&fake));
        let both = || command(vec![phone(ANA), phone(BO)]);

        // Transient wins, waiting as long as the longest Retry-After.
        fake.fail(ANA, Failure::new(503, 20500, "busy").with_retry_after("5"));
        fake.fail(BO, Failure::new(429, 20429, "slow down").with_retry_after("20"));
        assert!(matches!(twilio.send(&both()).await, Err(SendError::Transient { retry_after: Some(20), .. })));

        // A refusal of one number says nothing about the other being blocked.
        fake.fail(ANA, Failure::new(400, 21211, "invalid"));
        fake.fail(BO, Failure::new(400, 21408, "region"));
        assert!(matches!(twilio.send(&both()).await, Err(SendError::Permanent(_))));

        // Every number blocked: the block is reported.
        fake.recover(BO);
        fake.opt_out(BO);
        assert!(matches!(
            twilio.send(&both()).await,
            Err(SendError::Unreachable { block: AddressBlock::HardBounce, .. })
        ));
    }

    #[test]
    fn new_rejects_bad_config() {
        let good = TwilioConfig {
            base_url: "https://api.twilio.com".into(),
            account_sid: SID.into(),
            auth_token: TOKEN.into(),
            from: "+15005550001".into(),
            status_callback: Some(CALLBACK.into()),
        };
        assert!(Twilio::new(good.clone(), Duration::from_secs(1)).is_ok());
        type Spoil = fn(&mut TwilioConfig);
        let cases: [(&str, Spoil); 11] = [
            ("base_url", |c| c.base_url = "api.twilio.com".into()),
            ("base_url", |c| c.base_url = "ftp://api.twilio.com".into()),
            ("base_url", |c| c.base_url = "https://api.twilio.com/?region=ie1".into()),
            ("account_sid", |c| c.account_sid = "XX0123".into()),
            ("account_sid", |c| c.account_sid = "AC".into()),
            ("account_sid", |c| c.account_sid = "AC123/../other".into()),
            ("auth_token", |c| c.auth_token = " ".into()),
            ("from", |c| c.from = String::new()),
            ("status_callback", |c| c.status_callback = Some("/relative".into())),
            ("status_callback", |c| c.status_callback = Some(String::new())),
            ("status_callback", |c| c.status_callback = Some(format!("{CALLBACK}#frag"))),
        ];
        for (field, spoil) in cases {
            let mut config = good.clone();
            spoil(&mut config);
            let err = Twilio::new(config, Duration::from_secs(1)).err().unwrap();
            assert!(err.contains(field), "{err}");
        }
    }

    #[test]
    fn debug_hides_the_auth_token() {
        let config = TwilioConfig {
            base_url: "https://api.twilio.com".into(),
            account_sid: SID.into(),
            auth_token: "super-secret-token".into(),
            from: "+15005550001".into(),
            status_callback: None,
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("super-secret-token") && shown.contains("<redacted>") && shown.contains(SID),
            "{shown}"
        );
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    const VECTOR_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn vector_params() -> Vec<(String, String)> {
        params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }

    /// The example from Twilio's security documentation.
    #[test]
    fn twilio_published_vector() {
        assert_eq!(signature("12345", VECTOR_URL, &vector_params()), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(verify_signature("12345", VECTOR_URL, &vector_params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        let mut shuffled = vector_params();
        shuffled.reverse();
        assert!(
            verify_signature("12345", VECTOR_URL, &shuffled, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
            "order does not matter"
        );
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let good = signature("12345", VECTOR_URL, &vector_params());
        assert!(!verify_signature("12346", VECTOR_URL, &vector_params(), &good));
        assert!(!verify_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=3", &vector_params(), &good));
        for i in 0..vector_params().len() {
            let mut changed = vector_params();
            changed[i].1.push('0');
            assert!(!verify_signature("12345", VECTOR_URL, &changed, &good), "value {i}");
            let mut renamed = vector_params();
            renamed[i].0.push('x');
            assert!(!verify_signature("12345", VECTOR_URL, &renamed, &good), "name {i}");
            let mut dropped = vector_params();
            dropped.remove(i);
            assert!(!verify_signature("12345", VECTOR_URL, &dropped, &good), "dropped {i}");
        }
        let mut added = vector_params();
        added.push(("Extra".into(), String::new()));
        assert!(!verify_signature("12345", VECTOR_URL, &added, &good), "an empty extra parameter still counts");
        assert!(!verify_signature("12345", VECTOR_URL, &vector_params(), "not base64!"));
        assert!(!verify_signature("12345", VECTOR_URL, &vector_params(), ""));
        assert!(!verify_signature("12345", VECTOR_URL, &vector_params(), &good[..good.len() - 4]));
    }

    #[test]
    fn repeated_names_are_sorted_by_value() {
        let url = "https://herald.example.com/hook";
        let in_order = params(&[("MediaUrl", "a"), ("MediaUrl", "b"), ("To", "+1")]);
        let shuffled = params(&[("To", "+1"), ("MediaUrl", "b"), ("MediaUrl", "a")]);
        let expected = {
            let mut mac = Hmac::<Sha1>::new_from_slice(b"token").unwrap();
            mac.update(b"https://herald.example.com/hookMediaUrlaMediaUrlbTo+1");
            STANDARD.encode(mac.finalize().into_bytes())
        };
        assert_eq!(signature("token", url, &in_order), expected);
        assert_eq!(signature("token", url, &shuffled), expected);
        assert!(verify_signature("token", url, &shuffled, &expected));
    }

    #[test]
    fn message_statuses_map_to_delivery_states() {
        for pending in ["accepted", "scheduled", "queued", "sending", "Queued"] {
            assert_eq!(status(pending, None), Some(Status::Pending), "{pending}");
        }
        assert_eq!(status("sent", None), Some(Status::Sent));
        assert_eq!(status("delivered", None), Some(Status::Delivered));
        assert_eq!(status("read", None), Some(Status::Delivered));
        assert_eq!(status("canceled", None), Some(Status::Failed { code: None, block: None }));
        assert_eq!(status("failed", Some("")), Some(Status::Failed { code: None, block: None }));
        assert_eq!(status("failed", Some("not a number")), Some(Status::Failed { code: None, block: None }));
        assert_eq!(status("undelivered", Some("30003")), Some(Status::Failed { code: Some(30003), block: None }));
        for (code, block) in
            [(30005, AddressBlock::HardBounce), (30006, AddressBlock::HardBounce), (21610, AddressBlock::Stopped)]
        {
            let failed = Status::Failed { code: Some(code), block: Some(block) };
            assert_eq!(status("undelivered", Some(&code.to_string())), Some(failed));
            assert_eq!(status("failed", Some(&format!(" {code} "))), Some(failed));
        }
        for unknown in ["", "receiving", "received", "partially_delivered", "deliverd"] {
            assert_eq!(status(unknown, None), None, "{unknown}");
        }
    }
}
