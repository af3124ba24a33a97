//! The test harness: a Herald on a random port with its own data directory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::config::Config;
use herald::startup::Application;
use herald_channels::Provider;
use herald_runtime::{Clock, ManualClock, Runtime, SystemClock};
use serde_json::{Value, json};

/// The admin key every test app accepts.
pub const KEY: &str = "test-admin-key";

/// A running test application.
pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub dir: Arc<tempfile::TempDir>,
    clock: Option<Arc<ManualClock>>,
    runtime: Arc<Runtime>,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    start(tweak, None, Arc::new(tempfile::tempdir().unwrap()), Providers::new()).await
}

/// An app whose clock stands still at `at` until [`TestApp::advance`].
pub async fn spawn_at(at: &str) -> TestApp {
    spawn_custom(at, |_| {}, Providers::new()).await
}

/// Named providers a test plugs in for `channels.*.provider` to list.
pub type Providers = BTreeMap<String, Arc<dyn Provider>>;

/// An app at `at` (injected clock) with configuration tweaks and extra providers.
pub async fn spawn_custom(at: &str, tweak: impl FnOnce(&mut Config), extra: Providers) -> TestApp {
    start(tweak, Some(Arc::new(ManualClock::new(at.parse().unwrap()))), Arc::new(tempfile::tempdir().unwrap()), extra)
        .await
}

/// A fresh process on the same data directory, its clock at `at`.
pub async fn spawn_on(dir: Arc<tempfile::TempDir>, at: jiff::Timestamp) -> TestApp {
    start(|_| {}, Some(Arc::new(ManualClock::new(at))), dir, Providers::new()).await
}

async fn start(
    tweak: impl FnOnce(&mut Config),
    manual: Option<Arc<ManualClock>>,
    dir: Arc<tempfile::TempDir>,
    extra: Providers,
) -> TestApp {
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        lanes: Some(4),
        ..Config::default()
    };
    config.channels.webhook.retry_schedule_seconds = vec![0, 0, 0];
    config.channels.webhook.timeout_seconds = 5;
    // Test receivers and push service fakes listen on loopback.
    config.outbound.allow_private = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    tweak(&mut config);
    let clock: Arc<dyn Clock> = match &manual {
        Some(m) => m.clone(),
        None => Arc::new(SystemClock),
    };
    let app = Application::build_with_providers(config, clock, Some(KEY.into()), extra).await.expect("app starts");
    let url = format!("http://{}", app.addr());
    let runtime = app.runtime();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    herald_channels::init_tls();
    TestApp { url, client: reqwest::Client::new(), dir, clock: manual, runtime, stop, served }
}

impl TestApp {
    /// Stops the app as SIGTERM would, and waits until it has.
    pub async fn stop(self) {
        drop(self.client);
        let _ = self.stop.send(());
        let _ = self.served.await;
    }

    /// The injected clock's time.
    pub fn now(&self) -> jiff::Timestamp {
        self.clock.as_ref().expect("spawned with spawn_at").now()
    }

    /// Moves the injected clock and lets the runtime look at what fell due.
    pub fn advance(&self, by: jiff::SignedDuration) {
        self.clock.as_ref().expect("spawned with spawn_at").advance(by);
        self.runtime.clock_moved();
    }

    pub async fn req(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.req_as(method, path, body, Some(KEY)).await
    }

    pub async fn req_as(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> (u16, Value) {
        let mut r = self.client.request(method, format!("{}{path}", self.url));
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.req(reqwest::Method::GET, path, None).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.req(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.req(reqwest::Method::POST, path, Some(body)).await
    }

    /// A template with in-app content (and so webhook content too).
    pub async fn reply_template(&self) {
        let (s, b) = self
            .put(
                "/v1/templates/new_reply",
                json!({"class": "social", "category": "replies",
                       "channels": {"in_app": {"title": "{{ sender }} replied", "body": "{{ excerpt }}", "action_url": "/t/{{ thread }}"}}}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }

    pub async fn send(&self, body: Value) -> String {
        let (s, b) = self.post("/v1/notifications", body).await;
        assert_eq!(s, 202, "{b}");
        b["id"].as_str().unwrap().to_owned()
    }

    pub async fn token(&self, user: &str) -> String {
        let (s, b) = self.post(&format!("/v1/users/{user}/token"), json!({})).await;
        assert_eq!(s, 200, "{b}");
        b["token"].as_str().unwrap().to_owned()
    }

    /// Waits (bounded) until every recipient of the notification is decided (deferred and batched count).
    pub async fn processed(&self, id: &str) -> Value {
        wait_for(&format!("notification {id} processed"), || async {
            let (_, n) = self.get(&format!("/v1/notifications/{id}")).await;
            ["completed", "waiting", "delivering"].contains(&n["status"].as_str()?).then_some(n)
        })
        .await
    }
}

/// Polls `f` until it yields a value, failing after ten seconds.
pub async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
