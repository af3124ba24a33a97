//! Builders and steps that set up state through the contracts themselves (accept a notification,
//! claim it, record a decision with its deliveries), so each test reads as the behaviour it checks.
//! Times are explicit: everything happens at whole seconds after [`at`]'s origin.

use herald_domain::ids::TemplateKey;
use herald_domain::notification::NotificationSpec;
use herald_domain::reason::{Decision, Reason};
use herald_domain::{Channel, Class, DeliveryStatus, UserId};
use herald_store::*;
use jiff::Timestamp;
use serde_json::json;
use uuid::Uuid;

use crate::Backend;

/// How long the tests' claims last.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// The node the tests claim as, unless a test plays two.
pub const NODE: LeaseToken = LeaseToken::from_stored(1);

/// Another node, for the tests of taking over.
pub const OTHER: LeaseToken = LeaseToken::from_stored(2);

/// `NODE`'s lease from `now`.
pub fn held(now: Timestamp) -> Lease {
    Lease::new(NODE, now, LEASE)
}

/// What `OTHER` adopts at `now`: the open deliveries no live lease holds then.
pub async fn adopted_by_other(b: &Backend, now: Timestamp) -> Vec<DeliveryRecord> {
    b.adopt_deliveries(Lease::new(OTHER, now, LEASE), now, 100).await.unwrap_or_else(|e| panic!("{b}: adopt: {e}"))
}

/// `secs` seconds after a fixed origin (2026-01-01T00:00:00Z); negative is before it.
pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + secs).expect("a valid time")
}

/// A user id.
pub fn user(id: &str) -> UserId {
    UserId::parse("user", id).expect("a valid user id")
}

/// A template key.
pub fn template(key: &str) -> TemplateKey {
    TemplateKey::parse("template", key).expect("a valid template key")
}

/// What a notification of `template` says, with no options.
pub fn spec(template_key: &str) -> NotificationSpec {
    NotificationSpec {
        template: template(template_key),
        data: serde_json::Map::new(),
        class: None,
        category: None,
        channels: None,
        group_key: None,
        collapse_key: None,
        send_at: None,
        time_sensitive: false,
        ttl_seconds: None,
    }
}

/// A social notification of template `welcome` for `users`, accepted and due at `now`.
pub fn notification(users: &[&str], now: Timestamp) -> NewNotification {
    NewNotification {
        id: Uuid::now_v7(),
        spec: spec("welcome"),
        class: Class::Social,
        recipients: users.iter().map(|u| user(u)).collect(),
        idempotency: None,
        fingerprint: None,
        now,
        due_at: now,
        claim: None,
    }
}

/// Accepts `n`, which must be new; its id.
pub async fn accept(b: &Backend, n: NewNotification) -> Uuid {
    let id = n.id;
    let recipients = n.recipients.len() as u64;
    let outcome = b.accept(n).await.unwrap_or_else(|e| panic!("{b}: accept failed: {e}"));
    assert_eq!(
        outcome,
        AcceptOutcome::Created { id, recipients, claimed: vec![] },
        "{b}: a new notification is created"
    );
    id
}

/// Claims what is due at `now`, which must be exactly one decision: the one for
/// (`notification`, `user_id`).
pub async fn claim(b: &Backend, notification: Uuid, user_id: &str, now: Timestamp) -> WorkItem {
    let work = b.claim_due(now, held(now), 100).await.unwrap_or_else(|e| panic!("{b}: claim_due failed: {e}"));
    match work.as_slice() {
        [Work::Decide(item)] if item.notification_id == notification && item.user_id == user(user_id) => item.clone(),
        other => panic!("{b}: expected the one decision for {notification}/{user_id}, claimed {other:?}"),
    }
}

/// Claims every decision due at `now` (there must be no digest flush among them).
pub async fn claim_all(b: &Backend, now: Timestamp) -> Vec<WorkItem> {
    let work = b.claim_due(now, held(now), 100).await.unwrap_or_else(|e| panic!("{b}: claim_due failed: {e}"));
    work.into_iter()
        .map(|w| match w {
            Work::Decide(item) => item,
            Work::Flush(f) => panic!("{b}: no flush expected, claimed one for {}", f.user_id),
        })
        .collect()
}

/// The claimed item of (`notification`, `user_id`) among `items`.
pub fn item_of<'a>(items: &'a [WorkItem], notification: Uuid, user_id: &str) -> &'a WorkItem {
    items
        .iter()
        .find(|i| i.notification_id == notification && i.user_id == user(user_id))
        .unwrap_or_else(|| panic!("{notification}/{user_id} was claimed"))
}

