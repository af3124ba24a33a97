//! Accepting notifications in SQLite: a whole batch in five statements, whatever its size
//! (idempotency keys looked up at once, then notifications, users, recipients and keys each
//! inserted from one JSON array), and the queue that folds concurrent single accepts into such
//! batches, so that a burst of requests costs a few statements and one fsync.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use herald_domain::notification::DUPLICATE_WINDOW;
use herald_domain::user::User;
use serde_json::{Value, json};
use sqlx::{Row, SqliteConnection};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::cache::Cache;
use super::parse_uuid;
use super::writer::Writer;
use crate::records::{AcceptOutcome, NewNotification, NotificationRecord};
use crate::{StoreError, StoreResult, to_ms};

/// How long an idempotency key is remembered.
const KEY_TTL_MS: i64 = 24 * 3600 * 1000;

/// Most single accepts folded into one write.
const MAX_FOLD: usize = 2048;
/// Folded batches written at once.
const IN_FLIGHT: usize = 4;

/// What a batch of accepts did: one outcome per notification, in order, and the notifications
/// it created.
pub(super) type Accepted = (Vec<AcceptOutcome>, Vec<NotificationRecord>);

/// Accepts `ns` in order, as if one by one: a key seen within 24 h, or earlier in the batch,
/// answers with the first notification instead of creating another. A notification whose content
/// was accepted within the duplicate window (or earlier in the batch) is marked `repeated`.
pub(super) async fn accept_batch(c: &mut SqliteConnection, ns: &[NewNotification]) -> StoreResult<Accepted> {
    let keys: Vec<&str> = ns.iter().filter_map(|n| n.idempotency.as_ref().map(|(k, _)| k.as_str())).collect();
    // What each key already stands for: (request hash, notification, recipients).
    let mut known: HashMap<String, (String, uuid::Uuid, u64)> = HashMap::new();
    if !keys.is_empty() {
        let oldest = ns.iter().map(|n| to_ms(n.now)).min().unwrap_or_default() - KEY_TTL_MS;
        let rows = sqlx::query(
            "SELECT k.key, k.request_hash, k.notification_id, n.recipients_total FROM idempotency_keys k \
             JOIN notifications n ON n.id = k.notification_id \
             WHERE k.key IN (SELECT value FROM json_each(?1)) AND k.created_at > ?2",
        )
        .bind(serde_json::to_string(&keys)?)
        .bind(oldest)
        .fetch_all(&mut *c)
        .await?;
        for r in rows {
            let total: i64 = r.try_get("recipients_total")?;
            known.insert(
                r.try_get("key")?,
                (r.try_get("request_hash")?, parse_uuid(r.try_get("notification_id")?)?, total as u64),
            );
        }
    }
    let fingerprints: Vec<&str> = ns.iter().filter_map(|n| n.fingerprint.as_deref()).collect();
    let mut seen: HashSet<String> = HashSet::new();
    if !fingerprints.is_empty() {
        let oldest = ns.iter().map(|n| n.now).min().unwrap_or_default() - DUPLICATE_WINDOW;
        seen = sqlx::query_scalar(
            "SELECT DISTINCT fingerprint FROM notifications \
             WHERE fingerprint IN (SELECT value FROM json_each(?1)) AND created_at > ?2",
        )
        .bind(serde_json::to_string(&fingerprints)?)
        .bind(to_ms(oldest))
        .fetch_all(&mut *c)
        .await?
        .into_iter()
        .collect();
    }
    let mut records = Vec::with_capacity(ns.len());
    let mut outcomes = Vec::with_capacity(ns.len());
    let (mut notifications, mut users, mut recipients, mut new_keys) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for n in ns {
        if let Some((key, hash)) = &n.idempotency {
            if let Some((seen_hash, id, total)) = known.get(key) {
                outcomes.push(if seen_hash == hash {
                    AcceptOutcome::Existing { id: *id, recipients: *total }
                } else {
                    AcceptOutcome::KeyConflict { id: *id }
                });
                continue;
            }
            known.insert(key.clone(), (hash.clone(), n.id, n.recipients.len() as u64));
            new_keys.push(json!([key, hash, n.id.to_string(), to_ms(n.now)]));
        }
        let id = n.id.to_string();
        // `insert` answers false for content seen before, here or in the store.
        let repeated = n.fingerprint.as_ref().is_some_and(|fp| !seen.insert(fp.clone()));
        notifications.push(json!([
            id,
            n.spec.template.as_str(),
            n.class.as_str(),
            n.spec.category.as_ref().map(|c| c.as_str()),
            serde_json::to_string(&n.spec)?,
            n.recipients.len(),
            to_ms(n.now),
            n.fingerprint.as_deref(),
            repeated,
        ]));
        records.push(NotificationRecord {
            id: n.id,
            template: n.spec.template.to_string(),
            class: n.class,
            spec: n.spec.clone(),
            recipients_total: n.recipients.len() as u64,
            created_at: n.now,
            cancelled_at: None,
            fingerprint: n.fingerprint.clone(),
            repeated,
        });
        let group = n.spec.group_key.as_deref().unwrap_or(n.spec.template.as_str());
        for user in &n.recipients {
            users.push(json!([user.as_str(), serde_json::to_string(&User::bare(user.clone()))?, to_ms(n.now)]));
            recipients.push(json!([
                id,
                user.as_str(),
                to_ms(n.due_at),
                to_ms(n.now),
                group,
                n.spec.collapse_key.as_deref()
            ]));
        }
        outcomes.push(AcceptOutcome::Created { id: n.id, recipients: n.recipients.len() as u64 });
    }
    insert_rows(
        c,
        "INSERT INTO notifications (id, template, class, category, spec, recipients_total, created_at, fingerprint, \
         repeated) SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, \
         value->>8 FROM json_each(?)",
        notifications,
    )
    .await?;
    insert_rows(
        c,
        "INSERT INTO users (id, profile, created_at, updated_at) \
         SELECT value->>0, value->>1, value->>2, value->>2 FROM json_each(?) WHERE true ON CONFLICT (id) DO NOTHING",
        users,
    )
    .await?;
    insert_rows(
        c,
        "INSERT INTO recipients (notification_id, user_id, state, due_at, updated_at, group_key, collapse_key) \
         SELECT value->>0, value->>1, 'pending', value->>2, value->>3, value->>4, value->>5 FROM json_each(?)",
        recipients,
    )
    .await?;
    insert_rows(
        c,
        "INSERT INTO idempotency_keys (key, request_hash, notification_id, created_at) \
         SELECT value->>0, value->>1, value->>2, value->>3 FROM json_each(?) WHERE true \
         ON CONFLICT (key) DO UPDATE SET request_hash = excluded.request_hash, \
         notification_id = excluded.notification_id, created_at = excluded.created_at",
        new_keys,
    )
    .await?;
    Ok((outcomes, records))
}

