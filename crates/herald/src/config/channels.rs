//! `[channels.*]`: dispatch settings per channel and the provider sections each channel takes.

use std::path::PathBuf;

use herald_domain::Channel;
use serde::{Deserialize, Serialize};

/// Dispatch settings every channel takes, and the sections of the providers each channel can use
/// (a section belongs to one channel; [`Config::load`](super::Config::load) refuses it elsewhere).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// The provider, or several in failover order; unset: the channel's real provider when its
    /// section is configured, else `dev` (see [`ChannelConfig::providers`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderList>,
    /// Delays between attempts; when exhausted the delivery fails (a dead letter).
    pub retry_schedule_seconds: Vec<u64>,
    /// Provider request timeout.
    pub timeout_seconds: u64,
    /// Sends in flight at once on the channel.
    pub max_in_flight: usize,
    /// Circuit breaker of each provider.
    pub breaker: BreakerConfig,
    /// Each provider's rate (token bucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateConfig>,
    /// Email: each recipient domain's rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_rate_limit: Option<RateConfig>,
    /// Sends per UTC day across all users; over it: suppressed, reason `sms_budget`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_budget: Option<u32>,
    /// Email: the `From` of every message, e.g. `Herald <noreply@example.com>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Email: the SMTP relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpSection>,
    /// Push: Apple devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apns: Option<ApnsSection>,
    /// Push: Android (Firebase) devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fcm: Option<FcmSection>,
    /// Web push: the VAPID key file (PKCS#8 PEM), created when absent; relative to `data_dir`
    /// (default `vapid.pem` there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vapid_private_key_path: Option<PathBuf>,
    /// Web push: the VAPID `sub` claim, `mailto:` or `https:`; setting it turns real web push on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// SMS: Twilio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twilio: Option<TwilioSection>,
    /// SMS: the most segments one message may take; a longer body is shortened to fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_segments: Option<u32>,
}

impl ChannelConfig {
    fn new(schedule: &[u64]) -> Self {
        Self {
            retry_schedule_seconds: schedule.to_vec(),
            timeout_seconds: 15,
            max_in_flight: 64,
            breaker: BreakerConfig::default(),
            ..Self::default()
        }
    }

    /// The provider names in failover order: the configured ones, else the channel's real
    /// provider when its section is filled in, else `dev`.
    pub fn providers(&self, channel: Channel) -> Vec<String> {
        match &self.provider {
            Some(ProviderList::One(p)) => vec![p.clone()],
            Some(ProviderList::Many(ps)) => ps.clone(),
            None => {
                let real = match channel {
                    Channel::Push => (self.apns.is_some() || self.fcm.is_some()).then_some("native"),
                    Channel::Email => self.smtp.is_some().then_some("smtp"),
                    Channel::Sms => self.twilio.as_ref().is_some_and(|t| !t.account_sid.is_empty()).then_some("twilio"),
                    Channel::WebPush => self.subject.is_some().then_some("web_push"),
                    Channel::Webhook => Some("webhook"),
                    Channel::InApp => None,
                };
                vec![real.unwrap_or("dev").to_owned()]
            }
        }
    }
}

/// `smtp = { host, port, tls, username, password, ca_path }`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSection {
    /// Relay host.
    pub host: String,
    /// Relay port.
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub tls: herald_channels::smtp::SmtpTls,
    /// Login, when the relay wants one.
    pub username: String,
    /// Password for `username`.
    pub password: String,
    /// A CA certificate (PEM) to trust besides the public ones, for a relay with a private CA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_path: Option<PathBuf>,
}

impl Default for SmtpSection {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 25,
            tls: herald_channels::smtp::SmtpTls::None,
            username: String::new(),
            password: String::new(),
            ca_path: None,
        }
    }
}

/// `[channels.push.apns]`: token-based authentication with a `.p8` key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApnsSection {
    /// `https://api.push.apple.com`, `https://api.sandbox.push.apple.com`; `http://` = cleartext HTTP/2 (tests).
    pub endpoint: String,
    /// The `AuthKey_<key id>.p8` file.
    pub key_path: PathBuf,
    /// The key's id.
    pub key_id: String,
    /// The Apple developer team id.
    pub team_id: String,
    /// The app's bundle id.
    pub topic: String,
}

