//! The runtime (feeder, lanes, processing, dispatch) on a real store, without the HTTP app.
//!
//! Two nodes on one store, as in a scale-out deployment: each holds work only under its lease.
//! Running side by side they send every delivery once; when one dies mid-send, the other takes
//! its work over once the lease runs out. And time through an injected clock: a scheduled
//! notification is decided when the clock reaches it, a retry waits for its time on the clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use herald_channels::{Provider, SendCommand, SendError, Sent};
use herald_domain::notification::NotificationRequest;
use herald_domain::preferences::PreferenceDefaults;
use herald_domain::template::TemplateSpec;
use herald_domain::user::User;
use herald_domain::{Channel, Class, DeliveryStatus, UserId};
use herald_runtime::{ChannelSettings, Clock, ManualClock, Runtime, RuntimeConfig, SystemClock};
use herald_store::{DeliveryRecord, NewNotification, Store};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::Semaphore;

/// Counts the sends of each delivery; with a gate, holds every send until it is opened; refuses
/// the first `failing` sends as a transient error.
#[derive(Clone, Default)]
struct Email {
    sends: Arc<Mutex<HashMap<uuid::Uuid, u32>>>,
    gate: Option<Arc<Semaphore>>,
    failing: Arc<AtomicU32>,
}

impl Email {
    fn gated() -> Self {
        Self { gate: Some(Arc::new(Semaphore::new(0))), ..Self::default() }
    }

    fn failing_once() -> Self {
        Self { failing: Arc::new(AtomicU32::new(1)), ..Self::default() }
    }

    fn total(&self) -> u32 {
        self.sends.lock().unwrap().values().sum()
    }
}

#[async_trait]
impl Provider for Email {
    fn name(&self) -> &'static str {
        "email"
    }
    async fn send(&self, cmd: &SendCommand) -> Result<Sent, SendError> {
        *self.sends.lock().unwrap().entry(cmd.delivery_id).or_default() += 1;
        if let Some(gate) = &self.gate {
            let _open = gate.acquire().await;
        }
        if self.failing.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(SendError::Transient { message: "try again later".into(), retry_after: None });
        }
        Ok(Sent::default())
    }
}

fn config(dir: &std::path::Path, email: Email, lease: Duration) -> RuntimeConfig {
    let retry_schedule = vec![Duration::from_secs(60)];
    let settings = ChannelSettings { retry_schedule, timeout: Duration::from_secs(30), ..Default::default() };
    RuntimeConfig {
        data_dir: dir.to_path_buf(),
        defaults: PreferenceDefaults::default(),
        lanes: 2,
        channels: BTreeMap::from([(Channel::Email, settings)]),
        providers: BTreeMap::from([(Channel::Email, vec![Arc::new(email) as Arc<dyn Provider>])]),
        hourly_ceiling: None,
        overload: Default::default(),
        drain_grace: Duration::from_secs(5),
        lease,
        unsubscribe: None,
    }
}

/// A store with a transactional email template and `users` users who have an address.
async fn store(dir: &std::path::Path, users: usize) -> Arc<dyn Store> {
    let store = herald_store::open("", dir).await.unwrap();
    let now = jiff::Timestamp::now();
    for i in 0..users {
        let mut user = User::bare(UserId::parse("id", &format!("u{i}")).unwrap());
        user.email = Some(herald_domain::contact::Email::parse("email", &format!("u{i}@example.com")).unwrap());
        store.put_user(&user, now).await.unwrap();
    }
    let spec: TemplateSpec = serde_json::from_value(serde_json::json!({"class": "transactional", "channels": {
        "email": {"subject": "Receipt", "text": "Thanks"}}}))
    .unwrap();
    store.put_template(&herald_domain::ids::TemplateKey::parse("key", "receipt").unwrap(), &spec, now).await.unwrap();
    store
}

/// Sends the receipt to users `u{first}` to `u{first + count - 1}`, now.
async fn send(store: &Arc<dyn Store>, first: usize, count: usize) -> uuid::Uuid {
    let now = Timestamp::now();
    send_at(store, first..first + count, now, now).await
}

/// Sends the receipt to `users`, accepted at `now` and due at `due_at`.
async fn send_at(
    store: &Arc<dyn Store>,
    users: std::ops::Range<usize>,
    now: Timestamp,
    due_at: Timestamp,
) -> uuid::Uuid {
    let to: Vec<String> = users.clone().map(|i| format!("u{i}")).collect();
    let req: NotificationRequest =
        serde_json::from_value(serde_json::json!({"template": "receipt", "to": to})).unwrap();
    let (spec, _, _) = req.validate(now).unwrap();
    let recipients = users.map(|i| UserId::parse("id", &format!("u{i}")).unwrap()).collect();
    let id = uuid::Uuid::now_v7();
    let n = NewNotification {
        id,
        spec,
        class: Class::Transactional,
        recipients,
        idempotency: None,
        fingerprint: None,
        now,
        due_at,
        claim: None,
    };
    store.accept(n).await.unwrap();
    id
}

/// The email deliveries of notification `id`.
async fn deliveries(store: &Arc<dyn Store>, id: uuid::Uuid) -> Vec<DeliveryRecord> {
    let page = store.list_recipients(id, None, 100).await.unwrap();
    page.items.into_iter().flat_map(|r| r.deliveries).filter(|d| d.channel == Channel::Email).collect()
}

