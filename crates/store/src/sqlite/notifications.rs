//! Accepting notifications (idempotently, with their recipients), reading and cancelling them.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::params;
use uuid::Uuid;

use super::SqliteStore;
use super::accept;
use super::cache::Touches;
use super::decide;
use super::rows::{exec, first, notification_row};
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
        let (outcomes, created) = self.writer.write(move |c| accept::accept_batch(c, &ns)).await?;
        self.cache.keep_notifications(created);
        Ok(outcomes)
    }

    async fn get_notification(&self, id: Uuid) -> StoreResult<Option<NotificationRecord>> {
        self.reads
            .read(move |c| first(c, "SELECT * FROM notifications WHERE id = ?", [id.to_string()], notification_row))
            .await
    }

    async fn cancel_notification(&self, id: Uuid, now: Timestamp) -> StoreResult<u64> {
        let _touch = self.cache.write(Touches::Notification(id));
        self.writer
            .write(move |c| {
                let args = params![to_ms(now), id.to_string()];
                exec(c, "UPDATE notifications SET cancelled_at = COALESCE(cancelled_at, ?) WHERE id = ?", args)?;
                exec(
                    c,
                    "INSERT INTO audit (at, user_id, notification_id, channel, decision, reason) \
                     SELECT ?, user_id, notification_id, NULL, 'cancelled', 'cancelled' FROM recipients \
                     WHERE notification_id = ? AND state IN ('pending', 'claimed', 'batched')",
                    args,
                )?;
                let cancelled = exec(
                    c,
                    "UPDATE recipients SET state = 'done', decision = 'cancelled', reason = 'cancelled', updated_at = ? \
                     WHERE notification_id = ? AND state IN ('pending', 'claimed', 'batched')",
                    args,
                )?;
                exec(
                    c,
                    "UPDATE deliveries SET status = 'suppressed', error = 'cancelled', updated_at = ? \
                     WHERE notification_id = ? AND status IN ('queued', 'standby')",
                    args,
                )?;
                Ok(cancelled)
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
                self.reads.read(move |c| decide::notifications(c, &missing)).await?.into_iter().map(Arc::new).collect();
            if let Some(snapshot) = snapshot {
                self.cache.keep_read_notifications(snapshot, &read);
            }
            found.extend(read);
        }
        Ok(found)
    }
}
