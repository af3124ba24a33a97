//! Templates by key.

use async_trait::async_trait;
use herald_domain::ids::TemplateKey;
use herald_domain::template::TemplateSpec;
use jiff::Timestamp;
use rusqlite::params;

use super::SqliteStore;
use super::cache::Touches;
use super::rows::{first, one};
use crate::StoreResult;
use crate::TemplateStore;
use crate::*;
use crate::{from_ms, to_ms};

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
                let (version, created_at, updated_at) = one(
                    c,
                    "INSERT INTO templates (key, spec, version, created_at, updated_at) VALUES (?, ?, 1, ?, ?) \
                     ON CONFLICT (key) DO UPDATE SET spec = excluded.spec, version = templates.version + 1, \
                     updated_at = excluded.updated_at RETURNING version, created_at, updated_at",
                    params![key, serde_json::to_string(&spec)?, to_ms(now), to_ms(now)],
                    |r| Ok((r.get(0)?, from_ms(r.get(1)?), from_ms(r.get(2)?))),
                )?;
                Ok(TemplateRecord { key, spec, version, created_at, updated_at })
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
        let wanted = key.as_str().to_owned();
        let record = self
            .reads
            .read(move |c| {
                first(c, "SELECT * FROM templates WHERE key = ?", [wanted], |r| {
                    Ok(TemplateRecord {
                        key: r.get("key")?,
                        spec: serde_json::from_str(&r.get::<_, String>("spec")?)?,
                        version: r.get("version")?,
                        created_at: from_ms(r.get("created_at")?),
                        updated_at: from_ms(r.get("updated_at")?),
                    })
                })
            })
            .await?;
        if let (Some(snapshot), Some(t)) = (snapshot, &record) {
            self.cache.keep_template(snapshot, key, t);
        }
        Ok(record)
    }
}
