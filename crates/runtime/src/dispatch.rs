//! Delivery dispatch: each queued delivery is attempted through its channel's provider, with
//! consent re-checked just before the send, bounded concurrency, and retries on the channel's
//! schedule (with jitter). Every attempt's result is persisted, so a restart resumes where it stopped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use herald_channels::{Provider, SendCommand, SendError, Target};
use herald_domain::reason::{Decision, Reason};
use herald_domain::{Channel, UserId};
use herald_store::{AfterUpdate, AuditEntry, DeliveryRecord, DeliveryUpdate, Store, StoreError, Updated};
use rand::Rng;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::clock::Clock;
use crate::process::targets;
use crate::{ChannelSettings, RuntimeConfig};

/// Sends in flight at once, all channels together.
const MAX_IN_FLIGHT: usize = 256;

/// Dispatches deliveries to providers.
pub(crate) struct Dispatcher {
    store: Arc<dyn Store>,
    providers: BTreeMap<Channel, Arc<dyn Provider>>,
    settings: BTreeMap<Channel, ChannelSettings>,
    defaults: herald_domain::preferences::PreferenceDefaults,
    clock: Arc<dyn Clock>,
    permits: Arc<Semaphore>,
}

/// How one attempt ended.
enum Attempt {
    Done(&'static str, Decision, Option<Reason>, Option<String>),
    Retry(Duration, String),
}

impl Dispatcher {
    pub(crate) fn new(store: Arc<dyn Store>, config: &RuntimeConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            providers: config.providers.clone(),
            settings: config.channels.clone(),
            defaults: config.defaults,
            clock,
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Starts delivering `d` in the background.
    pub(crate) fn dispatch(self: &Arc<Self>, d: DeliveryRecord) {
        let this = self.clone();
        metrics::gauge!("herald_queue_depth", "queue" => "deliveries").increment(1.0);
        let span = tracing::info_span!("deliver", delivery_id = %d.id, notification_id = %d.notification_id, user_id = %d.user_id, channel = %d.channel);
        tokio::spawn(
            async move {
                // A store hiccup must not strand the delivery until the next start: try again a few
                // times (a repeated send keeps its delivery id, so receivers can deduplicate).
                for pause in [1, 5, 30, 120, 0] {
                    match this.clone().run(d.clone()).await {
                        Ok(()) => break,
                        Err(e) if pause > 0 => {
                            tracing::warn!(error = %e, "delivery bookkeeping failed; trying again in {pause}s");
                            tokio::time::sleep(Duration::from_secs(pause)).await;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "delivery bookkeeping failed; it resumes at the next start")
                        }
                    }
                }
                metrics::gauge!("herald_queue_depth", "queue" => "deliveries").decrement(1.0);
            }
            .instrument(span),
        );
    }

    async fn run(self: Arc<Self>, mut d: DeliveryRecord) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        loop {
            if let Some(at) = d.next_attempt_at {
                let wait = self.clock.now().duration_until(at);
                if let Ok(wait) = Duration::try_from(wait) {
                    tokio::time::sleep(wait).await;
                }
            }
            let attempt = d.attempts + 1;
            let result = {
                let _permit = self.permits.acquire().await.map_err(|_| StoreError::Closed)?;
                self.attempt(&d, attempt).await?
            };
            let now = self.clock.now();
            let user_id = UserId::parse("user_id", &d.user_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let audit = |decision, reason| AuditEntry {
                user_id: user_id.clone(),
                notification_id: d.notification_id,
                channel: Some(d.channel),
                decision,
                reason,
                at: now,
            };
            let provider = self.providers.get(&d.channel).map(|p| p.name().to_owned());
            match result {
                Attempt::Done(status, decision, reason, error) => {
                    metrics::counter!("herald_deliveries_total", "channel" => d.channel.as_str(), "status" => status)
                        .increment(1);
                    if decision == Decision::Sent || decision == Decision::Delivered {
                        metrics::histogram!("herald_delivery_seconds", "channel" => d.channel.as_str())
                            .record(started.elapsed().as_secs_f64());
                    }
                    let then = match (decision, reason) {
                        (Decision::Sent | Decision::Delivered, _) => AfterUpdate::StandDown,
                        (Decision::Failed, _)
                        | (Decision::Suppressed, Some(Reason::NoAddress | Reason::ChannelDisabled)) => {
                            AfterUpdate::HandOver
                        }
                        _ => AfterUpdate::Nothing,
                    };
                    let updated = self
                        .store
                        .update_delivery(DeliveryUpdate {
                            id: d.id,
                            status: status.into(),
                            attempts: attempt,
                            provider,
                            error,
                            next_attempt_at: None,
                            audit: Some(audit(decision, reason)),
                            then,
                            now,
                        })
                        .await?;
                    if let Updated::Recorded(Some(next)) = updated {
                        tracing::info!(from = %d.channel, to = %next.channel, "falling back to the next channel");
                        self.dispatch(*next);
                    }
                    return Ok(());
                }
                Attempt::Retry(delay, error) => {
                    metrics::counter!("herald_delivery_retries_total", "channel" => d.channel.as_str()).increment(1);
                    let next = now + delay;
                    let open = self
                        .store
                        .update_delivery(DeliveryUpdate {
                            id: d.id,
                            status: "queued".into(),
                            attempts: attempt,
                            provider,
                            error: Some(error.clone()),
                            next_attempt_at: Some(next),
                            audit: None,
                            then: AfterUpdate::Nothing,
                            now,
                        })
                        .await?;
                    if matches!(open, Updated::Closed) {
                        return Ok(());
                    }
                    d.attempts = attempt;
                    d.error = Some(error);
                    d.next_attempt_at = Some(next);
                }
            }
        }
    }

