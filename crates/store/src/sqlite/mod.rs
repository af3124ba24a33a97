//! The embedded backend: one SQLite file in WAL mode, reads from a pool, writes through the
//! group-commit [`writer`].

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
mod queue;
mod recipients;
mod rows;
mod templates;
mod topics;
mod users;
mod writer;
mod writes;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqliteConnection, SqlitePool};

use crate::records::*;
use crate::{OpenMode, StoreError, StoreResult, to_ms};
use cache::Cache;
use fold::Fold;
use writer::Writer;

/// Most single requests folded into one batch.
const FOLD_MAX: usize = 2048;
/// Folded batches of one kind written at once: a batch waiting for its commit does not hold the
/// next one out of the writer's queue (the writer puts them in one transaction anyway).
const FOLD_IN_FLIGHT: usize = 4;

/// Schema migrations, applied in order and recorded in `herald_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_engine.sql")),
    (3, include_str!("../../migrations/sqlite/0003_delivery.sql")),
    (4, include_str!("../../migrations/sqlite/0004_inbox_counts.sql")),
    (5, include_str!("../../migrations/sqlite/0005_lean_inbox.sql")),
    (6, include_str!("../../migrations/sqlite/0006_unique_key_names.sql")),
];

/// The SQLite store.
pub struct SqliteStore {
    pool: SqlitePool,
    writer: Writer,
    cache: Arc<Cache>,
    /// Concurrent single accepts, attempt starts and attempt results, folded into batches.
    accepts: Fold<NewNotification, AcceptOutcome>,
    begins: Fold<BeginAttempt, Begin>,
    results: Fold<DeliveryUpdate, Updated>,
    outcomes: Fold<Vec<RecipientOutcome>, Vec<Option<Recorded>>>,
}

impl SqliteStore {
    /// Opens (creating it if `mode` allows) and migrates the database at `url`.
    pub async fn open(url: &str, mode: OpenMode) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(mode == OpenMode::Create)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an answered write survives power loss too, not just a process crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(false)
            // The writer's page cache holds the hot index pages of a busy store (64 MiB).
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory")
            // A larger WAL between checkpoints writes hot pages back to the database less often.
            .pragma("wal_autocheckpoint", "8000");
        if mode == OpenMode::Existing && !opts.get_filename().exists() {
            return Err(StoreError::NoDatabase(opts.get_filename().to_path_buf()));
        }
        let mut conn = opts.connect().await?;
        migrate(&mut conn).await?;
        // Readers start each transaction with an empty cache when the database changed since
        // their last one, which under load is always: a small cache each keeps memory bounded.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(opts.read_only(true).pragma("cache_size", "-8192"))
            .await?;
        let writer = Writer::spawn(conn);
        let cache = Arc::new(Cache::default());
        let accepts = {
            let (writer, cache) = (writer.clone(), cache.clone());
            Fold::spawn(FOLD_MAX, FOLD_IN_FLIGHT, move |ns: Vec<NewNotification>| {
                let (writer, cache) = (writer.clone(), cache.clone());
                async move {
                    let (outcomes, created) =
                        writer.write(move |c| Box::pin(async move { accept::accept_batch(c, &ns).await })).await?;
                    cache.keep_notifications(created);
                    Ok(outcomes)
                }
            })
        };
        let begins = {
            let writer = writer.clone();
            Fold::spawn(FOLD_MAX, FOLD_IN_FLIGHT, move |bs: Vec<BeginAttempt>| {
                let writer = writer.clone();
                async move {
                    writer.write_lazy(move |c| Box::pin(async move { deliveries::begin_attempts(c, &bs).await })).await
                }
            })
        };
        let results = {
            let writer = writer.clone();
            Fold::spawn(FOLD_MAX, FOLD_IN_FLIGHT, move |us: Vec<DeliveryUpdate>| {
                let writer = writer.clone();
                async move {
                    writer
                        .write_lazy(move |c| Box::pin(async move { deliveries::update_deliveries(c, &us).await }))
                        .await
                }
            })
        };
        // Each lane records its batch; the lanes' batches are recorded together.
        let outcomes = {
            let writer = writer.clone();
            Fold::spawn(FOLD_MAX, FOLD_IN_FLIGHT, move |batches: Vec<Vec<RecipientOutcome>>| {
                let writer = writer.clone();
                async move {
                    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
                    let all: Vec<RecipientOutcome> = batches.into_iter().flatten().collect();
                    let mut recorded = writer
                        .write_lazy(move |c| Box::pin(async move { decide::record_outcomes(c, &all).await }))
                        .await?
                        .into_iter();
                    Ok(sizes.into_iter().map(|n| recorded.by_ref().take(n).collect()).collect())
                }
            })
        };
        Ok(Self { pool, writer, cache, accepts, begins, results, outcomes })
    }
}

async fn migrate(conn: &mut SqliteConnection) -> StoreResult<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS herald_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    let done: Vec<i64> = sqlx::query_scalar("SELECT version FROM herald_migrations").fetch_all(&mut *conn).await?;
    for (version, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO herald_migrations (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(to_ms(Timestamp::now()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, "applied migration");
    }
    Ok(())
}
