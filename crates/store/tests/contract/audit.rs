//! `AuditStore`: each user's timeline newest first with a cursor, and the counts over everything
//! (notifications by class, deliveries by channel, class and status, suppressions by reason, dead
//! letters), all or since a time.

use herald_domain::reason::{Decision, Reason};
use herald_domain::{Channel, Class, DeliveryStatus};
use herald_store::{RecipientOutcome, Stats, StoreError};

use crate::backends;
use crate::fixtures::{
    accept, at, audit, begin, claim, claim_all, decide_with, decided, delivery_of, every_page, foreign_cursor,
    inbox_item, item_of, notification, queued, record, refuses_cursors, result, user,
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
    for b in &backends().await {
        let id = accept(b, notification(&["ada", "bob"], at(0))).await;
        let items = claim_all(b, at(0)).await;
        let (ada, bob) = (item_of(&items, id, "ada"), item_of(&items, id, "bob"));
        let lines = vec![
            audit(ada, None, Decision::Deferred, Some(Reason::QuietHours), at(1)),
            audit(ada, Some(Channel::Email), Decision::Delivering, None, at(2)),
            audit(ada, Some(Channel::Sms), Decision::Suppressed, Some(Reason::NoAddress), at(3)),
        ];
        record(b, RecipientOutcome { audit: lines, ..decided(ada, at(3)) }).await;
        record(
            b,
            RecipientOutcome {
                audit: vec![audit(bob, None, Decision::Delivering, None, at(4))],
                ..decided(bob, at(4))
            },
        )
        .await;

        let ada = &user("ada");
        let pages = every_page(b, 2, |c| async move { b.timeline(ada, c.as_ref(), 2).await }).await;
        let [page, rest] = &pages[..] else { panic!("{b}: two pages of ada's three lines, not {}", pages.len()) };
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
        let read: Vec<_> = rest
            .iter()
            .map(|a| (a.decision.as_str(), a.reason.map(Reason::as_str), a.channel.map(Channel::as_str)))
            .collect();
        assert_eq!(read, vec![("deferred", Some("quiet_hours"), None)], "{b}: older than the cursor");
        for limit in [1, 3] {
            let pages = every_page(b, limit, |c| async move { b.timeline(ada, c.as_ref(), limit).await }).await;
            let ats: Vec<_> = pages.concat().iter().map(|a| a.at).collect();
            assert_eq!(ats, vec![at(3), at(2), at(1)], "{b}: pages of {limit} hold each line once");
        }
        let nobody = b.timeline(&user("nobody"), None, 10).await.unwrap();
        assert!(nobody.items.is_empty() && nobody.next.is_none(), "{b}: no trail");
    }
}

#[tokio::test]
async fn the_timeline_reads_only_its_own_cursors() {
    for b in &backends().await {
        let id = accept(b, notification(&["ada"], at(0))).await;
        let ada = item_of(&claim_all(b, at(0)).await, id, "ada").clone();
        let lines = (1..=2).map(|s| audit(&ada, None, Decision::Delivering, None, at(s))).collect();
        record(b, RecipientOutcome { audit: lines, ..decided(&ada, at(2)) }).await;
        let adas = b.timeline(&user("ada"), None, 1).await.unwrap().next.expect("a second page");

        let bobs = b.timeline(&user("bob"), Some(&adas), 10).await;
        assert!(matches!(bobs, Err(StoreError::BadCursor)), "{b}: ada's cursor is not one of bob's timeline");
        let bob = &user("bob");
        refuses_cursors(b, foreign_cursor(b).await, |c| async move { b.timeline(bob, Some(&c), 10).await }).await;
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
