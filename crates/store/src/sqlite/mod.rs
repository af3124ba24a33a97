//! The embedded backend: one SQLite file in WAL mode, read by a few [`reader`] threads and
//! written through the group-commit [`writer`] thread, each owning its connection.

mod accept;
mod audit;
mod cache;
mod dead_letters;
mod decide;
mod deliveries;
mod feedback;
mod fold;
mod hot_state;
mod inbox;
mod keys;
mod notifications;
mod paging;
mod queue;
mod reader;
mod recipients;
mod rows;
mod templates;
mod topics;
mod users;
mod writer;
mod writes;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, params};

use crate::*;
use crate::{OpenMode, StoreError, StoreResult, to_ms};
use cache::Cache;
use fold::{Fold, Folds};
use reader::Readers;
use writer::{Priority, Writer};

/// Most single requests folded into one batch.
const FOLD_MAX: usize = 2048;
/// Folded batches of one kind written at once: a batch waiting for its commit does not hold the
/// next one out of the writer's queue (the writer puts them in one transaction anyway).
const FOLD_IN_FLIGHT: usize = 4;

/// Reader threads, each with its own read-only connection.
const READERS: usize = 4;
/// Statements each connection keeps prepared.
const STATEMENT_CACHE: usize = 256;

/// Schema migrations, applied in order and recorded in `herald_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_engine.sql")),
    (3, include_str!("../../migrations/sqlite/0003_delivery.sql")),
    (4, include_str!("../../migrations/sqlite/0004_inbox_counts.sql")),
    (5, include_str!("../../migrations/sqlite/0005_lean_inbox.sql")),
    (6, include_str!("../../migrations/sqlite/0006_unique_key_names.sql")),
    (7, include_str!("../../migrations/sqlite/0007_urgent_claims.sql")),
    (8, include_str!("../../migrations/sqlite/0008_leases.sql")),
    (9, include_str!("../../migrations/sqlite/0009_delivery_leases.sql")),
];

/// The SQLite store.
pub struct SqliteStore {
    reads: Readers,
    writer: Writer,
    cache: Arc<Cache>,
    /// Concurrent single accepts, folded into batches (critical and transactional ones apart,
    /// never behind a marketing burst, and written ahead of the rest).
    accepts: Folds<NewNotification, AcceptOutcome>,
    /// Attempt starts, likewise.
    begins: Folds<BeginAttempt, Begin>,
    /// Attempt results, likewise.
    results: Folds<DeliveryUpdate, Updated>,
    /// The lanes' decisions, likewise.
    outcomes: Folds<Vec<RecipientOutcome>, Vec<Option<Recorded>>>,
}

/// The file a `sqlite:` URL names.
pub(crate) fn path_of(url: &str) -> PathBuf {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    PathBuf::from(rest.split_once('?').map_or(rest, |(path, _)| path))
}

/// Opens the write connection: WAL, full commits, and the writer's pragmas.
fn open_writer(path: &Path, mode: OpenMode) -> StoreResult<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if mode == OpenMode::Create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    // FULL: an answered write survives power loss too, not just a process crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", false)?;
    // The writer's page cache holds the hot index pages of a busy store (64 MiB).
    conn.pragma_update(None, "cache_size", -65536)?;
    conn.pragma_update(None, "temp_store", "memory")?;
    // A larger WAL between checkpoints writes hot pages back to the database less often.
    conn.pragma_update(None, "wal_autocheckpoint", 8000)?;
    Ok(conn)
}

/// Opens one read-only connection.
fn open_reader(path: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(Duration::from_secs(30))?;
    // Readers start each transaction with an empty cache when the database changed since their
    // last one, which under load is always: a small cache each keeps memory bounded (8 MiB).
    conn.pragma_update(None, "cache_size", -8192)?;
    conn.pragma_update(None, "temp_store", "memory")?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating it if `mode` allows) and migrates the database at `url`.
    pub async fn open(url: &str, mode: OpenMode) -> StoreResult<Self> {
        let path = path_of(url);
        if mode == OpenMode::Existing && !path.exists() {
            return Err(StoreError::NoDatabase(path));
        }
        let (writer, reads) = tokio::task::spawn_blocking(move || -> StoreResult<_> {
            let mut conn = open_writer(&path, mode)?;
            migrate(&mut conn)?;
            let readers = (0..READERS).map(|_| open_reader(&path)).collect::<StoreResult<Vec<_>>>()?;
            Ok((Writer::spawn(conn)?, Readers::spawn(readers)?))
        })
        .await
        .map_err(|e| StoreError::Database(format!("cannot open the database: {e}")))??;
        let cache = Arc::new(Cache::default());
        Ok(Self {
            accepts: Folds::spawn(|p| accept_fold(&writer, &cache, p)),
            outcomes: Folds::spawn(|p| outcome_fold(&writer, p)),
            begins: Folds::spawn(|p| bookkeeping_fold(&writer, p, deliveries::begin_attempts)),
            results: Folds::spawn(|p| bookkeeping_fold(&writer, p, deliveries::update_deliveries)),
            reads,
            writer,
            cache,
        })
    }
}

