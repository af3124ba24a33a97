//! Accepting notifications in SQLite: a whole batch in a few statements, whatever its size
//! (idempotency keys and repeated content looked up at once, then notifications, users,
//! recipients and keys each inserted from one JSON array).

use std::collections::{HashMap, HashSet};

use herald_domain::notification::DUPLICATE_WINDOW;
use herald_domain::user::User;
use rusqlite::{Connection, params};
use serde_json::{Value, json};

use super::rows::{all, col0, user_at, uuid_at};
use super::writes::exec_rows;
use crate::{AcceptOutcome, NewNotification, NotificationRecord};
use crate::{Lease, LeaseToken, StoreResult, WorkItem, from_ms, to_ms};

/// How long an idempotency key is remembered.
const KEY_TTL_MS: i64 = 24 * 3600 * 1000;

/// What a batch of accepts did: one outcome per notification, in order, and the notifications
/// it created.
pub(super) type Accepted = (Vec<AcceptOutcome>, Vec<NotificationRecord>);

/// What each idempotency key already stands for: (request hash, notification, recipients).
type Known = HashMap<String, (String, uuid::Uuid, u64)>;

/// Accepts `ns` in order, as if one by one: a key seen within 24 h, or earlier in the batch,
/// answers with the first notification instead of creating another. A notification whose content
/// was accepted within the duplicate window (or earlier in the batch) is marked `repeated`.
pub(super) fn accept_batch(c: &Connection, ns: &[NewNotification]) -> StoreResult<Accepted> {
    let mut known = known_keys(c, ns)?;
    let mut seen = seen_fingerprints(c, ns)?;
    let mut rows = Rows::default();
    let mut records = Vec::with_capacity(ns.len());
    let mut outcomes = Vec::with_capacity(ns.len());
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
            rows.keys.push(json!({"key": key, "hash": hash, "notification_id": n.id.to_string(), "at": to_ms(n.now)}));
        }
        // `insert` answers false for content seen before, here or in the store.
        let repeated = n.fingerprint.as_ref().is_some_and(|fp| !seen.insert(fp.clone()));
        records.push(rows.add(n, repeated)?);
        outcomes.push(AcceptOutcome::Created { id: n.id, recipients: n.recipients.len() as u64, claimed: Vec::new() });
    }
    let mut claimed = rows.insert(c)?;
    for outcome in &mut outcomes {
        if let AcceptOutcome::Created { id, claimed: mine, .. } = outcome {
            *mine = claimed.remove(id).unwrap_or_default();
        }
    }
    Ok((outcomes, records))
}

/// Reads what the batch's idempotency keys stood for within their 24 h.
fn known_keys(c: &Connection, ns: &[NewNotification]) -> StoreResult<Known> {
    let keys: Vec<&str> = ns.iter().filter_map(|n| n.idempotency.as_ref().map(|(k, _)| k.as_str())).collect();
    if keys.is_empty() {
        return Ok(Known::new());
    }
    let oldest = ns.iter().map(|n| to_ms(n.now)).min().unwrap_or_default() - KEY_TTL_MS;
    let rows = all(
        c,
        "SELECT k.key, k.request_hash, k.notification_id, n.recipients_total FROM idempotency_keys k \
         JOIN notifications n ON n.id = k.notification_id \
         WHERE k.key IN (SELECT value FROM json_each(?1)) AND k.created_at > ?2",
        params![serde_json::to_string(&keys)?, oldest],
        |r| {
            let total: i64 = r.get("recipients_total")?;
            Ok((r.get("key")?, (r.get("request_hash")?, uuid_at(r, "notification_id")?, total as u64)))
        },
    )?;
    Ok(rows.into_iter().collect())
}

/// Reads which of the batch's fingerprints were accepted within the duplicate window.
fn seen_fingerprints(c: &Connection, ns: &[NewNotification]) -> StoreResult<HashSet<String>> {
    let fingerprints: Vec<&str> = ns.iter().filter_map(|n| n.fingerprint.as_deref()).collect();
    if fingerprints.is_empty() {
        return Ok(HashSet::new());
    }
    let oldest = ns.iter().map(|n| n.now).min().unwrap_or_default() - DUPLICATE_WINDOW;
    let seen = all(
        c,
        "SELECT DISTINCT fingerprint FROM notifications \
         WHERE fingerprint IN (SELECT value FROM json_each(?1)) AND created_at > ?2",
        params![serde_json::to_string(&fingerprints)?, to_ms(oldest)],
        col0,
    )?;
    Ok(seen.into_iter().collect())
}

/// The rows a batch creates, one JSON array per table, each inserted in one statement.
#[derive(Default)]
struct Rows {
    notifications: Vec<Value>,
    users: Vec<Value>,
    recipients: Vec<Value>,
    keys: Vec<Value>,
}

