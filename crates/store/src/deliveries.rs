//! Deliveries and their attempts, held under leases.
//!
//! What every backend must guarantee: an open delivery (queued or sending) is held by at most one
//! node at a time, under a lease like the work queue's (see [`crate::queue`]). A delivery created
//! by a decision or a digest is held under the lease of the claim that made it; one handed over
//! to by a result is held by the result's holder; one replayed or handed over to by a provider's
//! report is held by the node that asked. A holder renews all it holds at once
//! ([`DeliveryStore::renew_deliveries`]); what no live lease holds is taken over by the first
//! node to adopt it ([`DeliveryStore::adopt_deliveries`]). The writes of an attempt name the
//! holder and change nothing once the delivery is someone else's, so two nodes never both send it.

use async_trait::async_trait;
use jiff::Timestamp;

use crate::StoreResult;
use crate::queue::{Lease, LeaseToken};
use crate::*;
use herald_domain::reason::Reason;
use herald_domain::{Channel, Class, DeliveryStatus};
use uuid::Uuid;

/// Deliveries and their attempts.
#[async_trait]
pub trait DeliveryStore: Send + Sync + 'static {
    /// Takes up to `limit` open deliveries that no live lease holds (never held, or whose
    /// holder's lease ran out by `now`, its own excepted) under `lease`, soonest due first; a
    /// transactional `standby` is not open until a hand-over queues it.
    async fn adopt_deliveries(&self, lease: Lease, now: Timestamp, limit: u32) -> StoreResult<Vec<DeliveryRecord>>;

    /// Extends to `lease.until` the lease of every open delivery `lease.token` holds; answers how many.
    async fn renew_deliveries(&self, lease: Lease) -> StoreResult<u64>;

    /// Lets go of every open delivery `holder` holds (a node that stops), for anyone to adopt at
    /// once; answers how many.
    async fn release_deliveries(&self, holder: LeaseToken) -> StoreResult<u64>;

    /// Marks a delivery `sending` and counts the attempt, unless it is closed, no longer held by
    /// `begin.holder`, or a send limit is reached; the limits count deliveries first dispatched
    /// within their windows, atomically.
    async fn begin_attempt(&self, begin: BeginAttempt) -> StoreResult<Begin>;

    /// Records what a provider reported later about a delivery it accepted: `sent` (or still
    /// `sending`, or queued for a retry) becomes `delivered`, `failed` or `bounced`, with an audit
    /// entry; a final status is never changed, and a failure of an earlier attempt than the last is
    /// ignored. A failure hands over to the next transactional fallback (bringing back one that had
    /// stood down after the success now reported failed), which is returned, held under `lease`, to
    /// be dispatched. `Closed` when no delivery could take the report.
    async fn provider_status(&self, report: ProviderStatus, lease: Lease) -> StoreResult<Updated>;

    /// Records an attempt's result with its audit entry and fallback hand-over (held by the same
    /// holder), atomically; nothing is recorded when the delivery is no longer open (cancelled
    /// meanwhile) or no longer held by `update.holder`.
    async fn update_delivery(&self, update: DeliveryUpdate) -> StoreResult<Updated>;
}

/// A delivery to create on an interrupting channel.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Deterministic id (notification, user, channel).
    pub id: Uuid,
    /// Channel.
    pub channel: Channel,
    /// `Queued` to dispatch, `Standby` as a fallback; `Suppressed` when decided on the spot.
    pub status: DeliveryStatus,
    /// Provider, when known already.
    pub provider: Option<String>,
    /// Reason code or error.
    pub error: Option<String>,
    /// What to send: rendered content, channel specific.
    pub payload: serde_json::Value,
}

