//! The bookkeeping of sends in SQLite, a batch at a time: the starts of attempts (checked against
//! the hourly ceiling and the channel budgets) and their results (with audit lines and the
//! transactional fallbacks they stand down or hand over to), each batch in a handful of
//! statements whatever its size.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use rusqlite::{Connection, params};
use serde_json::{Value, json};

use async_trait::async_trait;

use super::SqliteStore;
use super::feedback;
use super::rows::{DELIVERY_COLUMNS, all, col0, delivery_row, exec, one, parse_user};
use super::writer::Priority;
use super::writes::{exec_rows, hand_over, insert_audits};
use crate::queue::{Lease, LeaseToken};
use crate::{AfterUpdate, Begin, BeginAttempt, DeliveryRecord, DeliveryUpdate, ProviderStatus, Updated};
use crate::{DeliveryStore, StoreError, StoreResult, from_ms, to_ms};

/// Open deliveries a batch asks about, by id: (user, channel, already dispatched).
type Open = HashMap<String, (String, String, bool)>;

/// First dispatches counted against the limits: per (user, channel) their times, per
/// (channel, window start) their number.
struct Dispatched {
    per_user: HashMap<(String, String), Vec<i64>>,
    per_channel: HashMap<(String, i64), i64>,
}

/// Marks the deliveries `sending` and counts their attempts, unless closed or over a limit; see
/// [`crate::Store::begin_attempt`]. Limits count first dispatches, the batch's own included.
pub(super) fn begin_attempts(c: &Connection, begins: &[BeginAttempt]) -> StoreResult<Vec<Begin>> {
    let open = open_held(c, begins)?;
    let mut dispatched =
        Dispatched { per_user: user_dispatches(c, begins, &open)?, per_channel: channel_dispatches(c, begins, &open)? };
    let mut answers = Vec::with_capacity(begins.len());
    let mut go = Vec::new();
    for b in begins {
        let answer = judge(b, &open, &mut dispatched);
        if answer == Begin::Go {
            go.push(json!({"id": b.id.to_string(), "at": to_ms(b.now)}));
        }
        answers.push(answer);
    }
    exec_rows(
        c,
        "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, \
         dispatched_at = COALESCE(dispatched_at, j.value->>'$.at'), updated_at = j.value->>'$.at' \
         FROM json_each(?) AS j WHERE deliveries.id = j.value->>'$.id'",
        go,
    )?;
    Ok(answers)
}

/// Reads which of the asked deliveries are open and still held by the asker.
fn open_held(c: &Connection, begins: &[BeginAttempt]) -> StoreResult<Open> {
    let asks: Vec<Value> = begins.iter().map(|b| json!({"id": b.id.to_string(), "holder": b.holder.get()})).collect();
    let rows = all(
        c,
        "SELECT deliveries.id, user_id, channel, dispatched_at FROM deliveries JOIN json_each(?) AS j \
         ON deliveries.id = j.value->>'$.id' AND deliveries.lease_token = j.value->>'$.holder' \
         WHERE status IN ('queued', 'sending')",
        [Value::Array(asks).to_string()],
        |r| {
            let dispatched: Option<i64> = r.get("dispatched_at")?;
            Ok((r.get("id")?, (r.get("user_id")?, r.get("channel")?, dispatched.is_some())))
        },
    )?;
    Ok(rows.into_iter().collect())
}

