//! One recipient's outcome, assembled from the engine's plan channel by channel: what goes out
//! now, what stands by as a transactional fallback, what is suppressed and why, and whether the
//! whole is held back (deferred or batched). Every step leaves its line in the audit.

use herald_domain::decision::Spend;
use herald_domain::ids::{Category, delivery_id};
use herald_domain::notification::NotificationSpec;
use herald_domain::reason::{Decision, Reason};
use herald_domain::sms;
use herald_domain::template::Rendered;
use herald_domain::{Channel, DeliveryStatus, UserId};
use herald_store::{
    AuditEntry, DeliveryRecord, NewDelivery, NewInboxItem, Next, NotificationRecord, RecipientOutcome, WorkItem,
};
use jiff::Timestamp;
use uuid::Uuid;

/// The outcome under construction.
pub(crate) struct Assembly<'a> {
    item: &'a WorkItem,
    n: &'a NotificationRecord,
    category: Option<&'a Category>,
    outcome: RecipientOutcome,
    to_dispatch: Vec<DeliveryRecord>,
    /// Some channel (the inbox included) goes out.
    delivering: bool,
    /// A transactional channel could not be rendered: the next standby takes its place.
    promote: bool,
    /// The first hold (deferral or batch), which decides for the whole recipient.
    held: Option<(Decision, Reason)>,
}

impl<'a> Assembly<'a> {
    pub(crate) fn new(
        item: &'a WorkItem,
        n: &'a NotificationRecord,
        category: Option<&'a Category>,
        now: Timestamp,
    ) -> Self {
        let outcome = RecipientOutcome {
            item: item.clone(),
            next: Next::Done,
            spend: None,
            flush_at: None,
            collapse_key: n.spec.collapse_key.clone(),
            decision: Decision::Suppressed,
            reason: None,
            inbox: None,
            deliveries: Vec::new(),
            audit: Vec::new(),
            now,
        };
        Self { item, n, category, outcome, to_dispatch: Vec::new(), delivering: false, promote: false, held: None }
    }

    fn audit(&mut self, channel: Option<Channel>, decision: Decision, reason: Option<Reason>) {
        self.outcome.audit.push(AuditEntry {
            user_id: self.item.user_id.clone(),
            notification_id: self.n.id,
            channel,
            decision,
            reason,
            at: self.outcome.now,
        });
    }

    fn id(&self, channel: Channel) -> Uuid {
        delivery_id(self.n.id, &self.item.user_id, channel)
    }

    fn payload(&self, channel: Channel, content: Rendered) -> serde_json::Value {
        let category = self.category.map(|c| c.as_str());
        payload(self.n, &self.n.spec, &self.item.user_id, category, channel, content, None)
    }

    /// The template is gone or broken: nothing can be rendered for anyone.
    pub(crate) fn unrenderable(mut self) -> (RecipientOutcome, Vec<DeliveryRecord>) {
        self.outcome.reason = Some(Reason::RenderError);
        self.audit(None, Decision::Suppressed, Some(Reason::RenderError));
        (self.outcome, Vec::new())
    }

    /// The plan has no channel at all.
    pub(crate) fn nothing_to_send(&mut self) {
        self.outcome.reason = Some(Reason::NoChannel);
        self.audit(None, Decision::Suppressed, Some(Reason::NoChannel));
    }

    /// A channel that goes out now (or, when it cannot be rendered, is suppressed and promotes
    /// the next standby).
    pub(crate) fn send(&mut self, channel: Channel, content: Result<Rendered, Reason>) {
        match content {
            Err(reason) => self.suppress(channel, reason, true),
            Ok(content) if channel == Channel::InApp => self.deliver_to_inbox(content),
            Ok(content) => self.deliver(channel, content, false),
        }
    }

    /// A transactional fallback: stored ready to go and sent only if the channels before it
    /// fail, unless a channel before it could not be rendered, which makes it go now.
    pub(crate) fn stand_by(&mut self, channel: Channel, content: Result<Rendered, Reason>) {
        let promoted = self.promote;
        match content {
            Err(reason) => self.suppress(channel, reason, promoted),
            Ok(content) if promoted => self.deliver(channel, content, true),
            Ok(content) => {
                let payload = self.payload(channel, content);
                let (_, mut new) =
                    queued(self.id(channel), self.n, &self.item.user_id, channel, payload, self.outcome.now);
                new.status = DeliveryStatus::Standby;
                self.outcome.deliveries.push(new);
            }
        }
    }

    /// A channel the recipient does not get; `in_turn` when it was the channel due to go out, so
    /// a render failure hands its turn to the next standby.
    pub(crate) fn suppress(&mut self, channel: Channel, reason: Reason, in_turn: bool) {
        self.promote |= reason == Reason::RenderError && in_turn && channel.interrupts();
        self.outcome.reason.get_or_insert(reason);
        self.audit(Some(channel), Decision::Suppressed, Some(reason));
        self.outcome.deliveries.push(suppressed(self.id(channel), channel, reason));
        metrics::counter!("herald_suppressed_total", "reason" => reason.as_str(), "channel" => channel.as_str())
            .increment(1);
    }

