//! Apple Push Notification service over HTTP/2 with token (ES256 JWT) authentication: the provider
//! token, its cache and renewal, the request headers and payload APNs expects, and how its answers
//! map onto [`SendError`]. Written by hand: no maintained crate speaks APNs without OpenSSL.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use herald_domain::Class;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::outcome::Outcomes;
use crate::payload::fit_body;
use crate::{Provider, SendCommand, SendError, Sent, Target, unix_now};

/// APNs refuses payloads over 4 KB.
const MAX_PAYLOAD: usize = 4096;
/// APNs refuses a longer `apns-collapse-id`.
const MAX_COLLAPSE_ID: usize = 64;
/// Apple refuses provider tokens older than an hour and throttles renewals more frequent than
/// twenty minutes: renewing at fifty minutes stays clear of both.
const TOKEN_MAX_AGE: u64 = 50 * 60;

/// Where and as whom to send: the team's token-signing key and the app it pushes to.
#[derive(Clone)]
pub struct ApnsConfig {
    /// `https://api.push.apple.com` (or the sandbox); `http://` means cleartext HTTP/2, for tests.
    pub endpoint: String,
    /// Contents of the `AuthKey_<key id>.p8` file: a PKCS#8 PEM P-256 private key.
    pub key_pem: String,
    /// The key's 10-character id (the JWT `kid`).
    pub key_id: String,
    /// The Apple developer team id (the JWT `iss`).
    pub team_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
}

impl std::fmt::Debug for ApnsConfig {
    /// Leaves the private key out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsConfig")
            .field("endpoint", &self.endpoint)
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// Sends push notifications to Apple devices.
pub struct Apns {
    client: reqwest::Client,
    endpoint: String,
    key: EncodingKey,
    key_id: String,
    team_id: String,
    topic: String,
    token: Mutex<Option<ProviderToken>>,
}

/// A signed provider token and when it was issued (unix seconds).
#[derive(Clone)]
struct ProviderToken {
    jwt: String,
    issued_at: u64,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: u64,
}

/// The JSON body APNs sends with an error status.
#[derive(Deserialize)]
struct ErrorBody {
    reason: Option<String>,
}

/// What became of one device.
enum Outcome {
    Accepted,
    Gone(String),
    Failed(SendError),
}

impl Apns {
    /// A client for `config` whose requests time out after `timeout`; fails when the key or endpoint is unusable.
    pub fn new(config: ApnsConfig, timeout: Duration) -> Result<Apns, String> {
        let key = EncodingKey::from_ec_pem(config.key_pem.as_bytes())
            .map_err(|e| format!("APNs key is not a PKCS#8 PEM EC private key: {e}"))?;
        let endpoint = config.endpoint.trim_end_matches('/').to_owned();
        let mut builder = crate::http_client(timeout);
        if endpoint.starts_with("http://") {
            // Without TLS there is no ALPN to agree on HTTP/2, and APNs speaks nothing else.
            builder = builder.http2_prior_knowledge();
        } else if !endpoint.starts_with("https://") {
            return Err(format!("APNs endpoint must be an http(s) URL, got {endpoint:?}"));
        }
        let client = builder.build().map_err(|e| format!("cannot build the APNs HTTP client: {e}"))?;
        let apns = Apns {
            client,
            endpoint,
            key,
            key_id: config.key_id,
            team_id: config.team_id,
            topic: config.topic,
            token: Mutex::new(None),
        };
        // A P-384 key also parses as an EC PEM: only signing proves it is an ES256 key.
        apns.bearer(unix_now()).map_err(|e| format!("APNs key cannot sign an ES256 token: {e}"))?;
        Ok(apns)
    }

