//! A fake of the Twilio Messages API for tests.
//!
//! [`FakeTwilio`] serves `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` on 127.0.0.1 the
//! way Twilio does: HTTP Basic auth with the account SID and auth token, form-encoded parameters,
//! a `201` message resource on success and Twilio's error JSON (`code`, `message`, `more_info`,
//! `status`) otherwise. Tests script failures per destination number, mark numbers as having
//! replied STOP, and read back every request it received.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where every Messages resource lives.
const ACCOUNTS_PREFIX: &str = "/2010-04-01/Accounts/";
/// The Messages list under an account.
const MESSAGES_SUFFIX: &str = "/Messages.json";
/// Twilio refuses longer bodies (error 21617).
const MAX_BODY_CHARS: usize = 1600;

/// An error answer scripted for a destination number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status; one that is not a valid status code is answered as 500.
    pub status: u16,
    /// Twilio error code, e.g. 30003 or 20429.
    pub code: u32,
    /// Twilio's error message.
    pub message: String,
    /// `Retry-After` header value (seconds or an HTTP date), if any.
    pub retry_after: Option<String>,
}

impl Failure {
    /// A failure without `Retry-After`.
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> Failure {
        Failure { status, code, message: message.into(), retry_after: None }
    }

    /// The same failure with a `Retry-After` header.
    pub fn with_retry_after(mut self, value: impl Into<String>) -> Failure {
        self.retry_after = Some(value.into());
        self
    }
}

/// One request the fake received, whatever it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    /// HTTP method.
    pub method: String,
    /// Request path, e.g. `/2010-04-01/Accounts/AC.../Messages.json`.
    pub path: String,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
    /// Form fields in the order sent (repeated names kept).
    pub form: Vec<(String, String)>,
    /// HTTP status the fake answered.
    pub status: u16,
    /// The message SID (`SM...`) when the fake accepted the message.
    pub sid: Option<String>,
}

impl SentSms {
    /// The first form field called `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// User name and password of the HTTP Basic `Authorization` header.
    pub fn basic_auth(&self) -> Option<(String, String)> {
        basic_credentials(self.authorization.as_deref()?)
    }

    /// Whether the fake accepted the message.
    pub fn accepted(&self) -> bool {
        self.sid.is_some()
    }
}

/// Scripted behaviour and what was received.
#[derive(Default)]
struct Inner {
    requests: Vec<SentSms>,
    failures: HashMap<String, Failure>,
    stopped: HashSet<String>,
    latency: Duration,
    created: u64,
}

/// State shared with the server task.
struct Shared {
    account_sid: String,
    auth_token: String,
    inner: Mutex<Inner>,
    /// Number of requests recorded, for [`FakeTwilio::wait_for`].
    recorded: watch::Sender<usize>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not hide what was recorded from the others.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fake Twilio Messages API on a local port; stops when dropped.
pub struct FakeTwilio {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeTwilio {
    /// Starts a fake that accepts `account_sid` / `auth_token` as credentials.
    pub async fn start(account_sid: impl Into<String>, auth_token: impl Into<String>) -> std::io::Result<FakeTwilio> {
        let shared = Arc::new(Shared {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            inner: Mutex::default(),
            recorded: watch::Sender::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            // Only ends with an accept error on a dead socket; the fake then answers nothing,
            // which the test sees as connection failures.
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeTwilio { addr, shared, server })
    }

    /// The base URL to configure the client with, e.g. `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, oldest first.
    pub fn messages(&self) -> Vec<SentSms> {
        self.shared.lock().requests.clone()
    }

    /// Waits until at least `n` requests were received or `timeout` passed, and returns every
    /// request received by then (check its length).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<SentSms> {
        let mut recorded = self.shared.recorded.subscribe();
        // Timing out is an answer too: the caller asserts on what did arrive.
        let _ = tokio::time::timeout(timeout, recorded.wait_for(|count| *count >= n)).await;
        self.messages()
    }

    /// Answers every later message to `to` with `failure`, until [`FakeTwilio::recover`].
    pub fn fail(&self, to: &str, failure: Failure) {
        self.shared.lock().failures.insert(to.to_owned(), failure);
    }

    /// Stops failing messages to `to`.
    pub fn recover(&self, to: &str) {
        self.shared.lock().failures.remove(to);
    }

    /// Records that `to` replied STOP: messages to it get 400 with code 21610.
    pub fn opt_out(&self, to: &str) {
        self.shared.lock().stopped.insert(to.to_owned());
    }

    /// Records that `to` replied START: messages to it are accepted again.
    pub fn opt_in(&self, to: &str) {
        self.shared.lock().stopped.remove(to);
    }

