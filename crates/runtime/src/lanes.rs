//! Lanes and the feeder. The feeder claims due work from the store (so scheduled sends and work
//! left by a crash come back by themselves) and routes each item to the lane of its user:
//! `hash(user) % lanes`. A lane takes what has queued up in it as one batch and decides it in order,
//! so decisions for one user never race, and a busy lane reads and writes a whole batch at once.

use std::hash::BuildHasher;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use herald_store::{Store, Work};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::leases::Holder;

/// Items claimed per store round trip.
const CLAIM_BATCH: u32 = 1024;
/// Items a lane buffers before the feeder waits.
const LANE_DEPTH: usize = 4096;
/// Most items a lane decides as one batch.
const LANE_BATCH: usize = 1024;
/// Longest sleep when nothing is due, as a safety net for missed wake-ups.
const IDLE_POLL: Duration = Duration::from_secs(5);

/// What a lane runs.
#[async_trait]
pub(crate) trait Decide: Send + Sync + 'static {
    /// Decides a batch of work in order.
    async fn process(&self, work: Vec<Work>, lane: usize);
    /// Returns a batch whose deciding broke off to the queue, to be tried again later.
    async fn hand_back(&self, work: Vec<Work>);
}

/// Senders into each lane: one for urgent work, one for the rest.
pub(crate) struct Lanes {
    senders: Vec<(mpsc::Sender<Work>, mpsc::Sender<Work>)>,
    hasher: std::collections::hash_map::RandomState,
}

impl Lanes {
    /// Spawns `n` lanes that run `decider`.
    pub(crate) fn start(tasks: &mut JoinSet<()>, decider: Arc<dyn Decide>, n: usize) -> Self {
        let senders = (0..n)
            .map(|lane| {
                let (urgent_tx, urgent_rx) = mpsc::channel::<Work>(LANE_DEPTH);
                let (tx, rx) = mpsc::channel::<Work>(LANE_DEPTH);
                tasks.spawn(run_lane(urgent_rx, rx, decider.clone(), lane));
                (urgent_tx, tx)
            })
            .collect();
        Self { senders, hasher: Default::default() }
    }

    fn lane_of(&self, user: &str) -> usize {
        (self.hasher.hash_one(user) % self.senders.len() as u64) as usize
    }

    /// Hands `item` to its user's lane, waiting while that lane is full.
    pub(crate) async fn route(&self, item: Work) {
        let lane = self.lane_of(item.user().as_str());
        metrics::gauge!("herald_queue_depth", "queue" => "lanes").increment(1.0);
        let (urgent, rest) = &self.senders[lane];
        let sender = if matches!(&item, Work::Decide(i) if i.urgent) { urgent } else { rest };
        if sender.send(item).await.is_err() {
            tracing::error!(lane, "lane stopped");
        }
    }
}

/// One lane: decides what has queued up, a batch at a time, urgent work before the rest (a
/// marketing backlog in the lane never holds a critical notification back). A panic while
/// deciding costs that batch a retry, never the lane: a stopped lane would silently stop every
/// user hashed to it.
async fn run_lane(
    mut urgent: mpsc::Receiver<Work>,
    mut rest: mpsc::Receiver<Work>,
    decider: Arc<dyn Decide>,
    lane: usize,
) {
    let mut batch = Vec::with_capacity(LANE_BATCH);
    loop {
        tokio::select! {
            biased;
            Some(first) = urgent.recv() => fill(&mut batch, first, &mut urgent),
            Some(first) = rest.recv() => fill(&mut batch, first, &mut rest),
            // Both senders are gone (the runtime stopping): nothing more will come.
            else => return,
        }
        metrics::gauge!("herald_queue_depth", "queue" => "lanes").decrement(batch.len() as f64);
        let work = std::mem::take(&mut batch);
        if let Err(panic) = AssertUnwindSafe(decider.process(work.clone(), lane)).catch_unwind().await {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(lane, panic = %message, items = work.len(), "deciding a batch panicked; it is handed back");
            metrics::counter!("herald_lane_panics_total").increment(1);
            decider.hand_back(work).await;
        }
    }
}

/// A batch: `first` and whatever else has queued up behind it, up to the batch size.
fn fill(batch: &mut Vec<Work>, first: Work, rx: &mut mpsc::Receiver<Work>) {
    batch.push(first);
    while batch.len() < LANE_BATCH {
        match rx.try_recv() {
            Ok(w) => batch.push(w),
            Err(_) => break,
        }
    }
}

