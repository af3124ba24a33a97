//! The work queue: recipients and digest flushes that fall due for a decision, claimed under
//! leases (a claimed row names its lease's token and when it runs out).

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::rows::{all, col0, exec, one, user_at, uuid_at};
use super::writer::Priority;
use crate::StoreResult;
use crate::WorkQueue;
use crate::queue::{FlushItem, Lease, LeaseToken, Work, WorkItem};
use crate::{from_ms, to_ms};

fn claim_due(c: &Connection, now: Timestamp, lease: Lease, limit: u32) -> StoreResult<Vec<Work>> {
    let mut items = claim_recipients(c, now, lease, limit)?;
    items.sort_by_key(|i| (!i.urgent, i.seq));
    let flushes = claim_flushes(c, now, lease, limit)?;
    Ok(items.into_iter().map(Work::Decide).chain(flushes.into_iter().map(Work::Flush)).collect())
}

/// Urgent recipients first, each kind in due order, then claims whose lease ran out: three range
/// scans of the queue indexes, so none reads past what is due.
fn claim_recipients(c: &Connection, now: Timestamp, lease: Lease, limit: u32) -> StoreResult<Vec<WorkItem>> {
    all(
        c,
        "UPDATE recipients SET state = 'claimed', lease_token = ?3, lease_until = ?4, updated_at = ?1 \
         WHERE seq IN (SELECT seq FROM ( \
           SELECT * FROM (SELECT seq, urgent, due_at FROM recipients \
                          WHERE state = 'pending' AND urgent = 1 AND due_at <= ?1 ORDER BY due_at, seq LIMIT ?2) \
           UNION ALL \
           SELECT * FROM (SELECT seq, urgent, due_at FROM recipients \
                          WHERE state = 'pending' AND urgent = 0 AND due_at <= ?1 ORDER BY due_at, seq LIMIT ?2) \
           UNION ALL \
           SELECT * FROM (SELECT seq, urgent, due_at FROM recipients \
                          WHERE state = 'claimed' AND lease_until <= ?1 ORDER BY lease_until LIMIT ?2) \
         ) ORDER BY urgent DESC, due_at, seq LIMIT ?2) \
         RETURNING seq, notification_id, user_id, phase, urgent",
        params![to_ms(now), i64::from(limit), lease.token.get(), to_ms(lease.until)],
        |r| {
            Ok(WorkItem {
                seq: r.get("seq")?,
                phase: r.get("phase")?,
                notification_id: uuid_at(r, "notification_id")?,
                user_id: user_at(r, "user_id")?,
                urgent: r.get("urgent")?,
                lease,
            })
        },
    )
}

fn claim_flushes(c: &Connection, now: Timestamp, lease: Lease, limit: u32) -> StoreResult<Vec<FlushItem>> {
    all(
        c,
        "UPDATE digest_timers SET state = 'claimed', lease_token = ?3, lease_until = ?4 WHERE user_id IN ( \
           SELECT user_id FROM (SELECT user_id, due_at FROM digest_timers \
                                WHERE state = 'pending' AND due_at <= ?1 ORDER BY due_at LIMIT ?2) \
           UNION ALL \
           SELECT user_id FROM (SELECT user_id FROM digest_timers \
                                WHERE state = 'claimed' AND lease_until <= ?1 ORDER BY lease_until LIMIT ?2) \
           LIMIT ?2) \
         RETURNING user_id",
        params![to_ms(now), i64::from(limit), lease.token.get(), to_ms(lease.until)],
        |r| Ok(FlushItem { user_id: user_at(r, "user_id")?, lease }),
    )
}

