//! Folding concurrent single requests into batches: callers ask one at a time, and what has
//! queued up meanwhile is written as one batch (multi-row statements, one place in a
//! transaction), while the next batch gathers. Under load a burst costs a few statements; alone,
//! a request waits for nothing but its own write.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::writer::Priority;
use crate::{StoreError, StoreResult};

type Pending<I, O> = (I, oneshot::Sender<StoreResult<O>>);

/// A queue that answers each item with its part of its batch's result.
pub(super) struct Fold<I, O> {
    tx: mpsc::Sender<Pending<I, O>>,
}

impl<I: Send + 'static, O: Send + 'static> Fold<I, O> {
    /// Starts the task that runs `run` on batches of at most `max` items, at most `in_flight`
    /// batches at once; `run` answers one result per item, in order.
    pub(super) fn spawn<F, Fut>(max: usize, in_flight: usize, run: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = StoreResult<Vec<O>>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<Pending<I, O>>(max);
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(in_flight.max(1)));
            let mut pending = Vec::with_capacity(max);
            while rx.recv_many(&mut pending, max).await > 0 {
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                let (items, answers): (Vec<I>, Vec<_>) = pending.drain(..).unzip();
                let batch = run(items);
                tokio::spawn(async move {
                    match batch.await {
                        Ok(outcomes) if outcomes.len() == answers.len() => {
                            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                                let _ = answer.send(Ok(outcome));
                            }
                        }
                        Ok(_) => {
                            let e = StoreError::Corrupt("a batch answered the wrong number of results".into());
                            answers.into_iter().for_each(|a| drop(a.send(Err(e.clone()))));
                        }
                        Err(e) => answers.into_iter().for_each(|a| drop(a.send(Err(e.clone())))),
                    }
                    drop(slot);
                });
            }
        });
        Self { tx }
    }

    /// Submits `item`; resolves with its result once its batch is written.
    pub(super) async fn call(&self, item: I) -> StoreResult<O> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((item, tx)).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// A fold per queue of the writer: urgent work is folded apart, so it never waits in a batch of
/// ordinary work.
pub(super) struct Folds<I, O> {
    ordinary: Fold<I, O>,
    urgent: Fold<I, O>,
}

impl<I: Send + 'static, O: Send + 'static> Folds<I, O> {
    /// The two folds `make` starts, one for each priority.
    pub(super) fn spawn(make: impl Fn(Priority) -> Fold<I, O>) -> Self {
        Self { ordinary: make(Priority::Ordinary), urgent: make(Priority::Urgent) }
    }

    /// Submits `item` to the fold of `priority`; see [`Fold::call`].
    pub(super) async fn call(&self, priority: Priority, item: I) -> StoreResult<O> {
        match priority {
            Priority::Ordinary => self.ordinary.call(item).await,
            Priority::Urgent => self.urgent.call(item).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn concurrent_calls_share_batches_and_each_gets_its_own_answer() {
        let batches = Arc::new(AtomicUsize::new(0));
        let seen = batches.clone();
        let fold: Arc<Fold<u32, u32>> = Arc::new(Fold::spawn(64, 1, move |items: Vec<u32>| {
            seen.fetch_add(1, Ordering::SeqCst);
            async move {
                // A write takes a while; on the paused clock the rest of the calls queue meanwhile.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                Ok(items.into_iter().map(|i| i * 2).collect())
            }
        }));
        let calls: Vec<_> = (0..200u32)
            .map(|i| {
                let fold = fold.clone();
                tokio::spawn(async move { (i, fold.call(i).await.unwrap()) })
            })
            .collect();
        for call in calls {
            let (i, doubled) = call.await.unwrap();
            assert_eq!(doubled, i * 2);
        }
        // The first call alone, then batches of at most 64 (the queue holds no more).
        assert!(batches.load(Ordering::SeqCst) <= 5, "calls were folded: {} batches", batches.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_calls() {
        let fold: Fold<u32, u32> =
            Fold::spawn(8, 2, |_items: Vec<u32>| async { Err(StoreError::Database("disk full".into())) });
        assert!(matches!(fold.call(1).await, Err(StoreError::Database(_))));
    }
}