    /// The cached provider token, or a new one when it is missing or too old at `now`.
    fn bearer(&self, now: u64) -> Result<String, SendError> {
        let mut cached = self.token.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = cached.as_ref()
            && now.checked_sub(t.issued_at).is_some_and(|age| age < TOKEN_MAX_AGE)
        {
            return Ok(t.jwt.clone());
        }
        let mut header = Header::new(Algorithm::ES256);
        header.typ = None;
        header.kid = Some(self.key_id.clone());
        let jwt = jsonwebtoken::encode(&header, &Claims { iss: &self.team_id, iat: now }, &self.key)
            .map_err(|e| SendError::Permanent(format!("cannot sign the APNs provider token: {e}")))?;
        *cached = Some(ProviderToken { jwt: jwt.clone(), issued_at: now });
        Ok(jwt)
    }

    /// Forgets `jwt` after APNs refused it, unless a newer token has already replaced it.
    fn drop_token(&self, jwt: &str) {
        let mut cached = self.token.lock().unwrap_or_else(PoisonError::into_inner);
        if cached.as_ref().is_some_and(|t| t.jwt == jwt) {
            *cached = None;
        }
    }

    async fn push(&self, cmd: &SendCommand, device_token: &str, body: &[u8]) -> Outcome {
        let now = unix_now();
        let jwt = match self.bearer(now) {
            Ok(jwt) => jwt,
            Err(e) => return Outcome::Failed(e),
        };
        let priority = if cmd.class.is_urgent() { "10" } else { "5" };
        // Never 0: that tells APNs to try once and drop the notification if the device is off.
        let expiration = now.saturating_add(crate::ttl_seconds(cmd));
        let mut request = self
            .client
            .post(format!("{}/3/device/{device_token}", self.endpoint))
            .header("authorization", format!("bearer {jwt}"))
            .header("content-type", "application/json")
            .header("apns-topic", &self.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", priority)
            .header("apns-expiration", expiration.to_string())
            .header("apns-id", cmd.delivery_id.to_string());
        if let Some(key) = cmd.collapse_key.as_deref().filter(|k| k.len() <= MAX_COLLAPSE_ID) {
            request = request.header("apns-collapse-id", key);
        }
        let resp = match request.body(body.to_vec()).send().await {
            Ok(resp) => resp,
            Err(e) => {
                let message =
                    if e.is_timeout() { format!("APNs timed out: {e}") } else { format!("APNs request failed: {e}") };
                return Outcome::Failed(SendError::Transient { message, retry_after: None });
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Outcome::Accepted;
        }
        let retry_after = crate::retry_after(resp.headers());
        let reason = resp
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<ErrorBody>(&b).ok())
            .and_then(|e| e.reason)
            .unwrap_or_default();
        let message = format!("APNs answered {status}: {reason}");
        match (status.as_u16(), reason.as_str()) {
            // Only 410 says the token is dead. A bad token or a topic mismatch is what every token
            // gets after a configuration mistake (a wrong bundle id, sandbox tokens against
            // production): deleting devices then would wipe every Apple device.
            (410, _) => Outcome::Gone(message),
            (403, "ExpiredProviderToken" | "InvalidProviderToken") => {
                self.drop_token(&jwt);
                Outcome::Failed(SendError::Transient { message, retry_after })
            }
            // Herald's configuration, not the recipient, is wrong: open the breaker and keep the
            // deliveries until an operator fixes it.
            (400, "BadTopic" | "MissingTopic" | "TopicDisallowed" | "DeviceTokenNotForTopic")
            | (403, "BadCertificate" | "BadCertificateEnvironment" | "Forbidden" | "MissingProviderToken") => {
                Outcome::Failed(SendError::Transient { message, retry_after })
            }
            _ => Outcome::Failed(SendError::from_status(status, message, retry_after)),
        }
    }
}

#[async_trait]
impl Provider for Apns {
    fn name(&self) -> &'static str {
        "apns"
    }

