//! The storage ceiling: rows shaped like a row of Herald's `notifications` table, inserted into a
//! fresh SQLite file opened as Herald opens its store (WAL, synchronous=FULL), first one row per
//! transaction and then `--group` rows per transaction. No server is involved.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rusqlite::{Connection, params};
use serde::Serialize;

use crate::cli::SqliteArgs;
use crate::error::BenchError;
use crate::report::Latency;

/// Herald's `notifications` table, with its fingerprint index: each accepted notification
/// updates both.
const CREATE: &str = "CREATE TABLE notifications (id TEXT PRIMARY KEY, template TEXT NOT NULL, class TEXT NOT NULL, \
     category TEXT, spec TEXT NOT NULL, recipients_total INTEGER NOT NULL, created_at INTEGER NOT NULL, \
     cancelled_at INTEGER, fingerprint TEXT); \
     CREATE INDEX notifications_fingerprint ON notifications (fingerprint, created_at) WHERE fingerprint IS NOT NULL";
const INSERT: &str = "INSERT INTO notifications \
     (id, template, class, category, spec, recipients_total, created_at, fingerprint) \
     VALUES (?, ?, ?, NULL, ?, 1, ?, ?)";
const TEMPLATE: &str = "bench_transactional";
const CLASS: &str = "transactional";
/// Bytes of the fixed columns: a UUID as text, the template, the class, two integers, a SHA-256 in hex.
const FIXED_BYTES: usize = 36 + TEMPLATE.len() + CLASS.len() + 16 + 64;

/// What the storage reference measured.
#[derive(Debug, Clone, Serialize)]
pub struct SqliteFigures {
    /// Where the database files were (removed afterwards).
    pub dir: String,
    /// Bytes of the `spec` column.
    pub payload_bytes: usize,
    /// Bytes of data per row.
    pub row_bytes: usize,
    /// One per mode: one row per transaction, then `--group`.
    pub modes: Vec<SqliteMode>,
}

/// One mode's figures.
#[derive(Debug, Clone, Serialize)]
pub struct SqliteMode {
    /// Rows per transaction.
    pub rows_per_transaction: u32,
    /// Rows inserted.
    pub rows: u64,
    /// Transactions committed.
    pub transactions: u64,
    /// Seconds spent.
    pub seconds: f64,
    /// Rows per second.
    pub rows_per_s: f64,
    /// Transactions per second.
    pub transactions_per_s: f64,
    /// Time of one transaction, from its first insert to its commit returning.
    pub transaction: Option<Latency>,
}

/// Runs both modes in a fresh directory, removed afterwards whatever happens.
pub async fn run(args: &SqliteArgs) -> Result<SqliteFigures, BenchError> {
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = parent.join(format!("herald-bench-{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let duration = Duration::from_secs(args.duration);
    let payload = "x".repeat(args.payload_bytes);
    let mut modes = Vec::new();
    let mut outcome = Ok(());
    for group in [1, args.group] {
        let (dir, payload) = (dir.clone(), payload.clone());
        let measured = tokio::task::spawn_blocking(move || mode(&dir, group, duration, &payload))
            .await
            .unwrap_or_else(|e| Err(BenchError::Other(format!("the SQLite reference stopped: {e}"))));
        match measured {
            Ok(m) => modes.push(m),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    outcome?;
    Ok(SqliteFigures {
        dir: dir.display().to_string(),
        payload_bytes: args.payload_bytes,
        row_bytes: FIXED_BYTES + args.payload_bytes,
        modes,
    })
}

/// Inserts `group` rows per transaction into a fresh file for `duration`, on the calling thread
/// with a synchronous driver, as Herald's writer thread does.
fn mode(dir: &Path, group: u32, duration: Duration, payload: &str) -> Result<SqliteMode, BenchError> {
    let file: PathBuf = dir.join(format!("rows-per-txn-{group}.db"));
    let mut conn = Connection::open(&file)?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(CREATE)?;
    let mut times = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
        .map_err(|e| BenchError::Other(format!("histogram: {e:?}")))?;
    let (mut rows, mut transactions) = (0u64, 0u64);
    let began = Instant::now();
    while began.elapsed() < duration {
        let t0 = Instant::now();
        if group == 1 {
            // Outside a transaction every statement commits on its own: the cheapest single-row commit.
            insert(&conn, payload)?;
        } else {
            let tx = conn.transaction()?;
            for _ in 0..group {
                insert(&tx, payload)?;
            }
            tx.commit()?;
        }
        times.saturating_record(t0.elapsed().as_micros() as u64);
        rows += u64::from(group);
        transactions += 1;
    }
    let seconds = began.elapsed().as_secs_f64();
    conn.close().map_err(|(_, e)| e)?;
    Ok(SqliteMode {
        rows_per_transaction: group,
        rows,
        transactions,
        seconds,
        rows_per_s: rows as f64 / seconds,
        transactions_per_s: transactions as f64 / seconds,
        transaction: Latency::of(&times),
    })
}

fn insert(conn: &Connection, payload: &str) -> Result<(), BenchError> {
    let now_ms = jiff::Timestamp::now().as_millisecond();
    // A content hash in Herald: random here, so index inserts land anywhere, as they do there.
    let fingerprint = format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
    // SQLite stores text as given, so only the payload's length matters.
    conn.prepare_cached(INSERT)?.execute(params![
        uuid::Uuid::now_v7().to_string(),
        TEMPLATE,
        CLASS,
        payload,
        now_ms,
        fingerprint
    ])?;
    Ok(())
}
