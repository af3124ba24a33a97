//! A notification's recipients and the decisions recorded for them.

use async_trait::async_trait;
use uuid::Uuid;

use crate::StoreResult;
use crate::cursor::{Cursor, Page};
use crate::records::*;

/// A notification's recipients and the decisions recorded for them.
#[async_trait]
pub trait RecipientStore: Send + Sync + 'static {
    /// A page of a notification's recipients with their deliveries, in the order they were added,
    /// from `cursor` (a `next` of this notification's list; [`crate::StoreError::BadCursor`] for
    /// any other).
    async fn list_recipients(
        &self,
        id: Uuid,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<Page<RecipientRecord>>;

    /// Counts of a notification's recipients by state and decision, and its deliveries not final
    /// yet (queued, sending, or on transactional `standby`).
    async fn recipient_counts(&self, id: Uuid) -> StoreResult<RecipientCounts>;

    /// Records the decisions for recipients with their inbox items, deliveries and audit, atomically,
    /// one result per outcome in order: `None` when the claim was lost meanwhile (cancelled,
    /// collapsed, or claimed anew after its lease ran out), and then nothing was recorded for it. An erasure of the user committed before
    /// the record wins: no inbox item is kept for an erased user.
    async fn record_outcomes(&self, outcomes: Vec<RecipientOutcome>) -> StoreResult<Vec<Option<Recorded>>>;
}
