//! Quiet-hours maths in the user's time zone: whether an instant falls inside the daily window,
//! and when that window ends. Windows may wrap midnight; offsets may be fractional (UTC+5:30,
//! UTC+5:45); DST gaps and folds are resolved by the tz database, never by adding 24 hours.

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

use crate::preferences::QuietHours;

fn time_of(minutes: u16) -> Time {
    Time::constant((minutes / 60) as i8, (minutes % 60) as i8, 0, 0)
}

/// The instant of local time `minutes` on `date`; a time skipped by DST moves forward by the
/// gap (02:30 in a 02:00-03:00 gap is 03:30), a repeated time takes its first occurrence.
fn local(tz: &TimeZone, date: Date, minutes: u16) -> Timestamp {
    tz.to_ambiguous_zoned(date.to_datetime(time_of(minutes))).compatible().map(|z| z.timestamp()).unwrap_or_else(|_| {
        date.to_datetime(time_of(minutes)).to_zoned(TimeZone::UTC).map(|z| z.timestamp()).unwrap_or_default()
    })
}

/// When the quiet window containing `now` ends, or `None` if `now` is outside every window.
pub fn quiet_until(q: &QuietHours, tz: &TimeZone, now: Timestamp) -> Option<Timestamp> {
    let today = now.to_zoned(tz.clone()).date();
    let (start, end) = (q.start.minutes, q.end.minutes);
    // Candidate windows that may contain `now`: the one starting yesterday and the one starting today.
    for start_day in [today.yesterday().ok()?, today] {
        let from = local(tz, start_day, start);
        let end_day = if end > start { start_day } else { start_day.tomorrow().ok()? };
        let to = local(tz, end_day, end);
        if from <= now && now < to {
            return Some(to);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preferences::TimeOfDay;
    use proptest::prelude::*;

    fn q(start: &str, end: &str) -> QuietHours {
        QuietHours {
            start: TimeOfDay::try_from(start.to_owned()).unwrap(),
            end: TimeOfDay::try_from(end.to_owned()).unwrap(),
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn wraps_midnight_in_a_half_hour_zone() {
        let tz = TimeZone::get("Asia/Kolkata").unwrap(); // UTC+5:30
        let w = q("22:00", "07:00");
        // 23:30 local = 18:00 UTC: inside; ends 07:00 local next day = 01:30 UTC.
        assert_eq!(quiet_until(&w, &tz, ts("2026-03-10T18:00:00Z")), Some(ts("2026-03-11T01:30:00Z")));
        // 02:00 local = 20:30 UTC the day before: inside the window that started yesterday.
        assert_eq!(quiet_until(&w, &tz, ts("2026-03-10T20:30:00Z")), Some(ts("2026-03-11T01:30:00Z")));
        // 07:00 local exactly: outside. 21:59 local: outside.
        assert_eq!(quiet_until(&w, &tz, ts("2026-03-11T01:30:00Z")), None);
        assert_eq!(quiet_until(&w, &tz, ts("2026-03-10T16:29:00Z")), None);
    }

    #[test]
    fn forty_five_minute_offset() {
        let tz = TimeZone::get("Asia/Kathmandu").unwrap(); // UTC+5:45
        let w = q("13:00", "14:00");
        assert_eq!(quiet_until(&w, &tz, ts("2026-06-01T07:30:00Z")), Some(ts("2026-06-01T08:15:00Z")));
        assert_eq!(quiet_until(&w, &tz, ts("2026-06-01T07:14:00Z")), None);
    }

    #[test]
    fn dst_changes_neither_skip_nor_double_an_hour() {
        let tz = TimeZone::get("Europe/Paris").unwrap();
        let w = q("22:00", "07:00");
        // Night of 28-29 March 2026: clocks go 02:00 -> 03:00. 07:00 CEST = 05:00 UTC.
        assert_eq!(quiet_until(&w, &tz, ts("2026-03-28T23:30:00Z")), Some(ts("2026-03-29T05:00:00Z")));
        // Night of 24-25 October 2026: clocks go 03:00 -> 02:00. 07:00 CET = 06:00 UTC.
        assert_eq!(quiet_until(&w, &tz, ts("2026-10-24T23:30:00Z")), Some(ts("2026-10-25T06:00:00Z")));
        // A window starting in the skipped hour starts as far past the gap: 02:30 -> 03:30 CEST.
        let gap = q("02:30", "04:00");
        assert_eq!(quiet_until(&gap, &tz, ts("2026-03-29T01:00:00Z")), None);
        assert_eq!(quiet_until(&gap, &tz, ts("2026-03-29T01:45:00Z")), Some(ts("2026-03-29T02:00:00Z")));
    }

    proptest! {
        #[test]
        fn the_end_is_after_now_and_at_the_local_end_time(
            start in 0u16..1440, len in 1u16..1439, secs in 1_700_000_000i64..1_900_000_000,
            zone in prop::sample::select(vec!["UTC", "Asia/Kolkata", "Asia/Kathmandu", "Europe/Paris", "America/New_York", "Australia/Lord_Howe"]),
        ) {
            let end = (start + len) % 1440;
            let w = QuietHours { start: TimeOfDay { minutes: start }, end: TimeOfDay { minutes: end } };
            let tz = TimeZone::get(zone).unwrap();
            let now = Timestamp::from_second(secs).unwrap();
            if let Some(until) = quiet_until(&w, &tz, now) {
                prop_assert!(until > now);
                prop_assert!(until.duration_since(now) <= jiff::SignedDuration::from_hours(25));
                // Just before the end we are still inside; at the end we are out.
                let before = until - jiff::SignedDuration::from_secs(1);
                if before > now { prop_assert_eq!(quiet_until(&w, &tz, before), Some(until)); }
                let local = until.to_zoned(tz.clone());
                let minutes = local.hour() as u16 * 60 + local.minute() as u16;
                // Only a DST gap may move the end off its local time.
                prop_assert!(minutes == end || minutes.abs_diff(end) <= 60 || minutes.abs_diff(end) >= 1380);
            }
        }
    }
}
