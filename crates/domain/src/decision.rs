//! The per-user decision: which of a notification's channels go out to one user, and why the
//! others do not. A pure function of the user's state; the runtime supplies that state.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::channel::{Channel, Class};
use crate::ids::Category;
use crate::preferences::Preferences;
use crate::reason::Reason;

/// What the engine knows about one recipient when it decides.
#[derive(Debug, Clone)]
pub struct RecipientState<'a> {
    /// Effective preferences.
    pub preferences: &'a Preferences,
    /// Channels for which the user has an address, device or endpoint.
    pub reachable: &'a BTreeSet<Channel>,
    /// Whether the user was erased.
    pub erased: bool,
}

/// What one notification asks of the engine.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    /// Resolved class.
    pub class: Class,
    /// Resolved category.
    pub category: Option<&'a Category>,
    /// The template's channels.
    pub template_channels: &'a [Channel],
    /// The producer's channel restriction.
    pub requested: Option<&'a [Channel]>,
}

/// The outcome for one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    /// Send on this channel.
    Send,
    /// Do not send, for this reason.
    Suppress(Reason),
}

/// One channel's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDecision {
    /// The channel.
    pub channel: Channel,
    /// What happens on it.
    pub outcome: Outcome,
}

/// Decides each candidate channel (template channels, narrowed by the request) for one user.
pub fn decide(ask: &Ask<'_>, user: &RecipientState<'_>) -> Vec<ChannelDecision> {
    ask.template_channels
        .iter()
        .copied()
        .filter(|c| ask.requested.is_none_or(|r| r.contains(c)))
        .map(|channel| ChannelDecision { channel, outcome: decide_channel(ask, user, channel) })
        .collect()
}

fn decide_channel(ask: &Ask<'_>, user: &RecipientState<'_>, channel: Channel) -> Outcome {
    let prefs = user.preferences;
    let critical = ask.class == Class::Critical;
    if user.erased {
        return Outcome::Suppress(Reason::Erased);
    }
    // Channel consent is never overridden, not even by critical.
    if !prefs.channel_enabled(channel) {
        return Outcome::Suppress(Reason::ChannelDisabled);
    }
    if !critical && (prefs.category_opted_out(ask.category) || !prefs.category_allows(ask.category, channel)) {
        return Outcome::Suppress(Reason::CategoryOptOut);
    }
    if channel == Channel::Sms && ask.class == Class::Marketing && !explicit_sms_opt_in(prefs, ask.category) {
        return Outcome::Suppress(Reason::NoSmsOptIn);
    }
    if channel.interrupts() && !user.reachable.contains(&channel) {
        return Outcome::Suppress(Reason::NoAddress);
    }
    Outcome::Send
}

