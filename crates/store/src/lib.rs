//! Herald's source of truth, as one small contract per concern: each module at this level holds
//! one (its trait, what it promises, and the records it takes and returns), and [`Store`] is all of them together. The embedded
//! SQLite backend lives in [`sqlite`], one file per concern with the same names; another backend
//! sits beside it, chosen by [`open`] from the URL.

pub mod audit;
pub mod cursor;
pub mod dead_letters;
pub mod deliveries;
pub mod feedback;
pub mod hot_state;
pub mod inbox;
pub mod keys;
pub mod notifications;
pub mod queue;
pub mod recipients;
pub mod sqlite;
pub mod templates;
pub mod topics;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use uuid::Uuid;

pub use audit::*;
pub use cursor::{Cursor, Page};
pub use dead_letters::DeadLetterStore;
pub use deliveries::*;
pub use feedback::*;
pub use hot_state::*;
pub use inbox::*;
pub use keys::*;
pub use notifications::*;
pub use queue::{FlushItem, Lease, LeaseToken, Work, WorkItem, WorkQueue};
pub use recipients::*;
pub use templates::*;
pub use topics::TopicStore;
pub use users::*;

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
    /// A cursor that is not one this list returned (garbage, or minted by another list).
    #[error("not a cursor this list returned")]
    BadCursor,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
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

/// Everything Herald persists, one contract per concern (each in the module named after it);
/// writes are durable when the future resolves. A backend implements every concern and is then a
/// `Store`; callers hold an `Arc<dyn Store>`.
pub trait Store:
    KeyStore
    + UserStore
    + TemplateStore
    + NotificationStore
    + RecipientStore
    + WorkQueue
    + HotState
    + DeliveryStore
    + DeadLetterStore
    + FeedbackStore
    + InboxStore
    + AuditStore
    + TopicStore
{
}

impl<
    T: KeyStore
        + UserStore
        + TemplateStore
        + NotificationStore
        + RecipientStore
        + WorkQueue
        + HotState
        + DeliveryStore
        + DeadLetterStore
        + FeedbackStore
        + InboxStore
        + AuditStore
        + TopicStore,
> Store for T
{
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
    Ok(sqlite::path_of(&sqlite_url(database_url, data_dir)?))
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
