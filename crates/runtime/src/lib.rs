//! Herald's runtime: claims due work from the store, decides it in one ordered lane per user,
//! records the outcome, feeds the live inbox hub and dispatches deliveries with retries.
//! Everything it holds in memory is rebuilt from the store at start.

pub mod clock;
mod dispatch;
pub mod hub;
mod lanes;
mod process;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use herald_channels::Provider;
use herald_domain::Channel;
use herald_domain::preferences::PreferenceDefaults;
use herald_store::{Store, StoreError};
use tokio::sync::Notify;
use tokio::task::JoinSet;

pub use clock::{Clock, ManualClock, SystemClock};
pub use hub::{Hub, LiveEvent};

use dispatch::Dispatcher;

/// Retry and timeout settings of one channel.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// Delay before each retry; when exhausted the delivery fails.
    pub retry_schedule: Vec<Duration>,
    /// Provider request timeout.
    pub timeout: Duration,
}

/// What the runtime needs from configuration.
#[derive(Clone)]
pub struct RuntimeConfig {
    /// Where the dev outbox lives.
    pub data_dir: PathBuf,
    /// Server-wide preference defaults.
    pub defaults: PreferenceDefaults,
    /// Number of per-user lanes.
    pub lanes: usize,
    /// Per-channel retry settings.
    pub channels: BTreeMap<Channel, ChannelSettings>,
    /// The provider for each interrupting channel.
    pub providers: BTreeMap<Channel, Arc<dyn Provider>>,
}

/// Errors starting the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The store failed while rebuilding state.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A running runtime.
pub struct Runtime {
    hub: Hub,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    tasks: tokio::sync::Mutex<JoinSet<()>>,
}

impl Runtime {
    /// Rebuilds from the store (releases stale claims, re-dispatches open deliveries) and starts.
    pub async fn start(
        store: Arc<dyn Store>,
        config: RuntimeConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, RuntimeError> {
        let released = store.release_claims().await?;
        if released > 0 {
            tracing::info!(released, "returned unfinished work to the queue");
        }
        let hub = Hub::default();
        let wake = Arc::new(Notify::new());
        let dispatcher = Arc::new(Dispatcher::new(store.clone(), &config, clock.clone()));
        let open = store.open_deliveries().await?;
        if !open.is_empty() {
            tracing::info!(count = open.len(), "resuming open deliveries");
        }
        for d in open {
            dispatcher.dispatch(d);
        }
        let mut tasks = JoinSet::new();
        let lanes = lanes::Lanes::start(
            &mut tasks,
            process::Processor::new(store.clone(), config.clone(), hub.clone(), dispatcher, clock.clone()),
            config.lanes.max(1),
        );
        tasks.spawn(lanes::feed(store.clone(), lanes, wake.clone(), clock.clone()));
        Ok(Arc::new(Self { hub, store, clock, wake, tasks: tokio::sync::Mutex::new(tasks) }))
    }

    /// The live inbox hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Tells the runtime that new work was committed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A user opened an inbox stream: their pending digest drains into the inbox now.
    pub async fn user_online(&self, user: &herald_domain::UserId) -> Result<(), StoreError> {
        self.store.schedule_flush(user, self.clock.now()).await?;
        self.wake();
        Ok(())
    }

    /// Stops claiming work; what is claimed but unfinished is released at the next start.
    pub async fn shutdown(&self) {
        self.tasks.lock().await.shutdown().await;
    }
}
