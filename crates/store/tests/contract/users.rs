//! `UserStore`: profiles (put replaces, erase leaves a tombstone and removes personal data),
//! devices, preferences, the per-user state the engine reads at once, and an erasure winning over
//! a decision in flight.

use herald_domain::Channel;
use herald_domain::contact::Email;
use herald_domain::device::DeviceSpec;
use herald_domain::ids::TopicKey;
use herald_domain::preferences::StoredPreferences;
use herald_domain::reason::Reason;
use herald_domain::user::User;
use herald_store::{Feedback, FeedbackKind, InboxQuery, RecipientOutcome};
use uuid::Uuid;

use crate::backends;
use crate::fixtures::{accept, at, claim, decided, inbox, inbox_item, notification, record, user};

fn profile(id: &str, email: &str, name: &str) -> User {
    User {
        email: Some(Email::parse("email", email).expect("a valid email")),
        name: Some(name.into()),
        ..User::bare(user(id))
    }
}

fn fcm(token: &str) -> DeviceSpec {
    DeviceSpec::Fcm { token: token.into() }
}

fn email_off() -> StoredPreferences {
    StoredPreferences { channels: [(Channel::Email, false)].into(), ..Default::default() }
}

#[tokio::test]
async fn a_user_put_reads_back() {
    for b in backends().await {
        assert!(b.get_user(&user("ada")).await.unwrap().is_none(), "{b}: no such user yet");
        let ada = profile("ada", "ada@example.com", "Ada");
        let put = b.put_user(&ada, at(10)).await.unwrap();
        assert_eq!((&put.user, put.created_at, put.updated_at, put.erased_at), (&ada, at(10), at(10), None), "{b}");
        let got = b.get_user(&user("ada")).await.unwrap().expect("the user");
        assert_eq!((got.user, got.created_at, got.updated_at, got.erased_at), (ada, at(10), at(10), None), "{b}");
    }
}

#[tokio::test]
async fn putting_a_user_again_replaces_the_profile_and_keeps_the_creation_time() {
    for b in backends().await {
        b.put_user(&profile("ada", "ada@example.com", "Ada"), at(10)).await.unwrap();
        // The second profile has no name: a put replaces the whole profile, it does not merge.
        let second = User { name: None, ..profile("ada", "ada@example.org", "unused") };
        let put = b.put_user(&second, at(20)).await.unwrap();
        assert_eq!((put.created_at, put.updated_at), (at(10), at(20)), "{b}: first seen stays, last changed moves");
        let got = b.get_user(&user("ada")).await.unwrap().expect("the user");
        assert_eq!(got.user, second, "{b}: the profile is the last one put");
    }
}

#[tokio::test]
async fn erasing_keeps_a_tombstone_and_removes_personal_data() {
    for b in backends().await {
        let ada = user("ada");
        b.put_user(&profile("ada", "ada@example.com", "Ada"), at(0)).await.unwrap();
        b.add_device(&ada, &fcm("token-1"), at(1)).await.unwrap();
        b.put_preferences(&ada, &email_off(), at(2)).await.unwrap();
        inbox(&b, "ada", "Welcome", at(3)).await;
        let topic = TopicKey::parse("topic", "news").unwrap();
        b.subscribe(&topic, std::slice::from_ref(&ada), at(4)).await.unwrap();

        assert!(b.erase_user(&ada, at(10)).await.unwrap(), "{b}: an existing user is erased");
        let tomb = b.get_user(&ada).await.unwrap().expect("a tombstone stays");
        assert_eq!((tomb.user, tomb.erased_at), (User::bare(ada.clone()), Some(at(10))), "{b}: only the id is left");
        assert!(b.list_devices(&ada).await.unwrap().is_empty(), "{b}: devices removed");
        assert!(b.get_preferences(&ada).await.unwrap().is_none(), "{b}: preferences removed");
        let items = b.list_inbox(&ada, InboxQuery { limit: 10, ..Default::default() }).await.unwrap().items;
        assert!(items.is_empty(), "{b}: inbox removed");
        assert_eq!(b.unread_count(&ada).await.unwrap(), 0, "{b}: nothing unread");
        assert!(b.subscribers(&topic, None, 10).await.unwrap().items.is_empty(), "{b}: subscriptions removed");

        assert!(!b.erase_user(&user("nobody"), at(11)).await.unwrap(), "{b}: an unknown user is not erased");
        let back = b.put_user(&profile("ada", "ada@example.com", "Ada"), at(20)).await.unwrap();
        assert_eq!(back.erased_at, None, "{b}: a put after an erasure clears it");
    }
}