/// Folds single accepts into batches, each written in the queue of `priority`.
fn accept_fold(writer: &Writer, cache: &Arc<Cache>, priority: Priority) -> Fold<NewNotification, AcceptOutcome> {
    let (writer, cache) = (writer.clone(), cache.clone());
    Fold::spawn(FOLD_MAX, FOLD_IN_FLIGHT, move |ns: Vec<NewNotification>| {
        let (writer, cache) = (writer.clone(), cache.clone());
        async move { notifications::accept_batch(&writer, &cache, ns, priority).await }
    })
}

/// Folds the lanes' decisions into one record per batch, written in the queue of `priority`;
/// each lane's batch is recorded whole, in order.
fn outcome_fold(writer: &Writer, priority: Priority) -> Fold<Vec<RecipientOutcome>, Vec<Option<Recorded>>> {
    let writer = writer.clone();
    Fold::spawn(FOLD_MAX, FOLD_IN_FLIGHT, move |batches: Vec<Vec<RecipientOutcome>>| {
        let writer = writer.clone();
        async move {
            let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
            let all: Vec<RecipientOutcome> = batches.into_iter().flatten().collect();
            let record = move |c: &Connection| decide::record_outcomes(c, &all);
            let recorded = writer.write_lazy_at(priority, record).await;
            let mut recorded = recorded?.into_iter();
            Ok(sizes.into_iter().map(|n| recorded.by_ref().take(n).collect()).collect())
        }
    })
}

/// Folds single bookkeeping writes of the sends (attempt starts, results) into batches, each
/// written lazily in the queue of `priority`.
fn bookkeeping_fold<I, O>(
    writer: &Writer,
    priority: Priority,
    write: fn(&Connection, &[I]) -> StoreResult<Vec<O>>,
) -> Fold<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
{
    let writer = writer.clone();
    Fold::spawn(FOLD_MAX, FOLD_IN_FLIGHT, move |items: Vec<I>| {
        let writer = writer.clone();
        async move {
            let run = move |c: &Connection| write(c, &items);
            writer.write_lazy_at(priority, run).await
        }
    })
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS herald_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        [],
    )?;
    let done: Vec<i64> = rows::all(conn, "SELECT version FROM herald_migrations", [], rows::col0)?;
    for (version, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO herald_migrations (version, applied_at) VALUES (?, ?)",
            params![version, to_ms(Timestamp::now())],
        )?;
        tx.commit()?;
        tracing::info!(version, "applied migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pragma<T: rusqlite::types::FromSql>(c: &Connection, name: &str) -> StoreResult<T> {
        Ok(c.pragma_query_value(None, name, |r| r.get(0))?)
    }

    #[tokio::test]
    async fn connections_open_as_the_durability_and_memory_choices_say() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("herald.db").display());
        let store = SqliteStore::open(&url, OpenMode::Create).await.unwrap();
        let writer = store
            .writer
            .write(|c| {
                Ok((
                    pragma::<String>(c, "journal_mode")?,
                    pragma::<i64>(c, "synchronous")?,
                    pragma::<i64>(c, "cache_size")?,
                    pragma::<i64>(c, "temp_store")?,
                    pragma::<i64>(c, "wal_autocheckpoint")?,
                ))
            })
            .await
            .unwrap();
        // synchronous 2 is FULL, temp_store 2 is memory.
        assert_eq!(writer, ("wal".to_owned(), 2, -65536, 2, 8000));
        let reader = store
            .reads
            .read(|c| Ok((pragma::<i64>(c, "cache_size")?, c.execute("CREATE TABLE nope (x)", []).is_err())))
            .await
            .unwrap();
        assert_eq!(reader, (-8192, true), "readers keep a small cache and cannot write");
    }

    #[test]
    fn a_url_names_its_file() {
        assert_eq!(path_of("sqlite:///var/lib/herald/herald.db"), PathBuf::from("/var/lib/herald/herald.db"));
        assert_eq!(path_of("sqlite://data/herald.db?mode=rwc"), PathBuf::from("data/herald.db"));
        assert_eq!(path_of("sqlite:herald.db"), PathBuf::from("herald.db"));
    }
}
