//! Herald's runtime: claims due work from the store, decides it in one ordered lane per user,
//! records the outcome, feeds the live inbox hub and dispatches deliveries with retries.
//! Everything it holds in memory is rebuilt from the store at start.

mod assembly;
mod breaker;
pub mod clock;
mod dispatch;
pub mod hub;
mod lanes;
mod leases;
mod outlet;
mod process;
mod ratelimit;
mod targets;
pub mod templates;

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

use crate::leases::Holder;

pub use breaker::BreakerSettings;
pub use clock::{Clock, ManualClock, SystemClock};
pub use herald_domain::overload::Thresholds;
pub use hub::{Hub, LiveEvent};
pub use ratelimit::Rate;
pub use templates::Templates;

use dispatch::Dispatcher;

/// How one channel dispatches.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// Delay before each retry; when exhausted the delivery fails (a dead letter).
    pub retry_schedule: Vec<Duration>,
    /// Provider request timeout.
    pub timeout: Duration,
    /// Sends in flight at once on this channel.
    pub max_in_flight: usize,
    /// Circuit breaker thresholds of this channel's providers.
    pub breaker: BreakerSettings,
    /// Each provider's sending rate.
    pub rate_limit: Option<Rate>,
    /// Email only: each recipient domain's rate.
    pub domain_rate_limit: Option<Rate>,
    /// Sends per UTC day across all users (SMS).
    pub daily_budget: Option<u32>,
    /// SMS: the most segments one message may take; a longer body is shortened to fit.
    pub max_segments: Option<u32>,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        Self {
            retry_schedule: Vec::new(),
            timeout: Duration::from_secs(15),
            max_in_flight: 64,
            breaker: BreakerSettings::default(),
            rate_limit: None,
            domain_rate_limit: None,
            daily_budget: None,
            max_segments: None,
        }
    }
}

/// When to shed load, and for how long the shed notifications wait.
#[derive(Debug, Clone, Copy)]
pub struct OverloadSettings {
    /// Delivery queue depths at which each class waits.
    pub thresholds: Thresholds,
    /// How long a shed notification waits before it is decided again.
    pub defer: jiff::SignedDuration,
}

impl Default for OverloadSettings {
    fn default() -> Self {
        Self { thresholds: Thresholds::default(), defer: jiff::SignedDuration::from_secs(60) }
    }
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
    /// Per-channel dispatch settings.
    pub channels: BTreeMap<Channel, ChannelSettings>,
    /// The providers of each interrupting channel, in failover order.
    pub providers: BTreeMap<Channel, Vec<Arc<dyn Provider>>>,
    /// Most sends per user per interrupting channel per rolling hour, whatever the class.
    pub hourly_ceiling: Option<u32>,
    /// Load shedding.
    pub overload: OverloadSettings,
    /// How long shutdown waits for sends in flight.
    pub drain_grace: Duration,
    /// How long a claim on queued work lasts before another node may take it over.
    pub lease: Duration,
    /// Signs the one-click unsubscribe links of emails.
    pub unsubscribe: Option<herald_channels::unsubscribe::UnsubscribeLinks>,
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
    templates: Arc<Templates>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    dispatcher: Arc<Dispatcher>,
    drain_grace: Duration,
    holder: Holder,
    lanes: Arc<lanes::Lanes>,
    tasks: tokio::sync::Mutex<JoinSet<()>>,
}