/// Reads the first dispatches of the users and channels concerned, back to the oldest window asked about.
fn user_dispatches(
    c: &Connection,
    begins: &[BeginAttempt],
    open: &Open,
) -> StoreResult<HashMap<(String, String), Vec<i64>>> {
    let users: HashSet<&str> = open.values().filter(|(_, _, seen)| !seen).map(|(u, _, _)| u.as_str()).collect();
    let since = begins.iter().filter_map(|b| b.per_user.map(|l| to_ms(l.since))).min();
    let Some(since) = since.filter(|_| !users.is_empty()) else { return Ok(HashMap::new()) };
    let rows: Vec<(String, String, i64)> = all(
        c,
        "SELECT user_id, channel, dispatched_at FROM deliveries \
         WHERE user_id IN (SELECT value FROM json_each(?1)) AND dispatched_at >= ?2",
        params![serde_json::to_string(&users)?, since],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut per_user: HashMap<(String, String), Vec<i64>> = HashMap::new();
    for (user, channel, at) in rows {
        per_user.entry((user, channel)).or_default().push(at);
    }
    Ok(per_user)
}

/// Counts the first dispatches on each channel a budget is asked about, since its window's start.
fn channel_dispatches(
    c: &Connection,
    begins: &[BeginAttempt],
    open: &Open,
) -> StoreResult<HashMap<(String, i64), i64>> {
    let mut per_channel: HashMap<(String, i64), i64> = HashMap::new();
    for b in begins.iter().filter(|b| b.per_channel.is_some()) {
        let Some((_, channel, false)) = open.get(&b.id.to_string()) else { continue };
        let since = b.per_channel.map(|l| to_ms(l.since)).unwrap_or_default();
        if let Entry::Vacant(slot) = per_channel.entry((channel.clone(), since)) {
            let n: i64 = one(
                c,
                "SELECT COUNT(*) FROM deliveries WHERE channel = ? AND dispatched_at >= ?",
                params![channel, since],
                col0,
            )?;
            slot.insert(n);
        }
    }
    Ok(per_channel)
}

/// Answers one ask, in batch order; a first dispatch that goes counts against the limits of
/// the asks after it.
fn judge(b: &BeginAttempt, open: &Open, dispatched: &mut Dispatched) -> Begin {
    let Some((user, channel, seen)) = open.get(&b.id.to_string()) else { return Begin::Closed };
    if *seen {
        return Begin::Go;
    }
    if let Some(l) = b.per_user {
        let sent = dispatched.per_user.entry((user.clone(), channel.clone())).or_default();
        if sent.iter().filter(|at| **at >= to_ms(l.since)).count() >= l.max as usize {
            return Begin::UserCeiling;
        }
        sent.push(to_ms(b.now));
    }
    if let Some(l) = b.per_channel {
        let sent = dispatched.per_channel.entry((channel.clone(), to_ms(l.since))).or_default();
        if *sent >= i64::from(l.max) {
            return Begin::ChannelBudget;
        }
        *sent += 1;
    }
    Begin::Go
}

/// Records the results of attempts; see [`crate::Store::update_delivery`].
pub(super) fn update_deliveries(c: &Connection, updates: &[DeliveryUpdate]) -> StoreResult<Vec<Updated>> {
    let recorded = settle_results(c, updates)?;
    let kept: Vec<&DeliveryUpdate> = updates.iter().filter(|u| recorded.contains_key(&u.id.to_string())).collect();
    insert_audits(c, kept.iter().filter_map(|u| u.audit.as_ref()))?;
    stand_down_fallbacks(c, &kept)?;
    let mut out = Vec::with_capacity(updates.len());
    for u in updates {
        let Some(until) = recorded.get(&u.id.to_string()) else {
            out.push(Updated::Closed);
            continue;
        };
        out.push(Updated::Recorded(hand_over_after(c, u, *until)?));
    }
    if out.len() != updates.len() {
        return Err(StoreError::Corrupt("delivery results went missing".into()));
    }
    Ok(out)
}

/// Writes each result onto its delivery, answering the lease expiry of those it took, by id.
fn settle_results(c: &Connection, updates: &[DeliveryUpdate]) -> StoreResult<HashMap<String, i64>> {
    let rows: Vec<Value> = updates
        .iter()
        .map(|u| {
            json!({
                "id": u.id.to_string(),
                "holder": u.holder.get(),
                "status": u.status.as_str(),
                "attempts": u.attempts,
                "provider": u.provider,
                "error": u.error,
                "next_attempt_at": u.next_attempt_at.map(to_ms),
                "at": to_ms(u.now),
            })
        })
        .collect();
    // Only deliveries still open and held take a result: one cancelled or settled meanwhile stays
    // so, and one adopted by another node after this one's lease ran out is that node's now.
    let recorded = all(
        c,
        "UPDATE deliveries SET status = j.value->>'$.status', attempts = j.value->>'$.attempts', \
         provider = j.value->>'$.provider', \
         error = j.value->>'$.error', next_attempt_at = j.value->>'$.next_attempt_at', updated_at = j.value->>'$.at', \
         dead_at = CASE WHEN j.value->>'$.status' = 'failed' THEN j.value->>'$.at' END \
         FROM json_each(?) AS j WHERE deliveries.id = j.value->>'$.id' AND deliveries.status IN ('queued', 'sending') \
         AND deliveries.lease_token = j.value->>'$.holder' \
         RETURNING deliveries.id, deliveries.lease_until",
        [Value::Array(rows).to_string()],
        |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.unwrap_or_default())),
    )?;
    Ok(recorded.into_iter().collect())
}

