//! The work queue: recipients and digest flushes that fall due for a decision.

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::rows::{all, col0, exec, one, parse_user, user_at, uuid_at};
use crate::StoreResult;
use crate::WorkQueue;
use crate::records::*;
use crate::{from_ms, to_ms};

fn claim_due(c: &Connection, now: Timestamp, limit: u32) -> StoreResult<Vec<Work>> {
    // Urgent recipients first, each kind in due order: two range scans of the queue index, so
    // neither reads past what is due.
    let mut items = all(
        c,
        "UPDATE recipients SET state = 'claimed', updated_at = ?1 WHERE seq IN (SELECT seq FROM ( \
           SELECT * FROM (SELECT seq, urgent, due_at FROM recipients \
                          WHERE state = 'pending' AND urgent = 1 AND due_at <= ?1 ORDER BY due_at, seq LIMIT ?2) \
           UNION ALL \
           SELECT * FROM (SELECT seq, urgent, due_at FROM recipients \
                          WHERE state = 'pending' AND urgent = 0 AND due_at <= ?1 ORDER BY due_at, seq LIMIT ?2) \
         ) ORDER BY urgent DESC, due_at, seq LIMIT ?2) \
         RETURNING seq, notification_id, user_id, phase, urgent",
        params![to_ms(now), i64::from(limit)],
        |r| {
            Ok(WorkItem {
                seq: r.get("seq")?,
                phase: r.get("phase")?,
                notification_id: uuid_at(r, "notification_id")?,
                user_id: user_at(r, "user_id")?,
                urgent: r.get("urgent")?,
            })
        },
    )?;
    items.sort_by_key(|i| (!i.urgent, i.seq));
    let flushes: Vec<String> = all(
        c,
        "UPDATE digest_timers SET state = 'claimed' WHERE user_id IN \
         (SELECT user_id FROM digest_timers WHERE state = 'pending' AND due_at <= ?1 ORDER BY due_at LIMIT ?2) \
         RETURNING user_id",
        params![to_ms(now), i64::from(limit)],
        col0,
    )?;
    let mut work: Vec<Work> = items.into_iter().map(Work::Decide).collect();
    for u in flushes {
        work.push(Work::Flush(parse_user(&u)?));
    }
    Ok(work)
}

#[async_trait]
impl WorkQueue for SqliteStore {
    async fn claim_due(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Work>> {
        self.writer.write_lazy(move |c| claim_due(c, now, limit)).await
    }

    async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
        let v: Option<i64> = self
            .reads
            .read(|c| {
                one(
                    c,
                    "SELECT MIN(d) FROM (SELECT MIN(due_at) AS d FROM recipients WHERE state = 'pending' \
                     UNION ALL SELECT MIN(due_at) FROM digest_timers WHERE state = 'pending')",
                    [],
                    col0,
                )
            })
            .await?;
        Ok(v.map(from_ms))
    }

    async fn release_claim(&self, seq: i64, retry_at: Timestamp) -> StoreResult<()> {
        self.writer
            .write_lazy(move |c| {
                exec(
                    c,
                    "UPDATE recipients SET state = 'pending', due_at = ? WHERE seq = ? AND state = 'claimed'",
                    params![to_ms(retry_at), seq],
                )
                .map(drop)
            })
            .await
    }

    async fn release_claims(&self) -> StoreResult<u64> {
        self.writer
            .write(|c| {
                let released = exec(c, "UPDATE recipients SET state = 'pending' WHERE state = 'claimed'", [])?;
                exec(c, "UPDATE digest_timers SET state = 'pending' WHERE state = 'claimed'", [])?;
                Ok(released)
            })
            .await
    }
}
