//! A notification's recipients and the decisions recorded for them.

use async_trait::async_trait;
use uuid::Uuid;

use crate::StoreResult;
use crate::cursor::{Cursor, Page};
use crate::*;
use herald_domain::RecipientState;
use herald_domain::reason::{Decision, Reason};
use jiff::Timestamp;
use serde::Serialize;

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

/// Counts of a notification's recipients.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecipientCounts {
    /// Recipients not decided yet.
    pub pending: u64,
    /// Recipients decided.
    pub processed: u64,
    /// Decided recipients still waiting (deferred or batched).
    pub waiting: u64,
    /// Decided recipients by decision.
    pub by_decision: std::collections::BTreeMap<Decision, u64>,
    /// Deliveries not final yet: queued (including those waiting for a retry), sending, or on
    /// standby as a transactional fallback.
    pub open_deliveries: u64,
}

/// One recipient of a notification with its deliveries.
#[derive(Debug, Clone)]
pub struct RecipientRecord {
    /// The user.
    pub user_id: String,
    /// Where it stands in the queue.
    pub state: RecipientState,
    /// Decision once decided.
    pub decision: Option<Decision>,
    /// Reason once decided, when there is one.
    pub reason: Option<Reason>,
    /// Deliveries on interrupting channels and the inbox.
    pub deliveries: Vec<DeliveryRecord>,
}

/// What becomes of a recipient after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Decided for good.
    Done,
    /// Decide the interruptions again at this time (quiet hours).
    Defer(Timestamp),
    /// Wait in the user's pending digest.
    Batch,
}

/// The decision for one recipient, written atomically.
#[derive(Debug, Clone)]
pub struct RecipientOutcome {
    /// The work item decided.
    pub item: WorkItem,
    /// What becomes of the recipient.
    pub next: Next,
    /// The allowance spent by interrupting now.
    pub spend: Option<herald_domain::decision::Spend>,
    /// Schedule the user's digest no later than this.
    pub flush_at: Option<Timestamp>,
    /// Older pending notifications of the user with this collapse key are superseded.
    pub collapse_key: Option<String>,
    /// Overall decision.
    pub decision: Decision,
    /// Overall reason (when suppressed).
    pub reason: Option<Reason>,
    /// Inbox item, when the inbox got one.
    pub inbox: Option<NewInboxItem>,
    /// Deliveries to make.
    pub deliveries: Vec<NewDelivery>,
    /// Audit lines.
    pub audit: Vec<AuditEntry>,
    /// When.
    pub now: Timestamp,
}

/// What [`crate::Store::record_outcome`] recorded.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The inbox item, if this call created it.
    pub inbox: Option<InboxItem>,
    /// The user's unread count after it, with the item.
    pub unread: Option<u64>,
}
