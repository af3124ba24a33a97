//! The decision path in SQLite, a batch at a time: reading what the engine needs about many
//! recipients in a handful of queries, and recording a batch of decisions with multi-row
//! statements (each a round trip, whatever the batch's size).

use std::collections::{BTreeMap, HashMap, HashSet};

use herald_domain::RecipientState;
use herald_domain::decision::Interruption;
use herald_domain::reason::Reason;
use herald_domain::{Channel, UserId};
use jiff::Timestamp;
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use uuid::Uuid;

use super::rows::{INBOX_COLUMNS, all, code_at, col0, device_row, inbox_row, notification_row, opt_ms, user_at};
use super::writes::{collapse, exec_rows, insert_audits, schedule};
use crate::from_ms;
use crate::{DeviceRecord, InboxItem, Next, NotificationRecord, RecipientOutcome, Recorded, UserRecord, UserState};
use crate::{StoreResult, to_ms};

/// A JSON array of strings, for `IN (SELECT value FROM json_each(?))`.
fn list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    Value::Array(items.into_iter().map(Value::from).collect()).to_string()
}

pub(super) fn notifications(c: &Connection, ids: &[Uuid]) -> StoreResult<Vec<NotificationRecord>> {
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    all(
        c,
        "SELECT * FROM notifications WHERE id IN (SELECT value FROM json_each(?))",
        [list(ids.iter().map(String::as_str))],
        notification_row,
    )
}

/// A user as found in the store, with their raw preferences.
type Found = HashMap<String, (UserRecord, Option<String>)>;

/// Reads users, their devices and their blocked addresses in three queries.
pub(super) fn user_states(c: &Connection, users: &[UserId]) -> StoreResult<Vec<UserState>> {
    let ids = list(users.iter().map(UserId::as_str));
    let found = read_users(c, &ids)?;
    let devices = read_devices(c, &ids)?;
    let blocks = read_blocks(c, &found)?;
    users.iter().map(|id| user_state(id, &found, &devices, &blocks)).collect()
}

/// Reads the users among `ids` (a JSON array) that exist, by id.
fn read_users(c: &Connection, ids: &str) -> StoreResult<Found> {
    let rows = all(
        c,
        "SELECT id, profile, preferences, created_at, updated_at, erased_at FROM users \
         WHERE id IN (SELECT value FROM json_each(?))",
        [ids],
        |r| {
            let record = UserRecord {
                user: serde_json::from_str(&r.get::<_, String>("profile")?)?,
                created_at: from_ms(r.get("created_at")?),
                updated_at: from_ms(r.get("updated_at")?),
                erased_at: opt_ms(r.get("erased_at")?),
            };
            Ok((r.get("id")?, (record, r.get("preferences")?)))
        },
    )?;
    Ok(rows.into_iter().collect())
}

/// Reads the devices of the users among `ids` (a JSON array), by user, oldest first.
fn read_devices(c: &Connection, ids: &str) -> StoreResult<HashMap<String, Vec<DeviceRecord>>> {
    let rows = all(
        c,
        "SELECT * FROM devices WHERE user_id IN (SELECT value FROM json_each(?)) ORDER BY created_at, id",
        [ids],
        device_row,
    )?;
    let mut devices: HashMap<String, Vec<DeviceRecord>> = HashMap::new();
    for d in rows {
        devices.entry(d.user_id.as_str().to_owned()).or_default().push(d);
    }
    Ok(devices)
}

/// Reads which of the found users' email addresses and phone numbers are blocked, and why.
fn read_blocks(c: &Connection, found: &Found) -> StoreResult<HashMap<(String, String), Reason>> {
    let emails: Vec<&str> = found.values().filter_map(|(u, _)| u.user.email.as_ref().map(|e| e.as_str())).collect();
    let phones: Vec<&str> = found.values().filter_map(|(u, _)| u.user.phone.as_ref().map(|p| p.as_str())).collect();
    if emails.is_empty() && phones.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String, String)> = all(
        c,
        "SELECT channel, address, kind FROM address_blocks WHERE \
         (channel = 'email' AND address IN (SELECT value FROM json_each(?1))) OR \
         (channel = 'sms' AND address IN (SELECT value FROM json_each(?2)))",
        [list(emails), list(phones)],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(rows
        .into_iter()
        .map(|(channel, address, kind)| {
            let reason = if kind == "stop" { Reason::SmsStop } else { Reason::AddressBlocked };
            ((channel, address), reason)
        })
        .collect())
}

