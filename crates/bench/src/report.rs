//! The run's summary: every figure with the command line, the server's version and the machine,
//! printed as a table and written as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::{Command, Pacing};
use crate::error::BenchError;
use crate::machine::Machine;
use crate::memory::MemoryReport;
use crate::sqlite::SqliteFigures;
use crate::stats::Arrivals;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest seen.
    pub max_us: u64,
}

impl Latency {
    /// The percentiles of `h`, or none when it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<Latency> {
        (!h.is_empty()).then(|| Latency {
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        })
    }
}

/// One path (accept, webhook, inbox) and class.
#[derive(Debug, Clone, Serialize)]
pub struct PathFigures {
    /// `accept`, `webhook` or `inbox`.
    pub path: &'static str,
    /// The class, `healthz`, or `all` for the sum of the classes.
    pub class: String,
    /// Accepted notifications, or deliveries of the notifications sent in the window.
    pub count: u64,
    /// Deliveries the accepted notifications should make here (none for `accept`).
    pub expected: Option<u64>,
    /// Per second of the window: accepted, or deliveries arriving during it.
    pub per_s: f64,
    /// From the intended send time to the answer or the arrival.
    pub latency: Option<Latency>,
}

/// What a load run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadFigures {
    /// Seconds measured.
    pub duration_s: f64,
    /// HTTP requests intended in the window.
    pub requests: u64,
    /// Of those, answered with a 2xx.
    pub requests_ok: u64,
    /// Notifications accepted (for `healthz`, 2xx answers).
    pub accepted: u64,
    /// Accepted per second.
    pub accepted_per_s: f64,
    /// Failures by status (`503`, `item 422`) or kind (`timeout`, `connect`).
    pub errors: BTreeMap<String, u64>,
    /// The first few failures with their bodies.
    pub error_samples: Vec<String>,
    /// Counts, rates and latencies per path and class.
    pub paths: Vec<PathFigures>,
    /// Redeliveries of something already counted, per path.
    pub duplicates: BTreeMap<&'static str, u64>,
    /// Deliveries without a bench send time (digests), per path.
    pub other_deliveries: BTreeMap<&'static str, u64>,
    /// Inbox streams that had to reconnect.
    pub stream_reconnects: u64,
    /// Seconds spent waiting for deliveries after the last answer.
    pub drain_s: f64,
    /// Work in Herald's queues before and after the run: a backlog at the start means an earlier
    /// run's deliveries competed with this one.
    pub server_backlog: Backlog,
    /// For `backlog`: how fast what became due at once drained.
    pub backlog: Option<BacklogFigures>,
}

/// What a backlog run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BacklogFigures {
    /// Notifications sent, all due at one instant.
    pub count: u64,
    /// Seconds the accepts took.
    pub accept_s: f64,
    /// Seconds from the first send to the due instant.
    pub hold_s: u64,
    /// Whether the accepts ran past the due instant, so that the drain competed with them.
    pub overran: bool,
    /// The drain on each delivery path.
    pub paths: Vec<DrainFigures>,
}

/// How one delivery path drained the backlog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrainFigures {
    /// `webhook` or `inbox`.
    pub path: &'static str,
    /// Deliveries that arrived.
    pub delivered: u64,
    /// Deliveries the backlog should make here.
    pub expected: u64,
    /// Seconds from the due instant to the last arrival.
    pub drain_s: f64,
    /// Deliveries per second over that time.
    pub per_s: f64,
    /// The most deliveries in any one whole second.
    pub peak_per_s: u64,
}

impl DrainFigures {
    /// The drain of `a`, timed from `due` (unix µs).
    pub fn of(a: &Arrivals, due: u64) -> Self {
        let drain_s = a.last_arrival.map_or(0.0, |last| last.saturating_sub(due) as f64 / 1e6);
        // Under a millisecond everything arrived at once: the rate is not measurable.
        let per_s = if drain_s >= 1e-3 { a.count as f64 / drain_s } else { 0.0 };
        DrainFigures {
            path: a.path.as_str(),
            delivered: a.count,
            expected: a.expected,
            drain_s,
            per_s,
            peak_per_s: a.per_second.iter().copied().max().unwrap_or(0),
        }
    }
}

/// The sum of Herald's queue depths, when its metrics say.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Backlog {
    /// Before the first send.
    pub at_start: Option<u64>,
    /// After the drain.
    pub at_end: Option<u64>,
}