impl Runtime {
    /// Starts as a new holder of leases: queued work and open deliveries that no live lease
    /// holds (those a previous run left, once its leases ran out; at once after a clean stop) are
    /// taken over by the feeder and the delivery keeper.
    pub async fn start(
        store: Arc<dyn Store>,
        config: RuntimeConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, RuntimeError> {
        let hub = Hub::default();
        let wake = Arc::new(Notify::new());
        let holder = Holder::mint(config.lease);
        let dispatcher = Arc::new(Dispatcher::new(store.clone(), &config, clock.clone(), holder.token));
        let mut tasks = JoinSet::new();
        let adopter = dispatcher.clone();
        tasks.spawn(leases::keep_deliveries(store.clone(), clock.clone(), holder, move |d| adopter.dispatch(d)));
        let templates = Arc::new(Templates::new(store.clone()));
        let processor = process::Processor::new(
            store.clone(),
            config.clone(),
            hub.clone(),
            dispatcher.clone(),
            clock.clone(),
            templates.clone(),
            holder,
        );
        let lanes = Arc::new(lanes::Lanes::start(&mut tasks, Arc::new(processor), config.lanes.max(1)));
        tasks.spawn(lanes::feed(store.clone(), lanes.clone(), wake.clone(), clock.clone(), holder));
        let drain_grace = config.drain_grace;
        Ok(Arc::new(Self {
            hub,
            templates,
            store,
            clock,
            wake,
            dispatcher,
            drain_grace,
            holder,
            lanes,
            tasks: tokio::sync::Mutex::new(tasks),
        }))
    }

    /// The live inbox hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Compiled templates, shared with the API's accept-time check.
    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// A lease for this node from now: notifications accepted with it (`NewNotification::claim`)
    /// come back with their recipients claimed, to be handed over with [`Runtime::decide`].
    pub fn lease(&self) -> herald_store::Lease {
        self.holder.lease(self.clock.now())
    }

    /// Decides recipients this node claimed with their accept, without a claim write or a trip
    /// through the feeder: they go to their users' lanes (in the background, as a full lane makes
    /// them wait). Were the node to stop first, they come back when the lease runs out.
    pub fn decide(&self, claimed: Vec<herald_store::WorkItem>) {
        if claimed.is_empty() {
            return;
        }
        let lanes = self.lanes.clone();
        tokio::spawn(async move {
            for item in claimed {
                lanes.route(herald_store::Work::Decide(item)).await;
            }
        });
    }

    /// Tells the runtime that new work was committed: the feeder looks for it. Deliveries waiting
    /// for a retry are not disturbed; they sleep until their own time.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Tells the runtime that its clock jumped (an injected clock in tests): the feeder and every
    /// delivery waiting for a time look again.
    pub fn clock_moved(&self) {
        self.wake.notify_one();
        self.dispatcher.tick();
    }

    /// Queues a dead letter again with the same delivery id; false when `id` is not one.
    pub async fn replay(&self, id: uuid::Uuid) -> Result<bool, StoreError> {
        let now = self.clock.now();
        match self.store.replay_dead_letter(id, self.holder.lease(now), now).await? {
            Some(d) => {
                self.dispatcher.dispatch(d);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Records a provider's late report about a delivery (a status callback) and dispatches the
    /// transactional fallback a failure activates; false when no delivery could take the report.
    pub async fn provider_status(&self, report: herald_store::ProviderStatus) -> Result<bool, StoreError> {
        match self.store.provider_status(report, self.holder.lease(self.clock.now())).await? {
            herald_store::Updated::Closed => Ok(false),
            herald_store::Updated::Recorded(next) => {
                if let Some(d) = next {
                    tracing::info!(delivery_id = %d.id, channel = %d.channel, "a late failure hands over to the next channel");
                    self.dispatcher.dispatch(*d);
                }
                Ok(true)
            }
        }
    }

    /// A user opened an inbox stream: their pending digest drains into the inbox now.
    pub async fn user_online(&self, user: &herald_domain::UserId) -> Result<(), StoreError> {
        self.store.schedule_flush(user, self.clock.now()).await?;
        self.wake();
        Ok(())
    }

    /// Stops claiming work, lets the sends in flight finish and be recorded, for up to the drain
    /// grace period, then lets go of every lease it holds, so that what is left (claims not yet
    /// decided, deliveries waiting for a retry) is taken over at once by the next start or another
    /// node, not only when the leases run out.
    pub async fn shutdown(&self) {
        self.tasks.lock().await.shutdown().await;
        self.dispatcher.drain(self.drain_grace).await;
        match self.store.release_held(self.holder.token).await {
            Ok(n) if n > 0 => tracing::info!(claims = n, "handed undecided work back to the queue"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot hand claims back; they return when their lease runs out"),
        }
        match self.store.release_deliveries(self.holder.token).await {
            Ok(n) if n > 0 => tracing::info!(deliveries = n, "let go of deliveries waiting for a retry"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot let go of deliveries; they are adopted when their lease runs out")
            }
        }
    }
}
