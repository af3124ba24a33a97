//! `herald`: serve, migrate, check the configuration, manage API keys, make secrets, send a
//! notification.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{Parser, Subcommand};
use herald::config::{Config, ConfigError};
use herald::startup::{Application, StartupError, open_store};
use herald_store::{OpenMode, StoreError};
use rand::RngCore;

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
    /// Checks the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manages API keys (in an existing database: `herald migrate` or `herald serve` creates it).
    #[command(subcommand)]
    Keys(Keys),
    /// Makes secrets to configure Herald and its clients with.
    #[command(subcommand)]
    Secrets(Secrets),
    /// Sends a notification through a running Herald (POST /v1/notifications).
    Send(SendArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validates the file and the HERALD_ variables as `herald serve` would, starting nothing and
    /// leaving the database alone, and prints what it resolved to.
    Check,
}

#[derive(Subcommand)]
enum Keys {
    /// Creates an API key and prints it once (only its hash is stored).
    Create {
        /// A name to recognise the key by, unique among active keys.
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

#[derive(Subcommand)]
enum Secrets {
    /// Prints a fresh Standard Webhooks signing secret (`whsec_` + base64 of 32 random bytes), for
    /// a webhook device's `secret`.
    Webhook,
}

#[derive(clap::Args)]
struct SendArgs {
    /// Base URL of the Herald server.
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key: one made with `herald keys create`, or the HERALD_API_KEY the server runs with.
    #[arg(long, env = "HERALD_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
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

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "no database at {}: run `herald migrate` or `herald serve` first (they create it), or point \
         at the right data directory with --config FILE or HERALD_DATA_DIR",
        .0.display()
    )]
    NoDatabase(PathBuf),
    #[error("{0}; revoke it first or choose another name")]
    NameTaken(StoreError),
    #[error("--name must not be empty")]
    EmptyName,
    #[error("no active key with id or name {0} (`herald keys list` shows them)")]
    NoSuchKey(String),
    #[error(
        "no API key: pass --api-key or set HERALD_API_KEY (the key the server accepts: HERALD_API_KEY \
         set where `herald serve` runs, or one made with `herald keys create --name NAME`)"
    )]
    NoApiKey,
    #[error("--url {0} is not an http(s) URL, e.g. http://127.0.0.1:8080")]
    BadUrl(String),
    #[error("no Herald server at {0} (start one with `herald serve`, or pass --url / HERALD_URL)")]
    NoServer(String),
    #[error("--data must be a JSON object: {0}")]
    BadData(String),
    #[error("request to {url} failed: {source}")]
    Request { url: String, source: reqwest::Error },
    #[error("{0}")]
    Refused(String),
}