/// The whole summary, as written with `--json`.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The exact command line.
    pub command_line: Vec<String>,
    /// The subcommand.
    pub command: &'static str,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// Herald's base URL (none for `sqlite`).
    pub url: Option<String>,
    /// Herald's version from `/openapi.json`.
    pub herald_version: Option<String>,
    /// The machine the run was on.
    pub machine: Machine,
    /// The parsed options of the subcommand.
    pub settings: serde_json::Value,
    /// A load run's figures.
    pub load: Option<LoadFigures>,
    /// The storage reference's figures.
    pub sqlite: Option<SqliteFigures>,
    /// The server's memory over the run.
    pub memory: Option<MemoryReport>,
}

impl Summary {
    /// Writes the JSON summary to `path`.
    pub fn write_json(&self, path: &Path) -> Result<(), BenchError> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        std::fs::write(path, text)?;
        Ok(())
    }
}

/// A duration in microseconds, readable at a glance with three significant digits.
pub fn format_us(us: u64) -> String {
    let three = |v: f64, unit: &str| match v {
        v if v < 10.0 => format!("{v:.2} {unit}"),
        v if v < 100.0 => format!("{v:.1} {unit}"),
        v => format!("{v:.0} {unit}"),
    };
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => three(us as f64 / 1e3, "ms"),
        _ => three(us as f64 / 1e6, "s"),
    }
}

/// A rate per second.
fn format_rate(r: f64) -> String {
    if r >= 100.0 { format!("{r:.0}") } else { format!("{r:.1}") }
}

/// What the load was, in one line.
fn describe(command: &Command) -> String {
    let pace = |p: &Pacing| match p.rate {
        Some(r) => format!("{}/s on a fixed schedule", format_rate(r)),
        None => format!("flat out, {} in flight", p.concurrency),
    };
    let (load, timing, population) = match command {
        Command::Single(a) => (format!("{}, {}", a.class.as_str(), pace(&a.pacing)), &a.timing, Some(&a.population)),
        Command::Batch(a) => (
            format!("{}, {} per batch, {} in flight", a.class.as_str(), a.batch_size, a.concurrency),
            &a.timing,
            Some(&a.population),
        ),
        Command::Mixed(a) => (format!("{} per second", a.mix), &a.timing, Some(&a.population)),
        Command::Backlog(a) => {
            let p = &a.population;
            return format!(
                "{} {}, due {} s after the first send, {} per batch, {} in flight; {} users, {} streams, fanout {}",
                a.count,
                a.class.as_str(),
                a.hold,
                a.batch_size,
                a.concurrency,
                p.users,
                p.streams,
                p.fanout
            );
        }
        Command::Healthz(a) => (pace(&a.pacing), &a.timing, None),
        Command::Sqlite(_) => return String::new(),
    };
    let mut out = format!("{load}; {} s measured after {} s warmup", timing.duration, timing.warmup);
    if let Some(p) = population {
        let _ = write!(out, "; {} users, {} streams, fanout {}", p.users, p.streams, p.fanout);
    }
    out
}

/// The readable table of a summary.
pub fn table(s: &Summary, command: &Command) -> String {
    let mut out = String::new();
    let version = s.herald_version.as_deref().map(|v| format!("Herald {v}")).unwrap_or_else(|| "Herald".into());
    match &s.url {
        Some(url) => {
            let _ = writeln!(out, "herald-bench {}: {version} at {url}, {}", s.command, s.started_at);
        }
        None => {
            let _ = writeln!(out, "herald-bench {}: {}", s.command, s.started_at);
        }
    }
    let _ = writeln!(out, "{:<10} {} CPUs, {}", "machine", s.machine.cpus, s.machine.cpu_model);
    if let Some(l) = &s.load {
        load_table(&mut out, l, &describe(command));
    }
    if let Some(q) = &s.sqlite {
        sqlite_table(&mut out, q);
    }
    if let Some(m) = &s.memory {
        let slope = m.slope_mib_per_min.map_or_else(|| "n/a".into(), |v| format!("{v:+.2} MiB/min"));
        let _ = writeln!(
            out,
            "{:<10} pid {} resident: start {:.1} MiB, max {:.1} MiB, end {:.1} MiB, slope {slope} over {} samples",
            "memory", m.pid, m.start_mib, m.max_mib, m.end_mib, m.samples
        );
    }
    out
}

