//! `RecipientStore`: a notification's recipients paged in order with their deliveries, their
//! counts by state and decision, and recording decisions atomically (inbox item, deliveries,
//! audit, allowance spent) unless the claim was lost meanwhile.

use herald_domain::decision::Spend;
use herald_domain::reason::{Decision, Reason};
use herald_domain::{Channel, Class, RecipientState};
use herald_store::{InboxQuery, NewInboxItem, Next, RecipientOutcome, Work};

use crate::backends;
use crate::fixtures::{
    accept, adopted_by_other, at, audit, claim, claim_all, decided, every_page, foreign_cursor, held, inbox_item,
    item_of, notification, queued, record, refuses_cursors, user,
};

#[tokio::test]
async fn recipients_page_in_order_after_a_cursor() {
    for b in &backends().await {
        let id = accept(b, notification(&["u1", "u2", "u3", "u4", "u5"], at(0))).await;
        let users = |page: &[herald_store::RecipientRecord]| page.iter().map(|r| r.user_id.clone()).collect::<Vec<_>>();
        let pages = every_page(b, 2, |c| async move { b.list_recipients(id, c.as_ref(), 2).await }).await;
        let pages: Vec<_> = pages.iter().map(|p| users(p)).collect();
        assert_eq!(pages, [vec!["u1", "u2"], vec!["u3", "u4"], vec!["u5"]], "{b}: pages in accept order");
        for limit in [1, 5] {
            let pages = every_page(b, limit, |c| async move { b.list_recipients(id, c.as_ref(), limit).await }).await;
            assert_eq!(users(&pages.concat()), ["u1", "u2", "u3", "u4", "u5"], "{b}: paged by {limit}");
        }

        let other = accept(b, notification(&["u1", "u2"], at(1))).await;
        let others = b.list_recipients(other, None, 1).await.unwrap().next.expect("a cursor of another notification");
        refuses_cursors(b, others, |c| async move { b.list_recipients(id, Some(&c), 10).await }).await;
        refuses_cursors(b, foreign_cursor(b).await, |c| async move { b.list_recipients(id, Some(&c), 10).await }).await;
    }
}

#[tokio::test]
async fn recipient_counts_reflect_pending_waiting_and_decided() {
    for b in backends().await {
        let id = accept(&b, notification(&["ada", "bob", "cy"], at(0))).await;
        let counts = b.recipient_counts(id).await.unwrap();
        assert_eq!((counts.pending, counts.processed, counts.open_deliveries), (3, 0, 0), "{b}: all pending");

        let work = b.claim_due(at(0), held(at(0)), 2).await.unwrap();
        let [Work::Decide(one), Work::Decide(two)] = &work[..] else { panic!("{b}: two claims, got {work:?}") };
        let delivering = RecipientOutcome { deliveries: vec![queued(one, Channel::Email)], ..decided(one, at(1)) };
        let batched = RecipientOutcome {
            next: Next::Batch,
            decision: Decision::Batched,
            reason: Some(Reason::FrequencyCap),
            ..decided(two, at(1))
        };
        b.record_outcomes(vec![delivering, batched]).await.unwrap();

        let counts = b.recipient_counts(id).await.unwrap();
        assert_eq!(
            (counts.pending, counts.processed, counts.waiting, counts.open_deliveries),
            (1, 2, 1, 1),
            "{b}: one pending, two decided of which one waits in a digest, one delivery open"
        );
        let by = std::collections::BTreeMap::from([(Decision::Batched, 1), (Decision::Delivering, 1)]);
        assert_eq!(counts.by_decision, by, "{b}: by decision");
        let recipients = b.list_recipients(id, None, 10).await.unwrap().items;
        let channels = |item: &herald_store::WorkItem| {
            let r = recipients.iter().find(|r| r.user_id == item.user_id.as_str()).expect("the recipient");
            r.deliveries.iter().map(|d| d.channel).collect::<Vec<_>>()
        };
        assert_eq!((channels(one), channels(two)), (vec![Channel::Email], vec![]), "{b}: each its own");
        assert_eq!(b.recipient_counts(uuid::Uuid::now_v7()).await.unwrap().pending, 0, "{b}: unknown: nothing");
    }
}

