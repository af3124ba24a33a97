//! `DeliveryStore`: open deliveries held under leases (adopted once no live lease holds them,
//! renewed, let go, and fenced: a node that lost one can neither start nor record an attempt),
//! starting attempts (counted, marked sending,
//! refused when closed or over a send limit), recording results with their audit and the
//! transactional fallbacks they stand down or hand over to, and providers' late reports.

use herald_domain::reason::{Decision, Reason};
use herald_domain::{Channel, Class, DeliveryStatus};
use herald_store::{
    AfterUpdate, Begin, BeginAttempt, DeliveryRecord, DeliveryUpdate, FinalStatus, Limit, ProviderStatus, Updated,
};
use uuid::Uuid;

use crate::Backend;
use crate::backends;
use crate::fixtures::{
    LEASE, NODE, OTHER, adopted_by_other, at, begin, current, decide_with, delivery, delivery_of, held, queued, result,
    standby, user,
};

fn status_of(open: &[DeliveryRecord], id: Uuid) -> Option<&str> {
    open.iter().find(|d| d.id == id).map(|d| d.status.as_str())
}

/// A provider's late report about attempt `attempt` of `d`.
fn report(d: &DeliveryRecord, status: FinalStatus, attempt: Option<u32>, secs: i64) -> ProviderStatus {
    ProviderStatus {
        delivery_id: d.id,
        channel: d.channel,
        attempt,
        status,
        error: (status != FinalStatus::Delivered).then(|| "mailbox unavailable".into()),
        reason: (status != FinalStatus::Delivered).then_some(Reason::ProviderRejected),
        now: at(secs),
    }
}

/// A transactional notification to `user_id` going out by email, with SMS then push on standby.
async fn with_fallbacks(b: &Backend, user_id: &str) -> [DeliveryRecord; 3] {
    let item = decide_with(b, user_id, Class::Transactional, at(0), |i| {
        vec![queued(i, Channel::Email), standby(i, Channel::Sms), standby(i, Channel::Push)]
    })
    .await;
    let mut out = Vec::new();
    for channel in [Channel::Email, Channel::Sms, Channel::Push] {
        out.push(delivery_of(b, &item, channel).await);
    }
    out.try_into().expect("three deliveries")
}

#[tokio::test]
async fn open_deliveries_are_adopted_once_no_live_lease_holds_them_and_the_old_holder_is_fenced_out() {
    for b in backends().await {
        // Each is held under the lease of the claim that decided it: until 60, 61 and 62.
        let queued = delivery(&b, "ada", Channel::Email, at(0)).await;
        let sending = delivery(&b, "bob", Channel::Email, at(1)).await;
        let sent = delivery(&b, "cy", Channel::Email, at(2)).await;
        begin(&b, sending.id, at(3)).await;
        begin(&b, sent.id, at(3)).await;
        b.update_delivery(result(&sent, DeliveryStatus::Sent, 1, at(4))).await.unwrap();

        assert!(adopted_by_other(&b, at(59)).await.is_empty(), "{b}: nothing is adopted while its lease runs");
        let open = adopted_by_other(&b, at(62)).await;
        assert_eq!(status_of(&open, queued.id), Some("queued"), "{b}: a queued delivery is adopted");
        assert_eq!(status_of(&open, sending.id), Some("sending"), "{b}: one being sent too (its node may have died)");
        assert_eq!(status_of(&open, sent.id), None, "{b}: a sent delivery is not open");
        assert!(adopted_by_other(&b, at(500)).await.is_empty(), "{b}: a node does not adopt what it holds");

        let lost =
            BeginAttempt { id: queued.id, holder: NODE, urgent: false, per_user: None, per_channel: None, now: at(63) };
        assert_eq!(b.begin_attempt(lost).await.unwrap(), Begin::Closed, "{b}: the old holder may not send it");
        let late = b.update_delivery(result(&sending, DeliveryStatus::Sent, 1, at(63))).await.unwrap();
        assert!(matches!(late, Updated::Closed), "{b}: nor record a result for it");
        assert_eq!(current(&b, &sending).await.status, DeliveryStatus::Sending, "{b}: which changed nothing");
        let mine = BeginAttempt {
            id: queued.id,
            holder: OTHER,
            urgent: false,
            per_user: None,
            per_channel: None,
            now: at(63),
        };
        assert_eq!(b.begin_attempt(mine).await.unwrap(), Begin::Go, "{b}: the new holder sends it");
    }
}

