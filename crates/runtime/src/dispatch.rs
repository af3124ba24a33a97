//! Delivery dispatch: each queued delivery is attempted through its channel's providers, with
//! consent re-checked just before the send, per-channel bounded concurrency, token-bucket rate
//! limits, a circuit breaker per provider circuit with failover to the channel's next provider,
//! the hard per-user ceiling and channel budgets, and retries on the channel's schedule (with
//! jitter). Every attempt's start and result is persisted, so a restart resumes where it stopped
//! with the same delivery id; what fails for good becomes a dead letter.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use herald_channels::unsubscribe::UnsubscribeLinks;
use herald_channels::{AddressBlock, Provider, SendCommand, SendError, Sent, Target};
use herald_domain::reason::{Decision, Reason};
use herald_domain::{Channel, Class, DeliveryStatus, UserId};
use herald_store::{
    AfterUpdate, AuditEntry, Begin, BeginAttempt, DeliveryRecord, DeliveryUpdate, Feedback, FeedbackKind, LeaseToken,
    Limit, Store, StoreError, Updated,
};
use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use tokio::sync::{Notify, SemaphorePermit};
use tracing::Instrument;

use crate::breaker::{Breakers, Verdict};
use crate::clock::Clock;
use crate::outlet::Outlet;
use crate::ratelimit::Limiter;
use crate::targets::targets;
use crate::{ChannelSettings, RuntimeConfig};

/// Dispatches deliveries to providers.
pub(crate) struct Dispatcher {
    store: Arc<dyn Store>,
    outlets: BTreeMap<Channel, Outlet>,
    defaults: herald_domain::preferences::PreferenceDefaults,
    hourly_ceiling: Option<u32>,
    unsubscribe: Option<UnsubscribeLinks>,
    clock: Arc<dyn Clock>,
    /// Names this node in the writes of its attempts: a delivery another node adopted is not sent.
    holder: LeaseToken,
    breakers: Breakers,
    /// Deliveries ready to be attempted or being attempted: the load that shedding watches.
    depth: AtomicUsize,
    /// Deliveries waiting for a retry time.
    scheduled: AtomicUsize,
    /// Attempts between their start being recorded and their result being recorded.
    in_flight: AtomicUsize,
    idle: Notify,
    closing: AtomicBool,
    /// Wakes waiting deliveries early: the clock moved, or shutdown began.
    tick: Notify,
}

/// How one attempt ended.
enum Attempt {
    /// Settled for good.
    Done(Settled),
    /// Try again after a delay (a counted attempt).
    Retry { after: Duration, error: String, provider: Option<String> },
    /// Every circuit is open: wait, without using up an attempt.
    Wait { until: Timestamp, error: String },
    /// Nothing to record (closed meanwhile, or shutting down before the send).
    Leave,
}

/// How a delivery ended: the decision the audit records, from which its final status follows.
struct Settled {
    decision: Decision,
    reason: Option<Reason>,
    error: Option<String>,
    provider: Option<String>,
}

impl Settled {
    /// Taken by `provider`: delivered for a webhook (its 2xx is the receipt), else sent.
    fn accepted(channel: Channel, provider: &str) -> Self {
        let decision = if channel == Channel::Webhook { Decision::Delivered } else { Decision::Sent };
        Self { decision, reason: None, error: None, provider: Some(provider.into()) }
    }

    fn failed(reason: Reason, error: String, provider: Option<String>) -> Self {
        Self { decision: Decision::Failed, reason: Some(reason), error: Some(error), provider }
    }

    fn bounced(reason: Reason, error: String, provider: &str) -> Self {
        Self { decision: Decision::Bounced, reason: Some(reason), error: Some(error), provider: Some(provider.into()) }
    }

    fn suppressed(reason: Reason) -> Self {
        let error = Some(reason.as_str().into());
        Self { decision: Decision::Suppressed, reason: Some(reason), error, provider: None }
    }

    /// The delivery's final status. The constructors above only settle on sent, delivered,
    /// failed, bounced or suppressed; the decisions that are not an end map to suppressed.
    fn status(&self) -> DeliveryStatus {
        match self.decision {
            Decision::Sent => DeliveryStatus::Sent,
            Decision::Delivered => DeliveryStatus::Delivered,
            Decision::Failed => DeliveryStatus::Failed,
            Decision::Bounced => DeliveryStatus::Bounced,
            Decision::Suppressed
            | Decision::Delivering
            | Decision::Deferred
            | Decision::Batched
            | Decision::Cancelled => DeliveryStatus::Suppressed,
        }
    }

