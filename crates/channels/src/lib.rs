//! Channel adapters. Each provider implements [`Provider`]: it takes one [`SendCommand`] and says
//! whether the send succeeded, failed for now (retry) or failed for good. Consent is checked by
//! the caller just before `send`, so adapters never read preferences.

pub mod dev;
pub mod webhook;

use async_trait::async_trait;
use herald_domain::Channel;
use uuid::Uuid;

/// Where one send goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A webhook endpoint and its Standard Webhooks secret.
    Webhook {
        /// Device id.
        device_id: Uuid,
        /// URL to POST to.
        url: String,
        /// `whsec_...` secret.
        secret: String,
    },
    /// An address on a channel without a live provider (email, phone, push token...).
    Address(String),
}

/// One send, as the dispatcher hands it to a provider.
#[derive(Debug, Clone)]
pub struct SendCommand {
    /// Deterministic delivery id: the provider's idempotency key.
    pub delivery_id: Uuid,
    /// Channel.
    pub channel: Channel,
    /// The user.
    pub user_id: String,
    /// Rendered payload, channel specific.
    pub payload: serde_json::Value,
    /// Destinations (a user may have several devices).
    pub targets: Vec<Target>,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying (timeout, 5xx, 429).
    #[error("transient: {message}")]
    Transient {
        /// What went wrong.
        message: String,
        /// The provider's `Retry-After`, in seconds.
        retry_after: Option<u64>,
    },
    /// Will never work as is (4xx, bad address).
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A provider for one channel.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Short name shown in delivery status (`webhook`, `dev`...).
    fn name(&self) -> &'static str;
    /// Sends to every target; an error means at least one target failed.
    async fn send(&self, cmd: &SendCommand) -> Result<(), SendError>;
    /// What one circuit breaker guards for this send: the provider as a whole by default.
    fn circuit(&self, _cmd: &SendCommand) -> String {
        self.name().to_owned()
    }
}

/// Installs the process-wide TLS crypto provider (ring); harmless when already installed.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