impl Rows {
    /// Adds a notification's rows (its users and recipients too), answering its record.
    fn add(&mut self, n: &NewNotification, repeated: bool) -> StoreResult<NotificationRecord> {
        self.notifications.push(json!({
            "id": n.id.to_string(),
            "template": n.spec.template.as_str(),
            "class": n.class.as_str(),
            "category": n.spec.category.as_ref().map(|c| c.as_str()),
            "spec": serde_json::to_string(&n.spec)?,
            "recipients": n.recipients.len(),
            "at": to_ms(n.now),
            "fingerprint": n.fingerprint.as_deref(),
            "repeated": repeated,
        }));
        self.add_recipients(n)?;
        Ok(NotificationRecord {
            id: n.id,
            template: n.spec.template.to_string(),
            class: n.class,
            spec: n.spec.clone(),
            recipients_total: n.recipients.len() as u64,
            created_at: n.now,
            cancelled_at: None,
            fingerprint: n.fingerprint.clone(),
            repeated,
        })
    }

    /// Adds a notification's recipients, and their users in case they are new.
    fn add_recipients(&mut self, n: &NewNotification) -> StoreResult<()> {
        let id = n.id.to_string();
        let group = n.spec.group_key.as_deref().unwrap_or(n.spec.template.as_str());
        let urgent = n.class.is_urgent();
        // Claimed with the accept when due at once and the accepting node asked for them.
        let lease = n.claim.filter(|_| n.due_at <= n.now);
        for user in &n.recipients {
            self.users.push(json!({
                "id": user.as_str(),
                "profile": serde_json::to_string(&User::bare(user.clone()))?,
                "at": to_ms(n.now),
            }));
            self.recipients.push(json!({
                "notification_id": id,
                "user_id": user.as_str(),
                "due_at": to_ms(n.due_at),
                "at": to_ms(n.now),
                "group_key": group,
                "collapse_key": n.spec.collapse_key.as_deref(),
                "urgent": urgent,
                "state": if lease.is_some() { "claimed" } else { "pending" },
                "lease": lease.map(|l| l.token.get()),
                "lease_until": lease.map(|l| to_ms(l.until)),
            }));
        }
        Ok(())
    }

    /// Inserts the rows, a statement per table; answers the recipients claimed with them, by
    /// notification, in order.
    fn insert(self, c: &Connection) -> StoreResult<HashMap<uuid::Uuid, Vec<WorkItem>>> {
        exec_rows(
            c,
            "INSERT INTO notifications (id, template, class, category, spec, recipients_total, created_at, \
             fingerprint, repeated) SELECT value->>'$.id', value->>'$.template', value->>'$.class', \
             value->>'$.category', value->>'$.spec', value->>'$.recipients', value->>'$.at', value->>'$.fingerprint', \
             value->>'$.repeated' FROM json_each(?)",
            self.notifications,
        )?;
        exec_rows(
            c,
            "INSERT INTO users (id, profile, created_at, updated_at) \
             SELECT value->>'$.id', value->>'$.profile', value->>'$.at', \
             value->>'$.at' FROM json_each(?) WHERE true ON CONFLICT (id) DO NOTHING",
            self.users,
        )?;
        let claimed = claimed_recipients(c, self.recipients)?;
        exec_rows(
            c,
            "INSERT INTO idempotency_keys (key, request_hash, notification_id, created_at) \
             SELECT value->>'$.key', value->>'$.hash', value->>'$.notification_id', \
             value->>'$.at' FROM json_each(?) WHERE true \
             ON CONFLICT (key) DO UPDATE SET request_hash = excluded.request_hash, \
             notification_id = excluded.notification_id, created_at = excluded.created_at",
            self.keys,
        )?;
        Ok(claimed)
    }
}

/// Inserts the recipients; answers those claimed with the accept as work items, by notification.
fn claimed_recipients(c: &Connection, recipients: Vec<Value>) -> StoreResult<HashMap<uuid::Uuid, Vec<WorkItem>>> {
    let mut claimed: HashMap<uuid::Uuid, Vec<WorkItem>> = HashMap::new();
    if recipients.is_empty() {
        return Ok(claimed);
    }
    let rows = all(
        c,
        "INSERT INTO recipients (notification_id, user_id, state, due_at, updated_at, group_key, collapse_key, \
         urgent, lease_token, lease_until) SELECT value->>'$.notification_id', value->>'$.user_id', value->>'$.state', \
         value->>'$.due_at', value->>'$.at', value->>'$.group_key', value->>'$.collapse_key', value->>'$.urgent', \
         value->>'$.lease', value->>'$.lease_until' FROM json_each(?) \
         RETURNING seq, notification_id, user_id, urgent, lease_token, lease_until",
        [Value::Array(recipients).to_string()],
        |r| {
            let token: Option<i64> = r.get("lease_token")?;
            let until: Option<i64> = r.get("lease_until")?;
            let Some((token, until)) = token.zip(until) else { return Ok(None) };
            Ok(Some(WorkItem {
                seq: r.get("seq")?,
                phase: 0,
                notification_id: uuid_at(r, "notification_id")?,
                user_id: user_at(r, "user_id")?,
                urgent: r.get("urgent")?,
                lease: Lease { token: LeaseToken::from_stored(token), until: from_ms(until) },
            }))
        },
    )?;
    for item in rows.into_iter().flatten() {
        claimed.entry(item.notification_id).or_default().push(item);
    }
    for items in claimed.values_mut() {
        items.sort_by_key(|i| i.seq);
    }
    Ok(claimed)
}
