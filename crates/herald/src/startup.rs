//! Builds Herald from a [`Config`]: store, runtime, providers and HTTP server, bound and ready.
//! `main` and the tests both start the application through here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use herald_api::AppState;
use herald_api::TwilioHooks;
use herald_channels::Provider;
use herald_channels::apns::{Apns, ApnsConfig};
use herald_channels::dev::DevOutbox;
use herald_channels::fcm::{Fcm, FcmConfig};
use herald_channels::push::NativePush;
use herald_channels::smtp::{Smtp, SmtpConfig};
use herald_channels::twilio::{Twilio, TwilioConfig};
use herald_channels::unsubscribe::UnsubscribeLinks;
use herald_channels::web_push::{VapidKey, WebPush};
use herald_channels::webhook::WebhookProvider;
use herald_domain::Channel;
use herald_runtime::{Clock, Runtime, RuntimeConfig, SystemClock};
use herald_store::Store;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rand::RngCore;
use tokio::net::TcpListener;

use crate::config::{ChannelConfig, Config};

/// Why start-up failed.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] herald_store::StoreError),
    /// The runtime could not rebuild its state.
    #[error(transparent)]
    Runtime(#[from] herald_runtime::RuntimeError),
    /// Listening or HTTP client set-up failed.
    #[error("{0}")]
    Io(String),
}

/// The process-wide Prometheus recorder (installed once, however many apps a test starts).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
                .expect("static buckets are valid");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder is installed; ours then still renders its own.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// A bound, running Herald.
pub struct Application {
    addr: SocketAddr,
    router: axum::Router,
    listener: TcpListener,
    runtime: Arc<Runtime>,
}

impl Application {
    /// Opens the store, starts the runtime and binds the listener; `HERALD_API_KEY` is the admin key.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let admin_key = std::env::var("HERALD_API_KEY").ok().filter(|k| !k.is_empty());
        Self::build_with(config, Arc::new(SystemClock), admin_key).await
    }

    /// As [`Application::build`], with an injected clock and admin key (tests).
    pub async fn build_with(
        config: Config,
        clock: Arc<dyn Clock>,
        admin_key: Option<String>,
    ) -> Result<Self, StartupError> {
        Self::build_with_providers(config, clock, admin_key, BTreeMap::new()).await
    }

    /// As [`Application::build_with`], with extra named providers that `channels.*.provider`
    /// may list (tests plug in providers that fail on cue).
    pub async fn build_with_providers(
        config: Config,
        clock: Arc<dyn Clock>,
        admin_key: Option<String>,
        extra: BTreeMap<String, Arc<dyn Provider>>,
    ) -> Result<Self, StartupError> {
        herald_channels::init_tls();
        let vapid = VapidKey::load_or_create(&vapid_path(&config)).map_err(config_error)?;
        let Built { runtime: mut runtime_config, vapid_public_key, twilio } = runtime_config(&config, extra, vapid)?;
        for chain in config.provider_chains() {
            tracing::info!(channel = %chain.channel, providers = %chain.names.join(","), "{chain}");
        }
        let store = herald_store::open(&config.database_url, &config.data_dir).await?;
        let unsubscribe = UnsubscribeLinks::new(&config.public_url, secret(&store, "unsubscribe_key").await?);
        runtime_config.unsubscribe = Some(unsubscribe.clone());
        let runtime = Runtime::start(store.clone(), runtime_config, clock.clone()).await?;
        let token_key = secret(&store, "user_token_key").await?;
        let state = AppState {
            store,
            runtime: runtime.clone(),
            clock,
            admin_key,
            token_key,
            metrics: metrics_handle(),
            defaults: config.preference_defaults(),
            unsubscribe,
            vapid_public_key,
            twilio,
        };
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|e| StartupError::Io(format!("cannot listen on {}: {e}", config.listen)))?;
        let addr = listener.local_addr().map_err(|e| StartupError::Io(e.to_string()))?;
        Ok(Self { addr, router: herald_api::router(state), listener, runtime })
    }

    /// The runtime, to wake it after moving an injected clock.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.clone()
    }

    /// The bound address (port 0 in the config picks a free one).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves, then drains for up to ten seconds.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve = axum::serve(self.listener, self.router).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = tx.send(());
        });
        let runtime = self.runtime.clone();
        let result = tokio::select! {
            r = serve => r,
            // Open event streams never end by themselves: give requests ten seconds, then stop.
            _ = async { let _ = rx.await; tokio::time::sleep(Duration::from_secs(10)).await } => Ok(()),
        };
        runtime.shutdown().await;
        result
    }
}

