//! API keys, server settings (the secrets Herald makes at first start) and the store's health.

use async_trait::async_trait;
use jiff::Timestamp;

use crate::StoreResult;
use uuid::Uuid;

/// API keys, server settings (the secrets Herald makes at first start) and the store's health.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
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
}

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
