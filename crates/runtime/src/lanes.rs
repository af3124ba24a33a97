//! Lanes and the feeder. The feeder claims due work from the store (so scheduled sends and work
//! left by a crash come back by themselves) and routes each item to the lane of its user:
//! `hash(user) % lanes`. A lane takes what has queued up in it as one batch and decides it in order,
//! so decisions for one user never race, and a busy lane reads and writes a whole batch at once.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use herald_store::{Store, Work};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::process::Processor;

/// Items claimed per store round trip.
const CLAIM_BATCH: u32 = 1024;
/// Items a lane buffers before the feeder waits.
const LANE_DEPTH: usize = 4096;
/// Most items a lane decides as one batch.
const LANE_BATCH: usize = 1024;
/// Longest sleep when nothing is due, as a safety net for missed wake-ups.
const IDLE_POLL: Duration = Duration::from_secs(5);

/// Senders into each lane.
pub(crate) struct Lanes {
    senders: Vec<mpsc::Sender<Work>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Lanes {
    /// Spawns `n` lanes that run `processor`.
    pub(crate) fn start(tasks: &mut JoinSet<()>, processor: Processor, n: usize) -> Self {
        let processor = Arc::new(processor);
        let senders = (0..n)
            .map(|lane| {
                let (tx, mut rx) = mpsc::channel::<Work>(LANE_DEPTH);
                let p = processor.clone();
                tasks.spawn(async move {
                    let mut batch = Vec::with_capacity(LANE_BATCH);
                    while rx.recv_many(&mut batch, LANE_BATCH).await > 0 {
                        metrics::gauge!("herald_queue_depth", "queue" => "lanes").decrement(batch.len() as f64);
                        p.process(std::mem::take(&mut batch), lane).await;
                    }
                });
                tx
            })
            .collect();
        Self { senders, hasher: Default::default() }
    }

    fn lane_of(&self, user: &str) -> usize {
        (self.hasher.hash_one(user) % self.senders.len() as u64) as usize
    }

    async fn route(&self, item: Work) {
        let lane = self.lane_of(item.user().as_str());
        metrics::gauge!("herald_queue_depth", "queue" => "lanes").increment(1.0);
        if self.senders[lane].send(item).await.is_err() {
            tracing::error!(lane, "lane stopped");
        }
    }
}

/// Claims due work and routes it, sleeping until woken or until the next scheduled item.
pub(crate) async fn feed(store: Arc<dyn Store>, lanes: Lanes, wake: Arc<Notify>, clock: Arc<dyn Clock>) {
    loop {
        match store.claim_due(clock.now(), CLAIM_BATCH).await {
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