/// What start-up builds besides the providers: keys and settings the API serves or checks.
struct Built {
    runtime: RuntimeConfig,
    vapid_public_key: String,
    twilio: Option<TwilioHooks>,
}

/// Checks `config` as [`Application::build`] would, building every provider (reading their key
/// files), without opening the store, binding the address or writing a file.
pub fn check(config: &Config) -> Result<(), StartupError> {
    herald_channels::init_tls();
    let path = vapid_path(config);
    let vapid = if path.exists() {
        VapidKey::load_or_create(&path).map_err(config_error)?
    } else {
        // `serve` creates the key at `path`; a throwaway one stands in for it here.
        let scratch = std::env::temp_dir().join(format!("herald-check-{}.pem", uuid::Uuid::now_v7()));
        let key = VapidKey::load_or_create(&scratch).map_err(config_error);
        let _ = std::fs::remove_file(&scratch);
        key?
    };
    runtime_config(config, BTreeMap::new(), vapid)?;
    if config.data_dir.exists() && !config.data_dir.is_dir() {
        return Err(config_error(format!("data_dir {} is not a directory", config.data_dir.display())));
    }
    std::net::ToSocketAddrs::to_socket_addrs(config.listen.as_str())
        .map_err(|e| config_error(format!("listen {:?} is not an address to listen on: {e}", config.listen)))?;
    Ok(())
}

/// The VAPID key file. It exists whatever the web push provider, so browsers can subscribe before
/// web push is switched on; a relative path is in the data directory, where it is made when absent.
fn vapid_path(config: &Config) -> std::path::PathBuf {
    let name = config.channels.web_push.vapid_private_key_path.as_deref();
    config.data_dir.join(name.unwrap_or(std::path::Path::new("vapid.pem")))
}

/// Resolves each channel's provider names, in failover order, and builds them.
fn runtime_config(
    config: &Config,
    extra: BTreeMap<String, Arc<dyn Provider>>,
    vapid: VapidKey,
) -> Result<Built, StartupError> {
    let settings: BTreeMap<_, _> = config.channel_settings().into_iter().collect();
    let dev: Arc<dyn Provider> = Arc::new(DevOutbox::new(&config.data_dir));
    let mut providers = BTreeMap::new();
    for (channel, section) in config.channel_configs() {
        let timeout = settings.get(&channel).map_or(Duration::from_secs(15), |s| s.timeout);
        let mut chain = Vec::new();
        for name in section.providers(channel) {
            let provider: Arc<dyn Provider> = match extra.get(&name) {
                Some(p) => p.clone(),
                None if name == "dev" => dev.clone(),
                None => real_provider(&name, channel, config, section, timeout, &vapid)?,
            };
            chain.push(provider);
        }
        providers.insert(channel, chain);
    }
    let twilio = config.channels.sms.twilio.as_ref().filter(|t| !t.account_sid.is_empty()).map(|t| TwilioHooks {
        account_sid: t.account_sid.clone(),
        auth_token: t.auth_token.clone(),
        public_url: config.public_url.trim_end_matches('/').to_owned(),
        help_text: t.help_text.clone(),
    });
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = RuntimeConfig {
        data_dir: config.data_dir.clone(),
        defaults: config.preference_defaults(),
        lanes: config.lanes.unwrap_or(cores),
        channels: settings,
        providers,
        hourly_ceiling: Some(config.delivery.hourly_ceiling).filter(|c| *c > 0),
        overload: config.overload_settings(),
        drain_grace: Duration::from_secs(config.delivery.shutdown_grace_seconds),
        lease: Duration::from_secs(config.queue.lease_seconds),
        unsubscribe: None,
    };
    Ok(Built { runtime, vapid_public_key: vapid.public_key(), twilio })
}

