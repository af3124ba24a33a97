//! `AuditStore`: each user's timeline newest first with a cursor, and the counts over everything
//! (notifications by class, deliveries by channel, class and status, suppressions by reason, dead
//! letters), all or since a time.

use herald_domain::reason::{Decision, Reason};
use herald_domain::{Channel, Class, DeliveryStatus};
use herald_store::{RecipientOutcome, Stats};

use crate::backends;
use crate::fixtures::{
    accept, at, audit, begin, claim, claim_all, decide_with, decided, delivery_of, inbox_item, item_of, notification,
    queued, record, result, user,
};

/// Everything a stats call counts, sorted: the contract fixes the counts, not their order.
#[derive(Debug, PartialEq)]
struct Counts {
    classes: Vec<(String, u64)>,
    deliveries: Vec<(String, String, String, u64)>,
    reasons: Vec<(String, u64)>,
    dead_letters: u64,
}

fn counted(s: &Stats) -> Counts {
    // Compared as their codes, with `unknown` for a class or reason not recorded.
    let mut classes: Vec<_> = s.notifications_by_class.iter().map(|(c, n)| (c.as_str().to_owned(), *n)).collect();
    classes.sort();
    let mut deliveries: Vec<_> = s
        .deliveries
        .iter()
        .map(|d| {
            let class = d.class.map_or("unknown", Class::as_str);
            (d.channel.as_str().to_owned(), class.to_owned(), d.status.as_str().to_owned(), d.count)
        })
        .collect();
    deliveries.sort();
    let mut reasons: Vec<_> =
        s.suppressed_by_reason.iter().map(|(r, n)| (r.map_or("unknown", Reason::as_str).to_owned(), *n)).collect();
    reasons.sort();
    Counts { classes, deliveries, reasons, dead_letters: s.dead_letters }
}

fn pairs(rows: &[(&str, u64)]) -> Vec<(String, u64)> {
    rows.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

fn one(channel: &str, class: &str, status: &str) -> (String, String, String, u64) {
    (channel.to_owned(), class.to_owned(), status.to_owned(), 1)
}

#[tokio::test]
async fn the_timeline_is_the_users_audit_newest_first_with_a_cursor() {
    for b in backends().await {
        let id = accept(&b, notification(&["ada", "bob"], at(0))).await;
        let items = claim_all(&b, at(0)).await;
        let (ada, bob) = (item_of(&items, id, "ada"), item_of(&items, id, "bob"));
        let lines = vec![
            audit(ada, None, Decision::Deferred, Some(Reason::QuietHours), at(1)),
            audit(ada, Some(Channel::Email), Decision::Delivering, None, at(2)),
            audit(ada, Some(Channel::Sms), Decision::Suppressed, Some(Reason::NoAddress), at(3)),
        ];
        record(&b, RecipientOutcome { audit: lines, ..decided(ada, at(3)) }).await;
        record(
            &b,
            RecipientOutcome {
                audit: vec![audit(bob, None, Decision::Delivering, None, at(4))],
                ..decided(bob, at(4))
            },
        )
        .await;

        let page = b.timeline(&user("ada"), None, 2).await.unwrap();
        let read: Vec<_> = page
            .iter()
            .map(|a| (a.at, a.decision.as_str(), a.reason.map(Reason::as_str), a.channel.map(Channel::as_str)))
            .collect();
        assert_eq!(
            read,
            vec![(at(3), "suppressed", Some("no_address"), Some("sms")), (at(2), "delivering", None, Some("email"))],
            "{b}: newest first, only ada's"
        );
        assert!(page.iter().all(|a| a.notification_id == id), "{b}: about the notification");
        let rest = b.timeline(&user("ada"), page.last().map(|a| a.seq), 2).await.unwrap();
        let read: Vec<_> = rest
            .iter()
            .map(|a| (a.decision.as_str(), a.reason.map(Reason::as_str), a.channel.map(Channel::as_str)))
            .collect();
        assert_eq!(read, vec![("deferred", Some("quiet_hours"), None)], "{b}: older than the cursor");
        assert!(b.timeline(&user("nobody"), None, 10).await.unwrap().is_empty(), "{b}: no trail");
    }
}

#[tokio::test]
async fn stats_count_by_class_channel_status_and_reason_since_a_time() {
    for b in backends().await {
        // Early: a social notification to the inbox, queued on email, suppressed on SMS.
        let id = accept(&b, notification(&["ada"], at(0))).await;
        let item = claim(&b, id, "ada", at(0)).await;
        let social = RecipientOutcome {
            inbox: Some(inbox_item("Hi")),
            deliveries: vec![queued(&item, Channel::Email)],
            audit: vec![audit(&item, Some(Channel::Sms), Decision::Suppressed, Some(Reason::NoAddress), at(0))],
            ..decided(&item, at(0))
        };
        record(&b, social).await;
        // Later: a critical email that failed for good.
        let item = decide_with(&b, "bob", Class::Critical, at(100), |i| vec![queued(i, Channel::Email)]).await;
        let email = delivery_of(&b, &item, Channel::Email).await;
        begin(&b, email.id, at(101)).await;
        b.update_delivery(result(&email, DeliveryStatus::Failed, 1, at(102))).await.unwrap();

        let all = b.stats(None).await.unwrap();
        let expected = Counts {
            classes: pairs(&[("critical", 1), ("social", 1)]),
            deliveries: vec![
                one("email", "critical", "failed"),
                one("email", "social", "queued"),
                one("in_app", "social", "delivered"),
            ],
            reasons: pairs(&[("no_address", 1)]),
            dead_letters: 1,
        };
        assert_eq!(counted(&all), expected, "{b}: everything counted");
        let since = b.stats(Some(at(50))).await.unwrap();
        let expected = Counts {
            classes: pairs(&[("critical", 1)]),
            deliveries: vec![one("email", "critical", "failed")],
            reasons: Vec::new(),
            dead_letters: 1,
        };
        assert_eq!(counted(&since), expected, "{b}: only what was created since");
    }
}