#[tokio::test]
async fn renewed_deliveries_stay_held_and_released_ones_are_adopted_at_once() {
    for b in backends().await {
        let d = delivery(&b, "ada", Channel::Email, at(0)).await;
        let other = delivery(&b, "bob", Channel::Email, at(0)).await;
        begin(&b, other.id, at(1)).await;
        b.update_delivery(result(&other, DeliveryStatus::Sent, 1, at(2))).await.unwrap();
        assert_eq!(b.renew_deliveries(held(at(50))).await.unwrap(), 1, "{b}: the one still open is renewed");
        assert!(adopted_by_other(&b, at(100)).await.is_empty(), "{b}: held until 110 now");
        assert_eq!(b.release_deliveries(NODE).await.unwrap(), 1, "{b}: let go");
        let adopted = adopted_by_other(&b, at(100)).await;
        assert_eq!(adopted.iter().map(|x| x.id).collect::<Vec<_>>(), vec![d.id], "{b}: adopted at once");
        assert_eq!(b.renew_deliveries(held(at(100))).await.unwrap(), 0, "{b}: the old holder holds nothing now");
        let until = at(100) + jiff::SignedDuration::try_from(LEASE).unwrap();
        assert!(b.adopt_deliveries(held(until), until, 10).await.unwrap().len() == 1, "{b}: until it runs out");
    }
}

#[tokio::test]
async fn an_attempt_is_counted_marks_sending_and_is_refused_once_closed() {
    for b in backends().await {
        let d = delivery(&b, "ada", Channel::Email, at(0)).await;
        assert_eq!((d.status.as_str(), d.attempts, d.dispatched_at), ("queued", 0, None), "{b}: not attempted yet");
        begin(&b, d.id, at(10)).await;
        let after = current(&b, &d).await;
        assert_eq!(
            (after.status.as_str(), after.attempts, after.dispatched_at),
            ("sending", 1, Some(at(10))),
            "{b}: the attempt is counted and the first dispatch time kept"
        );
        // A restart finds it sending and tries again: counted again, first dispatch unchanged.
        begin(&b, d.id, at(20)).await;
        let again = current(&b, &d).await;
        assert_eq!((again.attempts, again.dispatched_at), (2, Some(at(10))), "{b}: a second attempt");

        b.update_delivery(result(&d, DeliveryStatus::Sent, 2, at(21))).await.unwrap();
        let closed = b.begin_attempt(BeginAttempt {
            id: d.id,
            holder: NODE,
            urgent: false,
            per_user: None,
            per_channel: None,
            now: at(30),
        });
        assert_eq!(closed.await.unwrap(), Begin::Closed, "{b}: a settled delivery is not sent again");
        let unknown = b.begin_attempt(BeginAttempt {
            id: Uuid::now_v7(),
            holder: NODE,
            urgent: false,
            per_user: None,
            per_channel: None,
            now: at(30),
        });
        assert_eq!(unknown.await.unwrap(), Begin::Closed, "{b}: an unknown delivery is closed");
    }
}

#[tokio::test]
async fn send_limits_count_first_dispatches_within_their_windows() {
    for b in backends().await {
        let first = delivery(&b, "ada", Channel::Sms, at(0)).await;
        let second = delivery(&b, "ada", Channel::Sms, at(1)).await;
        let other = delivery(&b, "bob", Channel::Sms, at(2)).await;
        let per_user = Some(Limit { since: at(-3600), max: 1 });
        let per_channel = Some(Limit { since: at(-3600), max: 2 });
        let start = |id, secs| BeginAttempt { id, holder: NODE, urgent: false, per_user, per_channel, now: at(secs) };

        assert_eq!(b.begin_attempt(start(first.id, 10)).await.unwrap(), Begin::Go, "{b}: within both limits");
        assert_eq!(b.begin_attempt(start(second.id, 11)).await.unwrap(), Begin::UserCeiling, "{b}: ada's ceiling");
        assert_eq!(b.begin_attempt(start(other.id, 12)).await.unwrap(), Begin::Go, "{b}: bob has his own ceiling");
        let third = delivery(&b, "cy", Channel::Sms, at(13)).await;
        assert_eq!(b.begin_attempt(start(third.id, 14)).await.unwrap(), Begin::ChannelBudget, "{b}: the budget");
        assert_eq!(
            b.begin_attempt(start(first.id, 15)).await.unwrap(),
            Begin::Go,
            "{b}: a retry of a delivery already dispatched is not refused"
        );
        let later = BeginAttempt {
            id: second.id,
            holder: NODE,
            urgent: false,
            per_user: Some(Limit { since: at(11), max: 1 }),
            per_channel: None,
            now: at(16),
        };
        assert_eq!(b.begin_attempt(later).await.unwrap(), Begin::Go, "{b}: dispatches before the window do not count");
    }
}