/// The real provider `name` of `channel`, built from its section of the configuration.
fn real_provider(
    name: &str,
    channel: Channel,
    config: &Config,
    section: &ChannelConfig,
    timeout: Duration,
    vapid: &VapidKey,
) -> Result<Arc<dyn Provider>, StartupError> {
    let missing =
        |key: &str| config_error(format!("channels.{channel}.provider `{name}` needs channels.{channel}.{key}"));
    let prefix = |e: String| config_error(format!("channels.{channel}.{name}: {e}"));
    Ok(match (channel, name) {
        (Channel::Webhook, "webhook") => {
            let webhook = WebhookProvider::new(timeout, config.outbound_policy());
            Arc::new(webhook.map_err(|e| StartupError::Io(e.to_string()))?)
        }
        (Channel::Email, "smtp") => {
            let smtp = section.smtp.clone().unwrap_or_default();
            let from = section.from.clone().ok_or_else(|| missing("from"))?;
            let ca_pem = smtp.ca_path.as_deref().map(|p| read_file("channels.email.smtp.ca_path", p)).transpose()?;
            let smtp_config = SmtpConfig {
                host: smtp.host,
                port: smtp.port,
                tls: smtp.tls,
                username: smtp.username,
                password: smtp.password,
                from,
                ca_pem,
            };
            Arc::new(Smtp::new(smtp_config, timeout).map_err(prefix)?)
        }
        (Channel::Push, "native") => {
            let apns = match &section.apns {
                Some(a) => Some(
                    Apns::new(
                        ApnsConfig {
                            endpoint: a.endpoint.clone(),
                            key_pem: read_file("channels.push.apns.key_path", &a.key_path)?,
                            key_id: a.key_id.clone(),
                            team_id: a.team_id.clone(),
                            topic: a.topic.clone(),
                        },
                        timeout,
                    )
                    .map_err(prefix)?,
                ),
                None => None,
            };
            let fcm = match &section.fcm {
                Some(f) => Some(
                    Fcm::new(
                        FcmConfig {
                            endpoint: f.endpoint.clone(),
                            service_account_json: read_file(
                                "channels.push.fcm.service_account_path",
                                &f.service_account_path,
                            )?,
                        },
                        timeout,
                    )
                    .map_err(prefix)?,
                ),
                None => None,
            };
            Arc::new(NativePush::new(apns, fcm).map_err(prefix)?)
        }
        (Channel::WebPush, "web_push") => {
            let subject = section.subject.clone().ok_or_else(|| missing("subject"))?;
            Arc::new(WebPush::new(vapid.clone(), subject, timeout, config.outbound_policy()).map_err(prefix)?)
        }
        (Channel::Sms, "twilio") => {
            let t = section.twilio.clone().ok_or_else(|| missing("twilio"))?;
            let twilio_config = TwilioConfig {
                base_url: t.base_url,
                account_sid: t.account_sid,
                auth_token: t.auth_token,
                from: t.from,
                status_callback: Some(format!(
                    "{}/v1/providers/twilio/status",
                    config.public_url.trim_end_matches('/')
                )),
            };
            Arc::new(Twilio::new(twilio_config, timeout).map_err(prefix)?)
        }
        _ => {
            let available = match channel {
                Channel::Push => "native, dev",
                Channel::WebPush => "web_push, dev",
                Channel::Email => "smtp, dev",
                Channel::Sms => "twilio, dev",
                Channel::Webhook | Channel::InApp => "webhook, dev",
            };
            return Err(config_error(format!(
                "channels.{channel}.provider: `{name}` is not a provider of {channel} (available: {available})"
            )));
        }
    })
}

/// A file the configuration names at `key`, read whole.
fn read_file(key: &str, path: &std::path::Path) -> Result<String, StartupError> {
    std::fs::read_to_string(path).map_err(|e| config_error(format!("{key}: cannot read {}: {e}", path.display())))
}

fn config_error(message: impl Into<String>) -> StartupError {
    StartupError::Config(crate::config::ConfigError::Invalid(message.into()))
}

/// A 32-byte key kept in the store, made at first start.
async fn secret(store: &Arc<dyn Store>, name: &str) -> Result<Arc<[u8]>, StartupError> {
    let mut key = vec![0u8; 32];
    rand::rng().fill_bytes(&mut key);
    Ok(store.secret(name, key).await?.into())
}

/// Opens (and so migrates) the store named by the configuration, creating it only if `mode` says so.
pub async fn open_store(config: &Config, mode: herald_store::OpenMode) -> Result<Arc<dyn Store>, StartupError> {
    Ok(herald_store::open_with(&config.database_url, &config.data_dir, mode).await?)
}
