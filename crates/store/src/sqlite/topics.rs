//! Topic subscriptions.

use async_trait::async_trait;
use herald_domain::UserId;
use herald_domain::ids::TopicKey;
use jiff::Timestamp;
use rusqlite::params;

use super::SqliteStore;
use super::paging::{List, fetch, page};
use super::rows::{all, col0, exec, parse_user};
use super::writes::ensure_user;
use crate::StoreResult;
use crate::TopicStore;
use crate::cursor::{Cursor, Page};
use crate::to_ms;

#[async_trait]
impl TopicStore for SqliteStore {
    async fn subscribe(&self, topic: &TopicKey, users: &[UserId], now: Timestamp) -> StoreResult<u64> {
        let topic = topic.to_string();
        let users = users.to_vec();
        self.writer
            .write(move |c| {
                let mut added = 0;
                for u in &users {
                    ensure_user(c, u, to_ms(now))?;
                    added += exec(
                        c,
                        "INSERT INTO topic_subscribers (topic, user_id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                        params![topic, u.as_str(), to_ms(now)],
                    )?;
                }
                Ok(added)
            })
            .await
    }

    async fn unsubscribe(&self, topic: &TopicKey, users: &[UserId]) -> StoreResult<u64> {
        let topic = topic.to_string();
        let ids = serde_json::to_string(&users.iter().map(UserId::as_str).collect::<Vec<_>>())?;
        self.writer
            .write(move |c| {
                exec(
                    c,
                    "DELETE FROM topic_subscribers WHERE topic = ? AND user_id IN (SELECT value FROM json_each(?))",
                    params![topic, ids],
                )
            })
            .await
    }

    async fn subscribers(&self, topic: &TopicKey, cursor: Option<&Cursor>, limit: u32) -> StoreResult<Page<UserId>> {
        let after = cursor.map(|c| List::Subscribers.position(c, topic.as_str())).transpose()?;
        let args = (topic.as_str().to_owned(), after.unwrap_or_default(), fetch(limit));
        let ids: Vec<String> = self
            .reads
            .read(move |c| {
                all(
                    c,
                    "SELECT user_id FROM topic_subscribers WHERE topic = ? AND user_id > ? ORDER BY user_id LIMIT ?",
                    args,
                    col0,
                )
            })
            .await?;
        let ids = ids.iter().map(|s| parse_user(s)).collect::<StoreResult<_>>()?;
        Ok(page(ids, limit, |u: &UserId| List::Subscribers.mint(topic.as_str(), u.as_str())))
    }
}
