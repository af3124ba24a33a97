//! The audit trail: each person's timeline, and counts over everything.

use async_trait::async_trait;
use herald_domain::UserId;
use jiff::Timestamp;
use sqlx::Row;

use super::SqliteStore;
use crate::AuditStore;
use crate::StoreResult;
use crate::records::*;
use crate::{from_ms, to_ms};

#[async_trait]
impl AuditStore for SqliteStore {
    async fn stats(&self, since: Option<Timestamp>) -> StoreResult<Stats> {
        let since = since.map_or(i64::MIN, to_ms);
        let count = |n: i64| u64::try_from(n).unwrap_or_default();
        let notifications: Vec<(String, i64)> = sqlx::query_as(
            "SELECT class, COUNT(*) FROM notifications WHERE created_at >= ? GROUP BY class ORDER BY class",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        // Inbox deliveries are recorded on their recipients.
        let deliveries: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT channel, COALESCE(class, 'unknown'), status, COUNT(*) FROM deliveries WHERE created_at >= ?1 \
             GROUP BY channel, class, status \
             UNION ALL SELECT 'in_app', n.class, 'delivered', COUNT(*) FROM recipients r \
             JOIN notifications n ON n.id = r.notification_id WHERE r.inbox_at >= ?1 GROUP BY n.class \
             ORDER BY 1, 2, 3",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let suppressed: Vec<(String, i64)> = sqlx::query_as(
            "SELECT COALESCE(reason, 'unknown'), COUNT(*) FROM audit WHERE decision = 'suppressed' AND at >= ? \
             GROUP BY reason ORDER BY reason",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let dead: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE dead_at IS NOT NULL AND created_at >= ?")
                .bind(since)
                .fetch_one(&self.pool)
                .await?;
        Ok(Stats {
            notifications_by_class: notifications.into_iter().map(|(c, n)| (c, count(n))).collect(),
            deliveries: deliveries
                .into_iter()
                .map(|(channel, class, status, n)| DeliveryCount { channel, class, status, count: count(n) })
                .collect(),
            suppressed_by_reason: suppressed.into_iter().map(|(r, n)| (r, count(n))).collect(),
            dead_letters: count(dead),
        })
    }

    async fn timeline(&self, user: &UserId, before: Option<i64>, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT seq, at, notification_id, decision, reason, channel FROM audit WHERE user_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(user.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    seq: r.try_get("seq")?,
                    at: from_ms(r.try_get("at")?),
                    notification_id: r.try_get("notification_id")?,
                    decision: r.try_get("decision")?,
                    reason: r.try_get("reason")?,
                    channel: r.try_get("channel")?,
                })
            })
            .collect()
    }
}
