//! A fake Firebase Cloud Messaging: the OAuth2 token endpoint of a service account (`/token`)
//! and the HTTP v1 `messages:send` call, recording every grant and send and answering as
//! Google does, with scripted refusals. Also a service account whose key verifies the grants.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The service account's RSA private key (PKCS#8 PEM).
pub const PRIVATE_KEY: &str = include_str!("../fixtures/fcm_test_key.pem");
/// Its public key (SPKI PEM): what Google would verify assertions with.
pub const PUBLIC_KEY: &str = include_str!("../fixtures/fcm_test_key.pub.pem");
/// The Firebase project.
pub const PROJECT: &str = "herald-test";
/// The service account's email: the assertion's issuer.
pub const CLIENT_EMAIL: &str = "herald@herald-test.iam.gserviceaccount.com";

/// A service account JSON file whose `token_uri` is `token_uri`.
pub fn service_account(token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "key-1",
        "private_key": PRIVATE_KEY,
        "client_email": CLIENT_EMAIL,
        "token_uri": token_uri,
    })
    .to_string()
}

/// Google's error body for FCM, e.g. `fcm_error(404, "NOT_FOUND", "UNREGISTERED", "...")`.
pub fn fcm_error(code: u16, status: &str, error_code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status, "details": [
        {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}
    ]}})
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`, if any.
    pub retry_after: Option<&'static str>,
    /// JSON body.
    pub body: Value,
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, axum::Json(self.body)).into_response();
        if let Some(r) = self.retry_after.and_then(|r| r.parse().ok()) {
            resp.headers_mut().insert("retry-after", r);
        }
        resp
    }
}

/// One `messages:send` request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The request path.
    pub path: String,
    /// The `authorization` header.
    pub authorization: String,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Sent {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct FakeState {
    grants: Vec<HashMap<String, String>>,
    sends: Vec<Sent>,
    token_replies: VecDeque<Reply>,
    send_replies: VecDeque<Reply>,
    refused: HashMap<String, Reply>,
}

type Shared = Arc<Mutex<FakeState>>;

/// The fake: grants access tokens `access-1`, `access-2`... and accepts every message unless a
/// reply was scripted.
#[derive(Clone)]
pub struct FakeFcm {
    token_uri: String,
    endpoint: String,
    state: Shared,
}

impl FakeFcm {
    /// Starts it on 127.0.0.1.
    pub async fn start() -> Self {
        let state = Shared::default();
        let app = Router::new().route("/token", post(token)).fallback(messages).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("bound");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { token_uri: format!("http://{addr}/token"), endpoint: format!("http://{addr}/"), state }
    }

    /// The OAuth2 token endpoint (the service account's `token_uri`).
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// The FCM API base URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().expect("not poisoned")
    }

    /// Answers the next send with this.
    pub fn reply(&self, status: u16, retry_after: Option<&'static str>, body: Value) {
        self.lock().send_replies.push_back(Reply { status, retry_after, body });
    }

    /// Answers the next token request with this.
    pub fn reply_token(&self, status: u16, retry_after: Option<&'static str>, body: Value) {
        self.lock().token_replies.push_back(Reply { status, retry_after, body });
    }

    /// Answers every send to this registration token with this.
    pub fn refuse(&self, registration_token: &str, status: u16, body: Value) {
        self.lock().refused.insert(registration_token.to_owned(), Reply { status, retry_after: None, body });
    }

    /// The token requests so far (form fields).
    pub fn grants(&self) -> Vec<HashMap<String, String>> {
        self.lock().grants.clone()
    }

    /// How many token requests there were.
    pub fn token_requests(&self) -> usize {
        self.lock().grants.len()
    }

    /// The sends so far.
    pub fn sends(&self) -> Vec<Sent> {
        self.lock().sends.clone()
    }

    /// The `i`th send: path, authorization, JSON body.
    pub fn sent(&self, i: usize) -> (String, String, Value) {
        let seen = self.lock().sends[i].clone();
        let body = seen.json();
        (seen.path, seen.authorization, body)
    }
}

async fn token(State(state): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Reply {
    let mut state = state.lock().expect("not poisoned");
    state.grants.push(form);
    let n = state.grants.len();
    state.token_replies.pop_front().unwrap_or(Reply {
        status: 200,
        retry_after: None,
        body: json!({"access_token": format!("access-{n}"), "expires_in": 3599, "token_type": "Bearer"}),
    })
}

async fn messages(State(state): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> Reply {
    let mut state = state.lock().expect("not poisoned");
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let registration = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["message"]["token"].as_str().map(str::to_owned))
        .unwrap_or_default();
    state.sends.push(Sent { path: uri.path().to_owned(), authorization, body: body.to_vec() });
    if let Some(reply) = state.refused.get(&registration) {
        return reply.clone();
    }
    let n = state.sends.len();
    state.send_replies.pop_front().unwrap_or(Reply {
        status: 200,
        retry_after: None,
        body: json!({"name": format!("projects/{PROJECT}/messages/{n}")}),
    })
}
