//! Deliveries and their attempts.

use async_trait::async_trait;

use crate::StoreResult;
use crate::records::*;

/// Deliveries and their attempts.
#[async_trait]
pub trait DeliveryStore: Send + Sync + 'static {
    /// Deliveries still to be attempted (queued or sending, for restart); a transactional
    /// `standby` is not one until a hand-over queues it.
    async fn open_deliveries(&self) -> StoreResult<Vec<DeliveryRecord>>;

    /// Marks a delivery `sending` and counts the attempt, unless it is closed or a send limit is
    /// reached; the limits count deliveries first dispatched within their windows, atomically.
    async fn begin_attempt(&self, begin: BeginAttempt) -> StoreResult<Begin>;

    /// Records what a provider reported later about a delivery it accepted: `sent` (or still
    /// `sending`, or queued for a retry) becomes `delivered`, `failed` or `bounced`, with an audit
    /// entry; a final status is never changed, and a failure of an earlier attempt than the last is
    /// ignored. A failure hands over to the next transactional fallback (bringing back one that had
    /// stood down after the success now reported failed), which is returned to be dispatched.
    /// `Closed` when no delivery could take the report.
    async fn provider_status(&self, report: ProviderStatus) -> StoreResult<Updated>;

    /// Records an attempt's result with its audit entry and fallback hand-over, atomically;
    /// nothing is recorded when the delivery is no longer open (cancelled meanwhile).
    async fn update_delivery(&self, update: DeliveryUpdate) -> StoreResult<Updated>;
}
