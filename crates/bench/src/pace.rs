//! Time: the one clock that stamps send times and arrivals, and the fixed-rate send schedule.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Unix time in microseconds, read from a monotonic clock anchored once to the wall clock, so that
/// a wall-clock step during a run cannot distort latencies. The sink and the streams run in this
/// process, so send times and arrivals come from the same clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor: Instant,
    anchor_us: u64,
}

impl Clock {
    /// A clock anchored now.
    pub fn start() -> Self {
        let anchor_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        Self { anchor: Instant::now(), anchor_us }
    }

    /// Now, in unix microseconds.
    pub fn now_us(&self) -> u64 {
        self.anchor_us + self.anchor.elapsed().as_micros() as u64
    }

    /// The instant at which this clock reads `us`.
    pub fn instant_at(&self, us: u64) -> Instant {
        self.anchor + Duration::from_micros(us.saturating_sub(self.anchor_us))
    }
}

/// Send times at a fixed rate. The k-th time is computed from k, never by adding intervals, so
/// the schedule cannot drift; a sender that falls behind sends late but keeps the intended times,
/// so its lateness shows in the latency instead of being omitted.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start_us: u64,
    rate: f64,
}

impl Schedule {
    /// `rate` sends per second from `start_us`.
    pub fn new(start_us: u64, rate: f64) -> Self {
        Self { start_us, rate }
    }

    /// The intended time of send number `k` (from 0), in unix microseconds.
    pub fn at(&self, k: u64) -> u64 {
        self.start_us + (k as f64 * 1_000_000.0 / self.rate) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_follow_the_rate() {
        let s = Schedule::new(1_000, 3.0);
        let times: Vec<u64> = (0..4).map(|k| s.at(k)).collect();
        assert_eq!(times, vec![1_000, 334_333, 667_666, 1_001_000]);
    }

    #[test]
    fn no_drift_over_a_long_run() {
        // 7 per second does not divide a second evenly: adding a rounded interval would drift.
        let s = Schedule::new(0, 7.0);
        assert_eq!(s.at(7 * 3600), 3_600_000_000);
        let s = Schedule::new(0, 2000.0);
        assert_eq!(s.at(2000 * 300), 300_000_000);
    }

    #[test]
    fn fractional_rates_space_sends_out() {
        let s = Schedule::new(0, 0.5);
        assert_eq!((s.at(0), s.at(1), s.at(2)), (0, 2_000_000, 4_000_000));
    }

    #[test]
    fn times_are_monotonic() {
        let s = Schedule::new(5, 333.3);
        assert!((0..100_000).all(|k| s.at(k) <= s.at(k + 1)));
    }

    #[test]
    fn the_clock_maps_back_to_instants() {
        let c = Clock::start();
        let now = c.now_us();
        let later = c.instant_at(now + 1_000_000);
        let d = later.duration_since(Instant::now());
        assert!(d <= Duration::from_secs(1) && d > Duration::from_millis(900), "{d:?}");
    }
}
