//! Web Push from the browser's side: a subscriber with its own P-256 key pair and auth secret
//! that decrypts what it receives (RFC 8291, written from the RFCs and sharing no code with the
//! sender, cross-checked with the `http_ece` Python package when it is installed), a check of
//! VAPID authorizations (RFC 8292) with the public key alone, and a push service that records
//! what it is sent.

use std::sync::{Arc, Mutex};

use aes_gcm::aead::Aead;
use aes_gcm::{Aes128Gcm, KeyInit, Nonce};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use p256::SecretKey;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::rand_core::{OsRng, RngCore};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{Value, json};
use sha2::Sha256;

/// A browser's push subscription: its key pair and auth secret.
pub struct Subscriber {
    /// The subscription's private key.
    pub secret: SecretKey,
    /// The 16-byte auth secret.
    pub auth: [u8; 16],
}

impl Default for Subscriber {
    fn default() -> Self {
        Self::new()
    }
}

impl Subscriber {
    /// A fresh subscription.
    pub fn new() -> Self {
        let mut auth = [0u8; 16];
        OsRng.fill_bytes(&mut auth);
        Self { secret: SecretKey::random(&mut OsRng), auth }
    }

    /// The `keys.p256dh` a browser reports: the uncompressed public point, base64url.
    pub fn p256dh(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.secret.public_key().to_encoded_point(false).as_bytes())
    }

    /// The `keys.auth` a browser reports, base64url.
    pub fn auth(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.auth)
    }

    /// Decrypts by hand and, when available, with the reference implementation; both must agree.
    pub fn open(&self, body: &[u8]) -> Vec<u8> {
        let plaintext = decrypt(&self.secret, &self.auth, body);
        if let Some(reference) = reference_decrypt(&self.secret, &self.auth, body) {
            assert_eq!(reference, plaintext, "http_ece and the hand-written decryption disagree");
        }
        plaintext
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// RFC 8291 decryption of one `aes128gcm` message. HKDF (RFC 5869) is spelled out with
/// HMAC-SHA-256: with one output block, Extract is HMAC(salt, IKM) and Expand is
/// HMAC(PRK, info || 0x01) truncated. Panics, as a test should, on anything malformed.
pub fn decrypt(ua_secret: &SecretKey, auth: &[u8], message: &[u8]) -> Vec<u8> {
    // RFC 8188 section 2.1: salt (16) | rs (4) | idlen (1) | keyid (idlen) | records.
    let salt = &message[..16];
    let rs = u32::from_be_bytes(message[16..20].try_into().expect("four bytes")) as usize;
    let idlen = message[20] as usize;
    assert_eq!(idlen, 65, "RFC 8291 section 4: the key id is the sender's uncompressed public key");
    let as_public_bytes = &message[21..21 + idlen];
    let record = &message[21 + idlen..];
    assert!(record.len() <= rs, "RFC 8291 section 4: exactly one record");
    let as_public = p256::PublicKey::from_sec1_bytes(as_public_bytes).expect("the sender's key is a P-256 point");
    let ecdh = p256::ecdh::diffie_hellman(ua_secret.to_nonzero_scalar(), as_public.as_affine());
    let ua_public = ua_secret.public_key().to_encoded_point(false);
    // RFC 8291 section 3.4.
    let prk_key = hmac_sha256(auth, &[&ecdh.raw_secret_bytes()[..]]);
    let ikm = hmac_sha256(&prk_key, &[b"WebPush: info\0", ua_public.as_bytes(), as_public_bytes, &[1]]);
    // RFC 8188 sections 2.2 and 2.3; the first record's nonce is the base nonce itself.
    let prk = hmac_sha256(salt, &[&ikm]);
    let cek = &hmac_sha256(&prk, &[b"Content-Encoding: aes128gcm\0", &[1]])[..16];
    let nonce: [u8; 12] =
        hmac_sha256(&prk, &[b"Content-Encoding: nonce\0", &[1]])[..12].try_into().expect("twelve bytes");
    let mut padded = Aes128Gcm::new_from_slice(cek)
        .expect("a 16-byte key")
        .decrypt(&Nonce::from(nonce), record)
        .expect("the record authenticates");
    // The last record's plaintext ends with a 0x02 delimiter, then zero padding.
    while padded.last() == Some(&0) {
        padded.pop();
    }
    assert_eq!(padded.pop(), Some(2), "last-record delimiter");
    padded
}

/// Decrypts with the `http_ece` Python package; `None` when it is not installed, which CI
/// forbids through `TESTKIT_REQUIRE_WEB_PUSH_REFERENCE`.
pub fn reference_decrypt(ua_secret: &SecretKey, auth: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let script = r#"
import base64, json, sys
import http_ece
from cryptography.hazmat.primitives.asymmetric import ec
d = json.load(sys.stdin)
b = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
key = ec.derive_private_key(int.from_bytes(b(d["private"]), "big"), ec.SECP256R1())
plain = http_ece.decrypt(b(d["body"]), private_key=key, auth_secret=b(d["auth"]), version="aes128gcm")
sys.stdout.write(base64.urlsafe_b64encode(plain).decode())
"#;
    if !crate::python::available("http_ece", "TESTKIT_REQUIRE_WEB_PUSH_REFERENCE") {
        return None;
    }
    let input = json!({
        "private": URL_SAFE_NO_PAD.encode(ua_secret.to_bytes()),
        "auth": URL_SAFE_NO_PAD.encode(auth),
        "body": URL_SAFE_NO_PAD.encode(body),
    });
    let out = crate::python::run(script, &input);
    assert!(out.status.success(), "http_ece could not decrypt: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("base64 is ASCII");
    Some(URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).expect("base64url"))
}

/// Checks an RFC 8292 `Authorization: vapid t=..., k=...` header with the public key alone, and
/// through a JWT library (header, `aud`, `exp`); returns the token's claims.
pub fn verify_vapid(authorization: &str, public_key: &str, origin: &str) -> Value {
    let params = authorization.strip_prefix("vapid ").expect("the vapid scheme");
    let param =
        |name: &str| params.split(',').find_map(|p| p.trim().strip_prefix(name)).unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(param("k="), public_key);
    let jwt = param("t=");
    let point = URL_SAFE_NO_PAD.decode(public_key).expect("base64url key");
    assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed P-256 point");
    let (signing_input, signature) = jwt.rsplit_once('.').expect("a JWS");
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).expect("base64url")).expect("r || s");
    VerifyingKey::from_sec1_bytes(&point)
        .expect("a P-256 key")
        .verify(signing_input.as_bytes(), &signature)
        .expect("the signature verifies with the published key");
    let key = jsonwebtoken::DecodingKey::from_ec_components(
        &URL_SAFE_NO_PAD.encode(&point[1..33]),
        &URL_SAFE_NO_PAD.encode(&point[33..]),
    )
    .expect("EC components");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[origin]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation).expect("a valid VAPID token").claims;
    assert_eq!(claims["aud"], origin);
    let exp = claims["exp"].as_u64().expect("exp");
    let now = jiff::Timestamp::now().as_second() as u64;
    assert!(exp > now && exp <= now + 24 * 3_600, "exp within 24 h: {}", exp.saturating_sub(now));
    claims
}

/// One request the fake push service received.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The request path.
    pub path: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// The encrypted body.
    pub body: Vec<u8>,
}

impl Hit {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII header"))
    }
}

/// A push service on a local port that records every request and answers with the status named
/// by the path's first segment (`/410/abc` answers 410; 429 comes with `Retry-After: 30`), 201
/// otherwise.
#[derive(Clone)]
pub struct FakePushService {
    origin: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl FakePushService {
    /// Starts the service on 127.0.0.1.
    pub async fn start() -> Self {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new().fallback(answer).with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let origin = format!("http://{}", listener.local_addr().expect("bound"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { origin, hits }
    }

    /// `http://127.0.0.1:<port>`: the `aud` of its VAPID tokens.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Every request so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("not poisoned").clone()
    }
}

async fn answer(State(hits): State<Arc<Mutex<Vec<Hit>>>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let status = uri
        .path()
        .split('/')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::CREATED);
    hits.lock().expect("not poisoned").push(Hit { path: uri.path().to_owned(), headers, body: body.to_vec() });
    match status {
        StatusCode::TOO_MANY_REQUESTS => (status, [("retry-after", "30")], "slow down").into_response(),
        _ => status.into_response(),
    }
}
