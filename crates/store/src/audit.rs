//! The audit trail: each person's timeline, and counts over everything.

use async_trait::async_trait;
use herald_domain::UserId;
use jiff::Timestamp;

use crate::StoreResult;
use crate::cursor::{Cursor, Page};
use crate::records::*;

/// The audit trail: each person's timeline, and counts over everything.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Counts by class, channel, status and suppression reason, of what was created since `since`.
    async fn stats(&self, since: Option<Timestamp>) -> StoreResult<Stats>;

    /// A page of the user's audit trail, newest first, from `cursor` (a `next` of this user's
    /// timeline; [`crate::StoreError::BadCursor`] for any other).
    async fn timeline(&self, user: &UserId, cursor: Option<&Cursor>, limit: u32) -> StoreResult<Page<AuditRecord>>;
}