fn load_table(out: &mut String, l: &LoadFigures, load: &str) {
    let failed = l.requests - l.requests_ok;
    let _ = writeln!(out, "{:<10} {load}", "load");
    let _ = writeln!(
        out,
        "{:<10} {} in {} s, {} ok, {failed} failed; {} accepted ({}/s); drained {:.1} s",
        "requests",
        l.requests,
        l.duration_s,
        l.requests_ok,
        l.accepted,
        format_rate(l.accepted_per_s),
        l.drain_s
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<8} {:<14} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "path", "class", "count", "expected", "per s", "p50", "p99", "p99.9", "max"
    );
    for p in &l.paths {
        let expected = p.expected.map_or_else(|| "-".into(), |e| e.to_string());
        let lat = |f: fn(&Latency) -> u64| p.latency.as_ref().map_or_else(|| "-".into(), |l| format_us(f(l)));
        let _ = writeln!(
            out,
            "{:<8} {:<14} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            p.path,
            p.class,
            p.count,
            expected,
            format_rate(p.per_s),
            lat(|l| l.p50_us),
            lat(|l| l.p99_us),
            lat(|l| l.p999_us),
            lat(|l| l.max_us)
        );
    }
    let _ = writeln!(out);
    if l.errors.is_empty() {
        let _ = writeln!(out, "{:<10} none", "errors");
    } else {
        let by: Vec<String> = l.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        let _ = writeln!(out, "{:<10} {}", "errors", by.join(", "));
        for sample in &l.error_samples {
            let _ = writeln!(out, "{:<10} {sample}", "");
        }
    }
    for p in l.paths.iter().filter(|p| p.class != "all") {
        if let Some(e) = p.expected.filter(|e| *e > p.count) {
            // Not one webhook arriving points at the sink being unreachable rather than held back.
            let why = if p.path == "webhook" && p.count == 0 {
                "Herald reaches the sink on loopback only when outbound.allow_private covers it: start it with \
                 HERALD_OUTBOUND__ALLOW_PRIVATE=127.0.0.1"
            } else {
                "a frequency cap, the hourly ceiling, overload shedding or too short a --drain can hold them back"
            };
            let _ = writeln!(
                out,
                "{:<10} {} {}: {} of {e} expected deliveries did not arrive ({why})",
                "missing",
                p.path,
                p.class,
                e - p.count
            );
        }
    }
    let notes = [("duplicates", &l.duplicates), ("other", &l.other_deliveries)];
    for (name, counts) in notes.into_iter().filter(|(_, c)| !c.is_empty()) {
        let by: Vec<String> = counts.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        let _ = writeln!(out, "{name:<10} {}", by.join(", "));
    }
    let Backlog { at_start, at_end } = l.server_backlog;
    if at_start.is_some() || at_end.is_some() {
        let show = |n: Option<u64>| n.map_or_else(|| "an unknown number".into(), |n| n.to_string());
        let _ = writeln!(
            out,
            "{:<10} Herald's queues held {} at the start, {} after the drain",
            "backlog",
            show(at_start),
            show(at_end)
        );
    }
    if let Some(b) = &l.backlog {
        backlog_table(out, b);
    }
    if l.stream_reconnects > 0 {
        let _ = writeln!(out, "{:<10} {} inbox stream reconnects", "streams", l.stream_reconnects);
    }
}

fn backlog_table(out: &mut String, b: &BacklogFigures) {
    let _ = writeln!(out);
    let overran = if b.overran { ", past the due instant: the drain competed with them" } else { "" };
    let _ = writeln!(
        out,
        "{:<10} {} accepted in {:.1} s{overran}; drain from the due instant ({} s after the first send):",
        "backlog", b.count, b.accept_s, b.hold_s
    );
    let _ = writeln!(
        out,
        "{:<8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "path", "delivered", "expected", "seconds", "per s", "peak/s"
    );
    for p in &b.paths {
        let _ = writeln!(
            out,
            "{:<8} {:>9} {:>9} {:>9.1} {:>9} {:>9}",
            p.path,
            p.delivered,
            p.expected,
            p.drain_s,
            format_rate(p.per_s),
            p.peak_per_s
        );
    }
}

