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
use crate::records::*;

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
