//! The single SQLite writer with group commit: every write is a job sent to one task, which runs
//! whatever jobs have queued up inside one transaction and answers them all after one COMMIT.
//! Under concurrency many accepts share one fsync.
//!
//! Jobs run without a savepoint each: every statement is a round trip to SQLite's worker thread,
//! and savepoints would double them. Inputs are validated before they get here, so a job fails
//! only when the database does (a full disk, say); then the transaction is rolled back, the jobs
//! that ran in it are answered with the error (their callers retry, nothing half-written stays),
//! and the jobs not yet run go into the next transaction.
//!
//! Only what Herald promised to keep needs an fsync at its commit: an accepted notification, an
//! API change. Bookkeeping of the work after it (claims, decisions, attempts) is written
//! *lazily*: a transaction of lazy jobs only commits with `synchronous = NORMAL`, which survives a
//! crash of the process (the operating system has the WAL) and is made durable by the next full
//! commit. A power loss can roll back such bookkeeping, never an accept: the work is then done
//! again, with the same delivery ids, which is the at-least-once promise anyway.

use std::collections::VecDeque;

use futures::future::BoxFuture;
use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use crate::{StoreError, StoreResult};

/// Most jobs folded into one transaction.
const MAX_BATCH: usize = 512;

type Finish = Box<dyn FnOnce(Option<StoreError>) + Send>;
type Run = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Finish)> + Send>;

/// A job and whether its commit must reach the disk before it is answered.
struct Job {
    durable: bool,
    run: Run,
}

/// A handle to the writer task.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task on its own connection.
    pub(crate) fn spawn(conn: SqliteConnection) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(conn, rx));
        Self { tx }
    }

    /// Runs `f` inside the writer's transaction; resolves once it is committed to disk.
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        self.submit(true, f).await
    }

    /// Runs `f` inside the writer's transaction; resolves once it is committed, durable across a
    /// crash of the process but not yet across a power loss (see the module's doc).
    pub(crate) async fn write_lazy<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        self.submit(false, f).await
    }

    async fn submit<T, F>(&self, durable: bool, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let run: Run = Box::new(move |conn| {
            Box::pin(async move {
                let result = f(conn).await;
                let ok = result.is_ok();
                let finish: Finish = Box::new(move |commit_err| {
                    let _ = tx.send(match (result, commit_err) {
                        (Ok(_), Some(e)) => Err(e),
                        (r, _) => r,
                    });
                });
                (ok, finish)
            })
        });
        self.tx.send(Job { durable, run }).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<(), StoreError> {
    sqlx::query(sql).execute(conn).await.map(drop).map_err(StoreError::from)
}

async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>) {
    let mut jobs: VecDeque<Job> = VecDeque::with_capacity(MAX_BATCH);
    // The connection opens with synchronous = FULL.
    let mut synced = true;
    let mut incoming = Vec::with_capacity(MAX_BATCH);
    loop {
        let room = MAX_BATCH.saturating_sub(jobs.len());
        if jobs.is_empty() {
            if rx.recv_many(&mut incoming, room).await == 0 {
                return;
            }
        } else {
            while incoming.len() < room {
                match rx.try_recv() {
                    Ok(job) => incoming.push(job),
                    Err(_) => break,
                }
            }
        }
        jobs.extend(incoming.drain(..));
        metrics::histogram!("herald_store_group_commit_size").record(jobs.len() as f64);
        let durable = jobs.iter().any(|j| j.durable);
        if durable != synced {
            let pragma = if durable { "PRAGMA synchronous = FULL" } else { "PRAGMA synchronous = NORMAL" };
            match exec(&mut conn, pragma).await {
                Ok(()) => synced = durable,
                // Left as it was: FULL is the safe side, and the next transaction tries again.
                Err(e) => tracing::error!(error = %e, "cannot change the commit mode"),
            }
        }
        if let Err(e) = exec(&mut conn, "BEGIN IMMEDIATE").await {
            tracing::error!(error = %e, "cannot begin a write transaction");
            // Dropping the jobs answers each caller with an error.
            jobs.clear();
            continue;
        }
        let mut finishes = Vec::with_capacity(jobs.len());
        let mut failed = false;
        while let Some(job) = jobs.pop_front() {
            let (ok, finish) = (job.run)(&mut conn).await;
            finishes.push(finish);
            if !ok {
                failed = true;
                break;
            }
        }
        let outcome = if failed {
            let _ = exec(&mut conn, "ROLLBACK").await;
            Some(StoreError::Database("rolled back: another write in the same transaction failed".into()))
        } else {
            let commit = exec(&mut conn, "COMMIT").await.err();
            if commit.is_some() {
                let _ = exec(&mut conn, "ROLLBACK").await;
            }
            commit
        };
        for finish in finishes {
            finish(outcome.clone());
        }
    }
}
