//! The per-user decision engine: for one notification and one user's state at `now`, what
//! happens on each channel and why. Pure: the same input always gives the same plan.
//!
//! Order of questions: consent (erasure, channel switches, category opt-outs, marketing SMS,
//! addresses), then load shedding, then the class strategy (breakthrough budgets, presence, quiet
//! hours, the cap).

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::channel::{Channel, Class};
use crate::code::{UnknownCode, find};
use crate::ids::Category;
use crate::overload::Shedding;
use crate::preferences::Preferences;
use crate::quiet::quiet_until;
use crate::reason::Reason;
use crate::window::{free_slots_of, next_free};

/// Critical notifications that may break through per user per hour.
pub const CRITICAL_BUDGET: usize = 2;
/// Time-sensitive transactional notifications that may break quiet hours per user per hour.
pub const TIME_SENSITIVE_BUDGET: usize = 1;

/// Which allowance an interruption used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spend {
    /// A slot of the frequency cap (social, marketing, digests).
    Cap,
    /// The critical breakthrough budget.
    Critical,
    /// The time-sensitive breakthrough budget.
    TimeSensitive,
    /// Nothing capped: a transactional send (kept for the hard ceilings).
    Uncapped,
}

impl Spend {
    /// Every kind.
    pub const ALL: [Spend; 4] = [Spend::Cap, Spend::Critical, Spend::TimeSensitive, Spend::Uncapped];

    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            Spend::Cap => "cap",
            Spend::Critical => "critical",
            Spend::TimeSensitive => "time_sensitive",
            Spend::Uncapped => "uncapped",
        }
    }
}

impl std::str::FromStr for Spend {
    type Err = UnknownCode;
    fn from_str(s: &str) -> Result<Self, UnknownCode> {
        find(&Self::ALL, Self::as_str, "spend", s)
    }
}

/// One past interruption of the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interruption {
    /// When.
    pub at: Timestamp,
    /// Which allowance it used.
    pub spend: Spend,
}

/// What the engine knows about one recipient when it decides.
#[derive(Debug, Clone)]
pub struct RecipientState<'a> {
    /// Effective preferences.
    pub preferences: &'a Preferences,
    /// Channels for which the user has an address, device or endpoint.
    pub reachable: &'a BTreeSet<Channel>,
    /// Whether the user was erased.
    pub erased: bool,
    /// Whether the same content already reached the user by another path moments ago.
    pub duplicate: bool,
    /// Whether the user has an open inbox stream.
    pub online: bool,
    /// The user's time zone (UTC when unknown).
    pub timezone: Option<&'a jiff::tz::TimeZone>,
    /// Recent interruptions (at least the last hour and the cap window).
    pub interruptions: &'a [Interruption],
    /// Channels whose only addresses are blocked, with why (a hard bounce, an SMS STOP).
    pub blocked: &'a BTreeMap<Channel, Reason>,
    /// Load shedding in force, if Herald is overloaded.
    pub shedding: Option<Shedding>,
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
    /// Lets a transactional notification through quiet hours, on a budget.
    pub time_sensitive: bool,
}

/// The outcome for one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Send on this channel now.
    Send,
    /// Do not send, for this reason.
    Suppress(Reason),
    /// Decide again at `until`.
    Defer {
        /// When to decide again.
        until: Timestamp,
        /// Why (quiet hours).
        reason: Reason,
    },
    /// Wait in the user's pending digest.
    Batch(Reason),
    /// Kept in reserve: a transactional fallback if the channels before it fail.
    Standby,
}

/// One channel's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDecision {
    /// The channel.
    pub channel: Channel,
    /// What happens on it.
    pub outcome: Outcome,
}

/// The engine's answer for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Every candidate channel, the inbox first when it is one.
    pub decisions: Vec<ChannelDecision>,
    /// The allowance spent when something interrupts now.
    pub spend: Option<Spend>,
}

impl Plan {
    /// The outcome on `channel`, if it was a candidate.
    pub fn outcome(&self, channel: Channel) -> Option<Outcome> {
        self.decisions.iter().find(|d| d.channel == channel).map(|d| d.outcome)
    }
}

/// The order transactional notifications try the interrupting channels.
const FALLBACK_ORDER: [Channel; 5] = [Channel::Push, Channel::WebPush, Channel::Email, Channel::Sms, Channel::Webhook];

/// Decides one notification for one user at `now`.
pub fn decide(ask: &Ask<'_>, user: &RecipientState<'_>, now: Timestamp) -> Plan {
    let mut decisions: Vec<ChannelDecision> = ask
        .template_channels
        .iter()
        .copied()
        .filter(|c| ask.requested.is_none_or(|r| r.contains(c)))
        .map(|channel| ChannelDecision { channel, outcome: consent(ask, user, channel) })
        .collect();
    decisions.sort_by_key(|d| (d.channel != Channel::InApp, FALLBACK_ORDER.iter().position(|c| *c == d.channel)));
    let spend = strategy(ask, user, now, &mut decisions);
    Plan { decisions, spend }
}

