//! The single SQLite writer with group commit: one OS thread owns the write connection and runs
//! whatever jobs have queued up inside one transaction, answering them all after one COMMIT.
//! Under concurrency many accepts share one fsync, and a transaction costs one hand-off between
//! threads, however many statements its jobs run: the driver is synchronous, so each statement
//! is a plain function call on the thread that owns the connection.
//!
//! Each job runs inside its own SAVEPOINT: a job that fails is rolled back to it and answered with
//! its own error, while the others in the transaction commit. Only when the transaction as a
//! whole fails (its COMMIT, or an error after which SQLite dropped the transaction) is every job
//! in it answered with the error; their callers retry, and nothing half-written stays.
//!
//! Why an answered write is durable: a job is answered only after the COMMIT of its transaction
//! has returned. Only what Herald promised to keep needs an fsync at its commit: an accepted
//! notification, an API change. A transaction holding any such job commits with
//! `synchronous = FULL`, so the WAL is on disk before the answer, and survives a power loss.
//! Bookkeeping of the work after it (claims, decisions, attempts) is written *lazily*: a
//! transaction of lazy jobs only commits with `synchronous = NORMAL`, which survives a crash of
//! the process (the operating system has the WAL) and is made durable by the next full commit. A
//! power loss can roll back such bookkeeping, never an accept: the work is then done again, with
//! the same delivery ids, which is the at-least-once promise anyway.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::{StoreError, StoreResult};

/// Most jobs folded into one transaction.
const MAX_BATCH: usize = 512;

/// Answers a job's caller, given the error of its transaction's COMMIT if that failed.
type Finish = Box<dyn FnOnce(Option<StoreError>) + Send>;
/// Runs a job on the connection; says how to answer it.
type Run = Box<dyn FnOnce(&Connection) -> Finish + Send>;

/// A job and whether its commit must reach the disk before it is answered.
struct Job {
    durable: bool,
    run: Run,
}

/// A handle to the writer thread.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread, which owns `conn` from now on.
    pub(crate) fn spawn(conn: Connection) -> StoreResult<Self> {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        std::thread::Builder::new()
            .name("herald-store-writer".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StoreError::Database(format!("cannot start the writer: {e}")))?;
        Ok(Self { tx })
    }

    /// Runs `f` inside the writer's transaction; resolves once it is committed to disk.
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(true, f).await
    }

    /// Runs `f` inside the writer's transaction; resolves once it is committed, durable across a
    /// crash of the process but not yet across a power loss (see the module's doc).
    pub(crate) async fn write_lazy<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(false, f).await
    }

    async fn submit<T, F>(&self, durable: bool, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let run: Run = Box::new(move |conn| {
            let result = in_savepoint(conn, f);
            Box::new(move |commit_err: Option<StoreError>| {
                let _ = tx.send(match (result, commit_err) {
                    (Ok(_), Some(e)) => Err(e),
                    (r, _) => r,
                });
            }) as Finish
        });
        self.tx.send(Job { durable, run }).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// Runs `f` inside a savepoint, rolled back when `f` fails (or panics) so that it fails alone.
fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
    exec(conn, "SAVEPOINT job")?;
    let result = catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(StoreError::Database("a write panicked".into())))
        .and_then(|v| exec(conn, "RELEASE job").map(|()| v));
    // Without a transaction SQLite already rolled everything back; the writer sees that.
    if result.is_err() && !conn.is_autocommit() {
        let undone = exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job"));
        if undone.is_err() {
            // The failed job's writes must not be committed with the others: give them all up.
            let _ = exec(conn, "ROLLBACK");
        }
    }
    result
}

