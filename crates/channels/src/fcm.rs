//! Firebase Cloud Messaging HTTP v1: the OAuth2 service-account flow (an RS256 JWT assertion
//! traded for a cached access token) and the `messages:send` call, one request per device token.
//! Written by hand because both calls are small, while the available crates pull OpenSSL or a
//! large SDK.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::outcome::Outcomes;
use crate::payload::{fit_body, truncate_utf8};
use crate::{Provider, SendCommand, SendError, Sent, Target};

/// FCM rejects messages larger than this.
const MAX_MESSAGE_BYTES: usize = 4096;
/// The only scope `messages:send` needs.
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// RFC 7523 grant type for a JWT assertion.
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime of the assertion; Google accepts at most one hour.
const ASSERTION_SECONDS: u64 = 3600;
/// Refresh this long before the access token expires so no request carries a stale one.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Provider error text kept in delivery messages.
const MAX_DETAIL_BYTES: usize = 300;

/// Where FCM lives and which service account signs in to it.
#[derive(Clone)]
pub struct FcmConfig {
    /// Base URL of the FCM API, e.g. `https://fcm.googleapis.com`.
    pub endpoint: String,
    /// Contents of the service account JSON file.
    pub service_account_json: String,
}

impl std::fmt::Debug for FcmConfig {
    /// Leaves the service account (and its private key) out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmConfig").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

/// The fields of a service account file this client uses.
#[derive(Deserialize)]
struct ServiceAccount {
    project_id: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

/// JWT claims of the OAuth2 assertion.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

/// A cached access token.
struct AccessToken {
    value: String,
    refresh_at: Instant,
}

/// Google's error body: `{"error": {"code", "message", "status", "details": [...]}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorInfo,
}

#[derive(Deserialize)]
struct ErrorInfo {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "@type", default)]
    kind: String,
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
}

/// The OAuth2 token endpoint's error body: `{"error", "error_description"}`.
#[derive(Deserialize)]
struct OAuthError {
    error: String,
    error_description: Option<String>,
}

/// The notification text taken from the rendered payload.
struct Content<'a> {
    title: Option<&'a str>,
    body: Option<&'a str>,
    action_url: Option<&'a str>,
}

/// What became of one target.
enum Outcome {
    Accepted,
    Gone(Uuid, String),
    Failed(SendError),
}

/// Sends push notifications to Android (and FCM-registered iOS) devices.
pub struct Fcm {
    client: reqwest::Client,
    send_url: String,
    client_email: String,
    token_uri: String,
    key_id: Option<String>,
    key: EncodingKey,
    token: Mutex<Option<AccessToken>>,
}

impl Fcm {
    /// A client for the service account in `config`, whose requests time out after `timeout`.
    pub fn new(config: FcmConfig, timeout: Duration) -> Result<Fcm, String> {
        let account: ServiceAccount = serde_json::from_str(&config.service_account_json)
            .map_err(|e| format!("service account JSON does not parse: {e}"))?;
        let field = |value: Option<String>, name: &str| {
            value.filter(|v| !v.trim().is_empty()).ok_or_else(|| format!("service account JSON lacks {name}"))
        };
        let project_id = field(account.project_id, "project_id")?;
        let client_email = field(account.client_email, "client_email")?;
        let private_key = field(account.private_key, "private_key")?;
        let token_uri = field(account.token_uri, "token_uri")?;
        let key = EncodingKey::from_rsa_pem(private_key.as_bytes())
            .map_err(|e| format!("service account private_key does not parse: {e}"))?;
        let client = crate::http_client(timeout).build().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let fcm = Fcm {
            client,
            send_url: format!("{}/v1/projects/{project_id}/messages:send", config.endpoint.trim_end_matches('/')),
            client_email,
            token_uri,
            key_id: account.private_key_id.filter(|k| !k.is_empty()),
            key,
            token: Mutex::new(None),
        };
        // The PEM wrapper can be fine while the RSA key inside is not: sign once now rather than
        // discover it on the first delivery.
        fcm.assertion().map_err(|e| format!("service account private_key cannot sign: {e}"))?;
        Ok(fcm)
    }

