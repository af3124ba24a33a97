//! Talking to Herald: the HTTP clients every subcommand shares (so `healthz` measures with the same
//! settings as the sends), the admin key, setup calls that must succeed, and the server's version.

use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder, Url};
use serde_json::Value;

use crate::error::BenchError;

/// How long one API call may take before it counts as a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Silence after which an inbox stream is taken for dead: Herald sends a keep-alive every 15 s.
const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(45);
/// Most characters of an error body kept in a message.
const BODY_EXCERPT: usize = 300;

/// A Herald server.
#[derive(Debug, Clone)]
pub struct Api {
    /// For API calls: each times out after 30 s.
    client: Client,
    /// For inbox streams: no overall timeout, only a read timeout.
    stream_client: Client,
    base: Url,
    key: Option<String>,
}

impl Api {
    /// Clients for `url`, speaking HTTP/1.1 with keep-alive or, with `http2`, HTTP/2 prior knowledge.
    pub fn new(url: &str, key: Option<String>, http2: bool) -> Result<Self, BenchError> {
        let base = Url::parse(url).map_err(|e| BenchError::Other(format!("--url {url}: {e}")))?;
        let builder = || {
            // No proxy: a proxy from the environment would measure itself, not Herald.
            let b = Client::builder().no_proxy().tcp_nodelay(true).connect_timeout(Duration::from_secs(10));
            if http2 { b.http2_prior_knowledge() } else { b.http1_only() }
        };
        Ok(Self {
            client: builder().timeout(REQUEST_TIMEOUT).build()?,
            stream_client: builder().read_timeout(STREAM_READ_TIMEOUT).build()?,
            base,
            key: key.filter(|k| !k.is_empty()),
        })
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> Result<Url, BenchError> {
        self.base.join(path).map_err(|e| BenchError::Other(format!("{path}: {e}")))
    }

    /// Fails unless an admin key was given.
    pub fn require_key(&self) -> Result<(), BenchError> {
        match self.key {
            Some(_) => Ok(()),
            None => Err(BenchError::Other("an admin key is needed: pass --api-key or set HERALD_API_KEY".into())),
        }
    }

    /// A request to `path` with the admin key.
    pub fn request(&self, method: Method, path: &str) -> Result<RequestBuilder, BenchError> {
        let req = self.client.request(method, self.url(path)?);
        Ok(match &self.key {
            Some(k) => req.bearer_auth(k),
            None => req,
        })
    }

    /// The client for long-lived streams.
    pub fn stream_client(&self) -> &Client {
        &self.stream_client
    }

    /// A setup call that must succeed: its JSON answer, or an error naming the call.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, BenchError> {
        let what = format!("{method} {path}");
        let mut req = self.request(method, path)?;
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(BenchError::Status { what, status: status.as_u16(), body: excerpt(&text) });
        }
        Ok(if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text)? })
    }

    /// Fails early, with a clear message, when nothing answers at the URL.
    pub async fn check_alive(&self) -> Result<(), BenchError> {
        let resp = self.request(Method::GET, "/healthz")?.send().await.map_err(|e| {
            BenchError::Other(format!("cannot reach Herald at {}: {e}", self.base.as_str().trim_end_matches('/')))
        })?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            s => Err(BenchError::Other(format!("GET /healthz answered {s}; is this a Herald server?"))),
        }
    }

    /// Work waiting in Herald's queues (the sum of `herald_queue_depth` in /metrics), when it says.
    pub async fn backlog(&self) -> Option<u64> {
        let resp = self.request(Method::GET, "/metrics").ok()?.send().await.ok()?;
        queue_depth(&resp.text().await.ok()?)
    }

    /// The server's version from its OpenAPI document, when it says.
    pub async fn version(&self) -> Option<String> {
        let doc = self.call(Method::GET, "/openapi.json", None).await.ok()?;
        doc["info"]["version"].as_str().map(str::to_owned)
    }
}

/// The start of a body, on one line, for error messages and samples.
pub fn excerpt(body: &str) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(BODY_EXCERPT) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// The sum of the `herald_queue_depth` gauges in Prometheus text; none when there are none.
fn queue_depth(metrics: &str) -> Option<u64> {
    let values: Vec<f64> = metrics
        .lines()
        .filter(|l| l.strip_prefix("herald_queue_depth").is_some_and(|r| r.starts_with(['{', ' '])))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>().max(0.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_queue_gauges() {
        let text = "# TYPE herald_queue_depth gauge\nherald_queue_depth{queue=\"deliveries\"} 1\n\
                    herald_queue_depth{queue=\"scheduled\"} 8889\nherald_queue_depth_other 5\n\
                    herald_breaker_state{circuit=\"x\"} 1\n";
        assert_eq!(queue_depth(text), Some(8890));
        assert_eq!(queue_depth("herald_up 1\n"), None);
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt("{\n  \"title\": \"bad\"\n}"), "{ \"title\": \"bad\" }");
        let long = "é".repeat(BODY_EXCERPT + 10);
        assert_eq!(excerpt(&long).chars().count(), BODY_EXCERPT + 1);
    }
}
