//! A notification's recipients and the decisions recorded for them.

use async_trait::async_trait;
use herald_domain::reason::Decision;
use herald_domain::{Channel, DeliveryStatus, RecipientState};
use rusqlite::{Connection, params};
use uuid::Uuid;

use super::SqliteStore;
use super::paging::{List, fetch};
use super::rows::{DELIVERY_COLUMNS, all, code_at, col0, delivery_row, one, opt_code_at, opt_ms, parse_user};
use super::writer::Priority;
use crate::RecipientStore;
use crate::StoreResult;
use crate::cursor::{Cursor, Page};
use crate::*;

/// One recipient as listed, with its inbox delivery if it has one, after its row number.
fn recipient_row(id: Uuid, r: &rusqlite::Row<'_>) -> StoreResult<(i64, RecipientRecord)> {
    let user_id: String = r.get("user_id")?;
    // The inbox delivery is recorded on the recipient; it reads as any other delivery.
    let inbox = opt_ms(r.get("inbox_at")?).map(|at| -> StoreResult<DeliveryRecord> {
        Ok(DeliveryRecord {
            id: herald_domain::ids::delivery_id(id, &parse_user(&user_id)?, Channel::InApp),
            notification_id: id,
            user_id: user_id.clone(),
            channel: Channel::InApp,
            status: DeliveryStatus::Delivered,
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
    let record = RecipientRecord {
        user_id,
        state: code_at(r, "state")?,
        decision: opt_code_at(r, "decision")?,
        reason: opt_code_at(r, "reason")?,
        deliveries: inbox.transpose()?.into_iter().collect(),
    };
    Ok((r.get("seq")?, record))
}

fn list_recipients(
    c: &Connection,
    id: Uuid,
    cursor: Option<&Cursor>,
    limit: u32,
) -> StoreResult<Page<RecipientRecord>> {
    let owner = id.to_string();
    let after = List::Recipients.seq(cursor, &owner)?;
    let rows = all(
        c,
        "SELECT seq, user_id, state, decision, reason, inbox_at FROM recipients WHERE notification_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        params![owner, after.unwrap_or(0), fetch(limit)],
        |r| recipient_row(id, r),
    )?;
    let mut page = List::Recipients.page_by_seq(rows, limit, &owner);
    let users: Vec<&str> = page.items.iter().map(|r| r.user_id.as_str()).collect();
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE notification_id = ? \
         AND user_id IN (SELECT value FROM json_each(?)) ORDER BY created_at, channel"
    );
    let deliveries = all(c, &sql, params![id.to_string(), serde_json::to_string(&users)?], delivery_row)?;
    for d in deliveries {
        if let Some(r) = page.items.iter_mut().find(|r| r.user_id == d.user_id) {
            r.deliveries.push(d);
        }
    }
    Ok(page)
}

fn recipient_counts(c: &Connection, id: Uuid) -> StoreResult<RecipientCounts> {
    let rows: Vec<(RecipientState, Option<Decision>, i64)> = all(
        c,
        "SELECT state, decision, COUNT(*) AS n FROM recipients WHERE notification_id = ? GROUP BY state, decision",
        [id.to_string()],
        |r| Ok((code_at(r, "state")?, opt_code_at(r, "decision")?, r.get("n")?)),
    )?;
    let mut counts = RecipientCounts::default();
    for (state, decision, n) in rows {
        let n = n as u64;
        match decision {
            None => counts.pending += n,
            Some(decision) => {
                counts.processed += n;
                if state != RecipientState::Done {
                    counts.waiting += n;
                }
                *counts.by_decision.entry(decision).or_default() += n;
            }
        }
    }
    // What is open is the domain's to say (`DeliveryStatus::is_final`), not this query's.
    let open: Vec<&str> =
        DeliveryStatus::ALL.into_iter().filter(|s| !s.is_final()).map(DeliveryStatus::as_str).collect();
    let open: i64 = one(
        c,
        "SELECT COUNT(*) FROM deliveries WHERE notification_id = ? \
         AND status IN (SELECT value FROM json_each(?))",
        params![id.to_string(), serde_json::to_string(&open)?],
        col0,
    )?;
    counts.open_deliveries = open as u64;
    Ok(counts)
}

#[async_trait]
impl RecipientStore for SqliteStore {
    async fn list_recipients(
        &self,
        id: Uuid,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<Page<RecipientRecord>> {
        let cursor = cursor.cloned();
        self.reads.read(move |c| list_recipients(c, id, cursor.as_ref(), limit)).await
    }

    async fn recipient_counts(&self, id: Uuid) -> StoreResult<RecipientCounts> {
        self.reads.read(move |c| recipient_counts(c, id)).await
    }

    async fn record_outcomes(&self, outcomes: Vec<RecipientOutcome>) -> StoreResult<Vec<Option<Recorded>>> {
        // A lane decides urgent work in batches of its own; a batch is recorded whole, never split.
        self.outcomes.call(Priority::of(outcomes.iter().any(|o| o.item.urgent)), outcomes).await
    }
}