    /// What follows: a success stands the transactional fallback down, a failure (or a channel
    /// that cannot take it at all) hands over to it.
    fn then(&self) -> AfterUpdate {
        match (self.decision, self.reason) {
            (Decision::Sent | Decision::Delivered, _) => AfterUpdate::StandDown,
            (Decision::Failed | Decision::Bounced, _) => AfterUpdate::HandOver,
            (
                Decision::Suppressed,
                Some(
                    Reason::NoAddress
                    | Reason::ChannelDisabled
                    | Reason::AddressBlocked
                    | Reason::SmsStop
                    | Reason::HourlyCeiling
                    | Reason::SmsBudget,
                ),
            ) => AfterUpdate::HandOver,
            _ => AfterUpdate::Nothing,
        }
    }
}

/// Counts one unit of a gauge for as long as it lives.
struct Held<'a>(&'a AtomicUsize, &'static str);

impl<'a> Held<'a> {
    fn new(counter: &'a AtomicUsize, queue: &'static str) -> Self {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        metrics::gauge!("herald_queue_depth", "queue" => queue).set(n as f64);
        Self(counter, queue)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let n = self.0.fetch_sub(1, Ordering::SeqCst) - 1;
        metrics::gauge!("herald_queue_depth", "queue" => self.1).set(n as f64);
    }
}

