//! Writes that several concerns share: users made on first mention, audit entries,
//! deliveries, transactional hand-overs, collapses and digest timers.

use herald_domain::reason::{Decision, Reason};
use herald_domain::user::User;
use herald_domain::{Channel, UserId};
use jiff::Timestamp;
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use uuid::Uuid;

use super::rows::{DELIVERY_COLUMNS, all, delivery_row, exec, first, uuid_at};
use crate::StoreResult;
use crate::queue::{Lease, WorkItem};
use crate::to_ms;
use crate::*;

pub(super) fn ensure_user(c: &Connection, id: &UserId, now: i64) -> StoreResult<()> {
    let profile = serde_json::to_string(&User::bare(id.clone()))?;
    exec(
        c,
        "INSERT INTO users (id, profile, created_at, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        params![id.as_str(), profile, now, now],
    )?;
    Ok(())
}

/// Runs one multi-row statement over `rows`, bound as a JSON array to its `?`; skipped when there are none.
pub(super) fn exec_rows(c: &Connection, sql: &str, rows: Vec<Value>) -> StoreResult<()> {
    if !rows.is_empty() {
        exec(c, sql, [Value::Array(rows).to_string()])?;
    }
    Ok(())
}

/// Appends audit lines in one multi-row statement, skipped when there are none.
pub(super) fn insert_audits<'a>(c: &Connection, entries: impl IntoIterator<Item = &'a AuditEntry>) -> StoreResult<()> {
    let rows = entries
        .into_iter()
        .map(|a| {
            json!({
                "at": to_ms(a.at),
                "user_id": a.user_id.as_str(),
                "notification_id": a.notification_id.to_string(),
                "channel": a.channel.map(Channel::as_str),
                "decision": a.decision.as_str(),
                "reason": a.reason.map(|r| r.as_str()),
            })
        })
        .collect();
    exec_rows(
        c,
        "INSERT INTO audit (at, user_id, notification_id, channel, decision, reason) \
         SELECT value->>'$.at', value->>'$.user_id', value->>'$.notification_id', value->>'$.channel', \
         value->>'$.decision', value->>'$.reason' FROM json_each(?)",
        rows,
    )
}

pub(super) fn insert_delivery(
    c: &Connection,
    notification_id: &str,
    user: &UserId,
    d: &NewDelivery,
    now: i64,
    lease: Lease,
) -> StoreResult<()> {
    exec(
        c,
        "INSERT INTO deliveries (id, notification_id, user_id, channel, status, provider, error, payload, next_attempt_at, \
         created_at, updated_at, class, lease_token, lease_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
         (SELECT class FROM notifications WHERE id = ?2), ?12, ?13) ON CONFLICT (id) DO NOTHING",
        params![
            d.id.to_string(),
            notification_id,
            user.as_str(),
            d.channel.as_str(),
            d.status.as_str(),
            d.provider,
            d.error,
            serde_json::to_string(&d.payload)?,
            now,
            now,
            now,
            lease.token.get(),
            to_ms(lease.until)
        ],
    )?;
    Ok(())
}

/// Activates the next standby delivery of (notification, user), with its audit line. With
/// `stood_down`, a fallback already stood down because the channel seemed to succeed counts too:
/// a provider's late report of a failure brings it back.
pub(super) fn hand_over(
    c: &Connection,
    notification_id: Uuid,
    user: &UserId,
    now: Timestamp,
    stood_down: bool,
    lease: Lease,
) -> StoreResult<Option<DeliveryRecord>> {
    let sql = format!(
        "UPDATE deliveries SET status = 'queued', error = NULL, updated_at = ?1, lease_token = ?5, lease_until = ?6 \
         WHERE id = (SELECT id FROM deliveries \
         WHERE notification_id = ?2 AND user_id = ?3 \
         AND (status = 'standby' OR (?4 AND status = 'suppressed' AND error = 'fallback_not_needed')) \
         ORDER BY rowid LIMIT 1) RETURNING {DELIVERY_COLUMNS}"
    );
    let row = first(
        c,
        &sql,
        params![
            to_ms(now),
            notification_id.to_string(),
            user.as_str(),
            stood_down,
            lease.token.get(),
            to_ms(lease.until)
        ],
        delivery_row,
    )?;
    let Some(d) = row else { return Ok(None) };
    let audit = AuditEntry {
        user_id: user.clone(),
        notification_id,
        channel: Some(d.channel),
        decision: Decision::Delivering,
        reason: Some(Reason::Fallback),
        at: now,
    };
    insert_audits(c, [&audit])?;
    Ok(Some(d))
}

/// Stands down the remaining standby deliveries of (notification, user).
pub(super) fn stand_down(c: &Connection, notification_id: Uuid, user: &UserId, now: Timestamp) -> StoreResult<()> {
    exec(
        c,
        "UPDATE deliveries SET status = 'suppressed', error = 'fallback_not_needed', updated_at = ? \
         WHERE notification_id = ? AND user_id = ? AND status = 'standby'",
        params![to_ms(now), notification_id.to_string(), user.as_str()],
    )?;
    Ok(())
}

/// Supersedes the user's older notifications with the same collapse key that have not interrupted yet.
pub(super) fn collapse(c: &Connection, item: &WorkItem, key: &str, now: Timestamp) -> StoreResult<()> {
    // The update names the recipients it supersedes, so their audit lines go through the one audit insert.
    let superseded = all(
        c,
        "UPDATE recipients SET state = 'done', decision = 'suppressed', reason = 'collapsed', updated_at = ? \
         WHERE user_id = ? AND collapse_key = ? AND seq < ? AND state IN ('pending', 'claimed', 'batched') \
         RETURNING notification_id",
        params![to_ms(now), item.user_id.as_str(), key, item.seq],
        |r| {
            Ok(AuditEntry {
                user_id: item.user_id.clone(),
                notification_id: uuid_at(r, "notification_id")?,
                channel: None,
                decision: Decision::Suppressed,
                reason: Some(Reason::Collapsed),
                at: now,
            })
        },
    )?;
    insert_audits(c, &superseded)
}

/// Makes the user's digest due no later than `at` (an earlier existing time stands).
pub(super) fn schedule(c: &Connection, user: &UserId, at: i64) -> StoreResult<()> {
    exec(
        c,
        "INSERT INTO digest_timers (user_id, due_at, state) VALUES (?, ?, 'pending') ON CONFLICT (user_id) DO UPDATE \
         SET due_at = CASE WHEN digest_timers.state = 'pending' THEN MIN(digest_timers.due_at, excluded.due_at) \
         ELSE excluded.due_at END, state = 'pending'",
        params![user.as_str(), at],
    )?;
    Ok(())
}