#[tokio::test]
async fn an_attempt_result_is_recorded_with_its_audit_unless_the_delivery_closed() {
    for b in backends().await {
        let d = delivery(&b, "ada", Channel::Email, at(0)).await;
        begin(&b, d.id, at(1)).await;
        let retry = DeliveryUpdate {
            error: Some("timeout".into()),
            next_attempt_at: Some(at(60)),
            ..result(&d, DeliveryStatus::Queued, 1, at(2))
        };
        assert!(matches!(b.update_delivery(retry).await.unwrap(), Updated::Recorded(None)), "{b}: a retry is recorded");
        let waiting = current(&b, &d).await;
        assert_eq!(
            (waiting.status.as_str(), waiting.attempts, waiting.error.as_deref(), waiting.next_attempt_at),
            ("queued", 1, Some("timeout"), Some(at(60))),
            "{b}: queued for a retry"
        );

        begin(&b, d.id, at(60)).await;
        assert!(matches!(
            b.update_delivery(result(&d, DeliveryStatus::Sent, 2, at(61))).await.unwrap(),
            Updated::Recorded(None)
        ));
        let sent = current(&b, &d).await;
        assert_eq!(
            (sent.status.as_str(), sent.attempts, sent.provider.as_deref(), sent.updated_at),
            ("sent", 2, Some("provider"), at(61)),
            "{b}: the result is recorded"
        );
        let timeline = b.timeline(&user("ada"), None, 10).await.unwrap().items;
        assert_eq!(timeline[0].decision, Decision::Sent, "{b}: with its audit line");

        let late = b.update_delivery(result(&d, DeliveryStatus::Failed, 3, at(70))).await.unwrap();
        assert!(matches!(late, Updated::Closed), "{b}: a closed delivery takes no result");
        assert_eq!(current(&b, &d).await.status, DeliveryStatus::Sent, "{b}: and keeps its status");
        assert_eq!(
            b.timeline(&user("ada"), None, 10).await.unwrap().items.len(),
            timeline.len(),
            "{b}: nor an audit line"
        );
    }
}

#[tokio::test]
async fn a_failure_hands_over_to_the_next_fallback_and_a_success_stands_the_rest_down() {
    for b in backends().await {
        let [email, sms, push] = with_fallbacks(&b, "ada").await;
        let id = email.notification_id;
        assert_eq!(b.recipient_counts(id).await.unwrap().open_deliveries, 3, "{b}: standbys count as open");
        assert_eq!(current(&b, &sms).await.status, DeliveryStatus::Standby, "{b}: standbys wait");
        assert!(adopted_by_other(&b, at(1000)).await.iter().all(|d| d.id == email.id), "{b}: and are not adopted");
        b.release_deliveries(OTHER).await.unwrap();
        b.adopt_deliveries(held(at(1000)), at(1000), 10).await.unwrap();

        begin(&b, email.id, at(1)).await;
        let failed = DeliveryUpdate { then: AfterUpdate::HandOver, ..result(&email, DeliveryStatus::Failed, 1, at(2)) };
        let Updated::Recorded(Some(next)) = b.update_delivery(failed).await.unwrap() else {
            panic!("{b}: a failure hands over to the next fallback")
        };
        assert_eq!((next.id, next.status.as_str()), (sms.id, "queued"), "{b}: the first standby, queued to dispatch");
        let trail = b.timeline(&user("ada"), None, 10).await.unwrap().items;
        let handed = trail.iter().any(|a| {
            (a.decision.as_str(), a.reason.map(Reason::as_str), a.channel.map(Channel::as_str))
                == ("delivering", Some("fallback"), Some("sms"))
        });
        assert!(handed, "{b}: the hand-over is in the audit");

        begin(&b, sms.id, at(3)).await;
        let sent = DeliveryUpdate { then: AfterUpdate::StandDown, ..result(&sms, DeliveryStatus::Sent, 1, at(4)) };
        assert!(matches!(b.update_delivery(sent).await.unwrap(), Updated::Recorded(None)), "{b}: recorded");
        let push_now = current(&b, &push).await;
        assert_eq!(push_now.status, DeliveryStatus::Suppressed, "{b}: the remaining fallback stands down");
        assert_eq!(b.recipient_counts(id).await.unwrap().open_deliveries, 0, "{b}: nothing left open");
    }
}

