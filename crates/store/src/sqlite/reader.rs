//! The readers: a few read-only connections, each owned by its own OS thread, taking read jobs
//! from one shared queue. WAL lets them read the last committed state while the writer writes,
//! and a whole read (several statements) is one hand-off to a reader and one back.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{StoreError, StoreResult};

/// A read job: runs on a reader's connection and answers its caller itself.
type Job = Box<dyn FnOnce(&Connection) + Send>;

/// A handle to the reader threads.
#[derive(Clone)]
pub(crate) struct Readers {
    tx: Sender<Job>,
}

impl Readers {
    /// Starts one reader thread per connection in `conns`.
    pub(crate) fn spawn(conns: Vec<Connection>) -> StoreResult<Self> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for (i, conn) in conns.into_iter().enumerate() {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("herald-store-reader-{i}"))
                .spawn(move || run(conn, &rx))
                .map_err(|e| StoreError::Database(format!("cannot start a reader: {e}")))?;
        }
        Ok(Self { tx })
    }

    /// Runs `f` on a reader's connection.
    pub(crate) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.tx.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(conn: Connection, rx: &Mutex<Receiver<Job>>) {
    loop {
        // A poisoned queue or a closed one both mean the store is going away.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // A panicking read drops its answer (its caller sees `Closed`); the reader lives on.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&conn)));
    }
}
