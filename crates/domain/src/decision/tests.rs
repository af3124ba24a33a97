use super::*;
use crate::overload::Level;
use crate::preferences::{
    CategoryPreference, FrequencyCap, PreferenceDefaults, QuietHours, StoredPreferences, TimeOfDay,
};
use proptest::prelude::*;

fn prefs(j: &str) -> Preferences {
    serde_json::from_str::<StoredPreferences>(j).unwrap().resolve(&PreferenceDefaults::default())
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const NOON: &str = "2026-06-01T12:00:00Z";
const ALL: [Channel; 6] = Channel::ALL;

struct Fixture {
    prefs: Preferences,
    reachable: BTreeSet<Channel>,
    online: bool,
    log: Vec<Interruption>,
    tz: jiff::tz::TimeZone,
    blocked: BTreeMap<Channel, Reason>,
    shedding: Option<Shedding>,
}

impl Fixture {
    fn new(p: &str) -> Self {
        Self {
            prefs: prefs(p),
            reachable: Channel::ALL.into_iter().collect(),
            online: false,
            log: vec![],
            tz: jiff::tz::TimeZone::UTC,
            blocked: BTreeMap::new(),
            shedding: None,
        }
    }
    fn state(&self) -> RecipientState<'_> {
        RecipientState {
            preferences: &self.prefs,
            reachable: &self.reachable,
            erased: false,
            duplicate: false,
            online: self.online,
            timezone: Some(&self.tz),
            interruptions: &self.log,
            blocked: &self.blocked,
            shedding: self.shedding,
        }
    }
}

fn ask(class: Class) -> Ask<'static> {
    Ask { class, category: None, template_channels: &ALL, requested: None, time_sensitive: false }
}

#[test]
fn overload_defers_the_shed_classes_but_never_the_inbox_or_critical() {
    let mut f = Fixture::new("{}");
    let until = ts("2026-06-01T12:01:00Z");
    f.shedding = Some(Shedding { level: Level::Social, until });
    for class in [Class::Marketing, Class::Social] {
        let plan = decide(&ask(class), &f.state(), ts(NOON));
        assert_eq!(plan.outcome(Channel::InApp), Some(Outcome::Send));
        assert_eq!(plan.outcome(Channel::Email), Some(Outcome::Defer { until, reason: Reason::Overload }));
        assert_eq!(plan.spend, None);
    }
    let plan = decide(&ask(Class::Transactional), &f.state(), ts(NOON));
    assert_eq!(plan.outcome(Channel::Push), Some(Outcome::Send));
    f.shedding = Some(Shedding { level: Level::Transactional, until });
    let plan = decide(&ask(Class::Transactional), &f.state(), ts(NOON));
    assert_eq!(plan.outcome(Channel::Push), Some(Outcome::Defer { until, reason: Reason::Overload }));
    let plan = decide(&ask(Class::Critical), &f.state(), ts(NOON));
    assert!(Channel::ALL.iter().all(|c| plan.outcome(*c) == Some(Outcome::Send)));
}

#[test]
fn a_blocked_address_is_explained() {
    let mut f = Fixture::new("{}");
    f.reachable.remove(&Channel::Email);
    f.blocked.insert(Channel::Email, Reason::AddressBlocked);
    f.reachable.remove(&Channel::Sms);
    f.blocked.insert(Channel::Sms, Reason::SmsStop);
    // Not even critical reaches a blocked address, and the reason says which block it is.
    let plan = decide(&ask(Class::Critical), &f.state(), ts(NOON));
    assert_eq!(plan.outcome(Channel::Email), Some(Outcome::Suppress(Reason::AddressBlocked)));
    assert_eq!(plan.outcome(Channel::Sms), Some(Outcome::Suppress(Reason::SmsStop)));
}