/// A decision for `item`: delivered for good, with nothing attached yet.
pub fn decided(item: &WorkItem, now: Timestamp) -> RecipientOutcome {
    RecipientOutcome {
        item: item.clone(),
        next: Next::Done,
        spend: None,
        flush_at: None,
        collapse_key: None,
        decision: Decision::Delivering,
        reason: None,
        inbox: None,
        deliveries: Vec::new(),
        audit: Vec::new(),
        now,
    }
}

/// Records one outcome, which must not have lost its claim.
pub async fn record(b: &Backend, outcome: RecipientOutcome) -> Recorded {
    let mut recorded = b.record_outcomes(vec![outcome]).await.unwrap_or_else(|e| panic!("{b}: record failed: {e}"));
    assert_eq!(recorded.len(), 1, "{b}: one result per outcome");
    recorded.remove(0).unwrap_or_else(|| panic!("{b}: the claim was held, so the outcome is recorded"))
}

/// An inbox item to create.
pub fn inbox_item(title: &str) -> NewInboxItem {
    NewInboxItem {
        id: Uuid::now_v7(),
        title: Some(title.into()),
        body: Some(format!("{title}, in full")),
        action_url: None,
        category: None,
    }
}

/// A delivery of `item` on `channel` to dispatch, under its deterministic id.
pub fn queued(item: &WorkItem, channel: Channel) -> NewDelivery {
    NewDelivery {
        id: herald_domain::ids::delivery_id(item.notification_id, &item.user_id, channel),
        channel,
        status: DeliveryStatus::Queued,
        provider: None,
        error: None,
        payload: json!({ "channel": channel.as_str() }),
    }
}

/// A transactional fallback of `item` on `channel`, sent only if the channels before it fail.
pub fn standby(item: &WorkItem, channel: Channel) -> NewDelivery {
    NewDelivery { status: DeliveryStatus::Standby, ..queued(item, channel) }
}

/// An audit line about `item`.
pub fn audit(
    item: &WorkItem,
    channel: Option<Channel>,
    decision: Decision,
    reason: Option<Reason>,
    when: Timestamp,
) -> AuditEntry {
    AuditEntry {
        user_id: item.user_id.clone(),
        notification_id: item.notification_id,
        channel,
        decision,
        reason,
        at: when,
    }
}

/// A notification of `class` for `user_id` accepted and decided at `now`, with `deliveries` made
/// of its work item (which it returns); nothing else is due meanwhile.
pub async fn decide_with(
    b: &Backend,
    user_id: &str,
    class: Class,
    now: Timestamp,
    deliveries: impl FnOnce(&WorkItem) -> Vec<NewDelivery>,
) -> WorkItem {
    let id = accept(b, NewNotification { class, ..notification(&[user_id], now) }).await;
    let item = claim(b, id, user_id, now).await;
    record(b, RecipientOutcome { deliveries: deliveries(&item), ..decided(&item, now) }).await;
    item
}

/// A delivery on `channel` to `user_id`, decided and queued at `now`; as the store holds it.
pub async fn delivery(b: &Backend, user_id: &str, channel: Channel, now: Timestamp) -> DeliveryRecord {
    let item = decide_with(b, user_id, Class::Social, now, |i| vec![queued(i, channel)]).await;
    delivery_of(b, &item, channel).await
}

/// The delivery of `item` on `channel`, as the store holds it now.
pub async fn delivery_of(b: &Backend, item: &WorkItem, channel: Channel) -> DeliveryRecord {
    let recipients = b.list_recipients(item.notification_id, None, 100).await.expect("recipients");
    recipients
        .items
        .into_iter()
        .filter(|r| r.user_id == item.user_id.as_str())
        .flat_map(|r| r.deliveries)
        .find(|d| d.channel == channel)
        .unwrap_or_else(|| panic!("{b}: {} has a delivery on {channel}", item.notification_id))
}

/// `d` as the store holds it now.
pub async fn current(b: &Backend, d: &DeliveryRecord) -> DeliveryRecord {
    let recipients = b.list_recipients(d.notification_id, None, 100).await.expect("recipients");
    recipients.items.into_iter().flat_map(|r| r.deliveries).find(|x| x.id == d.id).expect("the delivery")
}

/// Starts an attempt of delivery `id` at `now` with no limits; it must go ahead.
pub async fn begin(b: &Backend, id: Uuid, now: Timestamp) {
    let begun = b
        .begin_attempt(BeginAttempt { id, holder: NODE, urgent: false, per_user: None, per_channel: None, now })
        .await
        .expect("begin");
    assert_eq!(begun, Begin::Go, "{b}: an open delivery may be attempted");
}

