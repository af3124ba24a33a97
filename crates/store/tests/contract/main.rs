//! The store's contract suite: every behaviour callers rely on, written only against the traits
//! of `herald_store` (through `Arc<dyn Store>`), the domain types and the record types, and run
//! against every backend. One module per contract, named like it; `fixtures` builds state through
//! the contracts themselves.
//!
//! A new backend joins the suite with one line in [`backends`]: `open` it by name and database URL
//! on fresh, empty storage (a throwaway database or schema for a server; the temporary directory
//! serves an embedded one). Every test then runs against it unchanged, and a failing assertion
//! names the backend it failed on. A backend is done when this whole suite passes on it; nothing
//! here may depend on one backend's insides.

mod audit;
mod dead_letters;
mod deliveries;
mod feedback;
mod fixtures;
mod hot_state;
mod inbox;
mod keys;
mod notifications;
mod queue;
mod recipients;
mod templates;
mod topics;
mod users;

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use herald_store::Store;

/// One backend under test, on storage of its own that lives as long as it does.
pub struct Backend {
    /// The name assertion messages give.
    pub name: &'static str,
    store: Arc<dyn Store>,
    _storage: tempfile::TempDir,
}

impl Deref for Backend {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Every backend, each fresh and empty: the one place that knows them. A backend joins with one
/// line here (PostgreSQL next: `open("postgres", &url_of_a_throwaway_database).await`).
pub async fn backends() -> Vec<Backend> {
    vec![open("sqlite", "").await]
}

/// Opens the store `database_url` names, with a fresh temporary directory as its data directory
/// (where an empty URL puts SQLite).
async fn open(name: &'static str, database_url: &str) -> Backend {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = herald_store::open(database_url, dir.path()).await.unwrap_or_else(|e| panic!("{name} opens: {e}"));
    Backend { name, store, _storage: dir }
}
