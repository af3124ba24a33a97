//! Accepting notifications (idempotently, with their recipients), reading and cancelling them.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use uuid::Uuid;

use super::SqliteStore;
use super::accept;
use super::cache::Touches;
use super::decide;
use super::rows::notification_row;
use crate::NotificationStore;
use crate::StoreResult;
use crate::records::*;
use crate::to_ms;

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn accept(&self, n: NewNotification) -> StoreResult<AcceptOutcome> {
        self.accepts.call(n).await
    }

    async fn accept_many(&self, ns: Vec<NewNotification>) -> StoreResult<Vec<AcceptOutcome>> {
        let (outcomes, created) =
            self.writer.write(move |c| Box::pin(async move { accept::accept_batch(c, &ns).await })).await?;
        self.cache.keep_notifications(created);
        Ok(outcomes)
    }

    async fn get_notification(&self, id: Uuid) -> StoreResult<Option<NotificationRecord>> {
        sqlx::query("SELECT * FROM notifications WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(notification_row)
            .transpose()
    }

    async fn cancel_notification(&self, id: Uuid, now: Timestamp) -> StoreResult<u64> {
        let _touch = self.cache.write(Touches::Notification(id));
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let id = id.to_string();
                    let now = to_ms(now);
                    sqlx::query("UPDATE notifications SET cancelled_at = COALESCE(cancelled_at, ?) WHERE id = ?")
                        .bind(now)
                        .bind(&id)
                        .execute(&mut *c)
                        .await?;
                    sqlx::query(
                        "INSERT INTO audit (at, user_id, notification_id, channel, decision, reason) \
                         SELECT ?, user_id, notification_id, NULL, 'cancelled', 'cancelled' FROM recipients \
                         WHERE notification_id = ? AND state IN ('pending', 'claimed', 'batched')",
                    )
                    .bind(now)
                    .bind(&id)
                    .execute(&mut *c)
                    .await?;
                    let r = sqlx::query(
                        "UPDATE recipients SET state = 'done', decision = 'cancelled', reason = 'cancelled', updated_at = ? \
                         WHERE notification_id = ? AND state IN ('pending', 'claimed', 'batched')",
                    )
                    .bind(now)
                    .bind(&id)
                    .execute(&mut *c)
                    .await?;
                    sqlx::query(
                        "UPDATE deliveries SET status = 'suppressed', error = 'cancelled', updated_at = ? \
                         WHERE notification_id = ? AND status IN ('queued', 'standby')",
                    )
                    .bind(now)
                    .bind(&id)
                    .execute(&mut *c)
                    .await?;
                    Ok(r.rows_affected())
                })
            })
            .await
    }

    async fn notifications(&self, ids: &[Uuid]) -> StoreResult<Vec<Arc<NotificationRecord>>> {
        let snapshot = self.cache.snapshot();
        let cached = self.cache.notifications(ids);
        let missing: Vec<Uuid> = ids.iter().zip(&cached).filter(|(_, n)| n.is_none()).map(|(id, _)| *id).collect();
        let mut found: Vec<Arc<NotificationRecord>> = cached.into_iter().flatten().collect();
        if !missing.is_empty() {
            let read: Vec<Arc<NotificationRecord>> =
                decide::notifications(&self.pool, &missing).await?.into_iter().map(Arc::new).collect();
            if let Some(snapshot) = snapshot {
                self.cache.keep_read_notifications(snapshot, &read);
            }
            found.extend(read);
        }
        Ok(found)
    }
}
