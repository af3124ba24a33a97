//! Transactional fallback through the real store and runtime: when the first channel's provider
//! refuses for good, the next channel of the template takes over.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use herald_channels::{Provider, SendCommand, SendError, Sent};
use herald_domain::notification::NotificationRequest;
use herald_domain::preferences::PreferenceDefaults;
use herald_domain::reason::Reason;
use herald_domain::template::TemplateSpec;
use herald_domain::user::User;
use herald_domain::{Channel, Class, DeliveryStatus, UserId};
use herald_runtime::{ChannelSettings, Runtime, RuntimeConfig, SystemClock};
use herald_store::NewNotification;

struct Refuses;

#[async_trait]
impl Provider for Refuses {
    fn name(&self) -> &'static str {
        "refuses"
    }
    async fn send(&self, _: &SendCommand) -> Result<Sent, SendError> {
        Err(SendError::Permanent("mailbox does not exist".into()))
    }
}

#[derive(Clone, Default)]
struct Records(Arc<Mutex<Vec<SendCommand>>>);

#[async_trait]
impl Provider for Records {
    fn name(&self) -> &'static str {
        "records"
    }
    async fn send(&self, cmd: &SendCommand) -> Result<Sent, SendError> {
        self.0.lock().unwrap().push(cmd.clone());
        Ok(Sent::default())
    }
}

#[tokio::test]
async fn a_permanent_failure_hands_over_to_the_next_channel() {
    let dir = tempfile::tempdir().unwrap();
    let store = herald_store::open("", dir.path()).await.unwrap();
    let now = jiff::Timestamp::now();
    let ana = UserId::parse("id", "ana").unwrap();
    let mut user = User::bare(ana.clone());
    user.email = Some(herald_domain::contact::Email::parse("email", "ana@example.com").unwrap());
    user.phone = Some(herald_domain::contact::Phone::parse("phone", "+15551234567").unwrap());
    store.put_user(&user, now).await.unwrap();
    let spec: TemplateSpec = serde_json::from_value(serde_json::json!({"class": "transactional", "channels": {
        "email": {"subject": "Code", "text": "{{ code }}"}, "sms": {"body": "Code {{ code }}"}}}))
    .unwrap();
    store.put_template(&herald_domain::ids::TemplateKey::parse("key", "otp").unwrap(), &spec, now).await.unwrap();
    let req: NotificationRequest =
        serde_json::from_value(serde_json::json!({"template": "otp", "to": ["ana"], "data": {"code": "123456"}}))
            .unwrap();
    let (spec, _, _) = req.validate(now).unwrap();
    let id = uuid::Uuid::now_v7();
    store
        .accept(NewNotification {
            id,
            spec,
            class: Class::Transactional,
            recipients: vec![ana.clone()],
            idempotency: None,
            fingerprint: None,
            now,
            due_at: now,
            claim: None,
        })
        .await
        .unwrap();

    let sms = Records::default();
    let settings = ChannelSettings { retry_schedule: vec![], timeout: Duration::from_secs(5), ..Default::default() };
    let providers: BTreeMap<Channel, Vec<Arc<dyn Provider>>> = BTreeMap::from([
        (Channel::Email, vec![Arc::new(Refuses) as Arc<dyn Provider>]),
        (Channel::Sms, vec![Arc::new(sms.clone()) as Arc<dyn Provider>]),
    ]);
    let config = RuntimeConfig {
        data_dir: dir.path().to_path_buf(),
        defaults: PreferenceDefaults::default(),
        lanes: 2,
        channels: BTreeMap::from([(Channel::Email, settings.clone()), (Channel::Sms, settings)]),
        providers,
        hourly_ceiling: Some(100),
        overload: Default::default(),
        drain_grace: Duration::from_secs(5),
        lease: Duration::from_secs(30),
        unsubscribe: None,
    };
    let runtime = Runtime::start(store.clone(), config, Arc::new(SystemClock)).await.unwrap();
    runtime.wake();

    let deadline = Instant::now() + Duration::from_secs(10);
    while sms.0.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the SMS fallback never went out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = sms.0.lock().unwrap()[0].clone();
    assert_eq!(sent.payload["body"], "Code 123456");
    let recipients = store.list_recipients(id, None, 10).await.unwrap().items;
    let by_channel: BTreeMap<Channel, DeliveryStatus> =
        recipients[0].deliveries.iter().map(|d| (d.channel, d.status)).collect();
    assert_eq!(by_channel[&Channel::Email], DeliveryStatus::Failed);
    let timeline = store.timeline(&ana, None, 50).await.unwrap().items;
    assert!(timeline.iter().any(|a| a.reason == Some(Reason::Fallback) && a.channel == Some(Channel::Sms)));
    runtime.shutdown().await;
}