impl Dispatcher {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        config: &RuntimeConfig,
        clock: Arc<dyn Clock>,
        holder: LeaseToken,
    ) -> Self {
        let outlets = config
            .providers
            .iter()
            .map(|(channel, providers)| {
                let settings = config.channels.get(channel).cloned().unwrap_or_default();
                (*channel, Outlet::new(*channel, providers, settings))
            })
            .collect();
        Self {
            store,
            outlets,
            defaults: config.defaults,
            hourly_ceiling: config.hourly_ceiling,
            unsubscribe: config.unsubscribe.clone(),
            clock,
            holder,
            breakers: Breakers::default(),
            depth: AtomicUsize::new(0),
            scheduled: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            closing: AtomicBool::new(false),
            tick: Notify::new(),
        }
    }

    /// Deliveries ready or in flight now.
    pub(crate) fn depth(&self) -> usize {
        self.depth.load(Ordering::SeqCst)
    }

    /// The clock jumped: deliveries waiting for a time look again.
    pub(crate) fn tick(&self) {
        self.tick.notify_waiters();
    }

    /// Stops starting attempts and waits up to `grace` for those in flight to be recorded.
    /// Waiting deliveries stay queued in the store and resume at the next start.
    pub(crate) async fn drain(&self, grace: Duration) {
        self.closing.store(true, Ordering::SeqCst);
        self.tick.notify_waiters();
        let drained = tokio::time::timeout(grace, async {
            loop {
                let idle = self.idle.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                if self.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await;
        match drained {
            Ok(()) => tracing::info!("in-flight deliveries drained"),
            Err(_) => tracing::warn!(
                in_flight = self.in_flight.load(Ordering::SeqCst),
                "drain timed out; the rest resumes at the next start with the same delivery ids"
            ),
        }
    }

    /// Starts delivering `d` in the background.
    pub(crate) fn dispatch(self: &Arc<Self>, d: DeliveryRecord) {
        let this = self.clone();
        let span = tracing::info_span!("deliver", delivery_id = %d.id, notification_id = %d.notification_id, user_id = %d.user_id, channel = %d.channel);
        tokio::spawn(
            async move {
                // A store hiccup must not strand the delivery until the next start: try again a few
                // times (a repeated send keeps its delivery id, so receivers can deduplicate).
                for pause in [1, 5, 30, 120, 0] {
                    match this.run(d.clone()).await {
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
            }
            .instrument(span),
        );
    }

    /// Sleeps until the clock reads `at`; false when shutdown began meanwhile.
    async fn wait_until(&self, at: Timestamp) -> bool {
        let _scheduled = Held::new(&self.scheduled, "scheduled");
        loop {
            let tick = self.tick.notified();
            tokio::pin!(tick);
            tick.as_mut().enable();
            if self.closing.load(Ordering::SeqCst) {
                return false;
            }
            let Ok(wait) = Duration::try_from(self.clock.now().duration_until(at)) else { return true };
            if wait.is_zero() {
                return true;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut tick => {}
            }
        }
    }

    async fn run(self: &Arc<Self>, mut d: DeliveryRecord) -> Result<(), StoreError> {
        loop {
            if let Some(at) = d.next_attempt_at
                && !self.wait_until(at).await
            {
                return Ok(());
            }
            let (result, in_flight) = {
                let _ready = Held::new(&self.depth, "deliveries");
                self.attempt(&d).await?
            };
            // An attempt that reached a provider was counted when its start was recorded.
            let counted = d.attempts + u32::from(in_flight.is_some());
            let open = match result {
                Attempt::Leave => false,
                Attempt::Done(settled) => {
                    let next = self.record_settled(&d, settled, counted).await;
                    drop(in_flight);
                    if let Some(next) = next? {
                        tracing::info!(from = %d.channel, to = %next.channel, "falling back to the next channel");
                        self.dispatch(next);
                    }
                    false
                }
                Attempt::Retry { after, error, provider } => {
                    metrics::counter!("herald_delivery_retries_total", "channel" => d.channel.as_str()).increment(1);
                    // Bounded by configuration (a week) and by the providers' Retry-After cap (a day).
                    let next = self.clock.now() + after;
                    let open = self.record_queued(&mut d, counted, provider, error, next).await;
                    drop(in_flight);
                    open?
                }
                Attempt::Wait { until, error } => {
                    let (attempts, provider) = (d.attempts, d.provider.clone());
                    self.record_queued(&mut d, attempts, provider, error, until).await?
                }
            };
            if !open {
                return Ok(());
            }
        }
    }

    /// Records the end of a delivery with its audit line; the transactional fallback it hands
    /// over to, if any, to be dispatched once the in-flight mark is gone.
    async fn record_settled(
        &self,
        d: &DeliveryRecord,
        settled: Settled,
        attempts: u32,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let now = self.clock.now();
        let status = settled.status();
        let channel = d.channel.as_str();
        metrics::counter!("herald_deliveries_total", "channel" => channel, "status" => status.as_str()).increment(1);
        match settled.decision {
            Decision::Sent | Decision::Delivered => {
                let class = d.class.map_or("unknown", |c| c.as_str());
                let latency = now.duration_since(d.created_at).as_secs_f64().max(0.0);
                metrics::histogram!("herald_delivery_seconds", "channel" => channel, "class" => class).record(latency);
            }
            Decision::Failed => metrics::counter!("herald_dead_letters_total", "channel" => channel).increment(1),
            _ => {}
        }
        let audit = AuditEntry {
            user_id: UserId::parse("user_id", &d.user_id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            notification_id: d.notification_id,
            channel: Some(d.channel),
            decision: settled.decision,
            reason: settled.reason,
            at: now,
        };
        let update = DeliveryUpdate {
            id: d.id,
            holder: self.holder,
            urgent: d.class.is_some_and(Class::is_urgent),
            status,
            attempts,
            then: settled.then(),
            provider: settled.provider.or(d.provider.clone()),
            error: settled.error,
            next_attempt_at: None,
            audit: Some(audit),
            now,
        };
        Ok(match self.store.update_delivery(update).await? {
            Updated::Recorded(next) => next.map(|n| *n),
            Updated::Closed => None,
        })
    }

    /// Records that the delivery waits until `next`; false when it was closed meanwhile.
    async fn record_queued(
        &self,
        d: &mut DeliveryRecord,
        attempts: u32,
        provider: Option<String>,
        error: String,
        next: Timestamp,
    ) -> Result<bool, StoreError> {
        let update = DeliveryUpdate {
            id: d.id,
            holder: self.holder,
            urgent: d.class.is_some_and(Class::is_urgent),
            status: DeliveryStatus::Queued,
            attempts,
            provider: provider.clone(),
            error: Some(error.clone()),
            next_attempt_at: Some(next),
            audit: None,
            then: AfterUpdate::Nothing,
            now: self.clock.now(),
        };
        if matches!(self.store.update_delivery(update).await?, Updated::Closed) {
            return Ok(false);
        }
        d.attempts = attempts;
        d.provider = provider;
        d.error = Some(error);
        d.next_attempt_at = Some(next);
        Ok(true)
    }

    /// One attempt: consent re-check, a provider whose circuit is closed, rate limits, a
    /// concurrency permit, the recorded start (with the send limits), the send, failover.
    /// The in-flight mark, when returned, must live until the result is recorded.
    async fn attempt(&self, d: &DeliveryRecord) -> Result<(Attempt, Option<InFlight<'_>>), StoreError> {
        let Some(outlet) = self.outlets.get(&d.channel).filter(|l| !l.providers.is_empty()) else {
            return Ok((
                Attempt::Done(Settled::failed(Reason::NoChannel, "no provider configured".into(), None)),
                None,
            ));
        };
        let user_id = UserId::parse("user_id", &d.user_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let targets = match self.consent(d, &user_id).await? {
            Ok(targets) => targets,
            Err(reason) => return Ok((Attempt::Done(Settled::suppressed(reason)), None)),
        };
        let cmd = self.command(d, targets);
        let settings = &outlet.settings;
        let mut in_flight: Option<InFlight<'_>> = None;
        // The send slot is held until the attempt returns, whichever provider ends it.
        let mut _permit = None;
        let mut transient: Option<Transient> = None;
        let mut reopen: Option<Timestamp> = None;
        for (provider, limiter) in &outlet.providers {
            let circuit = provider.circuit(&cmd);
            if let Verdict::Refuse(until) = self.breakers.check(d.channel, &circuit, settings.breaker, self.clock.now())
            {
                reopen = Some(reopen.map_or(until, |r| r.min(until)));
                continue;
            }
            if in_flight.is_none() {
                match self.start(d, &user_id, outlet, provider.name(), limiter.as_ref(), &cmd).await? {
                    Ok((permit, mark)) => {
                        _permit = Some(permit);
                        in_flight = Some(mark);
                    }
                    Err(end) => return Ok((end, None)),
                }
            } else {
                // Failover within the same attempt: the next provider gets it at once.
                tracing::info!(provider = provider.name(), "failing over to the next provider");
            }
            let result = self.send(provider.as_ref(), &cmd, &circuit, settings).await?;
            if let Some(done) = self.settle(d, provider.name(), result, &mut transient) {
                return Ok((done, in_flight));
            }
        }
        match transient {
            Some(failure) => Ok((retry(d, settings, failure), in_flight)),
            // No provider was tried, so nothing is in flight.
            None => Ok((self.circuits_open(reopen), None)),
        }
    }

    /// Takes the first provider's turn and records the attempt's start: the send slot and the
    /// in-flight mark to hold while sending, or how the attempt ends without a send.
    async fn start<'a>(
        &'a self,
        d: &DeliveryRecord,
        user_id: &UserId,
        outlet: &'a Outlet,
        provider: &str,
        limiter: Option<&Limiter>,
        cmd: &SendCommand,
    ) -> Result<Result<(SemaphorePermit<'a>, InFlight<'a>), Attempt>, StoreError> {
        let suppress = |reason: Reason| Ok(Err(Attempt::Done(Settled::suppressed(reason))));
        let (permit, waited) = outlet.wait_turn(provider, limiter, cmd).await?;
        if self.closing.load(Ordering::SeqCst) {
            return Ok(Err(Attempt::Leave));
        }
        // A STOP or a switched-off channel may have arrived while the send waited its turn.
        if waited && let Err(reason) = self.consent(d, user_id).await? {
            return suppress(reason);
        }
        let mark = InFlight::new(self);
        match self.begin(d, &outlet.settings).await? {
            Begin::Go => Ok(Ok((permit, mark))),
            Begin::Closed => Ok(Err(Attempt::Leave)),
            Begin::UserCeiling => suppress(Reason::HourlyCeiling),
            Begin::ChannelBudget => suppress(Reason::SmsBudget),
        }
    }

    /// Every circuit is open: wait for the first to half-open, without using up an attempt.
    fn circuits_open(&self, reopen: Option<Timestamp>) -> Attempt {
        let until = reopen.unwrap_or_else(|| self.clock.now() + SignedDuration::from_secs(1));
        Attempt::Wait { until, error: "circuit open".into() }
    }

    /// What the providers are asked to send for `d`.
    fn command(&self, d: &DeliveryRecord, targets: Vec<Target>) -> SendCommand {
        let meta = |key: &str| d.payload.get(key).filter(|v| !v.is_null());
        let category = meta("category").and_then(|c| c.as_str());
        let unsubscribe_url = match (&self.unsubscribe, d.channel) {
            (Some(links), Channel::Email) => Some(links.link(&d.user_id, category, self.clock.now())),
            _ => None,
        };
        SendCommand {
            delivery_id: d.id,
            channel: d.channel,
            user_id: d.user_id.clone(),
            payload: d.payload.clone(),
            targets,
            attempt: d.attempts + 1,
            class: d.class.unwrap_or_default(),
            collapse_key: meta("collapse_key").and_then(|c| c.as_str()).map(str::to_owned),
            ttl: meta("ttl_seconds").and_then(|t| t.as_u64()).map(Duration::from_secs),
            unsubscribe_url,
        }
    }

    /// Defence in depth: consent may have changed since the decision, so it is checked again just
    /// before a send (erasure, the channel switch, a blocked address); the targets to send to, or
    /// why nothing may go.
    async fn consent(&self, d: &DeliveryRecord, user_id: &UserId) -> Result<Result<Vec<Target>, Reason>, StoreError> {
        let state = self
            .store
            .user_states(std::slice::from_ref(user_id))
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt(format!("no state for user {user_id}")))?;
        if state.user.as_ref().is_none_or(|u| u.erased_at.is_some()) {
            return Ok(Err(Reason::Erased));
        }
        let prefs = state.preferences.clone().unwrap_or_default().resolve(&self.defaults);
        if !prefs.channel_enabled(d.channel) {
            return Ok(Err(Reason::ChannelDisabled));
        }
        if let Some(reason) = state.blocked.get(&d.channel) {
            return Ok(Err(*reason));
        }
        let targets = targets(d.channel, &state.devices, state.user.as_ref().map(|u| &u.user));
        Ok(if targets.is_empty() { Err(Reason::NoAddress) } else { Ok(targets) })
    }

    /// Records the attempt's start, checking the hard ceiling and the channel's daily budget.
    async fn begin(&self, d: &DeliveryRecord, settings: &ChannelSettings) -> Result<Begin, StoreError> {
        let now = self.clock.now();
        let per_user = self.hourly_ceiling.map(|max| Limit { since: now - SignedDuration::from_hours(1), max });
        let per_channel = settings.daily_budget.map(|max| Limit { since: start_of_utc_day(now), max });
        self.store
            .begin_attempt(BeginAttempt {
                id: d.id,
                holder: self.holder,
                urgent: d.class.is_some_and(Class::is_urgent),
                per_user,
                per_channel,
                now,
            })
            .await
    }

    /// One provider's send, bounded by the channel's timeout, reported to its breaker.
    async fn send(
        &self,
        provider: &dyn Provider,
        cmd: &SendCommand,
        circuit: &str,
        settings: &ChannelSettings,
    ) -> Result<Result<Sent, SendError>, StoreError> {
        let result = match tokio::time::timeout(settings.timeout, provider.send(cmd)).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Transient { message: "timed out".into(), retry_after: None }),
        };
        self.forget_gone(cmd, &result).await?;
        self.block_unreachable(cmd, &result).await?;
        count_attempt(cmd.channel, provider.name(), &result);
        // A permanent refusal is about the recipient, not the provider's health.
        let healthy = !matches!(result, Err(SendError::Transient { .. }));
        self.breakers.report(cmd.channel, circuit, healthy, settings.breaker, self.clock.now());
        Ok(result)
    }

    /// Removes at once the tokens and subscriptions the provider says are dead.
    async fn forget_gone(&self, cmd: &SendCommand, result: &Result<Sent, SendError>) -> Result<(), StoreError> {
        let gone = match result {
            Ok(sent) => sent.gone.as_slice(),
            Err(SendError::Gone { devices, .. }) => devices.as_slice(),
            Err(_) => &[],
        };
        if gone.is_empty() {
            return Ok(());
        }
        let user = UserId::parse("user_id", &cmd.user_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        for device in gone {
            tracing::info!(%device, "the provider says the device is gone; removing it");
            self.store.delete_device(&user, *device).await?;
        }
        Ok(())
    }

    /// Blocks an address the provider says is dead or opted out, before anything else is tried.
    async fn block_unreachable(&self, cmd: &SendCommand, result: &Result<Sent, SendError>) -> Result<(), StoreError> {
        let Err(SendError::Unreachable { block, .. }) = result else { return Ok(()) };
        let Some(address) = cmd.targets.iter().find_map(contact_address) else { return Ok(()) };
        let kind = match block {
            AddressBlock::HardBounce => FeedbackKind::HardBounce,
            AddressBlock::Stopped => FeedbackKind::Stop,
        };
        tracing::info!(?block, "the provider says the address will not take messages; blocking it");
        self.store
            .apply_feedback(Feedback {
                channel: cmd.channel,
                address: address.to_owned(),
                kind,
                delivery_id: None,
                now: self.clock.now(),
            })
            .await?;
        Ok(())
    }

    /// Turns a send's result into the attempt's end, or remembers a transient failure and lets
    /// the next provider try.
    fn settle(
        &self,
        d: &DeliveryRecord,
        provider: &'static str,
        result: Result<Sent, SendError>,
        transient: &mut Option<Transient>,
    ) -> Option<Attempt> {
        let settled = match result {
            Ok(_) => Settled::accepted(d.channel, provider),
            Err(SendError::Gone { message, .. }) => Settled::bounced(Reason::InvalidToken, message, provider),
            Err(SendError::Unreachable { message, block }) => {
                let reason = match block {
                    AddressBlock::HardBounce => Reason::HardBounce,
                    AddressBlock::Stopped => Reason::SmsStop,
                };
                Settled::bounced(reason, message, provider)
            }
            Err(SendError::Permanent(msg)) => Settled::failed(Reason::ProviderRejected, msg, Some(provider.into())),
            Err(SendError::Transient { message, retry_after }) => {
                *transient = Some((message, retry_after, provider));
                return None;
            }
        };
        Some(Attempt::Done(settled))
    }
}

/// Marks an attempt in flight until its result is recorded; shutdown waits for these.
struct InFlight<'a>(&'a Dispatcher);

impl<'a> InFlight<'a> {
    fn new(d: &'a Dispatcher) -> Self {
        d.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(d)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The email address or phone number a send went to.
fn contact_address(t: &Target) -> Option<&str> {
    match t {
        Target::Email(a) | Target::Phone(a) => Some(a),
        _ => None,
    }
}

/// A transient failure kept while the next provider tries: its message, the provider's
/// Retry-After in seconds, and the provider.
type Transient = (String, Option<u64>, &'static str);

/// After a transient failure: a retry on the channel's schedule (no sooner than the provider
/// asked), or a dead letter once the schedule is used up.
fn retry(d: &DeliveryRecord, settings: &ChannelSettings, (message, retry_after, provider): Transient) -> Attempt {
    match settings.retry_schedule.get(d.attempts as usize) {
        Some(base) => {
            let base = (*base).max(Duration::from_secs(retry_after.unwrap_or(0)));
            Attempt::Retry { after: jitter(base), error: message, provider: Some(provider.into()) }
        }
        None => Attempt::Done(Settled::failed(Reason::RetriesExhausted, message, Some(provider.into()))),
    }
}

/// Counts a provider's send by outcome, and its errors by kind.
fn count_attempt(channel: Channel, provider: &'static str, result: &Result<Sent, SendError>) {
    let kind = match result {
        Ok(_) => "ok",
        Err(SendError::Transient { .. }) => "transient",
        Err(SendError::Permanent(_)) => "permanent",
        Err(SendError::Gone { .. }) => "gone",
        Err(SendError::Unreachable { .. }) => "unreachable",
    };
    metrics::counter!("herald_delivery_attempts_total", "channel" => channel.as_str(), "provider" => provider, "outcome" => kind)
        .increment(1);
    if kind != "ok" {
        metrics::counter!("herald_provider_errors_total", "channel" => channel.as_str(), "provider" => provider, "kind" => kind)
            .increment(1);
    }
}

/// Midnight UTC of `now`'s day: daily budgets reset then.
fn start_of_utc_day(now: Timestamp) -> Timestamp {
    let secs = now.as_second();
    Timestamp::from_second(secs - secs.rem_euclid(86_400)).unwrap_or(now)
}

/// Adds up to 10% random jitter so that retries after an outage do not arrive in lockstep.
fn jitter(base: Duration) -> Duration {
    let spread = base.as_millis() as u64 / 10;
    if spread == 0 {
        return base;
    }
    base + Duration::from_millis(rand::rng().random_range(0..=spread))
}
