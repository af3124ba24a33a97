//! Users with their devices and preferences, and the state the engine reads of each.

use async_trait::async_trait;
use herald_domain::device::DeviceSpec;
use herald_domain::preferences::StoredPreferences;
use herald_domain::user::User;
use jiff::Timestamp;
use uuid::Uuid;

use crate::StoreResult;
use herald_domain::reason::Reason;
use herald_domain::{Channel, UserId};

/// Users with their devices and preferences, and the state the engine reads of each.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
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

    /// Users with their preferences, devices and blocked addresses, one per id, in order.
    async fn user_states(&self, users: &[UserId]) -> StoreResult<Vec<UserState>>;
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