    /// Delays every later answer by `latency` (the request is recorded before the delay).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An answer before it is recorded and sent.
struct Reply {
    status: StatusCode,
    body: Value,
    retry_after: Option<String>,
    sid: Option<String>,
}

impl Reply {
    /// Twilio's error JSON.
    fn error(status: StatusCode, code: u32, message: &str) -> Reply {
        let body = json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        });
        Reply { status, body, retry_after: None, sid: None }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        if let Some(value) = self.retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
            resp.headers_mut().insert(RETRY_AFTER, value);
        }
        resp
    }
}

/// Every request lands here: it is recorded, then answered as Twilio would.
async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Reply {
    // Twilio reads an unparsable or missing form as no parameters, and says which one is missing.
    let form = form.map(|Form(fields)| fields).unwrap_or_default();
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (reply, latency, count) = {
        let mut inner = shared.lock();
        let reply = answer(&shared, &mut inner, &method, uri.path(), authorization.as_deref(), &form);
        inner.requests.push(SentSms {
            method: method.to_string(),
            path: uri.path().to_owned(),
            authorization,
            form,
            status: reply.status.as_u16(),
            sid: reply.sid.clone(),
        });
        (reply, inner.latency, inner.requests.len())
    };
    shared.recorded.send_replace(count);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    reply
}

