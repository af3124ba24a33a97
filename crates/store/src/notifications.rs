//! Accepting notifications (idempotently, with their recipients), reading and cancelling them.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use uuid::Uuid;

use crate::StoreResult;
use crate::records::*;

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
