//! Rows as the store returns them, and the write commands it takes.

use herald_domain::device::DeviceSpec;
use herald_domain::notification::NotificationSpec;
use herald_domain::preferences::StoredPreferences;
use herald_domain::reason::{Decision, Reason};
use herald_domain::template::TemplateSpec;
use herald_domain::user::User;
use herald_domain::{Channel, Class, DeliveryStatus, RecipientState, UserId};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::queue::{Lease, LeaseToken, WorkItem};

/// An API key (the secret itself is never stored, only its SHA-256).
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    /// Key id.
    pub id: Uuid,
    /// Human name.
    pub name: String,
    /// First characters of the key, to recognise it.
    pub prefix: String,
    /// SHA-256 of the key.
    pub hash: Vec<u8>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Revocation time, if revoked.
    pub revoked_at: Option<Timestamp>,
}

/// A user as stored.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// Profile.
    pub user: User,
    /// First seen.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// Set when the user was erased.
    pub erased_at: Option<Timestamp>,
}

/// What the decision engine and the dispatcher need to know about a user, read at once.
#[derive(Debug, Clone)]
pub struct UserState {
    /// The user.
    pub id: UserId,
    /// Profile and erasure; `None` when there is no such user.
    pub user: Option<UserRecord>,
    /// What the user stored as preferences.
    pub preferences: Option<StoredPreferences>,
    /// Devices, oldest first.
    pub devices: Vec<DeviceRecord>,
    /// Channels whose contact address is blocked, with the reason a send is suppressed.
    pub blocked: std::collections::BTreeMap<Channel, Reason>,
}

/// A registered device.
#[derive(Debug, Clone)]
pub struct DeviceRecord {
    /// Device id.
    pub id: Uuid,
    /// Owner.
    pub user_id: UserId,
    /// What it is.
    pub spec: DeviceSpec,
    /// Registration time.
    pub created_at: Timestamp,
}

/// A template as stored.
#[derive(Debug, Clone)]
pub struct TemplateRecord {
    /// Key.
    pub key: String,
    /// Content.
    pub spec: TemplateSpec,
    /// Incremented on each PUT.
    pub version: i64,
    /// First PUT.
    pub created_at: Timestamp,
    /// Last PUT.
    pub updated_at: Timestamp,
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

/// Counts of a notification's recipients.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecipientCounts {
    /// Recipients not decided yet.
    pub pending: u64,
    /// Recipients decided.
    pub processed: u64,
    /// Decided recipients still waiting (deferred or batched).
    pub waiting: u64,
    /// Decided recipients by decision.
    pub by_decision: std::collections::BTreeMap<Decision, u64>,
    /// Deliveries not final yet: queued (including those waiting for a retry), sending, or on
    /// standby as a transactional fallback.
    pub open_deliveries: u64,
}

/// One recipient of a notification with its deliveries.
#[derive(Debug, Clone)]
pub struct RecipientRecord {
    /// The user.
    pub user_id: String,
    /// Where it stands in the queue.
    pub state: RecipientState,
    /// Decision once decided.
    pub decision: Option<Decision>,
    /// Reason once decided, when there is one.
    pub reason: Option<Reason>,
    /// Deliveries on interrupting channels and the inbox.
    pub deliveries: Vec<DeliveryRecord>,
}

/// An inbox item to create.
#[derive(Debug, Clone)]
pub struct NewInboxItem {
    /// Item id.
    pub id: Uuid,
    /// Title.
    pub title: Option<String>,
    /// Body.
    pub body: Option<String>,
    /// Click target.
    pub action_url: Option<String>,
    /// Category.
    pub category: Option<String>,
}

/// An inbox item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxItem {
    /// Stream position (the SSE event id).
    pub seq: i64,
    /// Item id.
    pub id: Uuid,
    /// Owner.
    pub user_id: String,
    /// The notification.
    pub notification_id: Uuid,
    /// Title.
    pub title: Option<String>,
    /// Body.
    pub body: Option<String>,
    /// Click target.
    pub action_url: Option<String>,
    /// Category.
    pub category: Option<String>,
    /// Arrival.
    pub created_at: Timestamp,
    /// When read.
    pub read_at: Option<Timestamp>,
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

/// What becomes of a recipient after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Decided for good.
    Done,
    /// Decide the interruptions again at this time (quiet hours).
    Defer(Timestamp),
    /// Wait in the user's pending digest.
    Batch,
}

/// The decision for one recipient, written atomically.
#[derive(Debug, Clone)]
pub struct RecipientOutcome {
    /// The work item decided.
    pub item: WorkItem,
    /// What becomes of the recipient.
    pub next: Next,
    /// The allowance spent by interrupting now.
    pub spend: Option<herald_domain::decision::Spend>,
    /// Schedule the user's digest no later than this.
    pub flush_at: Option<Timestamp>,
    /// Older pending notifications of the user with this collapse key are superseded.
    pub collapse_key: Option<String>,
    /// Overall decision.
    pub decision: Decision,
    /// Overall reason (when suppressed).
    pub reason: Option<Reason>,
    /// Inbox item, when the inbox got one.
    pub inbox: Option<NewInboxItem>,
    /// Deliveries to make.
    pub deliveries: Vec<NewDelivery>,
    /// Audit lines.
    pub audit: Vec<AuditEntry>,
    /// When.
    pub now: Timestamp,
}

/// Inbox listing options.
#[derive(Debug, Clone, Default)]
pub struct InboxQuery {
    /// Page size.
    pub limit: u32,
    /// Where the page starts: a `next` of an earlier page; `None` for the newest items.
    pub cursor: Option<crate::cursor::Cursor>,
    /// Only unread items.
    pub unread_only: bool,
}

/// Which inbox items a read/unread call touches.
#[derive(Debug, Clone)]
pub enum InboxTarget {
    /// These item ids.
    Ids(Vec<Uuid>),
    /// Everything.
    All,
}

/// A recipient waiting in a pending digest.
#[derive(Debug, Clone)]
pub struct BatchedRecipient {
    /// Recipient row.
    pub seq: i64,
    /// The notification.
    pub notification_id: Uuid,
    /// Digest group (the notification's group key, else its template).
    pub group_key: String,
}

/// A digest to send: a notification of its own that merges batched ones.
#[derive(Debug, Clone)]
pub struct DigestOutcome {
    /// The digest's own notification (one recipient, decided).
    pub notification: NewNotification,
    /// Recipient rows it merges.
    pub merged: Vec<i64>,
    /// Its deliveries.
    pub deliveries: Vec<NewDelivery>,
}

/// The result of flushing a user's pending digest, written atomically.
#[derive(Debug, Clone)]
pub struct FlushOutcome {
    /// The user.
    pub user_id: UserId,
    /// The claim the flush ran under: nothing is recorded once it is someone else's, and the
    /// digests' deliveries are held under it.
    pub lease: Lease,
    /// Digests sent now.
    pub digests: Vec<DigestOutcome>,
    /// Batched recipients settled without a digest (drained to the inbox, or no longer consented).
    pub settled: Vec<(i64, herald_domain::reason::Reason)>,
    /// Audit lines.
    pub audit: Vec<AuditEntry>,
    /// When to flush again, if anything remains.
    pub next_due: Option<Timestamp>,
    /// When.
    pub now: Timestamp,
}

/// What [`crate::Store::record_outcome`] recorded.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The inbox item, if this call created it.
    pub inbox: Option<InboxItem>,
    /// The user's unread count after it, with the item.
    pub unread: Option<u64>,
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
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| herald_domain::code::UnknownCode { kind: "address block kind", code: s.to_owned() })
    }
}