/// Runs one multi-row insert over `rows`, skipped when there are none.
async fn insert_rows(c: &mut SqliteConnection, sql: &'static str, rows: Vec<Value>) -> StoreResult<()> {
    if !rows.is_empty() {
        sqlx::query(sql).bind(Value::Array(rows).to_string()).execute(&mut *c).await?;
    }
    Ok(())
}

type Pending = (NewNotification, oneshot::Sender<StoreResult<AcceptOutcome>>);

/// Folds concurrent single accepts into batches: while one batch is being written, the next
/// gathers.
#[derive(Clone)]
pub(super) struct AcceptQueue {
    tx: mpsc::Sender<Pending>,
}

impl AcceptQueue {
    /// Starts the task that writes the batches through `writer`, keeping what they create in `cache`.
    pub(super) fn spawn(writer: Writer, cache: Arc<Cache>) -> Self {
        let (tx, rx) = mpsc::channel(MAX_FOLD);
        tokio::spawn(fold(writer, cache, rx));
        Self { tx }
    }

    /// Accepts `n`; resolves once it is committed.
    pub(super) async fn accept(&self, n: NewNotification) -> StoreResult<AcceptOutcome> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((n, tx)).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

async fn fold(writer: Writer, cache: Arc<Cache>, mut rx: mpsc::Receiver<Pending>) {
    // A few batches in flight at once, so that a batch waiting for its commit does not hold back
    // the next one from the writer's queue (the writer folds them into one transaction anyway).
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut pending = Vec::with_capacity(MAX_FOLD);
    while rx.recv_many(&mut pending, MAX_FOLD).await > 0 {
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        let (ns, answers): (Vec<NewNotification>, Vec<_>) = pending.drain(..).unzip();
        let (writer, cache) = (writer.clone(), cache.clone());
        tokio::spawn(async move {
            match writer.write(move |c| Box::pin(async move { accept_batch(c, &ns).await })).await {
                Ok((outcomes, created)) => {
                    cache.keep_notifications(created);
                    for (answer, outcome) in answers.into_iter().zip(outcomes) {
                        let _ = answer.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    for answer in answers {
                        let _ = answer.send(Err(e.clone()));
                    }
                }
            }
            drop(permit);
        });
    }
}