/// Assembles one user's state from what the three queries found.
fn user_state(
    id: &UserId,
    found: &Found,
    devices: &HashMap<String, Vec<DeviceRecord>>,
    blocks: &HashMap<(String, String), Reason>,
) -> StoreResult<UserState> {
    let Some((user, preferences)) = found.get(id.as_str()).cloned() else {
        return Ok(UserState {
            id: id.clone(),
            user: None,
            preferences: None,
            devices: Vec::new(),
            blocked: BTreeMap::new(),
        });
    };
    let mut blocked = BTreeMap::new();
    for (channel, address) in [
        (Channel::Email, user.user.email.as_ref().map(|e| e.as_str())),
        (Channel::Sms, user.user.phone.as_ref().map(|p| p.as_str())),
    ] {
        if let Some(reason) = address.and_then(|a| blocks.get(&(channel.as_str().to_owned(), a.to_owned()))) {
            blocked.insert(channel, *reason);
        }
    }
    Ok(UserState {
        id: id.clone(),
        preferences: preferences.map(|p| serde_json::from_str(&p)).transpose()?,
        user: Some(user),
        devices: devices.get(id.as_str()).cloned().unwrap_or_default(),
        blocked,
    })
}

pub(super) fn seen_recently(
    c: &Connection,
    asks: &[(UserId, String, i64)],
    since: Timestamp,
) -> StoreResult<HashSet<i64>> {
    if asks.is_empty() {
        return Ok(HashSet::new());
    }
    let asks = Value::Array(
        asks.iter().map(|(u, fp, seq)| json!({"user_id": u.as_str(), "fingerprint": fp, "seq": seq})).collect(),
    );
    let seqs: Vec<i64> = all(
        c,
        "SELECT DISTINCT q.value->>'$.seq' FROM json_each(?1) q \
         JOIN notifications n ON n.fingerprint = q.value->>'$.fingerprint' AND n.created_at > ?2 \
         JOIN recipients r ON r.notification_id = n.id AND r.user_id = q.value->>'$.user_id' \
         AND r.seq < q.value->>'$.seq' \
         WHERE r.decision IN ('delivering', 'deferred', 'batched')",
        params![asks.to_string(), to_ms(since)],
        col0,
    )?;
    Ok(seqs.into_iter().collect())
}

pub(super) fn interruptions(
    c: &Connection,
    users: &[UserId],
    since: Timestamp,
) -> StoreResult<HashMap<UserId, Vec<Interruption>>> {
    let rows = all(
        c,
        "SELECT user_id, at, spend FROM interruptions WHERE user_id IN (SELECT value FROM json_each(?)) AND at > ? \
         ORDER BY at",
        params![list(users.iter().map(UserId::as_str)), to_ms(since)],
        |r| Ok((user_at(r, "user_id")?, Interruption { at: from_ms(r.get("at")?), spend: code_at(r, "spend")? })),
    )?;
    let mut out: HashMap<UserId, Vec<Interruption>> = HashMap::new();
    for (user, interruption) in rows {
        out.entry(user).or_default().push(interruption);
    }
    Ok(out)
}

/// Inbox items created by a batch, by (user, notification).
type Created = HashMap<(String, Uuid), InboxItem>;

/// Records a batch of decisions; see [`crate::Store::record_outcomes`].
pub(super) fn record_outcomes(c: &Connection, outcomes: &[RecipientOutcome]) -> StoreResult<Vec<Option<Recorded>>> {
    let erased = erased_users(c, outcomes)?;
    let claimed = settle_claims(c, outcomes, &erased)?;
    let kept: Vec<&RecipientOutcome> = outcomes.iter().filter(|o| claimed.contains(&o.item.seq)).collect();
    collapse_and_schedule(c, &kept)?;
    record_spends(c, &kept)?;
    let (mut created, unread) = insert_inbox_items(c, &kept, &erased)?;
    insert_deliveries(c, &kept)?;
    insert_audits(c, kept.iter().flat_map(|o| o.audit.iter()))?;
    Ok(outcomes
        .iter()
        .map(|o| {
            claimed.contains(&o.item.seq).then(|| {
                let inbox = created.remove(&(o.item.user_id.as_str().to_owned(), o.item.notification_id));
                let unread = inbox.as_ref().and_then(|_| unread.get(o.item.user_id.as_str()).copied());
                Recorded { inbox, unread }
            })
        })
        .collect())
}

