//! The audit trail: each person's timeline, and counts over everything.

use async_trait::async_trait;
use herald_domain::reason::Reason;
use herald_domain::{Channel, Class, UserId};
use jiff::Timestamp;
use rusqlite::Connection;

use super::SqliteStore;
use super::paging::{List, fetch};
use super::rows::{all, code_at, col0, one, opt_code_at, parse_code, uuid_at};
use crate::AuditStore;
use crate::cursor::{Cursor, Page};
use crate::*;
use crate::{StoreError, StoreResult};
use crate::{from_ms, to_ms};

/// A count in column `col`.
fn count_at(r: &rusqlite::Row<'_>, col: usize) -> StoreResult<u64> {
    Ok(u64::try_from(r.get::<_, i64>(col)?).unwrap_or_default())
}

/// A channel or class code in column `col`; their parsers name the bad text themselves.
fn parsed_at<T: std::str::FromStr<Err = String>>(r: &rusqlite::Row<'_>, col: usize) -> StoreResult<T> {
    r.get::<_, String>(col)?.parse().map_err(StoreError::Corrupt)
}

fn stats(c: &Connection, since: i64) -> StoreResult<Stats> {
    let notifications = all(
        c,
        "SELECT class, COUNT(*) FROM notifications WHERE created_at >= ? GROUP BY class ORDER BY class",
        [since],
        |r| Ok((parsed_at::<Class>(r, 0)?, count_at(r, 1)?)),
    )?;
    // Inbox deliveries are recorded on their recipients.
    let deliveries = all(
        c,
        "SELECT channel, class, status, COUNT(*) FROM deliveries WHERE created_at >= ?1 \
         GROUP BY channel, class, status \
         UNION ALL SELECT 'in_app', n.class, 'delivered', COUNT(*) FROM recipients r \
         JOIN notifications n ON n.id = r.notification_id WHERE r.inbox_at >= ?1 GROUP BY n.class \
         ORDER BY 1, 2, 3",
        [since],
        |r| {
            Ok(DeliveryCount {
                channel: parsed_at::<Channel>(r, 0)?,
                class: r.get::<_, Option<String>>(1)?.map(|c| c.parse().map_err(StoreError::Corrupt)).transpose()?,
                status: parse_code(&r.get::<_, String>(2)?)?,
                count: count_at(r, 3)?,
            })
        },
    )?;
    let suppressed = all(
        c,
        "SELECT reason, COUNT(*) FROM audit WHERE decision = 'suppressed' AND at >= ? \
         GROUP BY reason ORDER BY reason",
        [since],
        |r| Ok((r.get::<_, Option<String>>(0)?.as_deref().map(parse_code::<Reason>).transpose()?, count_at(r, 1)?)),
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

    async fn timeline(&self, user: &UserId, cursor: Option<&Cursor>, limit: u32) -> StoreResult<Page<AuditRecord>> {
        let before = List::Timeline.seq(cursor, user.as_str())?;
        let user = user.as_str().to_owned();
        let args = (user.clone(), before.unwrap_or(i64::MAX), fetch(limit));
        let rows = self
            .reads
            .read(move |c| {
                all(
                    c,
                    "SELECT seq, at, notification_id, decision, reason, channel FROM audit WHERE user_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                    args,
                    |r| {
                        let record = AuditRecord {
                            at: from_ms(r.get("at")?),
                            notification_id: uuid_at(r, "notification_id")?,
                            decision: code_at(r, "decision")?,
                            reason: opt_code_at(r, "reason")?,
                            channel: r
                                .get::<_, Option<String>>("channel")?
                                .map(|c| c.parse().map_err(StoreError::Corrupt))
                                .transpose()?,
                        };
                        Ok((r.get::<_, i64>("seq")?, record))
                    },
                )
            })
            .await?;
        Ok(List::Timeline.page_by_seq(rows, limit, &user))
    }
}
