//! Provider feedback about addresses, and the blocks it leaves.

use async_trait::async_trait;

use crate::StoreResult;
use crate::cursor::{Cursor, Page};
use herald_domain::Channel;
use jiff::Timestamp;
use uuid::Uuid;

/// Provider feedback about addresses, and the blocks it leaves.
#[async_trait]
pub trait FeedbackStore: Send + Sync + 'static {
    /// Applies a provider's report about an address: blocks, switches channels off, removes devices.
    async fn apply_feedback(&self, feedback: Feedback) -> StoreResult<FeedbackOutcome>;

    /// A page of blocked addresses, oldest first, from `cursor` (a `next` of this list;
    /// [`crate::StoreError::BadCursor`] for any other).
    async fn address_blocks(
        &self,
        channel: Option<Channel>,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<Page<AddressBlockRecord>>;

    /// Lifts a block (an operator's decision, for a block that was a mistake); false when none.
    async fn remove_address_block(&self, channel: Channel, address: &str) -> StoreResult<bool>;
}

/// What a provider reported about an address (`POST /v1/feedback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackKind {
    /// The address does not exist: block it.
    HardBounce,
    /// The recipient marked a message as spam: the channel goes off for them.
    Complaint,
    /// The device token or subscription is dead: remove the device.
    InvalidToken,
    /// The recipient unsubscribed at the provider: the channel goes off for them.
    Unsubscribe,
    /// The phone number replied STOP: block it for SMS until it replies START.
    Stop,
    /// The phone number replied START: lift its STOP block (a hard bounce stays).
    Start,
}

/// One provider report.
#[derive(Debug, Clone)]
pub struct Feedback {
    /// The channel.
    pub channel: Channel,
    /// Email, E.164 phone, device token or push endpoint, as Herald stores it.
    pub address: String,
    /// What happened.
    pub kind: FeedbackKind,
    /// The delivery it is about, when the provider said.
    pub delivery_id: Option<Uuid>,
    /// When.
    pub now: Timestamp,
}

/// What a report changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedbackOutcome {
    /// Users whose channel was switched off.
    pub users_affected: u64,
    /// Devices removed.
    pub devices_removed: u64,
    /// Whether the address is now blocked.
    pub address_blocked: bool,
    /// Whether a block on the address was lifted.
    pub address_unblocked: bool,
    /// Whether the named delivery was marked bounced.
    pub delivery_updated: bool,
}

/// An address that nothing is sent to (a hard bounce, an SMS STOP).
#[derive(Debug, Clone)]
pub struct AddressBlockRecord {
    /// `email` or `sms`.
    pub channel: Channel,
    /// The address as Herald stores it.
    pub address: String,
    /// Why nothing is sent to it.
    pub kind: BlockKind,
    /// Since when.
    pub created_at: Timestamp,
}

/// Why an address is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// It does not exist; nothing lifts this but an operator.
    HardBounce,
    /// The number replied STOP; a START lifts it.
    Stop,
}

impl BlockKind {
    /// Every kind.
    pub const ALL: [BlockKind; 2] = [BlockKind::HardBounce, BlockKind::Stop];

    /// The stable code, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockKind::HardBounce => "hard_bounce",
            BlockKind::Stop => "stop",
        }
    }
}

impl std::str::FromStr for BlockKind {
    type Err = herald_domain::code::UnknownCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        herald_domain::code::find(&Self::ALL, Self::as_str, "address block kind", s)
    }
}
