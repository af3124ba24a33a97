//! Provider feedback in SQLite: one report becomes address blocks, channel switches, removed
//! devices and a bounced delivery, in the same transaction; and the late statuses providers
//! report about deliveries they accepted.

use herald_domain::Channel;
use herald_domain::reason::{Decision, Reason};
use sqlx::{Row, SqliteConnection};

use async_trait::async_trait;

use super::SqliteStore;
use super::cache::Touches;
use super::rows::{parse_user, parse_uuid};
use super::writes::{hand_over, insert_audit, stand_down};
use crate::records::{
    AddressBlockRecord, AuditEntry, Feedback, FeedbackKind, FeedbackOutcome, FinalStatus, ProviderStatus, Updated,
};
use crate::{FeedbackStore, StoreError, StoreResult, from_ms, to_ms};

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
        FeedbackKind::HardBounce | FeedbackKind::Stop => {
            let kind = if f.kind == FeedbackKind::Stop { "stop" } else { "hard_bounce" };
            // A hard bounce outranks a STOP: a START must not unblock an address that does not exist.
            sqlx::query(
                "INSERT INTO address_blocks (channel, address, kind, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (channel, address) DO UPDATE SET kind = 'hard_bounce' WHERE ?3 = 'hard_bounce'",
            )
            .bind(f.channel.as_str())
            .bind(&f.address)
            .bind(kind)
            .bind(now)
            .execute(&mut *c)
            .await?;
            out.address_blocked = true;
        }
        FeedbackKind::Start => {
            let r = sqlx::query("DELETE FROM address_blocks WHERE channel = ? AND address = ? AND kind = 'stop'")
                .bind(f.channel.as_str())
                .bind(&f.address)
                .execute(&mut *c)
                .await?;
            out.address_unblocked = r.rows_affected() > 0;
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
    let about = f.delivery_id.and_then(|id| {
        let (status, reason) = match f.kind {
            FeedbackKind::HardBounce => ("bounced", Reason::HardBounce),
            FeedbackKind::InvalidToken => ("bounced", Reason::InvalidToken),
            // The message arrived; the recipient did not want it.
            FeedbackKind::Complaint => ("delivered", Reason::Complaint),
            FeedbackKind::Unsubscribe => ("delivered", Reason::Unsubscribed),
            // Keywords are about the number, never about one delivery.
            FeedbackKind::Stop | FeedbackKind::Start => return None,
        };
        Some((id, status, reason))
    });
    if let Some((id, status, reason)) = about {
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

/// Records a provider's late report on a delivery; see [`crate::Store::provider_status`].
pub(super) async fn provider_status(c: &mut SqliteConnection, r: &ProviderStatus) -> StoreResult<Updated> {
    let (status, decision) = match r.status {
        FinalStatus::Delivered => ("delivered", Decision::Delivered),
        FinalStatus::Failed => ("failed", Decision::Failed),
        FinalStatus::Bounced => ("bounced", Decision::Bounced),
    };
    let now = to_ms(r.now);
    // `queued` too: an attempt that timed out at Herald's end may still have been accepted, and
    // its report must stop the retry that would send it twice.
    let row = sqlx::query(
        "UPDATE deliveries SET status = ?1, error = ?2, updated_at = ?3, next_attempt_at = NULL, \
         dead_at = CASE WHEN ?1 = 'failed' THEN ?3 END \
         WHERE id = ?4 AND channel = ?5 AND status IN ('queued', 'sending', 'sent') \
         AND (?6 IS NULL OR ?1 = 'delivered' OR attempts = ?6) RETURNING notification_id, user_id",
    )
    .bind(status)
    .bind(&r.error)
    .bind(now)
    .bind(r.delivery_id.to_string())
    .bind(r.channel.as_str())
    .bind(r.attempt.map(i64::from))
    .fetch_optional(&mut *c)
    .await?;
    let Some(row) = row else { return Ok(Updated::Closed) };
    let entry = AuditEntry {
        user_id: parse_user(row.try_get("user_id")?)?,
        notification_id: parse_uuid(row.try_get("notification_id")?)?,
        channel: Some(r.channel),
        decision,
        reason: r.reason,
        at: r.now,
    };
    insert_audit(c, &entry).await?;
    let next = match r.status {
        // The report may beat the dispatcher's own record of the send, which would stand them down.
        FinalStatus::Delivered => {
            stand_down(c, entry.notification_id, &entry.user_id, r.now).await?;
            None
        }
        FinalStatus::Failed | FinalStatus::Bounced => {
            hand_over(c, entry.notification_id, &entry.user_id, r.now, true).await?.map(Box::new)
        }
    };
    Ok(Updated::Recorded(next))
}

#[async_trait]
impl FeedbackStore for SqliteStore {
    async fn apply_feedback(&self, f: Feedback) -> StoreResult<FeedbackOutcome> {
        let _touch = self.cache.write(Touches::Everything);
        self.writer.write(move |c| Box::pin(async move { apply(c, &f).await })).await
    }

    async fn address_blocks(
        &self,
        channel: Option<Channel>,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<(i64, AddressBlockRecord)>> {
        let rows: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
            "SELECT rowid, channel, address, kind, created_at FROM address_blocks \
             WHERE (?1 IS NULL OR channel = ?1) AND rowid > ?2 ORDER BY rowid LIMIT ?3",
        )
        .bind(channel.map(Channel::as_str))
        .bind(after.unwrap_or(0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(seq, channel, address, kind, at)| {
                let channel = channel.parse().map_err(StoreError::Corrupt)?;
                Ok((seq, AddressBlockRecord { channel, address, kind, created_at: from_ms(at) }))
            })
            .collect()
    }

    async fn remove_address_block(&self, channel: Channel, address: &str) -> StoreResult<bool> {
        let address = address.to_owned();
        let _touch = self.cache.write(Touches::Everything);
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let r = sqlx::query("DELETE FROM address_blocks WHERE channel = ? AND address = ?")
                        .bind(channel.as_str())
                        .bind(&address)
                        .execute(&mut *c)
                        .await?;
                    Ok(r.rows_affected() > 0)
                })
            })
            .await
    }
}
