//! `DeadLetterStore`: deliveries failed for good, listed newest first by channel with a cursor,
//! and replayed under the same id with their attempts reset.

use herald_domain::reason::Reason;
use herald_domain::{Channel, DeliveryStatus};
use herald_store::Updated;
use uuid::Uuid;

use crate::backends;
use crate::fixtures::{
    adopted_by_other, at, begin, dead_letter, delivery, every_page, foreign_cursor, held, refuses_cursors, result, user,
};

#[tokio::test]
async fn dead_letters_are_listed_newest_first_by_channel_with_a_cursor() {
    for b in &backends().await {
        let first = dead_letter(b, "ada", Channel::Email, at(0)).await;
        let second = dead_letter(b, "bob", Channel::Sms, at(1)).await;
        let third = dead_letter(b, "cy", Channel::Email, at(2)).await;
        delivery(b, "dee", Channel::Email, at(3)).await;

        let ids = |page: &[herald_store::DeliveryRecord]| page.iter().map(|d| d.id).collect::<Vec<Uuid>>();
        let all = b.dead_letters(None, None, 10).await.unwrap();
        assert_eq!(ids(&all.items), vec![third.id, second.id, first.id], "{b}: newest first, live deliveries left out");
        assert!(all.next.is_none(), "{b}: all on one page");
        let dead = &all.items[0];
        assert_eq!((dead.status.as_str(), dead.dead_at), ("failed", Some(at(2))), "{b}: failed, and when");

        let email = b.dead_letters(Some(Channel::Email), None, 10).await.unwrap();
        assert_eq!(ids(&email.items), vec![third.id, first.id], "{b}: by channel");
        for limit in [1, 2, 3] {
            let pages = every_page(b, limit, |c| async move { b.dead_letters(None, c.as_ref(), limit).await }).await;
            assert_eq!(ids(&pages.concat()), vec![third.id, second.id, first.id], "{b}: paged by {limit}");
        }
        let pages =
            every_page(b, 1, |c| async move { b.dead_letters(Some(Channel::Email), c.as_ref(), 1).await }).await;
        assert_eq!(ids(&pages.concat()), vec![third.id, first.id], "{b}: a channel paged");
        refuses_cursors(b, foreign_cursor(b).await, |c| async move { b.dead_letters(None, Some(&c), 10).await }).await;
    }
}

#[tokio::test]
async fn a_replayed_dead_letter_is_queued_again_under_the_same_id() {
    for b in backends().await {
        let d = dead_letter(&b, "ada", Channel::Email, at(0)).await;
        let replayed = b.replay_dead_letter(d.id, held(at(10)), at(10)).await.unwrap().expect("replayed");
        assert_eq!(
            (replayed.id, replayed.status.as_str(), replayed.attempts, replayed.dead_at),
            (d.id, "queued", 0, None),
            "{b}: same id, queued, attempts reset"
        );
        assert!(b.dead_letters(None, None, 10).await.unwrap().items.is_empty(), "{b}: no longer a dead letter");
        assert!(adopted_by_other(&b, at(69)).await.is_empty(), "{b}: held by the node that replayed it");
        begin(&b, d.id, at(12)).await;
        assert!(b.replay_dead_letter(d.id, held(at(11)), at(11)).await.unwrap().is_none(), "{b}: replayed once");
        let last = &b.timeline(&user("ada"), None, 1).await.unwrap().items[0];
        assert_eq!(
            (last.at, last.decision.as_str(), last.reason.map(Reason::as_str), last.channel.map(Channel::as_str)),
            (at(10), "delivering", Some("replayed"), Some("email")),
            "{b}: the replay is in the audit"
        );
        assert_eq!(b.stats(None).await.unwrap().dead_letters, 0, "{b}: and no longer counted dead");

        let sent = delivery(&b, "bob", Channel::Email, at(20)).await;
        begin(&b, sent.id, at(21)).await;
        assert!(matches!(
            b.update_delivery(result(&sent, DeliveryStatus::Sent, 1, at(22))).await.unwrap(),
            Updated::Recorded(_)
        ));
        assert!(
            b.replay_dead_letter(sent.id, held(at(23)), at(23)).await.unwrap().is_none(),
            "{b}: a sent delivery is no dead letter"
        );
        assert!(
            b.replay_dead_letter(Uuid::now_v7(), held(at(23)), at(23)).await.unwrap().is_none(),
            "{b}: nor an unknown id"
        );
    }
}
