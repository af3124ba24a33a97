//! `TopicStore`: subscribing (counting only new subscriptions, creating users), unsubscribing
//! (counting removals) and paging subscribers in id order.

use herald_domain::ids::TopicKey;

use crate::backends;
use crate::fixtures::{at, user};

#[tokio::test]
async fn subscriptions_count_changes_and_subscribers_page_in_id_order() {
    for b in backends().await {
        let news = TopicKey::parse("topic", "news").unwrap();
        let other = TopicKey::parse("topic", "other").unwrap();
        assert_eq!(b.subscribe(&news, &[user("cy"), user("ada")], at(0)).await.unwrap(), 2, "{b}: two new");
        let again = b.subscribe(&news, &[user("ada"), user("bob"), user("bob")], at(1)).await.unwrap();
        assert_eq!(again, 1, "{b}: only bob is new, once");
        b.subscribe(&other, &[user("dee")], at(2)).await.unwrap();
        assert!(b.get_user(&user("cy")).await.unwrap().is_some(), "{b}: subscribing creates users");

        let first = b.subscribers(&news, None, 2).await.unwrap();
        assert_eq!(first, vec![user("ada"), user("bob")], "{b}: id order, this topic only");
        let rest = b.subscribers(&news, first.last().map(|u| u.as_str()), 2).await.unwrap();
        assert_eq!(rest, vec![user("cy")], "{b}: after the cursor");

        assert_eq!(b.unsubscribe(&news, &[user("bob"), user("dee")]).await.unwrap(), 1, "{b}: only bob was subscribed");
        assert_eq!(b.subscribers(&news, None, 10).await.unwrap(), vec![user("ada"), user("cy")], "{b}: bob left");
        assert_eq!(b.subscribers(&other, None, 10).await.unwrap(), vec![user("dee")], "{b}: other topic untouched");
    }
}
