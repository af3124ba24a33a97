//! Configuration: one TOML file plus `HERALD_...` environment overrides (`__` between levels).
//! With no file at all Herald runs on SQLite under `./herald-data`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::error::Kind;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::Value;
use herald_channels::outbound::{IpNet, Policy, parse_network};
use herald_domain::Channel;
use herald_domain::preferences::{FrequencyCap, PreferenceDefaults, QuietHours};
use serde::{Deserialize, Serialize};

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
        }
    }
}

/// `[outbound]`: webhook URLs and web push endpoints are chosen by API callers, so Herald reaches
/// only public addresses for them unless a private network is allowed here.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Outbound {
    /// Networks reachable although private, loopback or link-local (a bare address is /32 or
    /// /128): a list, or one string separated by commas as an environment variable gives it.
    #[serde(deserialize_with = "networks")]
    pub allow_private: Vec<IpNet>,
}

/// Reads `allow_private`: `["10.0.0.0/8", "::1"]` or `"10.0.0.0/8,::1"`.
fn networks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    struct Networks;
    impl<'de> serde::de::Visitor<'de> for Networks {
        type Value = Vec<IpNet>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(
                "a list of networks such as [\"10.0.0.0/8\", \"fd00::/8\"], or one string of them separated by commas",
            )
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Vec<IpNet>, E> {
            s.split(',').filter(|n| !n.trim().is_empty()).map(|n| parse_network(n).map_err(E::custom)).collect()
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<IpNet>, A::Error> {
            let mut nets = Vec::new();
            while let Some(n) = seq.next_element::<String>()? {
                nets.push(parse_network(&n).map_err(serde::de::Error::custom)?);
            }
            Ok(nets)
        }
    }
    d.deserialize_any(Networks)
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

/// Dispatch settings every channel takes, and the sections of the providers each channel can use
/// (a section belongs to one channel; [`Config::load`] refuses it elsewhere).
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
const MAX_RETRY_DELAY: u64 = 7 * 24 * 3600;

/// `HERALD_` variables that are not configuration keys but are read by the binary itself: the
/// file to load, the admin API key (kept out of files on purpose), the CLI's server, the log
/// filter. Any other `HERALD_` variable must name a key.
pub const ENV_ONLY: [&str; 4] = ["HERALD_CONFIG", "HERALD_API_KEY", "HERALD_URL", "HERALD_LOG"];

/// The prefix of the variables that override keys.
const ENV_PREFIX: &str = "HERALD_";

/// Most problems reported at once.
const MAX_PROBLEMS: usize = 20;

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config` (or `HERALD_CONFIG`) names a file that is not there.
    #[error("configuration file {} does not exist", .0.display())]
    NoFile(PathBuf),
    /// What reading the file and the environment found: unknown keys, values of the wrong type,
    /// a file that is not TOML.
    #[error("invalid configuration:{}", list(.0))]
    Read(Vec<Problem>),
    /// A setting whose value is not allowed.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

fn list(problems: &[Problem]) -> String {
    match problems {
        [one] => format!(" {one}"),
        many => many.iter().map(|p| format!("\n  {p}")).collect(),
    }
}

/// Where a key was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The configuration file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
}

/// One thing wrong in the file or the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A key that is not a setting (a typo, or a setting of another section).
    UnknownKey {
        /// Its full dotted path, e.g. `channels.email.smpt`.
        path: Vec<String>,
        /// Where it was set, when known.
        source: Option<Source>,
        /// The known key at that level it is most likely a misspelling of.
        suggestion: Option<&'static str>,
        /// The known keys at that level.
        known: &'static [&'static str],
    },
    /// A value Herald cannot read: the wrong type, a missing field, a file that is not TOML.
    Value {
        /// The key's dotted path (empty for the file as a whole).
        path: Vec<String>,
        /// Where it was set, when known.
        source: Option<Source>,
        /// What is wrong.
        message: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::UnknownKey { path, source, suggestion, known } => {
                let dotted = path.join(".");
                match source {
                    Some(Source::File(file)) => write!(f, "unknown key `{dotted}` in {}", file.display())?,
                    Some(Source::Env(var)) => {
                        write!(f, "unknown environment variable {var} (`{dotted}` is not a setting)")?
                    }
                    None => write!(f, "unknown key `{dotted}`")?,
                }
                match (suggestion, source) {
                    (Some(s), Some(Source::Env(var))) => {
                        write!(f, "; did you mean `{s}` ({})?", env_var_with(var, path.len().saturating_sub(1), s))
                    }
                    (Some(s), _) => write!(f, "; did you mean `{s}`?"),
                    (None, Some(Source::Env(_)))
                        if path.len() == 1 && known.iter().any(|k| path[0].starts_with(&format!("{k}_"))) =>
                    {
                        write!(f, "; levels are separated by a double underscore, e.g. HERALD_CHANNELS__EMAIL__FROM")
                    }
                    (None, _) => write!(f, " (keys here: {})", known.join(", ")),
                }
            }
            Problem::Value { path, source, message } => match (source, path.is_empty()) {
                (Some(Source::Env(var)), _) => write!(f, "{var}: {message}"),
                (Some(Source::File(file)), true) => write!(f, "{}: {message}", file.display()),
                (Some(Source::File(file)), false) => write!(f, "`{}` in {}: {message}", path.join("."), file.display()),
                (None, true) => write!(f, "{message}"),
                (None, false) => write!(f, "`{}`: {message}", path.join(".")),
            },
        }
    }
}

/// `var` with its level `level` (after the prefix) replaced by `key`.
fn env_var_with(var: &str, level: usize, key: &str) -> String {
    let mut levels: Vec<String> = var[ENV_PREFIX.len()..].split("__").map(str::to_owned).collect();
    if let Some(l) = levels.get_mut(level) {
        *l = key.to_ascii_uppercase();
    }
    format!("{ENV_PREFIX}{}", levels.join("__"))
}

/// The known key `unknown` is most likely a misspelling of: a few edits away, or `unknown`
/// followed by a suffix (`timeout` for `timeout_seconds`).
fn closest(unknown: &str, known: &'static [&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (*k, strsim::damerau_levenshtein(unknown, k)))
        .filter(|(k, d)| *d <= (k.len().max(unknown.len()) / 3).max(1) || k.starts_with(&format!("{unknown}_")))
        .min_by_key(|(_, d)| *d)
        .map(|(k, _)| k)
}

/// The sources besides the defaults, to say where a key was set.
struct Sources<'a> {
    file: Option<(&'a Path, Figment)>,
}

impl Sources<'_> {
    /// Every source that sets `path`: environment variables first (they override the file); the
    /// file alone for the empty path (the file as a whole).
    fn of(&self, path: &[String]) -> Vec<Source> {
        let var = format!("{ENV_PREFIX}{}", path.join("__")).to_ascii_uppercase();
        let mut vars: Vec<String> = env_names()
            .filter(|name| {
                let upper = name.to_ascii_uppercase();
                !path.is_empty() && (upper == var || upper.starts_with(&format!("{var}__")))
            })
            .collect();
        vars.sort();
        let mut found: Vec<Source> = vars.into_iter().map(Source::Env).collect();
        if let Some((file, fig)) = &self.file
            && (path.is_empty() || fig.find_value(&path.join(".")).is_ok())
        {
            found.push(Source::File(file.to_path_buf()));
        }
        found
    }

    fn unknown(&self, path: &[String], known: &'static [&'static str]) -> Vec<Problem> {
        let suggestion = path.last().and_then(|key| closest(key, known));
        let problem = |source| Problem::UnknownKey { path: path.to_vec(), source, suggestion, known };
        match self.of(path) {
            sources if sources.is_empty() => vec![problem(None)],
            sources => sources.into_iter().map(|s| problem(Some(s))).collect(),
        }
    }

    fn value(&self, e: &figment::Error) -> Problem {
        Problem::Value {
            path: e.path.clone(),
            source: self.of(&e.path).into_iter().next(),
            message: e.kind.to_string(),
        }
    }
}

/// Names of the environment's variables (those that are valid Unicode).
fn env_names() -> impl Iterator<Item = String> {
    std::env::vars_os().filter_map(|(k, _)| k.into_string().ok())
}

/// `HERALD_` variables that cannot name a key because a level is empty (`HERALD_CHANNELS____X`,
/// a trailing `__`); the environment provider would drop them without a word.
fn malformed_env() -> Vec<Problem> {
    env_names()
        .filter(|name| {
            let upper = name.to_ascii_uppercase();
            upper.starts_with(ENV_PREFIX)
                && !ENV_ONLY.contains(&upper.as_str())
                && upper[ENV_PREFIX.len()..].split("__").any(|level| level.trim().is_empty())
        })
        .map(|name| Problem::Value {
            path: Vec::new(),
            source: Some(Source::Env(name)),
            message: "names no setting: a level between `__` separators is empty".into(),
        })
        .collect()
}

/// Removes the key at `path` from `value`; false when there is none.
fn remove(value: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else { return false };
    let mut at = value;
    for key in parents {
        match at {
            Value::Dict(_, dict) => match dict.get_mut(key) {
                Some(next) => at = next,
                None => return false,
            },
            _ => return false,
        }
    }
    match at {
        Value::Dict(_, dict) => dict.remove(last).is_some(),
        _ => false,
    }
}

/// Reads the merged sources into a [`Config`], reporting every problem: each key that is not a
/// setting or has a bad value is noted, removed, and the rest read again.
fn read(fig: &Figment, sources: &Sources) -> Result<Config, ConfigError> {
    let mut value = fig.find_value("").map_err(|e| ConfigError::Read(vec![sources.value(&e)]))?;
    let mut problems = malformed_env();
    loop {
        let e = match Config::deserialize(&value) {
            Ok(config) if problems.is_empty() => return Ok(config),
            Ok(_) => break,
            Err(e) => e,
        };
        match e.kind {
            Kind::UnknownField(_, known) => problems.extend(sources.unknown(&e.path, known)),
            _ => problems.push(sources.value(&e)),
        }
        if problems.len() >= MAX_PROBLEMS || !remove(&mut value, &e.path) {
            break;
        }
    }
    Err(ConfigError::Read(problems))
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
                provider = ["dev", "backup"]
                retry_schedule_seconds = [60]
                timeout_seconds = 15
                rate_limit = { per_second = 14 }
                breaker = { failure_threshold = 2 }
                [channels.sms.twilio]
                daily_budget = 250
                [delivery]
                hourly_ceiling = 50
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
            assert_eq!(c.channels.email.providers(Channel::Email), vec!["dev", "backup"]);
            let settings: std::collections::BTreeMap<_, _> = c.channel_settings().into_iter().collect();
            let email = &settings[&Channel::Email];
            assert_eq!(email.rate_limit.map(|r| r.burst), Some(14));
            assert_eq!(email.breaker.failure_threshold, 2);
            assert_eq!(email.breaker.open_for, jiff::SignedDuration::from_secs(30));
            assert_eq!(settings[&Channel::Sms].daily_budget, Some(250));
            assert_eq!(c.delivery.hourly_ceiling, 50);
            assert_eq!(c.channels.webhook.providers(Channel::Webhook), vec!["webhook"]);
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
            assert_eq!(c.delivery.hourly_ceiling, 100);
            Ok(())
        });
    }

    #[test]
    fn a_configured_provider_section_turns_its_provider_on() {
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            for (channel, section) in c.channel_configs() {
                let expected = if channel == Channel::Webhook { "webhook" } else { "dev" };
                assert_eq!(section.providers(channel), vec![expected], "{channel} with no configuration");
            }
            jail.create_file(
                "herald.toml",
                r#"
                [channels.email]
                from = "Herald <noreply@example.com>"
                smtp = { host = "smtp.example.com", port = 587, tls = "starttls", username = "u", password = "p" }
                [channels.push.fcm]
                service_account_path = "sa.json"
                [channels.web_push]
                subject = "mailto:ops@example.com"
                [channels.sms.twilio]
                account_sid = "AC123"
                auth_token = "t"
                from = "+15550000000"
                "#,
            )?;
            jail.set_env("HERALD_CHANNELS__EMAIL__SMTP__PORT", "2525");
            let c = Config::load(Some(Path::new("herald.toml"))).map_err(|e| e.to_string())?;
            let smtp = c.channels.email.smtp.as_ref().unwrap();
            assert_eq!((smtp.port, smtp.tls), (2525, herald_channels::smtp::SmtpTls::Starttls));
            assert_eq!(c.channels.push.fcm.as_ref().unwrap().endpoint, "https://fcm.googleapis.com");
            assert_eq!(c.channels.email.providers(Channel::Email), vec!["smtp"]);
            assert_eq!(c.channels.push.providers(Channel::Push), vec!["native"]);
            assert_eq!(c.channels.web_push.providers(Channel::WebPush), vec!["web_push"]);
            assert_eq!(c.channels.sms.providers(Channel::Sms), vec!["twilio"]);
            assert_eq!(c.channels.sms.max_segments, Some(DEFAULT_MAX_SEGMENTS));
            jail.set_env("HERALD_CHANNELS__EMAIL__PROVIDER", "dev");
            let c = Config::load(Some(Path::new("herald.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.channels.email.providers(Channel::Email), vec!["dev"], "an explicit provider wins");
            Ok(())
        });
    }

    #[test]
    fn a_provider_section_under_the_wrong_channel_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("HERALD_CHANNELS__PUSH__SMTP__HOST", "smtp.example.com");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("channels.push.smtp") && e.contains("channels.email"), "{e}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("HERALD_CHANNELS__SMS__MAX_SEGMENTS", "0");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("max_segments"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn private_networks_are_allowed_from_a_list_or_a_comma_separated_variable() {
        figment::Jail::expect_with(|jail| {
            let shown = |c: &Config| c.outbound.allow_private.iter().map(ToString::to_string).collect::<Vec<_>>();
            assert!(Config::load(None).map_err(|e| e.to_string())?.outbound.allow_private.is_empty());
            jail.create_file("herald.toml", "[outbound]\nallow_private = [\"10.0.0.0/8\", \"192.168.1.20\"]\n")?;
            let c = Config::load(Some(Path::new("herald.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(shown(&c), ["10.0.0.0/8", "192.168.1.20/32"]);
            jail.set_env("HERALD_OUTBOUND__ALLOW_PRIVATE", "127.0.0.0/8,::1");
            let c = Config::load(Some(Path::new("herald.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(shown(&c), ["127.0.0.0/8", "::1/128"], "the variable replaces the file's list");
            assert!(c.outbound_policy().permits("127.0.0.1".parse().unwrap()));
            Ok(())
        });
    }

    #[test]
    fn a_bad_network_is_refused_naming_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("HERALD_OUTBOUND__ALLOW_PRIVATE", "127.0.0.0/8, 10.0.0.0/33");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("HERALD_OUTBOUND__ALLOW_PRIVATE: `10.0.0.0/33` is not a network"), "{e}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.create_file("herald.toml", "[outbound]\nallow_private = [\"intranet\"]\n")?;
            let e = Config::load(Some(Path::new("herald.toml"))).unwrap_err().to_string();
            assert!(e.contains("`outbound.allow_private` in herald.toml: `intranet` is not a network"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let mut c = Config::default();
        c.channels.email.smtp = Some(SmtpSection { password: "smtp-secret".into(), ..SmtpSection::default() });
        c.channels.sms.twilio = Some(TwilioSection { auth_token: "twilio-secret".into(), ..TwilioSection::default() });
        let shown = format!("{c:?}");
        assert!(!shown.contains("smtp-secret") && !shown.contains("twilio-secret"), "{shown}");
        assert!(shown.contains("api.twilio.com"), "the rest is still shown: {shown}");
    }

    #[test]
    fn shedding_thresholds_must_shed_marketing_first() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("HERALD_OVERLOAD__SHED_MARKETING_AT", "50000");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("marketing is shed first"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn an_unknown_top_level_key_is_refused_naming_it_and_its_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("herald.toml", "typo_key = 1\nlisten = \"127.0.0.1:0\"\n")?;
            let e = Config::load(Some(Path::new("herald.toml"))).unwrap_err();
            let ConfigError::Read(problems) = &e else { panic!("expected a read error, got {e}") };
            assert!(
                matches!(&problems[..], [Problem::UnknownKey { path, source: Some(Source::File(file)), suggestion: None, .. }]
                    if path == &["typo_key"] && file == Path::new("herald.toml")),
                "{problems:?}"
            );
            let shown = e.to_string();
            assert!(
                shown.contains("unknown key `typo_key` in herald.toml") && shown.contains("listen, data_dir"),
                "{shown}"
            );
            Ok(())
        });
    }

    #[test]
    fn every_misspelt_nested_key_is_reported_with_a_suggestion() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "herald.toml",
                r#"
                [channels.email]
                from = "Herald <noreply@example.com>"
                smpt = { host = "smtp.example.com" }
                [channels.webhook]
                timeout = 5
                breaker = { failure_treshold = 3 }
                [defaults]
                quiet_hours = { start = "22:00", edn = "07:00" }
                "#,
            )?;
            let e = Config::load(Some(Path::new("herald.toml"))).unwrap_err().to_string();
            for expected in [
                "unknown key `channels.email.smpt` in herald.toml; did you mean `smtp`?",
                "unknown key `channels.webhook.timeout` in herald.toml; did you mean `timeout_seconds`?",
                "`channels.webhook.breaker.failure_treshold` in herald.toml; did you mean `failure_threshold`?",
                "`defaults.quiet_hours.edn` in herald.toml; did you mean `end`?",
            ] {
                assert!(e.contains(expected), "{expected:?} missing from: {e}");
            }
            Ok(())
        });
    }

    #[test]
    fn an_unknown_environment_variable_is_refused_with_the_right_name() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("HERALD_CHANNELS__EMAIL__SMPT__HOST", "smtp.example.com");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(
                e.contains("unknown environment variable HERALD_CHANNELS__EMAIL__SMPT__HOST")
                    && e.contains("did you mean `smtp` (HERALD_CHANNELS__EMAIL__SMTP__HOST)?"),
                "{e}"
            );
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("HERALD_CHANNELS_EMAIL_FROM", "x");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("HERALD_CHANNELS_EMAIL_FROM") && e.contains("double underscore"), "{e}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("HERALD_CHANNELS__EMAIL__", "x");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("HERALD_CHANNELS__EMAIL__: names no setting"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn environment_only_variables_are_not_configuration_keys() {
        figment::Jail::expect_with(|jail| {
            for var in ENV_ONLY {
                jail.set_env(var, "set");
            }
            jail.set_env("HERALD_LISTEN", "127.0.0.1:0");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.listen, "127.0.0.1:0");
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_and_an_unknown_key_are_both_reported() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "herald.toml",
                "[channels.email]\nrate_limit = { burst = 2 }\n[channels.emial]\nfrom = \"x\"\n",
            )?;
            jail.set_env("HERALD_LANES", "many");
            let e = Config::load(Some(Path::new("herald.toml"))).unwrap_err().to_string();
            assert!(e.contains("`channels.email.rate_limit` in herald.toml: missing field `per_second`"), "{e}");
            assert!(e.contains("`channels.emial` in herald.toml; did you mean `email`?"), "{e}");
            assert!(e.contains("HERALD_LANES: invalid type"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn provider_chains_say_where_each_channel_sends() {
        let mut c = Config { data_dir: PathBuf::from("data"), ..Config::default() };
        c.channels.email.smtp = Some(SmtpSection {
            host: "smtp.example.com".into(),
            port: 587,
            tls: herald_channels::smtp::SmtpTls::Starttls,
            ..SmtpSection::default()
        });
        c.channels.email.provider = Some(ProviderList::Many(vec!["smtp".into(), "dev".into()]));
        let shown: Vec<String> = c.provider_chains().iter().map(ToString::to_string).collect();
        assert!(shown.contains(&"channel in_app: inbox".to_owned()), "{shown:?}");
        assert!(shown.contains(&"channel push: dev (writes to data/outbox/push)".to_owned()), "{shown:?}");
        let email = "channel email: smtp (smtp.example.com:587, starttls), then dev (writes to data/outbox/email)";
        assert!(shown.contains(&email.to_owned()), "{shown:?}");
    }
}
