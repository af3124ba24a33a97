//! `WorkQueue`: claims come only when due, urgent (critical and transactional) before the rest and
//! each kind oldest due first, once each while their lease runs; a claim whose lease ran out is
//! taken over, and its old holder can then neither record nor release it; renewing keeps a claim;
//! a released claim returns at its retry time; `next_due` says when to look again.

use herald_domain::Class;
use herald_domain::reason::Reason;
use herald_store::{AcceptOutcome, FlushOutcome, Lease, NewNotification, Work};

use crate::backends;
use crate::fixtures::{
    LEASE, NODE, OTHER, accept, at, claim, claim_flush, decided, flushes, held, notification, record, user,
};

/// `OTHER`'s lease from `now`.
fn other(now: jiff::Timestamp) -> Lease {
    Lease::new(OTHER, now, LEASE)
}

fn due(users: &[&str], secs: i64) -> NewNotification {
    NewNotification { due_at: at(secs), ..notification(users, at(0)) }
}

fn notifications_of(work: &[Work]) -> Vec<uuid::Uuid> {
    work.iter()
        .map(|w| match w {
            Work::Decide(i) => i.notification_id,
            Work::Flush(f) => panic!("unexpected flush of {}", f.user_id),
        })
        .collect()
}

#[tokio::test]
async fn only_due_items_are_claimed_oldest_due_first() {
    for b in backends().await {
        let later = accept(&b, due(&["ada"], 20)).await;
        let sooner = accept(&b, due(&["bob"], 10)).await;
        let future = accept(&b, due(&["cy"], 30)).await;
        assert!(b.claim_due(at(9), held(at(9)), 10).await.unwrap().is_empty(), "{b}: nothing is due yet");
        let first = b.claim_due(at(25), held(at(25)), 1).await.unwrap();
        assert_eq!(notifications_of(&first), vec![sooner], "{b}: the oldest due comes first");
        let second = b.claim_due(at(25), held(at(25)), 10).await.unwrap();
        assert_eq!(notifications_of(&second), vec![later], "{b}: then the next; not the one due later");
        let third = b.claim_due(at(30), held(at(30)), 10).await.unwrap();
        assert_eq!(notifications_of(&third), vec![future], "{b}: due at its time exactly");
    }
}

#[tokio::test]
async fn urgent_recipients_are_claimed_ahead_of_others_due_before_them() {
    for b in backends().await {
        let backlog = accept(&b, due(&["ada", "bob", "cy"], 10)).await;
        let critical = accept(&b, NewNotification { class: Class::Critical, ..due(&["dee"], 20) }).await;
        let first = b.claim_due(at(25), held(at(25)), 1).await.unwrap();
        assert_eq!(notifications_of(&first), vec![critical], "{b}: the critical one first, though due later");
        assert!(matches!(&first[0], Work::Decide(i) if i.urgent), "{b}: and it says it is urgent");
        let rest = b.claim_due(at(25), held(at(25)), 10).await.unwrap();
        assert_eq!(notifications_of(&rest), vec![backlog; 3], "{b}: then the backlog, in due order");
    }
}

#[tokio::test]
async fn claims_honour_the_limit_and_are_not_handed_out_twice_while_leased() {
    for b in backends().await {
        accept(&b, notification(&["ada", "bob", "cy"], at(0))).await;
        let first = b.claim_due(at(0), held(at(0)), 2).await.unwrap();
        let second = b.claim_due(at(0), held(at(0)), 2).await.unwrap();
        assert_eq!((first.len(), second.len()), (2, 1), "{b}: at most the limit, the rest next");
        let mut users: Vec<_> = first.iter().chain(&second).map(|w| w.user().clone()).collect();
        users.sort();
        assert_eq!(users, vec![user("ada"), user("bob"), user("cy")], "{b}: each claimed once");
        assert!(first.iter().all(|w| w.lease().until == at(60)), "{b}: leased for the length asked");
        assert!(first.iter().all(|w| w.lease().token == NODE), "{b}: held by the node that claimed");
        assert!(b.claim_due(at(59), held(at(59)), 10).await.unwrap().is_empty(), "{b}: not claimed again while leased");
        assert_eq!(b.next_due().await.unwrap(), Some(at(60)), "{b}: due again when the lease runs out");
    }
}

