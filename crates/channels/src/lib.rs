//! Channel adapters. Each provider implements [`Provider`]: it takes one [`SendCommand`] and says
//! whether the send succeeded, failed for now (retry) or failed for good. Consent is checked by
//! the caller just before `send`, so adapters never read preferences.

pub mod apns;
pub mod dev;
pub mod fcm;
pub mod outbound;
mod outcome;
pub mod payload;
pub mod push;
pub mod smtp;
pub mod twilio;
pub mod unsubscribe;
pub mod web_push;
pub mod webhook;

use async_trait::async_trait;
use herald_domain::{Channel, Class};
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
    /// An email address.
    Email(String),
    /// An E.164 phone number.
    Phone(String),
    /// An Apple device token (hex).
    Apns {
        /// Device id.
        device_id: Uuid,
        /// The token.
        token: String,
    },
    /// A Firebase registration token.
    Fcm {
        /// Device id.
        device_id: Uuid,
        /// The token.
        token: String,
    },
    /// A browser push subscription.
    WebPush {
        /// Device id.
        device_id: Uuid,
        /// The push service URL.
        endpoint: String,
        /// The subscription's P-256 public key, base64url.
        p256dh: String,
        /// The subscription's auth secret, base64url.
        auth: String,
    },
}

impl Target {
    /// The address as logs and the dev outbox show it.
    pub fn address(&self) -> &str {
        match self {
            Target::Webhook { url, .. } => url,
            Target::Email(a) | Target::Phone(a) => a,
            Target::Apns { token, .. } | Target::Fcm { token, .. } => token,
            Target::WebPush { endpoint, .. } => endpoint,
        }
    }

    /// The device behind the target, when it is one.
    pub fn device_id(&self) -> Option<Uuid> {
        match self {
            Target::Webhook { device_id, .. }
            | Target::Apns { device_id, .. }
            | Target::Fcm { device_id, .. }
            | Target::WebPush { device_id, .. } => Some(*device_id),
            Target::Email(_) | Target::Phone(_) => None,
        }
    }
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
    /// The notification's class (push priority, web push urgency).
    pub class: Class,
    /// Replaces an earlier notification with the same key on the device (`apns-collapse-id`...).
    pub collapse_key: Option<String>,
    /// How long the message is worth delivering.
    pub ttl: Option<std::time::Duration>,
    /// One-click unsubscribe link (email), RFC 8058.
    pub unsubscribe_url: Option<String>,
}

/// What a successful send reports besides success.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// Devices the provider said are gone for good (410, unregistered): Herald removes them.
    pub gone: Vec<Uuid>,
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
    /// Every target is gone for good (unregistered tokens, expired subscriptions).
    #[error("gone: {message}")]
    Gone {
        /// What the provider said.
        message: String,
        /// The devices to remove.
        devices: Vec<Uuid>,
    },
    /// The address itself will not take messages (the mailbox does not exist, the number replied
    /// STOP): Herald blocks it so that nothing more is tried.
    #[error("unreachable: {message}")]
    Unreachable {
        /// What the provider said.
        message: String,
        /// Why the address is blocked.
        block: AddressBlock,
    },
}

/// Whether an HTTP status asks for patience (408, 429, 5xx) rather than a different request.
pub fn asks_for_patience(status: reqwest::StatusCode) -> bool {
    use reqwest::StatusCode;
    status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS
}

impl SendError {
    /// The one reading of an HTTP refusal that a provider does not explain further: transient
    /// when the status [asks for patience](asks_for_patience), else permanent.
    pub fn from_status(status: reqwest::StatusCode, message: String, retry_after: Option<u64>) -> Self {
        if asks_for_patience(status) {
            SendError::Transient { message, retry_after }
        } else {
            SendError::Permanent(message)
        }
    }
}

/// Why a provider says an address must not be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressBlock {
    /// It does not exist (an email hard bounce, an unknown number).
    HardBounce,
    /// Its owner opted out at the provider (SMS STOP); lifted by START.
    Stopped,
}

/// A provider for one channel.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Short name shown in delivery status (`webhook`, `dev`...).
    fn name(&self) -> &'static str;
    /// Sends to every target; an error means no target took it (a transient error: worth retrying).
    async fn send(&self, cmd: &SendCommand) -> Result<Sent, SendError>;
    /// What one circuit breaker guards for this send: the provider as a whole by default.
    fn circuit(&self, _cmd: &SendCommand) -> String {
        self.name().to_owned()
    }
}

/// The longest wait a provider's `Retry-After` can ask for: an endpoint must not park a delivery
/// for years (or overflow a clock) with a huge value.
pub const MAX_RETRY_AFTER: u64 = 24 * 3600;

/// The `Retry-After` of a refusal in seconds, given as a number or as an HTTP date (a date
/// already past means now), at most [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds = match value.parse::<u64>() {
        Ok(seconds) => seconds,
        Err(_) => {
            let at = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok()?;
            u64::try_from(at.as_second() - jiff::Timestamp::now().as_second()).unwrap_or(0)
        }
    };
    Some(seconds.min(MAX_RETRY_AFTER))
}

/// How long a message is worth delivering: the command's TTL, else a day for critical and
/// transactional (a security alert or a receipt still matters when the device comes back the same
/// day) and an hour otherwise (an hour-old "new reply" is still useful, a day-old one is noise;
/// the inbox keeps it anyway). Push services store a message for this long while a device is off.
pub(crate) fn ttl_seconds(cmd: &SendCommand) -> u64 {
    cmd.ttl.map(|d| d.as_secs()).unwrap_or(match cmd.class {
        Class::Critical | Class::Transactional => 86_400,
        Class::Social | Class::Marketing => 3_600,
    })
}

/// The HTTP client every provider uses: Herald's user agent, no redirects (a provider that
/// redirects is misconfigured, and a webhook must not be bounced elsewhere), bounded waits.
pub(crate) fn http_client(timeout: std::time::Duration) -> reqwest::ClientBuilder {
    init_tls();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(std::time::Duration::from_secs(10)))
        .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Installs the process-wide TLS crypto provider (ring); harmless when already installed.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, RETRY_AFTER};

    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, " 120 ".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(120));
        headers.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(0), "a date in the past means now");
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(90);
        let date = jiff::fmt::rfc2822::DateTimePrinter::new().timestamp_to_rfc9110_string(&later).unwrap();
        headers.insert(RETRY_AFTER, date.parse().unwrap());
        assert!(retry_after(&headers).is_some_and(|s| (85..=90).contains(&s)));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "300000000000".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER), "a hostile value is capped");
        headers.insert(RETRY_AFTER, "Sat, 01 Jan 2050 00:00:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn one_reading_of_an_http_refusal() {
        use reqwest::StatusCode;
        for patient in [408, 429, 500, 502, 503, 504] {
            let e = SendError::from_status(StatusCode::from_u16(patient).unwrap(), "m".into(), Some(3));
            assert_eq!(e, SendError::Transient { message: "m".into(), retry_after: Some(3) }, "{patient}");
        }
        for refused in [400, 401, 403, 404, 410, 413, 422] {
            let e = SendError::from_status(StatusCode::from_u16(refused).unwrap(), "m".into(), None);
            assert_eq!(e, SendError::Permanent("m".into()), "{refused}");
        }
    }
}
