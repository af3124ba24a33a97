//! Dead letters: deliveries that failed for good, and their replay.

use async_trait::async_trait;
use herald_domain::Channel;
use jiff::Timestamp;
use uuid::Uuid;

use crate::StoreResult;
use crate::records::*;

/// Dead letters: deliveries that failed for good, and their replay.
#[async_trait]
pub trait DeadLetterStore: Send + Sync + 'static {
    /// Dead letters (deliveries failed for good), newest first, after the cursor `before`.
    async fn dead_letters(
        &self,
        channel: Option<Channel>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<(i64, DeliveryRecord)>>;

    /// Queues a dead letter again (attempts reset, same delivery id); `None` when `id` is not one.
    async fn replay_dead_letter(&self, id: Uuid, now: Timestamp) -> StoreResult<Option<DeliveryRecord>>;
}