    /// Holds the interruptions back (the first hold speaks for the recipient in the audit).
    pub(crate) fn hold(&mut self, decision: Decision, reason: Reason, next: Next) {
        if self.held.is_none() {
            if reason == Reason::Overload {
                metrics::counter!("herald_shed_total", "class" => self.n.class.as_str()).increment(1);
            }
            self.audit(None, decision, Some(reason));
        }
        self.held = Some((decision, reason));
        self.outcome.next = next;
    }

    /// When the pending digest this recipient joined falls due.
    pub(crate) fn flush_at(&mut self, at: Timestamp) {
        self.outcome.flush_at = Some(at);
    }

    fn deliver_to_inbox(&mut self, content: Rendered) {
        self.delivering = true;
        self.outcome.inbox = Some(NewInboxItem {
            id: Uuid::now_v7(),
            title: content.title,
            body: content.body,
            action_url: content.action_url,
            category: self.category.map(|c| c.to_string()),
        });
        // The recipient records the item; its delivery needs no row of its own.
        self.audit(Some(Channel::InApp), Decision::Delivered, None);
    }

    fn deliver(&mut self, channel: Channel, content: Rendered, promoted: bool) {
        self.delivering = true;
        self.promote = false;
        self.audit(Some(channel), Decision::Delivering, promoted.then_some(Reason::Fallback));
        let payload = self.payload(channel, content);
        let (record, new) = queued(self.id(channel), self.n, &self.item.user_id, channel, payload, self.outcome.now);
        self.to_dispatch.push(record);
        self.outcome.deliveries.push(new);
    }

    /// The recipient's decision: held, delivering, or suppressed with the first reason given.
    pub(crate) fn finish(mut self, spend: Option<Spend>) -> (RecipientOutcome, Vec<DeliveryRecord>) {
        if self.delivering && spend.is_some() {
            self.outcome.spend = spend;
        }
        (self.outcome.decision, self.outcome.reason) = match self.held {
            Some((decision, reason)) => (decision, Some(reason)),
            None if self.delivering => (Decision::Delivering, None),
            None => (Decision::Suppressed, self.outcome.reason.or(Some(Reason::NoChannel))),
        };
        (self.outcome, self.to_dispatch)
    }
}

/// A channel the recipient does not get, with the reason as its error.
pub(crate) fn suppressed(id: Uuid, channel: Channel, reason: Reason) -> NewDelivery {
    NewDelivery {
        id,
        channel,
        status: DeliveryStatus::Suppressed,
        provider: None,
        error: Some(reason.as_str().into()),
        payload: serde_json::Value::Null,
    }
}

/// A delivery ready to go: the record to dispatch and the row to store.
pub(crate) fn queued(
    id: Uuid,
    n: &NotificationRecord,
    user: &UserId,
    channel: Channel,
    payload: serde_json::Value,
    now: Timestamp,
) -> (DeliveryRecord, NewDelivery) {
    let record = DeliveryRecord {
        id,
        notification_id: n.id,
        user_id: user.to_string(),
        channel,
        status: DeliveryStatus::Queued,
        attempts: 0,
        provider: None,
        error: None,
        payload: payload.clone(),
        next_attempt_at: None,
        class: Some(n.class),
        created_at: now,
        dispatched_at: None,
        dead_at: None,
        updated_at: now,
    };
    let new = NewDelivery { id, channel, status: DeliveryStatus::Queued, provider: None, error: None, payload };
    (record, new)
}

