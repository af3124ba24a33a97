//! A fake Apple Push Notification service: HTTP/2 (cleartext, prior knowledge) on a local port,
//! answering `POST /3/device/<token>` as APNs does, chosen by the device token, and recording
//! every request. Also a fixed P-256 signing key in the `.p8` form Apple hands out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State as AxumState};
use axum::http::{HeaderMap, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::json;

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The HTTP version it came over.
    pub version: Version,
    /// `/3/device/<token>`.
    pub path: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// The JSON payload.
    pub body: Vec<u8>,
}

impl Seen {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII header"))
    }

    /// The provider token from `authorization: bearer <jwt>`.
    pub fn bearer(&self) -> &str {
        self.header("authorization").and_then(|a| a.strip_prefix("bearer ")).expect("a bearer token")
    }
}

/// The fake service. A refusal scripted with [`FakeApns::refuse`] comes first; otherwise the device
/// token picks the answer: `gone` (410 Unregistered), `bad-token`
/// (400 BadDeviceToken), `wrong-topic` (400 DeviceTokenNotForTopic), `bad-request` (400
/// BadExpirationDate), `busy` (429 with `Retry-After: 7`), `down` (503), `expired` (403
/// ExpiredProviderToken), `slow` (answers after five seconds); any other token is accepted.
#[derive(Clone)]
pub struct FakeApns {
    url: String,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    refused: HashMap<String, (StatusCode, String)>,
}

impl FakeApns {
    /// Starts the service on 127.0.0.1.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let app = Router::new().route("/3/device/{token}", post(handle)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    /// Answers every push to `token` with `status` and `{"reason": reason}`, as APNs does for a
    /// token it no longer knows (410, `Unregistered`).
    pub fn refuse(&self, token: &str, status: u16, reason: &str) {
        let status = StatusCode::from_u16(status).expect("a valid status");
        self.state.lock().expect("not poisoned").refused.insert(token.to_owned(), (status, reason.to_owned()));
    }

    /// `http://127.0.0.1:<port>`: an endpoint Herald reaches with cleartext HTTP/2.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The requests so far, emptying the record.
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state.lock().expect("not poisoned").seen)
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().expect("not poisoned").seen.clone()
    }
}

async fn handle(AxumState(state): AxumState<Arc<Mutex<State>>>, Path(token): Path<String>, req: Request) -> Response {
    let version = req.version();
    let path = req.uri().path().to_owned();
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.map(|b| b.to_vec()).unwrap_or_default();
    let scripted = {
        let mut state = state.lock().expect("not poisoned");
        state.seen.push(Seen { version, path, headers: parts.headers, body });
        state.refused.get(&token).cloned()
    };
    let refuse = |status: StatusCode, reason: &str| (status, axum::Json(json!({ "reason": reason }))).into_response();
    if let Some((status, reason)) = scripted {
        return refuse(status, &reason);
    }
    match token.as_str() {
        "gone" => refuse(StatusCode::GONE, "Unregistered"),
        "bad-token" => refuse(StatusCode::BAD_REQUEST, "BadDeviceToken"),
        "wrong-topic" => refuse(StatusCode::BAD_REQUEST, "DeviceTokenNotForTopic"),
        "bad-request" => refuse(StatusCode::BAD_REQUEST, "BadExpirationDate"),
        "busy" => ([("retry-after", "7")], refuse(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests")).into_response(),
        "down" => refuse(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
        "expired" => refuse(StatusCode::FORBIDDEN, "ExpiredProviderToken"),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK.into_response()
        }
        _ => StatusCode::OK.into_response(),
    }
}

/// A fixed P-256 key: the PKCS#8 PEM private key (what an `AuthKey_<id>.p8` file holds) and its
/// SPKI PEM public key, to verify provider tokens with.
pub fn signing_key() -> (String, String) {
    let secret = p256::SecretKey::from_slice(&[0x42; 32]).expect("a valid scalar");
    let private = secret.to_pkcs8_pem(LineEnding::LF).expect("encodes").to_string();
    let public = secret.public_key().to_public_key_pem(LineEnding::LF).expect("encodes");
    (private, public)
}
