//! `NotificationStore`: accepting notifications with their recipients (idempotency keys honoured
//! atomically, within a batch and across batches, for 24 h), repeated content, reading them back
//! and cancelling what is not decided yet.

use herald_domain::notification::DUPLICATE_WINDOW;
use herald_domain::reason::Decision;
use herald_domain::{Channel, Class};
use herald_store::{AcceptOutcome, Begin, BeginAttempt, NewNotification, RecipientOutcome, Work};
use uuid::Uuid;

use crate::backends;
use crate::fixtures::{NODE, accept, at, decided, held, notification, queued, record, user};

fn keyed(users: &[&str], key: &str, request: &str, secs: i64) -> NewNotification {
    NewNotification { idempotency: Some((key.into(), request.into())), ..notification(users, at(secs)) }
}

#[tokio::test]
async fn accepting_creates_the_notification_and_its_recipients() {
    for b in backends().await {
        let mut n = NewNotification {
            class: Class::Transactional,
            fingerprint: Some("fp".into()),
            ..notification(&["ada", "bob"], at(10))
        };
        n.spec.data.insert("order".into(), serde_json::json!({ "id": 42, "items": ["a", "b"] }));
        n.spec.group_key = Some("orders".into());
        n.spec.send_at = Some(at(10));
        let (id, spec) = (n.id, n.spec.clone());
        let outcome = b.accept(n).await.unwrap();
        assert_eq!(
            outcome,
            AcceptOutcome::Created { id, recipients: 2, claimed: vec![] },
            "{b}: created with its recipient count"
        );

        let got = b.get_notification(id).await.unwrap().expect("the notification");
        assert_eq!(
            (got.template.as_str(), got.class, got.recipients_total, got.created_at, got.cancelled_at),
            ("welcome", Class::Transactional, 2, at(10), None),
            "{b}: the header reads back"
        );
        assert_eq!(got.spec, spec, "{b}: the content reads back whole");
        assert_eq!((got.fingerprint.as_deref(), got.repeated), (Some("fp"), false), "{b}: first of its content");
        let recipients = b.list_recipients(id, None, 10).await.unwrap().items;
        let users: Vec<(&str, &str)> = recipients.iter().map(|r| (r.user_id.as_str(), r.state.as_str())).collect();
        assert_eq!(users, vec![("ada", "pending"), ("bob", "pending")], "{b}: recipients pending, in order");
        assert!(b.get_user(&user("bob")).await.unwrap().is_some(), "{b}: recipients become users");
        assert!(b.get_notification(Uuid::now_v7()).await.unwrap().is_none(), "{b}: an unknown id is none");
    }
}

#[tokio::test]
async fn the_same_idempotency_key_answers_with_the_first_notification_for_24_hours() {
    for b in backends().await {
        let first = accept(&b, keyed(&["ada", "bob"], "k1", "req", 0)).await;
        let retry = keyed(&["ada", "bob"], "k1", "req", 60);
        let retry_id = retry.id;
        assert_eq!(
            b.accept(retry).await.unwrap(),
            AcceptOutcome::Existing { id: first, recipients: 2 },
            "{b}: the same key and request answer with the first"
        );
        assert!(b.get_notification(retry_id).await.unwrap().is_none(), "{b}: the retry created nothing");
        assert_eq!(b.recipient_counts(first).await.unwrap().pending, 2, "{b}: no recipients added");
        assert_eq!(
            b.accept(keyed(&["ada"], "k1", "other", 120)).await.unwrap(),
            AcceptOutcome::KeyConflict { id: first },
            "{b}: the same key with another request conflicts"
        );
        let next_day = keyed(&["ada"], "k1", "req", 25 * 3600);
        let id = next_day.id;
        assert_eq!(
            b.accept(next_day).await.unwrap(),
            AcceptOutcome::Created { id, recipients: 1, claimed: vec![] },
            "{b}: a key is forgotten after 24 h"
        );
    }
}

#[tokio::test]
async fn accept_many_keeps_order_and_honours_keys_within_and_across_batches() {
    for b in backends().await {
        let (a, plain, again) =
            (keyed(&["ada"], "k1", "req", 0), notification(&["bob"], at(0)), keyed(&["ada"], "k1", "req", 0));
        let (a_id, plain_id, again_id) = (a.id, plain.id, again.id);
        let outcomes = b.accept_many(vec![a, plain, again]).await.unwrap();
        assert_eq!(
            outcomes,
            vec![
                AcceptOutcome::Created { id: a_id, recipients: 1, claimed: vec![] },
                AcceptOutcome::Created { id: plain_id, recipients: 1, claimed: vec![] },
                AcceptOutcome::Existing { id: a_id, recipients: 1 },
            ],
            "{b}: one outcome per input in order; a key repeated in the batch answers with the first"
        );
        assert!(b.get_notification(again_id).await.unwrap().is_none(), "{b}: the repeat created nothing");

        let later = vec![keyed(&["ada"], "k1", "other", 10), keyed(&["ada"], "k1", "req", 10)];
        let outcomes = b.accept_many(later).await.unwrap();
        assert_eq!(
            outcomes,
            vec![AcceptOutcome::KeyConflict { id: a_id }, AcceptOutcome::Existing { id: a_id, recipients: 1 }],
            "{b}: keys of earlier batches are honoured"
        );
        assert!(b.accept_many(Vec::new()).await.unwrap().is_empty(), "{b}: an empty batch is fine");
    }
}

