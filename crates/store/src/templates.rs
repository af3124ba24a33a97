//! Templates by key.

use async_trait::async_trait;
use herald_domain::ids::TemplateKey;
use herald_domain::template::TemplateSpec;
use jiff::Timestamp;

use crate::StoreResult;
use crate::records::*;

/// Templates by key.
#[async_trait]
pub trait TemplateStore: Send + Sync + 'static {
    /// Creates a template (version 1) or replaces it with the next version; the stored record.
    async fn put_template(&self, key: &TemplateKey, spec: &TemplateSpec, now: Timestamp)
    -> StoreResult<TemplateRecord>;

    /// A template by key.
    async fn get_template(&self, key: &TemplateKey) -> StoreResult<Option<TemplateRecord>>;
}