    async fn send(&self, cmd: &SendCommand) -> Result<Sent, SendError> {
        let text = |field: &str| cmd.payload.get(field).and_then(Value::as_str);
        let template = notification(cmd, text("title"), text("action_url"));
        let render = |b: &str| {
            let mut n = template.clone();
            if let Some(slot) = n.pointer_mut("/aps/alert/body") {
                *slot = Value::from(b);
            }
            n.to_string().into_bytes()
        };
        let body = fit_body(text("body").unwrap_or_default(), MAX_PAYLOAD, render).ok_or_else(|| {
            SendError::Permanent(format!("APNs payload exceeds {MAX_PAYLOAD} bytes even with an empty body"))
        })?;

        let mut outcomes = Outcomes::new("no APNs device among the targets");
        for t in &cmd.targets {
            let Target::Apns { device_id, token } = t else { continue };
            outcomes.add(match self.push(cmd, token, &body).await {
                Outcome::Accepted => Ok(Sent::default()),
                Outcome::Gone(message) => {
                    tracing::info!(delivery_id = %cmd.delivery_id, %device_id, %message, "APNs device is gone");
                    Err(SendError::Gone { message, devices: vec![*device_id] })
                }
                Outcome::Failed(e) => {
                    tracing::warn!(delivery_id = %cmd.delivery_id, %device_id, error = %e, "APNs attempt failed");
                    Err(e)
                }
            });
        }
        outcomes.finish()
    }
}

/// The notification JSON with an empty alert body, which [`fit_body`] fills in.
fn notification(cmd: &SendCommand, title: Option<&str>, action_url: Option<&str>) -> Value {
    let mut alert = Map::new();
    if let Some(title) = title {
        alert.insert("title".into(), title.into());
    }
    alert.insert("body".into(), "".into());
    let mut aps = Map::new();
    aps.insert("alert".into(), alert.into());
    aps.insert("sound".into(), "default".into());
    if let Some(key) = &cmd.collapse_key {
        aps.insert("thread-id".into(), key.as_str().into());
    }
    if cmd.class == Class::Critical {
        aps.insert("interruption-level".into(), "time-sensitive".into());
    }
    let mut herald = Map::new();
    herald.insert("delivery_id".into(), cmd.delivery_id.to_string().into());
    if let Some(url) = action_url {
        herald.insert("action_url".into(), url.into());
    }
    let mut root = Map::new();
    root.insert("aps".into(), aps.into());
    root.insert("herald".into(), herald.into());
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use axum::http::Version;
    use herald_domain::Channel;
    use herald_testkit::apns::{FakeApns, signing_key};
    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn config(endpoint: &str) -> ApnsConfig {
        ApnsConfig {
            endpoint: endpoint.to_owned(),
            key_pem: signing_key().0,
            key_id: "KEY1234567".into(),
            team_id: "TEAM123456".into(),
            topic: "com.example.app".into(),
        }
    }

    fn client(endpoint: &str, timeout: Duration) -> Apns {
        crate::init_tls();
        Apns::new(config(endpoint), timeout).unwrap()
    }

    fn device(token: &str) -> Target {
        Target::Apns { device_id: device_id(token), token: token.to_owned() }
    }

    fn device_id(token: &str) -> Uuid {
        Uuid::new_v5(&Uuid::NAMESPACE_OID, token.as_bytes())
    }

    fn command(class: Class, targets: Vec<Target>) -> SendCommand {
        SendCommand {
            delivery_id: Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001),
            channel: Channel::Push,
            user_id: "u1".into(),
            payload: json!({ "title": "Hello", "body": "World", "action_url": "https://example.com/a" }),
            targets,
            attempt: 1,
            class,
            collapse_key: None,
            ttl: None,
            unsubscribe_url: None,
        }
    }

    #[derive(Deserialize)]
    struct SeenClaims {
        iss: String,
        iat: u64,
    }

