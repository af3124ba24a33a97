//! `herald`: serve, migrate, manage API keys, send a notification.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use herald::config::Config;
use herald::startup::{Application, open_store};

/// glibc's allocator spends a tenth of a loaded server's time in its own bookkeeping; mimalloc's
/// thread-local heaps do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Herald, a self-hosted notification service.
///
/// With no configuration at all, `herald serve` runs on SQLite under ./herald-data with the
/// in-app inbox and signed webhooks live and every other channel writing to ./herald-data/outbox.
#[derive(Parser)]
#[command(name = "herald", version, about, long_about)]
struct Cli {
    /// TOML configuration file; every key can also be set as HERALD_<KEY> (`__` between levels).
    #[arg(long, global = true, env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the HTTP API and the delivery runtime.
    Serve,
    /// Creates or upgrades the database schema, then exits.
    Migrate,
    /// Manages API keys.
    #[command(subcommand)]
    Keys(Keys),
    /// Sends a notification through a running Herald (POST /v1/notifications).
    Send(SendArgs),
}

#[derive(Subcommand)]
enum Keys {
    /// Creates an API key and prints it once (only its hash is stored).
    Create {
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
    },
    /// Lists API keys.
    List,
    /// Revokes a key by id or name.
    Revoke {
        /// Key id or name.
        key: String,
    },
}

#[derive(clap::Args)]
struct SendArgs {
    /// Base URL of the Herald server.
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key.
    #[arg(long, env = "HERALD_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Template key.
    #[arg(long)]
    template: String,
    /// Comma-separated user ids.
    #[arg(long, value_delimiter = ',', required_unless_present = "topic")]
    to: Vec<String>,
    /// Send to a topic's subscribers instead.
    #[arg(long, conflicts_with = "to")]
    topic: Option<String>,
    /// Template data as a JSON object.
    #[arg(long, default_value = "{}")]
    data: String,
    /// critical, transactional, social or marketing.
    #[arg(long)]
    class: Option<String>,
    /// Idempotency key.
    #[arg(long)]
    idempotency_key: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let config = || Config::load(cli.config.as_deref());
    match cli.command {
        Command::Serve => {
            let config = config()?;
            let app = Application::build(config.clone()).await?;
            tracing::info!(addr = %app.addr(), data_dir = %config.data_dir.display(), "Herald is listening");
            eprintln!("Herald listening on http://{}  (docs: http://{}/docs)", app.addr(), app.addr());
            app.run_until(shutdown_signal()).await?;
        }
        Command::Migrate => {
            let config = config()?;
            open_store(&config).await?;
            println!("database is up to date");
        }
        Command::Keys(k) => keys(k, &config()?).await?,
        Command::Send(args) => send(args).await?,
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

async fn keys(cmd: Keys, config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let store = open_store(config).await?;
    match cmd {
        Keys::Create { name } => {
            let key = herald_api::auth::generate_api_key();
            let record = herald_store::ApiKeyRecord {
                id: uuid::Uuid::now_v7(),
                name: name.clone(),
                prefix: key.chars().take(8).collect(),
                hash: herald_api::auth::hash_api_key(&key),
                created_at: jiff::Timestamp::now(),
                revoked_at: None,
            };
            store.create_api_key(record.clone()).await?;
            eprintln!("created key {} ({name}); it is shown only this once:", record.id);
            println!("{key}");
        }
        Keys::List => {
            println!("{:<36}  {:<20}  {:<10}  {:<25}  status", "id", "name", "prefix", "created");
            for k in store.list_api_keys().await? {
                let status = k.revoked_at.map_or_else(|| "active".to_owned(), |t| format!("revoked {t}"));
                println!("{:<36}  {:<20}  {:<10}  {:<25}  {status}", k.id, k.name, k.prefix, k.created_at.to_string());
            }
        }
        Keys::Revoke { key } => {
            if store.revoke_api_key(&key, jiff::Timestamp::now()).await? {
                println!("revoked {key}");
            } else {
                return Err(format!("no active key with id or name {key}").into());
            }
        }
    }
    Ok(())
}

async fn send(args: SendArgs) -> Result<(), Box<dyn std::error::Error>> {
    herald_channels::init_tls();
    let data: serde_json::Value = serde_json::from_str(&args.data).map_err(|e| format!("--data is not JSON: {e}"))?;
    let to = match &args.topic {
        Some(t) => serde_json::json!({ "topic": t }),
        None => serde_json::json!(args.to),
    };
    let mut body = serde_json::json!({ "template": args.template, "to": to, "data": data });
    if let Some(c) = &args.class {
        body["class"] = serde_json::json!(c);
    }
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/notifications", args.url.trim_end_matches('/')))
        .bearer_auth(&args.api_key)
        .json(&body);
    if let Some(k) = &args.idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    println!("{text}");
    if status.is_success() { Ok(()) } else { Err(format!("server answered {status}").into()) }
}
