//! Dead letters: deliveries that failed for good, and their replay.

use async_trait::async_trait;
use herald_domain::Channel;
use herald_domain::reason::Reason;
use jiff::Timestamp;
use sqlx::Row;
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{DELIVERY_COLUMNS, delivery_row, parse_user};
use super::writes::insert_audit;
use crate::DeadLetterStore;
use crate::StoreResult;
use crate::records::*;
use crate::to_ms;

#[async_trait]
impl DeadLetterStore for SqliteStore {
    async fn dead_letters(
        &self,
        channel: Option<Channel>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<(i64, DeliveryRecord)>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT rowid, {DELIVERY_COLUMNS} FROM deliveries WHERE dead_at IS NOT NULL AND rowid < ? \
             AND (? IS NULL OR channel = ?) ORDER BY rowid DESC LIMIT ?"
        )))
        .bind(before.unwrap_or(i64::MAX))
        .bind(channel.map(Channel::as_str))
        .bind(channel.map(Channel::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("rowid")?, delivery_row(r)?)))
        .collect()
    }

    async fn replay_dead_letter(&self, id: Uuid, now: Timestamp) -> StoreResult<Option<DeliveryRecord>> {
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE deliveries SET status = 'queued', attempts = 0, error = NULL, next_attempt_at = NULL, \
                         dead_at = NULL, updated_at = ? WHERE id = ? AND dead_at IS NOT NULL RETURNING {DELIVERY_COLUMNS}"
                    )))
                    .bind(to_ms(now))
                    .bind(id.to_string())
                    .fetch_optional(&mut *c)
                    .await?;
                    let Some(d) = row.as_ref().map(delivery_row).transpose()? else { return Ok(None) };
                    let entry = AuditEntry {
                        user_id: parse_user(&d.user_id)?,
                        notification_id: d.notification_id,
                        channel: Some(d.channel),
                        decision: herald_domain::reason::Decision::Delivering,
                        reason: Some(Reason::Replayed),
                        at: now,
                    };
                    insert_audit(c, &entry).await?;
                    Ok(Some(d))
                })
            })
            .await
    }
}