/// What a delivery carries: the Standard Webhooks body for webhooks, the rendered content otherwise.
pub(crate) fn payload(
    n: &NotificationRecord,
    spec: &NotificationSpec,
    user: &UserId,
    category: Option<&str>,
    channel: Channel,
    content: Rendered,
    digest: Option<&serde_json::Value>,
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
                "data": spec.data,
                "digest": digest,
            }
        })
    } else {
        // What providers need besides the content travels with it (and shows in the dev outbox).
        let segments = (channel == Channel::Sms).then(|| sms::measure(content.body.as_deref().unwrap_or_default()));
        let mut v = serde_json::to_value(content).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            if let Some(s) = segments {
                o.insert("segments".into(), s.count.into());
                o.insert("encoding".into(), s.encoding.as_str().into());
            }
            o.insert("category".into(), category.into());
            o.insert("collapse_key".into(), spec.collapse_key.clone().into());
            o.insert("ttl_seconds".into(), spec.ttl_seconds.into());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use herald_domain::Class;
    use herald_domain::ids::TemplateKey;

    use super::*;

    const NOW: &str = "2026-12-02T10:00:00Z";

    fn notification() -> NotificationRecord {
        let spec = NotificationSpec {
            template: TemplateKey::parse("template", "order_shipped").unwrap(),
            data: serde_json::Map::new(),
            class: None,
            category: None,
            channels: None,
            group_key: None,
            collapse_key: None,
            send_at: None,
            time_sensitive: false,
            ttl_seconds: None,
        };
        NotificationRecord {
            id: Uuid::now_v7(),
            template: "order_shipped".into(),
            class: Class::Transactional,
            spec,
            recipients_total: 1,
            created_at: NOW.parse().unwrap(),
            cancelled_at: None,
            fingerprint: None,
            repeated: false,
        }
    }

    fn item(n: &NotificationRecord) -> WorkItem {
        WorkItem {
            seq: 1,
            phase: 0,
            notification_id: n.id,
            user_id: UserId::parse("user_id", "ana").unwrap(),
            urgent: true,
            lease: herald_store::Lease {
                token: herald_store::LeaseToken::from_stored(1),
                until: jiff::Timestamp::UNIX_EPOCH,
            },
        }
    }

    fn content(title: &str) -> Result<Rendered, Reason> {
        Ok(Rendered { title: Some(title.into()), body: Some("b".into()), ..Rendered::default() })
    }

    fn statuses(outcome: &RecipientOutcome) -> Vec<(Channel, DeliveryStatus)> {
        outcome.deliveries.iter().map(|d| (d.channel, d.status)).collect()
    }

    #[test]
    fn a_channel_that_cannot_render_hands_its_turn_to_the_next_standby() {
        let n = notification();
        let item = item(&n);
        let mut a = Assembly::new(&item, &n, None, NOW.parse().unwrap());
        a.send(Channel::InApp, content("t"));
        a.send(Channel::Push, Err(Reason::RenderError));
        a.stand_by(Channel::Email, content("t"));
        a.stand_by(Channel::Sms, content("t"));
        let (outcome, to_dispatch) = a.finish(None);
        assert_eq!(
            statuses(&outcome),
            [
                (Channel::Push, DeliveryStatus::Suppressed),
                (Channel::Email, DeliveryStatus::Queued),
                (Channel::Sms, DeliveryStatus::Standby)
            ]
        );
        assert_eq!(to_dispatch.iter().map(|d| d.channel).collect::<Vec<_>>(), [Channel::Email]);
        assert!(outcome.inbox.is_some());
        assert_eq!((outcome.decision, outcome.reason), (Decision::Delivering, None));
        let fallback = outcome.audit.iter().find(|a| a.channel == Some(Channel::Email)).unwrap();
        assert_eq!((fallback.decision, fallback.reason), (Decision::Delivering, Some(Reason::Fallback)));
    }

    #[test]
    fn a_suppression_by_consent_promotes_nothing() {
        let n = notification();
        let item = item(&n);
        let mut a = Assembly::new(&item, &n, None, NOW.parse().unwrap());
        a.suppress(Channel::Push, Reason::ChannelDisabled, false);
        a.stand_by(Channel::Email, content("t"));
        let (outcome, to_dispatch) = a.finish(None);
        assert!(to_dispatch.is_empty());
        assert_eq!(statuses(&outcome)[1], (Channel::Email, DeliveryStatus::Standby));
        assert_eq!((outcome.decision, outcome.reason), (Decision::Suppressed, Some(Reason::ChannelDisabled)));
    }

    #[test]
    fn the_first_hold_speaks_for_the_recipient_and_the_inbox_still_goes() {
        let n = notification();
        let item = item(&n);
        let now: Timestamp = NOW.parse().unwrap();
        let until = now + jiff::SignedDuration::from_hours(8);
        let mut a = Assembly::new(&item, &n, None, now);
        a.send(Channel::InApp, content("t"));
        a.hold(Decision::Deferred, Reason::QuietHours, Next::Defer(until));
        a.hold(Decision::Deferred, Reason::QuietHours, Next::Defer(until));
        let (outcome, to_dispatch) = a.finish(None);
        assert!(to_dispatch.is_empty() && outcome.inbox.is_some());
        assert_eq!((outcome.decision, outcome.reason), (Decision::Deferred, Some(Reason::QuietHours)));
        assert_eq!(outcome.audit.iter().filter(|a| a.decision == Decision::Deferred).count(), 1, "one line per hold");
    }

    #[test]
    fn nothing_to_send_and_nothing_to_render_are_explained() {
        let n = notification();
        let item = item(&n);
        let mut a = Assembly::new(&item, &n, None, NOW.parse().unwrap());
        a.nothing_to_send();
        let (outcome, _) = a.finish(None);
        assert_eq!((outcome.decision, outcome.reason), (Decision::Suppressed, Some(Reason::NoChannel)));
        let (outcome, _) = Assembly::new(&item, &n, None, NOW.parse().unwrap()).unrenderable();
        assert_eq!(outcome.reason, Some(Reason::RenderError));
        assert_eq!(outcome.audit[0].reason, Some(Reason::RenderError));
    }
}
