//! Dead letters: deliveries that failed for good, and their replay.

use async_trait::async_trait;
use herald_domain::Channel;
use jiff::Timestamp;
use uuid::Uuid;

use crate::StoreResult;
use crate::cursor::{Cursor, Page};
use crate::queue::Lease;
use crate::*;

/// Dead letters: deliveries that failed for good, and their replay.
#[async_trait]
pub trait DeadLetterStore: Send + Sync + 'static {
    /// A page of dead letters (deliveries failed for good), newest first, from `cursor` (a `next`
    /// of this list; [`crate::StoreError::BadCursor`] for any other).
    async fn dead_letters(
        &self,
        channel: Option<Channel>,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<Page<DeliveryRecord>>;

    /// Queues a dead letter again (attempts reset, same delivery id), held under `lease` by the
    /// node that will send it; `None` when `id` is not one.
    async fn replay_dead_letter(&self, id: Uuid, lease: Lease, now: Timestamp) -> StoreResult<Option<DeliveryRecord>>;
}
