//! Deciding work: load the user's state, run the engine, render each channel, record the
//! outcome atomically, then feed the live hub and the dispatcher. Pending digests are flushed in
//! [`flush`].

mod flush;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use herald_domain::decision::{Ask, ChannelDecision, Interruption, Outcome, RecipientState, decide, digest_due};
use herald_domain::ids::Category;
use herald_domain::notification::DUPLICATE_WINDOW;
use herald_domain::overload::Shedding;
use herald_domain::preferences::Preferences;
use herald_domain::reason::{Decision, Reason};
use herald_domain::sms;
use herald_domain::template::{Compiled, Rendered, TemplateSpec, render_context};
use herald_domain::{Channel, Class, UserId};
use herald_store::{
    DeliveryRecord, FlushItem, Next, NotificationRecord, RecipientOutcome, Recorded, Store, StoreError, UserRecord,
    Work, WorkItem,
};
use jiff::{SignedDuration, Timestamp};
use tracing::Instrument;
use uuid::Uuid;

use crate::RuntimeConfig;
use crate::assembly::Assembly;
use crate::clock::Clock;
use crate::dispatch::Dispatcher;
use crate::hub::{Hub, LiveEvent};
use crate::lanes::Decide;
use crate::leases::{Holder, keep_held};
use crate::templates::Templates;

/// How long work whose processing failed waits before it is tried again.
const RETRY_AFTER: SignedDuration = SignedDuration::from_secs(30);

/// Notifications by id.
type Notes = HashMap<Uuid, Arc<NotificationRecord>>;

/// What a run's items are decided with, read together before the first is decided.
struct Run<'a> {
    notes: &'a Notes,
    templates: &'a HashMap<&'a str, Option<Arc<Compiled>>>,
    /// The seqs of items that repeat what their user got within the duplicate window.
    seen: &'a HashSet<i64>,
    now: Timestamp,
}

/// What one recipient's channels are rendered from.
struct Render<'a> {
    compiled: &'a Compiled,
    locale: Option<String>,
    context: serde_json::Value,
}

/// Decides work items; shared by all lanes.
pub(crate) struct Processor {
    store: Arc<dyn Store>,
    config: RuntimeConfig,
    hub: Hub,
    dispatcher: Arc<Dispatcher>,
    clock: Arc<dyn Clock>,
    templates: Arc<Templates>,
    /// This node's leases, which the claims it decides are renewed under.
    holder: Holder,
}

/// Everything the engine needs to know about one user, loaded once per work item.
struct UserContext {
    user: Option<UserRecord>,
    prefs: Preferences,
    reachable: BTreeSet<Channel>,
    blocked: BTreeMap<Channel, Reason>,
    shedding: Option<Shedding>,
    erased: bool,
    duplicate: bool,
    online: bool,
    tz: jiff::tz::TimeZone,
    interruptions: Vec<Interruption>,
}

impl UserContext {
    fn state<'a>(&'a self, log: &'a [Interruption]) -> RecipientState<'a> {
        RecipientState {
            preferences: &self.prefs,
            reachable: &self.reachable,
            erased: self.erased,
            duplicate: self.duplicate,
            online: self.online,
            timezone: Some(&self.tz),
            interruptions: log,
            blocked: &self.blocked,
            shedding: self.shedding,
        }
    }

    fn locale(&self) -> Option<String> {
        self.user.as_ref().and_then(|u| u.user.locale.as_ref()).map(|l| l.as_str().to_owned())
    }

    fn template_user(&self, id: &UserId) -> serde_json::Value {
        self.user.as_ref().map(|u| u.user.template_context()).unwrap_or_else(|| serde_json::json!({"id": id.as_str()}))
    }
}

