//! Accepting notifications (idempotently, with their recipients), reading and cancelling them.

use std::sync::Arc;

use async_trait::async_trait;
use herald_domain::reason::{Decision, Reason};
use jiff::Timestamp;
use rusqlite::{Connection, params};
use uuid::Uuid;

use super::SqliteStore;
use super::accept;
use super::cache::{Cache, Touches};
use super::decide;
use super::rows::{all, exec, first, notification_row, user_at};
use super::writer::{Priority, Writer};
use super::writes::insert_audits;
use crate::NotificationStore;
use crate::StoreResult;
use crate::to_ms;
use crate::*;

/// Accepts `ns` in one durable write in the queue of `priority`, and keeps what it created in the
/// cache.
pub(super) async fn accept_batch(
    writer: &Writer,
    cache: &Cache,
    ns: Vec<NewNotification>,
    priority: Priority,
) -> StoreResult<Vec<AcceptOutcome>> {
    let accept = move |c: &Connection| accept::accept_batch(c, &ns);
    let (outcomes, created) = writer.write_at(priority, accept).await?;
    cache.keep_notifications(created);
    Ok(outcomes)
}

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn accept(&self, n: NewNotification) -> StoreResult<AcceptOutcome> {
        self.accepts.call(Priority::of(n.class.is_urgent()), n).await
    }

    async fn accept_many(&self, ns: Vec<NewNotification>) -> StoreResult<Vec<AcceptOutcome>> {
        // A batch is accepted in order, as if one by one (its keys and repeats are judged in that
        // order), so it is never split by class: it is urgent only when every notification in it
        // is, and a mixed batch cannot take the head of the writer for its marketing part.
        let urgent = !ns.is_empty() && ns.iter().all(|n| n.class.is_urgent());
        accept_batch(&self.writer, &self.cache, ns, Priority::of(urgent)).await
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
                // The update names the recipients it cancels, so their audit lines go through the one audit insert.
                let cancelled = all(
                    c,
                    "UPDATE recipients SET state = 'done', decision = 'cancelled', reason = 'cancelled', updated_at = ? \
                     WHERE notification_id = ? AND state IN ('pending', 'claimed', 'batched') \
                     RETURNING user_id",
                    args,
                    |r| {
                        Ok(AuditEntry {
                            user_id: user_at(r, "user_id")?,
                            notification_id: id,
                            channel: None,
                            decision: Decision::Cancelled,
                            reason: Some(Reason::Cancelled),
                            at: now,
                        })
                    },
                )?;
                insert_audits(c, &cancelled)?;
                exec(
                    c,
                    "UPDATE deliveries SET status = 'suppressed', error = 'cancelled', updated_at = ? \
                     WHERE notification_id = ? AND status IN ('queued', 'standby')",
                    args,
                )?;
                Ok(cancelled.len() as u64)
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
