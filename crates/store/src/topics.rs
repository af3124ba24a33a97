//! Topic subscriptions.

use async_trait::async_trait;
use herald_domain::UserId;
use herald_domain::ids::TopicKey;
use jiff::Timestamp;

use crate::StoreResult;

/// Topic subscriptions.
#[async_trait]
pub trait TopicStore: Send + Sync + 'static {
    /// Subscribes users to a topic (creating users as needed); returns how many were new.
    async fn subscribe(&self, topic: &TopicKey, users: &[UserId], now: Timestamp) -> StoreResult<u64>;

    /// Unsubscribes users; returns how many were removed.
    async fn unsubscribe(&self, topic: &TopicKey, users: &[UserId]) -> StoreResult<u64>;

    /// A page of subscribers in id order.
    async fn subscribers(&self, topic: &TopicKey, after: Option<&str>, limit: u32) -> StoreResult<Vec<UserId>>;
}