#[async_trait::async_trait]
impl Decide for Processor {
    /// Processes a lane's batch of work in order; on a store failure the work is handed back and
    /// retried later. Decisions are made a run at a time (read together, recorded together); a
    /// digest flush waits for the decisions queued before it.
    async fn process(&self, work: Vec<Work>, lane: usize) {
        let work = keep_held(self.store.as_ref(), self.clock.now(), self.holder, work).await;
        let mut run = Vec::new();
        for w in work {
            match w {
                Work::Decide(item) => run.push(item),
                Work::Flush(flush) => {
                    self.decide_run(std::mem::take(&mut run), lane).await;
                    self.flush_user(flush, lane).await;
                }
            }
        }
        self.decide_run(run, lane).await;
    }

    async fn hand_back(&self, work: Vec<Work>) {
        let retry_at = self.clock.now() + RETRY_AFTER;
        for w in work {
            self.release(&w, retry_at).await;
        }
    }
}

impl Processor {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        config: RuntimeConfig,
        hub: Hub,
        dispatcher: Arc<Dispatcher>,
        clock: Arc<dyn Clock>,
        templates: Arc<Templates>,
        holder: Holder,
    ) -> Self {
        Self { store, config, hub, dispatcher, clock, templates, holder }
    }

    async fn decide_run(&self, items: Vec<WorkItem>, lane: usize) {
        if items.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let span = tracing::info_span!("decide", lane, items = items.len());
        if let Err(e) = self.decide_batch(&items).instrument(span).await {
            tracing::error!(error = %e, items = items.len(), "processing failed; will retry");
            let retry_at = self.clock.now() + RETRY_AFTER;
            for item in items.iter().cloned() {
                self.release(&Work::Decide(item), retry_at).await;
            }
        }
        let each = started.elapsed().as_secs_f64() / items.len() as f64;
        for _ in &items {
            metrics::histogram!("herald_decide_seconds").record(each);
        }
    }

    async fn flush_user(&self, flush: FlushItem, lane: usize) {
        let started = std::time::Instant::now();
        let span = tracing::info_span!("flush", user_id = %flush.user_id, lane);
        if let Err(e) = self.flush(&flush).instrument(span).await {
            tracing::error!(error = %e, "digest flush failed; will retry");
            self.release(&Work::Flush(flush), self.clock.now() + RETRY_AFTER).await;
        }
        metrics::histogram!("herald_decide_seconds").record(started.elapsed().as_secs_f64());
    }

    /// Hands claimed work back to the queue, due again at `retry_at`.
    async fn release(&self, work: &Work, retry_at: Timestamp) {
        if let Err(e) = self.store.release(work, retry_at).await {
            tracing::error!(error = %e, "cannot hand work back; it returns when its lease runs out");
        }
    }

    /// The notifications by id, read together (the store keeps those just accepted in memory).
    async fn notifications(&self, ids: &[Uuid]) -> Result<Notes, StoreError> {
        let found: Notes = self.store.notifications(ids).await?.into_iter().map(|n| (n.id, n)).collect();
        match ids.iter().find(|id| !found.contains_key(id)) {
            Some(id) => Err(StoreError::Corrupt(format!("notification {id} is missing"))),
            None => Ok(found),
        }
    }

    /// What the engine needs to know about each of `users`, read together.
    async fn contexts(&self, users: &[UserId], now: Timestamp) -> Result<HashMap<UserId, UserContext>, StoreError> {
        let states = self.store.user_states(users).await?;
        let overload = self.config.overload;
        let shedding = overload
            .thresholds
            .level(self.dispatcher.depth())
            .map(|level| Shedding { level, until: now + overload.defer });
        let mut contexts: HashMap<UserId, UserContext> = HashMap::with_capacity(states.len());
        let mut lookbacks = HashMap::with_capacity(states.len());
        for state in states {
            let prefs = state.preferences.clone().unwrap_or_default().resolve(&self.config.defaults);
            let mut reachable: BTreeSet<Channel> = state.devices.iter().map(|d| d.spec.channel()).collect();
            let profile = state.user.as_ref().map(|u| &u.user);
            if profile.is_some_and(|u| u.email.is_some()) {
                reachable.insert(Channel::Email);
            }
            if profile.is_some_and(|u| u.phone.is_some()) {
                reachable.insert(Channel::Sms);
            }
            reachable.retain(|c| !state.blocked.contains_key(c));
            let tz = profile.and_then(|u| u.timezone.as_ref()).map_or(jiff::tz::TimeZone::UTC, |t| t.zone());
            // Budgets look back an hour; the cap looks back its window.
            let lookback = prefs.frequency_cap.map_or(3600, |c| c.window_seconds.max(3600));
            lookbacks.insert(state.id.clone(), now - SignedDuration::from_secs(lookback as i64));
            contexts.insert(
                state.id.clone(),
                UserContext {
                    erased: state.user.as_ref().is_some_and(|u| u.erased_at.is_some()),
                    duplicate: false,
                    online: self.hub.is_online(state.id.as_str()),
                    user: state.user,
                    prefs,
                    reachable,
                    blocked: state.blocked,
                    shedding,
                    tz,
                    interruptions: Vec::new(),
                },
            );
        }
        let since = lookbacks.values().min().copied().unwrap_or(now);
        for (user, log) in self.store.interruptions(users, since).await? {
            if let (Some(ctx), Some(from)) = (contexts.get_mut(&user), lookbacks.get(&user)) {
                ctx.interruptions = log.into_iter().filter(|i| i.at > *from).collect();
            }
        }
        Ok(contexts)
    }

    /// Decides a run of work items: what they need is read together, each is decided in order
    /// (a user's later items see the interruptions and duplicates of the earlier ones), the
    /// decisions are recorded together, then what they send goes out.
    async fn decide_batch(&self, items: &[WorkItem]) -> Result<(), StoreError> {
        let now = self.clock.now();
        let ids: Vec<Uuid> = items.iter().map(|i| i.notification_id).collect();
        let notes = self.notifications(&ids).await?;
        let mut contexts = self.contexts(&distinct_users(items), now).await?;
        let templates = self.templates_of(&notes).await?;
        let seen = self.duplicates(items, &notes, now).await?;
        let run = Run { notes: &notes, templates: &templates, seen: &seen, now };
        let (outcomes, sends) = self.decide_each(items, &run, &mut contexts)?;
        let recorded = self.store.record_outcomes(outcomes).await?;
        self.send_recorded(items, recorded, sends);
        Ok(())
    }

    /// Each notification's compiled template (none when it is gone), read once per template.
    async fn templates_of<'n>(&self, notes: &'n Notes) -> Result<HashMap<&'n str, Option<Arc<Compiled>>>, StoreError> {
        let mut templates: HashMap<&str, Option<Arc<Compiled>>> = HashMap::new();
        for n in notes.values() {
            if !templates.contains_key(n.spec.template.as_str()) {
                templates.insert(n.spec.template.as_str(), self.templates.get(&n.spec.template).await?);
            }
        }
        Ok(templates)
    }

    /// Which items repeat what their user got within the duplicate window, by seq.
    async fn duplicates(&self, items: &[WorkItem], notes: &Notes, now: Timestamp) -> Result<HashSet<i64>, StoreError> {
        let asks: Vec<(UserId, String, i64)> = items
            .iter()
            .filter_map(|i| fingerprint(i, notes).map(|fp| (i.user_id.clone(), fp.to_owned(), i.seq)))
            .collect();
        self.store.seen_recently(&asks, now - DUPLICATE_WINDOW).await
    }

    /// Decides the run's items in order, each seeing what the earlier ones spent and reached;
    /// their outcomes to record and the deliveries each dispatches once recorded.
    fn decide_each(
        &self,
        items: &[WorkItem],
        run: &Run<'_>,
        contexts: &mut HashMap<UserId, UserContext>,
    ) -> Result<(Vec<RecipientOutcome>, Vec<Vec<DeliveryRecord>>), StoreError> {
        // What reached each user earlier in this run, which the store cannot know yet.
        let mut reached: HashMap<&UserId, BTreeSet<&str>> = HashMap::new();
        let mut outcomes = Vec::with_capacity(items.len());
        let mut sends = Vec::with_capacity(items.len());
        for item in items {
            let n = &run.notes[&item.notification_id];
            let ctx = contexts
                .get_mut(&item.user_id)
                .ok_or_else(|| StoreError::Corrupt(format!("no state for user {}", item.user_id)))?;
            let fp = fingerprint(item, run.notes);
            ctx.duplicate = fp.is_some_and(|fp| {
                run.seen.contains(&item.seq) || reached.get(&item.user_id).is_some_and(|r| r.contains(fp))
            });
            let template = run.templates.get(n.spec.template.as_str()).cloned().flatten();
            let span = tracing::info_span!("decide", notification_id = %n.id, user_id = %item.user_id);
            let (outcome, to_dispatch) = span.in_scope(|| self.decide_one(item, n, template.as_deref(), ctx, run.now));
            if let Some(spend) = outcome.spend {
                ctx.interruptions.push(Interruption { at: run.now, spend });
            }
            if let Some(fp) = fp
                && matches!(outcome.decision, Decision::Delivering | Decision::Deferred | Decision::Batched)
            {
                reached.entry(&item.user_id).or_default().insert(fp);
            }
            outcomes.push(outcome);
            sends.push(to_dispatch);
        }
        Ok((outcomes, sends))
    }

    /// Dispatches what the recorded items send and feeds the live hub their inbox items, then
    /// each user's unread count once.
    fn send_recorded(&self, items: &[WorkItem], recorded: Vec<Option<Recorded>>, sends: Vec<Vec<DeliveryRecord>>) {
        let mut unread: HashMap<&UserId, u64> = HashMap::new();
        for ((item, recorded), to_dispatch) in items.iter().zip(recorded).zip(sends) {
            // Cancelled or collapsed while it was being decided: nothing may go out.
            let Some(recorded) = recorded else { continue };
            for d in to_dispatch {
                self.dispatcher.dispatch(d);
            }
            if let Some(inbox) = recorded.inbox {
                metrics::counter!("herald_deliveries_total", "channel" => "in_app", "status" => "delivered")
                    .increment(1);
                self.hub.publish(item.user_id.as_str(), LiveEvent::Notification(Box::new(inbox)));
                if let Some(n) = recorded.unread {
                    unread.insert(&item.user_id, n);
                }
            }
        }
        // One count per user, after all of the run's items: the last one is the current count.
        for (user, n) in unread {
            self.hub.publish(user.as_str(), LiveEvent::UnreadCount(n));
        }
    }

    /// Decides one work item: the engine's plan, rendered into an inbox item, deliveries and
    /// audit lines, and the deliveries to dispatch once the outcome is recorded.
    fn decide_one(
        &self,
        item: &WorkItem,
        n: &NotificationRecord,
        template: Option<&Compiled>,
        ctx: &UserContext,
        now: Timestamp,
    ) -> (RecipientOutcome, Vec<DeliveryRecord>) {
        let Some(compiled) = template else {
            return Assembly::new(item, n, None, now).unrenderable();
        };
        let template = compiled.spec();
        let template_channels = offered_channels(template, ctx);
        let category = category_of(n, template);
        let category = category.as_deref();
        let ask = Ask {
            class: n.class,
            category,
            template_channels: &template_channels,
            requested: n.spec.channels.as_deref(),
            time_sensitive: n.spec.time_sensitive,
        };
        let state = ctx.state(&ctx.interruptions);
        let plan = decide(&ask, &state, now);
        let render = Render {
            compiled,
            locale: ctx.locale(),
            context: render_context(&n.spec.data, ctx.template_user(&item.user_id)),
        };
        let mut assembly = Assembly::new(item, n, category, now);
        if plan.decisions.is_empty() {
            assembly.nothing_to_send();
        }
        for d in &plan.decisions {
            // After a deferral the inbox is already done; only the interruptions are decided again.
            if d.channel == Channel::InApp && item.phase > 0 {
                continue;
            }
            self.assemble(&mut assembly, d, &render, &state, now);
        }
        assembly.finish(plan.spend)
    }

    /// Adds one channel's decision to the assembly, rendering only what goes out or stands by.
    fn assemble(
        &self,
        assembly: &mut Assembly<'_>,
        d: &ChannelDecision,
        render: &Render<'_>,
        state: &RecipientState<'_>,
        now: Timestamp,
    ) {
        match d.outcome {
            Outcome::Send => assembly.send(d.channel, self.render(render, d.channel)),
            Outcome::Standby => assembly.stand_by(d.channel, self.render(render, d.channel)),
            Outcome::Suppress(reason) => assembly.suppress(d.channel, reason, false),
            Outcome::Defer { until, reason } => assembly.hold(Decision::Deferred, reason, Next::Defer(until)),
            Outcome::Batch(reason) => {
                assembly.hold(Decision::Batched, reason, Next::Batch);
                assembly.flush_at(digest_due(state, now));
            }
        }
    }

    /// A channel's content for the recipient, fitted to the channel's size rule.
    fn render(&self, render: &Render<'_>, channel: Channel) -> Result<Rendered, Reason> {
        render
            .compiled
            .render(channel, render.locale.as_deref(), &render.context)
            .map(|c| self.fit(channel, c))
            .map_err(|e| {
                tracing::warn!(channel = %channel, error = %e, "render failed");
                Reason::RenderError
            })
    }

    /// Applies the channel's size rule: an SMS body is shortened to the configured most segments.
    fn fit(&self, channel: Channel, mut content: Rendered) -> Rendered {
        let max = self.config.channels.get(&channel).and_then(|c| c.max_segments);
        if let (Channel::Sms, Some(max), Some(body)) = (channel, max, content.body.as_mut())
            && let std::borrow::Cow::Owned(shorter) = sms::fit(body, max)
        {
            tracing::info!(max_segments = max, "the SMS body is longer than its segments allow; shortened");
            *body = shorter;
        }
        content
    }
}

