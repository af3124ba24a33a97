//! The audit trail: each person's timeline, and counts over everything.

use async_trait::async_trait;
use herald_domain::UserId;
use jiff::Timestamp;
use rusqlite::Connection;

use super::SqliteStore;
use super::rows::{all, col0, one};
use crate::AuditStore;
use crate::StoreResult;
use crate::records::*;
use crate::{from_ms, to_ms};

/// `(text, count)` pairs, the shape of most of the counts.
fn counted(r: &rusqlite::Row<'_>) -> StoreResult<(String, u64)> {
    Ok((r.get(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or_default()))
}

fn stats(c: &Connection, since: i64) -> StoreResult<Stats> {
    let notifications = all(
        c,
        "SELECT class, COUNT(*) FROM notifications WHERE created_at >= ? GROUP BY class ORDER BY class",
        [since],
        counted,
    )?;
    // Inbox deliveries are recorded on their recipients.
    let deliveries = all(
        c,
        "SELECT channel, COALESCE(class, 'unknown'), status, COUNT(*) FROM deliveries WHERE created_at >= ?1 \
         GROUP BY channel, class, status \
         UNION ALL SELECT 'in_app', n.class, 'delivered', COUNT(*) FROM recipients r \
         JOIN notifications n ON n.id = r.notification_id WHERE r.inbox_at >= ?1 GROUP BY n.class \
         ORDER BY 1, 2, 3",
        [since],
        |r| {
            Ok(DeliveryCount {
                channel: r.get(0)?,
                class: r.get(1)?,
                status: r.get(2)?,
                count: u64::try_from(r.get::<_, i64>(3)?).unwrap_or_default(),
            })
        },
    )?;
    let suppressed = all(
        c,
        "SELECT COALESCE(reason, 'unknown'), COUNT(*) FROM audit WHERE decision = 'suppressed' AND at >= ? \
         GROUP BY reason ORDER BY reason",
        [since],
        counted,
    )?;
    let dead: i64 =
        one(c, "SELECT COUNT(*) FROM deliveries WHERE dead_at IS NOT NULL AND created_at >= ?", [since], col0)?;
    Ok(Stats {
        notifications_by_class: notifications.into_iter().collect(),
        deliveries,
        suppressed_by_reason: suppressed.into_iter().collect(),
        dead_letters: u64::try_from(dead).unwrap_or_default(),
    })
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn stats(&self, since: Option<Timestamp>) -> StoreResult<Stats> {
        let since = since.map_or(i64::MIN, to_ms);
        self.reads.read(move |c| stats(c, since)).await
    }

    async fn timeline(&self, user: &UserId, before: Option<i64>, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let args = (user.as_str().to_owned(), before.unwrap_or(i64::MAX), i64::from(limit));
        self.reads
            .read(move |c| {
                all(
                    c,
                    "SELECT seq, at, notification_id, decision, reason, channel FROM audit WHERE user_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                    args,
                    |r| {
                        Ok(AuditRecord {
                            seq: r.get("seq")?,
                            at: from_ms(r.get("at")?),
                            notification_id: r.get("notification_id")?,
                            decision: r.get("decision")?,
                            reason: r.get("reason")?,
                            channel: r.get("channel")?,
                        })
                    },
                )
            })
            .await
    }
}
