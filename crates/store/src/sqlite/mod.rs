//! The embedded backend: one SQLite file in WAL mode, reads from a pool, writes through the
//! group-commit [`writer`].

mod accept;
mod cache;
mod decide;
mod deliveries;
mod feedback;
mod fold;
mod keys;
mod writer;

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_domain::decision::Interruption;
use herald_domain::device::DeviceSpec;
use herald_domain::ids::{TemplateKey, TopicKey};
use herald_domain::notification::NotificationSpec;
use herald_domain::preferences::StoredPreferences;
use herald_domain::reason::Reason;
use herald_domain::template::TemplateSpec;
use herald_domain::user::User;
use herald_domain::{Channel, Class, UserId};
use jiff::Timestamp;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{ConnectOptions, Row, SqliteConnection, SqlitePool};
use uuid::Uuid;

use crate::records::*;
use crate::{OpenMode, Store, StoreError, StoreResult, from_ms, to_ms};
use cache::{Cache, Touches};
use fold::Fold;
use writer::Writer;

/// Most single requests folded into one batch.
const FOLD_MAX: usize = 2048;
/// Folded batches of one kind written at once: a batch waiting for its commit does not hold the
/// next one out of the writer's queue (the writer puts them in one transaction anyway).
const FOLD_IN_FLIGHT: usize = 4;

/// Schema migrations, applied in order and recorded in `herald_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_engine.sql")),
    (3, include_str!("../../migrations/sqlite/0003_delivery.sql")),
    (4, include_str!("../../migrations/sqlite/0004_inbox_counts.sql")),
    (5, include_str!("../../migrations/sqlite/0005_lean_inbox.sql")),
    (6, include_str!("../../migrations/sqlite/0006_unique_key_names.sql")),
];

/// The SQLite store.
pub struct SqliteStore {
    pool: SqlitePool,
    writer: Writer,
    cache: Arc<Cache>,
    /// Concurrent single accepts, attempt starts and attempt results, folded into batches.
    accepts: Fold<NewNotification, AcceptOutcome>,
    begins: Fold<BeginAttempt, Begin>,
    results: Fold<DeliveryUpdate, Updated>,
    outcomes: Fold<Vec<RecipientOutcome>, Vec<Option<Recorded>>>,
}

fn parse_uuid(s: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(s).map_err(|e| StoreError::Corrupt(format!("bad uuid {s}: {e}")))
}

