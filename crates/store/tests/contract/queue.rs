//! `WorkQueue`: claims come only when due, urgent (critical and transactional) before the rest and
//! each kind oldest due first, once each until recorded or released; a released claim returns at
//! its retry time; `next_due` says when to look again.

use herald_domain::Class;
use herald_store::{NewNotification, Work};

use crate::backends;
use crate::fixtures::{accept, at, claim, decided, notification, record, user};

fn due(users: &[&str], secs: i64) -> NewNotification {
    NewNotification { due_at: at(secs), ..notification(users, at(0)) }
}

fn notifications_of(work: &[Work]) -> Vec<uuid::Uuid> {
    work.iter()
        .map(|w| match w {
            Work::Decide(i) => i.notification_id,
            Work::Flush(u) => panic!("unexpected flush of {u}"),
        })
        .collect()
}

#[tokio::test]
async fn only_due_items_are_claimed_oldest_due_first() {
    for b in backends().await {
        let later = accept(&b, due(&["ada"], 20)).await;
        let sooner = accept(&b, due(&["bob"], 10)).await;
        let future = accept(&b, due(&["cy"], 30)).await;
        assert!(b.claim_due(at(9), 10).await.unwrap().is_empty(), "{b}: nothing is due yet");
        let first = b.claim_due(at(25), 1).await.unwrap();
        assert_eq!(notifications_of(&first), vec![sooner], "{b}: the oldest due comes first");
        let second = b.claim_due(at(25), 10).await.unwrap();
        assert_eq!(notifications_of(&second), vec![later], "{b}: then the next; not the one due later");
        let third = b.claim_due(at(30), 10).await.unwrap();
        assert_eq!(notifications_of(&third), vec![future], "{b}: due at its time exactly");
    }
}

#[tokio::test]
async fn urgent_recipients_are_claimed_ahead_of_others_due_before_them() {
    for b in backends().await {
        let backlog = accept(&b, due(&["ada", "bob", "cy"], 10)).await;
        let critical = accept(&b, NewNotification { class: Class::Critical, ..due(&["dee"], 20) }).await;
        let first = b.claim_due(at(25), 1).await.unwrap();
        assert_eq!(notifications_of(&first), vec![critical], "{b}: the critical one first, though due later");
        assert!(matches!(&first[0], Work::Decide(i) if i.urgent), "{b}: and it says it is urgent");
        let rest = b.claim_due(at(25), 10).await.unwrap();
        assert_eq!(notifications_of(&rest), vec![backlog; 3], "{b}: then the backlog, in due order");
    }
}

#[tokio::test]
async fn claims_honour_the_limit_and_are_not_handed_out_twice() {
    for b in backends().await {
        accept(&b, notification(&["ada", "bob", "cy"], at(0))).await;
        let first = b.claim_due(at(0), 2).await.unwrap();
        let second = b.claim_due(at(0), 2).await.unwrap();
        assert_eq!((first.len(), second.len()), (2, 1), "{b}: at most the limit, the rest next");
        let mut users: Vec<_> = first.iter().chain(&second).map(|w| w.user().clone()).collect();
        users.sort();
        assert_eq!(users, vec![user("ada"), user("bob"), user("cy")], "{b}: each claimed once");
        assert!(b.claim_due(at(1000), 10).await.unwrap().is_empty(), "{b}: a claimed item is not claimed again");
        assert_eq!(b.next_due().await.unwrap(), None, "{b}: claimed items are not pending");
    }
}

#[tokio::test]
async fn a_recorded_decision_is_not_claimed_again() {
    for b in backends().await {
        let id = accept(&b, notification(&["ada"], at(0))).await;
        let item = claim(&b, id, "ada", at(0)).await;
        record(&b, decided(&item, at(1))).await;
        assert!(b.claim_due(at(1000), 10).await.unwrap().is_empty(), "{b}: decided for good");
        assert_eq!(b.release_claims().await.unwrap(), 0, "{b}: no claim is left to release");
        // A late release (a lane that failed after all) must not bring a decided item back.
        b.release_claim(item.seq, at(5)).await.unwrap();
        assert!(b.claim_due(at(1000), 10).await.unwrap().is_empty(), "{b}: still decided");
    }
}

