//! Provider feedback about addresses, and the blocks it leaves.

use async_trait::async_trait;
use herald_domain::Channel;

use crate::StoreResult;
use crate::cursor::{Cursor, Page};
use crate::records::*;

/// Provider feedback about addresses, and the blocks it leaves.
#[async_trait]
pub trait FeedbackStore: Send + Sync + 'static {
    /// Applies a provider's report about an address: blocks, switches channels off, removes devices.
    async fn apply_feedback(&self, feedback: Feedback) -> StoreResult<FeedbackOutcome>;

    /// A page of blocked addresses, oldest first, from `cursor` (a `next` of this list;
    /// [`crate::StoreError::BadCursor`] for any other).
    async fn address_blocks(
        &self,
        channel: Option<Channel>,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<Page<AddressBlockRecord>>;

    /// Lifts a block (an operator's decision, for a block that was a mistake); false when none.
    async fn remove_address_block(&self, channel: Channel, address: &str) -> StoreResult<bool>;
}