    /// A fresh RS256 assertion for the token endpoint.
    fn assertion(&self) -> Result<String, jsonwebtoken::errors::Error> {
        let now = jiff::Timestamp::now().as_second().max(0) as u64;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key_id.clone();
        let claims = Claims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat: now,
            exp: now + ASSERTION_SECONDS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
    }

    /// The cached access token, fetching a new one when it is missing or about to expire.
    async fn access_token(&self) -> Result<String, SendError> {
        // Held across the fetch so concurrent sends wait for one refresh instead of each making one.
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let fresh = self.fetch_token().await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    /// Drops the cached token if it is still `used`: a newer one fetched meanwhile stays.
    async fn forget_token(&self, used: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.value == used) {
            *cached = None;
        }
    }

    /// Trades a signed assertion for an access token.
    async fn fetch_token(&self) -> Result<AccessToken, SendError> {
        let assertion =
            self.assertion().map_err(|e| SendError::Permanent(format!("cannot sign the FCM assertion: {e}")))?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", GRANT_TYPE)
            .append_pair("assertion", &assertion)
            .finish();
        let resp = self
            .client
            .post(&self.token_uri)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| SendError::Transient { message: format!("token request failed: {e}"), retry_after: None })?;
        let status = resp.status();
        if status.is_success() {
            let body: TokenResponse = resp.json().await.map_err(|e| SendError::Transient {
                message: format!("token endpoint answered an unreadable body: {e}"),
                retry_after: None,
            })?;
            let lifetime = Duration::from_secs(body.expires_in.unwrap_or(ASSERTION_SECONDS));
            return Ok(AccessToken {
                value: body.access_token,
                refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN),
            });
        }
        let retry_after = crate::retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        let detail = match serde_json::from_str::<OAuthError>(&text) {
            Ok(e) => match e.error_description {
                Some(d) => format!("{}: {d}", e.error),
                None => e.error,
            },
            Err(_) => text,
        };
        let detail = truncate_utf8(detail.trim(), MAX_DETAIL_BYTES);
        // Either way no message can go out until the token endpoint answers: a refused key (rotated,
        // deleted) is the operator's to fix, and a transient failure opens the breaker and keeps the
        // deliveries for when it is, where a permanent one would dead-letter every push.
        let message = if crate::asks_for_patience(status) {
            format!("token endpoint answered {status}: {detail}")
        } else {
            format!("service account refused: {status}: {detail}")
        };
        Err(SendError::Transient { message, retry_after })
    }

    /// The `messages:send` body for `token`, with `body` as the notification text.
    fn render(cmd: &SendCommand, content: &Content<'_>, token: &str, body: &str) -> Vec<u8> {
        let urgent = cmd.class.is_urgent();
        let mut notification = Map::new();
        if let Some(title) = content.title {
            notification.insert("title".into(), title.into());
        }
        if content.body.is_some() {
            notification.insert("body".into(), body.into());
        }
        let mut data = Map::new();
        data.insert("delivery_id".into(), cmd.delivery_id.to_string().into());
        if let Some(url) = content.action_url {
            data.insert("action_url".into(), url.into());
        }
        let mut android = Map::new();
        android.insert("priority".into(), if urgent { "HIGH" } else { "NORMAL" }.into());
        // FCM would keep an undelivered message four weeks; Herald's default by class says how long it is worth.
        android.insert("ttl".into(), format!("{}s", crate::ttl_seconds(cmd)).into());
        let mut apns_headers = Map::new();
        apns_headers.insert("apns-priority".into(), if urgent { "10" } else { "5" }.into());
        if let Some(key) = &cmd.collapse_key {
            android.insert("collapse_key".into(), key.as_str().into());
            apns_headers.insert("apns-collapse-id".into(), key.as_str().into());
        }
        let mut message = Map::new();
        message.insert("token".into(), token.into());
        if !notification.is_empty() {
            message.insert("notification".into(), notification.into());
        }
        message.insert("data".into(), data.into());
        message.insert("android".into(), android.into());
        message.insert("apns".into(), json!({ "headers": apns_headers }));
        json!({ "message": message }).to_string().into_bytes()
    }

    /// Sends the message to one device token.
    async fn send_one(&self, device_id: Uuid, access_token: &str, message: Vec<u8>) -> Outcome {
        let resp = match self
            .client
            .post(&self.send_url)
            .header(AUTHORIZATION, format!("Bearer {access_token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(message)
            .send()
            .await
        {
            Ok(resp) => resp,
            Err(e) => {
                return Outcome::Failed(SendError::Transient {
                    message: format!("FCM request failed: {e}"),
                    retry_after: None,
                });
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Outcome::Accepted;
        }
        let retry_after = crate::retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        let (code, detail) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => {
                let fcm_code = body
                    .error
                    .details
                    .into_iter()
                    .find(|d| d.kind.ends_with("google.firebase.fcm.v1.FcmError"))
                    .and_then(|d| d.error_code);
                (fcm_code.unwrap_or(body.error.status), body.error.message)
            }
            Err(_) => (String::new(), text),
        };
        let message = format!("FCM answered {status} {code}: {}", truncate_utf8(detail.trim(), MAX_DETAIL_BYTES));
        match code.as_str() {
            // The token is dead, or belongs to another Firebase project: it will never work here.
            "UNREGISTERED" | "SENDER_ID_MISMATCH" => Outcome::Gone(device_id, message),
            // An APNs or web push credential missing from the Firebase project: a new token won't fix it.
            "THIRD_PARTY_AUTH_ERROR" => Outcome::Failed(SendError::Permanent(message)),
            _ if status == StatusCode::UNAUTHORIZED => {
                // The access token was revoked or expired early: the next attempt signs in again.
                self.forget_token(access_token).await;
                Outcome::Failed(SendError::Transient { message, retry_after })
            }
            "QUOTA_EXCEEDED" | "UNAVAILABLE" | "INTERNAL" => {
                Outcome::Failed(SendError::Transient { message, retry_after })
            }
            _ => Outcome::Failed(SendError::from_status(status, message, retry_after)),
        }
    }
}

#[async_trait]
impl Provider for Fcm {
    fn name(&self) -> &'static str {
        "fcm"
    }

    async fn send(&self, cmd: &SendCommand) -> Result<Sent, SendError> {
        let field = |name: &str| cmd.payload.get(name).and_then(Value::as_str);
        let content = Content { title: field("title"), body: field("body"), action_url: field("action_url") };
        let mut outcomes = Outcomes::new("no FCM device among the targets");
        for target in &cmd.targets {
            let Target::Fcm { device_id, token } = target else { continue };
            // Fetched per target so a token dropped after a 401 is replaced for the next device.
            let access_token = match self.access_token().await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(delivery_id = %cmd.delivery_id, error = %e, "FCM sign-in failed");
                    // Every other target would fail the same way.
                    outcomes.add(Err(e));
                    break;
                }
            };
            let render = |body: &str| Self::render(cmd, &content, token, body);
            let Some(message) = fit_body(content.body.unwrap_or_default(), MAX_MESSAGE_BYTES, render) else {
                outcomes.add(Err(SendError::Permanent(format!(
                    "FCM message exceeds {MAX_MESSAGE_BYTES} bytes even without a body"
                ))));
                continue;
            };
            outcomes.add(match self.send_one(*device_id, &access_token, message).await {
                Outcome::Failed(e) => {
                    tracing::warn!(delivery_id = %cmd.delivery_id, %device_id, error = %e, "FCM attempt failed");
                    Err(e)
                }
                Outcome::Gone(device, message) => {
                    tracing::info!(delivery_id = %cmd.delivery_id, %device_id, %message, "FCM device gone");
                    Err(SendError::Gone { message, devices: vec![device] })
                }
                Outcome::Accepted => Ok(Sent::default()),
            });
        }
        outcomes.finish()
    }
}

