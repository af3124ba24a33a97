//! `HotState`: duplicate lookups by fingerprint within a window and before a recipient, the
//! interruptions a user had since a time, and the pending digest (batched recipients, the flush
//! timer that keeps its earliest time, and recording a flush).

use herald_domain::decision::Spend;
use herald_domain::reason::{Decision, Reason};
use herald_domain::{Channel, Class};
use herald_store::{DigestOutcome, FlushOutcome, NewNotification, Next, RecipientOutcome, WorkItem};

use crate::Backend;
use crate::backends;
use crate::fixtures::{
    accept, adopted_by_other, at, claim, claim_flush, decided, flushes, held, notification, queued, record, spec, user,
};

/// A notification with fingerprint `fp` for `user_id`, accepted and delivered at `secs`.
async fn fingerprinted(b: &Backend, user_id: &str, fp: &str, secs: i64) -> WorkItem {
    let id = accept(b, NewNotification { fingerprint: Some(fp.into()), ..notification(&[user_id], at(secs)) }).await;
    let item = claim(b, id, user_id, at(secs)).await;
    record(b, decided(&item, at(secs))).await;
    item
}

/// Batches a notification with digest group `group` for `user_id` at `secs`, asking for a flush at `flush`.
async fn batch(b: &Backend, user_id: &str, group: &str, secs: i64, flush: i64) -> WorkItem {
    let mut n = notification(&[user_id], at(secs));
    n.spec.group_key = Some(group.into());
    let id = accept(b, n).await;
    let item = claim(b, id, user_id, at(secs)).await;
    let batched = RecipientOutcome {
        next: Next::Batch,
        flush_at: Some(at(flush)),
        decision: Decision::Batched,
        reason: Some(Reason::FrequencyCap),
        ..decided(&item, at(secs))
    };
    record(b, batched).await;
    item
}

#[tokio::test]
async fn a_fingerprint_seen_within_the_window_and_before_the_recipient_is_a_duplicate() {
    for b in backends().await {
        let first = fingerprinted(&b, "ada", "fp", 0).await;
        let later = fingerprinted(&b, "ada", "fp", 60).await;
        let ask = |u: &str, fp: &str, seq| vec![(user(u), fp.to_owned(), seq)];

        let dup = b.seen_recently(&ask("ada", "fp", later.seq), at(-600)).await.unwrap();
        assert_eq!(dup, [later.seq].into(), "{b}: the earlier one makes the later a duplicate");
        let outside = b.seen_recently(&ask("ada", "fp", later.seq), at(30)).await.unwrap();
        assert!(outside.is_empty(), "{b}: the earlier one is outside the window");
        let before = b.seen_recently(&ask("ada", "fp", first.seq), at(-600)).await.unwrap();
        assert!(before.is_empty(), "{b}: only recipients before the seq count");
        let other_user = b.seen_recently(&ask("bob", "fp", later.seq + 1), at(-600)).await.unwrap();
        assert!(other_user.is_empty(), "{b}: another user did not get it");
        let other_content = b.seen_recently(&ask("ada", "other", later.seq + 1), at(-600)).await.unwrap();
        assert!(other_content.is_empty(), "{b}: other content is no duplicate");
        assert!(b.seen_recently(&[], at(-600)).await.unwrap().is_empty(), "{b}: nothing asked");
        let mut both = ask("ada", "fp", later.seq);
        both.extend(ask("ada", "other", later.seq + 1));
        let answered = b.seen_recently(&both, at(-600)).await.unwrap();
        assert_eq!(answered, [later.seq].into(), "{b}: asks are answered together, each on its own");
    }
}

#[tokio::test]
async fn interruptions_since_a_time_oldest_first_per_user() {
    for b in backends().await {
        for (who, secs, spend) in [("ada", 10, Spend::Critical), ("ada", 20, Spend::Cap), ("bob", 15, Spend::Uncapped)]
        {
            let id = accept(&b, notification(&[who], at(secs))).await;
            let item = claim(&b, id, who, at(secs)).await;
            record(&b, RecipientOutcome { spend: Some(spend), ..decided(&item, at(secs)) }).await;
        }
        let (ada, bob, cy) = (user("ada"), user("bob"), user("cy"));
        let all = b.interruptions(&[ada.clone(), bob.clone(), cy.clone()], at(0)).await.unwrap();
        let of = |u| all.get(u).into_iter().flatten().map(|i| (i.at, i.spend)).collect::<Vec<_>>();
        assert_eq!(of(&ada), vec![(at(10), Spend::Critical), (at(20), Spend::Cap)], "{b}: oldest first");
        assert_eq!(of(&bob), vec![(at(15), Spend::Uncapped)], "{b}: per user");
        assert!(of(&cy).is_empty(), "{b}: none for a user who had none");
        let recent = b.interruptions(std::slice::from_ref(&ada), at(15)).await.unwrap();
        let recent: Vec<_> = recent.get(&ada).into_iter().flatten().map(|i| i.at).collect();
        assert_eq!(recent, vec![at(20)], "{b}: only since the time asked");
    }
}