fn parse_user(s: &str) -> StoreResult<UserId> {
    UserId::parse("user_id", s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn opt_ms(v: Option<i64>) -> Option<Timestamp> {
    v.map(from_ms)
}

impl SqliteStore {
    /// Opens (creating it if `mode` allows) and migrates the database at `url`.
    pub async fn open(url: &str, mode: OpenMode) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(mode == OpenMode::Create)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an answered write survives power loss too, not just a process crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(false)
            // The writer's page cache holds the hot index pages of a busy store (64 MiB).
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory")
            // A larger WAL between checkpoints writes hot pages back to the database less often.
            .pragma("wal_autocheckpoint", "8000");
        if mode == OpenMode::Existing && !opts.get_filename().exists() {
            return Err(StoreError::NoDatabase(opts.get_filename().to_path_buf()));
        }
        let mut conn = opts.connect().await?;
        migrate(&mut conn).await?;
        // Readers start each transaction with an empty cache when the database changed since
        // their last one, which under load is always: a small cache each keeps memory bounded.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(opts.read_only(true).pragma("cache_size", "-8192"))
            .await?;
        let writer = Writer::spawn(conn);
        let cache = Arc::new(Cache::default());
        let accepts = {
            let (writer, cache) = (writer.clone(), cache.clone());
            Fold::spawn(FOLD_MAX, FOLD_IN_FLIGHT, move |ns: Vec<NewNotification>| {
                let (writer, cache) = (writer.clone(), cache.clone());
                async move {
                    let (outcomes, created) =
                        writer.write(move |c| Box::pin(async move { accept::accept_batch(c, &ns).await })).await?;
                    cache.keep_notifications(created);
                    Ok(outcomes)
                }
            })
        };
        let begins = {
            let writer = writer.clone();
            Fold::spawn(FOLD_MAX, FOLD_IN_FLIGHT, move |bs: Vec<BeginAttempt>| {
                let writer = writer.clone();
                async move {
                    writer.write_lazy(move |c| Box::pin(async move { deliveries::begin_attempts(c, &bs).await })).await
                }
            })
        };
        let results = {
            let writer = writer.clone();
            Fold::spawn(FOLD_MAX, FOLD_IN_FLIGHT, move |us: Vec<DeliveryUpdate>| {
                let writer = writer.clone();
                async move {
                    writer
                        .write_lazy(move |c| Box::pin(async move { deliveries::update_deliveries(c, &us).await }))
                        .await
                }
            })
        };
        // Each lane records its batch; the lanes' batches are recorded together.
        let outcomes = {
            let writer = writer.clone();
            Fold::spawn(FOLD_MAX, FOLD_IN_FLIGHT, move |batches: Vec<Vec<RecipientOutcome>>| {
                let writer = writer.clone();
                async move {
                    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
                    let all: Vec<RecipientOutcome> = batches.into_iter().flatten().collect();
                    let mut recorded = writer
                        .write_lazy(move |c| Box::pin(async move { decide::record_outcomes(c, &all).await }))
                        .await?
                        .into_iter();
                    Ok(sizes.into_iter().map(|n| recorded.by_ref().take(n).collect()).collect())
                }
            })
        };
        Ok(Self { pool, writer, cache, accepts, begins, results, outcomes })
    }
}

async fn migrate(conn: &mut SqliteConnection) -> StoreResult<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS herald_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    let done: Vec<i64> = sqlx::query_scalar("SELECT version FROM herald_migrations").fetch_all(&mut *conn).await?;
    for (version, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO herald_migrations (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(to_ms(Timestamp::now()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, "applied migration");
    }
    Ok(())
}

async fn ensure_user(conn: &mut SqliteConnection, id: &UserId, now: i64) -> StoreResult<()> {
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

fn api_key_row(r: &SqliteRow) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: parse_uuid(r.try_get("id")?)?,
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        hash: r.try_get("hash")?,
        created_at: from_ms(r.try_get("created_at")?),
        revoked_at: opt_ms(r.try_get("revoked_at")?),
    })
}

fn device_row(r: &SqliteRow) -> StoreResult<DeviceRecord> {
    Ok(DeviceRecord {
        id: parse_uuid(r.try_get("id")?)?,
        user_id: parse_user(r.try_get("user_id")?)?,
        spec: serde_json::from_str(r.try_get("spec")?)?,
        created_at: from_ms(r.try_get("created_at")?),
    })
}

