//! Inbox watchers: one Server-Sent Events stream per watched user
//! (`GET /v1/me/inbox/stream?token=...`), recording each `event: notification` item's latency from
//! the send time rendered into its body. A dropped stream resumes after the last item it saw.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::api::Api;
use crate::cli::Class;
use crate::error::BenchError;
use crate::stats::{Path, Stats};

/// How long every stream has to be live before the run gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause before reconnecting a dropped stream.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// The running watchers.
#[derive(Debug)]
pub struct Watchers {
    tasks: Vec<JoinHandle<()>>,
}

impl Watchers {
    /// Closes every stream.
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Opens one stream per token and returns once every one of them is live, so that no send of the
/// run can precede its user being online.
pub async fn watch(api: &Api, tokens: Vec<String>, stats: Arc<Stats>) -> Result<Watchers, BenchError> {
    let (live_tx, mut live_rx) = mpsc::channel::<Result<(), String>>(tokens.len().max(1));
    let want = tokens.len();
    let tasks = tokens
        .into_iter()
        .map(|token| tokio::spawn(run(api.clone(), token, stats.clone(), live_tx.clone())))
        .collect::<Vec<_>>();
    drop(live_tx);
    let watchers = Watchers { tasks };
    let waited = tokio::time::timeout(CONNECT_TIMEOUT, async {
        for _ in 0..want {
            match live_rx.recv().await {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(e),
                None => return Err("a stream ended before it was live".to_owned()),
            }
        }
        Ok(())
    })
    .await;
    match waited {
        Ok(Ok(())) => Ok(watchers),
        Ok(Err(e)) => {
            watchers.stop();
            Err(BenchError::Other(format!("inbox stream: {e}")))
        }
        Err(_) => {
            watchers.stop();
            Err(BenchError::Other(format!("inbox streams were not all live after {}s", CONNECT_TIMEOUT.as_secs())))
        }
    }
}

/// One user's stream, reconnected with `Last-Event-ID` until the run stops it.
async fn run(api: Api, token: String, stats: Arc<Stats>, live: mpsc::Sender<Result<(), String>>) {
    let mut live = Some(live);
    let mut last_id: Option<String> = None;
    loop {
        let result = follow(&api, &token, &stats, &mut last_id, &mut live).await;
        if let Some(first) = live.take() {
            // It never became live: the run cannot start without it.
            let _ = first.send(Err(result.err().unwrap_or_else(|| "closed at once".into()))).await;
            return;
        }
        stats.reconnected();
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

/// Reads one connection of a stream until it ends.
async fn follow(
    api: &Api,
    token: &str,
    stats: &Stats,
    last_id: &mut Option<String>,
    live: &mut Option<mpsc::Sender<Result<(), String>>>,
) -> Result<(), String> {
    let mut url = api.url("/v1/me/inbox/stream").map_err(|e| e.to_string())?;
    url.query_pairs_mut().append_pair("token", token);
    let mut req = api.stream_client().request(Method::GET, url);
    if let Some(id) = last_id.as_deref() {
        req = req.header("last-event-id", id);
    }
    let mut resp = req.send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(format!("{status}: {}", crate::api::excerpt(&body)));
    }
    let mut parser = SseParser::default();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        let arrival = stats.clock().now_us();
        for event in parser.feed(&chunk) {
            if let Some(id) = event.id.clone() {
                *last_id = Some(id);
            }
            match event.event.as_str() {
                // Herald sends the unread count right after subscribing: from then on nothing is missed.
                "unread_count" => {
                    if let Some(tx) = live.take() {
                        let _ = tx.send(Ok(())).await;
                    }
                }
                "notification" => match parse_item(&event.data) {
                    Some((class, t, id)) => stats.delivered(Path::Inbox, class, t, id, arrival),
                    None => stats.other(Path::Inbox),
                },
                _ => {}
            }
        }
    }
    Ok(())
}

/// One Server-Sent Event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` (empty means `message`).
    pub event: String,
    /// `data:` lines joined by newlines.
    pub data: String,
    /// `id:`, when given.
    pub id: Option<String>,
}

/// Turns a byte stream into events; chunks may split lines anywhere.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Feeds a chunk and returns the events it completes.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                let event = std::mem::take(&mut self.current);
                if std::mem::take(&mut self.has_data) || !event.event.is_empty() {
                    out.push(event);
                }
                continue;
            }
            if line.starts_with(':') {
                continue; // a comment (keep-alive)
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.current.event = value.to_owned(),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                "id" => self.current.id = Some(value.to_owned()),
                _ => {}
            }
        }
        out
    }
}

/// The parts of an inbox item the bench reads: the title names the class, the body is the send time.
#[derive(Deserialize)]
struct Item {
    id: uuid::Uuid,
    title: Option<String>,
    body: Option<String>,
}

/// The class, send time and id of a bench inbox item; none for anything else (a digest, say).
fn parse_item(data: &str) -> Option<(Class, u64, u128)> {
    let item: Item = serde_json::from_str(data).ok()?;
    let class = Class::parse(item.title.as_deref()?)?;
    let t = item.body.as_deref()?.trim().parse().ok()?;
    Some((class, t, item.id.as_u128()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.feed(b"event: unread_count\ndata: {\"unread_count\":0}\n").is_empty());
        let got = p.feed(b"\n: keep-alive\n\nevent: notification\r\nid: 7\r\ndata: {\"a\":");
        assert_eq!(got, vec![SseEvent { event: "unread_count".into(), data: "{\"unread_count\":0}".into(), id: None }]);
        let got = p.feed(b"1}\r\n\r\n");
        assert_eq!(
            got,
            vec![SseEvent { event: "notification".into(), data: "{\"a\":1}".into(), id: Some("7".into()) }]
        );
    }

    #[test]
    fn data_lines_join() {
        let mut p = SseParser::default();
        let got = p.feed(b"data: one\ndata:two\n\n");
        assert_eq!(got, vec![SseEvent { event: String::new(), data: "one\ntwo".into(), id: None }]);
    }

    #[test]
    fn reads_bench_items_only() {
        let item = r#"{"id":"0190f3a0-0000-7000-8000-000000000001","notification_id":"0190f3a0-0000-7000-8000-000000000002",
            "title":"critical","body":"1767225600000000","action_url":null,"category":null,
            "created_at":"2026-01-01T00:00:00Z","read_at":null}"#;
        let (class, t, _) = parse_item(item).unwrap();
        assert_eq!((class, t), (Class::Critical, 1_767_225_600_000_000));
        assert_eq!(parse_item(&item.replace("\"critical\"", "\"3 new replies\"")), None);
        assert_eq!(parse_item(&item.replace("\"1767225600000000\"", "\"hello\"")), None);
    }
}