/// The users among those the batch would give an inbox item who are erased.
fn erased_users(c: &Connection, outcomes: &[RecipientOutcome]) -> StoreResult<HashSet<String>> {
    let with_inbox: Vec<&str> =
        outcomes.iter().filter(|o| o.inbox.is_some()).map(|o| o.item.user_id.as_str()).collect();
    if with_inbox.is_empty() {
        return Ok(HashSet::new());
    }
    let erased = all(
        c,
        "SELECT id FROM users WHERE id IN (SELECT value FROM json_each(?)) AND erased_at IS NOT NULL",
        [list(with_inbox)],
        col0,
    )?;
    Ok(erased.into_iter().collect())
}

/// Whether the outcome leaves an inbox item: an erasure that landed while it was being decided
/// wins, and no inbox item comes back.
fn gets_item(o: &RecipientOutcome, erased: &HashSet<String>) -> bool {
    o.inbox.is_some() && !erased.contains(o.item.user_id.as_str())
}

/// Writes each decision onto its recipient, answering the seqs of those it took.
fn settle_claims(c: &Connection, outcomes: &[RecipientOutcome], erased: &HashSet<String>) -> StoreResult<HashSet<i64>> {
    let updates: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let (state, due_at) = match o.next {
                Next::Done => (RecipientState::Done, None),
                Next::Defer(at) => (RecipientState::Pending, Some(to_ms(at))),
                Next::Batch => (RecipientState::Batched, None),
            };
            let inbox_at = gets_item(o, erased).then(|| to_ms(o.now));
            json!({
                "seq": o.item.seq,
                "lease": o.item.lease.token.get(),
                "state": state.as_str(),
                "decision": o.decision.as_str(),
                "reason": o.reason.map(|r| r.as_str()),
                "due_at": due_at,
                "at": to_ms(o.now),
                "inbox_at": inbox_at,
            })
        })
        .collect();
    // Only recipients still claimed under this lease take their decision: one cancelled or
    // collapsed meanwhile stays so, and one claimed anew is its new holder's to decide.
    let claimed = all(
        c,
        "UPDATE recipients SET state = j.value->>'$.state', decision = j.value->>'$.decision', \
         reason = j.value->>'$.reason', \
         updated_at = j.value->>'$.at', due_at = COALESCE(j.value->>'$.due_at', recipients.due_at), phase = 1, \
         inbox_at = COALESCE(j.value->>'$.inbox_at', recipients.inbox_at), lease_token = NULL, lease_until = NULL \
         FROM json_each(?) AS j WHERE recipients.seq = j.value->>'$.seq' AND recipients.state = 'claimed' \
         AND recipients.lease_token = j.value->>'$.lease' \
         RETURNING recipients.seq",
        [Value::Array(updates).to_string()],
        col0,
    )?;
    Ok(claimed.into_iter().collect())
}

/// Supersedes what the kept outcomes collapse and makes the digests they batch into due.
fn collapse_and_schedule(c: &Connection, kept: &[&RecipientOutcome]) -> StoreResult<()> {
    for o in kept {
        if let Some(key) = &o.collapse_key {
            collapse(c, &o.item, key, o.now)?;
        }
        if let Some(at) = o.flush_at {
            schedule(c, &o.item.user_id, to_ms(at))?;
        }
    }
    Ok(())
}

/// Records the interruptions the kept outcomes spend.
fn record_spends(c: &Connection, kept: &[&RecipientOutcome]) -> StoreResult<()> {
    let spends = kept
        .iter()
        .filter_map(|o| {
            o.spend.map(|s| {
                json!({
                    "user_id": o.item.user_id.as_str(),
                    "at": to_ms(o.now),
                    "spend": s.as_str(),
                    "notification_id": o.item.notification_id.to_string(),
                })
            })
        })
        .collect();
    exec_rows(
        c,
        "INSERT INTO interruptions (user_id, at, spend, notification_id) \
         SELECT value->>'$.user_id', value->>'$.at', value->>'$.spend', value->>'$.notification_id' FROM json_each(?)",
        spends,
    )
}

