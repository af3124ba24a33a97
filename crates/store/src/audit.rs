//! The audit trail: each person's timeline, and counts over everything.

use async_trait::async_trait;
use jiff::Timestamp;

use crate::StoreResult;
use crate::cursor::{Cursor, Page};
use herald_domain::reason::{Decision, Reason};
use herald_domain::{Channel, Class, DeliveryStatus, UserId};
use uuid::Uuid;

/// The audit trail: each person's timeline, and counts over everything.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Counts by class, channel, status and suppression reason, of what was created since `since`.
    async fn stats(&self, since: Option<Timestamp>) -> StoreResult<Stats>;

    /// A page of the user's audit trail, newest first, from `cursor` (a `next` of this user's
    /// timeline; [`crate::StoreError::BadCursor`] for any other).
    async fn timeline(&self, user: &UserId, cursor: Option<&Cursor>, limit: u32) -> StoreResult<Page<AuditRecord>>;
}

/// One line of the audit trail.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// The user.
    pub user_id: UserId,
    /// The notification.
    pub notification_id: Uuid,
    /// Channel, when the decision is about one.
    pub channel: Option<Channel>,
    /// What was decided.
    pub decision: Decision,
    /// Why.
    pub reason: Option<Reason>,
    /// When.
    pub at: Timestamp,
}

/// An audit line as read back.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// When.
    pub at: Timestamp,
    /// The notification.
    pub notification_id: Uuid,
    /// What was decided.
    pub decision: Decision,
    /// Why.
    pub reason: Option<Reason>,
    /// Channel, when the decision is about one.
    pub channel: Option<Channel>,
}

/// Counts for `GET /v1/stats`, over everything since a time (or ever).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Notifications accepted, by class.
    pub notifications_by_class: Vec<(Class, u64)>,
    /// Deliveries by channel, class and status.
    pub deliveries: Vec<DeliveryCount>,
    /// Suppression decisions in the audit, by reason (`None` for lines without one).
    pub suppressed_by_reason: Vec<(Option<Reason>, u64)>,
    /// Deliveries now in the dead-letter list.
    pub dead_letters: u64,
}

/// How many deliveries of one channel and class have one status.
#[derive(Debug, Clone)]
pub struct DeliveryCount {
    /// The channel.
    pub channel: Channel,
    /// The notification's class (`None` for rows from before classes were recorded).
    pub class: Option<Class>,
    /// The delivery status.
    pub status: DeliveryStatus,
    /// How many.
    pub count: u64,
}
