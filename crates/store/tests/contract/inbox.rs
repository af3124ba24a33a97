//! `InboxStore`: the inbox newest first with a cursor and an unread filter, resuming a stream
//! oldest first, the unread count, and marking items read or unread (by id or all, only the
//! owner's).

use herald_store::{InboxItem, InboxQuery, InboxTarget};
use uuid::Uuid;

use crate::backends;
use crate::fixtures::{at, every_page, foreign_cursor, inbox, refuses_cursors, user};

fn ids(items: &[InboxItem]) -> Vec<Uuid> {
    items.iter().map(|i| i.id).collect()
}

#[tokio::test]
async fn the_inbox_lists_newest_first_with_a_cursor_and_an_unread_filter() {
    for b in &backends().await {
        let ada = &user("ada");
        let one = inbox(b, "ada", "one", at(0)).await;
        let two = inbox(b, "ada", "two", at(1)).await;
        let three = inbox(b, "ada", "three", at(2)).await;
        inbox(b, "bob", "other", at(3)).await;

        let list = |limit, unread_only| {
            move |cursor| async move { b.list_inbox(ada, InboxQuery { limit, cursor, unread_only }).await }
        };
        let pages = every_page(b, 2, list(2, false)).await;
        let pages: Vec<_> = pages.iter().map(|p| ids(p)).collect();
        assert_eq!(pages, [vec![three.id, two.id], vec![one.id]], "{b}: newest first, only ada's, then older");
        for limit in [1, 3] {
            let pages = every_page(b, limit, list(limit, false)).await;
            assert_eq!(ids(&pages.concat()), [three.id, two.id, one.id], "{b}: paged by {limit}");
        }

        b.mark_inbox(ada, InboxTarget::Ids(vec![two.id]), true, at(10)).await.unwrap();
        let unread = every_page(b, 1, list(1, true)).await;
        assert_eq!(ids(&unread.concat()), vec![three.id, one.id], "{b}: only unread, paged");
        let all = b.list_inbox(ada, InboxQuery { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(all.items[1].read_at, Some(at(10)), "{b}: read when marked");

        let bobs = b.list_inbox(&user("bob"), InboxQuery { limit: 1, ..Default::default() }).await.unwrap();
        assert!(bobs.next.is_none(), "{b}: bob's one item is his last page");
        let adas = b.list_inbox(ada, InboxQuery { limit: 1, ..Default::default() }).await.unwrap().next;
        let bob = &user("bob");
        let list_bobs =
            |cursor| async move { b.list_inbox(bob, InboxQuery { limit: 10, cursor, ..Default::default() }).await };
        refuses_cursors(b, adas.expect("a second page"), |c| list_bobs(Some(c))).await;
        refuses_cursors(b, foreign_cursor(b).await, |c| list_bobs(Some(c))).await;
    }
}

#[tokio::test]
async fn the_stream_resumes_oldest_first_after_a_seq() {
    for b in backends().await {
        let ada = user("ada");
        let one = inbox(&b, "ada", "one", at(0)).await;
        let two = inbox(&b, "ada", "two", at(1)).await;
        let three = inbox(&b, "ada", "three", at(2)).await;
        inbox(&b, "bob", "other", at(3)).await;
        assert_eq!(ids(&b.inbox_after(&ada, one.seq, 10).await.unwrap()), vec![two.id, three.id], "{b}: after one");
        assert_eq!(ids(&b.inbox_after(&ada, 0, 2).await.unwrap()), vec![one.id, two.id], "{b}: limited");
        assert!(b.inbox_after(&ada, three.seq, 10).await.unwrap().is_empty(), "{b}: nothing newer");
    }
}

#[tokio::test]
async fn items_are_marked_read_and_unread_by_id_or_all_for_their_owner_only() {
    for b in backends().await {
        let (ada, bob) = (user("ada"), user("bob"));
        let one = inbox(&b, "ada", "one", at(0)).await;
        let two = inbox(&b, "ada", "two", at(1)).await;
        inbox(&b, "ada", "three", at(2)).await;
        let bobs = inbox(&b, "bob", "other", at(3)).await;
        assert_eq!(b.unread_count(&ada).await.unwrap(), 3, "{b}: all unread");

        let marked = b.mark_inbox(&ada, InboxTarget::Ids(vec![one.id, bobs.id]), true, at(10)).await.unwrap();
        assert_eq!(marked, 1, "{b}: only ada's own item changes");
        assert_eq!(b.unread_count(&bob).await.unwrap(), 1, "{b}: bob's item stays unread");
        assert_eq!(b.unread_count(&ada).await.unwrap(), 2, "{b}: one read");
        let again = b.mark_inbox(&ada, InboxTarget::Ids(vec![one.id]), true, at(11)).await.unwrap();
        assert_eq!(again, 0, "{b}: an item already read does not change");

        assert_eq!(b.mark_inbox(&ada, InboxTarget::All, true, at(12)).await.unwrap(), 2, "{b}: the rest read");
        assert_eq!(b.unread_count(&ada).await.unwrap(), 0, "{b}: nothing unread");
        let unread = b.mark_inbox(&ada, InboxTarget::Ids(vec![two.id]), false, at(13)).await.unwrap();
        assert_eq!((unread, b.unread_count(&ada).await.unwrap()), (1, 1), "{b}: marked unread again");
        assert_eq!(b.mark_inbox(&ada, InboxTarget::All, false, at(14)).await.unwrap(), 2, "{b}: all unread");
        assert_eq!(b.unread_count(&ada).await.unwrap(), 3, "{b}: counted back");
        assert_eq!(b.unread_count(&user("nobody")).await.unwrap(), 0, "{b}: an unknown user has nothing");
    }
}