/// Claims due work and routes it, sleeping until woken or until the next scheduled item.
pub(crate) async fn feed(
    store: Arc<dyn Store>,
    lanes: Arc<Lanes>,
    wake: Arc<Notify>,
    clock: Arc<dyn Clock>,
    holder: Holder,
) {
    loop {
        let now = clock.now();
        match store.claim_due(now, holder.lease(now), CLAIM_BATCH).await {
            Ok(items) if !items.is_empty() => {
                for item in items {
                    lanes.route(item).await;
                }
            }
            Ok(_) => {
                let sleep = match store.next_due().await {
                    Ok(Some(at)) => {
                        let wait = clock.now().duration_until(at);
                        Duration::try_from(wait).unwrap_or(Duration::ZERO).min(IDLE_POLL)
                    }
                    _ => IDLE_POLL,
                };
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(sleep) => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "claiming work failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use herald_domain::UserId;

    use super::*;

    /// Panics on the first batch, then records what it decides and what it is handed back.
    #[derive(Default)]
    struct Flaky {
        calls: Mutex<u32>,
        decided: Mutex<Vec<Work>>,
        handed_back: Mutex<Vec<Work>>,
    }

    #[async_trait]
    impl Decide for Flaky {
        async fn process(&self, work: Vec<Work>, _lane: usize) {
            let first = {
                let mut calls = self.calls.lock().unwrap();
                *calls += 1;
                *calls == 1
            };
            assert!(!first, "a bug in the first batch");
            self.decided.lock().unwrap().extend(work);
        }

        async fn hand_back(&self, work: Vec<Work>) {
            self.handed_back.lock().unwrap().extend(work);
        }
    }

    fn lease() -> herald_store::Lease {
        herald_store::Lease { token: herald_store::LeaseToken::from_stored(1), until: jiff::Timestamp::UNIX_EPOCH }
    }

    fn flush(user: &str) -> Work {
        Work::Flush(herald_store::FlushItem { user_id: UserId::parse("user_id", user).unwrap(), lease: lease() })
    }

    #[tokio::test]
    async fn a_panicking_batch_is_handed_back_and_the_lane_goes_on() {
        let decider = Arc::new(Flaky::default());
        let (urgent_tx, urgent_rx) = mpsc::channel(8);
        let (tx, rx) = mpsc::channel(8);
        let lane = tokio::spawn(run_lane(urgent_rx, rx, decider.clone(), 0));
        tx.send(flush("ana")).await.unwrap();
        // The second item goes in only once the first batch is over, so it is a batch of its own.
        while decider.handed_back.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        tx.send(flush("bo")).await.unwrap();
        while decider.decided.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        drop((tx, urgent_tx));
        lane.await.expect("the lane itself never panics");
        assert_eq!(*decider.handed_back.lock().unwrap(), vec![flush("ana")]);
        assert_eq!(*decider.decided.lock().unwrap(), vec![flush("bo")]);
    }

    /// Records each batch it is given.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Vec<Work>>>);

    #[async_trait]
    impl Decide for Recorder {
        async fn process(&self, work: Vec<Work>, _lane: usize) {
            self.0.lock().unwrap().push(work);
        }

        async fn hand_back(&self, _work: Vec<Work>) {}
    }

    fn decide(seq: i64, urgent: bool) -> Work {
        Work::Decide(herald_store::WorkItem {
            seq,
            phase: 0,
            notification_id: uuid::Uuid::nil(),
            user_id: UserId::parse("user_id", "ana").unwrap(),
            urgent,
            lease: lease(),
        })
    }

    #[tokio::test]
    async fn urgent_work_is_decided_before_a_backlog_queued_ahead_of_it() {
        let decider = Arc::new(Recorder::default());
        let (urgent_tx, urgent_rx) = mpsc::channel(8);
        let (tx, rx) = mpsc::channel(8);
        for seq in 1..=3 {
            tx.send(decide(seq, false)).await.unwrap();
        }
        urgent_tx.send(decide(4, true)).await.unwrap();
        drop((tx, urgent_tx));
        run_lane(urgent_rx, rx, decider.clone(), 0).await;
        let batches = decider.0.lock().unwrap().clone();
        assert_eq!(batches[0], vec![decide(4, true)], "{batches:?}");
    }
}
