//! The work queue: recipients and digest flushes that fall due for a decision, claimed under
//! leases.
//!
//! What every backend must guarantee:
//! - A claim is a lease: the item is its holder's until the lease runs out, and no one else's.
//!   A lease names its holder by a [`LeaseToken`] (one per running node); every write that
//!   finishes the work (the ack: `RecipientStore::record_outcomes`, `HotState::record_flush`) or
//!   hands it back ([`WorkQueue::release`]) names the lease, and does nothing once the item is
//!   claimed anew. So a node that stalled past its lease cannot overwrite the work of the node
//!   that took over.
//! - An item is never lost: a claim that is neither acked nor released comes back when its lease
//!   runs out (a crashed node's work is taken over then, and only then; a starting node does not
//!   take back claims whose lease still runs). A holder that needs longer renews
//!   ([`WorkQueue::renew`]); one that stops hands back all it holds ([`WorkQueue::release_held`]).
//! - Urgent recipients (critical and transactional) are claimed before any other due item,
//!   whatever is due before them; within each kind claims come oldest due first; nothing is
//!   claimed before it is due.

use std::time::Duration;

use async_trait::async_trait;
use herald_domain::UserId;
use jiff::Timestamp;
use uuid::Uuid;

use crate::StoreResult;

/// Names the holder of leases: a running node mints one at start and claims everything under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseToken(i64);

impl LeaseToken {
    /// A token no other node is likely to have (64 random bits).
    pub fn mint() -> Self {
        Self(rand::random())
    }

    /// The token as stored.
    pub fn get(self) -> i64 {
        self.0
    }

    /// A token read back from storage.
    pub const fn from_stored(raw: i64) -> Self {
        Self(raw)
    }
}

/// A lease: who holds it and when it runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The holder, named in every write that finishes or returns what it holds.
    pub token: LeaseToken,
    /// After this, anyone may claim the item again.
    pub until: Timestamp,
}

impl Lease {
    /// `holder`'s lease from `now` for `length`.
    pub fn new(holder: LeaseToken, now: Timestamp, length: Duration) -> Self {
        let length = jiff::SignedDuration::try_from(length).unwrap_or(jiff::SignedDuration::MAX);
        let until = now.checked_add(length).unwrap_or(Timestamp::MAX);
        Self { token: holder, until }
    }
}

/// What the feeder hands a lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Decide one notification for one user.
    Decide(WorkItem),
    /// Send (or drain) the user's pending digest.
    Flush(FlushItem),
}

impl Work {
    /// The user whose lane runs this work.
    pub fn user(&self) -> &UserId {
        match self {
            Work::Decide(i) => &i.user_id,
            Work::Flush(f) => &f.user_id,
        }
    }

    /// The lease it is held under.
    pub fn lease(&self) -> Lease {
        match self {
            Work::Decide(i) => i.lease,
            Work::Flush(f) => f.lease,
        }
    }
}

/// A unit of work: decide one notification for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItem {
    /// Recipient row.
    pub seq: i64,
    /// 0 on the first decision; 1 once the inbox is done and only interruptions remain.
    pub phase: i64,
    /// The notification.
    pub notification_id: Uuid,
    /// The user.
    pub user_id: UserId,
    /// Critical or transactional: claimed, decided and recorded ahead of the rest.
    pub urgent: bool,
    /// The claim it is held under.
    pub lease: Lease,
}

/// A claimed digest flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushItem {
    /// The user whose pending digest is due.
    pub user_id: UserId,
    /// The claim it is held under.
    pub lease: Lease,
}

/// The work queue (see the module for what it promises).
#[async_trait]
pub trait WorkQueue: Send + Sync + 'static {
    /// Claims under `lease` up to `limit` recipients (urgent ones first) and up to `limit` digest
    /// flushes due at `now`, each the oldest due first, counting a claim whose lease ran out as
    /// due (a lane decides one user's items in order, so the batch need not be).
    async fn claim_due(&self, now: Timestamp, lease: Lease, limit: u32) -> StoreResult<Vec<Work>>;

    /// When the next item falls due (a pending one, or a claim whose lease runs out).
    async fn next_due(&self) -> StoreResult<Option<Timestamp>>;

    /// Extends the leases of `held` to `until`; answers those still held (the others were
    /// claimed anew after their lease ran out, and are no longer the caller's to do).
    async fn renew(&self, held: Vec<Work>, until: Timestamp) -> StoreResult<Vec<Work>>;

    /// Returns a claim to the queue, due again at `retry_at`; nothing when it is no longer held.
    async fn release(&self, work: &Work, retry_at: Timestamp) -> StoreResult<()>;

    /// Returns every claim `holder` holds to the queue, due at once (a node that stops); answers
    /// how many.
    async fn release_held(&self, holder: LeaseToken) -> StoreResult<u64>;
}