    #[tokio::test]
    async fn posts_over_http2_with_every_header_and_a_verifiable_token() {
        let fake = FakeApns::start().await;
        let endpoint = fake.url();
        let apns = client(endpoint, Duration::from_secs(5));
        let mut cmd = command(Class::Transactional, vec![device("abc123")]);
        cmd.collapse_key = Some("thread-7".into());
        cmd.ttl = Some(Duration::from_secs(3600));
        let before = unix_now();
        assert_eq!(apns.send(&cmd).await, Ok(Sent::default()));

        let seen = fake.take();
        assert_eq!(seen.len(), 1);
        let req = &seen[0];
        assert_eq!(req.version, Version::HTTP_2);
        assert_eq!(req.path, "/3/device/abc123");
        assert_eq!(req.header("apns-topic"), Some("com.example.app"));
        assert_eq!(req.header("apns-push-type"), Some("alert"));
        assert_eq!(req.header("apns-priority"), Some("10"));
        assert_eq!(req.header("apns-collapse-id"), Some("thread-7"));
        assert_eq!(req.header("apns-id"), Some(cmd.delivery_id.to_string().as_str()));
        let expiration: u64 = req.header("apns-expiration").unwrap().parse().unwrap();
        assert!((before + 3600..=unix_now() + 3600).contains(&expiration), "expiration {expiration}");

        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            json!({
                "aps": { "alert": { "title": "Hello", "body": "World" }, "sound": "default", "thread-id": "thread-7" },
                "herald": { "delivery_id": cmd.delivery_id.to_string(), "action_url": "https://example.com/a" },
            })
        );

        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let key = DecodingKey::from_ec_pem(signing_key().1.as_bytes()).unwrap();
        let token = jsonwebtoken::decode::<SeenClaims>(req.bearer(), &key, &validation).unwrap();
        assert_eq!(token.header.alg, Algorithm::ES256);
        assert_eq!(token.header.kid.as_deref(), Some("KEY1234567"));
        assert_eq!(token.claims.iss, "TEAM123456");
        assert!(token.claims.iat.abs_diff(unix_now()) <= 5, "iat {}", token.claims.iat);
    }

    #[tokio::test]
    async fn social_is_low_priority_and_optional_fields_are_left_out() {
        let fake = FakeApns::start().await;
        let endpoint = fake.url();
        let apns = client(endpoint, Duration::from_secs(5));
        let mut cmd = command(Class::Social, vec![device("abc123")]);
        cmd.payload = json!({ "body": "just a body" });
        apns.send(&cmd).await.unwrap();

        let before = unix_now();
        let req = &fake.take()[0];
        assert_eq!(req.header("apns-priority"), Some("5"));
        // Without a TTL an ordinary notification is kept an hour for a device that is off, never 0
        // (which would tell APNs to drop it).
        let expiration: u64 = req.header("apns-expiration").unwrap().parse().unwrap();
        assert!((before + 3590..=before + 3600).contains(&expiration), "expiration {expiration}");
        assert_eq!(req.header("apns-collapse-id"), None);
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            json!({
                "aps": { "alert": { "body": "just a body" }, "sound": "default" },
                "herald": { "delivery_id": cmd.delivery_id.to_string() },
            })
        );
    }

    #[tokio::test]
    async fn critical_is_time_sensitive_and_a_long_collapse_key_is_not_a_header() {
        let fake = FakeApns::start().await;
        let endpoint = fake.url();
        let apns = client(endpoint, Duration::from_secs(5));
        let mut cmd = command(Class::Critical, vec![device("abc123")]);
        cmd.collapse_key = Some("k".repeat(65));
        apns.send(&cmd).await.unwrap();

        let req = &fake.take()[0];
        assert_eq!(req.header("apns-priority"), Some("10"));
        assert_eq!(req.header("apns-collapse-id"), None);
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["aps"]["interruption-level"], "time-sensitive");
        assert_eq!(body["aps"]["thread-id"], "k".repeat(65));
    }

    #[tokio::test]
    async fn other_target_kinds_are_ignored() {
        let fake = FakeApns::start().await;
        let endpoint = fake.url();
        let apns = client(endpoint, Duration::from_secs(5));
        let webhook = Target::Webhook { device_id: Uuid::nil(), url: "http://127.0.0.1:9/".into(), secret: "s".into() };
        let cmd = command(Class::Social, vec![webhook, Target::Email("a@example.com".into()), device("abc123")]);
        assert_eq!(apns.send(&cmd).await, Ok(Sent::default()));
        assert_eq!(fake.take().len(), 1);

        let none = command(Class::Social, vec![Target::Email("a@example.com".into())]);
        assert!(matches!(apns.send(&none).await, Err(SendError::Permanent(_))));
    }

    #[tokio::test]
    async fn gone_devices_are_reported_beside_a_delivery() {
        let fake = FakeApns::start().await;
        let endpoint = fake.url();
        let apns = client(endpoint, Duration::from_secs(5));
        let cmd = command(Class::Social, vec![device("gone"), device("abc123"), device("bad-token")]);
        let sent = apns.send(&cmd).await.unwrap();
        assert_eq!(sent.gone, vec![device_id("gone")], "only 410 removes a device");
        assert_eq!(fake.take().len(), 3);
    }

    #[tokio::test]
    async fn all_gone_is_gone() {
        let fake = FakeApns::start().await;
        let endpoint = fake.url();
        let apns = client(endpoint, Duration::from_secs(5));
        let one = command(Class::Social, vec![device("gone")]);
        match apns.send(&one).await {
            Err(SendError::Gone { message, devices }) => {
                assert_eq!(devices, vec![device_id("gone")]);
                assert!(message.contains("410") && message.contains("Unregistered"), "{message}");
            }
            other => panic!("expected gone, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_bad_token_is_refused_but_kept_and_a_wrong_topic_waits_for_the_operator() {
        let fake = FakeApns::start().await;
        let endpoint = fake.url();
        let apns = client(endpoint, Duration::from_secs(5));
        // A production endpoint with sandbox tokens answers BadDeviceToken to every one of them:
        // refusing the send is right, deleting the device would not be.
        match apns.send(&command(Class::Social, vec![device("bad-token")])).await {
            Err(SendError::Permanent(message)) => assert!(message.contains("BadDeviceToken"), "{message}"),
            other => panic!("expected permanent, got {other:?}"),
        }
        // A wrong bundle id fails every send the same way: a transient failure opens the breaker.
        let wrong_topic = apns.send(&command(Class::Social, vec![device("wrong-topic")])).await;
        assert!(matches!(wrong_topic, Err(SendError::Transient { .. })), "{wrong_topic:?}");
    }

    #[tokio::test]
    async fn other_client_errors_are_permanent_with_status_and_reason() {
        let fake = FakeApns::start().await;
        let endpoint = fake.url();
        let apns = client(endpoint, Duration::from_secs(5));
        match apns.send(&command(Class::Social, vec![device("bad-request")])).await {
            Err(SendError::Permanent(message)) => {
                assert!(message.contains("400") && message.contains("BadExpirationDate"), "{message}");
            }
            other => panic!("expected permanent, got {other:?}"),
        }
        // Gone and permanent without a delivery: the permanent error wins.
        let mixed = command(Class::Social, vec![device("gone"), device("bad-request")]);
        assert!(matches!(apns.send(&mixed).await, Err(SendError::Permanent(_))));
    }

    #[tokio::test]
    async fn throttling_and_outages_are_transient() {
        let fake = FakeApns::start().await;
        let endpoint = fake.url();
        let apns = client(endpoint, Duration::from_secs(5));
        match apns.send(&command(Class::Social, vec![device("busy")])).await {
            Err(SendError::Transient { message, retry_after }) => {
                assert_eq!(retry_after, Some(7));
                assert!(message.contains("429"), "{message}");
            }
            other => panic!("expected transient, got {other:?}"),
        }
        let down = command(Class::Social, vec![device("gone"), device("down"), device("bad-request")]);
        assert!(matches!(apns.send(&down).await, Err(SendError::Transient { retry_after: None, .. })));
    }

    #[tokio::test]
    async fn a_refused_provider_token_is_dropped() {
        let fake = FakeApns::start().await;
        let endpoint = fake.url();
        let apns = client(endpoint, Duration::from_secs(5));
        let result = apns.send(&command(Class::Social, vec![device("expired")])).await;
        assert!(matches!(result, Err(SendError::Transient { .. })), "{result:?}");
        assert!(apns.token.lock().unwrap().is_none());
    }

    #[tokio::test]
    async fn timeouts_and_refused_connections_are_transient() {
        let fake = FakeApns::start().await;
        let endpoint = fake.url();
        let apns = client(endpoint, Duration::from_millis(300));
        let result = apns.send(&command(Class::Social, vec![device("slow")])).await;
        assert!(matches!(result, Err(SendError::Transient { .. })), "{result:?}");

        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let apns = client(&format!("http://{addr}"), Duration::from_secs(5));
        let result = apns.send(&command(Class::Social, vec![device("abc123")])).await;
        assert!(matches!(result, Err(SendError::Transient { .. })), "{result:?}");
    }

    #[tokio::test]
    async fn a_long_body_is_shortened_to_fit() {
        let fake = FakeApns::start().await;
        let endpoint = fake.url();
        let apns = client(endpoint, Duration::from_secs(5));
        let long = "é\"ü".repeat(2000);
        let mut cmd = command(Class::Social, vec![device("abc123")]);
        cmd.payload = json!({ "title": "Hello", "body": long });
        apns.send(&cmd).await.unwrap();

        let req = &fake.take()[0];
        assert!(req.body.len() <= MAX_PAYLOAD, "{} bytes", req.body.len());
        assert!(req.body.len() > MAX_PAYLOAD - 16, "shortened too much: {} bytes", req.body.len());
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let kept = body["aps"]["alert"]["body"].as_str().unwrap().strip_suffix('…').unwrap();
        assert!(long.starts_with(kept));
        assert_eq!(body["aps"]["alert"]["title"], "Hello");
    }

    #[tokio::test]
    async fn a_title_too_long_to_fit_is_permanent() {
        let apns = client("http://127.0.0.1:9", Duration::from_secs(5));
        let mut cmd = command(Class::Social, vec![device("abc123")]);
        cmd.payload = json!({ "title": "t".repeat(5000) });
        assert!(matches!(apns.send(&cmd).await, Err(SendError::Permanent(_))));
    }

    #[tokio::test]
    async fn the_provider_token_is_reused_across_sends() {
        let fake = FakeApns::start().await;
        let endpoint = fake.url();
        let apns = client(endpoint, Duration::from_secs(5));
        let cmd = command(Class::Social, vec![device("abc123")]);
        apns.send(&cmd).await.unwrap();
        apns.send(&cmd).await.unwrap();
        let seen = fake.take();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].bearer(), seen[1].bearer());
    }

    #[test]
    fn the_provider_token_is_renewed_after_fifty_minutes() {
        let apns = client("https://api.sandbox.push.apple.com", Duration::from_secs(5));
        let issued = apns.token.lock().unwrap().as_ref().unwrap().issued_at;
        let first = apns.bearer(issued).unwrap();
        assert_eq!(apns.bearer(issued + TOKEN_MAX_AGE - 1).unwrap(), first);
        let renewed = apns.bearer(issued + TOKEN_MAX_AGE).unwrap();
        assert_ne!(renewed, first);
        assert_eq!(apns.token.lock().unwrap().as_ref().unwrap().issued_at, issued + TOKEN_MAX_AGE);
        assert_eq!(apns.bearer(issued + TOKEN_MAX_AGE + 1).unwrap(), renewed);
        // A clock that went back must not keep a token issued in the future.
        assert_ne!(apns.bearer(issued).unwrap(), renewed);
    }

    #[test]
    fn a_bad_key_or_endpoint_is_refused() {
        crate::init_tls();
        let mut bad_key = config("https://api.push.apple.com");
        bad_key.key_pem = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n".into();
        assert!(Apns::new(bad_key, Duration::from_secs(5)).is_err());
        let mut public_only = config("https://api.push.apple.com");
        public_only.key_pem = signing_key().1;
        assert!(Apns::new(public_only, Duration::from_secs(5)).is_err());
        assert!(Apns::new(config("ftp://api.push.apple.com"), Duration::from_secs(5)).is_err());
    }

    #[test]
    fn debug_leaves_the_key_out() {
        let shown = format!("{:?}", config("https://api.push.apple.com"));
        assert!(shown.contains("KEY1234567") && !shown.contains("PRIVATE"), "{shown}");
    }
}
