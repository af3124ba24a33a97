//! The senders: what one request sends (a notification, a batch, a health check), who each
//! notification goes to and what it should deliver, and the fixed-rate schedules and closed-loop
//! workers that issue requests until the run ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::api::{Api, excerpt};
use crate::cli::Class;
use crate::error::BenchError;
use crate::pace::Schedule;
use crate::setup::{user_id, watched};
use crate::stats::Stats;

/// What one request sends.
#[derive(Debug, Clone, Copy)]
pub enum Shot {
    /// One notification of a class to `POST /v1/notifications`.
    Single(Class),
    /// This many notifications of a class to `POST /v1/notifications/batch`.
    Batch(Class, u32),
    /// `GET /healthz`.
    Healthz,
}

/// How requests are spaced.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// This many per second on a fixed schedule, timed from the intended send times.
    Rate(f64),
    /// This many workers, each sending its next request when the last is answered.
    Closed(u32),
}

/// One stream of requests.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    /// What each request sends.
    pub shot: Shot,
    /// How requests are spaced.
    pub pace: Pace,
}

/// Who the notifications go to: `users` bench users round-robin, `fanout` per notification;
/// `streams` of them, spread evenly, have an open inbox stream.
#[derive(Debug, Clone, Copy)]
pub struct Audience {
    /// Bench users.
    pub users: u64,
    /// Watched users.
    pub streams: u64,
    /// Recipients per notification.
    pub fanout: u64,
}

/// Deliveries Herald should make for a notification of `class` to `n` users of whom `watched` have
/// an open inbox stream, as (webhook, inbox): every watched user sees it on the stream, and every
/// user gets the webhook except that social notifications stay in the inbox of online users.
pub fn expected(class: Class, n: u64, watched: u64) -> (u64, u64) {
    let webhook = if class == Class::Social { n - watched } else { n };
    (webhook, watched)
}

/// Sends requests and counts their answers.
#[derive(Debug)]
pub struct Sender {
    api: Api,
    stats: Arc<Stats>,
    audience: Audience,
    /// The next recipient, round-robin over the users.
    cursor: AtomicU64,
    /// The instant every notification is due (unix µs) with its `send_at`, when they are scheduled.
    due: Option<(u64, String)>,
}

impl Sender {
    /// A sender to `api`, counting in `stats`.
    pub fn new(api: Api, stats: Arc<Stats>, audience: Audience) -> Self {
        Self { api, stats, audience, cursor: AtomicU64::new(0), due: None }
    }

    /// Schedules every notification for `due` (unix µs, whole milliseconds: Herald keeps due times
    /// in milliseconds) and makes it carry `due` as its time, so that deliveries are timed from
    /// the instant they became due rather than from the send.
    pub fn scheduled(self, due: u64) -> Self {
        Self { due: Some((due, send_at(due))), ..self }
    }

    /// The next notification's number, its recipients and how many of them are watched.
    fn recipients(&self) -> (u64, Vec<String>, u64) {
        let a = self.audience;
        let first = self.cursor.fetch_add(a.fanout, Ordering::Relaxed);
        let users: Vec<u64> = (first..first + a.fanout).map(|i| i % a.users).collect();
        let watched = users.iter().filter(|u| watched(**u, a.users, a.streams)).count() as u64;
        (first / a.fanout, users.into_iter().map(user_id).collect(), watched)
    }

    /// One notification of `class` intended at `t` (or scheduled), with what it should deliver.
    fn notification(&self, class: Class, t: u64) -> (Value, (u64, u64)) {
        let (number, to, watched) = self.recipients();
        let n = to.len() as u64;
        let t = self.due.as_ref().map_or(t, |(due, _)| *due);
        // `n` makes every notification's content unique: Herald suppresses the same content
        // reaching a user twice within minutes, and a batch's items share one send time.
        let mut body = json!({"template": class.template(), "to": to, "data": {"t": t, "n": number}});
        if let Some((_, at)) = &self.due {
            body["send_at"] = at.as_str().into();
        }
        (body, expected(class, n, watched))
    }

