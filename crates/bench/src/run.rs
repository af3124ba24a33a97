//! One load run from start to finish: check the server, set up what the run needs, open the sink
//! and the inbox streams, send through warmup and measurement, wait for the last deliveries, and
//! gather the figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::Api;
use crate::cli::{Cli, Command, Population, Timing};
use crate::error::BenchError;
use crate::load::{Audience, Flow, Pace, Sender, Shot};
use crate::memory::{self, MemoryReport};
use crate::pace::Clock;
use crate::report::{Backlog, LoadFigures};
use crate::stats::Stats;
use crate::{load, progress, setup, sink, stream};

/// How often the drain checks whether everything has arrived.
const DRAIN_POLL: Duration = Duration::from_millis(100);

/// What a load run found.
#[derive(Debug)]
pub struct Outcome {
    /// Herald's version, when the server says.
    pub version: Option<String>,
    /// The figures.
    pub figures: LoadFigures,
    /// The server's memory, with `--pid`.
    pub memory: Option<MemoryReport>,
}

/// A load subcommand reduced to what the run needs.
struct Plan<'a> {
    flows: Vec<Flow>,
    timing: &'a Timing,
    /// None for `healthz`, which needs no users, sink or streams.
    population: Option<&'a Population>,
    max_in_flight: u32,
}

fn plan(command: &Command) -> Option<Plan<'_>> {
    let pace = |rate: Option<f64>, concurrency: u32| rate.map_or(Pace::Closed(concurrency), Pace::Rate);
    Some(match command {
        Command::Single(a) => Plan {
            flows: vec![Flow { shot: Shot::Single(a.class), pace: pace(a.rate, a.concurrency) }],
            timing: &a.timing,
            population: Some(&a.population),
            max_in_flight: a.max_in_flight,
        },
        Command::Batch(a) => Plan {
            flows: vec![Flow { shot: Shot::Batch(a.class, a.batch_size), pace: Pace::Closed(a.concurrency) }],
            timing: &a.timing,
            population: Some(&a.population),
            max_in_flight: a.concurrency,
        },
        Command::Mixed(a) => Plan {
            flows: a
                .mix
                .0
                .iter()
                .map(|(class, rate)| Flow { shot: Shot::Single(*class), pace: Pace::Rate(*rate) })
                .collect(),
            timing: &a.timing,
            population: Some(&a.population),
            max_in_flight: a.max_in_flight,
        },
        Command::Healthz(a) => Plan {
            flows: vec![Flow { shot: Shot::Healthz, pace: pace(a.rate, a.concurrency) }],
            timing: &a.timing,
            population: None,
            max_in_flight: a.max_in_flight,
        },
        Command::Sqlite(_) => return None,
    })
}

/// Runs the load subcommand of `cli`.
pub async fn load(cli: &Cli) -> Result<Outcome, BenchError> {
    let plan = plan(&cli.command).ok_or_else(|| BenchError::Other("not a load subcommand".into()))?;
    let api = Api::new(&cli.url, cli.api_key.clone(), cli.http2)?;
    api.check_alive().await?;
    let version = api.version().await;
    // Read before the setup, whose own small work would show up otherwise.
    let backlog_at_start = api.backlog().await;
    if let Some(n) = backlog_at_start.filter(|n| *n > 0) {
        eprintln!("warning: Herald's queues already hold {n} items; earlier work will compete with this run");
    }
    let clock = Clock::start();
    let stats = Arc::new(Stats::new(clock)?);

    if let Some(pid) = plan.timing.pid {
        // A wrong pid fails now rather than after the setup.
        memory::resident_bytes(pid)?;
    }
    let mut audience = Audience { users: 1, streams: 0, fanout: 1 };
    let mut watching = None;
    if let Some(p) = plan.population {
        api.require_key()?;
        if p.streams > p.users || p.fanout > p.users {
            return Err(BenchError::Other(format!(
                "--streams ({}) and --fanout ({}) cannot exceed --users ({})",
                p.streams, p.fanout, p.users
            )));
        }
        let began = Instant::now();
        eprintln!("setup: templates, {} users with a webhook device, {} inbox streams", p.users, p.streams);
        let sink = sink::start(stats.clone(), p.sink_port).await?;
        setup::templates(&api).await?;
        setup::users(&api, p.users, &sink.url).await?;
        let tokens = setup::tokens(&api, p.users, p.streams).await?;
        let watchers = stream::watch(&api, tokens, stats.clone()).await?;
        eprintln!("setup: done in {:.1} s; webhook sink at {}", began.elapsed().as_secs_f64(), sink.url);
        audience = Audience { users: p.users.into(), streams: p.streams.into(), fanout: p.fanout.into() };
        watching = Some((sink, watchers));
    }

    let t = plan.timing;
    let sampler = t.pid.map(memory::start).transpose()?;
    let start = clock.now_us();
    let from = start + t.warmup * 1_000_000;
    let until = from + t.duration * 1_000_000;
    stats.open(start, from, until);
    let bar = progress::start(stats.clone(), t.warmup, t.warmup + t.duration);
    let sender = Arc::new(Sender::new(api.clone(), stats.clone(), audience));
    load::run(sender, &plan.flows, plan.max_in_flight, start, until).await;

    bar.draining();
    let drain_began = Instant::now();
    if let Some(p) = plan.population {
        let deadline = drain_began + Duration::from_secs(p.drain);
        while !stats.complete() && Instant::now() < deadline {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }
    let drain_s = drain_began.elapsed().as_secs_f64();
    bar.finish();
    let mut figures = stats.figures(t.duration as f64, drain_s);
    figures.server_backlog = Backlog { at_start: backlog_at_start, at_end: api.backlog().await };
    let memory = match sampler {
        Some(s) => s.finish().await,
        None => None,
    };
    if let Some((sink, watchers)) = watching {
        watchers.stop();
        sink.stop();
    }
    Ok(Outcome { version, figures, memory })
}