fn inbox_row(r: &SqliteRow) -> StoreResult<InboxItem> {
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

fn delivery_row(r: &SqliteRow) -> StoreResult<DeliveryRecord> {
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

fn notification_row(r: &SqliteRow) -> StoreResult<NotificationRecord> {
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

async fn insert_audit(conn: &mut SqliteConnection, a: &AuditEntry) -> StoreResult<()> {
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

async fn insert_delivery(
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
async fn hand_over(
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
async fn stand_down(
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
async fn collapse(conn: &mut SqliteConnection, item: &WorkItem, key: &str, now: i64) -> StoreResult<()> {
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
async fn schedule(conn: &mut SqliteConnection, user: &UserId, at: i64) -> StoreResult<()> {
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

const INBOX_COLUMNS: &str = "seq, id, user_id, notification_id, title, body, action_url, category, created_at, read_at";
const DELIVERY_COLUMNS: &str = "id, notification_id, user_id, channel, status, attempts, provider, error, payload, \
     next_attempt_at, class, created_at, dispatched_at, dead_at, updated_at";

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn secret(&self, name: &str, init: Vec<u8>) -> StoreResult<Vec<u8>> {
        let name = name.to_owned();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
                        .bind(&name)
                        .bind(init)
                        .execute(&mut *c)
                        .await?;
                    Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                        .bind(&name)
                        .fetch_one(&mut *c)
                        .await?)
                })
            })
            .await
    }

    async fn create_api_key(&self, key: ApiKeyRecord) -> StoreResult<()> {
        let name = key.name.clone();
        let taken = self.writer.write(move |c| Box::pin(async move { keys::create(c, &key).await })).await?;
        match taken {
            Some(id) => Err(StoreError::ApiKeyNameTaken { name, id }),
            None => Ok(()),
        }
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        sqlx::query("SELECT * FROM api_keys ORDER BY created_at DESC")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(api_key_row)
            .collect()
    }

    async fn revoke_api_key(&self, id_or_name: &str, now: Timestamp) -> StoreResult<Option<ApiKeyRecord>> {
        let target = id_or_name.to_owned();
        self.writer.write(move |c| Box::pin(async move { keys::revoke(c, &target, now).await })).await
    }

    async fn find_api_key(&self, hash: &[u8]) -> StoreResult<Option<ApiKeyRecord>> {
        sqlx::query("SELECT * FROM api_keys WHERE hash = ? AND revoked_at IS NULL")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(api_key_row)
            .transpose()
    }

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

    async fn put_template(
        &self,
        key: &TemplateKey,
        spec: &TemplateSpec,
        now: Timestamp,
    ) -> StoreResult<TemplateRecord> {
        let _touch = self.cache.write(Touches::Template(key.clone()));
        let key = key.to_string();
        let spec = spec.clone();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let row = sqlx::query(
                        "INSERT INTO templates (key, spec, version, created_at, updated_at) VALUES (?, ?, 1, ?, ?) \
                         ON CONFLICT (key) DO UPDATE SET spec = excluded.spec, version = templates.version + 1, \
                         updated_at = excluded.updated_at RETURNING version, created_at, updated_at",
                    )
                    .bind(&key)
                    .bind(serde_json::to_string(&spec)?)
                    .bind(to_ms(now))
                    .bind(to_ms(now))
                    .fetch_one(c)
                    .await?;
                    Ok(TemplateRecord {
                        key,
                        spec,
                        version: row.try_get("version")?,
                        created_at: from_ms(row.try_get("created_at")?),
                        updated_at: from_ms(row.try_get("updated_at")?),
                    })
                })
            })
            .await
    }

    async fn get_template(&self, key: &TemplateKey) -> StoreResult<Option<TemplateRecord>> {
        let snapshot = self.cache.snapshot();
        if snapshot.is_some()
            && let Some(t) = self.cache.template(key)
        {
            return Ok(Some(t));
        }
        let row =
            sqlx::query("SELECT * FROM templates WHERE key = ?").bind(key.as_str()).fetch_optional(&self.pool).await?;
        let record = row
            .map(|r| {
                Ok::<_, StoreError>(TemplateRecord {
                    key: r.try_get("key")?,
                    spec: serde_json::from_str(r.try_get("spec")?)?,
                    version: r.try_get("version")?,
                    created_at: from_ms(r.try_get("created_at")?),
                    updated_at: from_ms(r.try_get("updated_at")?),
                })
            })
            .transpose()?;
        if let (Some(snapshot), Some(t)) = (snapshot, &record) {
            self.cache.keep_template(snapshot, key, t);
        }
        Ok(record)
    }

    async fn accept(&self, n: NewNotification) -> StoreResult<AcceptOutcome> {
        self.accepts.call(n).await
    }

    async fn accept_many(&self, ns: Vec<NewNotification>) -> StoreResult<Vec<AcceptOutcome>> {
        let (outcomes, created) =
            self.writer.write(move |c| Box::pin(async move { accept::accept_batch(c, &ns).await })).await?;
        self.cache.keep_notifications(created);
        Ok(outcomes)
    }

    async fn get_notification(&self, id: Uuid) -> StoreResult<Option<NotificationRecord>> {
        sqlx::query("SELECT * FROM notifications WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(notification_row)
            .transpose()
    }

    async fn list_recipients(&self, id: Uuid, after: Option<i64>, limit: u32) -> StoreResult<Vec<RecipientRecord>> {
        let rows = sqlx::query(
            "SELECT seq, user_id, state, decision, reason, inbox_at FROM recipients WHERE notification_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(id.to_string())
        .bind(after.unwrap_or(0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let user_id: String = r.try_get("user_id")?;
            // The inbox delivery is recorded on the recipient; it reads as any other delivery.
            let inbox = opt_ms(r.try_get("inbox_at")?).map(|at| -> StoreResult<DeliveryRecord> {
                Ok(DeliveryRecord {
                    id: herald_domain::ids::delivery_id(id, &parse_user(&user_id)?, Channel::InApp),
                    notification_id: id,
                    user_id: user_id.clone(),
                    channel: Channel::InApp,
                    status: "delivered".into(),
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
            out.push(RecipientRecord {
                seq: r.try_get("seq")?,
                user_id,
                state: r.try_get("state")?,
                decision: r.try_get("decision")?,
                reason: r.try_get("reason")?,
                deliveries: inbox.transpose()?.into_iter().collect(),
            });
        }
        let users: Vec<&str> = out.iter().map(|r| r.user_id.as_str()).collect();
        let deliveries = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE notification_id = ? \
             AND user_id IN (SELECT value FROM json_each(?)) ORDER BY created_at, channel"
        )))
        .bind(id.to_string())
        .bind(serde_json::to_string(&users)?)
        .fetch_all(&self.pool)
        .await?;
        for d in &deliveries {
            let d = delivery_row(d)?;
            if let Some(r) = out.iter_mut().find(|r| r.user_id == d.user_id) {
                r.deliveries.push(d);
            }
        }
        Ok(out)
    }

    async fn recipient_counts(&self, id: Uuid) -> StoreResult<RecipientCounts> {
        let rows = sqlx::query(
            "SELECT state, decision, COUNT(*) AS n FROM recipients WHERE notification_id = ? GROUP BY state, decision",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut counts = RecipientCounts::default();
        for r in &rows {
            let state: String = r.try_get("state")?;
            let n = r.try_get::<i64, _>("n")? as u64;
            match r.try_get::<Option<String>, _>("decision")? {
                None => counts.pending += n,
                Some(decision) => {
                    counts.processed += n;
                    if state != "done" {
                        counts.waiting += n;
                    }
                    *counts.by_decision.entry(decision).or_default() += n;
                }
            }
        }
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE notification_id = ? AND status IN ('queued', 'sending', 'standby')",
        )
        .bind(id.to_string())
        .fetch_one(&self.pool)
        .await?;
        counts.open_deliveries = open as u64;
        Ok(counts)
    }

    async fn cancel_notification(&self, id: Uuid, now: Timestamp) -> StoreResult<u64> {
        let _touch = self.cache.write(Touches::Notification(id));
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let id = id.to_string();
                    let now = to_ms(now);
                    sqlx::query("UPDATE notifications SET cancelled_at = COALESCE(cancelled_at, ?) WHERE id = ?")
                        .bind(now)
                        .bind(&id)
                        .execute(&mut *c)
                        .await?;
                    sqlx::query(
                        "INSERT INTO audit (at, user_id, notification_id, channel, decision, reason) \
                         SELECT ?, user_id, notification_id, NULL, 'cancelled', 'cancelled' FROM recipients \
                         WHERE notification_id = ? AND state IN ('pending', 'claimed', 'batched')",
                    )
                    .bind(now)
                    .bind(&id)
                    .execute(&mut *c)
                    .await?;
                    let r = sqlx::query(
                        "UPDATE recipients SET state = 'done', decision = 'cancelled', reason = 'cancelled', updated_at = ? \
                         WHERE notification_id = ? AND state IN ('pending', 'claimed', 'batched')",
                    )
                    .bind(now)
                    .bind(&id)
                    .execute(&mut *c)
                    .await?;
                    sqlx::query(
                        "UPDATE deliveries SET status = 'suppressed', error = 'cancelled', updated_at = ? \
                         WHERE notification_id = ? AND status IN ('queued', 'standby')",
                    )
                    .bind(now)
                    .bind(&id)
                    .execute(&mut *c)
                    .await?;
                    Ok(r.rows_affected())
                })
            })
            .await
    }

    async fn claim_due(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Work>> {
        self.writer
            .write_lazy(move |c| {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "UPDATE recipients SET state = 'claimed', updated_at = ?1 WHERE seq IN \
                         (SELECT seq FROM recipients WHERE state = 'pending' AND due_at <= ?1 ORDER BY due_at, seq LIMIT ?2) \
                         RETURNING seq, notification_id, user_id, phase",
                    )
                    .bind(to_ms(now))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *c)
                    .await?;
                    let mut items = rows
                        .iter()
                        .map(|r| {
                            Ok(WorkItem {
                                seq: r.try_get("seq")?,
                                phase: r.try_get("phase")?,
                                notification_id: parse_uuid(r.try_get("notification_id")?)?,
                                user_id: parse_user(r.try_get("user_id")?)?,
                            })
                        })
                        .collect::<StoreResult<Vec<_>>>()?;
                    items.sort_by_key(|i| i.seq);
                    let flushes: Vec<String> = sqlx::query_scalar(
                        "UPDATE digest_timers SET state = 'claimed' WHERE user_id IN \
                         (SELECT user_id FROM digest_timers WHERE state = 'pending' AND due_at <= ?1 ORDER BY due_at LIMIT ?2) \
                         RETURNING user_id",
                    )
                    .bind(to_ms(now))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *c)
                    .await?;
                    let mut work: Vec<Work> = items.into_iter().map(Work::Decide).collect();
                    for u in flushes {
                        work.push(Work::Flush(parse_user(&u)?));
                    }
                    Ok(work)
                })
            })
            .await
    }

    async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(d) FROM (SELECT MIN(due_at) AS d FROM recipients WHERE state = 'pending' \
             UNION ALL SELECT MIN(due_at) FROM digest_timers WHERE state = 'pending')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(v.map(from_ms))
    }

    async fn release_claim(&self, seq: i64, retry_at: Timestamp) -> StoreResult<()> {
        self.writer
            .write_lazy(move |c| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE recipients SET state = 'pending', due_at = ? WHERE seq = ? AND state = 'claimed'",
                    )
                    .bind(to_ms(retry_at))
                    .bind(seq)
                    .execute(c)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn release_claims(&self) -> StoreResult<u64> {
        self.writer
            .write(|c| {
                Box::pin(async move {
                    let r = sqlx::query("UPDATE recipients SET state = 'pending' WHERE state = 'claimed'")
                        .execute(&mut *c)
                        .await?;
                    sqlx::query("UPDATE digest_timers SET state = 'pending' WHERE state = 'claimed'")
                        .execute(&mut *c)
                        .await?;
                    Ok(r.rows_affected())
                })
            })
            .await
    }

    async fn record_outcomes(&self, outcomes: Vec<RecipientOutcome>) -> StoreResult<Vec<Option<Recorded>>> {
        self.outcomes.call(outcomes).await
    }

    async fn notifications(&self, ids: &[Uuid]) -> StoreResult<Vec<Arc<NotificationRecord>>> {
        let snapshot = self.cache.snapshot();
        let cached = self.cache.notifications(ids);
        let missing: Vec<Uuid> = ids.iter().zip(&cached).filter(|(_, n)| n.is_none()).map(|(id, _)| *id).collect();
        let mut found: Vec<Arc<NotificationRecord>> = cached.into_iter().flatten().collect();
        if !missing.is_empty() {
            let read: Vec<Arc<NotificationRecord>> =
                decide::notifications(&self.pool, &missing).await?.into_iter().map(Arc::new).collect();
            if let Some(snapshot) = snapshot {
                self.cache.keep_read_notifications(snapshot, &read);
            }
            found.extend(read);
        }
        Ok(found)
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

    async fn seen_recently(&self, asks: &[(UserId, String, i64)], since: Timestamp) -> StoreResult<HashSet<i64>> {
        decide::seen_recently(&self.pool, asks, since).await
    }

    async fn interruptions(
        &self,
        users: &[UserId],
        since: Timestamp,
    ) -> StoreResult<HashMap<UserId, Vec<Interruption>>> {
        decide::interruptions(&self.pool, users, since).await
    }

    async fn batched(&self, user: &UserId) -> StoreResult<Vec<BatchedRecipient>> {
        let rows = sqlx::query(
            "SELECT seq, notification_id, group_key FROM recipients WHERE user_id = ? AND state = 'batched' ORDER BY seq",
        )
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BatchedRecipient {
                    seq: r.try_get("seq")?,
                    notification_id: parse_uuid(r.try_get("notification_id")?)?,
                    group_key: r.try_get::<Option<String>, _>("group_key")?.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn record_flush(&self, o: FlushOutcome) -> StoreResult<()> {
        self.writer
            .write_lazy(move |c| {
                Box::pin(async move {
                    let now = to_ms(o.now);
                    for d in &o.digests {
                        let n = &d.notification;
                        let id = n.id.to_string();
                        sqlx::query(
                            "INSERT INTO notifications (id, template, class, category, spec, recipients_total, created_at) \
                             VALUES (?, ?, ?, ?, ?, 1, ?)",
                        )
                        .bind(&id)
                        .bind(n.spec.template.as_str())
                        .bind(n.class.as_str())
                        .bind(n.spec.category.as_ref().map(|c| c.as_str()))
                        .bind(serde_json::to_string(&n.spec)?)
                        .bind(now)
                        .execute(&mut *c)
                        .await?;
                        sqlx::query(
                            "INSERT INTO recipients (notification_id, user_id, state, due_at, updated_at, decision, reason, phase) \
                             VALUES (?, ?, 'done', ?, ?, 'delivering', 'digest', 1)",
                        )
                        .bind(&id)
                        .bind(o.user_id.as_str())
                        .bind(now)
                        .bind(now)
                        .execute(&mut *c)
                        .await?;
                        sqlx::query("INSERT INTO interruptions (user_id, at, spend, notification_id) VALUES (?, ?, 'cap', ?)")
                            .bind(o.user_id.as_str())
                            .bind(now)
                            .bind(&id)
                            .execute(&mut *c)
                            .await?;
                        for seq in &d.merged {
                            sqlx::query(
                                "UPDATE recipients SET state = 'done', digest_id = ?, updated_at = ? WHERE seq = ? AND state = 'batched'",
                            )
                            .bind(&id)
                            .bind(now)
                            .bind(seq)
                            .execute(&mut *c)
                            .await?;
                        }
                        for del in &d.deliveries {
                            insert_delivery(c, &id, &o.user_id, del, now).await?;
                        }
                    }
                    for (seq, reason) in &o.settled {
                        sqlx::query("UPDATE recipients SET state = 'done', reason = ?, updated_at = ? WHERE seq = ? AND state = 'batched'")
                            .bind(reason.as_str())
                            .bind(now)
                            .bind(seq)
                            .execute(&mut *c)
                            .await?;
                    }
                    for a in &o.audit {
                        insert_audit(c, a).await?;
                    }
                    match o.next_due {
                        Some(at) => {
                            sqlx::query("UPDATE digest_timers SET due_at = ?, state = 'pending' WHERE user_id = ?")
                                .bind(to_ms(at))
                                .bind(o.user_id.as_str())
                                .execute(&mut *c)
                                .await?;
                        }
                        None => {
                            sqlx::query("DELETE FROM digest_timers WHERE user_id = ?")
                                .bind(o.user_id.as_str())
                                .execute(&mut *c)
                                .await?;
                        }
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn schedule_flush(&self, user: &UserId, at: Timestamp) -> StoreResult<()> {
        let user = user.clone();
        self.writer.write_lazy(move |c| Box::pin(async move { schedule(c, &user, to_ms(at)).await })).await
    }

    async fn open_deliveries(&self) -> StoreResult<Vec<DeliveryRecord>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE status IN ('queued', 'sending') ORDER BY next_attempt_at"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(delivery_row)
        .collect()
    }

    async fn begin_attempt(&self, b: BeginAttempt) -> StoreResult<Begin> {
        self.begins.call(b).await
    }

    async fn dead_letters(
        &self,
        channel: Option<Channel>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<(i64, DeliveryRecord)>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT rowid, {DELIVERY_COLUMNS} FROM deliveries WHERE dead_at IS NOT NULL AND rowid < ? \
             AND (? IS NULL OR channel = ?) ORDER BY rowid DESC LIMIT ?"
        )))
        .bind(before.unwrap_or(i64::MAX))
        .bind(channel.map(Channel::as_str))
        .bind(channel.map(Channel::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("rowid")?, delivery_row(r)?)))
        .collect()
    }

    async fn replay_dead_letter(&self, id: Uuid, now: Timestamp) -> StoreResult<Option<DeliveryRecord>> {
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE deliveries SET status = 'queued', attempts = 0, error = NULL, next_attempt_at = NULL, \
                         dead_at = NULL, updated_at = ? WHERE id = ? AND dead_at IS NOT NULL RETURNING {DELIVERY_COLUMNS}"
                    )))
                    .bind(to_ms(now))
                    .bind(id.to_string())
                    .fetch_optional(&mut *c)
                    .await?;
                    let Some(d) = row.as_ref().map(delivery_row).transpose()? else { return Ok(None) };
                    let entry = AuditEntry {
                        user_id: parse_user(&d.user_id)?,
                        notification_id: d.notification_id,
                        channel: Some(d.channel),
                        decision: herald_domain::reason::Decision::Delivering,
                        reason: Some(Reason::Replayed),
                        at: now,
                    };
                    insert_audit(c, &entry).await?;
                    Ok(Some(d))
                })
            })
            .await
    }

    async fn apply_feedback(&self, f: Feedback) -> StoreResult<FeedbackOutcome> {
        let _touch = self.cache.write(Touches::Everything);
        self.writer.write(move |c| Box::pin(async move { feedback::apply(c, &f).await })).await
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

    async fn provider_status(&self, report: ProviderStatus) -> StoreResult<Updated> {
        self.writer.write(move |c| Box::pin(async move { feedback::provider_status(c, &report).await })).await
    }

    async fn update_delivery(&self, u: DeliveryUpdate) -> StoreResult<Updated> {
        self.results.call(u).await
    }

    async fn stats(&self, since: Option<Timestamp>) -> StoreResult<Stats> {
        let since = since.map_or(i64::MIN, to_ms);
        let count = |n: i64| u64::try_from(n).unwrap_or_default();
        let notifications: Vec<(String, i64)> = sqlx::query_as(
            "SELECT class, COUNT(*) FROM notifications WHERE created_at >= ? GROUP BY class ORDER BY class",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        // Inbox deliveries are recorded on their recipients.
        let deliveries: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT channel, COALESCE(class, 'unknown'), status, COUNT(*) FROM deliveries WHERE created_at >= ?1 \
             GROUP BY channel, class, status \
             UNION ALL SELECT 'in_app', n.class, 'delivered', COUNT(*) FROM recipients r \
             JOIN notifications n ON n.id = r.notification_id WHERE r.inbox_at >= ?1 GROUP BY n.class \
             ORDER BY 1, 2, 3",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let suppressed: Vec<(String, i64)> = sqlx::query_as(
            "SELECT COALESCE(reason, 'unknown'), COUNT(*) FROM audit WHERE decision = 'suppressed' AND at >= ? \
             GROUP BY reason ORDER BY reason",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let dead: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE dead_at IS NOT NULL AND created_at >= ?")
                .bind(since)
                .fetch_one(&self.pool)
                .await?;
        Ok(Stats {
            notifications_by_class: notifications.into_iter().map(|(c, n)| (c, count(n))).collect(),
            deliveries: deliveries
                .into_iter()
                .map(|(channel, class, status, n)| DeliveryCount { channel, class, status, count: count(n) })
                .collect(),
            suppressed_by_reason: suppressed.into_iter().map(|(r, n)| (r, count(n))).collect(),
            dead_letters: count(dead),
        })
    }

    async fn list_inbox(&self, user: &UserId, q: InboxQuery) -> StoreResult<Vec<InboxItem>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INBOX_COLUMNS} FROM inbox WHERE user_id = ? AND seq < ? AND (? = 0 OR read_at IS NULL) ORDER BY seq DESC LIMIT ?"
        )))
        .bind(user.as_str())
        .bind(q.before.unwrap_or(i64::MAX))
        .bind(i64::from(q.unread_only))
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(inbox_row)
        .collect()
    }

    async fn inbox_after(&self, user: &UserId, after_seq: i64, limit: u32) -> StoreResult<Vec<InboxItem>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INBOX_COLUMNS} FROM inbox WHERE user_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        )))
        .bind(user.as_str())
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(inbox_row)
        .collect()
    }

    async fn unread_count(&self, user: &UserId) -> StoreResult<u64> {
        let n: Option<i64> = sqlx::query_scalar("SELECT unread FROM inbox_counts WHERE user_id = ?")
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    async fn mark_inbox(&self, user: &UserId, target: InboxTarget, read: bool, now: Timestamp) -> StoreResult<u64> {
        let user = user.clone();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let (all, ids) = match &target {
                        InboxTarget::All => (1i64, "[]".to_owned()),
                        InboxTarget::Ids(ids) => {
                            (0, serde_json::to_string(&ids.iter().map(Uuid::to_string).collect::<Vec<_>>())?)
                        }
                    };
                    let sql = if read {
                        "UPDATE inbox SET read_at = ?1 WHERE user_id = ?2 AND read_at IS NULL \
                         AND (?3 = 1 OR id IN (SELECT value FROM json_each(?4)))"
                    } else {
                        "UPDATE inbox SET read_at = NULL WHERE user_id = ?2 AND read_at IS NOT NULL AND ?1 IS NOT NULL \
                         AND (?3 = 1 OR id IN (SELECT value FROM json_each(?4)))"
                    };
                    let r = sqlx::query(sql)
                        .bind(to_ms(now))
                        .bind(user.as_str())
                        .bind(all)
                        .bind(ids)
                        .execute(&mut *c)
                        .await?;
                    let changed = r.rows_affected() as i64;
                    sqlx::query("UPDATE inbox_counts SET unread = MAX(0, unread + ?) WHERE user_id = ?")
                        .bind(if read { -changed } else { changed })
                        .bind(user.as_str())
                        .execute(&mut *c)
                        .await?;
                    Ok(r.rows_affected())
                })
            })
            .await
    }

    async fn timeline(&self, user: &UserId, before: Option<i64>, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT seq, at, notification_id, decision, reason, channel FROM audit WHERE user_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(user.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    seq: r.try_get("seq")?,
                    at: from_ms(r.try_get("at")?),
                    notification_id: r.try_get("notification_id")?,
                    decision: r.try_get("decision")?,
                    reason: r.try_get("reason")?,
                    channel: r.try_get("channel")?,
                })
            })
            .collect()
    }

    async fn subscribe(&self, topic: &TopicKey, users: &[UserId], now: Timestamp) -> StoreResult<u64> {
        let topic = topic.to_string();
        let users = users.to_vec();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let mut added = 0;
                    for u in &users {
                        ensure_user(c, u, to_ms(now)).await?;
                        let r = sqlx::query(
                            "INSERT INTO topic_subscribers (topic, user_id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                        )
                        .bind(&topic)
                        .bind(u.as_str())
                        .bind(to_ms(now))
                        .execute(&mut *c)
                        .await?;
                        added += r.rows_affected();
                    }
                    Ok(added)
                })
            })
            .await
    }

    async fn unsubscribe(&self, topic: &TopicKey, users: &[UserId]) -> StoreResult<u64> {
        let topic = topic.to_string();
        let ids = serde_json::to_string(&users.iter().map(UserId::as_str).collect::<Vec<_>>())?;
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let r = sqlx::query(
                        "DELETE FROM topic_subscribers WHERE topic = ? AND user_id IN (SELECT value FROM json_each(?))",
                    )
                    .bind(&topic)
                    .bind(ids)
                    .execute(c)
                    .await?;
                    Ok(r.rows_affected())
                })
            })
            .await
    }

    async fn subscribers(&self, topic: &TopicKey, after: Option<&str>, limit: u32) -> StoreResult<Vec<UserId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT user_id FROM topic_subscribers WHERE topic = ? AND user_id > ? ORDER BY user_id LIMIT ?",
        )
        .bind(topic.as_str())
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        ids.iter().map(|s| parse_user(s)).collect()
    }
}