    /// Sends `req` for the request intended at `t`: the 2xx answer's time and body, or none after
    /// counting the failure.
    async fn send(&self, req: Result<RequestBuilder, BenchError>, t: u64) -> Option<(u64, Bytes)> {
        let answer = match req {
            Ok(r) => r.send().await.map_err(BenchError::Http),
            Err(e) => Err(e),
        };
        let (status, body) = match answer {
            Ok(resp) => {
                let status = resp.status();
                // Read the whole answer: the connection is reused only once the body is consumed.
                match resp.bytes().await {
                    Ok(body) => (status, body),
                    Err(e) => return self.transport_failure(t, &BenchError::Http(e)),
                }
            }
            Err(e) => return self.transport_failure(t, &e),
        };
        let done = self.stats.clock().now_us();
        let ok = status.is_success();
        self.stats.request_done(t, ok);
        if ok {
            Some((done, body))
        } else {
            let sample = excerpt(&String::from_utf8_lossy(&body));
            self.stats.failed(t, status.as_u16().to_string(), Some(sample));
            None
        }
    }

    fn transport_failure(&self, t: u64, e: &BenchError) -> Option<(u64, Bytes)> {
        let (key, why) = match e {
            BenchError::Http(h) if h.is_timeout() => ("timeout", causes(h)),
            BenchError::Http(h) if h.is_connect() => ("connect", causes(h)),
            BenchError::Http(h) => ("request", causes(h)),
            other => ("request", causes(other)),
        };
        self.stats.request_done(t, false);
        self.stats.failed(t, key.to_owned(), Some(why));
        None
    }

    /// Sends one request of `shot` intended at `t` and counts what comes back.
    async fn fire(&self, shot: Shot, t: u64) {
        match shot {
            Shot::Healthz => {
                self.stats.sent(1);
                if let Some((done, _)) = self.send(self.api.request(Method::GET, "/healthz"), t).await {
                    self.stats.accepted("healthz", t, done, 1, 0, 0);
                }
            }
            Shot::Single(class) => {
                self.stats.sent(1);
                let (body, (webhook, inbox)) = self.notification(class, t);
                let req = self.api.request(Method::POST, "/v1/notifications").map(|r| r.json(&body));
                if let Some((done, _)) = self.send(req, t).await {
                    self.stats.accepted(class.as_str(), t, done, 1, webhook, inbox);
                }
            }
            Shot::Batch(class, size) => {
                self.stats.sent(u64::from(size));
                let (items, expect): (Vec<Value>, Vec<(u64, u64)>) =
                    (0..size).map(|_| self.notification(class, t)).unzip();
                let req = self
                    .api
                    .request(Method::POST, "/v1/notifications/batch")
                    .map(|r| r.json(&json!({"notifications": items})));
                if let Some((done, body)) = self.send(req, t).await {
                    self.batch_results(class, t, done, &body, &expect);
                }
            }
        }
    }

    /// Counts a batch answer item by item: each result is an accepted notification or a problem.
    fn batch_results(&self, class: Class, t: u64, done: u64, body: &[u8], expect: &[(u64, u64)]) {
        let answer: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let Some(results) = answer["results"].as_array() else {
            self.stats.failed(t, "unreadable batch answer".into(), Some(excerpt(&String::from_utf8_lossy(body))));
            return;
        };
        let (mut n, mut webhook, mut inbox) = (0, 0, 0);
        for (result, (w, i)) in results.iter().zip(expect) {
            if result.get("id").is_some() {
                n += 1;
                webhook += w;
                inbox += i;
            } else {
                let status = result["error"]["status"].as_u64().map_or_else(|| "?".into(), |s| s.to_string());
                self.stats.failed(t, format!("item {status}"), Some(excerpt(&result["error"].to_string())));
            }
        }
        self.stats.accepted(class.as_str(), t, done, n, webhook, inbox);
    }
}

/// `us` (unix µs) as an RFC 3339 UTC time, to the microsecond when it has a fraction.
pub fn send_at(us: u64) -> String {
    i64::try_from(us)
        .ok()
        .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        .map_or_else(|| jiff::Timestamp::MAX.to_string(), |t| t.to_string())
}

/// An error with its causes: reqwest's own message leaves out why (refused, reset, timed out).
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Runs every flow from `start` to `end` (unix µs) and returns once every request is answered.
/// Scheduled sends share `max_in_flight`; beyond it they wait, and their lateness counts.
pub async fn run(sender: Arc<Sender>, flows: &[Flow], max_in_flight: u32, start: u64, end: u64) {
    let limit = Arc::new(Semaphore::new(max_in_flight as usize));
    let mut drivers = JoinSet::new();
    for flow in flows {
        match flow.pace {
            Pace::Rate(rate) => {
                drivers.spawn(scheduled(sender.clone(), flow.shot, Schedule::new(start, rate), end, limit.clone()));
            }
            Pace::Closed(workers) => {
                for _ in 0..workers {
                    drivers.spawn(closed(sender.clone(), flow.shot, end));
                }
            }
        }
    }
    while drivers.join_next().await.is_some() {}
    // Every permit back means every scheduled send has been answered.
    let _ = limit.acquire_many(max_in_flight).await;
}

