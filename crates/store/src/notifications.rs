//! Accepting notifications (idempotently, with their recipients), reading and cancelling them.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use uuid::Uuid;

use crate::StoreResult;
use crate::queue::{Lease, WorkItem};
use herald_domain::notification::NotificationSpec;
use herald_domain::{Class, UserId};

/// Accepting notifications (idempotently, with their recipients), reading and cancelling them.
#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Commits a notification and its recipients, honouring the idempotency key atomically.
    async fn accept(&self, n: NewNotification) -> StoreResult<AcceptOutcome>;

    /// Commits a batch of notifications in one transaction; one outcome per input, in order.
    async fn accept_many(&self, ns: Vec<NewNotification>) -> StoreResult<Vec<AcceptOutcome>>;

    /// A notification's header.
    async fn get_notification(&self, id: Uuid) -> StoreResult<Option<NotificationRecord>>;

    /// Cancels what has not been processed yet; returns how many recipients were cancelled.
    async fn cancel_notification(&self, id: Uuid, now: Timestamp) -> StoreResult<u64>;

    /// Notifications by id (those that exist).
    async fn notifications(&self, ids: &[Uuid]) -> StoreResult<Vec<Arc<NotificationRecord>>>;
}

/// A notification to commit.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// Fresh id (UUID v7).
    pub id: Uuid,
    /// Validated content.
    pub spec: NotificationSpec,
    /// Resolved class.
    pub class: Class,
    /// Recipients, de-duplicated (topic already expanded).
    pub recipients: Vec<UserId>,
    /// Idempotency key and a hash of the request it came with.
    pub idempotency: Option<(String, String)>,
    /// Hash of what the notification says (template, class, category, data): the same content
    /// reaching a user again by another path within minutes is a duplicate.
    pub fingerprint: Option<String>,
    /// Accept time.
    pub now: Timestamp,
    /// When recipients fall due.
    pub due_at: Timestamp,
    /// Claims the recipients for this lease at once when they are due by `now`: the accepting
    /// node decides them without a claim write of its own (`None`: they wait in the queue).
    pub claim: Option<Lease>,
}

/// What [`crate::Store::accept`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// Committed; the recipient count.
    Created {
        /// The id.
        id: Uuid,
        /// How many recipients.
        recipients: u64,
        /// The recipients claimed with the accept (see [`NewNotification::claim`]), to decide.
        claimed: Vec<WorkItem>,
    },
    /// The idempotency key was seen within 24 h with the same request.
    Existing {
        /// The earlier id.
        id: Uuid,
        /// Its recipient count.
        recipients: u64,
    },
    /// The idempotency key was seen within 24 h with a different request.
    KeyConflict {
        /// The earlier id.
        id: Uuid,
    },
}

/// A notification's header.
#[derive(Debug, Clone)]
pub struct NotificationRecord {
    /// Id.
    pub id: Uuid,
    /// Template key.
    pub template: String,
    /// Resolved class.
    pub class: Class,
    /// Content.
    pub spec: NotificationSpec,
    /// Recipients at accept.
    pub recipients_total: u64,
    /// Accept time.
    pub created_at: Timestamp,
    /// Set when cancelled.
    pub cancelled_at: Option<Timestamp>,
    /// Content hash for duplicate suppression.
    pub fingerprint: Option<String>,
    /// Whether another notification with the same content was accepted within the duplicate
    /// window before it: only then can it be a duplicate.
    pub repeated: bool,
}
