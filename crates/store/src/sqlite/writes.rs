//! Writes that several concerns share: users made on first mention, audit entries,
//! deliveries, transactional hand-overs, collapses and digest timers.

use herald_domain::reason::Reason;
use herald_domain::user::User;
use herald_domain::{Channel, UserId};
use jiff::Timestamp;
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::rows::{DELIVERY_COLUMNS, delivery_row};
use crate::StoreResult;
use crate::records::*;
use crate::to_ms;

pub(super) async fn ensure_user(conn: &mut SqliteConnection, id: &UserId, now: i64) -> StoreResult<()> {
    let profile = serde_json::to_string(&User::bare(id.clone()))?;
    sqlx::query(
        "INSERT INTO users (id, profile, created_at, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id.as_str())
    .bind(profile)
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn insert_audit(conn: &mut SqliteConnection, a: &AuditEntry) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit (at, user_id, notification_id, channel, decision, reason) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(to_ms(a.at))
    .bind(a.user_id.as_str())
    .bind(a.notification_id.to_string())
    .bind(a.channel.map(Channel::as_str))
    .bind(a.decision.as_str())
    .bind(a.reason.map(|r| r.as_str()))
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn insert_delivery(
    conn: &mut SqliteConnection,
    notification_id: &str,
    user: &UserId,
    d: &NewDelivery,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO deliveries (id, notification_id, user_id, channel, status, provider, error, payload, next_attempt_at, \
         created_at, updated_at, class) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
         (SELECT class FROM notifications WHERE id = ?2)) ON CONFLICT (id) DO NOTHING",
    )
    .bind(d.id.to_string())
    .bind(notification_id)
    .bind(user.as_str())
    .bind(d.channel.as_str())
    .bind(&d.status)
    .bind(&d.provider)
    .bind(&d.error)
    .bind(serde_json::to_string(&d.payload)?)
    .bind(now)
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Activates the next standby delivery of (notification, user), with its audit line. With
/// `stood_down`, a fallback already stood down because the channel seemed to succeed counts too:
/// a provider's late report of a failure brings it back.
pub(super) async fn hand_over(
    conn: &mut SqliteConnection,
    notification_id: Uuid,
    user: &UserId,
    now: Timestamp,
    stood_down: bool,
) -> StoreResult<Option<DeliveryRecord>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE deliveries SET status = 'queued', error = NULL, updated_at = ?1 WHERE id = (SELECT id FROM deliveries \
         WHERE notification_id = ?2 AND user_id = ?3 \
         AND (status = 'standby' OR (?4 AND status = 'suppressed' AND error = 'fallback_not_needed')) \
         ORDER BY rowid LIMIT 1) RETURNING {DELIVERY_COLUMNS}"
    )))
    .bind(to_ms(now))
    .bind(notification_id.to_string())
    .bind(user.as_str())
    .bind(stood_down)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(d) = row.as_ref().map(delivery_row).transpose()? else { return Ok(None) };
    let audit = AuditEntry {
        user_id: user.clone(),
        notification_id,
        channel: Some(d.channel),
        decision: herald_domain::reason::Decision::Delivering,
        reason: Some(Reason::Fallback),
        at: now,
    };
    insert_audit(conn, &audit).await?;
    Ok(Some(d))
}

/// Stands down the remaining standby deliveries of (notification, user).
pub(super) async fn stand_down(
    conn: &mut SqliteConnection,
    notification_id: Uuid,
    user: &UserId,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE deliveries SET status = 'suppressed', error = 'fallback_not_needed', updated_at = ? \
         WHERE notification_id = ? AND user_id = ? AND status = 'standby'",
    )
    .bind(to_ms(now))
    .bind(notification_id.to_string())
    .bind(user.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// Supersedes the user's older notifications with the same collapse key that have not interrupted yet.
pub(super) async fn collapse(conn: &mut SqliteConnection, item: &WorkItem, key: &str, now: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit (at, user_id, notification_id, channel, decision, reason) \
         SELECT ?, user_id, notification_id, NULL, 'suppressed', 'collapsed' FROM recipients \
         WHERE user_id = ? AND collapse_key = ? AND seq < ? AND state IN ('pending', 'claimed', 'batched')",
    )
    .bind(now)
    .bind(item.user_id.as_str())
    .bind(key)
    .bind(item.seq)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE recipients SET state = 'done', decision = 'suppressed', reason = 'collapsed', updated_at = ? \
         WHERE user_id = ? AND collapse_key = ? AND seq < ? AND state IN ('pending', 'claimed', 'batched')",
    )
    .bind(now)
    .bind(item.user_id.as_str())
    .bind(key)
    .bind(item.seq)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes the user's digest due no later than `at` (an earlier existing time stands).
pub(super) async fn schedule(conn: &mut SqliteConnection, user: &UserId, at: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO digest_timers (user_id, due_at, state) VALUES (?, ?, 'pending') ON CONFLICT (user_id) DO UPDATE \
         SET due_at = MIN(digest_timers.due_at, excluded.due_at), state = 'pending'",
    )
    .bind(user.as_str())
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}
