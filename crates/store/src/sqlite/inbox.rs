//! The in-app inbox and its read state.

use async_trait::async_trait;
use herald_domain::UserId;
use jiff::Timestamp;
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{INBOX_COLUMNS, inbox_row};
use crate::InboxStore;
use crate::StoreResult;
use crate::records::*;
use crate::to_ms;

#[async_trait]
impl InboxStore for SqliteStore {
    async fn list_inbox(&self, user: &UserId, q: InboxQuery) -> StoreResult<Vec<InboxItem>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INBOX_COLUMNS} FROM inbox WHERE user_id = ? AND seq < ? AND (? = 0 OR read_at IS NULL) ORDER BY seq DESC LIMIT ?"
        )))
        .bind(user.as_str())
        .bind(q.before.unwrap_or(i64::MAX))
        .bind(i64::from(q.unread_only))
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(inbox_row)
        .collect()
    }

    async fn inbox_after(&self, user: &UserId, after_seq: i64, limit: u32) -> StoreResult<Vec<InboxItem>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INBOX_COLUMNS} FROM inbox WHERE user_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        )))
        .bind(user.as_str())
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(inbox_row)
        .collect()
    }

    async fn unread_count(&self, user: &UserId) -> StoreResult<u64> {
        let n: Option<i64> = sqlx::query_scalar("SELECT unread FROM inbox_counts WHERE user_id = ?")
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    async fn mark_inbox(&self, user: &UserId, target: InboxTarget, read: bool, now: Timestamp) -> StoreResult<u64> {
        let user = user.clone();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let (all, ids) = match &target {
                        InboxTarget::All => (1i64, "[]".to_owned()),
                        InboxTarget::Ids(ids) => {
                            (0, serde_json::to_string(&ids.iter().map(Uuid::to_string).collect::<Vec<_>>())?)
                        }
                    };
                    let sql = if read {
                        "UPDATE inbox SET read_at = ?1 WHERE user_id = ?2 AND read_at IS NULL \
                         AND (?3 = 1 OR id IN (SELECT value FROM json_each(?4)))"
                    } else {
                        "UPDATE inbox SET read_at = NULL WHERE user_id = ?2 AND read_at IS NOT NULL AND ?1 IS NOT NULL \
                         AND (?3 = 1 OR id IN (SELECT value FROM json_each(?4)))"
                    };
                    let r = sqlx::query(sql)
                        .bind(to_ms(now))
                        .bind(user.as_str())
                        .bind(all)
                        .bind(ids)
                        .execute(&mut *c)
                        .await?;
                    let changed = r.rows_affected() as i64;
                    sqlx::query("UPDATE inbox_counts SET unread = MAX(0, unread + ?) WHERE user_id = ?")
                        .bind(if read { -changed } else { changed })
                        .bind(user.as_str())
                        .execute(&mut *c)
                        .await?;
                    Ok(r.rows_affected())
                })
            })
            .await
    }
}