#[tokio::test]
async fn a_provider_report_settles_a_delivery_once() {
    for b in backends().await {
        let d = delivery(&b, "ada", Channel::Email, at(0)).await;
        begin(&b, d.id, at(1)).await;
        b.update_delivery(result(&d, DeliveryStatus::Sent, 1, at(2))).await.unwrap();

        let wrong_channel = ProviderStatus { channel: Channel::Sms, ..report(&d, FinalStatus::Delivered, None, 3) };
        assert!(
            matches!(b.provider_status(wrong_channel, held(at(0))).await.unwrap(), Updated::Closed),
            "{b}: channel must match"
        );
        let delivered = b.provider_status(report(&d, FinalStatus::Delivered, Some(1), 4), held(at(0))).await.unwrap();
        assert!(matches!(delivered, Updated::Recorded(None)), "{b}: the receipt is recorded");
        assert_eq!(current(&b, &d).await.status, DeliveryStatus::Delivered, "{b}: delivered");
        let timeline = b.timeline(&user("ada"), None, 1).await.unwrap().items;
        assert_eq!(timeline[0].decision, Decision::Delivered, "{b}: with an audit line");

        let late = b.provider_status(report(&d, FinalStatus::Failed, None, 5), held(at(0))).await.unwrap();
        assert!(matches!(late, Updated::Closed), "{b}: a final status is never changed");
        assert_eq!(current(&b, &d).await.status, DeliveryStatus::Delivered, "{b}: still delivered");
    }
}

#[tokio::test]
async fn a_provider_failure_of_an_older_attempt_is_ignored_and_of_the_last_hands_over() {
    for b in backends().await {
        let [email, sms, _push] = with_fallbacks(&b, "ada").await;
        begin(&b, email.id, at(1)).await;
        begin(&b, email.id, at(2)).await;
        // As the dispatcher records a send: the fallbacks stand down, until a late failure.
        let sent = DeliveryUpdate { then: AfterUpdate::StandDown, ..result(&email, DeliveryStatus::Sent, 2, at(3)) };
        b.update_delivery(sent).await.unwrap();

        let old = b.provider_status(report(&email, FinalStatus::Failed, Some(1), 4), held(at(0))).await.unwrap();
        assert!(matches!(old, Updated::Closed), "{b}: the first attempt's failure does not count");
        assert_eq!(current(&b, &email).await.status, DeliveryStatus::Sent, "{b}: still sent");

        let Updated::Recorded(Some(next)) =
            b.provider_status(report(&email, FinalStatus::Bounced, Some(2), 5), held(at(0))).await.unwrap()
        else {
            panic!("{b}: the last attempt's bounce hands over")
        };
        assert_eq!((next.id, next.status.as_str()), (sms.id, "queued"), "{b}: the stood-down fallback comes back");
        assert_eq!(current(&b, &email).await.status, DeliveryStatus::Bounced, "{b}: the email bounced");
    }
}

#[tokio::test]
async fn a_provider_report_stops_a_pending_retry_and_a_failure_makes_a_dead_letter() {
    for b in backends().await {
        let d = delivery(&b, "ada", Channel::Email, at(0)).await;
        begin(&b, d.id, at(1)).await;
        // Herald timed out and queued a retry, but the provider had taken the message.
        let retry = DeliveryUpdate { next_attempt_at: Some(at(60)), ..result(&d, DeliveryStatus::Queued, 1, at(2)) };
        b.update_delivery(retry).await.unwrap();
        let delivered = b.provider_status(report(&d, FinalStatus::Delivered, None, 3), held(at(0))).await.unwrap();
        assert!(matches!(delivered, Updated::Recorded(None)), "{b}: recorded");
        let begun = b.begin_attempt(BeginAttempt {
            id: d.id,
            holder: NODE,
            urgent: false,
            per_user: None,
            per_channel: None,
            now: at(60),
        });
        assert_eq!(begun.await.unwrap(), Begin::Closed, "{b}: the retry does not send it twice");

        let other = delivery(&b, "bob", Channel::Email, at(10)).await;
        begin(&b, other.id, at(11)).await;
        b.update_delivery(result(&other, DeliveryStatus::Sent, 1, at(12))).await.unwrap();
        b.provider_status(report(&other, FinalStatus::Failed, Some(1), 13), held(at(0))).await.unwrap();
        let dead = b.dead_letters(None, None, 10).await.unwrap().items;
        let dead: Vec<_> = dead.iter().map(|x| (x.id, x.status.as_str(), x.dead_at)).collect();
        assert_eq!(dead, vec![(other.id, "failed", Some(at(13)))], "{b}: a reported failure is a dead letter");
    }
}