/// Marketing may use SMS only when the user listed `sms` for the category themselves.
fn explicit_sms_opt_in(prefs: &Preferences, category: Option<&Category>) -> bool {
    category
        .and_then(|c| prefs.categories.get(c))
        .and_then(|p| p.channels.as_ref())
        .is_some_and(|list| list.contains(&Channel::Sms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preferences::{PreferenceDefaults, StoredPreferences};
    use proptest::prelude::*;

    fn prefs(j: &str) -> Preferences {
        serde_json::from_str::<StoredPreferences>(j).unwrap().resolve(&PreferenceDefaults::default())
    }

    fn outcome(decisions: &[ChannelDecision], c: Channel) -> Option<Outcome> {
        decisions.iter().find(|d| d.channel == c).map(|d| d.outcome)
    }

    const TEMPLATE: [Channel; 4] = [Channel::InApp, Channel::Push, Channel::Sms, Channel::Webhook];

    #[test]
    fn suppression_reasons() {
        let p = prefs(r#"{"channels": {"push": false}, "categories": {"promo": {"enabled": false}}}"#);
        let reachable = BTreeSet::from([Channel::Webhook, Channel::Sms]);
        let user = RecipientState { preferences: &p, reachable: &reachable, erased: false };
        let promo = Category::parse("c", "promo").unwrap();
        let ask = Ask { class: Class::Social, category: None, template_channels: &TEMPLATE, requested: None };
        let d = decide(&ask, &user);
        assert_eq!(outcome(&d, Channel::InApp), Some(Outcome::Send));
        assert_eq!(outcome(&d, Channel::Push), Some(Outcome::Suppress(Reason::ChannelDisabled)));
        assert_eq!(outcome(&d, Channel::Webhook), Some(Outcome::Send));

        let ask = Ask { category: Some(&promo), ..ask };
        let d = decide(&ask, &user);
        assert_eq!(outcome(&d, Channel::InApp), Some(Outcome::Suppress(Reason::CategoryOptOut)));

        let critical = Ask { class: Class::Critical, ..ask.clone() };
        let d = decide(&critical, &user);
        assert_eq!(outcome(&d, Channel::InApp), Some(Outcome::Send), "critical overrides a category opt-out");
        assert_eq!(
            outcome(&d, Channel::Push),
            Some(Outcome::Suppress(Reason::ChannelDisabled)),
            "but never channel consent"
        );

        let marketing = Ask { class: Class::Marketing, category: None, ..ask };
        assert_eq!(outcome(&decide(&marketing, &user), Channel::Sms), Some(Outcome::Suppress(Reason::NoSmsOptIn)));
    }

    #[test]
    fn request_narrows_and_addresses_matter() {
        let p = prefs("{}");
        let reachable = BTreeSet::new();
        let user = RecipientState { preferences: &p, reachable: &reachable, erased: false };
        let ask = Ask {
            class: Class::Social,
            category: None,
            template_channels: &TEMPLATE,
            requested: Some(&[Channel::Push, Channel::InApp]),
        };
        let d = decide(&ask, &user);
        assert_eq!(d.len(), 2);
        assert_eq!(outcome(&d, Channel::Push), Some(Outcome::Suppress(Reason::NoAddress)));
        assert_eq!(outcome(&d, Channel::InApp), Some(Outcome::Send), "the inbox needs no address");
        let erased = RecipientState { erased: true, ..user };
        assert!(decide(&ask, &erased).iter().all(|d| d.outcome == Outcome::Suppress(Reason::Erased)));
    }

    fn channel() -> impl Strategy<Value = Channel> {
        prop::sample::select(Channel::ALL.to_vec())
    }

    fn class() -> impl Strategy<Value = Class> {
        prop::sample::select(vec![Class::Critical, Class::Transactional, Class::Social, Class::Marketing])
    }

    proptest! {
        #[test]
        fn never_sends_without_channel_consent_or_address(
            disabled in prop::collection::btree_set(channel(), 0..6),
            reachable in prop::collection::btree_set(channel(), 0..6),
            requested in prop::option::of(prop::collection::vec(channel(), 1..6)),
            class in class(),
            opted_out in any::<bool>(),
        ) {
            let mut stored = StoredPreferences::default();
            for c in &disabled { stored.channels.insert(*c, false); }
            let cat = Category::parse("c", "cat").unwrap();
            if opted_out {
                stored.categories.insert(cat.clone(), crate::preferences::CategoryPreference { enabled: Some(false), channels: None });
            }
            let p = stored.resolve(&PreferenceDefaults::default());
            let user = RecipientState { preferences: &p, reachable: &reachable, erased: false };
            let ask = Ask { class, category: Some(&cat), template_channels: &Channel::ALL, requested: requested.as_deref() };
            let first = decide(&ask, &user);
            prop_assert_eq!(&first, &decide(&ask, &user), "deterministic");
            for d in first {
                if d.outcome == Outcome::Send {
                    prop_assert!(!disabled.contains(&d.channel));
                    prop_assert!(!d.channel.interrupts() || reachable.contains(&d.channel));
                    prop_assert!(!opted_out || class == Class::Critical);
                    prop_assert!(requested.as_ref().is_none_or(|r| r.contains(&d.channel)));
                }
            }
        }
    }
}