/// Consent and reachability: what no class strategy can override.
fn consent(ask: &Ask<'_>, user: &RecipientState<'_>, channel: Channel) -> Outcome {
    let prefs = user.preferences;
    let critical = ask.class == Class::Critical;
    if user.erased {
        return Outcome::Suppress(Reason::Erased);
    }
    if user.duplicate {
        return Outcome::Suppress(Reason::Duplicate);
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
        if let Some(reason) = user.blocked.get(&channel) {
            return Outcome::Suppress(*reason);
        }
        return Outcome::Suppress(Reason::NoAddress);
    }
    Outcome::Send
}

fn used_in_last_hour(user: &RecipientState<'_>, spend: Spend, now: Timestamp) -> usize {
    let from = now - SignedDuration::from_hours(1);
    user.interruptions.iter().filter(|i| i.spend == spend && i.at > from && i.at <= now).count()
}

/// Applies the class strategy to the interrupting channels that passed consent.
fn strategy(
    ask: &Ask<'_>,
    user: &RecipientState<'_>,
    now: Timestamp,
    decisions: &mut [ChannelDecision],
) -> Option<Spend> {
    let open: Vec<usize> = decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| d.channel.interrupts() && d.outcome == Outcome::Send)
        .map(|(i, _)| i)
        .collect();
    if open.is_empty() {
        return None;
    }
    let set = |decisions: &mut [ChannelDecision], outcome: Outcome| {
        for &i in &open {
            decisions[i].outcome = outcome;
        }
    };
    let quiet = user
        .preferences
        .quiet_hours
        .as_ref()
        .and_then(|q| quiet_until(q, user.timezone.unwrap_or(&jiff::tz::TimeZone::UTC), now));
    if let Some(shedding) = user.shedding
        && shedding.sheds(ask.class)
    {
        set(decisions, Outcome::Defer { until: shedding.until, reason: Reason::Overload });
        return None;
    }
    let class = match ask.class {
        Class::Critical if used_in_last_hour(user, Spend::Critical, now) < CRITICAL_BUDGET => {
            return Some(Spend::Critical);
        }
        // Beyond its breakthrough budget, critical is handled as transactional.
        Class::Critical => Class::Transactional,
        other => other,
    };
    match class {
        Class::Critical | Class::Transactional => {
            if let Some(until) = quiet {
                if !(ask.time_sensitive && used_in_last_hour(user, Spend::TimeSensitive, now) < TIME_SENSITIVE_BUDGET) {
                    set(decisions, Outcome::Defer { until, reason: Reason::QuietHours });
                    return None;
                }
                standby_after_first(decisions, &open);
                return Some(Spend::TimeSensitive);
            }
            standby_after_first(decisions, &open);
            Some(Spend::Uncapped)
        }
        Class::Social | Class::Marketing => {
            if class == Class::Social && user.online {
                set(decisions, Outcome::Suppress(Reason::UserOnline));
                return None;
            }
            if let Some(until) = quiet {
                set(decisions, Outcome::Defer { until, reason: Reason::QuietHours });
                return None;
            }
            if let Some(cap) = &user.preferences.frequency_cap {
                let log = user.interruptions.iter().filter(|i| i.spend == Spend::Cap).map(|i| i.at);
                if free_slots_of(log, cap, now) == 0 {
                    set(decisions, Outcome::Batch(Reason::FrequencyCap));
                    return None;
                }
            }
            Some(Spend::Cap)
        }
    }
}

/// Transactional uses one channel: the first in fallback order, the rest stand by.
fn standby_after_first(decisions: &mut [ChannelDecision], open: &[usize]) {
    for &i in open.iter().skip(1) {
        decisions[i].outcome = Outcome::Standby;
    }
}

/// When a user's pending digest may next go out under their cap (`now` if a slot is free).
pub fn digest_due(user: &RecipientState<'_>, now: Timestamp) -> Timestamp {
    match &user.preferences.frequency_cap {
        Some(cap) => {
            let log: Vec<Timestamp> =
                user.interruptions.iter().filter(|i| i.spend == Spend::Cap).map(|i| i.at).collect();
            next_free(&log, cap, now)
        }
        None => now,
    }
}

/// Marketing may use SMS only when the user listed `sms` for the category themselves.
fn explicit_sms_opt_in(prefs: &Preferences, category: Option<&Category>) -> bool {
    category
        .and_then(|c| prefs.categories.get(c))
        .and_then(|p| p.channels.as_ref())
        .is_some_and(|list| list.contains(&Channel::Sms))
}

#[cfg(test)]
mod tests;