#[cfg(test)]
mod tests {
    use herald_domain::{Channel, Class};
    use herald_testkit::fcm::{CLIENT_EMAIL, FakeFcm, PUBLIC_KEY, fcm_error, service_account};
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    /// An FCM client of the fake's service account.
    fn client(fake: &FakeFcm) -> Fcm {
        crate::init_tls();
        let config =
            FcmConfig { endpoint: fake.endpoint().to_owned(), service_account_json: service_account(fake.token_uri()) };
        Fcm::new(config, Duration::from_secs(5)).unwrap()
    }

    fn command(targets: Vec<Target>) -> SendCommand {
        SendCommand {
            delivery_id: Uuid::now_v7(),
            channel: Channel::Push,
            user_id: "u1".into(),
            payload: json!({"title": "Hello", "body": "You have a reply", "action_url": "https://example.com/r/1"}),
            targets,
            attempt: 1,
            class: Class::Social,
            collapse_key: None,
            ttl: None,
            unsubscribe_url: None,
        }
    }

    fn device(token: &str) -> (Uuid, Target) {
        let id = Uuid::now_v7();
        (id, Target::Fcm { device_id: id, token: token.into() })
    }

    #[derive(Deserialize)]
    struct SeenClaims {
        iss: String,
        scope: String,
        aud: String,
        iat: u64,
        exp: u64,
    }

