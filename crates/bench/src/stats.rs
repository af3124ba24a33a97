//! What a run counts: requests and their answers, accepted notifications, deliveries by path and
//! class with their latency histograms, and what each delivery path should have received. Shared
//! by the senders, the webhook sink and the inbox streams.
//!
//! Everything is keyed by the intended send time `t` carried in each notification: only sends
//! intended inside the measurement window count, whenever their answer or delivery arrives.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::Class;
use crate::error::BenchError;
use crate::pace::Clock;
use crate::report::{Backlog, Latency, LoadFigures, PathFigures};

/// Largest latency recorded as itself: one hour, in microseconds; longer ones saturate.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Distinct error bodies kept as samples.
const ERROR_SAMPLES: usize = 5;

/// Where a notification was seen arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    /// The server's 2xx answer to the send.
    Accept,
    /// The webhook sink.
    Webhook,
    /// An inbox stream.
    Inbox,
}

impl Path {
    /// The name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Accept => "accept",
            Path::Webhook => "webhook",
            Path::Inbox => "inbox",
        }
    }
}

/// Measured deliveries on one path, summed over the classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrivals {
    /// Webhook or inbox.
    pub path: Path,
    /// Deliveries of measured sends.
    pub count: u64,
    /// Deliveries the accepted notifications should make.
    pub expected: u64,
    /// The latest of them (unix µs).
    pub last_arrival: Option<u64>,
    /// Of them, how many arrived in each whole second since the series origin.
    pub per_second: Vec<u64>,
}

/// Running totals for the progress bar, warmup included.
#[derive(Debug, Default)]
pub struct Live {
    /// Notifications (or healthz requests) sent.
    pub sent: AtomicU64,
    /// Of those, accepted.
    pub accepted: AtomicU64,
    /// Deliveries seen through the sink and the streams.
    pub delivered: AtomicU64,
    /// Failed requests and refused batch items.
    pub errors: AtomicU64,
}

/// The counters of a run.
#[derive(Debug)]
pub struct Stats {
    clock: Clock,
    /// Start of the load, of the measurement and its end (unix µs). Zero until the load starts,
    /// so that nothing arriving during setup (say, leftovers of an earlier run) counts.
    run_start: AtomicU64,
    from: AtomicU64,
    until: AtomicU64,
    /// Origin of the per-second arrival series (unix µs); zero while no series is kept.
    series_origin: AtomicU64,
    /// Totals for the progress bar.
    pub live: Live,
    /// An empty histogram to clone for each new row.
    blank: Histogram<u64>,
    inner: Mutex<Inner>,
}