/// What Twilio would answer to this request.
fn answer(
    shared: &Shared,
    inner: &mut Inner,
    method: &Method,
    path: &str,
    authorization: Option<&str>,
    form: &[(String, String)],
) -> Reply {
    let account = path.strip_prefix(ACCOUNTS_PREFIX).and_then(|rest| rest.strip_suffix(MESSAGES_SUFFIX));
    let Some(account) = account.filter(|_| method == Method::POST) else {
        return Reply::error(StatusCode::NOT_FOUND, 20404, &format!("The requested resource {path} was not found"));
    };
    let credentials = authorization.and_then(basic_credentials);
    if credentials.as_ref().is_none_or(|(user, pass)| *user != shared.account_sid || *pass != shared.auth_token) {
        return Reply::error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    if account != shared.account_sid {
        return Reply::error(StatusCode::NOT_FOUND, 20404, &format!("The requested resource {path} was not found"));
    }
    let field = |name: &str| form.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str());
    let Some(to) = field("To") else {
        return Reply::error(StatusCode::BAD_REQUEST, 21604, "A 'To' phone number is required.");
    };
    let from = field("From");
    let service = field("MessagingServiceSid");
    if from.is_none() && service.is_none() {
        return Reply::error(StatusCode::BAD_REQUEST, 21603, "A 'From' phone number is required.");
    }
    let Some(body) = field("Body") else {
        return Reply::error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    };
    if body.chars().count() > MAX_BODY_CHARS {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    if inner.stopped.contains(to) {
        return Reply::error(StatusCode::BAD_REQUEST, 21610, "Attempt to send to unsubscribed recipient");
    }
    if let Some(failure) = inner.failures.get(to) {
        let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut reply = Reply::error(status, failure.code, &failure.message);
        reply.retry_after = failure.retry_after.clone();
        return reply;
    }
    inner.created += 1;
    let sid = format!("SM{:032x}", inner.created);
    let body = json!({
        "sid": sid,
        "account_sid": shared.account_sid,
        "to": to,
        "from": from,
        "messaging_service_sid": service,
        "body": body,
        // Twilio queues a message with a sender at once; a Messaging Service first picks one.
        "status": if from.is_some() { "queued" } else { "accepted" },
        "num_segments": herald_domain::sms::measure(body).count.to_string(),
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "uri": format!("{ACCOUNTS_PREFIX}{account}/Messages/{sid}.json"),
    });
    Reply { status: StatusCode::CREATED, body, retry_after: None, sid: Some(sid) }
}

/// User name and password of a `Basic` authorization header.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const SID: &str = "AC00000000000000000000000000000001";
    const TOKEN: &str = "token";

    /// Posts `form` to `path` over plain HTTP/1.1 and returns the status and the JSON body.
    async fn post(fake: &FakeTwilio, path: &str, user: &str, pass: &str, form: &str) -> (u16, Value) {
        let mut stream = tokio::net::TcpStream::connect(fake.addr).await.unwrap();
        let auth = STANDARD.encode(format!("{user}:{pass}"));
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {auth}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            fake.addr,
            form.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1;
        (status, serde_json::from_str(body).unwrap())
    }

    fn messages_path() -> String {
        format!("{ACCOUNTS_PREFIX}{SID}{MESSAGES_SUFFIX}")
    }

    #[tokio::test]
    async fn accepts_a_message_like_twilio() {
        let fake = FakeTwilio::start(SID, TOKEN).await.unwrap();
        let (status, body) =
            post(&fake, &messages_path(), SID, TOKEN, "To=%2B15005550006&From=%2B15005550001&Body=%E2%82%AC5").await;
        assert_eq!(status, 201);
        let sid = body["sid"].as_str().unwrap();
        assert!(sid.len() == 34 && sid.starts_with("SM") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()), "{sid}");
        assert_eq!(body["status"], "queued");
        assert_eq!(body["to"], "+15005550006");
        assert_eq!(body["from"], "+15005550001");
        assert_eq!(body["body"], "€5");
        assert_eq!(body["num_segments"], "1");

        let (_, body) = post(&fake, &messages_path(), SID, TOKEN, "To=%2B1&MessagingServiceSid=MG1&Body=hi").await;
        assert_eq!(body["status"], "accepted");
        assert_eq!(body["messaging_service_sid"], "MG1");
        assert_eq!(body["from"], Value::Null);

        let sent = fake.messages();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].field("Body"), Some("€5"));
        assert_eq!(sent[0].basic_auth(), Some((SID.to_owned(), TOKEN.to_owned())));
        assert_eq!(sent[0].sid.as_deref(), Some(sid));
        assert_ne!(sent[0].sid, sent[1].sid);
    }

    #[tokio::test]
    async fn refuses_like_twilio() {
        let fake = FakeTwilio::start(SID, TOKEN).await.unwrap();
        let path = messages_path();
        let full = "To=%2B1&From=%2B2&Body=hi";
        let long = format!("To=%2B1&From=%2B2&Body={}", "a".repeat(1601));
        let other_account = format!("{ACCOUNTS_PREFIX}AC2{MESSAGES_SUFFIX}");
        let cases = [
            (path.as_str(), "wrong", full, 401, 20003),
            ("/2010-04-01/Accounts/Messages.json", TOKEN, full, 404, 20404),
            (other_account.as_str(), TOKEN, full, 404, 20404),
            (path.as_str(), TOKEN, "From=%2B2&Body=hi", 400, 21604),
            (path.as_str(), TOKEN, "To=%2B1&Body=hi", 400, 21603),
            (path.as_str(), TOKEN, "To=%2B1&From=%2B2", 400, 21602),
            (path.as_str(), TOKEN, "To=%2B1&From=%2B2&Body=", 400, 21602),
            (path.as_str(), TOKEN, long.as_str(), 400, 21617),
        ];
        for (path, pass, form, status, code) in cases {
            let (got, body) = post(&fake, path, SID, pass, form).await;
            assert_eq!((got, body["code"].as_u64()), (status, Some(code)), "{path} {form}");
            assert_eq!(body["status"], status);
            assert_eq!(body["more_info"], format!("https://www.twilio.com/docs/errors/{code}"));
        }
        assert!(fake.messages().iter().all(|m| !m.accepted()));
        assert_eq!(fake.messages().len(), cases.len());
    }

    #[tokio::test]
    async fn scripted_failures_and_stops_last_until_lifted() {
        let fake = FakeTwilio::start(SID, TOKEN).await.unwrap();
        let path = messages_path();
        let form = "To=%2B1&From=%2B2&Body=hi";
        fake.fail("+1", Failure::new(503, 20500, "busy").with_retry_after("7"));
        for _ in 0..2 {
            assert_eq!(post(&fake, &path, SID, TOKEN, form).await.0, 503);
        }
        fake.recover("+1");
        assert_eq!(post(&fake, &path, SID, TOKEN, form).await.0, 201);
        fake.opt_out("+1");
        let (status, body) = post(&fake, &path, SID, TOKEN, form).await;
        assert_eq!((status, body["code"].as_u64()), (400, Some(21610)));
        fake.opt_in("+1");
        assert_eq!(post(&fake, &path, SID, TOKEN, form).await.0, 201);
    }

    #[tokio::test]
    async fn wait_for_returns_what_arrived_by_the_deadline() {
        let fake = FakeTwilio::start(SID, TOKEN).await.unwrap();
        assert!(fake.wait_for(1, Duration::from_millis(50)).await.is_empty());
        post(&fake, &messages_path(), SID, TOKEN, "To=%2B1&From=%2B2&Body=hi").await;
        assert_eq!(fake.wait_for(1, Duration::from_secs(1)).await.len(), 1);
        assert_eq!(fake.wait_for(0, Duration::ZERO).await.len(), 1);
    }
}