/// A delivery as stored.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    /// Deterministic id.
    pub id: Uuid,
    /// The notification.
    pub notification_id: Uuid,
    /// The user.
    pub user_id: String,
    /// Channel.
    pub channel: Channel,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts so far.
    pub attempts: u32,
    /// Provider of the last attempt.
    pub provider: Option<String>,
    /// Last error.
    pub error: Option<String>,
    /// What to send.
    pub payload: serde_json::Value,
    /// When to try next.
    pub next_attempt_at: Option<Timestamp>,
    /// The notification's class.
    pub class: Option<Class>,
    /// When it was decided.
    pub created_at: Timestamp,
    /// When it first went to a provider.
    pub dispatched_at: Option<Timestamp>,
    /// When it became a dead letter (failed for good), if it is one.
    pub dead_at: Option<Timestamp>,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A sliding count limit: at most `max` since `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Start of the window.
    pub since: Timestamp,
    /// Most allowed in it.
    pub max: u32,
}

/// Marks a delivery `sending` before an attempt, checking the send limits atomically.
#[derive(Debug, Clone)]
pub struct BeginAttempt {
    /// Which delivery.
    pub id: Uuid,
    /// Who holds it (nothing is begun for a delivery held by another).
    pub holder: LeaseToken,
    /// Of a critical or transactional notification: written ahead of other bookkeeping.
    pub urgent: bool,
    /// The hard ceiling per user on this channel.
    pub per_user: Option<Limit>,
    /// The channel's budget across all users.
    pub per_channel: Option<Limit>,
    /// When.
    pub now: Timestamp,
}

/// What [`crate::Store::begin_attempt`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// Marked `sending`: go ahead.
    Go,
    /// No longer open (cancelled, settled): do not send.
    Closed,
    /// The user's hard ceiling on this channel is reached.
    UserCeiling,
    /// The channel's budget is spent.
    ChannelBudget,
}

/// What a provider reported later about a delivery it accepted (a status callback).
#[derive(Debug, Clone)]
pub struct ProviderStatus {
    /// The delivery.
    pub delivery_id: Uuid,
    /// Its channel, which the report must match.
    pub channel: Channel,
    /// The attempt the report is about, when the provider says (a failure of an earlier attempt
    /// than the delivery's last does not count; a delivery from any attempt does).
    pub attempt: Option<u32>,
    /// What became of it.
    pub status: FinalStatus,
    /// The provider's error, for a failure.
    pub error: Option<String>,
    /// The reason recorded in the audit, for a failure.
    pub reason: Option<Reason>,
    /// When.
    pub now: Timestamp,
}

/// The final outcomes a provider can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalStatus {
    /// It reached the recipient.
    Delivered,
    /// It did not, for good: a dead letter an operator may replay.
    Failed,
    /// The address will not take messages (it does not exist, or opted out).
    Bounced,
}

/// An attempt's result.
#[derive(Debug, Clone)]
pub struct DeliveryUpdate {
    /// Which delivery.
    pub id: Uuid,
    /// Who holds it (nothing is recorded for a delivery held by another); it holds the
    /// fallback handed over to as well, until the end of its lease on this one.
    pub holder: LeaseToken,
    /// Of a critical or transactional notification: written ahead of other bookkeeping.
    pub urgent: bool,
    /// New status.
    pub status: DeliveryStatus,
    /// Attempts so far.
    pub attempts: u32,
    /// Provider used.
    pub provider: Option<String>,
    /// Error, if any.
    pub error: Option<String>,
    /// Next try, if retrying.
    pub next_attempt_at: Option<Timestamp>,
    /// Audit entry to add with it.
    pub audit: Option<AuditEntry>,
    /// What to do with the transactional fallbacks of the same notification and user, atomically.
    pub then: AfterUpdate,
    /// When.
    pub now: Timestamp,
}

/// Fallback handling that goes with a delivery update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterUpdate {
    /// Leave them.
    Nothing,
    /// The channel succeeded: stand the fallbacks down.
    StandDown,
    /// The channel failed for good: activate the next fallback.
    HandOver,
}

/// What [`crate::Store::update_delivery`] did.
#[derive(Debug, Clone)]
pub enum Updated {
    /// The delivery was no longer open (cancelled meanwhile): nothing recorded.
    Closed,
    /// Recorded; with the fallback delivery it activated, if any, to dispatch.
    Recorded(Option<Box<DeliveryRecord>>),
}
