//! Token buckets: a provider's sending rate, and for email each recipient domain's. A send
//! waits for a token rather than failing, so throttling never drops anything. Buckets run on
//! tokio's monotonic clock (a rate is about real seconds, not the notification clock).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A sustained rate with a burst allowance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Most tokens held (the largest burst).
    pub burst: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Buckets beyond which idle (full) ones are forgotten.
const MAX_BUCKETS: usize = 10_000;

/// A family of buckets with one rate, keyed by provider or domain.
#[derive(Debug)]
pub(crate) struct Limiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    /// Buckets at `rate`.
    pub(crate) fn new(rate: Rate) -> Self {
        Self { rate, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for `key` at `now`, or says how long until one is free.
    fn take(&self, key: &str, now: Instant) -> Option<Duration> {
        let Rate { per_second, burst } = self.rate;
        let burst = f64::from(burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            buckets.retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * per_second < burst);
        }
        let b = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: burst, last: now });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * per_second).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return None;
        }
        let missing = 1.0 - b.tokens;
        Some(Duration::from_secs_f64(missing / per_second.max(f64::MIN_POSITIVE)).max(Duration::from_millis(1)))
    }

    /// Waits until `key` has a token and takes it; true when it had to wait.
    pub(crate) async fn acquire(&self, key: &str) -> bool {
        let mut waited = false;
        while let Some(wait) = self.take(key, Instant::now()) {
            waited = true;
            tokio::time::sleep(wait).await;
        }
        waited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_sustained_rate() {
        let l = Limiter::new(Rate { per_second: 10.0, burst: 5 });
        let start = Instant::now();
        for _ in 0..5 {
            assert!(!l.acquire("smtp").await, "the burst passes at once");
        }
        assert_eq!(Instant::now(), start);
        for _ in 0..10 {
            l.acquire("smtp").await;
        }
        let took = Instant::now() - start;
        assert!(took >= Duration::from_millis(990) && took <= Duration::from_millis(1010), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn keys_have_their_own_buckets() {
        let l = Limiter::new(Rate { per_second: 1.0, burst: 1 });
        let start = Instant::now();
        l.acquire("gmail.com").await;
        l.acquire("example.org").await;
        assert_eq!(Instant::now(), start);
        assert!(l.acquire("gmail.com").await);
        assert!(Instant::now() - start >= Duration::from_millis(999));
    }
}
