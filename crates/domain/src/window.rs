//! The sliding-window frequency cap: how many interruptions a user may still receive now, and
//! when the next slot frees. Rolling windows, not clock hours.

use jiff::{SignedDuration, Timestamp};

use crate::preferences::FrequencyCap;

fn window(cap: &FrequencyCap) -> SignedDuration {
    SignedDuration::from_secs(cap.window_seconds as i64)
}

/// Interruptions in the window ending at `now`: those after `now - window`.
fn in_window(log: &[Timestamp], cap: &FrequencyCap, now: Timestamp) -> Vec<Timestamp> {
    let from = now - window(cap);
    let mut v: Vec<Timestamp> = log.iter().copied().filter(|t| *t > from && *t <= now).collect();
    v.sort();
    v
}

/// Slots free now. Counts without allocating: this runs on every capped decision.
pub fn free_slots(log: &[Timestamp], cap: &FrequencyCap, now: Timestamp) -> u32 {
    free_slots_of(log.iter().copied(), cap, now)
}

/// [`free_slots`] over any sequence of interruption times.
pub fn free_slots_of(log: impl Iterator<Item = Timestamp>, cap: &FrequencyCap, now: Timestamp) -> u32 {
    let from = now - window(cap);
    let used = log.filter(|t| *t > from && *t <= now).count();
    cap.max.saturating_sub(u32::try_from(used).unwrap_or(u32::MAX))
}

/// When the next slot frees: `now` if one is free, else when the oldest interruption that keeps
/// the window full leaves it.
pub fn next_free(log: &[Timestamp], cap: &FrequencyCap, now: Timestamp) -> Timestamp {
    let inside = in_window(log, cap, now);
    if (inside.len() as u32) < cap.max {
        return now;
    }
    inside[inside.len() - cap.max as usize] + window(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn slides_rather_than_resetting_on_the_hour() {
        let cap = FrequencyCap { max: 3, window_seconds: 3600 };
        let log = [at(0), at(1000), at(2000)];
        assert_eq!(free_slots(&log, &cap, at(2500)), 0);
        assert_eq!(next_free(&log, &cap, at(2500)), at(3600));
        assert_eq!(free_slots(&log, &cap, at(3600)), 1);
        assert_eq!(free_slots(&log, &cap, at(5600)), 3);
    }

    proptest! {
        /// Sending whenever a slot is free, never more than `max` land in any rolling window.
        #[test]
        fn greedy_sending_never_exceeds_the_cap(
            max in 1u32..6, window in 60u64..7200, arrivals in prop::collection::vec(0i64..20_000, 1..80),
        ) {
            let cap = FrequencyCap { max, window_seconds: window };
            let mut arrivals = arrivals;
            arrivals.sort();
            let mut sent: Vec<Timestamp> = Vec::new();
            for a in arrivals {
                let now = at(a);
                if free_slots(&sent, &cap, now) > 0 {
                    sent.push(now);
                } else {
                    prop_assert!(next_free(&sent, &cap, now) > now);
                }
            }
            for (i, t) in sent.iter().enumerate() {
                let end = *t + SignedDuration::from_secs(window as i64);
                let n = sent[i..].iter().filter(|s| **s < end).count();
                prop_assert!(n as u32 <= max, "{n} sends within one window");
            }
        }
    }
}