#[tokio::test]
async fn a_decision_is_recorded_with_its_inbox_item_deliveries_audit_and_spend() {
    for b in backends().await {
        let id = accept(&b, notification(&["ada"], at(0))).await;
        let item = claim(&b, id, "ada", at(0)).await;
        let new_item = NewInboxItem {
            action_url: Some("https://example.com/welcome".into()),
            category: Some("account".into()),
            ..inbox_item("Welcome")
        };
        let outcome = RecipientOutcome {
            spend: Some(Spend::Cap),
            inbox: Some(new_item.clone()),
            deliveries: vec![queued(&item, Channel::Email)],
            audit: vec![
                audit(&item, Some(Channel::InApp), Decision::Delivered, None, at(1)),
                audit(&item, Some(Channel::Email), Decision::Delivering, None, at(1)),
            ],
            ..decided(&item, at(1))
        };
        let recorded = record(&b, outcome).await;

        let inbox = recorded.inbox.expect("the inbox item");
        assert_eq!(
            (inbox.id, inbox.user_id.as_str(), inbox.notification_id, inbox.created_at, inbox.read_at),
            (new_item.id, "ada", id, at(1), None),
            "{b}: the inbox item as created"
        );
        assert_eq!(
            (&inbox.title, &inbox.body, &inbox.action_url, &inbox.category),
            (&new_item.title, &new_item.body, &new_item.action_url, &new_item.category),
            "{b}: with its content"
        );
        assert_eq!(recorded.unread, Some(1), "{b}: the unread count with the item");
        let listed = b.list_inbox(&user("ada"), InboxQuery { limit: 10, ..Default::default() }).await.unwrap().items;
        assert_eq!(listed.iter().map(|i| i.id).collect::<Vec<_>>(), vec![inbox.id], "{b}: in the inbox");

        let recipients = b.list_recipients(id, None, 10).await.unwrap().items;
        let r = &recipients[0];
        assert_eq!((r.state, r.decision), (RecipientState::Done, Some(Decision::Delivering)), "{b}: decided");
        let channels: Vec<(Channel, &str)> = r.deliveries.iter().map(|d| (d.channel, d.status.as_str())).collect();
        assert!(channels.contains(&(Channel::Email, "queued")), "{b}: the email is queued: {channels:?}");
        assert!(channels.contains(&(Channel::InApp, "delivered")), "{b}: the inbox counts as delivered: {channels:?}");

        let open = adopted_by_other(&b, at(1000)).await;
        let email = open.iter().find(|d| d.notification_id == id).expect("the email is open");
        assert_eq!(
            (email.channel, email.attempts, email.class, email.created_at, &email.payload),
            (Channel::Email, 0, Some(Class::Social), at(1), &serde_json::json!({ "channel": "email" })),
            "{b}: the delivery carries its payload and the notification's class"
        );
        let timeline = b.timeline(&user("ada"), None, 10).await.unwrap().items;
        assert_eq!(timeline.len(), 2, "{b}: both audit lines");
        let spent = b.interruptions(&[user("ada")], at(0)).await.unwrap();
        let spends: Vec<Spend> = spent.get(&user("ada")).into_iter().flatten().map(|i| i.spend).collect();
        assert_eq!(spends, vec![Spend::Cap], "{b}: the allowance spent is recorded");
    }
}

#[tokio::test]
async fn a_claim_lost_to_a_cancel_records_nothing_and_answers_none() {
    for b in backends().await {
        let lost_id = accept(&b, notification(&["ada"], at(0))).await;
        let kept_id = accept(&b, notification(&["bob"], at(0))).await;
        let items = claim_all(&b, at(0)).await;
        let (lost, kept) = (item_of(&items, lost_id, "ada"), item_of(&items, kept_id, "bob"));
        b.cancel_notification(lost_id, at(1)).await.unwrap();

        let with_everything = |i: &herald_store::WorkItem| RecipientOutcome {
            inbox: Some(inbox_item("Hi")),
            deliveries: vec![queued(i, Channel::Email)],
            audit: vec![audit(i, Some(Channel::Email), Decision::Delivering, None, at(2))],
            ..decided(i, at(2))
        };
        let recorded = b.record_outcomes(vec![with_everything(lost), with_everything(kept)]).await.unwrap();
        assert!(recorded[0].is_none(), "{b}: the cancelled claim is lost");
        assert!(recorded[1].as_ref().is_some_and(|r| r.inbox.is_some()), "{b}: the other is recorded in the same call");

        let ada = user("ada");
        assert_eq!(b.unread_count(&ada).await.unwrap(), 0, "{b}: no inbox item for the lost claim");
        let decisions: Vec<Decision> =
            b.timeline(&ada, None, 10).await.unwrap().items.into_iter().map(|a| a.decision).collect();
        assert_eq!(decisions, vec![Decision::Cancelled], "{b}: only the cancel is in the audit");
        let recipients = b.list_recipients(lost_id, None, 10).await.unwrap().items;
        assert_eq!(recipients[0].decision.map(Decision::as_str), Some("cancelled"), "{b}: the cancel stands");
        assert!(recipients[0].deliveries.is_empty(), "{b}: no deliveries for the lost claim");
    }
}

#[tokio::test]
async fn a_deferred_recipient_falls_due_again_for_its_interruptions() {
    for b in backends().await {
        let id = accept(&b, notification(&["ada"], at(0))).await;
        let item = claim(&b, id, "ada", at(0)).await;
        assert_eq!(item.phase, 0, "{b}: a first decision");
        let deferred = RecipientOutcome {
            next: Next::Defer(at(3600)),
            decision: Decision::Deferred,
            reason: Some(Reason::QuietHours),
            inbox: Some(inbox_item("Later")),
            ..decided(&item, at(1))
        };
        record(&b, deferred).await;
        assert!(
            b.claim_due(at(3599), held(at(3599)), 10).await.unwrap().is_empty(),
            "{b}: not due before the deferral ends"
        );
        assert_eq!(b.next_due().await.unwrap(), Some(at(3600)), "{b}: due when it ends");
        let again = claim(&b, id, "ada", at(3600)).await;
        assert_eq!((again.seq, again.phase), (item.seq, 1), "{b}: the same recipient, inbox done");
    }
}

#[tokio::test]
async fn a_newer_notification_collapses_older_ones_with_its_key() {
    for b in backends().await {
        let with_key = |secs| {
            let mut n = notification(&["ada"], at(secs));
            n.spec.collapse_key = Some("score".into());
            n
        };
        let older = accept(&b, with_key(0)).await;
        let newer = accept(&b, with_key(1)).await;
        let items = claim_all(&b, at(1)).await;
        let (old_item, new_item) = (item_of(&items, older, "ada"), item_of(&items, newer, "ada"));

        record(&b, RecipientOutcome { collapse_key: Some("score".into()), ..decided(new_item, at(2)) }).await;
        let lost = b.record_outcomes(vec![decided(old_item, at(3))]).await.unwrap();
        assert!(lost[0].is_none(), "{b}: the older one lost its claim to the collapse");
        let r = &b.list_recipients(older, None, 10).await.unwrap().items[0];
        assert_eq!(
            (r.decision.map(Decision::as_str), r.reason.map(Reason::as_str)),
            (Some("suppressed"), Some("collapsed")),
            "{b}"
        );
    }
}
