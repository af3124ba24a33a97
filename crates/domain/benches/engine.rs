//! Benchmarks of the pure engine: `decide`, the cap window and template rendering.
//! Run with `cargo bench -p herald-domain`.

use std::collections::{BTreeMap, BTreeSet};

use divan::black_box;
use herald_domain::decision::{Ask, Interruption, RecipientState, Spend, decide};
use herald_domain::ids::Category;
use herald_domain::preferences::{FrequencyCap, PreferenceDefaults, StoredPreferences};
use herald_domain::template::{Compiled, TemplateSpec};
use herald_domain::window::free_slots;
use herald_domain::{Channel, Class};
use jiff::{SignedDuration, Timestamp};

fn main() {
    divan::main();
}

fn prefs() -> herald_domain::preferences::Preferences {
    serde_json::from_str::<StoredPreferences>(
        r#"{"channels": {"sms": false}, "categories": {"marketing": {"enabled": false}, "replies": {"channels": ["in_app", "push", "email", "webhook"]}},
            "quiet_hours": {"start": "22:00", "end": "07:00"}, "frequency_cap": {"max": 3, "window_seconds": 3600}}"#,
    )
    .unwrap()
    .resolve(&PreferenceDefaults::default())
}

fn now() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

/// A typical social decision: consent, presence, quiet hours in a real zone, a two-slot-used cap.
#[divan::bench]
fn decide_social(bencher: divan::Bencher) {
    let p = prefs();
    let reachable: BTreeSet<Channel> = [Channel::Push, Channel::Email, Channel::Webhook].into_iter().collect();
    let tz = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
    let log: Vec<Interruption> =
        (1..=2).map(|m| Interruption { at: now() - SignedDuration::from_mins(m * 10), spend: Spend::Cap }).collect();
    let replies = Category::parse("c", "replies").unwrap();
    let channels = [Channel::InApp, Channel::Push, Channel::Email, Channel::Sms, Channel::Webhook];
    let ask = Ask {
        class: Class::Social,
        category: Some(&replies),
        template_channels: &channels,
        requested: None,
        time_sensitive: false,
    };
    let user = RecipientState {
        preferences: &p,
        reachable: &reachable,
        erased: false,
        duplicate: false,
        online: false,
        timezone: Some(&tz),
        interruptions: &log,
        blocked: &BTreeMap::new(),
        shedding: None,
    };
    bencher.bench(|| decide(black_box(&ask), black_box(&user), black_box(now())));
}

/// The sliding window over a full hour of interruptions.
#[divan::bench]
fn cap_window(bencher: divan::Bencher) {
    let log: Vec<Timestamp> = (0..20).map(|m| now() - SignedDuration::from_mins(m * 3)).collect();
    let cap = FrequencyCap { max: 3, window_seconds: 3600 };
    bencher.bench(|| free_slots(black_box(&log), black_box(&cap), black_box(now())));
}

fn push_template() -> TemplateSpec {
    serde_json::from_value(
        serde_json::json!({"channels": {"push": {"title": "{{ sender }} replied", "body": "{{ excerpt }}"}}}),
    )
    .unwrap()
}

/// Rendering a push block with two variables, compiling it on the spot (a preview).
#[divan::bench]
fn render_push(bencher: divan::Bencher) {
    let t = push_template();
    let ctx = serde_json::json!({"sender": "Ana", "excerpt": "See you at five?"});
    bencher.bench(|| t.render(black_box(Channel::Push), None, black_box(&ctx)));
}

/// The same with the template compiled once, as a running Herald renders.
#[divan::bench]
fn render_push_compiled(bencher: divan::Bencher) {
    let t = Compiled::new(push_template()).unwrap();
    let ctx = serde_json::json!({"sender": "Ana", "excerpt": "See you at five?"});
    bencher.bench(|| t.render(black_box(Channel::Push), None, black_box(&ctx)));
}