/// Sends `count` notifications of `class` in batches of up to `size` from `workers` closed-loop
/// workers (each sends its next batch when the last is answered); returns once every batch is
/// answered. The last batch may be smaller.
pub async fn run_count(sender: Arc<Sender>, class: Class, size: u32, workers: u32, count: u64) {
    let left = Arc::new(AtomicU64::new(count));
    let mut drivers = JoinSet::new();
    for _ in 0..workers {
        let (sender, left) = (sender.clone(), left.clone());
        drivers.spawn(async move {
            while let Some(n) = take(&left, size) {
                let t = sender.stats.clock().now_us();
                sender.fire(Shot::Batch(class, n), t).await;
            }
        });
    }
    while drivers.join_next().await.is_some() {}
}

/// Takes the next batch of up to `size` from what is `left` to send; none once all is taken.
fn take(left: &AtomicU64, size: u32) -> Option<u32> {
    let before = left
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| (l > 0).then(|| l.saturating_sub(size.into())))
        .ok()?;
    // At most `size`, so it fits.
    Some(before.min(size.into()) as u32)
}

async fn scheduled(sender: Arc<Sender>, shot: Shot, schedule: Schedule, end: u64, limit: Arc<Semaphore>) {
    let clock = sender.stats.clock();
    for k in 0u64.. {
        let t = schedule.at(k);
        if t >= end {
            break;
        }
        tokio::time::sleep_until(clock.instant_at(t).into()).await;
        let Ok(permit) = limit.clone().acquire_owned().await else { break };
        let sender = sender.clone();
        tokio::spawn(async move {
            sender.fire(shot, t).await;
            drop(permit);
        });
    }
}

async fn closed(sender: Arc<Sender>, shot: Shot, end: u64) {
    let clock = sender.stats.clock();
    loop {
        let t = clock.now_us();
        if t >= end {
            break;
        }
        sender.fire(shot, t).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pace::Clock;

    #[test]
    fn social_stays_in_the_inbox_of_online_users() {
        assert_eq!(expected(Class::Social, 4, 1), (3, 1));
        assert_eq!(expected(Class::Marketing, 4, 1), (4, 1));
        assert_eq!(expected(Class::Critical, 1, 0), (1, 0));
    }

    #[test]
    fn batches_take_what_is_left() {
        let left = AtomicU64::new(2_500);
        let sizes: Vec<u32> = std::iter::from_fn(|| take(&left, 1_000)).collect();
        assert_eq!(sizes, vec![1_000, 1_000, 500]);
        assert_eq!(take(&left, 1_000), None);
        assert_eq!(left.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn send_at_is_rfc3339_utc() {
        assert_eq!(send_at(1_767_225_600_000_000), "2026-01-01T00:00:00Z");
        assert_eq!(send_at(1_767_225_605_123_000), "2026-01-01T00:00:05.123Z");
    }

    #[test]
    fn scheduled_notifications_carry_the_due_instant() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let api = Api::new("http://127.0.0.1:1", None, false).unwrap();
        let stats = Arc::new(Stats::new(Clock::start()).unwrap());
        let s = Sender::new(api, stats, Audience { users: 2, streams: 1, fanout: 1 }).scheduled(1_767_225_605_123_000);
        let (body, expect) = s.notification(Class::Social, 42);
        assert_eq!(body["send_at"], "2026-01-01T00:00:05.123Z");
        assert_eq!(body["data"], json!({"t": 1_767_225_605_123_000u64, "n": 0}));
        assert_eq!(expect, (0, 1));
    }

    #[test]
    fn recipients_go_round_robin() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let api = Api::new("http://127.0.0.1:1", None, false).unwrap();
        let stats = Arc::new(Stats::new(Clock::start()).unwrap());
        let s = Sender::new(api, stats, Audience { users: 5, streams: 2, fanout: 3 });
        // Users 0 and 3 are the watched ones (2 of 5, spread out).
        assert_eq!(s.recipients(), (0, vec!["bench-u0".into(), "bench-u1".into(), "bench-u2".into()], 1));
        assert_eq!(s.recipients(), (1, vec!["bench-u3".into(), "bench-u4".into(), "bench-u0".into()], 2));
    }
}
