//! The in-app inbox and its read state.

use async_trait::async_trait;
use herald_domain::UserId;
use jiff::Timestamp;
use rusqlite::{Connection, params};
use uuid::Uuid;

use super::SqliteStore;
use super::paging::{List, fetch, page};
use super::rows::{INBOX_COLUMNS, all, col0, exec, first, inbox_row};
use crate::InboxStore;
use crate::StoreResult;
use crate::cursor::Page;
use crate::to_ms;
use crate::*;

fn mark_inbox(c: &Connection, user: &UserId, target: &InboxTarget, read: bool, now: Timestamp) -> StoreResult<u64> {
    let (every, ids) = match target {
        InboxTarget::All => (1i64, "[]".to_owned()),
        InboxTarget::Ids(ids) => (0, serde_json::to_string(&ids.iter().map(Uuid::to_string).collect::<Vec<_>>())?),
    };
    let sql = if read {
        "UPDATE inbox SET read_at = ?1 WHERE user_id = ?2 AND read_at IS NULL \
         AND (?3 = 1 OR id IN (SELECT value FROM json_each(?4)))"
    } else {
        "UPDATE inbox SET read_at = NULL WHERE user_id = ?2 AND read_at IS NOT NULL AND ?1 IS NOT NULL \
         AND (?3 = 1 OR id IN (SELECT value FROM json_each(?4)))"
    };
    let changed = exec(c, sql, params![to_ms(now), user.as_str(), every, ids])?;
    let delta = changed as i64;
    exec(
        c,
        "UPDATE inbox_counts SET unread = MAX(0, unread + ?) WHERE user_id = ?",
        params![if read { -delta } else { delta }, user.as_str()],
    )?;
    Ok(changed)
}

#[async_trait]
impl InboxStore for SqliteStore {
    async fn list_inbox(&self, user: &UserId, q: InboxQuery) -> StoreResult<Page<InboxItem>> {
        let sql = format!(
            "SELECT {INBOX_COLUMNS} FROM inbox WHERE user_id = ? AND seq < ? AND (? = 0 OR read_at IS NULL) ORDER BY seq DESC LIMIT ?"
        );
        let before = List::Inbox.seq(q.cursor.as_ref(), user.as_str())?;
        let args = (user.as_str().to_owned(), before.unwrap_or(i64::MAX), i64::from(q.unread_only), fetch(q.limit));
        let rows = self.reads.read(move |c| all(c, &sql, args, inbox_row)).await?;
        Ok(page(rows, q.limit, |i| List::Inbox.mint_seq(user.as_str(), i.seq)))
    }

    async fn inbox_after(&self, user: &UserId, after_seq: i64, limit: u32) -> StoreResult<Vec<InboxItem>> {
        let sql = format!("SELECT {INBOX_COLUMNS} FROM inbox WHERE user_id = ? AND seq > ? ORDER BY seq LIMIT ?");
        let args = (user.as_str().to_owned(), after_seq, i64::from(limit));
        self.reads.read(move |c| all(c, &sql, args, inbox_row)).await
    }

    async fn unread_count(&self, user: &UserId) -> StoreResult<u64> {
        let user = user.as_str().to_owned();
        let n: Option<i64> = self
            .reads
            .read(move |c| first(c, "SELECT unread FROM inbox_counts WHERE user_id = ?", [user], col0))
            .await?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    async fn mark_inbox(&self, user: &UserId, target: InboxTarget, read: bool, now: Timestamp) -> StoreResult<u64> {
        let user = user.clone();
        self.writer.write(move |c| mark_inbox(c, &user, &target, read, now)).await
    }
}
