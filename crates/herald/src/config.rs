//! Configuration: one TOML file plus `HERALD_...` environment overrides (`__` between levels).
//! With no file at all Herald runs on SQLite under `./herald-data`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use herald_domain::preferences::{FrequencyCap, PreferenceDefaults, QuietHours};
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
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
    /// Server-wide preference defaults.
    pub defaults: Defaults,
    /// Per-channel settings.
    pub channels: Channels,
    /// Per-user lanes (default: 4 per core).
    pub lanes: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./herald-data"),
            public_url: "http://127.0.0.1:8080".into(),
            database_url: String::new(),
            redis_url: String::new(),
            defaults: Defaults::default(),
            channels: Channels::default(),
            lanes: None,
        }
    }
}

/// `[defaults]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QuietHoursSetting {
    /// `"none"`.
    Named(String),
    /// A window.
    Window(QuietHours),
}

/// Retry and timeout settings every channel takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelConfig {
    /// Delays between attempts; when exhausted the delivery fails.
    pub retry_schedule_seconds: Vec<u64>,
    /// Provider request timeout.
    pub timeout_seconds: u64,
}

impl ChannelConfig {
    fn new(schedule: &[u64]) -> Self {
        Self { retry_schedule_seconds: schedule.to_vec(), timeout_seconds: 15 }
    }
}

/// `[channels]`; provider sections of later channels are accepted and kept for them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
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
            sms: ChannelConfig::new(&[60, 600]),
            webhook: ChannelConfig::new(&[5, 300, 1800, 7200, 18000]),
        }
    }
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads defaults, then the file (if any), then `HERALD_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError(format!("{} does not exist", f.display())));
            }
            fig = fig.merge(Toml::file(f));
        }
        let env = Env::prefixed("HERALD_").split("__").ignore(&["config", "api_key", "url"]);
        let config: Config = fig.merge(env).extract().map_err(|e| ConfigError(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let QuietHoursSetting::Named(n) = &self.defaults.quiet_hours
            && n != "none"
        {
            return Err(ConfigError(format!("defaults.quiet_hours must be \"none\" or {{ start, end }}, not {n:?}")));
        }
        if let QuietHoursSetting::Window(w) = &self.defaults.quiet_hours
            && w.start == w.end
        {
            return Err(ConfigError("defaults.quiet_hours: start and end must differ".into()));
        }
        if !self.redis_url.is_empty() {
            return Err(ConfigError(
                "redis_url: the Redis runtime is not available in this build yet; leave it empty".into(),
            ));
        }
        let cap = self.defaults.frequency_cap;
        if cap.max == 0 || cap.window_seconds == 0 {
            return Err(ConfigError("defaults.frequency_cap needs max and window_seconds above 0".into()));
        }
        Ok(())
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

    /// Retry settings per channel.
    pub fn channel_settings(&self) -> Vec<(herald_domain::Channel, herald_runtime::ChannelSettings)> {
        use herald_domain::Channel;
        let c = &self.channels;
        [
            (Channel::Push, &c.push),
            (Channel::WebPush, &c.web_push),
            (Channel::Email, &c.email),
            (Channel::Sms, &c.sms),
            (Channel::Webhook, &c.webhook),
        ]
        .into_iter()
        .map(|(ch, cfg)| {
            (
                ch,
                herald_runtime::ChannelSettings {
                    retry_schedule: cfg.retry_schedule_seconds.iter().map(|s| Duration::from_secs(*s)).collect(),
                    timeout: Duration::from_secs(cfg.timeout_seconds.max(1)),
                },
            )
        })
        .collect()
    }
}

#[cfg(test)]
// figment's Jail fixes the closure's error type to its own, which is large; nothing to shrink here.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn file_and_environment_layer_over_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "herald.toml",
                r#"
                listen = "0.0.0.0:9000"
                [defaults]
                frequency_cap = { max = 5, window_seconds = 600 }
                quiet_hours = { start = "22:00", end = "07:00" }
                [channels.webhook]
                retry_schedule_seconds = [1, 2]
                timeout_seconds = 3
                [channels.email]
                provider = "smtp"
                retry_schedule_seconds = [60]
                timeout_seconds = 15
                "#,
            )?;
            jail.set_env("HERALD_LISTEN", "127.0.0.1:0");
            jail.set_env("HERALD_CHANNELS__WEBHOOK__TIMEOUT_SECONDS", "9");
            let c = Config::load(Some(Path::new("herald.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.listen, "127.0.0.1:0");
            assert_eq!(c.channels.webhook.retry_schedule_seconds, vec![1, 2]);
            assert_eq!(c.channels.webhook.timeout_seconds, 9);
            assert_eq!(c.defaults.frequency_cap.max, 5);
            assert!(c.preference_defaults().quiet_hours.is_some());
            Ok(())
        });
    }

    #[test]
    fn no_file_gives_the_embedded_defaults() {
        figment::Jail::expect_with(|_| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.data_dir, PathBuf::from("./herald-data"));
            assert!(c.database_url.is_empty());
            assert_eq!(c.channels.webhook.retry_schedule_seconds, vec![5, 300, 1800, 7200, 18000]);
            Ok(())
        });
    }
}
