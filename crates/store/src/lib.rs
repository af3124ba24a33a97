//! Herald's source of truth. Callers see only the [`Store`] trait; the embedded SQLite backend
//! lives in [`sqlite`] and a PostgreSQL one can sit beside it, chosen by [`open`] from the URL.

pub mod records;
pub mod sqlite;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use herald_domain::device::DeviceSpec;
use herald_domain::ids::{TemplateKey, TopicKey};
use herald_domain::preferences::StoredPreferences;
use herald_domain::template::TemplateSpec;
use herald_domain::user::User;
use herald_domain::{Channel, UserId};
use jiff::Timestamp;
use uuid::Uuid;

pub use records::*;

/// Errors the store reports.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database failed or refused the statement.
    #[error("database error: {0}")]
    Database(String),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The URL names no backend this build knows.
    #[error("unsupported database url: {0}")]
    Unsupported(String),
    /// The writer has stopped (shutting down).
    #[error("the store is shutting down")]
    Closed,
    /// Opened with [`OpenMode::Existing`] where there is no database.
    #[error("no database at {}", .0.display())]
    NoDatabase(PathBuf),
    /// An active API key already has this name.
    #[error("a key named {name} exists (id {id})")]
    ApiKeyNameTaken {
        /// The name asked for.
        name: String,
        /// The active key that has it.
        id: Uuid,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything Herald persists. Writes are durable when the future resolves.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the database answers (readiness).
    async fn ping(&self) -> StoreResult<()>;

    /// Reads a named secret, creating it with `init` the first time (atomically).
    async fn secret(&self, name: &str, init: Vec<u8>) -> StoreResult<Vec<u8>>;

    /// Stores a new API key by hash; [`StoreError::ApiKeyNameTaken`] when an active key has its name.
    async fn create_api_key(&self, key: ApiKeyRecord) -> StoreResult<()>;
    /// Lists API keys, newest first.
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Revokes the active key with this id, else the one with this name; the key revoked, if any.
    async fn revoke_api_key(&self, id_or_name: &str, now: Timestamp) -> StoreResult<Option<ApiKeyRecord>>;
    /// The active key with this hash, if any.
    async fn find_api_key(&self, hash: &[u8]) -> StoreResult<Option<ApiKeyRecord>>;

    /// A user, including erased tombstones.
    async fn get_user(&self, id: &UserId) -> StoreResult<Option<UserRecord>>;
    /// Creates or replaces a user's profile (clears an erasure).
    async fn put_user(&self, user: &User, now: Timestamp) -> StoreResult<UserRecord>;
    /// Erases personal data: profile, devices, preferences, inbox, topic subscriptions; keeps a tombstone.
    async fn erase_user(&self, id: &UserId, now: Timestamp) -> StoreResult<bool>;

    /// Registers a device (creating the user if needed).
    async fn add_device(&self, user: &UserId, spec: &DeviceSpec, now: Timestamp) -> StoreResult<DeviceRecord>;
    /// A user's devices, oldest first.
    async fn list_devices(&self, user: &UserId) -> StoreResult<Vec<DeviceRecord>>;
    /// Removes a device; false when it was not the user's.
    async fn delete_device(&self, user: &UserId, id: Uuid) -> StoreResult<bool>;

    /// What the user stored as preferences.
    async fn get_preferences(&self, user: &UserId) -> StoreResult<Option<StoredPreferences>>;
    /// Replaces the stored preferences (creating the user if needed).
    async fn put_preferences(&self, user: &UserId, prefs: &StoredPreferences, now: Timestamp) -> StoreResult<()>;

    /// Creates or replaces a template; true when it was new.
    async fn put_template(&self, key: &TemplateKey, spec: &TemplateSpec, now: Timestamp)
    -> StoreResult<TemplateRecord>;
    /// A template by key.
    async fn get_template(&self, key: &TemplateKey) -> StoreResult<Option<TemplateRecord>>;

    /// Commits a notification and its recipients, honouring the idempotency key atomically.
    async fn accept(&self, n: NewNotification) -> StoreResult<AcceptOutcome>;
    /// Commits a batch of notifications in one transaction; one outcome per input, in order.
    async fn accept_many(&self, ns: Vec<NewNotification>) -> StoreResult<Vec<AcceptOutcome>>;
    /// A notification's header.
    async fn get_notification(&self, id: Uuid) -> StoreResult<Option<NotificationRecord>>;
    /// A page of a notification's recipients with their deliveries.
    async fn list_recipients(&self, id: Uuid, after: Option<i64>, limit: u32) -> StoreResult<Vec<RecipientRecord>>;
    /// Counts of a notification's recipients by state and decision.
    async fn recipient_counts(&self, id: Uuid) -> StoreResult<RecipientCounts>;
    /// Cancels what has not been processed yet; returns how many recipients were cancelled.
    async fn cancel_notification(&self, id: Uuid, now: Timestamp) -> StoreResult<u64>;

    /// Claims up to `limit` recipients and digest flushes due at `now`, oldest first.
    async fn claim_due(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Work>>;
    /// When the next pending recipient falls due.
    async fn next_due(&self) -> StoreResult<Option<Timestamp>>;
    /// Returns one claim to the pending pool, due again at `retry_at`.
    async fn release_claim(&self, seq: i64, retry_at: Timestamp) -> StoreResult<()>;
    /// Returns claims of a crashed or stopped process to the pending pool.
    async fn release_claims(&self) -> StoreResult<u64>;
    /// Records the decisions for recipients with their inbox items, deliveries and audit, atomically,
    /// one result per outcome in order: `None` when the claim was lost meanwhile (cancelled,
    /// collapsed), and then nothing was recorded for it.
    async fn record_outcomes(&self, outcomes: Vec<RecipientOutcome>) -> StoreResult<Vec<Option<Recorded>>>;

    /// Notifications by id (those that exist).
    async fn notifications(&self, ids: &[Uuid]) -> StoreResult<Vec<Arc<NotificationRecord>>>;
    /// Users with their preferences, devices and blocked addresses, one per id, in order.
    async fn user_states(&self, users: &[UserId]) -> StoreResult<Vec<UserState>>;
    /// Which of the `(user, fingerprint, seq)` asks are duplicates: the user got a notification
    /// with that fingerprint since `since`, before recipient `seq`. Answers with their seqs.
    async fn seen_recently(
        &self,
        asks: &[(UserId, String, i64)],
        since: Timestamp,
    ) -> StoreResult<std::collections::HashSet<i64>>;
    /// The users' interruptions since `since`, oldest first.
    async fn interruptions(
        &self,
        users: &[UserId],
        since: Timestamp,
    ) -> StoreResult<std::collections::HashMap<UserId, Vec<herald_domain::decision::Interruption>>>;
    /// The user's pending digest, oldest first.
    async fn batched(&self, user: &UserId) -> StoreResult<Vec<BatchedRecipient>>;
    /// Records a digest flush atomically.
    async fn record_flush(&self, outcome: FlushOutcome) -> StoreResult<()>;
    /// Makes the user's digest due no later than `at`.
    async fn schedule_flush(&self, user: &UserId, at: Timestamp) -> StoreResult<()>;

    /// Deliveries still to be attempted (for restart).
    async fn open_deliveries(&self) -> StoreResult<Vec<DeliveryRecord>>;
    /// Marks a delivery `sending` and counts the attempt, unless it is closed or a send limit is
    /// reached; the limits count deliveries first dispatched within their windows, atomically.
    async fn begin_attempt(&self, begin: BeginAttempt) -> StoreResult<Begin>;
    /// Dead letters (deliveries failed for good), newest first, after the cursor `before`.
    async fn dead_letters(
        &self,
        channel: Option<Channel>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<(i64, DeliveryRecord)>>;
    /// Queues a dead letter again (attempts reset, same delivery id); `None` when `id` is not one.
    async fn replay_dead_letter(&self, id: Uuid, now: Timestamp) -> StoreResult<Option<DeliveryRecord>>;
    /// Applies a provider's report about an address: blocks, switches channels off, removes devices.
    async fn apply_feedback(&self, feedback: Feedback) -> StoreResult<FeedbackOutcome>;
    /// Blocked addresses, oldest first, after the cursor `after`.
    async fn address_blocks(
        &self,
        channel: Option<Channel>,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<(i64, AddressBlockRecord)>>;
    /// Lifts a block (an operator's decision, for a block that was a mistake); false when none.
    async fn remove_address_block(&self, channel: Channel, address: &str) -> StoreResult<bool>;
    /// Records what a provider reported later about a delivery it accepted: `sent` (or still
    /// `sending`, or queued for a retry) becomes `delivered`, `failed` or `bounced`, with an audit
    /// entry; a final status is never changed, and a failure of an earlier attempt than the last is
    /// ignored. A failure hands over to the next transactional fallback, which is returned to be
    /// dispatched. `Closed` when no delivery could take the report.
    async fn provider_status(&self, report: ProviderStatus) -> StoreResult<Updated>;
    /// Records an attempt's result with its audit entry and fallback hand-over, atomically;
    /// nothing is recorded when the delivery is no longer open (cancelled meanwhile).
    async fn update_delivery(&self, update: DeliveryUpdate) -> StoreResult<Updated>;

    /// Counts by class, channel, status and suppression reason, of what was created since `since`.
    async fn stats(&self, since: Option<Timestamp>) -> StoreResult<Stats>;

    /// A page of the inbox, newest first.
    async fn list_inbox(&self, user: &UserId, query: InboxQuery) -> StoreResult<Vec<InboxItem>>;
    /// Items newer than `after_seq`, oldest first (stream resume).
    async fn inbox_after(&self, user: &UserId, after_seq: i64, limit: u32) -> StoreResult<Vec<InboxItem>>;
    /// Unread items.
    async fn unread_count(&self, user: &UserId) -> StoreResult<u64>;
    /// Marks items (or all) read or unread; returns how many changed.
    async fn mark_inbox(&self, user: &UserId, target: InboxTarget, read: bool, now: Timestamp) -> StoreResult<u64>;

    /// The user's audit trail, newest first.
    async fn timeline(&self, user: &UserId, before: Option<i64>, limit: u32) -> StoreResult<Vec<AuditRecord>>;

    /// Subscribes users to a topic (creating users as needed); returns how many were new.
    async fn subscribe(&self, topic: &TopicKey, users: &[UserId], now: Timestamp) -> StoreResult<u64>;
    /// Unsubscribes users; returns how many were removed.
    async fn unsubscribe(&self, topic: &TopicKey, users: &[UserId]) -> StoreResult<u64>;
    /// A page of subscribers in id order.
    async fn subscribers(&self, topic: &TopicKey, after: Option<&str>, limit: u32) -> StoreResult<Vec<UserId>>;
}

/// Whether opening may create the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the database (and the data directory) when absent: `serve` and `migrate`.
    Create,
    /// Only open a database that is there ([`StoreError::NoDatabase`] otherwise): commands that
    /// would leave a stray empty database behind when pointed at the wrong place.
    Existing,
}

/// Opens the store named by `database_url` (empty: SQLite under `data_dir`), creating it when
/// absent, and migrates it.
pub async fn open(database_url: &str, data_dir: &Path) -> StoreResult<Arc<dyn Store>> {
    open_with(database_url, data_dir, OpenMode::Create).await
}

/// As [`open`], creating the database only when `mode` says so.
pub async fn open_with(database_url: &str, data_dir: &Path, mode: OpenMode) -> StoreResult<Arc<dyn Store>> {
    let url = sqlite_url(database_url, data_dir)?;
    if database_url.is_empty() && mode == OpenMode::Create {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Database(format!("cannot create {}: {e}", data_dir.display())))?;
    }
    Ok(Arc::new(sqlite::SqliteStore::open(&url, mode).await?))
}

/// The file the database lives in, without opening it.
pub fn database_path(database_url: &str, data_dir: &Path) -> StoreResult<PathBuf> {
    let url = sqlite_url(database_url, data_dir)?;
    Ok(sqlx::sqlite::SqliteConnectOptions::from_str(&url)?.get_filename().to_path_buf())
}

fn sqlite_url(database_url: &str, data_dir: &Path) -> StoreResult<String> {
    if database_url.is_empty() {
        Ok(format!("sqlite://{}", data_dir.join("herald.db").display()))
    } else if database_url.starts_with("sqlite:") {
        Ok(database_url.to_owned())
    } else {
        Err(StoreError::Unsupported(format!(
            "{database_url} (this build stores in SQLite; leave database_url empty or use sqlite://PATH)"
        )))
    }
}

/// Milliseconds since the epoch, the stored form of every time.
pub fn to_ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// The inverse of [`to_ms`].
pub fn from_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}