#[tokio::test]
async fn a_recorded_decision_is_not_claimed_again() {
    for b in backends().await {
        let id = accept(&b, notification(&["ada"], at(0))).await;
        let item = claim(&b, id, "ada", at(0)).await;
        record(&b, decided(&item, at(1))).await;
        assert!(b.claim_due(at(1000), held(at(1000)), 10).await.unwrap().is_empty(), "{b}: decided for good");
        // A late release (a lane that failed after all) must not bring a decided item back.
        b.release(&Work::Decide(item), at(5)).await.unwrap();
        assert!(b.claim_due(at(1000), held(at(1000)), 10).await.unwrap().is_empty(), "{b}: still decided");
        assert_eq!(b.next_due().await.unwrap(), None, "{b}: nothing left to look at");
    }
}

#[tokio::test]
async fn concurrent_claimers_never_share_an_item() {
    for b in backends().await {
        accept(&b, notification(&["u1", "u2", "u3", "u4", "u5", "u6"], at(0))).await;
        let claims = futures::future::join_all((0..8).map(|_| b.claim_due(at(0), held(at(0)), 2))).await;
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
        b.release(&Work::Decide(item.clone()), at(100)).await.unwrap();
        assert!(b.claim_due(at(99), held(at(99)), 10).await.unwrap().is_empty(), "{b}: not before the retry time");
        assert_eq!(b.next_due().await.unwrap(), Some(at(100)), "{b}: due at the retry time");
        let again = claim(&b, id, "ada", at(100)).await;
        assert_eq!((again.seq, again.phase), (item.seq, item.phase), "{b}: the same item returns");
        assert_eq!(again.lease.until, at(160), "{b}: under a new lease");
    }
}

#[tokio::test]
async fn a_claim_whose_lease_ran_out_is_taken_over_and_its_old_holder_is_fenced_out() {
    for b in backends().await {
        let id = accept(&b, notification(&["ada"], at(0))).await;
        let stalled = claim(&b, id, "ada", at(0)).await;
        assert!(b.claim_due(at(59), other(at(59)), 10).await.unwrap().is_empty(), "{b}: not while the lease runs");
        let taken = b.claim_due(at(60), other(at(60)), 10).await.unwrap();
        let [Work::Decide(taker)] = &taken[..] else { panic!("{b}: one claim taken over, got {taken:?}") };
        assert_eq!(taker.seq, stalled.seq, "{b}: the same recipient, taken over once the lease ran out");
        assert_eq!(taker.lease.token, OTHER, "{b}: held by the node that took it");

        let late = b.record_outcomes(vec![decided(&stalled, at(61))]).await.unwrap();
        assert!(late[0].is_none(), "{b}: the old holder's decision is not recorded");
        b.release(&Work::Decide(stalled.clone()), at(62)).await.unwrap();
        assert!(b.claim_due(at(62), held(at(62)), 10).await.unwrap().is_empty(), "{b}: nor does its release free it");
        record(&b, decided(taker, at(63))).await;
        assert!(
            b.claim_due(at(1000), held(at(1000)), 10).await.unwrap().is_empty(),
            "{b}: the new holder's decision holds"
        );
    }
}

#[tokio::test]
async fn renewing_keeps_a_claim_and_a_lost_claim_cannot_be_renewed() {
    for b in backends().await {
        let id = accept(&b, notification(&["ada", "bob"], at(0))).await;
        let mine = b.claim_due(at(0), held(at(0)), 10).await.unwrap();
        let renewed = b.renew(mine.clone(), at(120)).await.unwrap();
        assert_eq!(renewed.len(), 2, "{b}: both still held");
        assert!(renewed.iter().all(|w| w.lease().until == at(120)), "{b}: until the new time");
        assert!(b.claim_due(at(100), held(at(100)), 10).await.unwrap().is_empty(), "{b}: not taken over while renewed");

        let taken = b.claim_due(at(120), other(at(120)), 10).await.unwrap();
        assert_eq!(notifications_of(&taken), vec![id; 2], "{b}: taken over once the renewed lease ran out");
        let kept = b.renew(mine, at(200)).await.unwrap();
        assert!(kept.is_empty(), "{b}: claims taken over are not the old holder's to renew: {kept:?}");
    }
}