/// Extends the leases still held by their tokens; answers the work still held.
fn renew(c: &Connection, held: Vec<Work>, until: Timestamp) -> StoreResult<Vec<Work>> {
    let mut kept = Vec::with_capacity(held.len());
    for w in held {
        let renewed = match &w {
            Work::Decide(i) => exec(
                c,
                "UPDATE recipients SET lease_until = ? WHERE seq = ? AND state = 'claimed' AND lease_token = ?",
                params![to_ms(until), i.seq, i.lease.token.get()],
            )?,
            Work::Flush(f) => exec(
                c,
                "UPDATE digest_timers SET lease_until = ? WHERE user_id = ? AND lease_token = ?",
                params![to_ms(until), f.user_id.as_str(), f.lease.token.get()],
            )?,
        };
        if renewed > 0 {
            kept.push(with_until(w, until));
        }
    }
    Ok(kept)
}

/// The same work under its renewed lease.
fn with_until(mut w: Work, until: Timestamp) -> Work {
    match &mut w {
        Work::Decide(i) => i.lease.until = until,
        Work::Flush(f) => f.lease.until = until,
    }
    w
}

fn release(c: &Connection, work: &Work, retry_at: Timestamp) -> StoreResult<()> {
    match work {
        Work::Decide(i) => exec(
            c,
            "UPDATE recipients SET state = 'pending', due_at = ?, lease_token = NULL, lease_until = NULL \
             WHERE seq = ? AND state = 'claimed' AND lease_token = ?",
            params![to_ms(retry_at), i.seq, i.lease.token.get()],
        )?,
        // A flush asked for again meanwhile keeps the earlier due time.
        Work::Flush(f) => exec(
            c,
            "UPDATE digest_timers SET due_at = CASE WHEN state = 'pending' THEN MIN(due_at, ?1) ELSE ?1 END, \
             state = 'pending', lease_token = NULL, lease_until = NULL WHERE user_id = ?2 AND lease_token = ?3",
            params![to_ms(retry_at), f.user_id.as_str(), f.lease.token.get()],
        )?,
    };
    Ok(())
}

fn release_held(c: &Connection, holder: LeaseToken) -> StoreResult<u64> {
    let recipients = exec(
        c,
        "UPDATE recipients SET state = 'pending', lease_token = NULL, lease_until = NULL \
         WHERE state = 'claimed' AND lease_token = ?",
        [holder.get()],
    )?;
    exec(
        c,
        "UPDATE digest_timers SET state = 'pending', lease_token = NULL, lease_until = NULL WHERE lease_token = ?",
        [holder.get()],
    )?;
    Ok(recipients)
}

#[async_trait]
impl WorkQueue for SqliteStore {
    async fn claim_due(&self, now: Timestamp, lease: Lease, limit: u32) -> StoreResult<Vec<Work>> {
        // Claims feed every decision, urgent ones first: they never wait behind a burst of ordinary writes.
        self.writer.write_lazy_at(Priority::Urgent, move |c| claim_due(c, now, lease, limit)).await
    }

    async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
        let v: Option<i64> = self
            .reads
            .read(|c| {
                one(
                    c,
                    "SELECT MIN(d) FROM ( \
                       SELECT MIN(due_at) AS d FROM recipients WHERE state = 'pending' \
                       UNION ALL SELECT MIN(lease_until) FROM recipients WHERE state = 'claimed' \
                       UNION ALL SELECT MIN(due_at) FROM digest_timers WHERE state = 'pending' \
                       UNION ALL SELECT MIN(lease_until) FROM digest_timers WHERE state = 'claimed')",
                    [],
                    col0,
                )
            })
            .await?;
        Ok(v.map(from_ms))
    }

    async fn renew(&self, held: Vec<Work>, until: Timestamp) -> StoreResult<Vec<Work>> {
        self.writer.write_lazy(move |c| renew(c, held, until)).await
    }

    async fn release(&self, work: &Work, retry_at: Timestamp) -> StoreResult<()> {
        let work = work.clone();
        self.writer.write_lazy(move |c| release(c, &work, retry_at)).await
    }

    async fn release_held(&self, holder: LeaseToken) -> StoreResult<u64> {
        self.writer.write(move |c| release_held(c, holder)).await
    }
}