/// Inserts the kept outcomes' inbox items and counts them unread, answering what was created
/// and each user's unread count after.
fn insert_inbox_items(
    c: &Connection,
    kept: &[&RecipientOutcome],
    erased: &HashSet<String>,
) -> StoreResult<(Created, HashMap<String, u64>)> {
    let items: Vec<Value> = kept
        .iter()
        .filter(|o| gets_item(o, erased))
        .filter_map(|o| {
            o.inbox.as_ref().map(|i| {
                json!({
                    "id": i.id.to_string(),
                    "user_id": o.item.user_id.as_str(),
                    "notification_id": o.item.notification_id.to_string(),
                    "title": i.title,
                    "body": i.body,
                    "action_url": i.action_url,
                    "category": i.category,
                    "at": to_ms(o.now),
                })
            })
        })
        .collect();
    if items.is_empty() {
        return Ok((HashMap::new(), HashMap::new()));
    }
    let sql = format!(
        "INSERT INTO inbox (id, user_id, notification_id, title, body, action_url, category, created_at) \
         SELECT value->>'$.id', value->>'$.user_id', value->>'$.notification_id', value->>'$.title', \
         value->>'$.body', value->>'$.action_url', value->>'$.category', value->>'$.at' \
         FROM json_each(?) RETURNING {INBOX_COLUMNS}"
    );
    let rows = all(c, &sql, [Value::Array(items).to_string()], inbox_row)?;
    let created: Created = rows.into_iter().map(|i| ((i.user_id.clone(), i.notification_id), i)).collect();
    let unread = count_unread(c, &created)?;
    Ok((created, unread))
}

/// Adds the created items to their users' unread counts, answering each count after.
fn count_unread(c: &Connection, created: &Created) -> StoreResult<HashMap<String, u64>> {
    let mut added: HashMap<&str, i64> = HashMap::new();
    for (user, _) in created.keys() {
        *added.entry(user.as_str()).or_default() += 1;
    }
    let counts: Vec<Value> = added.into_iter().map(|(u, n)| json!({"user_id": u, "unread": n})).collect();
    let rows: Vec<(String, i64)> = all(
        c,
        "INSERT INTO inbox_counts (user_id, unread) SELECT value->>'$.user_id', \
         value->>'$.unread' FROM json_each(?) WHERE true \
         ON CONFLICT (user_id) DO UPDATE SET unread = unread + excluded.unread RETURNING user_id, unread",
        [Value::Array(counts).to_string()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(rows.into_iter().map(|(u, n)| (u, n.max(0) as u64)).collect())
}

/// Inserts the kept outcomes' deliveries, held under the lease their recipient was claimed with.
fn insert_deliveries(c: &Connection, kept: &[&RecipientOutcome]) -> StoreResult<()> {
    let mut deliveries = Vec::new();
    for o in kept {
        for d in &o.deliveries {
            deliveries.push(json!({
                "id": d.id.to_string(),
                "notification_id": o.item.notification_id.to_string(),
                "user_id": o.item.user_id.as_str(),
                "channel": d.channel.as_str(),
                "status": d.status.as_str(),
                "provider": d.provider,
                "error": d.error,
                "payload": serde_json::to_string(&d.payload)?,
                "at": to_ms(o.now),
                "lease": o.item.lease.token.get(),
                "lease_until": to_ms(o.item.lease.until),
            }));
        }
    }
    exec_rows(
        c,
        "INSERT INTO deliveries (id, notification_id, user_id, channel, status, provider, error, payload, \
         next_attempt_at, created_at, updated_at, class, lease_token, lease_until) \
         SELECT value->>'$.id', value->>'$.notification_id', value->>'$.user_id', value->>'$.channel', \
         value->>'$.status', value->>'$.provider', value->>'$.error', value->>'$.payload', \
         NULL, value->>'$.at', value->>'$.at', \
         (SELECT class FROM notifications n WHERE n.id = value->>'$.notification_id'), \
         value->>'$.lease', value->>'$.lease_until' \
         FROM json_each(?) WHERE true ON CONFLICT (id) DO NOTHING",
        deliveries,
    )
}
