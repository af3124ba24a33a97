//! `herald-bench`, Herald's load generator: parses the command line, runs the subcommand, prints
//! the table and writes the JSON summary.

mod api;
mod cli;
mod error;
mod load;
mod machine;
mod memory;
mod pace;
mod progress;
mod report;
mod run;
mod setup;
mod sink;
mod sqlite;
mod stats;
mod stream;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::BenchError;
use crate::machine::Machine;
use crate::report::Summary;

#[tokio::main]
async fn main() -> ExitCode {
    // reqwest is built without a default TLS provider; the workspace's rustls carries ring.
    // Installing fails only when one is already installed, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match bench(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(cli: &Cli) -> Result<(), BenchError> {
    let mut settings = serde_json::to_value(&cli.command)?;
    if let Some(s) = settings.as_object_mut() {
        s.insert("http2".into(), cli.http2.into());
    }
    let mut summary = Summary {
        command_line: redacted(std::env::args_os().map(|a| a.to_string_lossy().into_owned())),
        command: cli.command.name(),
        started_at: jiff::Timestamp::now().round(jiff::Unit::Second).map_or_else(|_| String::new(), |t| t.to_string()),
        url: None,
        herald_version: None,
        machine: Machine::this(),
        settings,
        load: None,
        sqlite: None,
        memory: None,
    };
    match &cli.command {
        Command::Sqlite(args) => summary.sqlite = Some(sqlite::run(args).await?),
        _ => {
            let outcome = run::load(cli).await?;
            summary.url = Some(cli.url.clone());
            summary.herald_version = outcome.version;
            summary.load = Some(outcome.figures);
            summary.memory = outcome.memory;
        }
    }
    print!("{}", report::table(&summary, &cli.command));
    if let Some(path) = &cli.json {
        summary.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The command line with the API key's value hidden, since summaries get published.
fn redacted(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut hide_next = false;
    args.map(|a| {
        let out = match a.split_once('=') {
            _ if hide_next => "***".to_owned(),
            Some(("--api-key", _)) => "--api-key=***".to_owned(),
            _ => a.clone(),
        };
        hide_next = a == "--api-key";
        out
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_key_never_reaches_the_summary() {
        let args = ["herald-bench", "--api-key", "k1", "single", "--api-key=k2", "--rate", "5"].map(String::from);
        assert_eq!(
            redacted(args.into_iter()),
            ["herald-bench", "--api-key", "***", "single", "--api-key=***", "--rate", "5"]
        );
    }
}
