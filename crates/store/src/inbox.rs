//! The in-app inbox and its read state.

use async_trait::async_trait;
use herald_domain::UserId;
use jiff::Timestamp;

use crate::StoreResult;
use crate::cursor::Page;
use crate::records::*;

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
