//! The audit trail: each person's timeline, and counts over everything.

use async_trait::async_trait;
use herald_domain::UserId;
use jiff::Timestamp;

use crate::StoreResult;
use crate::records::*;

/// The audit trail: each person's timeline, and counts over everything.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Counts by class, channel, status and suppression reason, of what was created since `since`.
    async fn stats(&self, since: Option<Timestamp>) -> StoreResult<Stats>;

    /// The user's audit trail, newest first.
    async fn timeline(&self, user: &UserId, before: Option<i64>, limit: u32) -> StoreResult<Vec<AuditRecord>>;
}
