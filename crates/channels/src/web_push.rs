//! Web Push (RFC 8030) to browser subscriptions. This module owns the server's VAPID key (created
//! once, kept as a PKCS#8 PEM file), the VAPID tokens (RFC 8292, ES256, cached per push service),
//! the notification's JSON and its `aes128gcm` encryption to each subscription (RFC 8291), and the
//! reading of push service answers (accepted, subscription gone, retry later, refused).
//!
//! Encryption is `web-push-native` built without default features: its `vapid` feature would bring
//! a second JWT library (`jwt-simple`), so tokens are signed here with p256's ECDSA instead.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use herald_domain::Class;
use p256::SecretKey;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::rand_core::OsRng;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use uuid::Uuid;

use crate::outcome::Outcomes;
use crate::payload::{fit_body, truncate_utf8};
use crate::{Provider, SendCommand, SendError, Sent, Target, outbound, unix_now};

/// The largest plaintext one message can carry. Push services need only accept 4096 bytes of body
/// (RFC 8030 section 7.2) and the body is a single aes128gcm record (RFC 8188): an 86-byte header
/// (16 salt + 4 record size + 1 key id length + the sender's 65-byte uncompressed public key as key
/// id), then the plaintext, its 1-byte padding delimiter and the 16-byte GCM tag:
/// 4096 - 86 - 1 - 16 = 3993 (RFC 8291 section 4).
const MAX_PLAINTEXT: usize = 3993;

/// How long a VAPID token is valid; RFC 8292 allows at most 24 hours.
const JWT_LIFETIME: u64 = 12 * 3_600;

/// A cached token is replaced once it has less than this left, so clock skew never makes a push
/// service see an expired one.
const JWT_REFRESH_MARGIN: u64 = 3_600;

/// RFC 8030 section 5.4: a topic is at most 32 characters of the base64url alphabet.
const MAX_TOPIC_LEN: usize = 32;

/// How much of a refusal's body is kept for the delivery's error message.
const MAX_REASON_LEN: usize = 200;

/// Subscriptions come from browsers as base64url, with or without padding; some stores keep the
/// standard alphabet, which [`decode_b64url`] maps first.
const B64URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The server's VAPID key pair (P-256): push services bind each subscription to its public half.
#[derive(Clone)]
pub struct VapidKey {
    signing: SigningKey,
    public: String,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey").field("public", &self.public).finish_non_exhaustive()
    }
}

impl VapidKey {
    /// Loads the PEM private key at `path`, or creates one there (mode 0600) when the file is absent.
    pub fn load_or_create(path: &Path) -> Result<VapidKey, String> {
        match std::fs::read_to_string(path) {
            Ok(pem) => Self::from_pem(&pem).map_err(|e| format!("VAPID key {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path),
            Err(e) => Err(format!("cannot read the VAPID key {}: {e}", path.display())),
        }
    }

    /// The uncompressed public point, base64url without padding: the `applicationServerKey`
    /// browsers pass to `pushManager.subscribe`.
    pub fn public_key(&self) -> String {
        self.public.clone()
    }

    fn from_pem(pem: &str) -> Result<Self, String> {
        // PKCS#8 is what Herald writes; SEC1 (`openssl ecparam -genkey`) is accepted as well.
        let secret = SecretKey::from_pkcs8_pem(pem)
            .or_else(|_| SecretKey::from_sec1_pem(pem))
            .map_err(|_| "not a PEM P-256 private key (PKCS#8 or SEC1)".to_owned())?;
        Ok(Self::from_secret(&secret))
    }

    fn from_secret(secret: &SecretKey) -> Self {
        let public = URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes());
        Self { signing: SigningKey::from(secret), public }
    }

    fn create(path: &Path) -> Result<Self, String> {
        let secret = SecretKey::random(&mut OsRng);
        let pem = secret.to_pkcs8_pem(LineEnding::LF).map_err(|e| format!("cannot encode the VAPID key: {e}"))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let mut options = std::fs::OpenOptions::new();
        // `create_new` never overwrites a key another instance wrote in the meantime.
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = match options.open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the VAPID key {}: {e}", path.display()))?;
                return Self::from_pem(&pem).map_err(|e| format!("VAPID key {}: {e}", path.display()));
            }
            Err(e) => return Err(format!("cannot create the VAPID key {}: {e}", path.display())),
        };
        file.write_all(pem.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write the VAPID key {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), "created a new VAPID key");
        Ok(Self::from_secret(&secret))
    }

    /// An ES256 JWT (RFC 8292 section 2) for the push service at `aud`, valid until `exp`.
    fn sign_jwt(&self, aud: &str, exp: u64, sub: &str) -> Result<String, SendError> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = URL_SAFE_NO_PAD.encode(serde_json::json!({"aud": aud, "exp": exp, "sub": sub}).to_string());
        let signing_input = format!("{header}.{claims}");
        let signature: Signature = self
            .signing
            .try_sign(signing_input.as_bytes())
            .map_err(|e| SendError::Transient { message: format!("VAPID signing failed: {e}"), retry_after: None })?;
        // JWS wants the fixed-size r || s form, not DER.
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes())))
    }
}