fn sqlite_table(out: &mut String, q: &SqliteFigures) {
    let _ = writeln!(
        out,
        "{:<10} fresh files in {} (WAL, synchronous=FULL), rows of {} bytes",
        "sqlite", q.dir, q.row_bytes
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<10} {:>10} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "rows/txn", "rows", "seconds", "rows/s", "txn/s", "txn p50", "txn p99"
    );
    for m in &q.modes {
        let lat = |f: fn(&Latency) -> u64| m.transaction.as_ref().map_or_else(|| "-".into(), |l| format_us(f(l)));
        let _ = writeln!(
            out,
            "{:<10} {:>10} {:>8.1} {:>10} {:>10} {:>10} {:>10}",
            m.rows_per_transaction,
            m.rows,
            m.seconds,
            format_rate(m.rows_per_s),
            format_rate(m.transactions_per_s),
            lat(|l| l.p50_us),
            lat(|l| l.p99_us)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_is_timed_from_the_due_instant() {
        let a = Arrivals {
            path: crate::stats::Path::Inbox,
            count: 10_000,
            expected: 10_000,
            last_arrival: Some(4_500_000),
            per_second: vec![3_000, 4_000, 3_000],
        };
        let d = DrainFigures::of(&a, 2_000_000);
        assert_eq!((d.path, d.delivered, d.expected, d.peak_per_s), ("inbox", 10_000, 10_000, 4_000));
        assert!((d.drain_s - 2.5).abs() < 1e-9 && (d.per_s - 4_000.0).abs() < 1e-6, "{d:?}");
        let mut out = String::new();
        backlog_table(
            &mut out,
            &BacklogFigures { count: 10_000, accept_s: 1.2, hold_s: 2, overran: false, paths: vec![d] },
        );
        assert!(out.contains("inbox        10000     10000       2.5      4000      4000"), "{out}");
        let none = DrainFigures::of(&Arrivals { last_arrival: None, count: 0, per_second: vec![], ..a }, 2_000_000);
        assert_eq!((none.drain_s, none.per_s, none.peak_per_s), (0.0, 0.0, 0));
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(format_us(0), "0 µs");
        assert_eq!(format_us(999), "999 µs");
        assert_eq!(format_us(1_000), "1.00 ms");
        assert_eq!(format_us(3_141), "3.14 ms");
        assert_eq!(format_us(31_415), "31.4 ms");
        assert_eq!(format_us(314_159), "314 ms");
        assert_eq!(format_us(1_500_000), "1.50 s");
        assert_eq!(format_us(125_000_000), "125 s");
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        assert_eq!(Latency::of(&h), None);
        for v in 1..=1000 {
            h.record(v).unwrap();
        }
        let l = Latency::of(&h).unwrap();
        assert_eq!((l.p50_us, l.p99_us, l.p999_us, l.max_us), (500, 990, 999, 1000));
    }

    #[test]
    fn the_table_shows_every_row_and_what_is_missing() {
        let latency = Some(Latency { p50_us: 2_100, p99_us: 9_870, p999_us: 12_000, max_us: 15_000 });
        let l = LoadFigures {
            duration_s: 5.0,
            requests: 500,
            requests_ok: 499,
            accepted: 499,
            accepted_per_s: 99.8,
            errors: BTreeMap::from([("503".to_owned(), 1)]),
            error_samples: vec!["503: overloaded".into()],
            paths: vec![
                PathFigures {
                    path: "accept",
                    class: "social".into(),
                    count: 499,
                    expected: None,
                    per_s: 99.8,
                    latency,
                },
                PathFigures {
                    path: "webhook",
                    class: "social".into(),
                    count: 370,
                    expected: Some(374),
                    per_s: 74.0,
                    latency: None,
                },
            ],
            duplicates: BTreeMap::new(),
            other_deliveries: BTreeMap::new(),
            stream_reconnects: 0,
            drain_s: 10.0,
            server_backlog: Backlog::default(),
            backlog: None,
        };
        let mut out = String::new();
        load_table(&mut out, &l, "social");
        assert!(
            out.contains(
                "accept   social               499         -      99.8   2.10 ms   9.87 ms   12.0 ms   15.0 ms"
            ),
            "{out}"
        );
        assert!(out.contains("webhook  social               370       374      74.0         -"), "{out}");
        assert!(out.contains("errors     503: 1\n           503: overloaded"), "{out}");
        assert!(out.contains("webhook social: 4 of 374 expected deliveries did not arrive"), "{out}");

        let webhook = l.paths.iter().find(|p| p.path == "webhook").unwrap().clone();
        let unreached = LoadFigures { paths: vec![PathFigures { count: 0, ..webhook }], ..l };
        let mut out = String::new();
        load_table(&mut out, &unreached, "social");
        assert!(out.contains("374 of 374 expected deliveries did not arrive (Herald reaches the sink"), "{out}");
        assert!(out.contains("HERALD_OUTBOUND__ALLOW_PRIVATE=127.0.0.1"), "{out}");
    }
}
