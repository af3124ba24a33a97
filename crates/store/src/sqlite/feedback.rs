//! Provider feedback in SQLite: one report becomes address blocks, channel switches, removed
//! devices and a bounced delivery, in the same transaction; and the late statuses providers
//! report about deliveries they accepted.

use herald_domain::Channel;
use herald_domain::DeliveryStatus;
use herald_domain::reason::{Decision, Reason};
use rusqlite::{Connection, params};

use async_trait::async_trait;

use super::SqliteStore;
use super::cache::Touches;
use super::paging::{List, fetch};
use super::rows::{all, code_at, exec, first, user_at, uuid_at};
use super::writes::{hand_over, insert_audits, stand_down};
use crate::cursor::{Cursor, Page};
use crate::queue::Lease;
use crate::{
    AddressBlockRecord, AuditEntry, BlockKind, Feedback, FeedbackKind, FeedbackOutcome, FinalStatus, ProviderStatus,
    Updated,
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
pub(super) fn apply(c: &Connection, f: &Feedback) -> StoreResult<FeedbackOutcome> {
    let now = to_ms(f.now);
    let mut out = FeedbackOutcome::default();
    match f.kind {
        FeedbackKind::HardBounce | FeedbackKind::Stop => {
            block(c, f, now)?;
            out.address_blocked = true;
        }
        FeedbackKind::Start => out.address_unblocked = unblock(c, f)?,
        FeedbackKind::Complaint | FeedbackKind::Unsubscribe => out.users_affected = switch_off(c, f, now)?,
        FeedbackKind::InvalidToken => {
            out.devices_removed = exec(
                c,
                "DELETE FROM devices WHERE json_extract(spec, '$.token') = ?1 \
                 OR json_extract(spec, '$.subscription.endpoint') = ?1 OR json_extract(spec, '$.url') = ?1",
                [&f.address],
            )?;
        }
    }
    out.delivery_updated = settle_delivery(c, f, now)?;
    Ok(out)
}

/// Blocks the reported address, as a hard bounce or a STOP.
fn block(c: &Connection, f: &Feedback, now: i64) -> StoreResult<()> {
    let kind = if f.kind == FeedbackKind::Stop { BlockKind::Stop } else { BlockKind::HardBounce };
    // A hard bounce outranks a STOP: a START must not unblock an address that does not exist.
    exec(
        c,
        "INSERT INTO address_blocks (channel, address, kind, created_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (channel, address) DO UPDATE SET kind = ?5 WHERE ?3 = ?5",
        params![f.channel.as_str(), f.address, kind.as_str(), now, BlockKind::HardBounce.as_str()],
    )?;
    Ok(())
}

/// Lifts a STOP on the reported address, answering whether there was one.
fn unblock(c: &Connection, f: &Feedback) -> StoreResult<bool> {
    let n = exec(
        c,
        "DELETE FROM address_blocks WHERE channel = ? AND address = ? AND kind = ?",
        params![f.channel.as_str(), f.address, BlockKind::Stop.as_str()],
    )?;
    Ok(n > 0)
}

/// Switches the channel off for the users with the reported address, answering how many.
fn switch_off(c: &Connection, f: &Feedback, now: i64) -> StoreResult<u64> {
    let Some(path) = contact_path(f.channel) else {
        return Err(StoreError::Database(format!("{} has no contact address to switch off", f.channel)));
    };
    let switch = format!("$.channels.{}", f.channel.as_str());
    exec(
        c,
        "UPDATE users SET preferences = json_set(COALESCE(preferences, '{}'), ?1, json('false')), updated_at = ?2 \
         WHERE json_extract(profile, ?3) = ?4 AND erased_at IS NULL",
        params![switch, now, path, f.address],
    )
}

/// Records what the report says about the delivery it names, with its audit line, answering
/// whether there was such a delivery.
fn settle_delivery(c: &Connection, f: &Feedback, now: i64) -> StoreResult<bool> {
    let Some(id) = f.delivery_id else { return Ok(false) };
    let (status, reason) = match f.kind {
        FeedbackKind::HardBounce => (DeliveryStatus::Bounced, Reason::HardBounce),
        FeedbackKind::InvalidToken => (DeliveryStatus::Bounced, Reason::InvalidToken),
        // The message arrived; the recipient did not want it.
        FeedbackKind::Complaint => (DeliveryStatus::Delivered, Reason::Complaint),
        FeedbackKind::Unsubscribe => (DeliveryStatus::Delivered, Reason::Unsubscribed),
        // Keywords are about the number, never about one delivery.
        FeedbackKind::Stop | FeedbackKind::Start => return Ok(false),
    };
    let row = first(
        c,
        "UPDATE deliveries SET status = ?, error = ?, updated_at = ? WHERE id = ? AND channel = ? \
         RETURNING notification_id, user_id",
        params![status.as_str(), reason.as_str(), now, id.to_string(), f.channel.as_str()],
        |r| Ok((user_at(r, "user_id")?, uuid_at(r, "notification_id")?)),
    )?;
    let Some((user_id, notification_id)) = row else { return Ok(false) };
    let decision = if status == DeliveryStatus::Bounced { Decision::Bounced } else { Decision::Delivered };
    let entry =
        AuditEntry { user_id, notification_id, channel: Some(f.channel), decision, reason: Some(reason), at: f.now };
    insert_audits(c, [&entry])?;
    Ok(true)
}

/// Records a provider's late report on a delivery; see [`crate::Store::provider_status`].
pub(super) fn provider_status(c: &Connection, r: &ProviderStatus, lease: Lease) -> StoreResult<Updated> {
    let (status, decision) = match r.status {
        FinalStatus::Delivered => (DeliveryStatus::Delivered, Decision::Delivered),
        FinalStatus::Failed => (DeliveryStatus::Failed, Decision::Failed),
        FinalStatus::Bounced => (DeliveryStatus::Bounced, Decision::Bounced),
    };
    let now = to_ms(r.now);
    // `queued` too: an attempt that timed out at Herald's end may still have been accepted, and
    // its report must stop the retry that would send it twice.
    let row = first(
        c,
        "UPDATE deliveries SET status = ?1, error = ?2, updated_at = ?3, next_attempt_at = NULL, \
         dead_at = CASE WHEN ?1 = 'failed' THEN ?3 END \
         WHERE id = ?4 AND channel = ?5 AND status IN ('queued', 'sending', 'sent') \
         AND (?6 IS NULL OR ?1 = 'delivered' OR attempts = ?6) RETURNING notification_id, user_id",
        params![status.as_str(), r.error, now, r.delivery_id.to_string(), r.channel.as_str(), r.attempt.map(i64::from)],
        |row| Ok((user_at(row, "user_id")?, uuid_at(row, "notification_id")?)),
    )?;
    let Some((user_id, notification_id)) = row else { return Ok(Updated::Closed) };
    let entry =
        AuditEntry { user_id, notification_id, channel: Some(r.channel), decision, reason: r.reason, at: r.now };
    insert_audits(c, [&entry])?;
    let next = match r.status {
        // The report may beat the dispatcher's own record of the send, which would stand them down.
        FinalStatus::Delivered => {
            stand_down(c, entry.notification_id, &entry.user_id, r.now)?;
            None
        }
        FinalStatus::Failed | FinalStatus::Bounced => {
            hand_over(c, entry.notification_id, &entry.user_id, r.now, true, lease)?.map(Box::new)
        }
    };
    Ok(Updated::Recorded(next))
}

#[async_trait]
impl FeedbackStore for SqliteStore {
    async fn apply_feedback(&self, f: Feedback) -> StoreResult<FeedbackOutcome> {
        let _touch = self.cache.write(Touches::Everything);
        self.writer.write(move |c| apply(c, &f)).await
    }

    async fn address_blocks(
        &self,
        channel: Option<Channel>,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<Page<AddressBlockRecord>> {
        let after = List::AddressBlocks.seq(cursor, "")?;
        let rows = self
            .reads
            .read(move |c| {
                all(
                    c,
                    "SELECT rowid, channel, address, kind, created_at FROM address_blocks \
                     WHERE (?1 IS NULL OR channel = ?1) AND rowid > ?2 ORDER BY rowid LIMIT ?3",
                    params![channel.map(Channel::as_str), after.unwrap_or(0), fetch(limit)],
                    |r| {
                        let channel = r.get::<_, String>("channel")?.parse().map_err(StoreError::Corrupt)?;
                        let block = AddressBlockRecord {
                            channel,
                            address: r.get("address")?,
                            kind: code_at(r, "kind")?,
                            created_at: from_ms(r.get("created_at")?),
                        };
                        Ok((r.get("rowid")?, block))
                    },
                )
            })
            .await?;
        Ok(List::AddressBlocks.page_by_seq(rows, limit, ""))
    }

    async fn remove_address_block(&self, channel: Channel, address: &str) -> StoreResult<bool> {
        let address = address.to_owned();
        let _touch = self.cache.write(Touches::Everything);
        self.writer
            .write(move |c| {
                let sql = "DELETE FROM address_blocks WHERE channel = ? AND address = ?";
                Ok(exec(c, sql, params![channel.as_str(), address])? > 0)
            })
            .await
    }
}
