//! Circuit breakers, one per provider circuit (a provider, or one webhook host): after
//! `failure_threshold` transient failures in a row the circuit opens and sends skip it (to the
//! next provider of the channel, or wait); after `open_for` one probe goes through (half-open),
//! and its result closes or reopens the circuit. Time is the injected clock's.

use std::collections::HashMap;
use std::sync::Mutex;

use herald_domain::Channel;
use jiff::{SignedDuration, Timestamp};

/// Thresholds of the breakers of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Transient failures in a row that open the circuit.
    pub failure_threshold: u32,
    /// How long it stays open before a probe.
    pub open_for: SignedDuration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self { failure_threshold: 5, open_for: SignedDuration::from_secs(30) }
    }
}

/// A circuit's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Timestamp },
    HalfOpen { probe_since: Timestamp },
}

impl State {
    /// The value exported in `herald_breaker_state`.
    fn gauge(self) -> f64 {
        match self {
            State::Closed { .. } => 0.0,
            State::HalfOpen { .. } => 1.0,
            State::Open { .. } => 2.0,
        }
    }
}

/// Whether a send may use a circuit now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Go ahead (closed, or this send is the half-open probe).
    Pass,
    /// Open: try another provider, or again at this time.
    Refuse(Timestamp),
}

/// All circuits.
#[derive(Debug, Default)]
pub(crate) struct Breakers {
    circuits: Mutex<HashMap<(Channel, String), State>>,
}

impl Breakers {
    /// Asks to send through `circuit` at `now`.
    pub(crate) fn check(&self, channel: Channel, circuit: &str, s: BreakerSettings, now: Timestamp) -> Verdict {
        let mut circuits = self.circuits.lock().unwrap_or_else(|p| p.into_inner());
        let Some(state) = circuits.get_mut(&(channel, circuit.to_owned())) else { return Verdict::Pass };
        match *state {
            State::Closed { .. } => Verdict::Pass,
            State::Open { until } if now >= until => {
                *state = State::HalfOpen { probe_since: now };
                publish(channel, circuit, *state);
                Verdict::Pass
            }
            State::Open { until } => Verdict::Refuse(until),
            // A probe that never reported (its task died) must not keep the circuit shut forever.
            State::HalfOpen { probe_since } if now >= probe_since + s.open_for => {
                *state = State::HalfOpen { probe_since: now };
                Verdict::Pass
            }
            State::HalfOpen { probe_since } => Verdict::Refuse(probe_since + s.open_for),
        }
    }

    /// Reports how a send through `circuit` went: `ok` is false for transient failures only.
    pub(crate) fn report(&self, channel: Channel, circuit: &str, ok: bool, s: BreakerSettings, now: Timestamp) {
        let mut circuits = self.circuits.lock().unwrap_or_else(|p| p.into_inner());
        let key = (channel, circuit.to_owned());
        let before = circuits.get(&key).copied();
        let after = match (before, ok) {
            (None | Some(State::Closed { .. }), true) => State::Closed { failures: 0 },
            (Some(State::HalfOpen { .. } | State::Open { .. }), true) => State::Closed { failures: 0 },
            (None, false) => State::Closed { failures: 1 },
            (Some(State::Closed { failures }), false) => State::Closed { failures: failures + 1 },
            (Some(State::HalfOpen { .. }), false) => State::Open { until: now + s.open_for },
            // Sends that started before it opened: the circuit is open already.
            (Some(open @ State::Open { .. }), false) => open,
        };
        let after = match after {
            State::Closed { failures } if failures >= s.failure_threshold.max(1) => {
                tracing::warn!(%channel, circuit, failures, "circuit breaker opens");
                State::Open { until: now + s.open_for }
            }
            other => other,
        };
        if before.map(State::gauge) != Some(after.gauge()) {
            publish(channel, circuit, after);
        }
        if after == (State::Closed { failures: 0 }) {
            // Healthy circuits need no memory: this keeps the map as small as the set of sick ones.
            circuits.remove(&key);
        } else {
            circuits.insert(key, after);
        }
    }
}

fn publish(channel: Channel, circuit: &str, state: State) {
    metrics::gauge!("herald_breaker_state", "channel" => channel.as_str(), "circuit" => circuit.to_owned())
        .set(state.gauge());
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: BreakerSettings = BreakerSettings { failure_threshold: 3, open_for: SignedDuration::from_secs(30) };

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn opens_after_the_threshold_then_probes_once_and_closes_or_reopens() {
        let b = Breakers::default();
        let (ch, c) = (Channel::Email, "smtp");
        for _ in 0..2 {
            b.report(ch, c, false, S, t(0));
            assert_eq!(b.check(ch, c, S, t(0)), Verdict::Pass);
        }
        b.report(ch, c, false, S, t(1));
        assert_eq!(b.check(ch, c, S, t(2)), Verdict::Refuse(t(31)));
        // Half-open: one probe passes, the others wait for it.
        assert_eq!(b.check(ch, c, S, t(31)), Verdict::Pass);
        assert_eq!(b.check(ch, c, S, t(32)), Verdict::Refuse(t(61)));
        b.report(ch, c, false, S, t(33));
        assert_eq!(b.check(ch, c, S, t(40)), Verdict::Refuse(t(63)));
        assert_eq!(b.check(ch, c, S, t(63)), Verdict::Pass);
        b.report(ch, c, true, S, t(64));
        assert_eq!(b.check(ch, c, S, t(64)), Verdict::Pass);
        assert!(b.circuits.lock().unwrap().is_empty());
    }

    #[test]
    fn a_success_resets_the_count_and_circuits_are_independent() {
        let b = Breakers::default();
        b.report(Channel::Email, "a", false, S, t(0));
        b.report(Channel::Email, "a", false, S, t(0));
        b.report(Channel::Email, "a", true, S, t(0));
        b.report(Channel::Email, "a", false, S, t(0));
        b.report(Channel::Email, "a", false, S, t(0));
        assert_eq!(b.check(Channel::Email, "a", S, t(0)), Verdict::Pass);
        for _ in 0..3 {
            b.report(Channel::Email, "b", false, S, t(0));
        }
        assert!(matches!(b.check(Channel::Email, "b", S, t(0)), Verdict::Refuse(_)));
        assert_eq!(b.check(Channel::Email, "a", S, t(0)), Verdict::Pass);
        assert_eq!(b.check(Channel::Sms, "b", S, t(0)), Verdict::Pass);
    }
}
