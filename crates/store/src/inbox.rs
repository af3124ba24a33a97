//! The in-app inbox and its read state.

use async_trait::async_trait;
use jiff::Timestamp;

use crate::StoreResult;
use crate::cursor::Page;
use herald_domain::UserId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The in-app inbox and its read state.
#[async_trait]
pub trait InboxStore: Send + Sync + 'static {
    /// A page of the inbox, newest first, from `query.cursor` (a `next` of this user's inbox;
    /// [`crate::StoreError::BadCursor`] for any other).
    async fn list_inbox(&self, user: &UserId, query: InboxQuery) -> StoreResult<Page<InboxItem>>;

    /// Items newer than `after_seq`, oldest first (stream resume).
    async fn inbox_after(&self, user: &UserId, after_seq: i64, limit: u32) -> StoreResult<Vec<InboxItem>>;

    /// Unread items.
    async fn unread_count(&self, user: &UserId) -> StoreResult<u64>;

    /// Marks items (or all) read or unread; returns how many changed.
    async fn mark_inbox(&self, user: &UserId, target: InboxTarget, read: bool, now: Timestamp) -> StoreResult<u64>;
}

/// An inbox item to create.
#[derive(Debug, Clone)]
pub struct NewInboxItem {
    /// Item id.
    pub id: Uuid,
    /// Title.
    pub title: Option<String>,
    /// Body.
    pub body: Option<String>,
    /// Click target.
    pub action_url: Option<String>,
    /// Category.
    pub category: Option<String>,
}

/// An inbox item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxItem {
    /// Stream position (the SSE event id).
    pub seq: i64,
    /// Item id.
    pub id: Uuid,
    /// Owner.
    pub user_id: String,
    /// The notification.
    pub notification_id: Uuid,
    /// Title.
    pub title: Option<String>,
    /// Body.
    pub body: Option<String>,
    /// Click target.
    pub action_url: Option<String>,
    /// Category.
    pub category: Option<String>,
    /// Arrival.
    pub created_at: Timestamp,
    /// When read.
    pub read_at: Option<Timestamp>,
}

/// Inbox listing options.
#[derive(Debug, Clone, Default)]
pub struct InboxQuery {
    /// Page size.
    pub limit: u32,
    /// Where the page starts: a `next` of an earlier page; `None` for the newest items.
    pub cursor: Option<crate::cursor::Cursor>,
    /// Only unread items.
    pub unread_only: bool,
}

/// Which inbox items a read/unread call touches.
#[derive(Debug, Clone)]
pub enum InboxTarget {
    /// These item ids.
    Ids(Vec<Uuid>),
    /// Everything.
    All,
}