fn exec(conn: &Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Fills the next group of jobs: waits for one unless some are left over, then takes whatever
/// else has queued, up to the most; false once every handle is gone.
fn next_group(rx: &mut mpsc::Receiver<Job>, jobs: &mut VecDeque<Job>) -> bool {
    if jobs.is_empty() {
        let Some(first) = rx.blocking_recv() else { return false };
        jobs.push_back(first);
    }
    while jobs.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => jobs.push_back(job),
            Err(_) => break,
        }
    }
    true
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut jobs: VecDeque<Job> = VecDeque::with_capacity(MAX_BATCH);
    // The connection opens with synchronous = FULL.
    let mut synced = true;
    while next_group(&mut rx, &mut jobs) {
        metrics::histogram!("herald_store_group_commit_size").record(jobs.len() as f64);
        let durable = jobs.iter().any(|j| j.durable);
        if durable != synced {
            let pragma = if durable { "PRAGMA synchronous = FULL" } else { "PRAGMA synchronous = NORMAL" };
            match exec(&conn, pragma) {
                Ok(()) => synced = durable,
                // Left as it was: FULL is the safe side, and the next transaction tries again.
                Err(e) => tracing::error!(error = %e, "cannot change the commit mode"),
            }
        }
        if let Err(e) = exec(&conn, "BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "cannot begin a write transaction");
            // Dropping the jobs answers each caller with an error.
            jobs.clear();
            continue;
        }
        commit_group(&conn, &mut jobs);
    }
}

/// Runs `jobs` in the open transaction, commits it, and answers every job that ran; the jobs not
/// yet run when the transaction was lost stay in `jobs` for the next one.
fn commit_group(conn: &Connection, jobs: &mut VecDeque<Job>) {
    let mut finishes = Vec::with_capacity(jobs.len());
    let mut lost = false;
    while let Some(job) = jobs.pop_front() {
        finishes.push((job.run)(conn));
        // A failure SQLite answers by rolling back the whole transaction (a full disk, say) took
        // the jobs before it along; the ones after would run outside any transaction.
        if conn.is_autocommit() {
            lost = true;
            break;
        }
    }
    let outcome = if lost {
        Some(StoreError::Database("rolled back: the write transaction failed".into()))
    } else {
        let commit = exec(conn, "COMMIT").err();
        if commit.is_some() && !conn.is_autocommit() {
            let _ = exec(conn, "ROLLBACK");
        }
        commit
    };
    for finish in finishes {
        finish(outcome.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn writer(dir: &tempfile::TempDir) -> Writer {
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER PRIMARY KEY)").unwrap();
        Writer::spawn(conn).unwrap()
    }

    fn rows(c: &Connection) -> StoreResult<Vec<i64>> {
        let mut stmt = c.prepare("SELECT x FROM t ORDER BY x")?;
        let xs = stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>()?;
        Ok(xs)
    }

    #[tokio::test]
    async fn a_failing_job_fails_alone_and_the_others_in_its_transaction_commit() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir);
        // Holds the writer so that the jobs below queue up and share one transaction.
        let hold = w.write(|_| {
            std::thread::sleep(Duration::from_millis(50));
            Ok(())
        });
        let jobs = (0..64i64).map(|i| {
            let w = w.clone();
            async move {
                w.write(move |c| {
                    c.execute("INSERT INTO t (x) VALUES (?)", [i])?;
                    if i == 10 {
                        // Its own first insert must not survive its failure.
                        c.execute("INSERT INTO t (x) VALUES (?)", [i])?;
                    }
                    Ok(i)
                })
                .await
            }
        });
        let (held, answers) = tokio::join!(hold, futures::future::join_all(jobs));
        held.unwrap();
        for (i, answer) in answers.into_iter().enumerate() {
            match answer {
                Err(StoreError::Database(_)) if i == 10 => {}
                Ok(n) if i != 10 => assert_eq!(n, i as i64),
                other => panic!("job {i}: {other:?}"),
            }
        }
        let xs = w.write(rows).await.unwrap();
        assert_eq!(xs, (0..64).filter(|i| *i != 10).collect::<Vec<i64>>());
    }

    #[tokio::test]
    async fn a_panicking_job_is_answered_with_an_error_and_the_writer_lives_on() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir);
        let panicked = w.write_lazy(|_| -> StoreResult<()> { panic!("boom") }).await;
        assert!(matches!(panicked, Err(StoreError::Database(_))));
        w.write(|c| Ok(c.execute("INSERT INTO t (x) VALUES (1)", [])?)).await.unwrap();
        assert_eq!(w.write(rows).await.unwrap(), vec![1]);
    }
}
