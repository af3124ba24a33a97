//! `FeedbackStore`: providers' reports about addresses (blocks for hard bounces and STOP, lifted
//! by START or an operator; channels switched off on complaints; dead devices removed; the
//! delivery named marked), and the list of blocked addresses with a cursor.

use herald_domain::contact::{Email, Phone};
use herald_domain::device::DeviceSpec;
use herald_domain::reason::Reason;
use herald_domain::user::User;
use herald_domain::{Channel, DeliveryStatus};
use herald_store::{BlockKind, Feedback, FeedbackKind};
use uuid::Uuid;

use crate::backends;
use crate::fixtures::{at, begin, current, delivery, every_page, foreign_cursor, refuses_cursors, result, user};

fn report(channel: Channel, address: &str, kind: FeedbackKind) -> Feedback {
    Feedback { channel, address: address.into(), kind, delivery_id: None, now: at(10) }
}

#[tokio::test]
async fn a_hard_bounce_blocks_the_address_until_an_operator_lifts_it() {
    for b in backends().await {
        let ada = User { email: Some(Email::parse("email", "ada@example.com").unwrap()), ..User::bare(user("ada")) };
        b.put_user(&ada, at(0)).await.unwrap();
        let bounce = || report(Channel::Email, "ada@example.com", FeedbackKind::HardBounce);
        assert!(b.apply_feedback(bounce()).await.unwrap().address_blocked, "{b}: the address is blocked");
        // Providers report again; the address stays blocked once.
        assert!(b.apply_feedback(bounce()).await.unwrap().address_blocked, "{b}: still blocked");

        let blocks = b.address_blocks(None, None, 10).await.unwrap().items;
        let listed: Vec<_> =
            blocks.iter().map(|r| (r.channel, r.address.as_str(), r.kind.as_str(), r.created_at)).collect();
        assert_eq!(listed, vec![(Channel::Email, "ada@example.com", "hard_bounce", at(10))], "{b}: listed");
        let state = &b.user_states(&[user("ada")]).await.unwrap()[0];
        assert_eq!(state.blocked.get(&Channel::Email), Some(&Reason::AddressBlocked), "{b}: the engine sees it");

        assert!(!b.remove_address_block(Channel::Sms, "ada@example.com").await.unwrap(), "{b}: by channel");
        assert!(b.remove_address_block(Channel::Email, "ada@example.com").await.unwrap(), "{b}: lifted");
        assert!(b.address_blocks(None, None, 10).await.unwrap().items.is_empty(), "{b}: no longer listed");
        assert!(b.user_states(&[user("ada")]).await.unwrap()[0].blocked.is_empty(), "{b}: nor seen by the engine");
        assert!(!b.remove_address_block(Channel::Email, "ada@example.com").await.unwrap(), "{b}: nothing to lift");
    }
}

#[tokio::test]
async fn a_stop_is_lifted_by_a_start_but_a_hard_bounce_is_not() {
    for b in backends().await {
        let phone = Phone::parse("phone", "+15555550100").unwrap();
        b.put_user(&User { phone: Some(phone.clone()), ..User::bare(user("ada")) }, at(0)).await.unwrap();
        let stop = b.apply_feedback(report(Channel::Sms, phone.as_str(), FeedbackKind::Stop)).await.unwrap();
        assert!(stop.address_blocked, "{b}: STOP blocks the number");
        let state = &b.user_states(&[user("ada")]).await.unwrap()[0];
        assert_eq!(state.blocked.get(&Channel::Sms), Some(&Reason::SmsStop), "{b}: STOP blocks SMS");
        let start = b.apply_feedback(report(Channel::Sms, phone.as_str(), FeedbackKind::Start)).await.unwrap();
        assert!(start.address_unblocked, "{b}: START lifts it");
        assert!(b.address_blocks(None, None, 10).await.unwrap().items.is_empty(), "{b}: nothing blocked");

        b.apply_feedback(report(Channel::Sms, "+15555550101", FeedbackKind::HardBounce)).await.unwrap();
        let start = b.apply_feedback(report(Channel::Sms, "+15555550101", FeedbackKind::Start)).await.unwrap();
        assert!(!start.address_unblocked, "{b}: START does not lift a hard bounce");
        assert_eq!(b.address_blocks(None, None, 10).await.unwrap().items.len(), 1, "{b}: still blocked");
    }
}

