//! Flushing a user's pending digest: when the cap or quiet hours let it go, each group of
//! batched notifications goes out as one digest; for a user who is online it drains into the
//! inbox instead.

use std::sync::Arc;

use herald_domain::decision::{Ask, Interruption, Outcome, Plan, RecipientState, Spend, decide, digest_due};
use herald_domain::ids::delivery_id;
use herald_domain::notification::NotificationSpec;
use herald_domain::reason::{Decision, Reason};
use herald_domain::template::{Compiled, Rendered, TemplateSpec};
use herald_domain::{Channel, UserId};
use herald_store::{
    AuditEntry, BatchedRecipient, DeliveryRecord, DigestOutcome, FlushItem, FlushOutcome, NewNotification,
    NotificationRecord, StoreError,
};
use jiff::Timestamp;
use uuid::Uuid;

use super::{Processor, UserContext, category_of};
use crate::assembly::{payload, queued, suppressed};

/// A batched recipient (its row) with its notification.
type Member = (i64, Arc<NotificationRecord>);

/// What became of one digest group in a flush.
enum Group {
    /// Its digest goes out with these deliveries.
    Sent(Vec<DeliveryRecord>),
    /// Its members were settled without a digest.
    Settled,
    /// The cap or quiet hours hold it, and the groups after it, back until then.
    Held(Timestamp),
}

impl Processor {
    /// Sends the user's pending digests that the cap now allows, one per group; drains them into
    /// the inbox instead when the user is online.
    pub(super) async fn flush(&self, flush: &FlushItem) -> Result<(), StoreError> {
        let (user, now) = (&flush.user_id, self.clock.now());
        let batched = self.store.batched(user).await?;
        let mut out = FlushOutcome {
            user_id: user.clone(),
            lease: flush.lease,
            digests: Vec::new(),
            settled: Vec::new(),
            audit: Vec::new(),
            next_due: None,
            now,
        };
        if batched.is_empty() {
            return self.store.record_flush(out).await.map(drop);
        }
        let mut contexts = self.contexts(std::slice::from_ref(user), now).await?;
        let ctx = contexts.remove(user).ok_or_else(|| StoreError::Corrupt(format!("no state for user {user}")))?;
        let groups = self.groups(batched).await?;
        let to_dispatch = self.flush_groups(&ctx, groups, &mut out).await?;
        if !self.store.record_flush(out).await? {
            tracing::info!(user_id = %user, "the flush was taken over after its lease ran out; its result is dropped");
            return Ok(());
        }
        for d in to_dispatch {
            self.dispatcher.dispatch(d);
        }
        Ok(())
    }

    /// Settles or digests the groups in order until one is held back (then it and the rest
    /// wait); the digests' deliveries, to dispatch once the flush is recorded.
    async fn flush_groups(
        &self,
        ctx: &UserContext,
        groups: Vec<Vec<Member>>,
        out: &mut FlushOutcome,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        // Each digest sent counts against the cap of the groups after it.
        let mut log = ctx.interruptions.clone();
        let mut to_dispatch = Vec::new();
        for members in groups {
            let Some(compiled) = self.templates.get(&members[0].1.spec.template).await? else {
                settle(out, &members, Decision::Suppressed, Reason::RenderError);
                continue;
            };
            if ctx.online {
                drain(out, &members, compiled.spec());
                continue;
            }
            match self.flush_group(ctx, &log, &members, &compiled, out) {
                Group::Sent(records) => {
                    log.push(Interruption { at: out.now, spend: Spend::Cap });
                    to_dispatch.extend(records);
                }
                Group::Settled => {}
                Group::Held(at) => {
                    out.next_due = Some(at);
                    break;
                }
            }
        }
        Ok(to_dispatch)
    }

