//! The webhook sink: an HTTP server on 127.0.0.1 (a free port unless told) that every bench user's webhook
//! device points at. It answers 200 at once and records each delivery's latency from the send
//! time the notification carries in `data.data.t`. Herald reaches it only when its
//! `outbound.allow_private` covers loopback (`HERALD_OUTBOUND__ALLOW_PRIVATE=127.0.0.1`).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::cli::Class;
use crate::error::BenchError;
use crate::stats::{Path, Stats};

/// The running sink.
#[derive(Debug)]
pub struct Sink {
    /// Where webhook devices should point.
    pub url: String,
    task: JoinHandle<()>,
}

impl Sink {
    /// Stops serving.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Starts the sink on `port` of the loopback interface (0: any free port).
pub async fn start(stats: Arc<Stats>, port: u16) -> Result<Sink, BenchError> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| BenchError::Other(format!("webhook sink on 127.0.0.1:{port}: {e}")))?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = Router::new().route("/hook", post(receive)).with_state(stats);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("webhook sink stopped: {e}");
        }
    });
    Ok(Sink { url, task })
}

async fn receive(State(stats): State<Arc<Stats>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    // Stamp first: the time spent parsing is the sink's, not Herald's.
    let arrival = stats.clock().now_us();
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::parse_str(v).ok())
        .map(|u| u.as_u128());
    match (id, parse(&body)) {
        (Some(id), Some((class, t))) => stats.delivered(Path::Webhook, class, t, id, arrival),
        _ => stats.other(Path::Webhook),
    }
    StatusCode::OK
}

/// The parts of the Standard Webhooks body the bench reads.
#[derive(Deserialize)]
struct Envelope {
    data: Delivery,
}

#[derive(Deserialize)]
struct Delivery {
    class: String,
    data: SendTime,
    #[serde(default)]
    digest: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct SendTime {
    t: u64,
}

/// The class and send time of a bench notification's webhook body; none for anything else
/// (a digest stands for several notifications, so it has no single send time).
fn parse(body: &[u8]) -> Option<(Class, u64)> {
    let e: Envelope = serde_json::from_slice(body).ok()?;
    if e.data.digest.is_some_and(|d| !d.is_null()) {
        return None;
    }
    Some((Class::parse(&e.data.class)?, e.data.data.t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_class_and_send_time() {
        let body = br#"{"type":"notification","timestamp":"2026-01-01T00:00:00Z","data":{"notification_id":"x",
            "user_id":"bench-u1","template":"bench_social","class":"social","category":null,"title":"social",
            "body":"1767225600000000","data":{"t":1767225600000000},"digest":null}}"#;
        assert_eq!(parse(body), Some((Class::Social, 1_767_225_600_000_000)));
    }

    #[test]
    fn ignores_digests_and_strangers() {
        let digest = br#"{"data":{"class":"social","data":{"t":5},"digest":{"count":3}}}"#;
        assert_eq!(parse(digest), None);
        assert_eq!(parse(br#"{"data":{"class":"social","data":{"excerpt":"hi"}}}"#), None);
        assert_eq!(parse(br#"{"data":{"class":"urgent","data":{"t":5}}}"#), None);
        assert_eq!(parse(b"not json"), None);
    }
}
