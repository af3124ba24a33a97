//! Topic subscriptions.

use async_trait::async_trait;
use herald_domain::UserId;
use herald_domain::ids::TopicKey;
use jiff::Timestamp;

use super::SqliteStore;
use super::rows::parse_user;
use super::writes::ensure_user;
use crate::StoreResult;
use crate::TopicStore;
use crate::to_ms;

#[async_trait]
impl TopicStore for SqliteStore {
    async fn subscribe(&self, topic: &TopicKey, users: &[UserId], now: Timestamp) -> StoreResult<u64> {
        let topic = topic.to_string();
        let users = users.to_vec();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let mut added = 0;
                    for u in &users {
                        ensure_user(c, u, to_ms(now)).await?;
                        let r = sqlx::query(
                            "INSERT INTO topic_subscribers (topic, user_id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                        )
                        .bind(&topic)
                        .bind(u.as_str())
                        .bind(to_ms(now))
                        .execute(&mut *c)
                        .await?;
                        added += r.rows_affected();
                    }
                    Ok(added)
                })
            })
            .await
    }

    async fn unsubscribe(&self, topic: &TopicKey, users: &[UserId]) -> StoreResult<u64> {
        let topic = topic.to_string();
        let ids = serde_json::to_string(&users.iter().map(UserId::as_str).collect::<Vec<_>>())?;
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let r = sqlx::query(
                        "DELETE FROM topic_subscribers WHERE topic = ? AND user_id IN (SELECT value FROM json_each(?))",
                    )
                    .bind(&topic)
                    .bind(ids)
                    .execute(c)
                    .await?;
                    Ok(r.rows_affected())
                })
            })
            .await
    }

    async fn subscribers(&self, topic: &TopicKey, after: Option<&str>, limit: u32) -> StoreResult<Vec<UserId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT user_id FROM topic_subscribers WHERE topic = ? AND user_id > ? ORDER BY user_id LIMIT ?",
        )
        .bind(topic.as_str())
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        ids.iter().map(|s| parse_user(s)).collect()
    }
}
