//! The command line: global options, one subcommand per kind of load, and the notification
//! classes and `--mix` specification they accept.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

/// Herald's load generator: drives a running server over HTTP and measures what it accepts, what
/// it delivers end to end (through a webhook sink and inbox streams) and how fast.
#[derive(Debug, Parser)]
#[command(name = "herald-bench", version)]
pub struct Cli {
    /// Herald's base URL.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Admin API key (needed by every subcommand that sends notifications).
    #[arg(long, global = true, env = "HERALD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Also write the JSON summary to this file.
    #[arg(long, global = true, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Speak HTTP/2 without TLS (prior knowledge) instead of HTTP/1.1 with keep-alive.
    #[arg(long, global = true)]
    pub http2: bool,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// POST /v1/notifications, one notification per request.
    Single(SingleArgs),
    /// POST /v1/notifications/batch, `--batch-size` notifications per request.
    Batch(BatchArgs),
    /// Fixed rates per class at once, e.g. `--mix critical=50,marketing=2000`.
    Mixed(MixedArgs),
    /// `--count` notifications all due at one instant `--hold` seconds ahead, accepted first and
    /// drained after: isolates the pipeline's processing rate (decide, inbox, webhook) with no
    /// accepts competing for the store.
    Backlog(BacklogArgs),
    /// GET /healthz flat out (or at `--rate`): the HTTP ceiling reference.
    Healthz(HealthzArgs),
    /// Raw SQLite inserts (WAL, synchronous=FULL): the storage ceiling reference.
    Sqlite(SqliteArgs),
}

impl Command {
    /// The subcommand's name.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Single(_) => "single",
            Command::Batch(_) => "batch",
            Command::Mixed(_) => "mixed",
            Command::Backlog(_) => "backlog",
            Command::Healthz(_) => "healthz",
            Command::Sqlite(_) => "sqlite",
        }
    }
}

/// How long a load runs, and what to watch on the server meanwhile.
#[derive(Debug, Clone, Args, Serialize)]
pub struct Timing {
    /// Seconds measured, after the warmup.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: u64,
    /// Seconds of load before measuring starts (sent, never counted).
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Sample this process's resident memory (the Herald server) every second.
    #[arg(long)]
    pub pid: Option<u32>,
}

/// Who the notifications go to and how long to wait for them.
#[derive(Debug, Clone, Args, Serialize)]
pub struct Population {
    /// Bench users `bench-u0`.. to spread recipients over, round-robin.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub users: u32,
    /// Users whose inbox is watched over SSE, spread evenly over the users.
    #[arg(long, default_value_t = 100)]
    pub streams: u32,
    /// Recipients per notification.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub fanout: u32,
    /// Seconds to keep counting deliveries after the last send (`backlog`: after the last arrival,
    /// or the due instant while nothing has arrived).
    #[arg(long, default_value_t = 10)]
    pub drain: u64,
    /// Port of the webhook sink on 127.0.0.1 (0: any free port); Herald must allow it with
    /// HERALD_OUTBOUND__ALLOW_PRIVATE=127.0.0.1. With a fixed port, deliveries an earlier run left
    /// behind land on the next run's sink (and are ignored there) instead of being retried against
    /// a closed port.
    #[arg(long, default_value_t = 0)]
    pub sink_port: u16,
}

/// `single`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct SingleArgs {
    /// How long it runs.
    #[command(flatten)]
    #[serde(flatten)]
    pub timing: Timing,
    /// Who it sends to.
    #[command(flatten)]
    #[serde(flatten)]
    pub population: Population,
    /// Class of every notification (picks the template `bench_<class>`).
    #[arg(long, value_enum, default_value_t = Class::Transactional)]
    pub class: Class,
    /// How fast it sends.
    #[command(flatten)]
    #[serde(flatten)]
    pub pacing: Pacing,
}

