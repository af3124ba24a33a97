//! Users with their devices and preferences, and the state the engine reads of each.

use async_trait::async_trait;
use herald_domain::UserId;
use herald_domain::device::DeviceSpec;
use herald_domain::preferences::StoredPreferences;
use herald_domain::user::User;
use jiff::Timestamp;
use rusqlite::params;
use uuid::Uuid;

use super::SqliteStore;
use super::cache::Touches;
use super::decide;
use super::rows::{all, col0, device_row, exec, first, one, opt_ms};
use super::writes::ensure_user;
use crate::StoreResult;
use crate::UserStore;
use crate::*;
use crate::{StoreError, from_ms, to_ms};

#[async_trait]
impl UserStore for SqliteStore {
    async fn get_user(&self, id: &UserId) -> StoreResult<Option<UserRecord>> {
        let id = id.as_str().to_owned();
        self.reads
            .read(move |c| {
                first(c, "SELECT profile, created_at, updated_at, erased_at FROM users WHERE id = ?", [id], |r| {
                    Ok(UserRecord {
                        user: serde_json::from_str(&r.get::<_, String>("profile")?)?,
                        created_at: from_ms(r.get("created_at")?),
                        updated_at: from_ms(r.get("updated_at")?),
                        erased_at: opt_ms(r.get("erased_at")?),
                    })
                })
            })
            .await
    }

    async fn put_user(&self, user: &User, now: Timestamp) -> StoreResult<UserRecord> {
        let user = user.clone();
        let _touch = self.cache.write(Touches::User(user.id.clone()));
        self.writer
            .write(move |c| {
                let (created_at, updated_at) = one(
                    c,
                    "INSERT INTO users (id, profile, created_at, updated_at) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (id) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at, erased_at = NULL \
                     RETURNING created_at, updated_at",
                    params![user.id.as_str(), serde_json::to_string(&user)?, to_ms(now), to_ms(now)],
                    |r| Ok((from_ms(r.get(0)?), from_ms(r.get(1)?))),
                )?;
                Ok(UserRecord { created_at, updated_at, erased_at: None, user })
            })
            .await
    }

    async fn erase_user(&self, id: &UserId, now: Timestamp) -> StoreResult<bool> {
        let id = id.clone();
        let _touch = self.cache.write(Touches::User(id.clone()));
        self.writer
            .write(move |c| {
                let erased = exec(
                    c,
                    "UPDATE users SET profile = ?, preferences = NULL, erased_at = ?, updated_at = ? WHERE id = ?",
                    params![serde_json::to_string(&User::bare(id.clone()))?, to_ms(now), to_ms(now), id.as_str()],
                )?;
                if erased == 0 {
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
                    exec(c, sql, [id.as_str()])?;
                }
                Ok(true)
            })
            .await
    }

    async fn add_device(&self, user: &UserId, spec: &DeviceSpec, now: Timestamp) -> StoreResult<DeviceRecord> {
        let rec = DeviceRecord { id: Uuid::now_v7(), user_id: user.clone(), spec: spec.clone(), created_at: now };
        let _touch = self.cache.write(Touches::User(user.clone()));
        self.writer
            .write(move |c| {
                ensure_user(c, &rec.user_id, to_ms(now))?;
                exec(
                    c,
                    "INSERT INTO devices (id, user_id, kind, spec, created_at) VALUES (?, ?, ?, ?, ?)",
                    params![
                        rec.id.to_string(),
                        rec.user_id.as_str(),
                        rec.spec.kind(),
                        serde_json::to_string(&rec.spec)?,
                        to_ms(now)
                    ],
                )?;
                Ok(rec)
            })
            .await
    }

    async fn list_devices(&self, user: &UserId) -> StoreResult<Vec<DeviceRecord>> {
        let user = user.as_str().to_owned();
        self.reads
            .read(move |c| {
                all(c, "SELECT * FROM devices WHERE user_id = ? ORDER BY created_at, id", [user], device_row)
            })
            .await
    }

    async fn delete_device(&self, user: &UserId, id: Uuid) -> StoreResult<bool> {
        let user = user.clone();
        let _touch = self.cache.write(Touches::User(user.clone()));
        self.writer
            .write(move |c| {
                let sql = "DELETE FROM devices WHERE id = ? AND user_id = ?";
                Ok(exec(c, sql, params![id.to_string(), user.as_str()])? > 0)
            })
            .await
    }

    async fn get_preferences(&self, user: &UserId) -> StoreResult<Option<StoredPreferences>> {
        let user = user.as_str().to_owned();
        let v: Option<Option<String>> =
            self.reads.read(move |c| first(c, "SELECT preferences FROM users WHERE id = ?", [user], col0)).await?;
        v.flatten().map(|s| serde_json::from_str(&s).map_err(StoreError::from)).transpose()
    }

    async fn put_preferences(&self, user: &UserId, prefs: &StoredPreferences, now: Timestamp) -> StoreResult<()> {
        let user = user.clone();
        let json = serde_json::to_string(prefs)?;
        let _touch = self.cache.write(Touches::User(user.clone()));
        self.writer
            .write(move |c| {
                ensure_user(c, &user, to_ms(now))?;
                exec(
                    c,
                    "UPDATE users SET preferences = ?, updated_at = ? WHERE id = ?",
                    params![json, to_ms(now), user.as_str()],
                )?;
                Ok(())
            })
            .await
    }

    async fn user_states(&self, users: &[UserId]) -> StoreResult<Vec<UserState>> {
        let Some(snapshot) = self.cache.snapshot() else { return self.read_user_states(users.to_vec()).await };
        let mut states = self.cache.users(users);
        let missing: Vec<UserId> =
            users.iter().zip(&states).filter(|(_, s)| s.is_none()).map(|(u, _)| u.clone()).collect();
        if !missing.is_empty() {
            let read = self.read_user_states(missing).await?;
            self.cache.keep_users(snapshot, &read);
            let mut read = read.into_iter();
            for slot in states.iter_mut().filter(|s| s.is_none()) {
                *slot = read.next();
            }
        }
        states.into_iter().map(|s| s.ok_or_else(|| StoreError::Corrupt("a user state went missing".into()))).collect()
    }
}

impl SqliteStore {
    async fn read_user_states(&self, users: Vec<UserId>) -> StoreResult<Vec<UserState>> {
        self.reads.read(move |c| decide::user_states(c, &users)).await
    }
}
