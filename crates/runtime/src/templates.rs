//! Compiled templates, one per template version: rendering compiles nothing, and a template
//! replaced through the API is compiled again the first time its new version is asked for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use herald_domain::ids::TemplateKey;
use herald_domain::template::Compiled;
use herald_store::{Store, StoreError};

/// Versions kept at most; when full, the map starts over.
const MAX_TEMPLATES: usize = 10_000;

/// The compiled templates.
pub struct Templates {
    store: Arc<dyn Store>,
    compiled: Mutex<HashMap<TemplateKey, (i64, Arc<Compiled>)>>,
}

impl Templates {
    /// Templates read from `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, compiled: Mutex::new(HashMap::new()) }
    }

    /// The current version of the template `key`, compiled; `None` when there is no such template.
    pub async fn get(&self, key: &TemplateKey) -> Result<Option<Arc<Compiled>>, StoreError> {
        let Some(record) = self.store.get_template(key).await? else { return Ok(None) };
        if let Some((version, compiled)) = self.compiled.lock().unwrap_or_else(PoisonError::into_inner).get(key)
            && *version == record.version
        {
            return Ok(Some(compiled.clone()));
        }
        // Stored templates were validated, so every string compiles.
        let compiled = Arc::new(
            Compiled::new(record.spec)
                .map_err(|e| StoreError::Corrupt(format!("stored template {key} does not compile: {e}")))?,
        );
        let mut map = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_TEMPLATES {
            map.clear();
        }
        map.insert(key.clone(), (record.version, compiled.clone()));
        Ok(Some(compiled))
    }
}
