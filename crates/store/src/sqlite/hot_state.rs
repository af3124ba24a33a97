//! Per-user hot state the engine decides with: duplicate keys, the interruptions that cap windows and breakthrough budgets count, and the pending digest.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use herald_domain::UserId;
use herald_domain::decision::Interruption;
use jiff::Timestamp;
use sqlx::Row;

use super::SqliteStore;
use super::decide;
use super::rows::parse_uuid;
use super::writes::{insert_audit, insert_delivery, schedule};
use crate::HotState;
use crate::StoreResult;
use crate::records::*;
use crate::to_ms;

#[async_trait]
impl HotState for SqliteStore {
    async fn seen_recently(&self, asks: &[(UserId, String, i64)], since: Timestamp) -> StoreResult<HashSet<i64>> {
        decide::seen_recently(&self.pool, asks, since).await
    }

    async fn interruptions(
        &self,
        users: &[UserId],
        since: Timestamp,
    ) -> StoreResult<HashMap<UserId, Vec<Interruption>>> {
        decide::interruptions(&self.pool, users, since).await
    }

    async fn batched(&self, user: &UserId) -> StoreResult<Vec<BatchedRecipient>> {
        let rows = sqlx::query(
            "SELECT seq, notification_id, group_key FROM recipients WHERE user_id = ? AND state = 'batched' ORDER BY seq",
        )
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BatchedRecipient {
                    seq: r.try_get("seq")?,
                    notification_id: parse_uuid(r.try_get("notification_id")?)?,
                    group_key: r.try_get::<Option<String>, _>("group_key")?.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn record_flush(&self, o: FlushOutcome) -> StoreResult<()> {
        self.writer
            .write_lazy(move |c| {
                Box::pin(async move {
                    let now = to_ms(o.now);
                    for d in &o.digests {
                        let n = &d.notification;
                        let id = n.id.to_string();
                        sqlx::query(
                            "INSERT INTO notifications (id, template, class, category, spec, recipients_total, created_at) \
                             VALUES (?, ?, ?, ?, ?, 1, ?)",
                        )
                        .bind(&id)
                        .bind(n.spec.template.as_str())
                        .bind(n.class.as_str())
                        .bind(n.spec.category.as_ref().map(|c| c.as_str()))
                        .bind(serde_json::to_string(&n.spec)?)
                        .bind(now)
                        .execute(&mut *c)
                        .await?;
                        sqlx::query(
                            "INSERT INTO recipients (notification_id, user_id, state, due_at, updated_at, decision, reason, phase) \
                             VALUES (?, ?, 'done', ?, ?, 'delivering', 'digest', 1)",
                        )
                        .bind(&id)
                        .bind(o.user_id.as_str())
                        .bind(now)
                        .bind(now)
                        .execute(&mut *c)
                        .await?;
                        sqlx::query("INSERT INTO interruptions (user_id, at, spend, notification_id) VALUES (?, ?, 'cap', ?)")
                            .bind(o.user_id.as_str())
                            .bind(now)
                            .bind(&id)
                            .execute(&mut *c)
                            .await?;
                        for seq in &d.merged {
                            sqlx::query(
                                "UPDATE recipients SET state = 'done', digest_id = ?, updated_at = ? WHERE seq = ? AND state = 'batched'",
                            )
                            .bind(&id)
                            .bind(now)
                            .bind(seq)
                            .execute(&mut *c)
                            .await?;
                        }
                        for del in &d.deliveries {
                            insert_delivery(c, &id, &o.user_id, del, now).await?;
                        }
                    }
                    for (seq, reason) in &o.settled {
                        sqlx::query("UPDATE recipients SET state = 'done', reason = ?, updated_at = ? WHERE seq = ? AND state = 'batched'")
                            .bind(reason.as_str())
                            .bind(now)
                            .bind(seq)
                            .execute(&mut *c)
                            .await?;
                    }
                    for a in &o.audit {
                        insert_audit(c, a).await?;
                    }
                    match o.next_due {
                        Some(at) => {
                            sqlx::query("UPDATE digest_timers SET due_at = ?, state = 'pending' WHERE user_id = ?")
                                .bind(to_ms(at))
                                .bind(o.user_id.as_str())
                                .execute(&mut *c)
                                .await?;
                        }
                        None => {
                            sqlx::query("DELETE FROM digest_timers WHERE user_id = ?")
                                .bind(o.user_id.as_str())
                                .execute(&mut *c)
                                .await?;
                        }
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn schedule_flush(&self, user: &UserId, at: Timestamp) -> StoreResult<()> {
        let user = user.clone();
        self.writer.write_lazy(move |c| Box::pin(async move { schedule(c, &user, to_ms(at)).await })).await
    }
}