/// A fixed rate or flat out, for `single` and `healthz`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct Pacing {
    /// Requests per second on a fixed schedule; without it, flat out with `--concurrency`.
    #[arg(long, value_parser = positive_rate)]
    pub rate: Option<f64>,
    /// Requests in flight when running flat out.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Most requests in flight at a fixed rate; beyond it sends wait and their lateness counts.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
}

/// `batch`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct BatchArgs {
    /// How long it runs.
    #[command(flatten)]
    #[serde(flatten)]
    pub timing: Timing,
    /// Who it sends to.
    #[command(flatten)]
    #[serde(flatten)]
    pub population: Population,
    /// Class of every notification (picks the template `bench_<class>`).
    #[arg(long, value_enum, default_value_t = Class::Transactional)]
    pub class: Class,
    /// Notifications per request (the server takes at most 1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_size: u32,
    /// Batch requests in flight.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
}

/// `mixed`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct MixedArgs {
    /// How long it runs.
    #[command(flatten)]
    #[serde(flatten)]
    pub timing: Timing,
    /// Who it sends to.
    #[command(flatten)]
    #[serde(flatten)]
    pub population: Population,
    /// Notifications per second per class: `critical=50,marketing=2000`.
    #[arg(long)]
    pub mix: Mix,
    /// Most requests in flight over all classes; beyond it sends wait and their lateness counts.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
}

/// `backlog`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct BacklogArgs {
    /// Who it sends to.
    #[command(flatten)]
    #[serde(flatten)]
    pub population: Population,
    /// Class of every notification (picks the template `bench_<class>`).
    #[arg(long, value_enum, default_value_t = Class::Social)]
    pub class: Class,
    /// Notifications in the backlog.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Seconds from the first send to the instant every notification is due (`send_at`); the
    /// accepts should be over well before it.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub hold: u64,
    /// Notifications per request (the server takes at most 1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_size: u32,
    /// Batch requests in flight while accepting.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Sample this process's resident memory (the Herald server) every second.
    #[arg(long)]
    pub pid: Option<u32>,
}

/// `healthz`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct HealthzArgs {
    /// How long it runs.
    #[command(flatten)]
    #[serde(flatten)]
    pub timing: Timing,
    /// How fast it sends.
    #[command(flatten)]
    #[serde(flatten)]
    pub pacing: Pacing,
}

/// `sqlite`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct SqliteArgs {
    /// Seconds of inserting for each of the two modes.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: u64,
    /// Rows per transaction in the grouped mode.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub group: u32,
    /// Bytes of the row's JSON `spec` column: a bench notification's is about 210, one with a few
    /// template variables about 320.
    #[arg(long, default_value_t = 320)]
    pub payload_bytes: usize,
    /// Directory for the fresh database files; put it on the disk Herald's data_dir uses.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// A notification class; the bench template of each is `bench_<class>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Breaks through caps and quiet hours on a budget.
    Critical,
    /// Never capped; one interrupting channel.
    Transactional,
    /// Capped; inbox only while the user is online.
    Social,
    /// Capped, shed first under overload.
    Marketing,
}

impl Class {
    /// Every class, in Herald's order of importance.
    pub const ALL: [Class; 4] = [Class::Critical, Class::Transactional, Class::Social, Class::Marketing];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Critical => "critical",
            Class::Transactional => "transactional",
            Class::Social => "social",
            Class::Marketing => "marketing",
        }
    }

    /// Parses [`Class::as_str`].
    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The bench template of this class.
    pub fn template(self) -> String {
        format!("bench_{}", self.as_str())
    }
}

/// Per-class send rates, in the order given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mix(pub Vec<(Class, f64)>);

