//! Templates by key.

use async_trait::async_trait;
use herald_domain::ids::TemplateKey;
use herald_domain::template::TemplateSpec;
use jiff::Timestamp;

use crate::StoreResult;

/// Templates by key.
#[async_trait]
pub trait TemplateStore: Send + Sync + 'static {
    /// Creates a template (version 1) or replaces it with the next version; the stored record.
    async fn put_template(&self, key: &TemplateKey, spec: &TemplateSpec, now: Timestamp)
    -> StoreResult<TemplateRecord>;

    /// A template by key.
    async fn get_template(&self, key: &TemplateKey) -> StoreResult<Option<TemplateRecord>>;
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
