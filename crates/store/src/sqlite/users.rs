//! Users with their devices and preferences, and the state the engine reads of each.

use async_trait::async_trait;
use herald_domain::UserId;
use herald_domain::device::DeviceSpec;
use herald_domain::preferences::StoredPreferences;
use herald_domain::user::User;
use jiff::Timestamp;
use sqlx::Row;
use uuid::Uuid;

use super::SqliteStore;
use super::cache::Touches;
use super::decide;
use super::rows::{device_row, opt_ms};
use super::writes::ensure_user;
use crate::StoreResult;
use crate::UserStore;
use crate::records::*;
use crate::{StoreError, from_ms, to_ms};

#[async_trait]
impl UserStore for SqliteStore {
    async fn get_user(&self, id: &UserId) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query("SELECT profile, created_at, updated_at, erased_at FROM users WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(UserRecord {
                user: serde_json::from_str(r.try_get("profile")?)?,
                created_at: from_ms(r.try_get("created_at")?),
                updated_at: from_ms(r.try_get("updated_at")?),
                erased_at: opt_ms(r.try_get("erased_at")?),
            })
        })
        .transpose()
    }

    async fn put_user(&self, user: &User, now: Timestamp) -> StoreResult<UserRecord> {
        let user = user.clone();
        let _touch = self.cache.write(Touches::User(user.id.clone()));
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let row = sqlx::query(
                        "INSERT INTO users (id, profile, created_at, updated_at) VALUES (?, ?, ?, ?) \
                         ON CONFLICT (id) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at, erased_at = NULL \
                         RETURNING created_at, updated_at",
                    )
                    .bind(user.id.as_str())
                    .bind(serde_json::to_string(&user)?)
                    .bind(to_ms(now))
                    .bind(to_ms(now))
                    .fetch_one(c)
                    .await?;
                    Ok(UserRecord {
                        created_at: from_ms(row.try_get("created_at")?),
                        updated_at: from_ms(row.try_get("updated_at")?),
                        erased_at: None,
                        user,
                    })
                })
            })
            .await
    }

    async fn erase_user(&self, id: &UserId, now: Timestamp) -> StoreResult<bool> {
        let id = id.clone();
        let _touch = self.cache.write(Touches::User(id.clone()));
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let r = sqlx::query(
                        "UPDATE users SET profile = ?, preferences = NULL, erased_at = ?, updated_at = ? WHERE id = ?",
                    )
                    .bind(serde_json::to_string(&User::bare(id.clone()))?)
                    .bind(to_ms(now))
                    .bind(to_ms(now))
                    .bind(id.as_str())
                    .execute(&mut *c)
                    .await?;
                    if r.rows_affected() == 0 {
                        return Ok(false);
                    }
                    for sql in [
                        "DELETE FROM devices WHERE user_id = ?",
                        "DELETE FROM inbox WHERE user_id = ?",
                        "DELETE FROM inbox_counts WHERE user_id = ?",
                        "DELETE FROM topic_subscribers WHERE user_id = ?",
                        "UPDATE deliveries SET status = 'suppressed', error = 'erased', payload = '{}' \
                         WHERE user_id = ? AND status IN ('queued', 'sending')",
                        "UPDATE deliveries SET payload = '{}', dead_at = NULL WHERE user_id = ?",
                    ] {
                        sqlx::query(sql).bind(id.as_str()).execute(&mut *c).await?;
                    }
                    Ok(true)
                })
            })
            .await
    }

    async fn add_device(&self, user: &UserId, spec: &DeviceSpec, now: Timestamp) -> StoreResult<DeviceRecord> {
        let rec = DeviceRecord { id: Uuid::now_v7(), user_id: user.clone(), spec: spec.clone(), created_at: now };
        let _touch = self.cache.write(Touches::User(user.clone()));
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    ensure_user(c, &rec.user_id, to_ms(now)).await?;
                    sqlx::query("INSERT INTO devices (id, user_id, kind, spec, created_at) VALUES (?, ?, ?, ?, ?)")
                        .bind(rec.id.to_string())
                        .bind(rec.user_id.as_str())
                        .bind(rec.spec.kind())
                        .bind(serde_json::to_string(&rec.spec)?)
                        .bind(to_ms(now))
                        .execute(&mut *c)
                        .await?;
                    Ok(rec)
                })
            })
            .await
    }

    async fn list_devices(&self, user: &UserId) -> StoreResult<Vec<DeviceRecord>> {
        sqlx::query("SELECT * FROM devices WHERE user_id = ? ORDER BY created_at, id")
            .bind(user.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(device_row)
            .collect()
    }

    async fn delete_device(&self, user: &UserId, id: Uuid) -> StoreResult<bool> {
        let user = user.clone();
        let _touch = self.cache.write(Touches::User(user.clone()));
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let r = sqlx::query("DELETE FROM devices WHERE id = ? AND user_id = ?")
                        .bind(id.to_string())
                        .bind(user.as_str())
                        .execute(c)
                        .await?;
                    Ok(r.rows_affected() > 0)
                })
            })
            .await
    }

    async fn get_preferences(&self, user: &UserId) -> StoreResult<Option<StoredPreferences>> {
        let v: Option<Option<String>> = sqlx::query_scalar("SELECT preferences FROM users WHERE id = ?")
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await?;
        v.flatten().map(|s| serde_json::from_str(&s).map_err(StoreError::from)).transpose()
    }

    async fn put_preferences(&self, user: &UserId, prefs: &StoredPreferences, now: Timestamp) -> StoreResult<()> {
        let user = user.clone();
        let json = serde_json::to_string(prefs)?;
        let _touch = self.cache.write(Touches::User(user.clone()));
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    ensure_user(c, &user, to_ms(now)).await?;
                    sqlx::query("UPDATE users SET preferences = ?, updated_at = ? WHERE id = ?")
                        .bind(json)
                        .bind(to_ms(now))
                        .bind(user.as_str())
                        .execute(&mut *c)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn user_states(&self, users: &[UserId]) -> StoreResult<Vec<UserState>> {
        let Some(snapshot) = self.cache.snapshot() else { return decide::user_states(&self.pool, users).await };
        let mut states = self.cache.users(users);
        let missing: Vec<UserId> =
            users.iter().zip(&states).filter(|(_, s)| s.is_none()).map(|(u, _)| u.clone()).collect();
        if !missing.is_empty() {
            let read = decide::user_states(&self.pool, &missing).await?;
            self.cache.keep_users(snapshot, &read);
            let mut read = read.into_iter();
            for slot in states.iter_mut().filter(|s| s.is_none()) {
                *slot = read.next();
            }
        }
        states.into_iter().map(|s| s.ok_or_else(|| StoreError::Corrupt("a user state went missing".into()))).collect()
    }
}