/// A signed token and when it expires (Unix seconds).
struct Token {
    header: String,
    expires: u64,
}

/// Sends encrypted notifications to browser push subscriptions.
pub struct WebPush {
    client: outbound::Client,
    key: VapidKey,
    subject: String,
    tokens: Mutex<HashMap<String, Token>>,
}

impl WebPush {
    /// A provider signing with `key`, reachable at `subject` (`mailto:` or `https:`), whose requests
    /// time out after `timeout` and reach only the push services `policy` permits.
    pub fn new(key: VapidKey, subject: String, timeout: Duration, policy: outbound::Policy) -> Result<WebPush, String> {
        // RFC 8292 section 2.1: the push service operator must be able to reach the sender.
        if !(subject.starts_with("mailto:") || subject.starts_with("https://")) {
            return Err(format!("the VAPID subject must be a mailto: or https: URL, not `{subject}`"));
        }
        let client = outbound::Client::new(policy, timeout)
            .map_err(|e| format!("cannot build the web push HTTP client: {e}"))?;
        Ok(Self { client, key, subject, tokens: Mutex::new(HashMap::new()) })
    }

    /// The `Authorization` value for the push service at `origin`, reusing a token while it has
    /// more than [`JWT_REFRESH_MARGIN`] left.
    fn authorization(&self, origin: &str, now: u64) -> Result<String, SendError> {
        // The map holds plain data, so a panic elsewhere cannot leave it inconsistent.
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = tokens.get(origin)
            && t.expires > now + JWT_REFRESH_MARGIN
        {
            return Ok(t.header.clone());
        }
        let expires = now + JWT_LIFETIME;
        let jwt = self.key.sign_jwt(origin, expires, &self.subject)?;
        let header = format!("vapid t={jwt}, k={}", self.key.public);
        tokens.retain(|_, t| t.expires > now);
        tokens.insert(origin.to_owned(), Token { header: header.clone(), expires });
        Ok(header)
    }