/// The email deliveries of notification `id`: their statuses and attempts.
async fn emails(store: &Arc<dyn Store>, id: uuid::Uuid) -> Vec<(DeliveryStatus, u32)> {
    deliveries(store, id).await.iter().map(|d| (d.status, d.attempts)).collect()
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_node_starting_beside_another_takes_none_of_its_work_and_every_delivery_goes_once() {
    const USERS: usize = 80;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), USERS).await;
    let (a, b) = (Email::gated(), Email::default());
    let lease = Duration::from_secs(30);
    let node_a = Runtime::start(store.clone(), config(dir.path(), a.clone(), lease), Arc::new(SystemClock));
    let node_a = node_a.await.unwrap();
    let first = send(&store, 0, USERS / 2).await;
    node_a.wake();
    // Node A holds its deliveries, some in flight and the rest queued behind them, when B starts.
    until("node A's sends began", async || a.total() > 0).await;
    let node_b = Runtime::start(store.clone(), config(dir.path(), b.clone(), lease), Arc::new(SystemClock));
    let node_b = node_b.await.unwrap();
    let second = send(&store, USERS / 2, USERS / 2).await;
    node_a.wake();
    node_b.wake();
    a.gate.as_ref().unwrap().add_permits(USERS);
    until("every email sent", async || {
        let mut all = emails(&store, first).await;
        all.extend(emails(&store, second).await);
        all.len() == USERS && all.iter().all(|(s, _)| *s == DeliveryStatus::Sent)
    })
    .await;
    node_a.shutdown().await;
    node_b.shutdown().await;
    let mut sends = a.sends.lock().unwrap().clone();
    for (id, n) in b.sends.lock().unwrap().iter() {
        *sends.entry(*id).or_default() += n;
    }
    assert_eq!(sends.len(), USERS, "every delivery was sent");
    let twice = sends.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "{twice} deliveries were sent by both nodes");
}

#[tokio::test]
async fn a_dead_nodes_delivery_is_taken_over_once_its_lease_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), 1).await;
    let lease = Duration::from_secs(1);
    let stuck = Email::gated();
    let node_a = Runtime::start(store.clone(), config(dir.path(), stuck.clone(), lease), Arc::new(SystemClock));
    let node_a = node_a.await.unwrap();
    let id = send(&store, 0, 1).await;
    node_a.wake();
    until("node A's send began", async || stuck.total() == 1).await;
    assert_eq!(emails(&store, id).await, vec![(DeliveryStatus::Sending, 1)], "node A holds it, sending");
    // Node A dies mid-send: its feeder and lease keeper stop, its send never returns.
    drop(node_a);

    let b = Email::default();
    let node_b = Runtime::start(store.clone(), config(dir.path(), b.clone(), lease), Arc::new(SystemClock));
    let node_b = node_b.await.unwrap();
    until("node B took the delivery over and sent it", async || {
        emails(&store, id).await == vec![(DeliveryStatus::Sent, 2)]
    })
    .await;
    node_b.shutdown().await;
    assert_eq!(b.total(), 1, "node B sent it once, as a second attempt with the same delivery id");
}

/// One node on a store of one user, on a manual clock stopped at `t0`.
struct Clocked {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    runtime: Arc<Runtime>,
    t0: Timestamp,
}

async fn clocked(email: Email) -> Clocked {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), 1).await;
    let t0: Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let config = config(dir.path(), email, Duration::from_secs(30));
    let runtime = Runtime::start(store.clone(), config, clock.clone()).await.unwrap();
    Clocked { _dir: dir, store, clock, runtime, t0 }
}

#[tokio::test]
async fn a_scheduled_notification_is_decided_when_the_clock_reaches_it() {
    let email = Email::default();
    let Clocked { _dir, store, clock, runtime, t0 } = clocked(email.clone()).await;
    let id = send_at(&store, 0..1, t0, t0 + SignedDuration::from_hours(1)).await;
    runtime.wake();
    let counts = store.recipient_counts(id).await.unwrap();
    assert_eq!((counts.pending, counts.processed), (1, 0), "not decided before its time");

    clock.advance(SignedDuration::from_hours(1));
    runtime.clock_moved();
    until("the scheduled email is sent", async || emails(&store, id).await == vec![(DeliveryStatus::Sent, 1)]).await;
    assert_eq!(email.total(), 1);
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_transient_failure_is_retried_at_its_time_on_the_clock() {
    let email = Email::failing_once();
    let Clocked { _dir, store, clock, runtime, t0 } = clocked(email.clone()).await;
    let id = send_at(&store, 0..1, t0, t0).await;
    runtime.wake();
    until("the first attempt fails", async || emails(&store, id).await == vec![(DeliveryStatus::Queued, 1)]).await;
    let next = deliveries(&store, id).await[0].next_attempt_at.expect("a retry time");
    let (earliest, latest) = (t0 + SignedDuration::from_secs(60), t0 + SignedDuration::from_secs(66));
    assert!(earliest <= next && next <= latest, "the schedule's 60 s with up to 10% jitter: {next}");

    clock.advance(next.duration_since(clock.now()));
    runtime.clock_moved();
    until("the retry is sent", async || emails(&store, id).await == vec![(DeliveryStatus::Sent, 2)]).await;
    assert_eq!(email.total(), 2, "one failed attempt, one that went through");
    runtime.shutdown().await;
}
