//! The work queue: recipients and digest flushes that fall due for a decision.
//!
//! What every backend must guarantee: a claimed item is handed to one claimer only, until it is
//! recorded (`RecipientStore::record_outcomes`, `HotState::record_flush`) or released; an item
//! is never lost, so a claim that is neither recorded nor released comes back (the embedded
//! backend, the only process on its file, takes every claim back at start). Urgent recipients
//! (critical and transactional) are claimed before any other due item, whatever is due before
//! them; within each kind claims come oldest due first; nothing is claimed before it is due.

use async_trait::async_trait;
use jiff::Timestamp;

use crate::StoreResult;
use crate::records::*;

/// The work queue (see the module for what it promises).
#[async_trait]
pub trait WorkQueue: Send + Sync + 'static {
    /// Claims up to `limit` recipients (urgent ones first) and up to `limit` digest flushes due at
    /// `now`, each the oldest due first (a lane decides one user's items in order, so the batch
    /// need not be).
    async fn claim_due(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Work>>;

    /// When the next pending recipient falls due.
    async fn next_due(&self) -> StoreResult<Option<Timestamp>>;

    /// Returns one claim to the pending pool, due again at `retry_at`.
    async fn release_claim(&self, seq: i64, retry_at: Timestamp) -> StoreResult<()>;

    /// Returns claims of a crashed or stopped process to the pending pool: the recipients (their
    /// number is returned) and the digest flushes.
    async fn release_claims(&self) -> StoreResult<u64>;
}