/// The result of attempt `attempts` of `d`: `status`, with its audit line (none for `queued`, a
/// retry, as the dispatcher writes) and no fallback handling.
pub fn result(d: &DeliveryRecord, status: DeliveryStatus, attempts: u32, now: Timestamp) -> DeliveryUpdate {
    let decision = match status {
        DeliveryStatus::Sent => Some(Decision::Sent),
        DeliveryStatus::Delivered => Some(Decision::Delivered),
        DeliveryStatus::Failed => Some(Decision::Failed),
        DeliveryStatus::Bounced => Some(Decision::Bounced),
        _ => None,
    };
    DeliveryUpdate {
        id: d.id,
        holder: NODE,
        urgent: false,
        status,
        attempts,
        provider: Some("provider".into()),
        error: (status == DeliveryStatus::Failed).then(|| "refused".into()),
        next_attempt_at: None,
        audit: decision.map(|decision| AuditEntry {
            user_id: user(&d.user_id),
            notification_id: d.notification_id,
            channel: Some(d.channel),
            decision,
            reason: (status == DeliveryStatus::Failed).then_some(Reason::ProviderRejected),
            at: now,
        }),
        then: AfterUpdate::Nothing,
        now,
    }
}

/// A delivery on `channel` to `user_id` that failed for good at `now`: a dead letter.
pub async fn dead_letter(b: &Backend, user_id: &str, channel: Channel, now: Timestamp) -> DeliveryRecord {
    let d = delivery(b, user_id, channel, now).await;
    begin(b, d.id, now).await;
    let updated = b.update_delivery(result(&d, DeliveryStatus::Failed, 1, now)).await.expect("update");
    assert!(matches!(updated, Updated::Recorded(None)), "{b}: the failure is recorded");
    d
}

/// An inbox item for `user_id`, created by a decision at `now`.
pub async fn inbox(b: &Backend, user_id: &str, title: &str, now: Timestamp) -> InboxItem {
    let id = accept(b, notification(&[user_id], now)).await;
    let item = claim(b, id, user_id, now).await;
    let recorded = record(b, RecipientOutcome { inbox: Some(inbox_item(title)), ..decided(&item, now) }).await;
    recorded.inbox.unwrap_or_else(|| panic!("{b}: the decision creates the inbox item"))
}

/// The users whose digest flushes are among `work`, in order (there must be nothing else).
pub fn flushes(work: &[Work]) -> Vec<UserId> {
    work.iter()
        .map(|w| match w {
            Work::Flush(f) => f.user_id.clone(),
            Work::Decide(i) => panic!("no decision expected, claimed {i:?}"),
        })
        .collect()
}

/// Claims what is due at `now`, which must be exactly one digest flush: `user_id`'s.
pub async fn claim_flush(b: &Backend, user_id: &str, now: Timestamp) -> FlushItem {
    let work = b.claim_due(now, held(now), 100).await.unwrap_or_else(|e| panic!("{b}: claim_due failed: {e}"));
    match work.as_slice() {
        [Work::Flush(f)] if f.user_id == user(user_id) => f.clone(),
        other => panic!("{b}: expected the one flush of {user_id}, claimed {other:?}"),
    }
}

/// Every page of a list, from the first until one says it is the last, read by `list` from the
/// cursor of the page before; asserts that each page is full but the last and that it ends.
pub async fn every_page<T, F, Fut>(b: &Backend, limit: u32, mut list: F) -> Vec<Vec<T>>
where
    F: FnMut(Option<Cursor>) -> Fut,
    Fut: Future<Output = StoreResult<Page<T>>>,
{
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = list(cursor).await.unwrap_or_else(|e| panic!("{b}: a page: {e}"));
        assert!(page.items.len() <= limit as usize, "{b}: a page holds at most its limit");
        let full = page.items.len() == limit as usize;
        pages.push(page.items);
        match page.next {
            Some(next) => {
                assert!(full, "{b}: only a full page has a next one");
                assert!(pages.len() <= 100, "{b}: paging ends");
                cursor = Some(next);
            }
            None => return pages,
        }
    }
}

/// A cursor that only the list of subscribers of the topic `elsewhere` reads back.
pub async fn foreign_cursor(b: &Backend) -> Cursor {
    let topic = herald_domain::ids::TopicKey::parse("topic", "elsewhere").expect("a valid topic key");
    b.subscribe(&topic, &[user("zed1"), user("zed2")], at(0)).await.expect("subscribe");
    b.subscribers(&topic, None, 1).await.expect("subscribers").next.expect("a second page")
}

/// Asserts that `list` refuses a garbage cursor and `foreign`, a cursor another list minted.
pub async fn refuses_cursors<T, F, Fut>(b: &Backend, foreign: Cursor, mut list: F)
where
    F: FnMut(Cursor) -> Fut,
    Fut: Future<Output = StoreResult<Page<T>>>,
{
    for (what, cursor) in [("a garbage", Cursor::from_token("not a cursor".into())), ("another list's", foreign)] {
        assert!(matches!(list(cursor).await, Err(StoreError::BadCursor)), "{b}: {what} cursor is refused");
    }
}
