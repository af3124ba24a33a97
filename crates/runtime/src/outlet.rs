//! Where one channel's deliveries leave: the channel's providers in failover order with their
//! rate limiters, the per-recipient-domain limiter (email), and the send slots that bound the
//! channel's concurrency, with some kept for urgent sends. It owns waiting for a turn to send;
//! what is sent and how the result is recorded belongs to the dispatcher.

use std::sync::Arc;

use herald_channels::{Provider, SendCommand, Target};
use herald_domain::Channel;
use herald_store::StoreError;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::ChannelSettings;
use crate::ratelimit::Limiter;

/// Where one channel's deliveries leave: its providers, rate limits and send slots ("lane" is
/// kept for the per-user lanes that decide).
pub(crate) struct Outlet {
    /// Providers in failover order, each with its own rate limiter.
    pub(crate) providers: Vec<(Arc<dyn Provider>, Option<Limiter>)>,
    /// Per-recipient-domain limiter (email).
    domains: Option<Limiter>,
    permits: Semaphore,
    /// Slots only critical and transactional sends may take, so that a flood of marketing
    /// filling `permits` never makes them wait.
    urgent: Semaphore,
    pub(crate) settings: ChannelSettings,
}

impl Outlet {
    /// The outlet of `channel` through `providers`, limited as its settings say.
    pub(crate) fn new(channel: Channel, providers: &[Arc<dyn Provider>], settings: ChannelSettings) -> Self {
        Self {
            providers: providers.iter().map(|p| (p.clone(), settings.rate_limit.map(Limiter::new))).collect(),
            domains: settings.domain_rate_limit.filter(|_| channel == Channel::Email).map(Limiter::new),
            permits: Semaphore::new(settings.max_in_flight.max(1)),
            urgent: Semaphore::new((settings.max_in_flight / 4).max(1)),
            settings,
        }
    }

    /// Waits for the provider's and the recipient domain's rates and for a send slot (critical and
    /// transactional sends may also take the slots kept for them); whether it had to wait.
    pub(crate) async fn wait_turn(
        &self,
        provider: &str,
        limiter: Option<&Limiter>,
        cmd: &SendCommand,
    ) -> Result<(SemaphorePermit<'_>, bool), StoreError> {
        let mut waited = false;
        let channel = cmd.channel.as_str();
        if let Some(l) = limiter
            && l.acquire(provider).await
        {
            waited = true;
            metrics::counter!("herald_rate_limited_total", "channel" => channel, "scope" => "provider").increment(1);
        }
        if let (Some(l), Some(domain)) = (&self.domains, cmd.targets.iter().find_map(email_domain))
            && l.acquire(domain).await
        {
            waited = true;
            metrics::counter!("herald_rate_limited_total", "channel" => channel, "scope" => "domain").increment(1);
        }
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok((permit, waited));
        }
        let urgent = cmd.class.is_urgent();
        if urgent && let Ok(permit) = self.urgent.try_acquire() {
            return Ok((permit, waited));
        }
        let permit = if urgent {
            tokio::select! {
                p = self.permits.acquire() => p,
                p = self.urgent.acquire() => p,
            }
        } else {
            self.permits.acquire().await
        };
        Ok((permit.map_err(|_| StoreError::Closed)?, true))
    }
}

/// The recipient's domain, for per-domain email limits.
fn email_domain(t: &Target) -> Option<&str> {
    match t {
        Target::Email(a) => a.rsplit_once('@').map(|(_, domain)| domain),
        _ => None,
    }
}
