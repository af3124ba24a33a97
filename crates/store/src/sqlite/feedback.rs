//! Provider feedback in SQLite: one report becomes address blocks, channel switches, removed
//! devices and a bounced delivery, in the same transaction.

use herald_domain::Channel;
use herald_domain::reason::{Decision, Reason};
use sqlx::{Row, SqliteConnection};

use super::{insert_audit, parse_user, parse_uuid};
use crate::records::{AuditEntry, Feedback, FeedbackKind, FeedbackOutcome};
use crate::{StoreError, StoreResult, to_ms};

/// The profile field that holds a channel's contact address, for the channels that have one.
fn contact_path(channel: Channel) -> Option<&'static str> {
    match channel {
        Channel::Email => Some("$.email"),
        Channel::Sms => Some("$.phone"),
        _ => None,
    }
}

/// Applies one report; see [`crate::Store::apply_feedback`].
pub(super) async fn apply(c: &mut SqliteConnection, f: &Feedback) -> StoreResult<FeedbackOutcome> {
    let now = to_ms(f.now);
    let mut out = FeedbackOutcome::default();
    match f.kind {
        FeedbackKind::HardBounce => {
            sqlx::query(
                "INSERT INTO address_blocks (channel, address, kind, created_at) VALUES (?, ?, 'hard_bounce', ?) \
                 ON CONFLICT (channel, address) DO NOTHING",
            )
            .bind(f.channel.as_str())
            .bind(&f.address)
            .bind(now)
            .execute(&mut *c)
            .await?;
            out.address_blocked = true;
        }
        FeedbackKind::Complaint | FeedbackKind::Unsubscribe => {
            let Some(path) = contact_path(f.channel) else {
                return Err(StoreError::Database(format!("{} has no contact address to switch off", f.channel)));
            };
            let switch = format!("$.channels.{}", f.channel.as_str());
            let r = sqlx::query(
                "UPDATE users SET preferences = json_set(COALESCE(preferences, '{}'), ?1, json('false')), updated_at = ?2 \
                 WHERE json_extract(profile, ?3) = ?4 AND erased_at IS NULL",
            )
            .bind(switch)
            .bind(now)
            .bind(path)
            .bind(&f.address)
            .execute(&mut *c)
            .await?;
            out.users_affected = r.rows_affected();
        }
        FeedbackKind::InvalidToken => {
            let r = sqlx::query(
                "DELETE FROM devices WHERE json_extract(spec, '$.token') = ?1 \
                 OR json_extract(spec, '$.subscription.endpoint') = ?1 OR json_extract(spec, '$.url') = ?1",
            )
            .bind(&f.address)
            .execute(&mut *c)
            .await?;
            out.devices_removed = r.rows_affected();
        }
    }
    if let Some(id) = f.delivery_id {
        let (status, reason) = match f.kind {
            FeedbackKind::HardBounce => ("bounced", Reason::HardBounce),
            FeedbackKind::InvalidToken => ("bounced", Reason::InvalidToken),
            // The message arrived; the recipient did not want it.
            FeedbackKind::Complaint => ("delivered", Reason::Complaint),
            FeedbackKind::Unsubscribe => ("delivered", Reason::Unsubscribed),
        };
        let row = sqlx::query(
            "UPDATE deliveries SET status = ?, error = ?, updated_at = ? WHERE id = ? AND channel = ? \
             RETURNING notification_id, user_id",
        )
        .bind(status)
        .bind(reason.as_str())
        .bind(now)
        .bind(id.to_string())
        .bind(f.channel.as_str())
        .fetch_optional(&mut *c)
        .await?;
        if let Some(row) = row {
            let decision = if status == "bounced" { Decision::Bounced } else { Decision::Delivered };
            let entry = AuditEntry {
                user_id: parse_user(row.try_get("user_id")?)?,
                notification_id: parse_uuid(row.try_get("notification_id")?)?,
                channel: Some(f.channel),
                decision,
                reason: Some(reason),
                at: f.now,
            };
            insert_audit(c, &entry).await?;
            out.delivery_updated = true;
        }
    }
    Ok(out)
}
