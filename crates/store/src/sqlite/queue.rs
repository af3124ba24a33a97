//! The work queue: recipients and digest flushes that fall due for a decision.

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::Row;

use super::SqliteStore;
use super::rows::{parse_user, parse_uuid};
use crate::StoreResult;
use crate::WorkQueue;
use crate::records::*;
use crate::{from_ms, to_ms};

#[async_trait]
impl WorkQueue for SqliteStore {
    async fn claim_due(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Work>> {
        self.writer
            .write_lazy(move |c| {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "UPDATE recipients SET state = 'claimed', updated_at = ?1 WHERE seq IN \
                         (SELECT seq FROM recipients WHERE state = 'pending' AND due_at <= ?1 ORDER BY due_at, seq LIMIT ?2) \
                         RETURNING seq, notification_id, user_id, phase",
                    )
                    .bind(to_ms(now))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *c)
                    .await?;
                    let mut items = rows
                        .iter()
                        .map(|r| {
                            Ok(WorkItem {
                                seq: r.try_get("seq")?,
                                phase: r.try_get("phase")?,
                                notification_id: parse_uuid(r.try_get("notification_id")?)?,
                                user_id: parse_user(r.try_get("user_id")?)?,
                            })
                        })
                        .collect::<StoreResult<Vec<_>>>()?;
                    items.sort_by_key(|i| i.seq);
                    let flushes: Vec<String> = sqlx::query_scalar(
                        "UPDATE digest_timers SET state = 'claimed' WHERE user_id IN \
                         (SELECT user_id FROM digest_timers WHERE state = 'pending' AND due_at <= ?1 ORDER BY due_at LIMIT ?2) \
                         RETURNING user_id",
                    )
                    .bind(to_ms(now))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *c)
                    .await?;
                    let mut work: Vec<Work> = items.into_iter().map(Work::Decide).collect();
                    for u in flushes {
                        work.push(Work::Flush(parse_user(&u)?));
                    }
                    Ok(work)
                })
            })
            .await
    }

    async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(d) FROM (SELECT MIN(due_at) AS d FROM recipients WHERE state = 'pending' \
             UNION ALL SELECT MIN(due_at) FROM digest_timers WHERE state = 'pending')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(v.map(from_ms))
    }

    async fn release_claim(&self, seq: i64, retry_at: Timestamp) -> StoreResult<()> {
        self.writer
            .write_lazy(move |c| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE recipients SET state = 'pending', due_at = ? WHERE seq = ? AND state = 'claimed'",
                    )
                    .bind(to_ms(retry_at))
                    .bind(seq)
                    .execute(c)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn release_claims(&self) -> StoreResult<u64> {
        self.writer
            .write(|c| {
                Box::pin(async move {
                    let r = sqlx::query("UPDATE recipients SET state = 'pending' WHERE state = 'claimed'")
                        .execute(&mut *c)
                        .await?;
                    sqlx::query("UPDATE digest_timers SET state = 'pending' WHERE state = 'claimed'")
                        .execute(&mut *c)
                        .await?;
                    Ok(r.rows_affected())
                })
            })
            .await
    }
}