    /// Plans one group's digest against the interruptions so far (`log`): builds it, settles the
    /// members without one, or holds the group back.
    fn flush_group(
        &self,
        ctx: &UserContext,
        log: &[Interruption],
        members: &[Member],
        compiled: &Compiled,
        out: &mut FlushOutcome,
    ) -> Group {
        let (first, template, now) = (&members[0].1, compiled.spec(), out.now);
        let channels: Vec<Channel> = template.channels().into_iter().filter(|c| c.interrupts()).collect();
        let category = category_of(first, template);
        let category = category.as_deref();
        let ask = Ask {
            class: first.class,
            category,
            template_channels: &channels,
            requested: first.spec.channels.as_deref(),
            time_sensitive: false,
        };
        let state = ctx.state(log);
        let plan = decide(&ask, &state, now);
        if plan.spend.is_none() {
            // The cap or quiet hours may still hold: this group and the rest wait.
            if let Some(at) = held_until(&plan, &state, now) {
                return Group::Held(at);
            }
            settle(out, members, Decision::Suppressed, suppression(&plan));
            return Group::Settled;
        }
        let category = category.map(|c| c.as_str());
        match self.digest(ctx, &out.user_id, members, compiled, category, &plan, now, &mut out.audit) {
            Ok((d, records)) => {
                out.digests.push(d);
                Group::Sent(records)
            }
            Err(reason) => {
                settle(out, members, Decision::Suppressed, reason);
                Group::Settled
            }
        }
    }

    /// The pending digest's members, grouped as their digests will be (by group key, else template).
    async fn groups(&self, batched: Vec<BatchedRecipient>) -> Result<Vec<Vec<Member>>, StoreError> {
        let ids: Vec<Uuid> = batched.iter().map(|b| b.notification_id).collect();
        let notes = self.notifications(&ids).await?;
        let mut pending: Vec<Member> = Vec::with_capacity(batched.len());
        let mut keys = Vec::with_capacity(batched.len());
        for b in batched {
            let n = notes[&b.notification_id].clone();
            keys.push((n.template.clone(), b.group_key));
            pending.push((b.seq, n));
        }
        Ok(herald_domain::digest::group(&keys)
            .into_iter()
            .map(|g| g.into_iter().map(|i| pending[i].clone()).collect())
            .collect())
    }

    /// Builds one digest: its notification, the rendered deliveries, the audit lines.
    #[allow(clippy::too_many_arguments)]
    fn digest(
        &self,
        ctx: &UserContext,
        user: &UserId,
        members: &[Member],
        template: &Compiled,
        category: Option<&str>,
        plan: &Plan,
        now: Timestamp,
        audit: &mut Vec<AuditEntry>,
    ) -> Result<(DigestOutcome, Vec<DeliveryRecord>), Reason> {
        let items: Vec<serde_json::Value> =
            members.iter().map(|(_, n)| serde_json::Value::Object(n.spec.data.clone())).collect();
        let rendered = render_digest(template, ctx, user, &items)?;
        let header = digest_header(&members[0].1, now);
        let digest_info = serde_json::json!({"count": items.len(), "items": items});
        let mut deliveries = Vec::new();
        let mut records = Vec::new();
        for d in &plan.decisions {
            let delivery = delivery_id(header.id, user, d.channel);
            match d.outcome {
                Outcome::Send => {
                    let content = self.fit(d.channel, for_channel(d.channel, &rendered));
                    let payload =
                        payload(&header, &header.spec, user, category, d.channel, content, Some(&digest_info));
                    let (record, new) = queued(delivery, &header, user, d.channel, payload, now);
                    records.push(record);
                    deliveries.push(new);
                    audit.push(digest_audit(user, header.id, d.channel, now));
                }
                Outcome::Suppress(r) => deliveries.push(suppressed(delivery, d.channel, r)),
                _ => {}
            }
        }
        let notification = NewNotification {
            id: header.id,
            spec: header.spec,
            class: header.class,
            recipients: vec![user.clone()],
            idempotency: None,
            fingerprint: None,
            now,
            due_at: now,
            claim: None,
        };
        Ok((DigestOutcome { notification, merged: members.iter().map(|(s, _)| *s).collect(), deliveries }, records))
    }
}