impl CliError {
    /// A missing argument is a usage error, like clap's own (2); anything else fails with 1.
    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::NoApiKey => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server and migrations report progress; the one-shot commands speak only when it matters.
    let default_filter = match cli.command {
        Command::Serve | Command::Migrate => "info",
        _ => "warn",
    };
    // Colour codes only where a person reads them, and never when NO_COLOR asks for none.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG").unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e}");
            e.exit_code()
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let config = || Config::load(cli.config.as_deref());
    match cli.command {
        Command::Serve => {
            let config = config()?;
            let app = Application::build(config.clone()).await?;
            tracing::info!(addr = %app.addr(), data_dir = %config.data_dir.display(), "Herald is listening");
            eprintln!("Herald listening on http://{}  (docs: http://{}/docs)", app.addr(), app.addr());
            app.run_until(shutdown_signal()).await.map_err(|e| CliError::Refused(e.to_string()))?;
        }
        Command::Migrate => {
            let config = config()?;
            open_store(&config, OpenMode::Create).await?;
            let path = herald_store::database_path(&config.database_url, &config.data_dir)?;
            out(format!("database is up to date ({})", std::path::absolute(&path).unwrap_or(path).display()));
        }
        Command::Config(ConfigCommand::Check) => check(cli.config.as_deref(), &config()?)?,
        Command::Keys(k) => keys(k, &config()?).await?,
        Command::Secrets(Secrets::Webhook) => out(webhook_secret()),
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

/// `herald config check`: everything `serve` checks before it opens the database.
fn check(file: Option<&Path>, config: &Config) -> Result<(), CliError> {
    herald::startup::check(config)?;
    let database = herald_store::database_path(&config.database_url, &config.data_dir)?;
    let state = if database.exists() { "exists" } else { "created by `herald serve` or `herald migrate`" };
    let admin = match std::env::var("HERALD_API_KEY") {
        Ok(k) if !k.is_empty() => "HERALD_API_KEY is set and accepted as an admin key",
        _ => "HERALD_API_KEY is not set; keys come from `herald keys create`",
    };
    let mut lines = vec!["configuration OK".to_owned()];
    lines.push(match file {
        Some(f) => format!("  file        {}", shown(f)),
        None => "  file        none (built-in defaults and HERALD_ variables)".into(),
    });
    lines.push(format!("  listen      {}", config.listen));
    lines.push(format!("  public_url  {}", config.public_url));
    lines.push(format!("  data_dir    {}", shown(&config.data_dir)));
    let database = std::path::absolute(&database).unwrap_or(database);
    lines.push(format!("  database    SQLite at {} ({state})", database.display()));
    lines.push(format!("  api key     {admin}"));
    lines.extend(config.provider_chains().iter().map(|chain| format!("  {chain}")));
    out(lines.join("\n"));
    Ok(())
}

/// A path as configured, with where it is when that depends on the working directory.
fn shown(path: &Path) -> String {
    match std::path::absolute(path) {
        Ok(abs) if path.is_relative() => format!("{} ({})", path.display(), abs.display()),
        _ => path.display().to_string(),
    }
}

/// Writes a line to stdout; a reader that went away (`| head`) is not an error of Herald's.
fn out(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

async fn keys(cmd: Keys, config: &Config) -> Result<(), CliError> {
    let store = open_store(config, OpenMode::Existing).await.map_err(|e| match e {
        StartupError::Store(StoreError::NoDatabase(path)) => {
            CliError::NoDatabase(std::path::absolute(&path).unwrap_or(path))
        }
        e => e.into(),
    })?;
    match cmd {
        Keys::Create { name } => {
            let name = name.trim().to_owned();
            if name.is_empty() {
                return Err(CliError::EmptyName);
            }
            let key = herald_api::auth::generate_api_key();
            let record = herald_store::ApiKeyRecord {
                id: uuid::Uuid::now_v7(),
                name: name.clone(),
                prefix: key.chars().take(8).collect(),
                hash: herald_api::auth::hash_api_key(&key),
                created_at: jiff::Timestamp::now(),
                revoked_at: None,
            };
            store.create_api_key(record.clone()).await.map_err(|e| match e {
                e @ StoreError::ApiKeyNameTaken { .. } => CliError::NameTaken(e),
                e => e.into(),
            })?;
            eprintln!("created key {} ({name}, prefix {}); it is shown only this once:", record.id, record.prefix);
            out(key);
        }
        Keys::List => {
            out(format!("{:<36}  {:<20}  {:<10}  {:<25}  status", "id", "name", "prefix", "created"));
            for k in store.list_api_keys().await? {
                let status = k.revoked_at.map_or_else(|| "active".to_owned(), |t| format!("revoked {t}"));
                out(format!(
                    "{:<36}  {:<20}  {:<10}  {:<25}  {status}",
                    k.id,
                    k.name,
                    k.prefix,
                    k.created_at.to_string()
                ));
            }
        }
        Keys::Revoke { key } => match store.revoke_api_key(&key, jiff::Timestamp::now()).await? {
            Some(k) => out(format!("revoked key {} ({}, prefix {})", k.id, k.name, k.prefix)),
            None => return Err(CliError::NoSuchKey(key)),
        },
    }
    Ok(())
}

/// A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes.
fn webhook_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

async fn send(args: SendArgs) -> Result<(), CliError> {
    let api_key = args.api_key.clone().filter(|k| !k.is_empty()).ok_or(CliError::NoApiKey)?;
    let base = args.url.trim_end_matches('/');
    if !url::Url::parse(base).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
        return Err(CliError::BadUrl(args.url.clone()));
    }
    let data: serde_json::Value = serde_json::from_str(&args.data).map_err(|e| CliError::BadData(e.to_string()))?;
    if !data.is_object() {
        return Err(CliError::BadData(format!("got {data}")));
    }
    let to = match &args.topic {
        Some(t) => serde_json::json!({ "topic": t }),
        None => serde_json::json!(args.to),
    };
    let mut body = serde_json::json!({ "template": args.template, "to": to, "data": data });
    if let Some(c) = &args.class {
        body["class"] = serde_json::json!(c);
    }
    herald_channels::init_tls();
    let mut req = reqwest::Client::new()
        .post(format!("{base}/v1/notifications"))
        .timeout(std::time::Duration::from_secs(30))
        .bearer_auth(&api_key)
        .json(&body);
    if let Some(k) = &args.idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.map_err(|e| request_error(base, e))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| request_error(base, e))?;
    if !status.is_success() {
        return Err(CliError::Refused(refusal(status, &text)));
    }
    out(text);
    Ok(())
}

fn request_error(url: &str, e: reqwest::Error) -> CliError {
    if e.is_connect() {
        CliError::NoServer(url.to_owned())
    } else {
        CliError::Request { url: url.to_owned(), source: e }
    }
}

/// A refusal for people: the problem's title, detail and field errors (RFC 9457), else the body.
fn refusal(status: reqwest::StatusCode, body: &str) -> String {
    let mut out = format!("the server answered {status}");
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(problem) if problem.is_object() => {
            for part in [&problem["title"], &problem["detail"]] {
                if let Some(text) = part.as_str().filter(|t| !t.is_empty()) {
                    out.push_str(&format!(": {text}"));
                }
            }
            for e in problem["errors"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "\n  {}: {}",
                    e["field"].as_str().unwrap_or("?"),
                    e["message"].as_str().unwrap_or("")
                ));
            }
        }
        _ if !body.trim().is_empty() => out.push_str(&format!(": {}", body.trim())),
        _ => {}
    }
    if status == reqwest::StatusCode::UNAUTHORIZED {
        out.push_str(
            "\n  (the server does not accept this API key: use its HERALD_API_KEY or a key from `herald keys create`)",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_secret_is_what_a_webhook_device_accepts() {
        let secret = webhook_secret();
        let key = herald_domain::device::webhook_secret_bytes(&secret).expect("a valid Standard Webhooks secret");
        assert_eq!(key.len(), 32);
        assert_ne!(secret, webhook_secret(), "each one is fresh");
    }

    #[test]
    fn a_refusal_reads_like_the_problem() {
        let body = r#"{"type":"/problems/validation","title":"Validation failed","status":422,
                       "detail":"the request is invalid","errors":[{"field":"template","message":"unknown template"}]}"#;
        let shown = refusal(reqwest::StatusCode::UNPROCESSABLE_ENTITY, body);
        assert!(shown.contains("422") && shown.contains("Validation failed: the request is invalid"), "{shown}");
        assert!(shown.contains("template: unknown template"), "{shown}");
    }
}
