//! Deciding one work item: load the user's state, run the engine, render each channel, record
//! the outcome atomically, then feed the live hub and the dispatcher.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use herald_domain::decision::{Ask, Outcome, RecipientState, decide};
use herald_domain::device::DeviceSpec;
use herald_domain::reason::{Decision, Reason};
use herald_domain::template::{Rendered, render_context};
use herald_domain::{Channel, UserId};
use herald_store::{
    AuditEntry, DeliveryRecord, NewDelivery, NewInboxItem, NotificationRecord, RecipientOutcome, Store, StoreError,
    WorkItem,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::RuntimeConfig;
use crate::clock::Clock;
use crate::dispatch::Dispatcher;
use crate::hub::{Hub, LiveEvent};

/// Namespace of deterministic delivery ids.
const DELIVERY_NS: Uuid = Uuid::from_u128(0x6865_7261_6c64_4000_8000_6465_6c69_7672);

/// The deterministic delivery id of (notification, user, channel): the same on every retry and
/// every redelivery after a crash, and the provider's idempotency key.
pub fn delivery_id(notification: Uuid, user: &UserId, channel: Channel) -> Uuid {
    Uuid::new_v5(&DELIVERY_NS, format!("{notification}/{user}/{channel}").as_bytes())
}

/// Decides work items; shared by all lanes.
pub(crate) struct Processor {
    store: Arc<dyn Store>,
    config: RuntimeConfig,
    hub: Hub,
    dispatcher: Arc<Dispatcher>,
    clock: Arc<dyn Clock>,
    notifications: Mutex<HashMap<Uuid, Arc<NotificationRecord>>>,
}

/// How long a recipient whose processing failed waits before it is tried again.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// Notifications kept in memory while their recipients are processed.
const CACHE_LIMIT: usize = 4096;

impl Processor {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        config: RuntimeConfig,
        hub: Hub,
        dispatcher: Arc<Dispatcher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { store, config, hub, dispatcher, clock, notifications: Mutex::new(HashMap::new()) }
    }

    /// Processes one item; on a store failure the claim stays and is retried at the next start.
    pub(crate) async fn process(&self, item: WorkItem, lane: usize) {
        let span =
            tracing::info_span!("decide", notification_id = %item.notification_id, user_id = %item.user_id, lane);
        self.process_in_span(item).instrument(span).await
    }

    async fn process_in_span(&self, item: WorkItem) {
        let started = std::time::Instant::now();
        if let Err(e) = self.try_process(item.clone()).await {
            tracing::error!(error = %e, "processing failed; will retry in {}s", RETRY_AFTER.as_secs());
            let retry_at = self.clock.now() + RETRY_AFTER;
            if let Err(e) = self.store.release_claim(item.seq, retry_at).await {
                tracing::error!(error = %e, "cannot release the claim; it returns at the next start");
            }
        }
        metrics::histogram!("herald_decide_seconds").record(started.elapsed().as_secs_f64());
    }

    async fn notification(&self, id: Uuid) -> Result<Option<Arc<NotificationRecord>>, StoreError> {
        if let Some(n) = self.notifications.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(Some(n.clone()));
        }
        let Some(n) = self.store.get_notification(id).await? else { return Ok(None) };
        let n = Arc::new(n);
        let mut cache = self.notifications.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(id, n.clone());
        Ok(Some(n))
    }

    async fn try_process(&self, item: WorkItem) -> Result<(), StoreError> {
        let now = self.clock.now();
        let Some(n) = self.notification(item.notification_id).await? else {
            return Err(StoreError::Corrupt(format!("notification {} is missing", item.notification_id)));
        };
        let template = self.store.get_template(&n.spec.template).await?.map(|t| t.spec);
        let user = self.store.get_user(&item.user_id).await?;
        let stored_prefs = self.store.get_preferences(&item.user_id).await?.unwrap_or_default();
        let prefs = stored_prefs.resolve(&self.config.defaults);
        let devices = self.store.list_devices(&item.user_id).await?;

        let mut reachable = BTreeSet::new();
        for d in &devices {
            reachable.insert(d.spec.channel());
        }
        let profile = user.as_ref().map(|u| &u.user);
        if profile.is_some_and(|u| u.email.is_some()) {
            reachable.insert(Channel::Email);
        }
        if profile.is_some_and(|u| u.phone.is_some()) {
            reachable.insert(Channel::Sms);
        }
        let erased = user.as_ref().is_some_and(|u| u.erased_at.is_some());

        let mut outcome = RecipientOutcome {
            item: item.clone(),
            decision: Decision::Suppressed,
            reason: None,
            inbox: None,
            deliveries: Vec::new(),
            audit: Vec::new(),
            now,
        };
        let audit = |channel: Option<Channel>, decision: Decision, reason: Option<Reason>| AuditEntry {
            user_id: item.user_id.clone(),
            notification_id: n.id,
            channel,
            decision,
            reason,
            at: now,
        };

        let Some(template) = template else {
            outcome.reason = Some(Reason::RenderError);
            outcome.audit.push(audit(None, Decision::Suppressed, Some(Reason::RenderError)));
            return self.finish(outcome, Vec::new()).await;
        };
        let template_channels = template.channels();
        let category = n.spec.category.as_ref().or(template.category.as_ref());
        let ask = Ask {
            class: n.class,
            category,
            template_channels: &template_channels,
            requested: n.spec.channels.as_deref(),
        };
        let state = RecipientState { preferences: &prefs, reachable: &reachable, erased };
        let decisions = decide(&ask, &state);

        let user_ctx =
            profile.map(|u| u.template_context()).unwrap_or_else(|| serde_json::json!({"id": item.user_id.as_str()}));
        let ctx = render_context(&n.spec.data, user_ctx);
        let locale = profile.and_then(|u| u.locale.as_ref()).map(|l| l.as_str().to_owned());

        let mut to_dispatch = Vec::new();
        if decisions.is_empty() {
            outcome.reason = Some(Reason::NoChannel);
            outcome.audit.push(audit(None, Decision::Suppressed, Some(Reason::NoChannel)));
        }
        for d in decisions {
            let id = delivery_id(n.id, &item.user_id, d.channel);
            let rendered = match d.outcome {
                Outcome::Send => template.render(d.channel, locale.as_deref(), &ctx).map_err(|e| {
                    tracing::warn!(channel = %d.channel, error = %e, "render failed");
                    Reason::RenderError
                }),
                Outcome::Suppress(r) => Err(r),
            };
            match rendered {
                Err(reason) => {
                    outcome.reason.get_or_insert(reason);
                    outcome.audit.push(audit(Some(d.channel), Decision::Suppressed, Some(reason)));
                    outcome.deliveries.push(NewDelivery {
                        id,
                        channel: d.channel,
                        status: "suppressed".into(),
                        provider: None,
                        error: Some(reason.as_str().into()),
                        payload: serde_json::Value::Null,
                    });
                    metrics::counter!("herald_suppressed_total", "reason" => reason.as_str(), "channel" => d.channel.as_str()).increment(1);
                }
                Ok(content) => {
                    outcome.decision = Decision::Delivering;
                    outcome.audit.push(audit(Some(d.channel), Decision::Delivering, None));
                    if d.channel == Channel::InApp {
                        outcome.inbox = Some(NewInboxItem {
                            id: Uuid::now_v7(),
                            title: content.title,
                            body: content.body,
                            action_url: content.action_url,
                            category: category.map(|c| c.to_string()),
                        });
                        outcome.audit.push(audit(Some(d.channel), Decision::Delivered, None));
                        outcome.deliveries.push(NewDelivery {
                            id,
                            channel: d.channel,
                            status: "delivered".into(),
                            provider: Some("inbox".into()),
                            error: None,
                            payload: serde_json::Value::Null,
                        });
                    } else {
                        let payload = payload(&n, &item.user_id, category.map(|c| c.as_str()), d.channel, content);
                        to_dispatch.push(DeliveryRecord {
                            id,
                            notification_id: n.id,
                            user_id: item.user_id.to_string(),
                            channel: d.channel,
                            status: "queued".into(),
                            attempts: 0,
                            provider: None,
                            error: None,
                            payload: payload.clone(),
                            next_attempt_at: None,
                            updated_at: now,
                        });
                        outcome.deliveries.push(NewDelivery {
                            id,
                            channel: d.channel,
                            status: "queued".into(),
                            provider: None,
                            error: None,
                            payload,
                        });
                    }
                }
            }
        }
        if outcome.decision == Decision::Delivering {
            outcome.reason = None;
        }
        self.finish(outcome, to_dispatch).await
    }

    async fn finish(&self, outcome: RecipientOutcome, to_dispatch: Vec<DeliveryRecord>) -> Result<(), StoreError> {
        let user = outcome.item.user_id.clone();
        let inbox = self.store.record_outcome(outcome).await?;
        if let Some(item) = inbox {
            metrics::counter!("herald_deliveries_total", "channel" => "in_app", "status" => "delivered").increment(1);
            self.hub.publish(user.as_str(), LiveEvent::Notification(Box::new(item)));
            if self.hub.is_online(user.as_str()) {
                let unread = self.store.unread_count(&user).await?;
                self.hub.publish(user.as_str(), LiveEvent::UnreadCount(unread));
            }
        }
        for d in to_dispatch {
            self.dispatcher.dispatch(d);
        }
        Ok(())
    }
}