/// Settles a group for a user who is online: the inbox already holds its members; without an
/// inbox block there is nothing to drain into.
fn drain(out: &mut FlushOutcome, members: &[Member], template: &TemplateSpec) {
    match template.channels.in_app {
        Some(_) => settle(out, members, Decision::Delivered, Reason::DrainedToInbox),
        None => settle(out, members, Decision::Suppressed, Reason::UserOnline),
    }
}

/// A digest of `items` rendered for the user; a failed render suppresses the digest.
fn render_digest(
    template: &Compiled,
    ctx: &UserContext,
    user: &UserId,
    items: &[serde_json::Value],
) -> Result<Rendered, Reason> {
    let render_ctx = serde_json::json!({
        "count": items.len(),
        "items": items,
        "first": items[0],
        "user": ctx.template_user(user),
    });
    template.render_digest(ctx.locale().as_deref(), &render_ctx).map_err(|e| {
        tracing::warn!(error = %e, "digest render failed");
        Reason::RenderError
    })
}

/// A digest's own notification: sent like its first member, but with no data, schedule,
/// expiry or collapse key of its own.
fn digest_header(first: &NotificationRecord, now: Timestamp) -> NotificationRecord {
    let spec = NotificationSpec {
        data: serde_json::Map::new(),
        channels: first.spec.channels.clone(),
        send_at: None,
        time_sensitive: false,
        ttl_seconds: None,
        collapse_key: None,
        ..first.spec.clone()
    };
    NotificationRecord {
        id: Uuid::now_v7(),
        template: first.template.clone(),
        class: first.class,
        spec,
        recipients_total: 1,
        created_at: now,
        cancelled_at: None,
        fingerprint: None,
        repeated: false,
    }
}

/// The audit line of a digest delivery that goes out.
fn digest_audit(user: &UserId, notification_id: Uuid, channel: Channel, now: Timestamp) -> AuditEntry {
    AuditEntry {
        user_id: user.clone(),
        notification_id,
        channel: Some(channel),
        decision: Decision::Delivering,
        reason: Some(Reason::Digest),
        at: now,
    }
}

/// Settles a digest group's members without a digest, each with its audit line.
fn settle(out: &mut FlushOutcome, members: &[Member], decision: Decision, reason: Reason) {
    for (seq, n) in members {
        out.settled.push((*seq, reason));
        out.audit.push(AuditEntry {
            user_id: out.user_id.clone(),
            notification_id: n.id,
            channel: None,
            decision,
            reason: Some(reason),
            at: out.now,
        });
    }
}

/// When a digest the plan holds back may go: the cap's next free slot or the end of quiet hours.
fn held_until(plan: &Plan, state: &RecipientState<'_>, now: Timestamp) -> Option<Timestamp> {
    plan.decisions.iter().find_map(|d| match d.outcome {
        Outcome::Batch(_) => Some(digest_due(state, now)),
        Outcome::Defer { until, .. } => Some(until),
        _ => None,
    })
}

/// Why a plan with nothing to send sends nothing.
fn suppression(plan: &Plan) -> Reason {
    plan.decisions
        .iter()
        .find_map(|d| match d.outcome {
            Outcome::Suppress(r) => Some(r),
            _ => None,
        })
        .unwrap_or(Reason::NoChannel)
}

/// A digest's title and body, shaped for a channel's fields.
fn for_channel(channel: Channel, r: &Rendered) -> Rendered {
    match channel {
        Channel::Email => Rendered { subject: r.title.clone(), text: r.body.clone(), ..Rendered::default() },
        Channel::Sms => Rendered { body: r.body.clone(), ..Rendered::default() },
        _ => Rendered { title: r.title.clone(), body: r.body.clone(), ..Rendered::default() },
    }
}