    /// Encrypts `plaintext` to one subscription and posts it.
    async fn push(
        &self,
        cmd: &SendCommand,
        device_id: Uuid,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        plaintext: &[u8],
    ) -> Result<(), SendError> {
        let url =
            reqwest::Url::parse(endpoint).map_err(|e| SendError::Permanent(format!("invalid push endpoint: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(SendError::Permanent(format!("unsupported push endpoint scheme `{}`", url.scheme())));
        }
        let origin = url.origin().ascii_serialization();
        let ua_public = decode_b64url(p256dh)
            .and_then(|b| p256::PublicKey::from_sec1_bytes(&b).ok())
            .ok_or_else(|| SendError::Permanent("invalid subscription key (p256dh)".into()))?;
        let ua_auth = decode_b64url(auth)
            .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
            .map(web_push_native::Auth::from)
            .ok_or_else(|| SendError::Permanent("invalid subscription auth secret".into()))?;
        let body = web_push_native::encrypt(plaintext.to_vec(), &ua_public, &ua_auth)
            .map_err(|e| SendError::Permanent(format!("encryption failed: {e}")))?;
        let authorization = self.authorization(&origin, unix_now())?;
        let topic = cmd.collapse_key.as_deref().filter(|k| valid_topic(k));
        let resp = self
            .client
            .post("web push endpoint", url, |request| {
                let request = request
                    .header("content-encoding", "aes128gcm")
                    .header("content-type", "application/octet-stream")
                    .header("ttl", crate::ttl_seconds(cmd).to_string())
                    .header("urgency", urgency(cmd.class))
                    .header("authorization", authorization)
                    .body(body);
                match topic {
                    Some(topic) => request.header("topic", topic),
                    None => request,
                }
            })
            .await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = crate::retry_after(resp.headers());
        let reason = reason(resp).await;
        let message = if reason.is_empty() {
            format!("push service answered {status}")
        } else {
            format!("push service answered {status}: {reason}")
        };
        match status.as_u16() {
            // RFC 8030 section 7.3: the subscription expired or was cancelled.
            404 | 410 => Err(SendError::Gone { message, devices: vec![device_id] }),
            413 => Err(SendError::Permanent(format!("payload too large ({message})"))),
            _ => Err(SendError::from_status(status, message, retry_after)),
        }
    }
}

#[async_trait]
impl Provider for WebPush {
    fn name(&self) -> &'static str {
        "web_push"
    }

    async fn send(&self, cmd: &SendCommand) -> Result<Sent, SendError> {
        let plaintext = plaintext(cmd)?;
        let mut outcomes = Outcomes::new("no web push subscription to send to");
        for t in &cmd.targets {
            let Target::WebPush { device_id, endpoint, p256dh, auth } = t else { continue };
            let result = self.push(cmd, *device_id, endpoint, p256dh, auth, &plaintext).await;
            match &result {
                Ok(()) => {}
                Err(SendError::Gone { message, .. }) => {
                    tracing::info!(delivery_id = %cmd.delivery_id, %device_id, %message, "web push subscription gone");
                }
                Err(e) => {
                    tracing::warn!(delivery_id = %cmd.delivery_id, %endpoint, error = %e, "web push attempt failed")
                }
            }
            outcomes.add(result.map(|()| Sent::default()));
        }
        outcomes.finish()
    }

    /// Each push service has its own breaker: an outage at one browser vendor must not hold up the
    /// others.
    fn circuit(&self, cmd: &SendCommand) -> String {
        let origin = cmd.targets.iter().find_map(|t| match t {
            Target::WebPush { endpoint, .. } => {
                reqwest::Url::parse(endpoint).ok().map(|u| u.origin().ascii_serialization())
            }
            _ => None,
        });
        format!("web_push {}", origin.unwrap_or_default())
    }
}

/// The notification a service worker receives, shortened to fit one encrypted record.
fn plaintext(cmd: &SendCommand) -> Result<Vec<u8>, SendError> {
    if !cmd.payload.is_object() {
        return Err(SendError::Permanent("the web push payload is not a JSON object".into()));
    }
    let title = text_field(&cmd.payload, "title")?;
    let body = text_field(&cmd.payload, "body")?;
    let action_url = text_field(&cmd.payload, "action_url")?;
    let render = |b: &str| {
        serde_json::json!({
            "title": title,
            "body": body.map(|_| b),
            "action_url": action_url,
            "delivery_id": cmd.delivery_id,
            "class": cmd.class,
        })
        .to_string()
        .into_bytes()
    };
    fit_body(body.unwrap_or_default(), MAX_PLAINTEXT, render).ok_or_else(|| {
        SendError::Permanent("payload too large: the notification does not fit even with an empty body".into())
    })
}

/// An optional string field of the payload; anything but a string or null is a template error.
fn text_field<'a>(payload: &'a serde_json::Value, name: &str) -> Result<Option<&'a str>, SendError> {
    match payload.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(SendError::Permanent(format!("web push payload field `{name}` is not a string"))),
    }
}