    /// One attempt: consent re-check, targets, send, classification.
    async fn attempt(&self, d: &DeliveryRecord, attempt: u32) -> Result<Attempt, StoreError> {
        let Some(provider) = self.providers.get(&d.channel) else {
            return Ok(Attempt::Done(
                "failed",
                Decision::Failed,
                Some(Reason::NoChannel),
                Some("no provider configured".into()),
            ));
        };
        let user_id = UserId::parse("user_id", &d.user_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // Defence in depth: consent may have changed since the decision; re-check it now.
        let user = self.store.get_user(&user_id).await?;
        if user.as_ref().is_none_or(|u| u.erased_at.is_some()) {
            return Ok(Attempt::Done("suppressed", Decision::Suppressed, Some(Reason::Erased), Some("erased".into())));
        }
        let prefs = self.store.get_preferences(&user_id).await?.unwrap_or_default().resolve(&self.defaults);
        if !prefs.channel_enabled(d.channel) {
            return Ok(Attempt::Done(
                "suppressed",
                Decision::Suppressed,
                Some(Reason::ChannelDisabled),
                Some("channel_disabled".into()),
            ));
        }
        let devices = self.store.list_devices(&user_id).await?;
        let targets: Vec<Target> = targets(d.channel, &devices, user.as_ref().map(|u| &u.user));
        if targets.is_empty() {
            return Ok(Attempt::Done(
                "suppressed",
                Decision::Suppressed,
                Some(Reason::NoAddress),
                Some("no_address".into()),
            ));
        }
        let cmd = SendCommand {
            delivery_id: d.id,
            channel: d.channel,
            user_id: d.user_id.clone(),
            payload: d.payload.clone(),
            targets,
            attempt,
        };
        let delivered_status =
            if d.channel == Channel::Webhook { ("delivered", Decision::Delivered) } else { ("sent", Decision::Sent) };
        Ok(match provider.send(&cmd).await {
            Ok(()) => Attempt::Done(delivered_status.0, delivered_status.1, None, None),
            Err(SendError::Permanent(msg)) => {
                metrics::counter!("herald_provider_errors_total", "channel" => d.channel.as_str(), "kind" => "permanent").increment(1);
                Attempt::Done("failed", Decision::Failed, Some(Reason::ProviderRejected), Some(msg))
            }
            Err(SendError::Transient { message, retry_after }) => {
                metrics::counter!("herald_provider_errors_total", "channel" => d.channel.as_str(), "kind" => "transient").increment(1);
                let schedule = self.settings.get(&d.channel).map(|s| s.retry_schedule.as_slice()).unwrap_or_default();
                match schedule.get(attempt as usize - 1) {
                    Some(base) => {
                        let base = (*base).max(Duration::from_secs(retry_after.unwrap_or(0)));
                        Attempt::Retry(jitter(base), message)
                    }
                    None => Attempt::Done("failed", Decision::Failed, Some(Reason::RetriesExhausted), Some(message)),
                }
            }
        })
    }
}

/// Adds up to 10% random jitter so that retries after an outage do not arrive in lockstep.
fn jitter(base: Duration) -> Duration {
    let spread = base.as_millis() as u64 / 10;
    if spread == 0 {
        return base;
    }
    base + Duration::from_millis(rand::rng().random_range(0..=spread))
}
