//! Templates by key.

use async_trait::async_trait;
use herald_domain::ids::TemplateKey;
use herald_domain::template::TemplateSpec;
use jiff::Timestamp;
use sqlx::Row;

use super::SqliteStore;
use super::cache::Touches;
use crate::StoreResult;
use crate::TemplateStore;
use crate::records::*;
use crate::{StoreError, from_ms, to_ms};

#[async_trait]
impl TemplateStore for SqliteStore {
    async fn put_template(
        &self,
        key: &TemplateKey,
        spec: &TemplateSpec,
        now: Timestamp,
    ) -> StoreResult<TemplateRecord> {
        let _touch = self.cache.write(Touches::Template(key.clone()));
        let key = key.to_string();
        let spec = spec.clone();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let row = sqlx::query(
                        "INSERT INTO templates (key, spec, version, created_at, updated_at) VALUES (?, ?, 1, ?, ?) \
                         ON CONFLICT (key) DO UPDATE SET spec = excluded.spec, version = templates.version + 1, \
                         updated_at = excluded.updated_at RETURNING version, created_at, updated_at",
                    )
                    .bind(&key)
                    .bind(serde_json::to_string(&spec)?)
                    .bind(to_ms(now))
                    .bind(to_ms(now))
                    .fetch_one(c)
                    .await?;
                    Ok(TemplateRecord {
                        key,
                        spec,
                        version: row.try_get("version")?,
                        created_at: from_ms(row.try_get("created_at")?),
                        updated_at: from_ms(row.try_get("updated_at")?),
                    })
                })
            })
            .await
    }

    async fn get_template(&self, key: &TemplateKey) -> StoreResult<Option<TemplateRecord>> {
        let snapshot = self.cache.snapshot();
        if snapshot.is_some()
            && let Some(t) = self.cache.template(key)
        {
            return Ok(Some(t));
        }
        let row =
            sqlx::query("SELECT * FROM templates WHERE key = ?").bind(key.as_str()).fetch_optional(&self.pool).await?;
        let record = row
            .map(|r| {
                Ok::<_, StoreError>(TemplateRecord {
                    key: r.try_get("key")?,
                    spec: serde_json::from_str(r.try_get("spec")?)?,
                    version: r.try_get("version")?,
                    created_at: from_ms(r.try_get("created_at")?),
                    updated_at: from_ms(r.try_get("updated_at")?),
                })
            })
            .transpose()?;
        if let (Some(snapshot), Some(t)) = (snapshot, &record) {
            self.cache.keep_template(snapshot, key, t);
        }
        Ok(record)
    }
}