/// What a delivery carries: the Standard Webhooks body for webhooks, the rendered content otherwise.
fn payload(
    n: &NotificationRecord,
    user: &UserId,
    category: Option<&str>,
    channel: Channel,
    content: Rendered,
) -> serde_json::Value {
    if channel == Channel::Webhook {
        serde_json::json!({
            "type": "notification",
            "timestamp": n.created_at,
            "data": {
                "notification_id": n.id,
                "user_id": user.as_str(),
                "template": n.template,
                "class": n.class,
                "category": category,
                "title": content.title,
                "body": content.body,
                "data": n.spec.data,
                "digest": null,
            }
        })
    } else {
        serde_json::to_value(content).unwrap_or_default()
    }
}

/// The targets of a delivery for `channel` among the user's devices and contacts.
pub(crate) fn targets(
    channel: Channel,
    devices: &[herald_store::DeviceRecord],
    user: Option<&herald_domain::user::User>,
) -> Vec<herald_channels::Target> {
    use herald_channels::Target;
    match channel {
        Channel::Email => {
            user.and_then(|u| u.email.as_ref()).map(|e| Target::Address(e.as_str().into())).into_iter().collect()
        }
        Channel::Sms => {
            user.and_then(|u| u.phone.as_ref()).map(|p| Target::Address(p.as_str().into())).into_iter().collect()
        }
        _ => devices
            .iter()
            .filter(|d| d.spec.channel() == channel)
            .map(|d| match &d.spec {
                DeviceSpec::Webhook { url, secret } => {
                    Target::Webhook { device_id: d.id, url: url.clone(), secret: secret.clone() }
                }
                DeviceSpec::Apns { token } | DeviceSpec::Fcm { token } => {
                    Target::Address(format!("{}:{token}", d.spec.kind()))
                }
                DeviceSpec::WebPush { subscription } => Target::Address(subscription.endpoint.clone()),
            })
            .collect(),
    }
}