impl Default for ApnsSection {
    fn default() -> Self {
        Self {
            endpoint: "https://api.push.apple.com".into(),
            key_path: PathBuf::from("AuthKey.p8"),
            key_id: String::new(),
            team_id: String::new(),
            topic: String::new(),
        }
    }
}

/// `[channels.push.fcm]`: FCM HTTP v1 with a service account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FcmSection {
    /// `https://fcm.googleapis.com`.
    pub endpoint: String,
    /// The service account JSON key file; its `token_uri` is used for OAuth2.
    pub service_account_path: PathBuf,
}

impl Default for FcmSection {
    fn default() -> Self {
        Self {
            endpoint: "https://fcm.googleapis.com".into(),
            service_account_path: PathBuf::from("service-account.json"),
        }
    }
}

/// `[channels.sms.twilio]`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwilioSection {
    /// `https://api.twilio.com`.
    pub base_url: String,
    /// `AC...`.
    pub account_sid: String,
    /// The account's auth token (also verifies Twilio's callbacks).
    pub auth_token: String,
    /// The sending number (E.164) or a Messaging Service SID (`MG...`).
    pub from: String,
    /// Messages per UTC day, all users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_budget: Option<u32>,
    /// Herald's answer to HELP / INFO; none: Twilio's own answer stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help_text: Option<String>,
}

impl Default for TwilioSection {
    fn default() -> Self {
        Self {
            base_url: "https://api.twilio.com".into(),
            account_sid: String::new(),
            auth_token: String::new(),
            from: String::new(),
            daily_budget: None,
            help_text: None,
        }
    }
}

impl std::fmt::Debug for SmtpSection {
    /// Leaves the password out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("ca_path", &self.ca_path)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TwilioSection {
    /// Leaves the auth token out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioSection")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("from", &self.from)
            .field("daily_budget", &self.daily_budget)
            .finish_non_exhaustive()
    }
}

/// `provider = "smtp"` or `provider = ["smtp", "dev"]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a provider name or a list of them in failover order, e.g. \"smtp\" or [\"smtp\", \"dev\"]"
)]
pub enum ProviderList {
    /// One provider.
    One(String),
    /// Providers in failover order.
    Many(Vec<String>),
}

/// `breaker = { failure_threshold, open_seconds }`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Transient failures in a row that open the circuit.
    pub failure_threshold: u32,
    /// Seconds it stays open before one probe.
    pub open_seconds: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failure_threshold: 5, open_seconds: 30 }
    }
}

/// `{ per_second, burst }`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Sustained sends per second.
    pub per_second: f64,
    /// Largest burst (default: one second's worth).
    #[serde(default)]
    pub burst: Option<u32>,
}

/// `[channels]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Channels {
    /// Mobile push.
    pub push: ChannelConfig,
    /// Browser push.
    pub web_push: ChannelConfig,
    /// Email.
    pub email: ChannelConfig,
    /// SMS.
    pub sms: ChannelConfig,
    /// Webhooks.
    pub webhook: ChannelConfig,
}

impl Default for Channels {
    fn default() -> Self {
        Self {
            push: ChannelConfig::new(&[30, 120]),
            web_push: ChannelConfig::new(&[30]),
            email: ChannelConfig::new(&[60, 300, 1800]),
            sms: ChannelConfig { max_segments: Some(DEFAULT_MAX_SEGMENTS), ..ChannelConfig::new(&[60, 600]) },
            webhook: ChannelConfig::new(&[5, 300, 1800, 7200, 18000]),
        }
    }
}

/// A channel's providers in failover order.
#[derive(Debug, Clone)]
pub struct ProviderChain {
    /// The channel.
    pub channel: Channel,
    /// The providers' names.
    pub names: Vec<String>,
    /// Each provider with what it does, e.g. `smtp (smtp.example.com:587, starttls)`.
    pub described: Vec<String>,
}

impl std::fmt::Display for ProviderChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "channel {}: {}", self.channel, self.described.join(", then "))
    }
}

/// The most segments an SMS takes unless `channels.sms.max_segments` says otherwise.
pub const DEFAULT_MAX_SEGMENTS: u32 = 4;

/// The longest retry delay or timeout a channel may configure.
pub(super) const MAX_RETRY_DELAY: u64 = 7 * 24 * 3600;