/// One path and class.
#[derive(Debug)]
struct Row {
    /// Accepted notifications, or deliveries of notifications sent in the window.
    count: u64,
    /// Deliveries the accepted notifications should make on this path.
    expected: u64,
    /// Arrivals during the window, whenever sent: the steady delivery rate.
    arrivals: u64,
    /// The latest arrival counted in `count` (unix µs), zero before the first.
    last_arrival: u64,
    /// Deliveries counted in `count` by whole seconds since the series origin, when one is set.
    per_second: Vec<u64>,
    latency: Histogram<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    requests: u64,
    requests_ok: u64,
    rows: BTreeMap<(Path, &'static str), Row>,
    errors: BTreeMap<String, u64>,
    samples: Vec<String>,
    /// Delivery ids seen (webhook-id, inbox item id), to count a redelivery once.
    seen: HashSet<(Path, u128)>,
    duplicates: BTreeMap<&'static str, u64>,
    other: BTreeMap<&'static str, u64>,
    reconnects: u64,
}

impl Stats {
    /// Empty counters reading `clock`.
    pub fn new(clock: Clock) -> Result<Self, BenchError> {
        let blank = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .map_err(|e| BenchError::Other(format!("histogram: {e:?}")))?;
        Ok(Self {
            clock,
            run_start: AtomicU64::new(0),
            from: AtomicU64::new(0),
            until: AtomicU64::new(0),
            series_origin: AtomicU64::new(0),
            live: Live::default(),
            blank,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The clock every timestamp comes from.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Starts counting: the load starts at `run_start`, measurement covers `[from, until)`.
    pub fn open(&self, run_start: u64, from: u64, until: u64) {
        self.from.store(from, Ordering::SeqCst);
        self.until.store(until, Ordering::SeqCst);
        self.run_start.store(run_start, Ordering::SeqCst);
    }

    /// Also counts measured deliveries per second from `origin` (unix µs): arrivals before it
    /// fall into the first second.
    pub fn series_from(&self, origin: u64) {
        self.series_origin.store(origin, Ordering::SeqCst);
    }

    /// Whether a send intended at `t` is measured.
    pub fn in_window(&self, t: u64) -> bool {
        (self.from.load(Ordering::Relaxed)..self.until.load(Ordering::Relaxed)).contains(&t)
    }

    fn of_this_run(&self, t: u64) -> bool {
        let start = self.run_start.load(Ordering::Relaxed);
        start > 0 && t >= start
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not stop the counting: the counters stay consistent per call.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `n` notifications (or requests) are about to be sent.
    pub fn sent(&self, n: u64) {
        self.live.sent.fetch_add(n, Ordering::Relaxed);
    }

    /// An HTTP request intended at `t` was answered, successfully or not.
    pub fn request_done(&self, t: u64, ok: bool) {
        if self.in_window(t) {
            let mut inner = self.lock();
            inner.requests += 1;
            inner.requests_ok += u64::from(ok);
        }
    }

    /// `n` notifications of `label` intended at `t` were accepted at `done`; they should make
    /// `webhook` and `inbox` deliveries.
    pub fn accepted(&self, label: &'static str, t: u64, done: u64, n: u64, webhook: u64, inbox: u64) {
        self.live.accepted.fetch_add(n, Ordering::Relaxed);
        if !self.in_window(t) || n == 0 {
            return;
        }
        let blank = &self.blank;
        let mut inner = self.lock();
        let accept = row(&mut inner, blank, Path::Accept, label);
        accept.count += n;
        accept.latency.saturating_record_n(done.saturating_sub(t), n);
        for (path, expected) in [(Path::Webhook, webhook), (Path::Inbox, inbox)] {
            if expected > 0 {
                row(&mut inner, blank, path, label).expected += expected;
            }
        }
    }

    /// A request or a batch item intended at `t` failed; `key` is its status or kind of failure.
    pub fn failed(&self, t: u64, key: String, sample: Option<String>) {
        self.live.errors.fetch_add(1, Ordering::Relaxed);
        if !self.in_window(t) {
            return;
        }
        let mut inner = self.lock();
        if let Some(line) = sample.map(|s| format!("{key}: {s}"))
            && inner.samples.len() < ERROR_SAMPLES
            && !inner.samples.contains(&line)
        {
            inner.samples.push(line);
        }
        *inner.errors.entry(key).or_default() += 1;
    }

    /// A notification of `class` sent at `t` arrived on `path` at `arrival`, as delivery `id`.
    pub fn delivered(&self, path: Path, class: Class, t: u64, id: u128, arrival: u64) {
        if !self.of_this_run(t) {
            return;
        }
        let arrived_in_window = self.in_window(arrival);
        let measured = self.in_window(t);
        let origin = self.series_origin.load(Ordering::Relaxed);
        let blank = &self.blank;
        let mut inner = self.lock();
        if !inner.seen.insert((path, id)) {
            *inner.duplicates.entry(path.as_str()).or_default() += 1;
            return;
        }
        self.live.delivered.fetch_add(1, Ordering::Relaxed);
        let r = row(&mut inner, blank, path, class.as_str());
        r.arrivals += u64::from(arrived_in_window);
        if measured {
            r.count += 1;
            r.latency.saturating_record(arrival.saturating_sub(t));
            r.last_arrival = r.last_arrival.max(arrival);
            if origin > 0 {
                count_second(&mut r.per_second, arrival.saturating_sub(origin));
            }
        }
    }

    /// Something arrived on `path` that carries no bench send time (a digest, say).
    pub fn other(&self, path: Path) {
        if self.run_start.load(Ordering::Relaxed) > 0 {
            *self.lock().other.entry(path.as_str()).or_default() += 1;
        }
    }

    /// An inbox stream had to reconnect.
    pub fn reconnected(&self) {
        self.lock().reconnects += 1;
    }

    /// Whether every expected delivery of the measured sends has arrived.
    pub fn complete(&self) -> bool {
        self.lock().rows.iter().filter(|((p, _), _)| *p != Path::Accept).all(|(_, r)| r.count >= r.expected)
    }

    /// The latest measured delivery on any path (unix µs), if any has arrived.
    pub fn last_arrival(&self) -> Option<u64> {
        let inner = self.lock();
        inner.rows.iter().filter(|((p, _), _)| *p != Path::Accept).map(|(_, r)| r.last_arrival).max().filter(|t| *t > 0)
    }

    /// Measured deliveries per delivery path over all classes, for the paths that expect or got any.
    pub fn arrivals(&self) -> Vec<Arrivals> {
        let inner = self.lock();
        let mut out = Vec::new();
        for path in [Path::Webhook, Path::Inbox] {
            let mut a = Arrivals { path, count: 0, expected: 0, last_arrival: None, per_second: Vec::new() };
            let mut any = false;
            for r in inner.rows.iter().filter(|((p, _), _)| *p == path).map(|(_, r)| r) {
                any = true;
                a.count += r.count;
                a.expected += r.expected;
                a.last_arrival = a.last_arrival.max(Some(r.last_arrival).filter(|t| *t > 0));
                if a.per_second.len() < r.per_second.len() {
                    a.per_second.resize(r.per_second.len(), 0);
                }
                for (sum, n) in a.per_second.iter_mut().zip(&r.per_second) {
                    *sum += n;
                }
            }
            if any {
                out.push(a);
            }
        }
        out
    }

    /// The figures so far, with rates over `duration_s` of measurement.
    pub fn figures(&self, duration_s: f64, drain_s: f64) -> LoadFigures {
        let inner = self.lock();
        let per_s = |n: u64| n as f64 / duration_s;
        let mut paths = Vec::new();
        for path in [Path::Accept, Path::Webhook, Path::Inbox] {
            let mut rows: Vec<(&&str, &Row)> =
                inner.rows.iter().filter(|((p, _), _)| *p == path).map(|((_, l), r)| (l, r)).collect();
            // Classes in Herald's order of importance rather than alphabetically.
            rows.sort_by_key(|(label, _)| Class::ALL.iter().position(|c| c.as_str() == **label));
            let mut all = Row {
                count: 0,
                expected: 0,
                arrivals: 0,
                last_arrival: 0,
                per_second: Vec::new(),
                latency: self.blank.clone(),
            };
            for (label, r) in &rows {
                paths.push(figures_of(path, label, r, per_s));
                all.count += r.count;
                all.expected += r.expected;
                all.arrivals += r.arrivals;
                // Every row has the same bounds as `blank`, so adding cannot fail.
                let _ = all.latency.add(&r.latency);
            }
            if rows.len() > 1 {
                paths.push(figures_of(path, "all", &all, per_s));
            }
        }
        let accepted = paths.iter().filter(|p| p.path == "accept" && p.class != "all").map(|p| p.count).sum();
        LoadFigures {
            duration_s,
            requests: inner.requests,
            requests_ok: inner.requests_ok,
            accepted,
            accepted_per_s: per_s(accepted),
            errors: inner.errors.clone(),
            error_samples: inner.samples.clone(),
            paths,
            duplicates: inner.duplicates.clone(),
            other_deliveries: inner.other.clone(),
            stream_reconnects: inner.reconnects,
            drain_s,
            server_backlog: Backlog::default(),
            backlog: None,
        }
    }
}

fn row<'a>(inner: &'a mut Inner, blank: &Histogram<u64>, path: Path, label: &'static str) -> &'a mut Row {
    inner.rows.entry((path, label)).or_insert_with(|| Row {
        count: 0,
        expected: 0,
        arrivals: 0,
        last_arrival: 0,
        per_second: Vec::new(),
        latency: blank.clone(),
    })
}

/// Counts one arrival `since_origin_us` after the series origin in its whole second.
fn count_second(per_second: &mut Vec<u64>, since_origin_us: u64) {
    let second = (since_origin_us / 1_000_000) as usize;
    if per_second.len() <= second {
        per_second.resize(second + 1, 0);
    }
    per_second[second] += 1;
}

fn figures_of(path: Path, label: &str, r: &Row, per_s: impl Fn(u64) -> f64) -> PathFigures {
    let delivery = path != Path::Accept;
    PathFigures {
        path: path.as_str(),
        class: label.to_owned(),
        count: r.count,
        expected: delivery.then_some(r.expected),
        per_s: per_s(if delivery { r.arrivals } else { r.count }),
        latency: Latency::of(&r.latency),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> Stats {
        let s = Stats::new(Clock::start()).unwrap();
        s.open(1_000, 2_000, 3_000);
        s
    }

    #[test]
    fn only_the_window_counts() {
        let s = stats();
        s.accepted("social", 1_500, 1_600, 1, 1, 0);
        s.accepted("social", 2_500, 2_700, 1, 1, 1);
        s.delivered(Path::Webhook, Class::Social, 1_500, 1, 2_100);
        s.delivered(Path::Webhook, Class::Social, 2_500, 2, 3_100);
        s.delivered(Path::Webhook, Class::Social, 500, 3, 2_200);
        let f = s.figures(1.0, 0.0);
        assert_eq!(f.accepted, 1);
        let webhook = f.paths.iter().find(|p| p.path == "webhook").unwrap();
        assert_eq!((webhook.count, webhook.expected, webhook.per_s), (1, Some(1), 1.0));
        assert_eq!(webhook.latency.unwrap().max_us, 600);
        assert!(!s.complete(), "the inbox delivery is still missing");
        s.delivered(Path::Inbox, Class::Social, 2_500, 2, 3_200);
        assert!(s.complete());
    }

    #[test]
    fn a_redelivery_counts_once() {
        let s = stats();
        s.delivered(Path::Webhook, Class::Critical, 2_500, 7, 2_600);
        s.delivered(Path::Webhook, Class::Critical, 2_500, 7, 2_900);
        s.delivered(Path::Inbox, Class::Critical, 2_500, 7, 2_600);
        let f = s.figures(1.0, 0.0);
        assert_eq!(f.duplicates.get("webhook"), Some(&1));
        assert!(f.paths.iter().all(|p| p.count == 1));
    }

    #[test]
    fn arrivals_are_counted_per_second_from_the_origin() {
        let s = Stats::new(Clock::start()).unwrap();
        s.open(1_000, 1_000, u64::MAX);
        assert_eq!(s.last_arrival(), None);
        s.series_from(5_000_000);
        s.accepted("social", 1_000, 1_200, 4, 1, 3);
        for (id, arrival) in [(1, 4_999_000), (2, 5_200_000), (3, 7_100_000)] {
            s.delivered(Path::Inbox, Class::Social, 5_000_000, id, arrival);
        }
        s.delivered(Path::Webhook, Class::Social, 5_000_000, 4, 6_000_000);
        // Before the run: never counted, even though it lands after the origin.
        s.delivered(Path::Inbox, Class::Social, 500, 5, 9_000_000);
        assert_eq!(s.last_arrival(), Some(7_100_000));
        let a = s.arrivals();
        assert_eq!(
            a,
            vec![
                Arrivals {
                    path: Path::Webhook,
                    count: 1,
                    expected: 1,
                    last_arrival: Some(6_000_000),
                    per_second: vec![0, 1]
                },
                Arrivals {
                    path: Path::Inbox,
                    count: 3,
                    expected: 3,
                    last_arrival: Some(7_100_000),
                    per_second: vec![2, 0, 1]
                },
            ]
        );
        assert!(s.complete());
    }

    #[test]
    fn several_classes_get_an_all_row() {
        let s = stats();
        s.accepted("critical", 2_100, 2_200, 1, 1, 0);
        s.accepted("marketing", 2_100, 2_400, 3, 3, 0);
        let f = s.figures(2.0, 0.0);
        let all = f.paths.iter().find(|p| p.path == "accept" && p.class == "all").unwrap();
        assert_eq!((all.count, all.per_s, all.latency.unwrap().max_us), (4, 2.0, 300));
        assert_eq!(f.accepted, 4);
    }
}