/// Why a `--mix` does not parse.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum MixError {
    /// Nothing given.
    #[error("give at least one class=rate, e.g. critical=50,marketing=2000")]
    Empty,
    /// An item without `=`.
    #[error("`{0}` is not class=rate")]
    Shape(String),
    /// A class Herald does not have.
    #[error("unknown class `{0}`; the classes are critical, transactional, social and marketing")]
    Class(String),
    /// A rate that is not a positive number.
    #[error("rate `{0}` is not a positive number of notifications per second")]
    Rate(String),
    /// The same class twice.
    #[error("class `{0}` is given twice")]
    Duplicate(&'static str),
}

impl FromStr for Mix {
    type Err = MixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out: Vec<(Class, f64)> = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, rate) = item.split_once('=').ok_or_else(|| MixError::Shape(item.to_owned()))?;
            let class = Class::parse(name.trim()).ok_or_else(|| MixError::Class(name.trim().to_owned()))?;
            let rate = positive_rate(rate.trim()).map_err(|_| MixError::Rate(rate.trim().to_owned()))?;
            if out.iter().any(|(c, _)| *c == class) {
                return Err(MixError::Duplicate(class.as_str()));
            }
            out.push((class, rate));
        }
        if out.is_empty() { Err(MixError::Empty) } else { Ok(Mix(out)) }
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.0.iter().map(|(c, r)| format!("{}={r}", c.as_str())).collect();
        f.write_str(&items.join(","))
    }
}

/// A finite rate above zero, per second.
fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("`{s}` is not a positive number per second")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_in_order() {
        let mix: Mix = "critical=50, marketing=2000,social=0.5".parse().unwrap();
        assert_eq!(mix.0, vec![(Class::Critical, 50.0), (Class::Marketing, 2000.0), (Class::Social, 0.5)]);
        assert_eq!(mix.to_string(), "critical=50,marketing=2000,social=0.5");
    }

    #[test]
    fn mix_refuses_what_it_cannot_run() {
        assert_eq!("".parse::<Mix>(), Err(MixError::Empty));
        assert_eq!("critical".parse::<Mix>(), Err(MixError::Shape("critical".into())));
        assert_eq!("urgent=5".parse::<Mix>(), Err(MixError::Class("urgent".into())));
        assert_eq!("social=0".parse::<Mix>(), Err(MixError::Rate("0".into())));
        assert_eq!("social=-3".parse::<Mix>(), Err(MixError::Rate("-3".into())));
        assert_eq!("social=inf".parse::<Mix>(), Err(MixError::Rate("inf".into())));
        assert_eq!("social=1,social=2".parse::<Mix>(), Err(MixError::Duplicate("social")));
    }

    #[test]
    fn the_command_line_parses() {
        let cli = Cli::try_parse_from([
            "herald-bench",
            "--url",
            "http://127.0.0.1:18080",
            "single",
            "--rate",
            "100",
            "--duration",
            "5",
            "--users",
            "20",
            "--streams",
            "5",
            "--json",
            "out.json",
        ])
        .unwrap();
        assert_eq!(cli.json, Some(PathBuf::from("out.json")));
        let Command::Single(a) = cli.command else { panic!("single expected") };
        assert_eq!(
            (a.pacing.rate, a.timing.duration, a.population.users, a.population.streams),
            (Some(100.0), 5, 20, 5)
        );
        assert_eq!((a.timing.warmup, a.population.drain, a.class), (5, 10, Class::Transactional));
    }

    #[test]
    fn backlog_has_its_defaults() {
        let cli = Cli::try_parse_from(["herald-bench", "backlog", "--count", "2000", "--hold", "5"]).unwrap();
        let Command::Backlog(a) = cli.command else { panic!("backlog expected") };
        assert_eq!((a.count, a.hold, a.batch_size, a.concurrency), (2000, 5, 1000, 4));
        assert_eq!((a.class, a.population.users, a.population.drain), (Class::Social, 1000, 10));
        assert!(Cli::try_parse_from(["herald-bench", "backlog", "--hold", "0"]).is_err());
        assert!(Cli::try_parse_from(["herald-bench", "backlog", "--count", "0"]).is_err());
    }
}
