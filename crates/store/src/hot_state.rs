//! Per-user hot state the engine decides with: duplicate keys, the interruptions that cap windows
//! and breakthrough budgets count, and the pending digest.
//!
//! What every backend must guarantee, per user and across nodes: the reads a decision is made from
//! and the record of that decision (`RecipientStore::record_outcomes`, [`HotState::record_flush`])
//! see each other in order. Two decisions for one user never both spend the last slot of a cap
//! window or a budget, and a flush never sends a digest item twice or loses one: an item batched
//! while a flush runs is either in that digest or in the next. The embedded backend gets this from
//! one decider per user (the runtime's lanes) and one writer; a shared backend must make each change
//! one atomic step keyed by user (a transaction or a script), whatever node runs it.

use async_trait::async_trait;
use jiff::Timestamp;

use crate::StoreResult;
use crate::*;
use herald_domain::UserId;
use uuid::Uuid;

/// Per-user hot state the engine decides with (see the module for the atomicity it promises).
#[async_trait]
pub trait HotState: Send + Sync + 'static {
    /// Which of the `(user, fingerprint, seq)` asks are duplicates: the user got a notification
    /// with that fingerprint since `since`, before recipient `seq`. Answers with their seqs.
    async fn seen_recently(
        &self,
        asks: &[(UserId, String, i64)],
        since: Timestamp,
    ) -> StoreResult<std::collections::HashSet<i64>>;

    /// The users' interruptions since `since`, oldest first.
    async fn interruptions(
        &self,
        users: &[UserId],
        since: Timestamp,
    ) -> StoreResult<std::collections::HashMap<UserId, Vec<herald_domain::decision::Interruption>>>;

    /// The user's pending digest, oldest first.
    async fn batched(&self, user: &UserId) -> StoreResult<Vec<BatchedRecipient>>;

    /// Records a digest flush atomically: each digest becomes a notification of its own with its
    /// delivery and counts as one interruption against the cap; the merged items leave the pending
    /// digest; the next flush is scheduled or the timer cleared. Records nothing and answers false
    /// when the flush's claim is no longer held (its lease ran out and it was claimed anew).
    async fn record_flush(&self, outcome: FlushOutcome) -> StoreResult<bool>;

    /// Makes the user's digest due no later than `at`.
    async fn schedule_flush(&self, user: &UserId, at: Timestamp) -> StoreResult<()>;
}

/// A recipient waiting in a pending digest.
#[derive(Debug, Clone)]
pub struct BatchedRecipient {
    /// Recipient row.
    pub seq: i64,
    /// The notification.
    pub notification_id: Uuid,
    /// Digest group (the notification's group key, else its template).
    pub group_key: String,
}

/// A digest to send: a notification of its own that merges batched ones.
#[derive(Debug, Clone)]
pub struct DigestOutcome {
    /// The digest's own notification (one recipient, decided).
    pub notification: NewNotification,
    /// Recipient rows it merges.
    pub merged: Vec<i64>,
    /// Its deliveries.
    pub deliveries: Vec<NewDelivery>,
}

/// The result of flushing a user's pending digest, written atomically.
#[derive(Debug, Clone)]
pub struct FlushOutcome {
    /// The user.
    pub user_id: UserId,
    /// The claim the flush ran under: nothing is recorded once it is someone else's, and the
    /// digests' deliveries are held under it.
    pub lease: Lease,
    /// Digests sent now.
    pub digests: Vec<DigestOutcome>,
    /// Batched recipients settled without a digest (drained to the inbox, or no longer consented).
    pub settled: Vec<(i64, herald_domain::reason::Reason)>,
    /// Audit lines.
    pub audit: Vec<AuditEntry>,
    /// When to flush again, if anything remains.
    pub next_due: Option<Timestamp>,
    /// When.
    pub now: Timestamp,
}
