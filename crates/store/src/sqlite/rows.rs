//! Row mapping shared by every concern: ids, times and the records read back from rows.

use herald_domain::notification::NotificationSpec;
use herald_domain::{Class, UserId};
use jiff::Timestamp;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use crate::StoreResult;
use crate::records::*;
use crate::{StoreError, from_ms};

pub(super) fn parse_uuid(s: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(s).map_err(|e| StoreError::Corrupt(format!("bad uuid {s}: {e}")))
}

pub(super) fn parse_user(s: &str) -> StoreResult<UserId> {
    UserId::parse("user_id", s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn opt_ms(v: Option<i64>) -> Option<Timestamp> {
    v.map(from_ms)
}

pub(super) fn api_key_row(r: &SqliteRow) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: parse_uuid(r.try_get("id")?)?,
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        hash: r.try_get("hash")?,
        created_at: from_ms(r.try_get("created_at")?),
        revoked_at: opt_ms(r.try_get("revoked_at")?),
    })
}

pub(super) fn device_row(r: &SqliteRow) -> StoreResult<DeviceRecord> {
    Ok(DeviceRecord {
        id: parse_uuid(r.try_get("id")?)?,
        user_id: parse_user(r.try_get("user_id")?)?,
        spec: serde_json::from_str(r.try_get("spec")?)?,
        created_at: from_ms(r.try_get("created_at")?),
    })
}

pub(super) fn inbox_row(r: &SqliteRow) -> StoreResult<InboxItem> {
    Ok(InboxItem {
        seq: r.try_get("seq")?,
        id: parse_uuid(r.try_get("id")?)?,
        user_id: r.try_get("user_id")?,
        notification_id: parse_uuid(r.try_get("notification_id")?)?,
        title: r.try_get("title")?,
        body: r.try_get("body")?,
        action_url: r.try_get("action_url")?,
        category: r.try_get("category")?,
        created_at: from_ms(r.try_get("created_at")?),
        read_at: opt_ms(r.try_get("read_at")?),
    })
}

pub(super) fn delivery_row(r: &SqliteRow) -> StoreResult<DeliveryRecord> {
    let channel: String = r.try_get("channel")?;
    Ok(DeliveryRecord {
        id: parse_uuid(r.try_get("id")?)?,
        notification_id: parse_uuid(r.try_get("notification_id")?)?,
        user_id: r.try_get("user_id")?,
        channel: channel.parse().map_err(StoreError::Corrupt)?,
        status: r.try_get("status")?,
        attempts: r.try_get::<i64, _>("attempts")? as u32,
        provider: r.try_get("provider")?,
        error: r.try_get("error")?,
        payload: serde_json::from_str(r.try_get("payload")?)?,
        next_attempt_at: opt_ms(r.try_get("next_attempt_at")?),
        class: r
            .try_get::<Option<String>, _>("class")?
            .map(|c| c.parse::<Class>().map_err(StoreError::Corrupt))
            .transpose()?,
        created_at: from_ms(r.try_get("created_at")?),
        dispatched_at: opt_ms(r.try_get("dispatched_at")?),
        dead_at: opt_ms(r.try_get("dead_at")?),
        updated_at: from_ms(r.try_get("updated_at")?),
    })
}

pub(super) fn notification_row(r: &SqliteRow) -> StoreResult<NotificationRecord> {
    let class: String = r.try_get("class")?;
    Ok(NotificationRecord {
        id: parse_uuid(r.try_get("id")?)?,
        template: r.try_get("template")?,
        class: class.parse::<Class>().map_err(StoreError::Corrupt)?,
        spec: serde_json::from_str::<NotificationSpec>(r.try_get("spec")?)?,
        recipients_total: r.try_get::<i64, _>("recipients_total")? as u64,
        created_at: from_ms(r.try_get("created_at")?),
        cancelled_at: opt_ms(r.try_get("cancelled_at")?),
        fingerprint: r.try_get("fingerprint")?,
        repeated: r.try_get::<i64, _>("repeated")? != 0,
    })
}

pub(super) const INBOX_COLUMNS: &str =
    "seq, id, user_id, notification_id, title, body, action_url, category, created_at, read_at";

pub(super) const DELIVERY_COLUMNS: &str = "id, notification_id, user_id, channel, status, attempts, provider, error, payload, \
     next_attempt_at, class, created_at, dispatched_at, dead_at, updated_at";
