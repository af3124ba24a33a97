//! Per-user hot state the engine decides with: duplicate keys, the interruptions that cap windows and breakthrough budgets count, and the pending digest.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use herald_domain::UserId;
use herald_domain::decision::Interruption;
use jiff::Timestamp;
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::decide;
use super::rows::{all, col0, exec, first, uuid_at};
use super::writes::{insert_audits, insert_delivery, schedule};
use crate::HotState;
use crate::StoreResult;
use crate::queue::Lease;
use crate::to_ms;
use crate::*;

/// Writes one digest the flush sends: its notification, recipient, interruption and deliveries.
fn insert_digest(c: &Connection, user: &UserId, d: &DigestOutcome, now: i64, lease: Lease) -> StoreResult<()> {
    let n = &d.notification;
    let id = n.id.to_string();
    exec(
        c,
        "INSERT INTO notifications (id, template, class, category, spec, recipients_total, created_at) \
         VALUES (?, ?, ?, ?, ?, 1, ?)",
        params![
            id,
            n.spec.template.as_str(),
            n.class.as_str(),
            n.spec.category.as_ref().map(|c| c.as_str()),
            serde_json::to_string(&n.spec)?,
            now
        ],
    )?;
    exec(
        c,
        "INSERT INTO recipients (notification_id, user_id, state, due_at, updated_at, decision, reason, phase) \
         VALUES (?, ?, 'done', ?, ?, 'delivering', 'digest', 1)",
        params![id, user.as_str(), now, now],
    )?;
    exec(
        c,
        "INSERT INTO interruptions (user_id, at, spend, notification_id) VALUES (?, ?, 'cap', ?)",
        params![user.as_str(), now, id],
    )?;
    for seq in &d.merged {
        exec(
            c,
            "UPDATE recipients SET state = 'done', digest_id = ?, updated_at = ? WHERE seq = ? AND state = 'batched'",
            params![id, now, seq],
        )?;
    }
    for del in &d.deliveries {
        insert_delivery(c, &id, user, del, now, lease)?;
    }
    Ok(())
}

fn record_flush(c: &Connection, o: &FlushOutcome) -> StoreResult<bool> {
    let held: Option<String> = first(
        c,
        "SELECT state FROM digest_timers WHERE user_id = ? AND lease_token = ?",
        params![o.user_id.as_str(), o.lease.token.get()],
        col0,
    )?;
    let Some(state) = held else { return Ok(false) };
    let now = to_ms(o.now);
    for d in &o.digests {
        insert_digest(c, &o.user_id, d, now, o.lease)?;
    }
    for (seq, reason) in &o.settled {
        exec(
            c,
            "UPDATE recipients SET state = 'done', reason = ?, updated_at = ? WHERE seq = ? AND state = 'batched'",
            params![reason.as_str(), now, seq],
        )?;
    }
    insert_audits(c, &o.audit)?;
    // A flush asked for while this one ran (the timer is pending again) stays asked for.
    let asked_again = state == "pending";
    match (o.next_due, asked_again) {
        (None, false) => exec(c, "DELETE FROM digest_timers WHERE user_id = ?", [o.user_id.as_str()])?,
        (next, _) => exec(
            c,
            "UPDATE digest_timers SET due_at = CASE WHEN state = 'pending' THEN MIN(due_at, COALESCE(?1, due_at)) \
             ELSE ?1 END, state = 'pending', lease_token = NULL, lease_until = NULL WHERE user_id = ?2",
            params![next.map(to_ms), o.user_id.as_str()],
        )?,
    };
    Ok(true)
}

#[async_trait]
impl HotState for SqliteStore {
    async fn seen_recently(&self, asks: &[(UserId, String, i64)], since: Timestamp) -> StoreResult<HashSet<i64>> {
        let asks = asks.to_vec();
        self.reads.read(move |c| decide::seen_recently(c, &asks, since)).await
    }

    async fn interruptions(
        &self,
        users: &[UserId],
        since: Timestamp,
    ) -> StoreResult<HashMap<UserId, Vec<Interruption>>> {
        let users = users.to_vec();
        self.reads.read(move |c| decide::interruptions(c, &users, since)).await
    }

    async fn batched(&self, user: &UserId) -> StoreResult<Vec<BatchedRecipient>> {
        let user = user.as_str().to_owned();
        self.reads
            .read(move |c| {
                all(
                    c,
                    "SELECT seq, notification_id, group_key FROM recipients WHERE user_id = ? AND state = 'batched' ORDER BY seq",
                    [user],
                    |r| {
                        Ok(BatchedRecipient {
                            seq: r.get("seq")?,
                            notification_id: uuid_at(r, "notification_id")?,
                            group_key: r.get::<_, Option<String>>("group_key")?.unwrap_or_default(),
                        })
                    },
                )
            })
            .await
    }

    async fn record_flush(&self, o: FlushOutcome) -> StoreResult<bool> {
        self.writer.write_lazy(move |c| record_flush(c, &o)).await
    }

    async fn schedule_flush(&self, user: &UserId, at: Timestamp) -> StoreResult<()> {
        let user = user.clone();
        self.writer.write_lazy(move |c| schedule(c, &user, to_ms(at))).await
    }
}
