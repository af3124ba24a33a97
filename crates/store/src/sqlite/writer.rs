//! The single SQLite writer with group commit: one OS thread owns the write connection and runs
//! whatever jobs have queued up inside one transaction, answering them all after one COMMIT.
//! Under concurrency many accepts share one fsync, and a transaction costs one hand-off between
//! threads, however many statements its jobs run: the driver is synchronous, so each statement
//! is a plain function call on the thread that owns the connection.
//!
//! Jobs wait in two queues: urgent (critical and transactional work) and ordinary. The next
//! transaction (the one under way is never cut short) takes every urgent job queued, ahead of
//! every ordinary job queued before them, and when it holds urgent jobs it takes only a few
//! ordinary ones beside them: an urgent commit never waits for a marketing burst, a big batch or
//! a retry storm, which wait for the transaction after. A few, not none, so that a stream of
//! urgent work cannot starve the ordinary queue (where the claims and attempt starts of urgent
//! work run too).
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
//! the same delivery ids, which is the at-least-once promise anyway. The queue a job waits in
//! changes when it commits, never how.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Poll;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::{StoreError, StoreResult};

/// Most jobs folded into one transaction.
const MAX_BATCH: usize = 512;
/// Most ordinary jobs in a transaction that holds urgent ones: an ordinary job can be a folded
/// batch of thousands of rows, so each one taken along lengthens the urgent commit.
const BESIDE_URGENT: usize = 8;

/// Answers a job's caller, given the error of its transaction's COMMIT if that failed.
type Finish = Box<dyn FnOnce(Option<StoreError>) + Send>;
/// Runs a job on the connection; says how to answer it.
type Run = Box<dyn FnOnce(&Connection) -> Finish + Send>;

/// A job, whether its commit must reach the disk before it is answered, and whether it is urgent.
struct Job {
    durable: bool,
    urgent: bool,
    run: Run,
}

/// Which of the writer's queues a job waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    /// Everything else.
    Ordinary,
    /// Critical and transactional work, and the claims that feed every decision.
    Urgent,
}

impl Priority {
    /// `Urgent` for urgent work, else `Ordinary`.
    pub(crate) fn of(urgent: bool) -> Self {
        if urgent { Self::Urgent } else { Self::Ordinary }
    }
}

/// A handle to the writer thread.
#[derive(Clone)]
pub(crate) struct Writer {
    urgent: mpsc::Sender<Job>,
    ordinary: mpsc::Sender<Job>,
}

/// The writer thread's ends of the two queues.
struct Queues {
    urgent: mpsc::Receiver<Job>,
    ordinary: mpsc::Receiver<Job>,
}

impl Writer {
    /// Starts the writer thread, which owns `conn` from now on.
    pub(crate) fn spawn(conn: Connection) -> StoreResult<Self> {
        let (urgent, urgent_rx) = mpsc::channel(MAX_BATCH);
        let (ordinary, ordinary_rx) = mpsc::channel(4 * MAX_BATCH);
        let queues = Queues { urgent: urgent_rx, ordinary: ordinary_rx };
        std::thread::Builder::new()
            .name("herald-store-writer".into())
            .spawn(move || run(conn, queues))
            .map_err(|e| StoreError::Database(format!("cannot start the writer: {e}")))?;
        Ok(Self { urgent, ordinary })
    }