#[tokio::test]
async fn address_blocks_page_by_channel_oldest_first() {
    for b in &backends().await {
        for (channel, address, kind) in [
            (Channel::Email, "a@example.com", FeedbackKind::HardBounce),
            (Channel::Sms, "+15555550100", FeedbackKind::Stop),
            (Channel::Email, "c@example.com", FeedbackKind::HardBounce),
        ] {
            b.apply_feedback(report(channel, address, kind)).await.unwrap();
        }
        let addresses =
            |page: &[herald_store::AddressBlockRecord]| page.iter().map(|r| r.address.clone()).collect::<Vec<_>>();
        let pages = every_page(b, 2, |c| async move { b.address_blocks(None, c.as_ref(), 2).await }).await;
        let [first, rest] = &pages[..] else { panic!("{b}: two pages, not {}", pages.len()) };
        assert_eq!(addresses(first), vec!["a@example.com", "+15555550100"], "{b}: oldest first");
        assert_eq!(addresses(rest), vec!["c@example.com"], "{b}: then after the cursor");
        for limit in [1, 3] {
            let pages = every_page(b, limit, |c| async move { b.address_blocks(None, c.as_ref(), limit).await }).await;
            let all = vec!["a@example.com", "+15555550100", "c@example.com"];
            assert_eq!(addresses(&pages.concat()), all, "{b}: paged by {limit}");
        }
        let sms = b.address_blocks(Some(Channel::Sms), None, 10).await.unwrap();
        assert_eq!(addresses(&sms.items), vec!["+15555550100"], "{b}: by channel");
        let kinds: Vec<_> = pages.concat().iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [BlockKind::HardBounce, BlockKind::Stop, BlockKind::HardBounce], "{b}: why each is blocked");
        refuses_cursors(b, foreign_cursor(b).await, |c| async move { b.address_blocks(None, Some(&c), 10).await })
            .await;
    }
}

#[tokio::test]
async fn a_complaint_switches_the_channel_off_for_the_address_owners() {
    for b in backends().await {
        let email = Email::parse("email", "ada@example.com").unwrap();
        b.put_user(&User { email: Some(email), ..User::bare(user("ada")) }, at(0)).await.unwrap();
        b.put_user(&User::bare(user("bob")), at(0)).await.unwrap();
        let outcome =
            b.apply_feedback(report(Channel::Email, "ada@example.com", FeedbackKind::Complaint)).await.unwrap();
        assert_eq!((outcome.users_affected, outcome.address_blocked), (1, false), "{b}: one user, no block");
        let prefs = b.get_preferences(&user("ada")).await.unwrap().unwrap_or_default();
        assert_eq!(prefs.channels.get(&Channel::Email), Some(&false), "{b}: email is off for ada");
        assert!(b.get_preferences(&user("bob")).await.unwrap().is_none(), "{b}: bob is untouched");
    }
}

#[tokio::test]
async fn an_invalid_token_removes_the_device() {
    for b in backends().await {
        let ada = user("ada");
        b.add_device(&ada, &DeviceSpec::Fcm { token: "dead-token".into() }, at(0)).await.unwrap();
        let live = b.add_device(&ada, &DeviceSpec::Fcm { token: "live-token".into() }, at(1)).await.unwrap();
        let outcome = b.apply_feedback(report(Channel::Push, "dead-token", FeedbackKind::InvalidToken)).await.unwrap();
        assert_eq!(outcome.devices_removed, 1, "{b}: one device removed");
        let left: Vec<Uuid> = b.list_devices(&ada).await.unwrap().iter().map(|d| d.id).collect();
        assert_eq!(left, vec![live.id], "{b}: the dead one is gone");
    }
}

#[tokio::test]
async fn a_report_about_a_delivery_marks_it_bounced() {
    for b in backends().await {
        let d = delivery(&b, "ada", Channel::Email, at(0)).await;
        begin(&b, d.id, at(1)).await;
        b.update_delivery(result(&d, DeliveryStatus::Sent, 1, at(2))).await.unwrap();
        let bounce =
            Feedback { delivery_id: Some(d.id), ..report(Channel::Email, "ada@example.com", FeedbackKind::HardBounce) };
        let outcome = b.apply_feedback(bounce).await.unwrap();
        assert!(outcome.delivery_updated, "{b}: the delivery named is updated");
        assert_eq!(current(&b, &d).await.status, DeliveryStatus::Bounced, "{b}: marked bounced");
        let timeline = b.timeline(&user("ada"), None, 1).await.unwrap().items;
        assert_eq!(
            (timeline[0].decision.as_str(), timeline[0].reason.map(Reason::as_str)),
            ("bounced", Some("hard_bounce")),
            "{b}: with an audit line"
        );
    }
}
