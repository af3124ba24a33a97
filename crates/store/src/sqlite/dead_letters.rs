//! Dead letters: deliveries that failed for good, and their replay.

use async_trait::async_trait;
use herald_domain::Channel;
use herald_domain::reason::Reason;
use jiff::Timestamp;
use rusqlite::params;
use uuid::Uuid;

use super::SqliteStore;
use super::paging::{List, fetch};
use super::rows::{DELIVERY_COLUMNS, all, delivery_row, first, parse_user};
use super::writes::insert_audits;
use crate::DeadLetterStore;
use crate::StoreResult;
use crate::cursor::{Cursor, Page};
use crate::queue::Lease;
use crate::to_ms;
use crate::*;

#[async_trait]
impl DeadLetterStore for SqliteStore {
    async fn dead_letters(
        &self,
        channel: Option<Channel>,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<Page<DeliveryRecord>> {
        let before = List::DeadLetters.seq(cursor, "")?;
        let sql = format!(
            "SELECT rowid, {DELIVERY_COLUMNS} FROM deliveries WHERE dead_at IS NOT NULL AND rowid < ? \
             AND (? IS NULL OR channel = ?) ORDER BY rowid DESC LIMIT ?"
        );
        let rows = self
            .reads
            .read(move |c| {
                let channel = channel.map(Channel::as_str);
                all(c, &sql, params![before.unwrap_or(i64::MAX), channel, channel, fetch(limit)], |r| {
                    Ok((r.get("rowid")?, delivery_row(r)?))
                })
            })
            .await?;
        Ok(List::DeadLetters.page_by_seq(rows, limit, ""))
    }

    async fn replay_dead_letter(&self, id: Uuid, lease: Lease, now: Timestamp) -> StoreResult<Option<DeliveryRecord>> {
        self.writer
            .write(move |c| {
                let sql = format!(
                    "UPDATE deliveries SET status = 'queued', attempts = 0, error = NULL, next_attempt_at = NULL, \
                         dead_at = NULL, updated_at = ?, lease_token = ?, lease_until = ? \
                         WHERE id = ? AND dead_at IS NOT NULL RETURNING {DELIVERY_COLUMNS}"
                );
                let params = params![to_ms(now), lease.token.get(), to_ms(lease.until), id.to_string()];
                let row = first(c, &sql, params, delivery_row)?;
                let Some(d) = row else { return Ok(None) };
                let entry = AuditEntry {
                    user_id: parse_user(&d.user_id)?,
                    notification_id: d.notification_id,
                    channel: Some(d.channel),
                    decision: herald_domain::reason::Decision::Delivering,
                    reason: Some(Reason::Replayed),
                    at: now,
                };
                insert_audits(c, [&entry])?;
                Ok(Some(d))
            })
            .await
    }
}