    /// Runs `f` inside the writer's transaction; resolves once it is committed to disk.
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(Job::new(true, false, f)).await
    }

    /// Runs `f` inside the writer's transaction; resolves once it is committed, durable across a
    /// crash of the process but not yet across a power loss (see the module's doc).
    pub(crate) async fn write_lazy<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(Job::new(false, false, f)).await
    }

    /// Like [`Writer::write`], in the queue `priority` names: an urgent job goes in the next
    /// transaction, ahead of every ordinary job queued.
    pub(crate) async fn write_at<T, F>(&self, priority: Priority, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(Job::new(true, priority == Priority::Urgent, f)).await
    }

    /// Like [`Writer::write_lazy`], in the queue `priority` names (see [`Writer::write_at`]).
    pub(crate) async fn write_lazy_at<T, F>(&self, priority: Priority, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(Job::new(false, priority == Priority::Urgent, f)).await
    }

    /// Sends `job` to its queue and waits for its answer.
    async fn submit<T>(&self, (job, answer): (Job, oneshot::Receiver<StoreResult<T>>)) -> StoreResult<T> {
        let queue = if job.urgent { &self.urgent } else { &self.ordinary };
        queue.send(job).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

impl Job {
    /// Wraps `f` in a savepoint and an answer; returns the job and where its answer arrives.
    fn new<T, F>(durable: bool, urgent: bool, f: F) -> (Self, oneshot::Receiver<StoreResult<T>>)
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
        (Self { durable, urgent, run }, rx)
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

/// Runs one statement without parameters.
fn exec(conn: &Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

impl Queues {
    /// Blocks until a job is queued in either queue, urgent first; `None` once every handle is gone.
    fn wait(&mut self) -> Option<Job> {
        futures::executor::block_on(poll_fn(|cx| {
            let urgent = self.urgent.poll_recv(cx);
            if let Poll::Ready(Some(_)) = urgent {
                return urgent;
            }
            match (urgent, self.ordinary.poll_recv(cx)) {
                (_, Poll::Ready(Some(job))) => Poll::Ready(Some(job)),
                (Poll::Ready(None), Poll::Ready(None)) => Poll::Ready(None),
                // Both wakers are registered: whichever queue gets a job wakes the thread.
                _ => Poll::Pending,
            }
        }))
    }
}

/// Fills the next group of jobs: waits for one unless some are left over, then takes every
/// urgent job queued and ordinary ones up to the most (only a few beside urgent ones); false once
/// every handle is gone.
fn next_group(queues: &mut Queues, jobs: &mut VecDeque<Job>) -> bool {
    if jobs.is_empty() {
        let Some(first) = queues.wait() else { return false };
        jobs.push_back(first);
    }
    take(&mut queues.urgent, jobs, MAX_BATCH);
    let urgent = jobs.iter().filter(|j| j.urgent).count();
    let most = if urgent > 0 { (urgent + BESIDE_URGENT).min(MAX_BATCH) } else { MAX_BATCH };
    take(&mut queues.ordinary, jobs, most);
    true
}

/// Moves the jobs waiting in `queue` into `jobs` without waiting, until `jobs` holds `most`.
fn take(queue: &mut mpsc::Receiver<Job>, jobs: &mut VecDeque<Job>, most: usize) {
    while jobs.len() < most {
        match queue.try_recv() {
            Ok(job) => jobs.push_back(job),
            Err(_) => break,
        }
    }
}

/// The writer thread: one transaction per group until every handle is gone.
fn run(conn: Connection, mut queues: Queues) {
    let mut jobs: VecDeque<Job> = VecDeque::with_capacity(MAX_BATCH);
    // The connection opens with synchronous = FULL.
    let mut synced = true;
    while next_group(&mut queues, &mut jobs) {
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
    use std::sync::{Arc, Mutex};
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

    #[tokio::test]
    async fn an_urgent_job_commits_ahead_of_the_ordinary_jobs_queued_before_it() {
        const ORDINARY: usize = 32;
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir);
        // A second connection sees only what is committed: each job notes how many rows it saw,
        // which tells whether the urgent job's transaction committed before its own began.
        let committed = Arc::new(Mutex::new(Connection::open(dir.path().join("w.db")).unwrap()));
        let insert = |x: i64| {
            let committed = committed.clone();
            move |c: &Connection| {
                c.execute("INSERT INTO t (x) VALUES (?)", [x])?;
                let seen = rows(&committed.lock().unwrap())?.len();
                Ok(seen)
            }
        };
        // Holds the writer inside a transaction until released, so that the jobs below queue up.
        let (started_tx, started_rx) = oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let hold = tokio::spawn({
            let w = w.clone();
            async move {
                w.write(move |_| {
                    let _ = started_tx.send(());
                    release_rx.recv().map_err(|_| StoreError::Closed)
                })
                .await
            }
        });
        started_rx.await.unwrap();
        let mut ordinary: Vec<_> = (1..=ORDINARY as i64).map(|x| Box::pin(w.write(insert(x)))).collect();
        for job in &mut ordinary {
            assert!(futures::poll!(job).is_pending());
        }
        assert_eq!(w.ordinary.max_capacity() - w.ordinary.capacity(), ORDINARY, "all queued before the urgent one");
        let mut urgent = Box::pin(w.write_lazy_at(Priority::Urgent, insert(0)));
        assert!(futures::poll!(&mut urgent).is_pending());
        release_tx.send(()).unwrap();
        hold.await.unwrap().unwrap();
        assert_eq!(urgent.await.unwrap(), 0, "the urgent job ran in the transaction right after the held one");
        let beside = futures::future::join_all(ordinary).await.into_iter().filter(|seen| *seen.as_ref().unwrap() == 0);
        // Without the priority all of them would have shared the urgent job's transaction.
        assert!(beside.count() <= BESIDE_URGENT, "only a few ordinary jobs committed with the urgent one");
    }
}