#[test]
fn consent_reasons() {
    let mut f = Fixture::new(r#"{"channels": {"push": false}, "categories": {"promo": {"enabled": false}}}"#);
    f.reachable = BTreeSet::from([Channel::Webhook, Channel::Sms]);
    let promo = Category::parse("c", "promo").unwrap();
    let plan = decide(&ask(Class::Social), &f.state(), ts(NOON));
    assert_eq!(plan.outcome(Channel::InApp), Some(Outcome::Send));
    assert_eq!(plan.outcome(Channel::Push), Some(Outcome::Suppress(Reason::ChannelDisabled)));
    assert_eq!(plan.outcome(Channel::Email), Some(Outcome::Suppress(Reason::NoAddress)));
    assert_eq!(plan.outcome(Channel::Webhook), Some(Outcome::Send));
    let opted = Ask { category: Some(&promo), ..ask(Class::Social) };
    assert_eq!(
        decide(&opted, &f.state(), ts(NOON)).outcome(Channel::InApp),
        Some(Outcome::Suppress(Reason::CategoryOptOut))
    );
    let critical = Ask { category: Some(&promo), ..ask(Class::Critical) };
    let plan = decide(&critical, &f.state(), ts(NOON));
    assert_eq!(plan.outcome(Channel::InApp), Some(Outcome::Send), "critical overrides a category opt-out");
    assert_eq!(
        plan.outcome(Channel::Push),
        Some(Outcome::Suppress(Reason::ChannelDisabled)),
        "but never channel consent"
    );
    assert_eq!(
        decide(&ask(Class::Marketing), &f.state(), ts(NOON)).outcome(Channel::Sms),
        Some(Outcome::Suppress(Reason::NoSmsOptIn))
    );
}

#[test]
fn social_is_inbox_only_while_online() {
    let mut f = Fixture::new("{}");
    f.online = true;
    let plan = decide(&ask(Class::Social), &f.state(), ts(NOON));
    assert_eq!(plan.outcome(Channel::InApp), Some(Outcome::Send));
    assert_eq!(plan.outcome(Channel::Push), Some(Outcome::Suppress(Reason::UserOnline)));
    assert_eq!(plan.spend, None);
    assert_eq!(
        decide(&ask(Class::Marketing), &f.state(), ts(NOON)).spend,
        Some(Spend::Cap),
        "presence governs social only"
    );
}

#[test]
fn the_cap_batches_and_counts_a_notification_once() {
    let mut f = Fixture::new(r#"{"frequency_cap": {"max": 2, "window_seconds": 3600}}"#);
    let now = ts(NOON);
    let plan = decide(&ask(Class::Social), &f.state(), now);
    assert_eq!(plan.spend, Some(Spend::Cap), "one spend for all its channels");
    assert_eq!(plan.outcome(Channel::Push), Some(Outcome::Send));
    assert_eq!(plan.outcome(Channel::Email), Some(Outcome::Send));
    f.log = vec![
        Interruption { at: now - SignedDuration::from_mins(50), spend: Spend::Cap },
        Interruption { at: now - SignedDuration::from_mins(5), spend: Spend::Cap },
    ];
    let plan = decide(&ask(Class::Social), &f.state(), now);
    assert_eq!(plan.outcome(Channel::Push), Some(Outcome::Batch(Reason::FrequencyCap)));
    assert_eq!(plan.outcome(Channel::InApp), Some(Outcome::Send), "the inbox is never capped");
    assert_eq!(digest_due(&f.state(), now), now + SignedDuration::from_mins(10));
    assert_eq!(
        decide(&ask(Class::Transactional), &f.state(), now).spend,
        Some(Spend::Uncapped),
        "transactional is never capped"
    );
}

#[test]
fn quiet_hours_defer_interruptions_but_not_the_inbox() {
    let mut f = Fixture::new(r#"{"quiet_hours": {"start": "22:00", "end": "07:00"}}"#);
    f.tz = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
    let now = ts("2026-06-01T18:00:00Z"); // 23:30 in Kolkata
    let plan = decide(&ask(Class::Social), &f.state(), now);
    let until = ts("2026-06-02T01:30:00Z");
    assert_eq!(plan.outcome(Channel::Push), Some(Outcome::Defer { until, reason: Reason::QuietHours }));
    assert_eq!(plan.outcome(Channel::InApp), Some(Outcome::Send));
    assert_eq!(
        decide(&ask(Class::Transactional), &f.state(), now).outcome(Channel::Push),
        Some(Outcome::Defer { until, reason: Reason::QuietHours })
    );
    let ts_ask = Ask { time_sensitive: true, ..ask(Class::Transactional) };
    let plan = decide(&ts_ask, &f.state(), now);
    assert_eq!(plan.spend, Some(Spend::TimeSensitive));
    assert_eq!(plan.outcome(Channel::Push), Some(Outcome::Send));
    f.log = vec![Interruption { at: now - SignedDuration::from_mins(30), spend: Spend::TimeSensitive }];
    assert!(
        matches!(decide(&ts_ask, &f.state(), now).outcome(Channel::Push), Some(Outcome::Defer { .. })),
        "budget of one per hour"
    );
    let plan = decide(&ask(Class::Critical), &f.state(), now);
    assert_eq!(plan.spend, Some(Spend::Critical));
    assert!(
        plan.decisions.iter().filter(|d| d.channel.interrupts()).all(|d| d.outcome == Outcome::Send),
        "critical: every consented channel at once"
    );
}

#[test]
fn transactional_uses_one_channel_with_the_rest_on_standby() {
    let mut f = Fixture::new("{}");
    f.reachable = BTreeSet::from([Channel::Email, Channel::Sms]);
    let plan = decide(&ask(Class::Transactional), &f.state(), ts(NOON));
    assert_eq!(plan.outcome(Channel::Push), Some(Outcome::Suppress(Reason::NoAddress)));
    assert_eq!(plan.outcome(Channel::Email), Some(Outcome::Send));
    assert_eq!(plan.outcome(Channel::Sms), Some(Outcome::Standby));
}

#[test]
fn critical_beyond_its_budget_is_transactional() {
    let mut f = Fixture::new(r#"{"quiet_hours": {"start": "00:00", "end": "23:59"}}"#);
    let now = ts(NOON);
    f.log = vec![Interruption { at: now - SignedDuration::from_mins(10), spend: Spend::Critical }; 2];
    let plan = decide(&ask(Class::Critical), &f.state(), now);
    assert!(matches!(plan.outcome(Channel::Push), Some(Outcome::Defer { .. })), "{plan:?}");
}

fn channel() -> impl Strategy<Value = Channel> {
    prop::sample::select(Channel::ALL.to_vec())
}

fn class() -> impl Strategy<Value = Class> {
    prop::sample::select(vec![Class::Critical, Class::Transactional, Class::Social, Class::Marketing])
}

fn spend() -> impl Strategy<Value = Spend> {
    prop::sample::select(vec![Spend::Cap, Spend::Critical, Spend::TimeSensitive, Spend::Uncapped])
}

prop_compose! {
    fn arb_prefs()(disabled in prop::collection::btree_set(channel(), 0..6), opted_out in any::<bool>(),
                   quiet in prop::option::of((0u16..1440, 1u16..1439)), cap in prop::option::of((1u32..5, 60u64..7200)))
                   -> (StoredPreferences, BTreeSet<Channel>, bool) {
        let mut p = StoredPreferences::default();
        for c in &disabled { p.channels.insert(*c, false); }
        if opted_out {
            p.categories.insert(Category::parse("c", "cat").unwrap(), CategoryPreference { enabled: Some(false), channels: None });
        }
        p.quiet_hours = Some(quiet.map(|(s, l)| QuietHours { start: TimeOfDay { minutes: s }, end: TimeOfDay { minutes: (s + l) % 1440 } }));
        p.frequency_cap = Some(cap.map(|(max, w)| FrequencyCap { max, window_seconds: w }));
        (p, disabled, opted_out)
    }
}

proptest! {
    #[test]
    fn consent_is_never_overridden_and_decisions_are_deterministic(
        (stored, disabled, opted_out) in arb_prefs(),
        reachable in prop::collection::btree_set(channel(), 0..6),
        requested in prop::option::of(prop::collection::vec(channel(), 1..6)),
        class in class(), online in any::<bool>(), time_sensitive in any::<bool>(),
        shed in prop::option::of(prop::sample::select(vec![Level::Marketing, Level::Social, Level::Transactional])),
        log in prop::collection::vec((0i64..7200, spend()), 0..10), secs in 1_700_000_000i64..1_900_000_000,
        zone in prop::sample::select(vec!["UTC", "Asia/Kolkata", "Europe/Paris", "America/St_Johns"]),
    ) {
        let now = Timestamp::from_second(secs).unwrap();
        let p = stored.resolve(&PreferenceDefaults::default());
        let tz = jiff::tz::TimeZone::get(zone).unwrap();
        let log: Vec<Interruption> = log.into_iter().map(|(ago, spend)| Interruption { at: now - SignedDuration::from_secs(ago), spend }).collect();
        let cat = Category::parse("c", "cat").unwrap();
        let none = BTreeMap::new();
        let shedding = shed.map(|level| Shedding { level, until: now + SignedDuration::from_mins(1) });
        let user = RecipientState { preferences: &p, reachable: &reachable, erased: false, duplicate: false, online, timezone: Some(&tz), interruptions: &log, blocked: &none, shedding };
        let ask = Ask { class, category: Some(&cat), template_channels: &Channel::ALL, requested: requested.as_deref(), time_sensitive };
        let plan = decide(&ask, &user, now);
        prop_assert_eq!(&plan, &decide(&ask, &user, now), "deterministic");
        let critical_budget = log.iter().filter(|i| i.spend == Spend::Critical && i.at > now - SignedDuration::from_hours(1)).count() < CRITICAL_BUDGET;
        for d in &plan.decisions {
            if matches!(d.outcome, Outcome::Send | Outcome::Standby | Outcome::Defer { .. } | Outcome::Batch(_)) {
                prop_assert!(!disabled.contains(&d.channel), "never to a disabled channel");
                prop_assert!(!d.channel.interrupts() || reachable.contains(&d.channel));
                prop_assert!(!opted_out || class == Class::Critical);
                prop_assert!(requested.as_ref().is_none_or(|r| r.contains(&d.channel)));
            }
            if d.channel == Channel::InApp {
                prop_assert!(matches!(d.outcome, Outcome::Send | Outcome::Suppress(_)), "the inbox is never deferred or batched");
            }
            if class == Class::Critical {
                prop_assert!(!matches!(d.outcome, Outcome::Defer { reason: Reason::Overload, .. }), "critical is never shed");
            }
            if class == Class::Critical && critical_budget {
                prop_assert!(!matches!(d.outcome, Outcome::Defer { .. } | Outcome::Batch(_)), "critical is never held back within its budget");
            }
            if let Outcome::Defer { until, .. } = d.outcome {
                prop_assert!(until > now);
            }
        }
        let sends = plan.decisions.iter().filter(|d| d.channel.interrupts() && d.outcome == Outcome::Send).count();
        prop_assert_eq!(sends > 0, plan.spend.is_some(), "an allowance is spent exactly when something interrupts");
        if matches!(class, Class::Transactional) { prop_assert!(sends <= 1, "transactional uses one channel"); }
    }

    /// Feeding the engine's own spends back in, capped sends never exceed the cap in any window.
    #[test]
    fn capped_interruptions_never_exceed_the_cap(
        max in 1u32..5, window in 60u64..7200,
        arrivals in prop::collection::vec((0i64..30_000, prop::sample::select(vec![Class::Social, Class::Marketing, Class::Transactional, Class::Critical])), 1..60),
    ) {
        let p = StoredPreferences { frequency_cap: Some(Some(FrequencyCap { max, window_seconds: window })), ..Default::default() }.resolve(&PreferenceDefaults::default());
        let reachable: BTreeSet<Channel> = Channel::ALL.into_iter().collect();
        let mut arrivals = arrivals;
        arrivals.sort_by_key(|a| a.0);
        let base = Timestamp::from_second(1_800_000_000).unwrap();
        let mut log: Vec<Interruption> = Vec::new();
        for (t, class) in arrivals {
            let now = base + SignedDuration::from_secs(t);
            let none = BTreeMap::new();
            let user = RecipientState { preferences: &p, reachable: &reachable, erased: false, duplicate: false, online: false, timezone: None, interruptions: &log, blocked: &none, shedding: None };
            let plan = decide(&Ask { class, category: None, template_channels: &Channel::ALL, requested: None, time_sensitive: false }, &user, now);
            if let Some(spend) = plan.spend { log.push(Interruption { at: now, spend }); }
        }
        let capped: Vec<Timestamp> = log.iter().filter(|i| i.spend == Spend::Cap).map(|i| i.at).collect();
        for (i, t) in capped.iter().enumerate() {
            let end = *t + SignedDuration::from_secs(window as i64);
            prop_assert!(capped[i..].iter().filter(|s| **s < end).count() as u32 <= max);
        }
    }
}