#[tokio::test]
async fn a_flush_taken_over_after_its_lease_ran_out_fences_its_old_holder_out() {
    for b in backends().await {
        b.schedule_flush(&user("cy"), at(0)).await.unwrap();
        let stalled = claim_flush(&b, "cy", at(0)).await;
        assert!(b.claim_due(at(59), held(at(59)), 10).await.unwrap().is_empty(), "{b}: not claimed again while leased");
        let taken = b.claim_due(at(60), other(at(60)), 10).await.unwrap();
        let [Work::Flush(taker)] = &taken[..] else { panic!("{b}: the flush taken over, got {taken:?}") };
        let outcome = |lease| FlushOutcome {
            user_id: user("cy"),
            lease,
            digests: Vec::new(),
            settled: Vec::<(i64, Reason)>::new(),
            audit: Vec::new(),
            next_due: Some(at(500)),
            now: at(61),
        };
        assert!(!b.record_flush(outcome(stalled.lease)).await.unwrap(), "{b}: the old holder records nothing");
        assert_eq!(b.next_due().await.unwrap(), Some(at(120)), "{b}: its next time was not set; the new lease stands");
        assert!(b.record_flush(outcome(taker.lease)).await.unwrap(), "{b}: the new holder's flush counts");
        assert_eq!(b.next_due().await.unwrap(), Some(at(500)), "{b}: and sets the next time");
    }
}

#[tokio::test]
async fn a_released_flush_comes_back_at_its_retry_time() {
    for b in backends().await {
        b.schedule_flush(&user("cy"), at(0)).await.unwrap();
        let flush = claim_flush(&b, "cy", at(0)).await;
        b.release(&Work::Flush(flush), at(30)).await.unwrap();
        assert!(b.claim_due(at(29), held(at(29)), 10).await.unwrap().is_empty(), "{b}: not before the retry time");
        let again = b.claim_due(at(30), held(at(30)), 10).await.unwrap();
        assert_eq!(flushes(&again), vec![user("cy")], "{b}: the flush again");
    }
}

#[tokio::test]
async fn a_flush_asked_for_while_one_runs_is_kept() {
    for b in backends().await {
        b.schedule_flush(&user("cy"), at(0)).await.unwrap();
        let running = claim_flush(&b, "cy", at(0)).await;
        b.schedule_flush(&user("cy"), at(5)).await.unwrap();
        let done = FlushOutcome {
            user_id: user("cy"),
            lease: running.lease,
            digests: Vec::new(),
            settled: Vec::new(),
            audit: Vec::new(),
            next_due: None,
            now: at(3),
        };
        b.record_flush(done).await.unwrap();
        assert_eq!(b.next_due().await.unwrap(), Some(at(5)), "{b}: the flush asked for meanwhile still stands");
    }
}

#[tokio::test]
async fn next_due_is_the_earliest_pending_recipient_flush_or_lease_end() {
    for b in backends().await {
        assert_eq!(b.next_due().await.unwrap(), None, "{b}: nothing pending");
        accept(&b, due(&["ada"], 50)).await;
        accept(&b, due(&["bob"], 40)).await;
        assert_eq!(b.next_due().await.unwrap(), Some(at(40)), "{b}: the earliest recipient");
        b.schedule_flush(&user("cy"), at(30)).await.unwrap();
        assert_eq!(b.next_due().await.unwrap(), Some(at(30)), "{b}: a digest flush counts");
        assert_eq!(b.claim_due(at(100), held(at(100)), 10).await.unwrap().len(), 3, "{b}: all due by then");
        assert_eq!(b.next_due().await.unwrap(), Some(at(160)), "{b}: once claimed, when their lease runs out");
    }
}

#[tokio::test]
async fn recipients_due_at_once_are_claimed_with_the_accept_when_asked() {
    for b in backends().await {
        let n = NewNotification { claim: Some(held(at(0))), ..notification(&["ada", "bob"], at(0)) };
        let id = n.id;
        let AcceptOutcome::Created { claimed, .. } = b.accept(n).await.unwrap() else {
            panic!("{b}: a new notification is created")
        };
        let users: Vec<_> = claimed.iter().map(|i| (i.notification_id, i.user_id.clone(), i.lease)).collect();
        let lease = held(at(0));
        assert_eq!(users, vec![(id, user("ada"), lease), (id, user("bob"), lease)], "{b}: both, under the lease");
        assert!(claimed[0].seq < claimed[1].seq, "{b}: in order");
        assert!(b.claim_due(at(59), other(at(59)), 10).await.unwrap().is_empty(), "{b}: no one else's to claim");
        record(&b, decided(&claimed[0], at(1))).await;
        let taken = b.claim_due(at(60), other(at(60)), 10).await.unwrap();
        assert_eq!(notifications_of(&taken), vec![id], "{b}: the undecided one returns once the lease runs out");

        let later = NewNotification { claim: Some(held(at(0))), ..due(&["cy"], 30) };
        let AcceptOutcome::Created { claimed, .. } = b.accept(later).await.unwrap() else { panic!("{b}: created") };
        assert!(claimed.is_empty(), "{b}: recipients due later wait in the queue");
        assert_eq!(b.next_due().await.unwrap(), Some(at(30)), "{b}: until they are due");
    }
}