#[tokio::test]
async fn a_flush_is_due_at_the_earliest_time_asked() {
    for b in backends().await {
        let ada = user("ada");
        batch(&b, "ada", "likes", 0, 100).await;
        batch(&b, "ada", "likes", 1, 80).await;
        assert_eq!(b.next_due().await.unwrap(), Some(at(80)), "{b}: the earlier flush time stands");
        b.schedule_flush(&ada, at(90)).await.unwrap();
        assert_eq!(b.next_due().await.unwrap(), Some(at(80)), "{b}: a later time does not postpone it");
        b.schedule_flush(&ada, at(70)).await.unwrap();
        assert!(b.claim_due(at(69), held(at(69)), 10).await.unwrap().is_empty(), "{b}: not before it is due");
        claim_flush(&b, "ada", at(70)).await;
    }
}

#[tokio::test]
async fn batched_recipients_wait_in_the_digest_until_a_flush_merges_them() {
    for b in backends().await {
        let ada = user("ada");
        let one = batch(&b, "ada", "likes", 0, 100).await;
        let two = batch(&b, "ada", "likes", 1, 100).await;
        let other = batch(&b, "bob", "likes", 2, 100).await;
        let batched = b.batched(&ada).await.unwrap();
        let listed: Vec<_> = batched.iter().map(|r| (r.seq, r.notification_id, r.group_key.as_str())).collect();
        assert_eq!(
            listed,
            vec![(one.seq, one.notification_id, "likes"), (two.seq, two.notification_id, "likes")],
            "{b}: the user's pending digest, oldest first"
        );
        let claimed = b.claim_due(at(100), held(at(100)), 10).await.unwrap();
        assert_eq!(flushes(&claimed).len(), 2, "{b}: both users' flushes are due");
        let lease = claimed.iter().find(|w| w.user() == &ada).expect("ada's flush").lease();

        let digest = NewNotification { class: Class::Social, spec: spec("likes"), ..notification(&["ada"], at(100)) };
        let digest_item =
            WorkItem { seq: 0, phase: 1, notification_id: digest.id, user_id: ada.clone(), urgent: false, lease };
        let flush = FlushOutcome {
            user_id: ada.clone(),
            lease,
            digests: vec![DigestOutcome {
                merged: vec![one.seq, two.seq],
                deliveries: vec![queued(&digest_item, Channel::Email)],
                notification: digest.clone(),
            }],
            settled: Vec::new(),
            audit: Vec::new(),
            next_due: None,
            now: at(100),
        };
        assert!(b.record_flush(flush).await.unwrap(), "{b}: recorded under its lease");

        assert!(b.batched(&ada).await.unwrap().is_empty(), "{b}: merged items leave the digest");
        assert_eq!(b.batched(&user("bob")).await.unwrap().len(), 1, "{b}: another user's digest is untouched");
        assert!(b.get_notification(digest.id).await.unwrap().is_some(), "{b}: the digest is a notification");
        assert!(adopted_by_other(&b, at(159)).await.is_empty(), "{b}: its delivery is held under the flush's lease");
        let open = adopted_by_other(&b, at(160)).await;
        assert!(open.iter().any(|d| d.notification_id == digest.id), "{b}: its delivery is queued");
        let spent = b.interruptions(std::slice::from_ref(&ada), at(0)).await.unwrap();
        let spends: Vec<_> = spent.get(&ada).into_iter().flatten().map(|i| (i.at, i.spend)).collect();
        assert_eq!(spends, vec![(at(100), Spend::Cap)], "{b}: a digest interrupts on the cap");
        // Once bob's lease runs out his flush comes back; ada's, recorded with nothing next, does not.
        let left = b.claim_due(at(1000), held(at(1000)), 10).await.unwrap();
        assert_eq!(flushes(&left), vec![other.user_id], "{b}: a flush with nothing next is not due again");
    }
}

#[tokio::test]
async fn a_flush_can_settle_items_and_come_back_later() {
    for b in backends().await {
        let ada = user("ada");
        let one = batch(&b, "ada", "likes", 0, 100).await;
        let two = batch(&b, "ada", "follows", 1, 100).await;
        let claimed = claim_flush(&b, "ada", at(100)).await;
        let flush = FlushOutcome {
            user_id: ada.clone(),
            lease: claimed.lease,
            digests: Vec::new(),
            settled: vec![(one.seq, Reason::DrainedToInbox)],
            audit: Vec::new(),
            next_due: Some(at(200)),
            now: at(100),
        };
        assert!(b.record_flush(flush).await.unwrap(), "{b}: recorded under its lease");
        let left: Vec<i64> = b.batched(&ada).await.unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(left, vec![two.seq], "{b}: the settled item leaves, the other waits");
        assert!(b.claim_due(at(199), held(at(199)), 10).await.unwrap().is_empty(), "{b}: not due before its next time");
        claim_flush(&b, "ada", at(200)).await;
    }
}