#[tokio::test]
async fn concurrent_claimers_never_share_an_item() {
    for b in backends().await {
        accept(&b, notification(&["u1", "u2", "u3", "u4", "u5", "u6"], at(0))).await;
        let claims = futures::future::join_all((0..8).map(|_| b.claim_due(at(0), 2))).await;
        let mut users: Vec<_> = claims.into_iter().flat_map(|c| c.unwrap()).map(|w| w.user().clone()).collect();
        users.sort();
        let expected: Vec<_> = ["u1", "u2", "u3", "u4", "u5", "u6"].map(user).into();
        assert_eq!(users, expected, "{b}: each item goes to exactly one claimer");
    }
}

#[tokio::test]
async fn a_released_claim_is_due_again_at_its_retry_time_and_not_before() {
    for b in backends().await {
        let id = accept(&b, notification(&["ada"], at(0))).await;
        let item = claim(&b, id, "ada", at(0)).await;
        b.release_claim(item.seq, at(100)).await.unwrap();
        assert!(b.claim_due(at(99), 10).await.unwrap().is_empty(), "{b}: not before the retry time");
        assert_eq!(b.next_due().await.unwrap(), Some(at(100)), "{b}: due at the retry time");
        let again = claim(&b, id, "ada", at(100)).await;
        assert_eq!(again, item, "{b}: the same item returns");
    }
}

#[tokio::test]
async fn release_claims_returns_every_claim_to_the_pool() {
    for b in backends().await {
        accept(&b, notification(&["ada", "bob"], at(0))).await;
        let mut claimed = b.claim_due(at(0), 10).await.unwrap();
        assert_eq!(b.release_claims().await.unwrap(), 2, "{b}: both recipients released");
        let mut again = b.claim_due(at(0), 10).await.unwrap();
        let by_seq = |w: &Work| match w {
            Work::Decide(i) => i.seq,
            Work::Flush(u) => panic!("unexpected flush of {u}"),
        };
        claimed.sort_by_key(by_seq);
        again.sort_by_key(by_seq);
        assert_eq!(again, claimed, "{b}: the same items are claimable again, as they were");

        for w in &again {
            let Work::Decide(item) = w else { unreachable!() };
            record(&b, decided(item, at(1))).await;
        }
        // A digest flush claimed by a process that stopped comes back too.
        b.schedule_flush(&user("cy"), at(0)).await.unwrap();
        assert_eq!(b.claim_due(at(0), 10).await.unwrap(), vec![Work::Flush(user("cy"))], "{b}: the flush");
        b.release_claims().await.unwrap();
        assert_eq!(b.claim_due(at(0), 10).await.unwrap(), vec![Work::Flush(user("cy"))], "{b}: the flush again");
    }
}

#[tokio::test]
async fn next_due_is_the_earliest_pending_recipient_or_flush() {
    for b in backends().await {
        assert_eq!(b.next_due().await.unwrap(), None, "{b}: nothing pending");
        accept(&b, due(&["ada"], 50)).await;
        accept(&b, due(&["bob"], 40)).await;
        assert_eq!(b.next_due().await.unwrap(), Some(at(40)), "{b}: the earliest recipient");
        b.schedule_flush(&user("cy"), at(30)).await.unwrap();
        assert_eq!(b.next_due().await.unwrap(), Some(at(30)), "{b}: a digest flush counts");
        assert_eq!(b.claim_due(at(100), 10).await.unwrap().len(), 3, "{b}: all due by then");
        assert_eq!(b.next_due().await.unwrap(), None, "{b}: nothing pending once claimed");
    }
}