/// The run's users, each once, in the order of their first item.
fn distinct_users(items: &[WorkItem]) -> Vec<UserId> {
    let mut users: Vec<UserId> = Vec::with_capacity(items.len());
    for item in items {
        if !users.contains(&item.user_id) {
            users.push(item.user_id.clone());
        }
    }
    users
}

/// The fingerprint an item is checked for duplicates by, if any. A collapse key already says
/// how repeats behave (the newer replaces the older), so those are not checked.
fn fingerprint<'n>(item: &WorkItem, notes: &'n Notes) -> Option<&'n str> {
    let n = &notes[&item.notification_id];
    n.fingerprint.as_deref().filter(|_| n.repeated && item.phase == 0 && n.spec.collapse_key.is_none())
}

/// The notification's category: its own, else its template's, else `marketing` for marketing,
/// else one named after the template. Every notification is in a category, so a user can switch
/// any of them off and every email's unsubscribe link unsubscribes from what it came with.
fn category_of<'a>(n: &'a NotificationRecord, template: &'a TemplateSpec) -> Option<Cow<'a, Category>> {
    let explicit = n.spec.category.as_ref().or(template.category.as_ref());
    match explicit.or((n.class == Class::Marketing).then(Category::marketing)) {
        Some(c) => Some(Cow::Borrowed(c)),
        None => Category::parse("category", &n.template).ok().map(Cow::Owned),
    }
}

/// The template's channels offered to this recipient. The webhook reuses the in-app block for
/// users who registered an endpoint; for the rest, who never asked for webhooks, it is no channel
/// at all (nothing to explain, nothing to store).
fn offered_channels(template: &TemplateSpec, ctx: &UserContext) -> Vec<Channel> {
    let mut channels = template.channels();
    if template.channels.webhook.is_none() && !ctx.reachable.contains(&Channel::Webhook) {
        channels.retain(|c| *c != Channel::Webhook);
    }
    channels
}