    #[tokio::test]
    async fn grant_is_a_jwt_bearer_assertion_signed_by_the_account_key() {
        let fake = FakeFcm::start().await;
        let fcm = client(&fake);
        let (_, target) = device("tok-a");
        fcm.send(&command(vec![target])).await.unwrap();

        let grant = fake.grants()[0].clone();
        assert_eq!(grant["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[fake.token_uri()]);
        validation.set_issuer(&[CLIENT_EMAIL]);
        let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
        let jwt = jsonwebtoken::decode::<SeenClaims>(&grant["assertion"], &key, &validation).unwrap();
        assert_eq!(jwt.header.alg, Algorithm::RS256);
        assert_eq!(jwt.header.typ.as_deref(), Some("JWT"));
        assert_eq!(jwt.header.kid.as_deref(), Some("key-1"));
        assert_eq!(jwt.claims.iss, CLIENT_EMAIL);
        assert_eq!(jwt.claims.scope, "https://www.googleapis.com/auth/firebase.messaging");
        assert_eq!(jwt.claims.aud, fake.token_uri());
        assert_eq!(jwt.claims.exp - jwt.claims.iat, 3600);
    }

    #[tokio::test]
    async fn tampered_assertion_does_not_verify() {
        let fake = FakeFcm::start().await;
        let fcm = client(&fake);
        let jwt = fcm.assertion().unwrap();
        let mut tampered = jwt.rsplit_once('.').unwrap().0.to_owned();
        tampered.push_str(".AAAA");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[fake.token_uri()]);
        let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
        assert!(jsonwebtoken::decode::<SeenClaims>(&tampered, &key, &validation).is_err());
    }

    #[tokio::test]
    async fn access_token_is_cached_across_sends() {
        let fake = FakeFcm::start().await;
        let fcm = client(&fake);
        let (_, a) = device("tok-a");
        let (_, b) = device("tok-b");
        fcm.send(&command(vec![a])).await.unwrap();
        fcm.send(&command(vec![b])).await.unwrap();
        assert_eq!(fake.token_requests(), 1);
        assert_eq!(fake.sent(0).1, "Bearer access-1");
        assert_eq!(fake.sent(1).1, "Bearer access-1");
    }

    #[tokio::test]
    async fn message_carries_bearer_path_and_fields() {
        let fake = FakeFcm::start().await;
        let fcm = client(&fake);
        let (_, target) = device("tok-a");
        let mut cmd = command(vec![target]);
        cmd.class = Class::Critical;
        cmd.ttl = Some(Duration::from_secs(300));
        cmd.collapse_key = Some("thread-7".into());
        assert_eq!(fcm.send(&cmd).await, Ok(Sent::default()));

        let (path, authorization, body) = fake.sent(0);
        assert_eq!(path, "/v1/projects/herald-test/messages:send");
        assert_eq!(authorization, "Bearer access-1");
        let m = &body["message"];
        assert_eq!(m["token"], "tok-a");
        assert_eq!(m["notification"], json!({"title": "Hello", "body": "You have a reply"}));
        assert_eq!(
            m["data"],
            json!({"delivery_id": cmd.delivery_id.to_string(), "action_url": "https://example.com/r/1"})
        );
        assert_eq!(m["android"], json!({"priority": "HIGH", "ttl": "300s", "collapse_key": "thread-7"}));
        assert_eq!(m["apns"], json!({"headers": {"apns-priority": "10", "apns-collapse-id": "thread-7"}}));
    }

    #[tokio::test]
    async fn ordinary_classes_are_normal_priority_without_optional_fields() {
        let fake = FakeFcm::start().await;
        let fcm = client(&fake);
        let (_, target) = device("tok-a");
        let mut cmd = command(vec![target, Target::Email("a@example.com".into())]);
        cmd.payload = json!({"title": "Hi", "body": "there"});
        fcm.send(&cmd).await.unwrap();

        assert_eq!(fake.sends().len(), 1, "non-FCM targets are skipped");
        let m = &fake.sent(0).2["message"];
        assert_eq!(m["android"], json!({"priority": "NORMAL", "ttl": "3600s"}), "an hour unless the notification says");
        assert_eq!(m["apns"], json!({"headers": {"apns-priority": "5"}}));
        assert_eq!(m["data"], json!({"delivery_id": cmd.delivery_id.to_string()}));
    }

    #[tokio::test]
    async fn unregistered_reports_the_device_gone() {
        let fake = FakeFcm::start().await;
        let fcm = client(&fake);
        let (id, target) = device("tok-a");
        fake.reply(404, None, fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."));
        match fcm.send(&command(vec![target])).await {
            Err(SendError::Gone { devices, message }) => {
                assert_eq!(devices, vec![id]);
                assert!(message.contains("UNREGISTERED"), "{message}");
            }
            other => panic!("expected gone, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn gone_devices_are_reported_alongside_a_success() {
        let fake = FakeFcm::start().await;
        let fcm = client(&fake);
        let (gone, a) = device("tok-a");
        let (_, b) = device("tok-b");
        fake.reply(404, None, fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."));
        assert_eq!(fcm.send(&command(vec![a, b])).await, Ok(Sent { gone: vec![gone] }));
    }

    #[tokio::test]
    async fn quota_exceeded_is_transient_with_retry_after() {
        let fake = FakeFcm::start().await;
        let fcm = client(&fake);
        let (_, target) = device("tok-a");
        fake.reply(429, Some("30"), fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded."));
        match fcm.send(&command(vec![target])).await {
            Err(SendError::Transient { retry_after, message }) => {
                assert_eq!(retry_after, Some(30));
                assert!(message.contains("QUOTA_EXCEEDED"), "{message}");
            }
            other => panic!("expected transient, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unavailable_is_transient() {
        let fake = FakeFcm::start().await;
        let fcm = client(&fake);
        let (_, target) = device("tok-a");
        fake.reply(503, None, fcm_error(503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."));
        assert!(matches!(fcm.send(&command(vec![target])).await, Err(SendError::Transient { .. })));
    }

    #[tokio::test]
    async fn invalid_token_is_permanent() {
        let fake = FakeFcm::start().await;
        let fcm = client(&fake);
        let (_, target) = device("not-a-token");
        fake.reply(
            400,
            None,
            fcm_error(
                400,
                "INVALID_ARGUMENT",
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
            ),
        );
        match fcm.send(&command(vec![target])).await {
            Err(SendError::Permanent(message)) => {
                assert!(message.contains("400") && message.contains("INVALID_ARGUMENT"), "{message}");
            }
            other => panic!("expected permanent, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unauthorized_drops_the_access_token() {
        let fake = FakeFcm::start().await;
        let fcm = client(&fake);
        let (_, a) = device("tok-a");
        let (_, b) = device("tok-b");
        fake.reply(
            401,
            None,
            json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}}),
        );
        assert!(matches!(fcm.send(&command(vec![a])).await, Err(SendError::Transient { .. })));
        fcm.send(&command(vec![b])).await.unwrap();
        assert_eq!(fake.token_requests(), 2);
        assert_eq!(fake.sent(1).1, "Bearer access-2");
    }

    #[tokio::test]
    async fn token_endpoint_refusals_and_outages_are_transient() {
        let fake = FakeFcm::start().await;
        let fcm = client(&fake);
        let (_, target) = device("tok-a");
        fake.reply_token(400, None, json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}));
        match fcm.send(&command(vec![target.clone()])).await {
            Err(SendError::Transient { message, .. }) => {
                assert!(
                    message.starts_with("service account refused") && message.contains("invalid_grant"),
                    "{message}"
                );
            }
            other => panic!("expected transient, got {other:?}"),
        }
        fake.reply_token(503, Some("7"), json!({}));
        assert_eq!(
            fcm.send(&command(vec![target]))
                .await
                .map_err(|e| matches!(e, SendError::Transient { retry_after: Some(7), .. })),
            Err(true)
        );
        assert!(fake.sends().is_empty());
    }

    #[tokio::test]
    async fn long_body_is_shortened_to_fit() {
        let fake = FakeFcm::start().await;
        let fcm = client(&fake);
        let (_, target) = device("tok-a");
        let mut cmd = command(vec![target]);
        cmd.payload = json!({"title": "Long read", "body": "é".repeat(5000)});
        fcm.send(&cmd).await.unwrap();

        let raw = &fake.sends()[0].body;
        assert!(raw.len() <= 4096, "{} bytes", raw.len());
        let body: Value = serde_json::from_slice(raw).unwrap();
        let text = body["message"]["notification"]["body"].as_str().unwrap();
        assert!(text.ends_with('…') && text.len() > 3000, "{} bytes", text.len());
        assert_eq!(body["message"]["notification"]["title"], "Long read");
    }

    #[test]
    fn new_rejects_incomplete_accounts_and_bad_keys() {
        crate::init_tls();
        let full: Value = serde_json::from_str(&service_account("http://127.0.0.1:9/token")).unwrap();
        for field in ["project_id", "client_email", "private_key", "token_uri"] {
            let mut partial = full.clone();
            partial.as_object_mut().unwrap().remove(field);
            let config = FcmConfig { endpoint: "http://127.0.0.1:9".into(), service_account_json: partial.to_string() };
            let err = Fcm::new(config, Duration::from_secs(1)).err().unwrap();
            assert!(err.contains(field), "{err}");
        }
        let mut bad = full.clone();
        bad["private_key"] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into();
        let config = FcmConfig { endpoint: "http://127.0.0.1:9".into(), service_account_json: bad.to_string() };
        assert!(Fcm::new(config, Duration::from_secs(1)).is_err());
        let config = FcmConfig { endpoint: "http://127.0.0.1:9".into(), service_account_json: "not json".into() };
        assert!(Fcm::new(config, Duration::from_secs(1)).is_err());
    }
}