/// RFC 8030 section 5.3: lets the browser's device save battery on what can wait.
fn urgency(class: Class) -> &'static str {
    match class {
        Class::Critical => "high",
        Class::Transactional | Class::Social => "normal",
        Class::Marketing => "low",
    }
}

/// Whether a collapse key can be sent as a `Topic` (RFC 8030 section 5.4).
fn valid_topic(key: &str) -> bool {
    (1..=MAX_TOPIC_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Decodes a base64url subscription value, tolerating padding and the standard alphabet.
fn decode_b64url(s: &str) -> Option<Vec<u8>> {
    let s: String = s
        .trim()
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    B64URL_LENIENT.decode(s).ok()
}

/// The start of a refusal's body, read in bounded chunks so a hostile endpoint cannot make us
/// buffer much.
async fn reason(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < 4 * MAX_REASON_LEN {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    truncate_utf8(text.trim(), MAX_REASON_LEN).to_owned()
}

#[cfg(test)]
mod tests {
    use herald_domain::Channel;
    use herald_testkit::web_push::{FakePushService, Subscriber, decrypt, verify_vapid};
    use serde_json::{Value, json};

    use super::*;

    const SUBJECT: &str = "mailto:ops@example.com";

    /// The subscription's push target.
    fn target(sub: &Subscriber, device_id: Uuid, endpoint: String) -> Target {
        Target::WebPush { device_id, endpoint, p256dh: sub.p256dh(), auth: sub.auth() }
    }

    /// A provider that may reach the fake push services, which listen on loopback.
    fn provider() -> WebPush {
        provider_with(outbound::Policy::new(vec![outbound::parse_network("127.0.0.0/8").unwrap()]))
    }

    fn provider_with(policy: outbound::Policy) -> WebPush {
        crate::init_tls();
        let key = VapidKey::from_secret(&SecretKey::random(&mut OsRng));
        WebPush::new(key, SUBJECT.into(), Duration::from_secs(5), policy).unwrap()
    }

    fn command(class: Class, payload: Value, targets: Vec<Target>) -> SendCommand {
        SendCommand {
            delivery_id: Uuid::now_v7(),
            channel: Channel::WebPush,
            user_id: "ana".into(),
            payload,
            targets,
            attempt: 1,
            class,
            collapse_key: None,
            ttl: None,
            unsubscribe_url: None,
        }
    }

    #[tokio::test]
    async fn sends_an_encrypted_signed_message() {
        let service = FakePushService::start().await;
        let origin = service.origin();
        let push = provider();
        let sub = Subscriber::new();
        let payload =
            json!({"title": "New sign-in", "body": "From Lisbon, «Firefox»", "action_url": "https://app.example/s"});
        let mut cmd =
            command(Class::Critical, payload, vec![target(&sub, Uuid::now_v7(), format!("{origin}/201/sub-1"))]);
        cmd.collapse_key = Some("sign-in_42".into());
        assert_eq!(push.send(&cmd).await, Ok(Sent::default()));

        let hits = service.hits();
        let [hit] = hits.as_slice() else { panic!("one request") };
        assert_eq!(hit.header("content-encoding"), Some("aes128gcm"));
        assert_eq!(hit.header("content-type"), Some("application/octet-stream"));
        assert_eq!(hit.header("ttl"), Some("86400"));
        assert_eq!(hit.header("urgency"), Some("high"));
        assert_eq!(hit.header("topic"), Some("sign-in_42"));
        let claims = verify_vapid(hit.header("authorization").unwrap(), &push.key.public_key(), origin);
        assert_eq!(claims["sub"], SUBJECT);
        let exp = claims["exp"].as_u64().unwrap();
        assert!(exp > unix_now() + 11 * 3_600, "a token lives about twelve hours: {exp}");

        let plaintext: Value = serde_json::from_slice(&sub.open(&hit.body)).unwrap();
        assert_eq!(
            plaintext,
            json!({
                "title": "New sign-in",
                "body": "From Lisbon, «Firefox»",
                "action_url": "https://app.example/s",
                "delivery_id": cmd.delivery_id.to_string(),
                "class": "critical",
            })
        );
    }

    #[tokio::test]
    async fn ttl_urgency_and_topic_follow_the_command() {
        let service = FakePushService::start().await;
        let origin = service.origin();
        let push = provider();
        let sub = Subscriber::new();
        let cases = [
            (Class::Transactional, None, Some("a".repeat(33)), "86400", "normal", None),
            (Class::Social, None, Some("thread 42".into()), "3600", "normal", None),
            (Class::Marketing, Some(Duration::from_secs(120)), Some("spring".into()), "120", "low", Some("spring")),
        ];
        for (class, ttl, collapse_key, _, _, _) in &cases {
            let mut cmd =
                command(*class, json!({"body": "hi"}), vec![target(&sub, Uuid::now_v7(), format!("{origin}/"))]);
            cmd.ttl = *ttl;
            cmd.collapse_key = collapse_key.clone();
            assert_eq!(push.send(&cmd).await, Ok(Sent::default()));
        }
        let hits = service.hits();
        assert_eq!(hits.len(), cases.len());
        for (hit, (class, _, _, ttl, urgency, topic)) in hits.iter().zip(&cases) {
            assert_eq!(hit.header("ttl"), Some(*ttl), "{class}");
            assert_eq!(hit.header("urgency"), Some(*urgency), "{class}");
            assert_eq!(hit.header("topic"), *topic, "{class}");
            let plaintext: Value = serde_json::from_slice(&sub.open(&hit.body)).unwrap();
            assert_eq!((plaintext["class"].as_str(), plaintext["title"].is_null()), (Some(class.as_str()), true));
        }
    }

    #[tokio::test]
    async fn gone_subscriptions_are_reported() {
        let service = FakePushService::start().await;
        let origin = service.origin();
        let push = provider();
        let sub = Subscriber::new();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let cmd = command(
            Class::Social,
            json!({"body": "hi"}),
            vec![target(&sub, a, format!("{origin}/410/a")), target(&sub, b, format!("{origin}/404/b"))],
        );
        match push.send(&cmd).await {
            Err(SendError::Gone { devices, .. }) => assert_eq!(devices, [a, b]),
            other => panic!("expected gone, got {other:?}"),
        }
        let cmd = command(
            Class::Social,
            json!({"body": "hi"}),
            vec![target(&sub, a, format!("{origin}/201/a")), target(&sub, b, format!("{origin}/410/b"))],
        );
        assert_eq!(push.send(&cmd).await, Ok(Sent { gone: vec![b] }));
    }

    #[tokio::test]
    async fn refusals_are_classified() {
        let service = FakePushService::start().await;
        let origin = service.origin();
        let push = provider();
        let sub = Subscriber::new();
        let send = |paths: &[&str]| {
            let targets = paths.iter().map(|p| target(&sub, Uuid::now_v7(), format!("{origin}/{p}"))).collect();
            let cmd = command(Class::Social, json!({"body": "hi"}), targets);
            let push = &push;
            async move { push.send(&cmd).await }
        };
        match send(&["429/a"]).await {
            Err(SendError::Transient { retry_after, message }) => {
                assert_eq!(retry_after, Some(30));
                assert!(message.contains("slow down"), "{message}");
            }
            other => panic!("expected transient, got {other:?}"),
        }
        assert!(matches!(send(&["503/a", "410/b"]).await, Err(SendError::Transient { retry_after: None, .. })));
        assert!(matches!(send(&["403/a", "503/b"]).await, Err(SendError::Transient { .. })));
        assert!(matches!(send(&["413/a"]).await, Err(SendError::Permanent(m)) if m.contains("payload too large")));
        assert!(matches!(send(&["400/a"]).await, Err(SendError::Permanent(_))));
        assert!(matches!(send(&["403/a", "410/b"]).await, Err(SendError::Permanent(_))));
        let email = command(Class::Social, json!({}), vec![Target::Email("ana@example.com".into())]);
        assert!(matches!(push.send(&email).await, Err(SendError::Permanent(_))));
    }

    #[tokio::test]
    async fn a_long_body_is_shortened_to_fit_one_record() {
        let service = FakePushService::start().await;
        let origin = service.origin();
        let push = provider();
        let sub = Subscriber::new();
        let body = "Ünïcödé \"quoted\" text. ".repeat(400);
        let cmd = command(
            Class::Social,
            json!({"title": "Long", "body": body}),
            vec![target(&sub, Uuid::now_v7(), format!("{origin}/"))],
        );
        assert_eq!(push.send(&cmd).await, Ok(Sent::default()));
        let hits = service.hits();
        let [hit] = hits.as_slice() else { panic!("one request") };
        assert!(hit.body.len() <= 4096, "{} bytes", hit.body.len());
        let plaintext = sub.open(&hit.body);
        assert_eq!(hit.body.len(), plaintext.len() + 86 + 1 + 16);
        assert!(plaintext.len() > MAX_PLAINTEXT - 40, "the body is cut close to the limit: {}", plaintext.len());
        let kept = serde_json::from_slice::<Value>(&plaintext).unwrap()["body"].as_str().unwrap().to_owned();
        let kept = kept.strip_suffix('…').expect("an ellipsis marks the cut");
        assert!(body.starts_with(kept));
    }

    #[tokio::test]
    async fn bad_subscriptions_and_payloads_are_refused() {
        let service = FakePushService::start().await;
        let origin = service.origin();
        let push = provider();
        let sub = Subscriber::new();
        let good = |endpoint: String| target(&sub, Uuid::now_v7(), endpoint);
        let broken = [
            Target::WebPush {
                device_id: Uuid::now_v7(),
                endpoint: format!("{origin}/"),
                p256dh: "not a key".into(),
                auth: URL_SAFE_NO_PAD.encode(sub.auth),
            },
            Target::WebPush {
                device_id: Uuid::now_v7(),
                endpoint: format!("{origin}/"),
                p256dh: URL_SAFE_NO_PAD.encode(sub.secret.public_key().to_encoded_point(false).as_bytes()),
                auth: URL_SAFE_NO_PAD.encode([0u8; 15]),
            },
            good("not a url".into()),
            good("ftp://127.0.0.1/x".into()),
        ];
        for target in broken {
            let cmd = command(Class::Social, json!({"body": "hi"}), vec![target.clone()]);
            assert!(matches!(push.send(&cmd).await, Err(SendError::Permanent(_))), "{target:?}");
        }
        for payload in [json!("text"), json!({"title": 5}), json!({"title": "t".repeat(5000)})] {
            let cmd = command(Class::Social, payload.clone(), vec![good(format!("{origin}/"))]);
            assert!(matches!(push.send(&cmd).await, Err(SendError::Permanent(_))), "{payload}");
        }
        assert!(service.hits().is_empty());

        // Padded, standard-alphabet keys are what some subscription stores hold.
        let Target::WebPush { device_id, endpoint, p256dh, auth } = good(format!("{origin}/")) else { unreachable!() };
        let padded =
            |s: String| format!("{}{}", s.replace('-', "+").replace('_', "/"), "=".repeat((4 - s.len() % 4) % 4));
        let target = Target::WebPush { device_id, endpoint, p256dh: padded(p256dh), auth: padded(auth) };
        let cmd = command(Class::Social, json!({"body": "hi"}), vec![target]);
        assert_eq!(push.send(&cmd).await, Ok(Sent::default()));
        let hits = service.hits();
        let plaintext: Value = serde_json::from_slice(&sub.open(&hits[0].body)).unwrap();
        assert_eq!(plaintext["body"], "hi");
    }

    #[tokio::test]
    async fn a_push_service_on_a_private_address_is_refused_for_good() {
        let service = FakePushService::start().await;
        let origin = service.origin();
        let push = provider_with(outbound::Policy::default());
        let sub = Subscriber::new();
        let cmd =
            command(Class::Social, json!({"body": "hi"}), vec![target(&sub, Uuid::now_v7(), format!("{origin}/"))]);
        match push.send(&cmd).await {
            Err(SendError::Permanent(m)) => {
                assert_eq!(m, "web push endpoint 127.0.0.1 is a private address; allow it with outbound.allow_private")
            }
            other => panic!("expected a permanent refusal, got {other:?}"),
        }
        assert!(service.hits().is_empty());
    }

    #[test]
    fn the_vapid_key_is_created_once() {
        let dir = std::env::temp_dir().join(format!("herald-vapid-{}", Uuid::now_v7()));
        let path = dir.join("keys").join("vapid.pem");
        let created = VapidKey::load_or_create(&path).unwrap();
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let loaded = VapidKey::load_or_create(&path).unwrap();
        assert_eq!(loaded.public_key(), created.public_key());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), pem, "an existing key is never rewritten");
        let point = URL_SAFE_NO_PAD.decode(created.public_key()).unwrap();
        assert_eq!((point.len(), point[0]), (65, 4));

        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a key").unwrap();
        assert!(VapidKey::load_or_create(&garbage).is_err());
        assert_eq!(std::fs::read_to_string(&garbage).unwrap(), "not a key");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tokens_are_cached_per_origin_until_an_hour_before_expiry() {
        let push = provider();
        let now = 1_700_000_000;
        let first = push.authorization("https://push.example", now).unwrap();
        let later = now + JWT_LIFETIME - JWT_REFRESH_MARGIN - 1;
        assert_eq!(push.authorization("https://push.example", later).unwrap(), first);
        assert_ne!(push.authorization("https://other.example", now).unwrap(), first);
        let renewed = push.authorization("https://push.example", later + 1).unwrap();
        assert_ne!(renewed, first);
        assert_eq!(push.authorization("https://push.example", later + 1).unwrap(), renewed);
    }

    #[test]
    fn subject_must_be_mailto_or_https() {
        let new = |subject: &str| {
            let key = VapidKey::from_secret(&SecretKey::random(&mut OsRng));
            WebPush::new(key, subject.into(), Duration::from_secs(1), outbound::Policy::default())
        };
        assert!(new("https://herald.example").is_ok());
        assert!(new("ops@example.com").is_err());
        assert!(new("http://herald.example").is_err());
    }

    /// The worked example of RFC 8291 section 5 proves the hand-written decryption above. The
    /// sender's side cannot be pinned to it: `web_push_native::encrypt` draws its own key pair and
    /// salt.
    #[test]
    fn the_rfc_8291_example_decrypts() {
        let b = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
        let ua_secret = SecretKey::from_slice(&b("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")).unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.encode(ua_secret.public_key().to_encoded_point(false).as_bytes()),
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
        );
        let message = b(concat!(
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6Tlz",
            "AC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
        ));
        let plaintext = decrypt(&ua_secret, &b("BTBZMqHH6r4Tts7J_aSIgg"), &message);
        assert_eq!(plaintext, b"When I grow up, I want to be a watermelon");
    }
}
