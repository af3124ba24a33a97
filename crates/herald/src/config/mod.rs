//! Configuration: one TOML file plus `HERALD_...` environment overrides (`__` between levels).
//! With no file at all Herald runs on SQLite under `./herald-data`.

mod channels;
mod outbound;
mod strict;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use herald_channels::outbound::Policy;
use herald_domain::Channel;
use herald_domain::preferences::{FrequencyCap, PreferenceDefaults, QuietHours};
use serde::{Deserialize, Serialize};

pub use channels::*;
pub use outbound::Outbound;
pub use strict::{ConfigError, ENV_ONLY, Problem, Source};
use strict::{ENV_PREFIX, Sources, read};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Where SQLite, keys and the dev outbox live.
    pub data_dir: PathBuf,
    /// Base of unsubscribe and tracking links.
    pub public_url: String,
    /// Empty: SQLite in `data_dir`.
    pub database_url: String,
    /// Empty: in-process runtime.
    pub redis_url: String,
    /// What webhook and web push targets may reach.
    pub outbound: Outbound,
    /// Server-wide preference defaults.
    pub defaults: Defaults,
    /// Per-channel settings.
    pub channels: Channels,
    /// Per-user lanes (default: one per core; each lane decides whole batches, so more lanes only split them).
    pub lanes: Option<usize>,
    /// Delivery safety limits and shutdown.
    pub delivery: Delivery,
    /// Load shedding.
    pub overload: Overload,
    /// The work queue's claims.
    pub queue: Queue,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./herald-data"),
            public_url: "http://127.0.0.1:8080".into(),
            database_url: String::new(),
            redis_url: String::new(),
            outbound: Outbound::default(),
            defaults: Defaults::default(),
            channels: Channels::default(),
            lanes: None,
            delivery: Delivery::default(),
            overload: Overload::default(),
            queue: Queue::default(),
        }
    }
}

/// `[delivery]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Delivery {
    /// Most sends per user per interrupting channel per rolling hour, whatever the class (0: off).
    pub hourly_ceiling: u32,
    /// How long SIGTERM waits for sends in flight before exiting.
    pub shutdown_grace_seconds: u64,
}

impl Default for Delivery {
    fn default() -> Self {
        Self { hourly_ceiling: 100, shutdown_grace_seconds: 30 }
    }
}

/// `[queue]`: how work claimed for a decision is held.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Queue {
    /// How long a claim lasts unless renewed: after a crash, claimed work is taken over this long
    /// after it was claimed (1 to 3600).
    pub lease_seconds: u64,
}

impl Default for Queue {
    fn default() -> Self {
        Self { lease_seconds: 30 }
    }
}

/// `[overload]`: delivery queue depths at which classes are shed (deferred), least urgent first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Overload {
    /// Depth from which marketing waits.
    pub shed_marketing_at: usize,
    /// Depth from which social waits too.
    pub shed_social_at: usize,
    /// Depth from which transactional waits too (critical never does).
    pub shed_transactional_at: usize,
    /// How long a shed notification waits before it is decided again.
    pub defer_seconds: u64,
}

impl Default for Overload {
    fn default() -> Self {
        let t = herald_runtime::Thresholds::default();
        Self {
            shed_marketing_at: t.marketing,
            shed_social_at: t.social,
            shed_transactional_at: t.transactional,
            defer_seconds: 60,
        }
    }
}

/// `[defaults]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Defaults {
    /// Default frequency cap.
    pub frequency_cap: FrequencyCap,
    /// `"none"` or `{ start, end }`.
    pub quiet_hours: QuietHoursSetting,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            frequency_cap: FrequencyCap { max: 3, window_seconds: 3600 },
            quiet_hours: QuietHoursSetting::Named("none".into()),
        }
    }
}

/// Quiet hours in configuration: the word `none` or a window.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum QuietHoursSetting {
    /// `"none"`.
    Named(String),
    /// A window.
    Window(QuietHours),
}

/// Not derived as `untagged`: that would answer a misspelt key inside the window with "did not
/// match any variant" instead of naming it.
impl<'de> Deserialize<'de> for QuietHoursSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Setting;
        impl<'de> serde::de::Visitor<'de> for Setting {
            type Value = QuietHoursSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"none\" or { start = \"HH:MM\", end = \"HH:MM\" }")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<QuietHoursSetting, E> {
                Ok(QuietHoursSetting::Named(s.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<QuietHoursSetting, A::Error> {
                QuietHours::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(QuietHoursSetting::Window)
            }
        }
        d.deserialize_any(Setting)
    }
}

