//! Users with their devices and preferences, and the state the engine reads of each.

use async_trait::async_trait;
use herald_domain::UserId;
use herald_domain::device::DeviceSpec;
use herald_domain::preferences::StoredPreferences;
use herald_domain::user::User;
use jiff::Timestamp;
use uuid::Uuid;

use crate::StoreResult;
use crate::records::*;

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
