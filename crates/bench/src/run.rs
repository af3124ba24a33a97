//! One load run from start to finish: check the server, set up what the run needs, open the sink
//! and the inbox streams, send through warmup and measurement, wait for the last deliveries, and
//! gather the figures. A backlog run sends a fixed count due at one instant instead, and times how
//! fast what became due drains.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::Api;
use crate::cli::{BacklogArgs, Cli, Command, Pacing, Population, Timing};
use crate::error::BenchError;
use crate::load::{Audience, Flow, Pace, Sender, Shot};
use crate::memory::{self, MemoryReport};
use crate::pace::Clock;
use crate::report::{Backlog, BacklogFigures, DrainFigures, LoadFigures};
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
    /// What to send: for a duration, or (`backlog`) a fixed count.
    shape: Shape<'a>,
    /// None for `healthz`, which needs no users, sink or streams.
    population: Option<&'a Population>,
}

/// How a run sends.
enum Shape<'a> {
    /// The flows through warmup and measurement, at most `max_in_flight` requests at once.
    Timed {
        timing: &'a Timing,
        flows: Vec<Flow>,
        max_in_flight: u32,
    },
    Backlog(&'a BacklogArgs),
}

impl Shape<'_> {
    fn pid(&self) -> Option<u32> {
        match self {
            Shape::Timed { timing, .. } => timing.pid,
            Shape::Backlog(a) => a.pid,
        }
    }
}

fn plan(command: &Command) -> Option<Plan<'_>> {
    let pace = |p: &Pacing| p.rate.map_or(Pace::Closed(p.concurrency), Pace::Rate);
    Some(match command {
        Command::Single(a) => Plan {
            shape: Shape::Timed {
                timing: &a.timing,
                flows: vec![Flow { shot: Shot::Single(a.class), pace: pace(&a.pacing) }],
                max_in_flight: a.pacing.max_in_flight,
            },
            population: Some(&a.population),
        },
        Command::Batch(a) => Plan {
            shape: Shape::Timed {
                timing: &a.timing,
                flows: vec![Flow { shot: Shot::Batch(a.class, a.batch_size), pace: Pace::Closed(a.concurrency) }],
                max_in_flight: a.concurrency,
            },
            population: Some(&a.population),
        },
        Command::Mixed(a) => Plan {
            shape: Shape::Timed {
                timing: &a.timing,
                flows: a
                    .mix
                    .0
                    .iter()
                    .map(|(class, rate)| Flow { shot: Shot::Single(*class), pace: Pace::Rate(*rate) })
                    .collect(),
                max_in_flight: a.max_in_flight,
            },
            population: Some(&a.population),
        },
        Command::Backlog(a) => Plan { shape: Shape::Backlog(a), population: Some(&a.population) },
        Command::Healthz(a) => Plan {
            shape: Shape::Timed {
                timing: &a.timing,
                flows: vec![Flow { shot: Shot::Healthz, pace: pace(&a.pacing) }],
                max_in_flight: a.pacing.max_in_flight,
            },
            population: None,
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

    if let Some(pid) = plan.shape.pid() {
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

    let sampler = plan.shape.pid().map(memory::start).transpose()?;
    let sender = Sender::new(api.clone(), stats.clone(), audience);
    let (mut figures, backlog) = match &plan.shape {
        Shape::Timed { timing, flows, max_in_flight } => {
            (timed(&stats, sender, timing, flows, *max_in_flight, plan.population).await, None)
        }
        Shape::Backlog(a) => {
            let (figures, backlog) = drain_backlog(&stats, sender, a).await;
            (figures, Some(backlog))
        }
    };
    figures.backlog = backlog;
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

/// Sends through warmup and measurement, then waits for the last deliveries.
async fn timed(
    stats: &Arc<Stats>,
    sender: Sender,
    t: &Timing,
    flows: &[Flow],
    max_in_flight: u32,
    population: Option<&Population>,
) -> LoadFigures {
    let start = stats.clock().now_us();
    let from = start + t.warmup * 1_000_000;
    let until = from + t.duration * 1_000_000;
    stats.open(start, from, until);
    let bar = progress::start(stats.clone(), t.warmup, t.warmup + t.duration);
    load::run(Arc::new(sender), flows, max_in_flight, start, until).await;

    bar.draining();
    let drain_began = Instant::now();
    if let Some(p) = population {
        let deadline = drain_began + Duration::from_secs(p.drain);
        while !stats.complete() && Instant::now() < deadline {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }
    let drain_s = drain_began.elapsed().as_secs_f64();
    bar.finish();
    stats.figures(t.duration as f64, drain_s)
}

/// Accepts the whole backlog due `hold` seconds ahead, then waits until it has drained: everything
/// arrived, or nothing more for `drain` seconds.
async fn drain_backlog(stats: &Arc<Stats>, sender: Sender, a: &BacklogArgs) -> (LoadFigures, BacklogFigures) {
    let clock = stats.clock();
    let start = clock.now_us();
    // Herald keeps due times in whole milliseconds.
    let due = (start + a.hold * 1_000_000) / 1_000 * 1_000;
    stats.open(start, start, u64::MAX);
    stats.series_from(due);
    let bar = progress::start(stats.clone(), 0, a.hold);
    let sender = Arc::new(sender.scheduled(due));
    load::run_count(sender, a.class, a.batch_size, a.concurrency, a.count).await;
    let accept_s = (clock.now_us() - start) as f64 / 1e6;
    let overran = clock.now_us() > due;
    if overran {
        eprintln!("warning: the accepts took {accept_s:.1} s, past the {} s hold: the drain overlaps them", a.hold);
    }

    bar.draining();
    let drain_began = Instant::now();
    let quiet = a.population.drain * 1_000_000;
    while !stats.complete() {
        let last = stats.last_arrival().unwrap_or(0).max(due);
        if clock.now_us() > last + quiet {
            break;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    bar.finish();
    let figures = stats.figures(accept_s, drain_began.elapsed().as_secs_f64());
    let paths = stats.arrivals().into_iter().map(|arrivals| DrainFigures::of(&arrivals, due)).collect();
    (figures, BacklogFigures { count: a.count, accept_s, hold_s: a.hold, overran, paths })
}