impl Config {
    /// Loads defaults, then the file (if any), then `HERALD_*` variables. A key that is not a
    /// setting, in the file or as a variable, is an error naming it and where it was set.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        let mut sources = Sources { file: None };
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::NoFile(f.to_path_buf()));
            }
            // `file_exact`: `Toml::file` would also look for the name in parent directories.
            fig = fig.merge(Toml::file_exact(f));
            sources.file = Some((f, Figment::from(Toml::file_exact(f))));
        }
        let env_only: Vec<String> = ENV_ONLY.iter().map(|v| v[ENV_PREFIX.len()..].to_ascii_lowercase()).collect();
        let env_only: Vec<&str> = env_only.iter().map(String::as_str).collect();
        let fig = fig.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&env_only));
        let config = read(&fig, &sources)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let QuietHoursSetting::Named(n) = &self.defaults.quiet_hours
            && n != "none"
        {
            return Err(ConfigError::Invalid(format!(
                "defaults.quiet_hours must be \"none\" or {{ start, end }}, not {n:?}"
            )));
        }
        if let QuietHoursSetting::Window(w) = &self.defaults.quiet_hours
            && w.start == w.end
        {
            return Err(ConfigError::Invalid("defaults.quiet_hours: start and end must differ".into()));
        }
        if !(self.database_url.is_empty() || self.database_url.starts_with("sqlite:")) {
            return Err(ConfigError::Invalid(
                "database_url: this build stores in SQLite; leave it empty (SQLite in data_dir) or use sqlite://PATH"
                    .into(),
            ));
        }
        if !url::Url::parse(&self.public_url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
            return Err(ConfigError::Invalid(format!(
                "public_url must be an absolute http(s) URL that mail clients can reach, not {:?}",
                self.public_url
            )));
        }
        if !self.redis_url.is_empty() {
            return Err(ConfigError::Invalid(
                "redis_url: the Redis runtime is not available in this build yet; leave it empty".into(),
            ));
        }
        if !(1..=3600).contains(&self.queue.lease_seconds) {
            return Err(ConfigError::Invalid(format!(
                "queue.lease_seconds must be from 1 to 3600, not {}",
                self.queue.lease_seconds
            )));
        }
        let cap = self.defaults.frequency_cap;
        if cap.max == 0 || cap.window_seconds == 0 {
            return Err(ConfigError::Invalid("defaults.frequency_cap needs max and window_seconds above 0".into()));
        }
        for (channel, c) in self.channel_configs() {
            let sections = [
                ("from", c.from.is_some(), Channel::Email),
                ("smtp", c.smtp.is_some(), Channel::Email),
                ("apns", c.apns.is_some(), Channel::Push),
                ("fcm", c.fcm.is_some(), Channel::Push),
                ("vapid_private_key_path", c.vapid_private_key_path.is_some(), Channel::WebPush),
                ("subject", c.subject.is_some(), Channel::WebPush),
                ("twilio", c.twilio.is_some(), Channel::Sms),
                ("max_segments", c.max_segments.is_some(), Channel::Sms),
            ];
            if let Some((key, _, owner)) = sections.iter().find(|(_, set, owner)| *set && *owner != channel) {
                return Err(ConfigError::Invalid(format!(
                    "channels.{channel}.{key} is not a setting of {channel}; it belongs under channels.{owner}"
                )));
            }
            if c.max_segments.is_some_and(|m| !(1..=10).contains(&m)) {
                return Err(ConfigError::Invalid("channels.sms.max_segments must be between 1 and 10".into()));
            }
            let providers = c.providers(channel);
            if providers.is_empty() {
                return Err(ConfigError::Invalid(format!("channels.{channel}.provider: name at least one provider")));
            }
            if let Some(dup) = providers.iter().enumerate().find(|(i, p)| providers[..*i].contains(p)) {
                return Err(ConfigError::Invalid(format!("channels.{channel}.provider lists {} twice", dup.1)));
            }
            for (name, rate) in [("rate_limit", c.rate_limit), ("domain_rate_limit", c.domain_rate_limit)] {
                if rate.is_some_and(|r| !(r.per_second > 0.0 && r.per_second.is_finite()) || r.burst == Some(0)) {
                    return Err(ConfigError::Invalid(format!(
                        "channels.{channel}.{name}: per_second must be above 0 and burst at least 1"
                    )));
                }
            }
            if c.retry_schedule_seconds.iter().any(|s| *s > MAX_RETRY_DELAY) || c.timeout_seconds > MAX_RETRY_DELAY {
                return Err(ConfigError::Invalid(format!(
                    "channels.{channel}: retry delays and the timeout are at most {MAX_RETRY_DELAY} seconds (a week)"
                )));
            }
            if c.breaker.failure_threshold == 0 {
                return Err(ConfigError::Invalid(format!(
                    "channels.{channel}.breaker.failure_threshold must be at least 1"
                )));
            }
        }
        let o = &self.overload;
        if !(o.shed_marketing_at <= o.shed_social_at && o.shed_social_at <= o.shed_transactional_at) {
            return Err(ConfigError::Invalid(
                "overload: shed_marketing_at <= shed_social_at <= shed_transactional_at (marketing is shed first)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Each channel's section.
    pub fn channel_configs(&self) -> [(Channel, &ChannelConfig); 5] {
        let c = &self.channels;
        [
            (Channel::Push, &c.push),
            (Channel::WebPush, &c.web_push),
            (Channel::Email, &c.email),
            (Channel::Sms, &c.sms),
            (Channel::Webhook, &c.webhook),
        ]
    }

    /// Each channel's providers in failover order, described for people: the start-up log and
    /// `herald config check` show them.
    pub fn provider_chains(&self) -> Vec<ProviderChain> {
        let inbox =
            ProviderChain { channel: Channel::InApp, names: vec!["inbox".into()], described: vec!["inbox".into()] };
        let others = self.channel_configs().into_iter().map(|(channel, section)| {
            let names = section.providers(channel);
            let described = names.iter().map(|name| self.describe_provider(channel, section, name)).collect();
            ProviderChain { channel, names, described }
        });
        std::iter::once(inbox).chain(others).collect()
    }

    /// `name (what it does)`, from the provider's section.
    fn describe_provider(&self, channel: Channel, section: &ChannelConfig, name: &str) -> String {
        let detail = match (channel, name) {
            (_, "dev") => format!("writes to {}", self.data_dir.join("outbox").join(channel.as_str()).display()),
            (Channel::Webhook, "webhook") => "signed POSTs to each user's registered webhook URLs".into(),
            (Channel::Email, "smtp") => {
                let smtp = section.smtp.clone().unwrap_or_default();
                let tls = match smtp.tls {
                    herald_channels::smtp::SmtpTls::None => "no TLS",
                    herald_channels::smtp::SmtpTls::Starttls => "starttls",
                    herald_channels::smtp::SmtpTls::Tls => "tls",
                };
                format!("{}:{}, {tls}", smtp.host, smtp.port)
            }
            (Channel::Push, "native") => {
                let apns = section.apns.as_ref().map(|a| format!("APNs {} for {}", a.endpoint, a.topic));
                let fcm = section.fcm.as_ref().map(|f| format!("FCM {}", f.endpoint));
                apns.into_iter().chain(fcm).collect::<Vec<_>>().join("; ")
            }
            (Channel::WebPush, "web_push") => format!("VAPID subject {}", section.subject.as_deref().unwrap_or("")),
            (Channel::Sms, "twilio") => {
                let twilio = section.twilio.clone().unwrap_or_default();
                format!("from {} via {}", twilio.from, twilio.base_url)
            }
            _ => return name.to_owned(),
        };
        format!("{name} ({detail})")
    }

    /// What webhook and web push sends may reach.
    pub fn outbound_policy(&self) -> Policy {
        Policy::new(self.outbound.allow_private.clone())
    }

    /// The runtime's overload settings.
    pub fn overload_settings(&self) -> herald_runtime::OverloadSettings {
        let o = &self.overload;
        herald_runtime::OverloadSettings {
            thresholds: herald_runtime::Thresholds {
                marketing: o.shed_marketing_at,
                social: o.shed_social_at,
                transactional: o.shed_transactional_at,
            },
            defer: jiff::SignedDuration::from_secs(o.defer_seconds.max(1) as i64),
        }
    }

    /// The preference defaults for the engine.
    pub fn preference_defaults(&self) -> PreferenceDefaults {
        PreferenceDefaults {
            quiet_hours: match &self.defaults.quiet_hours {
                QuietHoursSetting::Window(w) => Some(*w),
                QuietHoursSetting::Named(_) => None,
            },
            frequency_cap: Some(self.defaults.frequency_cap),
        }
    }

    /// Dispatch settings per channel.
    pub fn channel_settings(&self) -> Vec<(Channel, herald_runtime::ChannelSettings)> {
        let rate = |r: Option<RateConfig>| {
            r.map(|r| herald_runtime::Rate {
                per_second: r.per_second,
                burst: r.burst.unwrap_or(r.per_second.ceil().max(1.0) as u32),
            })
        };
        self.channel_configs()
            .into_iter()
            .map(|(ch, cfg)| {
                (
                    ch,
                    herald_runtime::ChannelSettings {
                        retry_schedule: cfg.retry_schedule_seconds.iter().map(|s| Duration::from_secs(*s)).collect(),
                        timeout: Duration::from_secs(cfg.timeout_seconds.max(1)),
                        max_in_flight: cfg.max_in_flight.max(1),
                        breaker: herald_runtime::BreakerSettings {
                            failure_threshold: cfg.breaker.failure_threshold,
                            open_for: jiff::SignedDuration::from_secs(cfg.breaker.open_seconds.max(1) as i64),
                        },
                        rate_limit: rate(cfg.rate_limit),
                        domain_rate_limit: rate(cfg.domain_rate_limit),
                        daily_budget: cfg.daily_budget.or(cfg.twilio.as_ref().and_then(|t| t.daily_budget)),
                        max_segments: cfg.max_segments,
                    },
                )
            })
            .collect()
    }
}
