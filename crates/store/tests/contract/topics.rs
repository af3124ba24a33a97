//! `TopicStore`: subscribing (counting only new subscriptions, creating users), unsubscribing
//! (counting removals) and paging subscribers in id order.

use herald_domain::ids::TopicKey;

use crate::backends;
use crate::fixtures::{at, every_page, foreign_cursor, refuses_cursors, user};

#[tokio::test]
async fn subscriptions_count_changes_and_subscribers_page_in_id_order() {
    for b in &backends().await {
        let news = TopicKey::parse("topic", "news").unwrap();
        let other = TopicKey::parse("topic", "other").unwrap();
        assert_eq!(b.subscribe(&news, &[user("cy"), user("ada")], at(0)).await.unwrap(), 2, "{b}: two new");
        let again = b.subscribe(&news, &[user("ada"), user("bob"), user("bob")], at(1)).await.unwrap();
        assert_eq!(again, 1, "{b}: only bob is new, once");
        b.subscribe(&other, &[user("dee"), user("eve")], at(2)).await.unwrap();
        assert!(b.get_user(&user("cy")).await.unwrap().is_some(), "{b}: subscribing creates users");

        let news = &news;
        let pages = every_page(b, 2, |c| async move { b.subscribers(news, c.as_ref(), 2).await }).await;
        assert_eq!(pages, vec![vec![user("ada"), user("bob")], vec![user("cy")]], "{b}: id order, this topic only");
        for limit in [1, 3] {
            let pages = every_page(b, limit, |c| async move { b.subscribers(news, c.as_ref(), limit).await }).await;
            assert_eq!(pages.concat(), vec![user("ada"), user("bob"), user("cy")], "{b}: paged by {limit}");
        }
        let others = b.subscribers(&other, None, 1).await.unwrap().next.expect("a cursor of another topic");
        refuses_cursors(b, others, |c| async move { b.subscribers(news, Some(&c), 10).await }).await;
        refuses_cursors(b, foreign_cursor(b).await, |c| async move { b.subscribers(news, Some(&c), 10).await }).await;

        assert_eq!(b.unsubscribe(news, &[user("bob"), user("dee")]).await.unwrap(), 1, "{b}: only bob was subscribed");
        assert_eq!(b.subscribers(news, None, 10).await.unwrap().items, vec![user("ada"), user("cy")], "{b}: bob left");
        let others = b.subscribers(&other, None, 10).await.unwrap().items;
        assert_eq!(others, vec![user("dee"), user("eve")], "{b}: other topic untouched");
    }
}
