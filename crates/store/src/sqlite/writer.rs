//! The single SQLite writer with group commit: every write is a job sent to one task, which runs
//! whatever jobs have queued up inside one transaction and answers them all after one COMMIT.
//! Under concurrency many accepts share one fsync.
//!
//! Jobs run without a savepoint each: every statement is a round trip to SQLite's worker thread,
//! and savepoints would double them. Inputs are validated before they get here, so a job fails
//! only when the database does (a full disk, say); then the transaction is rolled back, the jobs
//! that ran in it are answered with the error (their callers retry, nothing half-written stays),
//! and the jobs not yet run go into the next transaction.

use std::collections::VecDeque;

use futures::future::BoxFuture;
use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use crate::{StoreError, StoreResult};

/// Most jobs folded into one transaction.
const MAX_BATCH: usize = 512;

type Finish = Box<dyn FnOnce(Option<StoreError>) + Send>;
type Job = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Finish)> + Send>;

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

    /// Runs `f` inside the writer's transaction; resolves once it is committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
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
        self.tx.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<(), StoreError> {
    sqlx::query(sql).execute(conn).await.map(drop).map_err(StoreError::from)
}

async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>) {
    let mut jobs: VecDeque<Job> = VecDeque::with_capacity(MAX_BATCH);
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
        if let Err(e) = exec(&mut conn, "BEGIN IMMEDIATE").await {
            tracing::error!(error = %e, "cannot begin a write transaction");
            // Dropping the jobs answers each caller with an error.
            jobs.clear();
            continue;
        }
        let mut finishes = Vec::with_capacity(jobs.len());
        let mut failed = false;
        while let Some(job) = jobs.pop_front() {
            let (ok, finish) = job(&mut conn).await;
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
