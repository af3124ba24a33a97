//! Topic subscriptions.

use async_trait::async_trait;
use herald_domain::UserId;
use herald_domain::ids::TopicKey;
use jiff::Timestamp;

use crate::StoreResult;
use crate::cursor::{Cursor, Page};

/// Topic subscriptions.
#[async_trait]
pub trait TopicStore: Send + Sync + 'static {
    /// Subscribes users to a topic (creating users as needed); returns how many were new.
    async fn subscribe(&self, topic: &TopicKey, users: &[UserId], now: Timestamp) -> StoreResult<u64>;

    /// Unsubscribes users; returns how many were removed.
    async fn unsubscribe(&self, topic: &TopicKey, users: &[UserId]) -> StoreResult<u64>;

    /// A page of subscribers in id order, from `cursor` (a `next` of this topic's list;
    /// [`crate::StoreError::BadCursor`] for any other).
    async fn subscribers(&self, topic: &TopicKey, cursor: Option<&Cursor>, limit: u32) -> StoreResult<Page<UserId>>;
}
