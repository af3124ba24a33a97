//! Row mapping shared by every concern: ids, times and the records read back from rows, and the
//! few ways every concern runs a statement (each prepared once per connection and cached).

use std::str::FromStr;

use herald_domain::code::UnknownCode;
use herald_domain::notification::NotificationSpec;
use herald_domain::{Class, UserId};
use jiff::Timestamp;
use rusqlite::{Connection, Params, Row};
use uuid::Uuid;

use crate::StoreResult;
use crate::*;
use crate::{StoreError, from_ms};

pub(super) fn parse_uuid(s: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(s).map_err(|e| StoreError::Corrupt(format!("bad uuid {s}: {e}")))
}

pub(super) fn parse_user(s: &str) -> StoreResult<UserId> {
    UserId::parse("user_id", s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A closed set's member from the code stored for it: the one way stored codes are read.
pub(super) fn parse_code<T: FromStr<Err = UnknownCode>>(s: &str) -> StoreResult<T> {
    s.parse().map_err(|e: UnknownCode| StoreError::Corrupt(e.to_string()))
}

/// A closed set's member stored as its code in column `col`.
pub(super) fn code_at<T: FromStr<Err = UnknownCode>>(r: &Row<'_>, col: &str) -> StoreResult<T> {
    parse_code(&r.get::<_, String>(col)?)
}

/// A closed set's member stored as its code in column `col`, or `NULL`.
pub(super) fn opt_code_at<T: FromStr<Err = UnknownCode>>(r: &Row<'_>, col: &str) -> StoreResult<Option<T>> {
    r.get::<_, Option<String>>(col)?.as_deref().map(parse_code).transpose()
}

/// Runs a statement that returns no rows; the number of rows it changed.
pub(super) fn exec(c: &Connection, sql: &str, params: impl Params) -> StoreResult<u64> {
    Ok(c.prepare_cached(sql)?.execute(params)? as u64)
}

/// Every row of a query, each mapped by `f`.
pub(super) fn all<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    mut f: impl FnMut(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}

/// The first row of a query, if any, mapped by `f`.
pub(super) fn first<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    f: impl FnOnce(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    rows.next()?.map(f).transpose()
}

/// The one row a query always returns, mapped by `f`.
pub(super) fn one<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    f: impl FnOnce(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<T> {
    first(c, sql, params, f)?.ok_or_else(|| StoreError::Database("a query returned no row".into()))
}

/// The first column of a row.
pub(super) fn col0<T: rusqlite::types::FromSql>(r: &Row<'_>) -> StoreResult<T> {
    Ok(r.get(0)?)
}

/// A uuid stored as text in column `col`.
pub(super) fn uuid_at(r: &Row<'_>, col: &str) -> StoreResult<Uuid> {
    parse_uuid(&r.get::<_, String>(col)?)
}

/// A user id stored in column `col`.
pub(super) fn user_at(r: &Row<'_>, col: &str) -> StoreResult<UserId> {
    parse_user(&r.get::<_, String>(col)?)
}

pub(super) fn opt_ms(v: Option<i64>) -> Option<Timestamp> {
    v.map(from_ms)
}

pub(super) fn api_key_row(r: &Row<'_>) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: uuid_at(r, "id")?,
        name: r.get("name")?,
        prefix: r.get("prefix")?,
        hash: r.get("hash")?,
        created_at: from_ms(r.get("created_at")?),
        revoked_at: opt_ms(r.get("revoked_at")?),
    })
}

pub(super) fn device_row(r: &Row<'_>) -> StoreResult<DeviceRecord> {
    Ok(DeviceRecord {
        id: uuid_at(r, "id")?,
        user_id: user_at(r, "user_id")?,
        spec: serde_json::from_str(&r.get::<_, String>("spec")?)?,
        created_at: from_ms(r.get("created_at")?),
    })
}

pub(super) fn inbox_row(r: &Row<'_>) -> StoreResult<InboxItem> {
    Ok(InboxItem {
        seq: r.get("seq")?,
        id: uuid_at(r, "id")?,
        user_id: r.get("user_id")?,
        notification_id: uuid_at(r, "notification_id")?,
        title: r.get("title")?,
        body: r.get("body")?,
        action_url: r.get("action_url")?,
        category: r.get("category")?,
        created_at: from_ms(r.get("created_at")?),
        read_at: opt_ms(r.get("read_at")?),
    })
}

pub(super) fn delivery_row(r: &Row<'_>) -> StoreResult<DeliveryRecord> {
    let channel: String = r.get("channel")?;
    Ok(DeliveryRecord {
        id: uuid_at(r, "id")?,
        notification_id: uuid_at(r, "notification_id")?,
        user_id: r.get("user_id")?,
        channel: channel.parse().map_err(StoreError::Corrupt)?,
        status: code_at(r, "status")?,
        attempts: r.get::<_, i64>("attempts")? as u32,
        provider: r.get("provider")?,
        error: r.get("error")?,
        payload: serde_json::from_str(&r.get::<_, String>("payload")?)?,
        next_attempt_at: opt_ms(r.get("next_attempt_at")?),
        class: r
            .get::<_, Option<String>>("class")?
            .map(|c| c.parse::<Class>().map_err(StoreError::Corrupt))
            .transpose()?,
        created_at: from_ms(r.get("created_at")?),
        dispatched_at: opt_ms(r.get("dispatched_at")?),
        dead_at: opt_ms(r.get("dead_at")?),
        updated_at: from_ms(r.get("updated_at")?),
    })
}

pub(super) fn notification_row(r: &Row<'_>) -> StoreResult<NotificationRecord> {
    let class: String = r.get("class")?;
    Ok(NotificationRecord {
        id: uuid_at(r, "id")?,
        template: r.get("template")?,
        class: class.parse::<Class>().map_err(StoreError::Corrupt)?,
        spec: serde_json::from_str::<NotificationSpec>(&r.get::<_, String>("spec")?)?,
        recipients_total: r.get::<_, i64>("recipients_total")? as u64,
        created_at: from_ms(r.get("created_at")?),
        cancelled_at: opt_ms(r.get("cancelled_at")?),
        fingerprint: r.get("fingerprint")?,
        repeated: r.get::<_, i64>("repeated")? != 0,
    })
}

pub(super) const INBOX_COLUMNS: &str =
    "seq, id, user_id, notification_id, title, body, action_url, category, created_at, read_at";

pub(super) const DELIVERY_COLUMNS: &str = "id, notification_id, user_id, channel, status, attempts, provider, error, payload, \
     next_attempt_at, class, created_at, dispatched_at, dead_at, updated_at";