/// Stands down the fallbacks of the notifications whose channel worked, all in one statement.
fn stand_down_fallbacks(c: &Connection, kept: &[&DeliveryUpdate]) -> StoreResult<()> {
    let done: Vec<Value> = kept
        .iter()
        .filter(|u| u.then == AfterUpdate::StandDown)
        .filter_map(|u| {
            u.audit
                .as_ref()
                .map(|a| json!({"notification_id": a.notification_id.to_string(), "user_id": a.user_id.as_str()}))
        })
        .collect();
    if let Some(now) = kept.iter().map(|u| to_ms(u.now)).max()
        && !done.is_empty()
    {
        exec(
            c,
            "UPDATE deliveries SET status = 'suppressed', error = 'fallback_not_needed', updated_at = ?1 \
             WHERE status = 'standby' AND (notification_id, user_id) IN (SELECT value->>'$.notification_id', \
             value->>'$.user_id' FROM json_each(?2))",
            params![now, Value::Array(done).to_string()],
        )?;
    }
    Ok(())
}

/// Hands a recorded result over to the next fallback when it asks to, under the same holder's
/// lease (`until` its expiry), answering the delivery now active.
fn hand_over_after(c: &Connection, u: &DeliveryUpdate, until: i64) -> StoreResult<Option<Box<DeliveryRecord>>> {
    let (AfterUpdate::HandOver, Some(a)) = (u.then, &u.audit) else { return Ok(None) };
    let user = parse_user(a.user_id.as_str())?;
    let lease = Lease { token: u.holder, until: from_ms(until) };
    Ok(hand_over(c, a.notification_id, &user, u.now, false, lease)?.map(Box::new))
}

/// Takes open deliveries no live lease holds; see [`crate::Store::adopt_deliveries`].
fn adopt(c: &Connection, lease: Lease, now: Timestamp, limit: u32) -> StoreResult<Vec<DeliveryRecord>> {
    let sql = format!(
        "UPDATE deliveries SET lease_token = ?1, lease_until = ?2 WHERE id IN (SELECT id FROM deliveries \
         WHERE status IN ('queued', 'sending') AND (lease_until IS NULL OR lease_until <= ?3) \
         AND lease_token IS NOT ?1 ORDER BY lease_until LIMIT ?4) RETURNING {DELIVERY_COLUMNS}"
    );
    let params = params![lease.token.get(), to_ms(lease.until), to_ms(now), i64::from(limit)];
    let mut adopted = all(c, &sql, params, delivery_row)?;
    adopted.sort_by_key(|d| d.next_attempt_at);
    Ok(adopted)
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn adopt_deliveries(&self, lease: Lease, now: Timestamp, limit: u32) -> StoreResult<Vec<DeliveryRecord>> {
        self.writer.write_lazy(move |c| adopt(c, lease, now, limit)).await
    }

    async fn renew_deliveries(&self, lease: Lease) -> StoreResult<u64> {
        self.writer
            .write_lazy(move |c| {
                exec(
                    c,
                    "UPDATE deliveries SET lease_until = ? WHERE lease_token = ? AND status IN ('queued', 'sending')",
                    params![to_ms(lease.until), lease.token.get()],
                )
            })
            .await
    }

    async fn release_deliveries(&self, holder: LeaseToken) -> StoreResult<u64> {
        self.writer
            .write(move |c| {
                exec(
                    c,
                    "UPDATE deliveries SET lease_token = NULL, lease_until = NULL \
                     WHERE lease_token = ? AND status IN ('queued', 'sending')",
                    [holder.get()],
                )
            })
            .await
    }

    async fn begin_attempt(&self, b: BeginAttempt) -> StoreResult<Begin> {
        self.begins.call(Priority::of(b.urgent), b).await
    }

    async fn provider_status(&self, report: ProviderStatus, lease: Lease) -> StoreResult<Updated> {
        self.writer.write(move |c| feedback::provider_status(c, &report, lease)).await
    }

    async fn update_delivery(&self, u: DeliveryUpdate) -> StoreResult<Updated> {
        self.results.call(Priority::of(u.urgent), u).await
    }
}