#[tokio::test]
async fn concurrent_accepts_with_one_key_create_one_notification() {
    for b in backends().await {
        let tries: Vec<_> = (0..6).map(|_| keyed(&["ada"], "k1", "req", 0)).collect();
        let outcomes = futures::future::join_all(tries.into_iter().map(|n| b.accept(n))).await;
        let created: Vec<Uuid> = outcomes
            .iter()
            .filter_map(|o| match o.as_ref().unwrap() {
                AcceptOutcome::Created { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        let [first] = created[..] else { panic!("{b}: exactly one is created, got {outcomes:?}") };
        for o in &outcomes {
            let o = o.as_ref().unwrap();
            let same =
                matches!(o, AcceptOutcome::Created { id, .. } | AcceptOutcome::Existing { id, .. } if *id == first);
            assert!(same, "{b}: the others answer with it, got {o:?}");
        }
        assert_eq!(b.recipient_counts(first).await.unwrap().pending, 1, "{b}: one recipient in all");
    }
}

#[tokio::test]
async fn content_accepted_again_within_the_duplicate_window_is_marked_repeated() {
    for b in backends().await {
        let with = |secs: i64| NewNotification { fingerprint: Some("same".into()), ..notification(&["ada"], at(secs)) };
        let first = accept(&b, with(0)).await;
        let soon = accept(&b, with(60)).await;
        let window = DUPLICATE_WINDOW.as_secs();
        let much_later = accept(&b, with(60 + window + 60)).await;
        let found = b.notifications(&[first, soon, much_later]).await.unwrap();
        let repeated = |id| found.iter().find(|n| n.id == id).map(|n| n.repeated);
        assert_eq!(repeated(first), Some(false), "{b}: the first is not repeated");
        assert_eq!(repeated(soon), Some(true), "{b}: the same content within the window is repeated");
        assert_eq!(repeated(much_later), Some(false), "{b}: beyond the window it is new again");
    }
}

#[tokio::test]
async fn notifications_by_ids_answers_those_that_exist() {
    for b in backends().await {
        let one = accept(&b, notification(&["ada"], at(0))).await;
        let two = accept(&b, notification(&["bob"], at(1))).await;
        let mut found: Vec<Uuid> =
            b.notifications(&[two, Uuid::now_v7(), one]).await.unwrap().iter().map(|n| n.id).collect();
        found.sort();
        let mut expected = vec![one, two];
        expected.sort();
        assert_eq!(found, expected, "{b}: the existing ones, the unknown left out");
        assert!(b.notifications(&[]).await.unwrap().is_empty(), "{b}: none asked, none found");
    }
}

#[tokio::test]
async fn cancelling_cancels_undecided_recipients_and_their_queued_deliveries() {
    for b in backends().await {
        let id = accept(&b, notification(&["ada", "bob", "cy"], at(0))).await;
        // One recipient is decided with a queued email, one is claimed mid-decision, one is pending.
        let work = b.claim_due(at(0), held(at(0)), 1).await.unwrap();
        let [Work::Decide(first)] = &work[..] else { panic!("{b}: one claim, got {work:?}") };
        let email = queued(first, Channel::Email);
        record(&b, RecipientOutcome { deliveries: vec![email.clone()], ..decided(first, at(1)) }).await;
        let work = b.claim_due(at(2), held(at(2)), 1).await.unwrap();
        let [Work::Decide(second)] = &work[..] else { panic!("{b}: one claim, got {work:?}") };

        assert_eq!(b.cancel_notification(id, at(5)).await.unwrap(), 2, "{b}: the claimed and the pending recipient");
        let got = b.get_notification(id).await.unwrap().expect("the notification");
        assert_eq!(got.cancelled_at, Some(at(5)), "{b}: marked cancelled");
        let counts = b.recipient_counts(id).await.unwrap();
        assert_eq!(
            (
                counts.pending,
                counts.by_decision.get(&Decision::Cancelled),
                counts.by_decision.get(&Decision::Delivering)
            ),
            (0, Some(&2), Some(&1)),
            "{b}: the decided recipient keeps its decision"
        );
        assert_eq!(counts.open_deliveries, 0, "{b}: the queued delivery is closed");
        let begun = b
            .begin_attempt(BeginAttempt {
                id: email.id,
                holder: NODE,
                urgent: false,
                per_user: None,
                per_channel: None,
                now: at(6),
            })
            .await;
        assert_eq!(begun.unwrap(), Begin::Closed, "{b}: a cancelled delivery is not sent");
        let lost = b.record_outcomes(vec![decided(second, at(7))]).await.unwrap();
        assert!(lost[0].is_none(), "{b}: the claim mid-decision was lost to the cancel");
        assert!(b.claim_due(at(100), held(at(100)), 10).await.unwrap().is_empty(), "{b}: nothing left to decide");
        assert_eq!(b.cancel_notification(id, at(8)).await.unwrap(), 0, "{b}: cancelling again cancels nothing");
        assert_eq!(b.cancel_notification(Uuid::now_v7(), at(8)).await.unwrap(), 0, "{b}: an unknown id: nothing");
        assert_eq!(
            b.get_notification(id).await.unwrap().and_then(|n| n.cancelled_at),
            Some(at(5)),
            "{b}: the first cancel time stands"
        );
    }
}