#[tokio::test]
async fn devices_are_added_listed_oldest_first_and_deleted_by_their_owner_only() {
    for b in backends().await {
        let (ada, bob) = (user("ada"), user("bob"));
        let first = b.add_device(&ada, &fcm("token-1"), at(1)).await.unwrap();
        let second = b.add_device(&ada, &fcm("token-2"), at(2)).await.unwrap();
        assert_eq!((first.user_id.clone(), first.spec.clone(), first.created_at), (ada.clone(), fcm("token-1"), at(1)));
        assert!(b.get_user(&ada).await.unwrap().is_some(), "{b}: registering a device creates the user");

        let ids: Vec<Uuid> = b.list_devices(&ada).await.unwrap().iter().map(|d| d.id).collect();
        assert_eq!(ids, vec![first.id, second.id], "{b}: oldest first");
        assert!(!b.delete_device(&bob, first.id).await.unwrap(), "{b}: another user's device is not deleted");
        assert!(!b.delete_device(&ada, Uuid::now_v7()).await.unwrap(), "{b}: an unknown device is not deleted");
        assert!(b.delete_device(&ada, first.id).await.unwrap(), "{b}: the owner deletes it");
        let ids: Vec<Uuid> = b.list_devices(&ada).await.unwrap().iter().map(|d| d.id).collect();
        assert_eq!(ids, vec![second.id], "{b}: the other device stays");
    }
}

#[tokio::test]
async fn preferences_are_none_until_put_then_replaced() {
    for b in backends().await {
        let ada = user("ada");
        assert!(b.get_preferences(&ada).await.unwrap().is_none(), "{b}: nothing stored yet");
        b.put_preferences(&ada, &email_off(), at(1)).await.unwrap();
        assert!(b.get_user(&ada).await.unwrap().is_some(), "{b}: storing preferences creates the user");
        assert_eq!(b.get_preferences(&ada).await.unwrap(), Some(email_off()), "{b}: read back as put");
        let sms_off = StoredPreferences { channels: [(Channel::Sms, false)].into(), ..Default::default() };
        b.put_preferences(&ada, &sms_off, at(2)).await.unwrap();
        assert_eq!(b.get_preferences(&ada).await.unwrap(), Some(sms_off), "{b}: a put replaces");
    }
}

#[tokio::test]
async fn user_states_answer_one_per_id_in_order_with_everything_the_engine_reads() {
    for b in backends().await {
        let (ada, bob, nobody) = (user("ada"), user("bob"), user("nobody"));
        b.put_user(&profile("ada", "ada@example.com", "Ada"), at(0)).await.unwrap();
        b.put_preferences(&ada, &email_off(), at(1)).await.unwrap();
        let device = b.add_device(&ada, &fcm("token-1"), at(2)).await.unwrap();
        b.put_user(&profile("bob", "bob@example.com", "Bob"), at(3)).await.unwrap();
        let bounce = Feedback {
            channel: Channel::Email,
            address: "bob@example.com".into(),
            kind: FeedbackKind::HardBounce,
            delivery_id: None,
            now: at(4),
        };
        b.apply_feedback(bounce).await.unwrap();

        let states = b.user_states(&[bob.clone(), nobody.clone(), ada.clone()]).await.unwrap();
        let ids: Vec<_> = states.iter().map(|s| s.id.clone()).collect();
        assert_eq!(ids, vec![bob, nobody, ada], "{b}: one state per id, in the order asked");
        let [bob_state, nobody_state, ada_state] = &states[..] else { unreachable!() };
        assert!(nobody_state.user.is_none() && nobody_state.devices.is_empty(), "{b}: an unknown user is empty");
        assert_eq!(ada_state.user.as_ref().map(|u| u.user.name.clone()), Some(Some("Ada".into())), "{b}: profile");
        assert_eq!(ada_state.preferences, Some(email_off()), "{b}: preferences");
        assert_eq!(ada_state.devices.iter().map(|d| d.id).collect::<Vec<_>>(), vec![device.id], "{b}: devices");
        assert!(ada_state.blocked.is_empty(), "{b}: nothing blocked for ada");
        assert_eq!(
            bob_state.blocked.get(&Channel::Email),
            Some(&Reason::AddressBlocked),
            "{b}: a hard-bounced email address is blocked"
        );
    }
}

#[tokio::test]
async fn an_erasure_during_a_decision_wins_over_its_inbox_item() {
    for b in backends().await {
        let ada = user("ada");
        let id = accept(&b, notification(&["ada"], at(0))).await;
        let item = claim(&b, id, "ada", at(0)).await;
        b.erase_user(&ada, at(1)).await.unwrap();
        // The decision was made from data read before the erasure; none of it may come back.
        let recorded = record(&b, RecipientOutcome { inbox: Some(inbox_item("Hi")), ..decided(&item, at(2)) }).await;
        assert!(recorded.inbox.is_none(), "{b}: no inbox item for an erased user");
        let items = b.list_inbox(&ada, InboxQuery { limit: 10, ..Default::default() }).await.unwrap().items;
        assert!(items.is_empty() && b.unread_count(&ada).await.unwrap() == 0, "{b}: the inbox stays empty");
    }
}
