//! A notification's recipients and the decisions recorded for them.

use async_trait::async_trait;
use herald_domain::Channel;
use sqlx::Row;
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{DELIVERY_COLUMNS, delivery_row, opt_ms, parse_user};
use crate::RecipientStore;
use crate::StoreResult;
use crate::records::*;

#[async_trait]
impl RecipientStore for SqliteStore {
    async fn list_recipients(&self, id: Uuid, after: Option<i64>, limit: u32) -> StoreResult<Vec<RecipientRecord>> {
        let rows = sqlx::query(
            "SELECT seq, user_id, state, decision, reason, inbox_at FROM recipients WHERE notification_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(id.to_string())
        .bind(after.unwrap_or(0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let user_id: String = r.try_get("user_id")?;
            // The inbox delivery is recorded on the recipient; it reads as any other delivery.
            let inbox = opt_ms(r.try_get("inbox_at")?).map(|at| -> StoreResult<DeliveryRecord> {
                Ok(DeliveryRecord {
                    id: herald_domain::ids::delivery_id(id, &parse_user(&user_id)?, Channel::InApp),
                    notification_id: id,
                    user_id: user_id.clone(),
                    channel: Channel::InApp,
                    status: "delivered".into(),
                    attempts: 0,
                    provider: Some("inbox".into()),
                    error: None,
                    payload: serde_json::Value::Null,
                    next_attempt_at: None,
                    class: None,
                    created_at: at,
                    dispatched_at: None,
                    dead_at: None,
                    updated_at: at,
                })
            });
            out.push(RecipientRecord {
                seq: r.try_get("seq")?,
                user_id,
                state: r.try_get("state")?,
                decision: r.try_get("decision")?,
                reason: r.try_get("reason")?,
                deliveries: inbox.transpose()?.into_iter().collect(),
            });
        }
        let users: Vec<&str> = out.iter().map(|r| r.user_id.as_str()).collect();
        let deliveries = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE notification_id = ? \
             AND user_id IN (SELECT value FROM json_each(?)) ORDER BY created_at, channel"
        )))
        .bind(id.to_string())
        .bind(serde_json::to_string(&users)?)
        .fetch_all(&self.pool)
        .await?;
        for d in &deliveries {
            let d = delivery_row(d)?;
            if let Some(r) = out.iter_mut().find(|r| r.user_id == d.user_id) {
                r.deliveries.push(d);
            }
        }
        Ok(out)
    }

    async fn recipient_counts(&self, id: Uuid) -> StoreResult<RecipientCounts> {
        let rows = sqlx::query(
            "SELECT state, decision, COUNT(*) AS n FROM recipients WHERE notification_id = ? GROUP BY state, decision",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut counts = RecipientCounts::default();
        for r in &rows {
            let state: String = r.try_get("state")?;
            let n = r.try_get::<i64, _>("n")? as u64;
            match r.try_get::<Option<String>, _>("decision")? {
                None => counts.pending += n,
                Some(decision) => {
                    counts.processed += n;
                    if state != "done" {
                        counts.waiting += n;
                    }
                    *counts.by_decision.entry(decision).or_default() += n;
                }
            }
        }
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE notification_id = ? AND status IN ('queued', 'sending', 'standby')",
        )
        .bind(id.to_string())
        .fetch_one(&self.pool)
        .await?;
        counts.open_deliveries = open as u64;
        Ok(counts)
    }

    async fn record_outcomes(&self, outcomes: Vec<RecipientOutcome>) -> StoreResult<Vec<Option<Recorded>>> {
        self.outcomes.call(outcomes).await
    }
}
