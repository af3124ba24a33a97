//! Preferences: which channels and categories a user wants, their quiet hours and frequency cap.
//! What the user stored is kept apart from the resolved view, where server defaults fill the gaps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::error::ValidationErrors;
use crate::ids::Category;
use crate::user::double_option;

/// A local time of day, `HH:MM`, 24-hour clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeOfDay {
    /// Minutes after local midnight, 0..1440.
    pub minutes: u16,
}

impl TryFrom<String> for TimeOfDay {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a time of day like 22:00");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        if h > 23 || m > 59 {
            return Err(bad());
        }
        Ok(Self { minutes: h * 60 + m })
    }
}

impl From<TimeOfDay> for String {
    fn from(t: TimeOfDay) -> String {
        format!("{:02}:{:02}", t.minutes / 60, t.minutes % 60)
    }
}

/// A daily window, in the user's time zone, during which interrupting channels wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// Start, `HH:MM` local time.
    #[schema(value_type = String, example = "22:00")]
    pub start: TimeOfDay,
    /// End, `HH:MM` local time; earlier than `start` means the window wraps midnight.
    #[schema(value_type = String, example = "07:00")]
    pub end: TimeOfDay,
}

/// At most `max` interruptions in any rolling window of `window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    /// Interruptions allowed per window.
    pub max: u32,
    /// Length of the sliding window in seconds.
    pub window_seconds: u64,
}

impl FrequencyCap {
    fn validate(&self, field: &str, errs: &mut ValidationErrors) {
        if !(1..=10_000).contains(&self.max) {
            errs.push(format!("{field}.max"), "must be between 1 and 10000");
        }
        if !(60..=30 * 86_400).contains(&self.window_seconds) {
            errs.push(format!("{field}.window_seconds"), "must be between 60 and 2592000 (30 days)");
        }
    }
}

/// A user's choice for one category.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryPreference {
    /// `false` opts out of the category entirely (only `critical` overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// When set, the only channels this category may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<Channel>>,
}

/// Preferences as the user stored them; `None` fields fall back to server defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoredPreferences {
    /// Per-channel switches; a channel not listed is on.
    #[serde(default)]
    pub channels: BTreeMap<Channel, bool>,
    /// Per-category choices.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, CategoryPreference>)]
    pub categories: BTreeMap<Category, CategoryPreference>,
    /// `None`: server default; `Some(None)`: explicitly no quiet hours.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<QuietHours>)]
    pub quiet_hours: Option<Option<QuietHours>>,
    /// `None`: server default; `Some(None)`: explicitly uncapped.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<FrequencyCap>)]
    pub frequency_cap: Option<Option<FrequencyCap>>,
}

impl StoredPreferences {
    /// Takes `category` off email only (an unsubscribe link): its other channels stay as they
    /// were; a category left with no channel is switched off.
    pub fn unsubscribe_email(&mut self, category: Category) {
        let pref = self.categories.entry(category).or_default();
        let mut channels = pref.channels.take().unwrap_or_else(|| Channel::ALL.to_vec());
        channels.retain(|c| *c != Channel::Email);
        if channels.is_empty() {
            pref.enabled = Some(false);
        } else {
            pref.channels = Some(channels);
        }
    }

    /// Checks ranges and quiet hours.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        if let Some(Some(q)) = &self.quiet_hours
            && q.start == q.end
        {
            errs.push("quiet_hours", "start and end must differ");
        }
        if let Some(Some(cap)) = &self.frequency_cap {
            cap.validate("frequency_cap", &mut errs);
        }
        for (name, c) in &self.categories {
            if c.channels.as_ref().is_some_and(|ch| ch.is_empty()) {
                errs.push(
                    format!("categories.{name}.channels"),
                    "must list at least one channel (use enabled: false to opt out)",
                );
            }
        }
        errs.into_result(())
    }

    /// Merges a PATCH: maps merge key by key, other present fields replace.
    pub fn merged(&self, patch: &StoredPreferences) -> StoredPreferences {
        let mut out = self.clone();
        out.channels.extend(patch.channels.iter().map(|(k, v)| (*k, *v)));
        for (k, v) in &patch.categories {
            let entry = out.categories.entry(k.clone()).or_default();
            if v.enabled.is_some() {
                entry.enabled = v.enabled;
            }
            if v.channels.is_some() {
                entry.channels.clone_from(&v.channels);
            }
        }
        if patch.quiet_hours.is_some() {
            out.quiet_hours = patch.quiet_hours;
        }
        if patch.frequency_cap.is_some() {
            out.frequency_cap = patch.frequency_cap;
        }
        out
    }

    /// The effective preferences, with `defaults` filling what the user left unset.
    pub fn resolve(&self, defaults: &PreferenceDefaults) -> Preferences {
        let channels = Channel::ALL.into_iter().map(|c| (c, self.channels.get(&c).copied().unwrap_or(true))).collect();
        Preferences {
            channels,
            categories: self.categories.clone(),
            quiet_hours: self.quiet_hours.unwrap_or(defaults.quiet_hours),
            frequency_cap: self.frequency_cap.unwrap_or(defaults.frequency_cap),
        }
    }
}

/// Server-wide defaults from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreferenceDefaults {
    /// Default quiet hours (none unless configured).
    pub quiet_hours: Option<QuietHours>,
    /// Default frequency cap.
    pub frequency_cap: Option<FrequencyCap>,
}

impl Default for PreferenceDefaults {
    fn default() -> Self {
        Self { quiet_hours: None, frequency_cap: Some(FrequencyCap { max: 3, window_seconds: 3600 }) }
    }
}

/// Effective preferences, as the engine uses them and `GET .../preferences` shows them.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Preferences {
    /// Every channel with its switch.
    pub channels: BTreeMap<Channel, bool>,
    /// Per-category choices.
    #[schema(value_type = BTreeMap<String, CategoryPreference>)]
    pub categories: BTreeMap<Category, CategoryPreference>,
    /// Quiet hours, or `null` for none.
    pub quiet_hours: Option<QuietHours>,
    /// Frequency cap, or `null` for uncapped.
    pub frequency_cap: Option<FrequencyCap>,
}

impl Preferences {
    /// Whether the user switched `channel` on.
    pub fn channel_enabled(&self, channel: Channel) -> bool {
        self.channels.get(&channel).copied().unwrap_or(true)
    }

    /// Whether the user opted out of `category`.
    pub fn category_opted_out(&self, category: Option<&Category>) -> bool {
        category.and_then(|c| self.categories.get(c)).is_some_and(|p| p.enabled == Some(false))
    }

    /// Whether `category` may use `channel` under the user's per-category channel list.
    pub fn category_allows(&self, category: Option<&Category>, channel: Channel) -> bool {
        category
            .and_then(|c| self.categories.get(c))
            .and_then(|p| p.channels.as_ref())
            .is_none_or(|list| list.contains(&channel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsubscribing_from_email_keeps_the_other_channels() {
        let news = Category::parse("c", "news").unwrap();
        let mut p = StoredPreferences::default();
        p.unsubscribe_email(news.clone());
        let r = p.resolve(&PreferenceDefaults::default());
        assert!(!r.category_allows(Some(&news), Channel::Email));
        assert!(r.category_allows(Some(&news), Channel::Push));
        assert!(!r.category_opted_out(Some(&news)));
        let mut only_email: StoredPreferences =
            serde_json::from_str(r#"{"categories": {"news": {"channels": ["email"]}}}"#).unwrap();
        only_email.unsubscribe_email(news.clone());
        assert!(only_email.resolve(&PreferenceDefaults::default()).category_opted_out(Some(&news)));
        assert!(only_email.validate().is_ok());
    }

    fn parse(j: &str) -> StoredPreferences {
        serde_json::from_str(j).unwrap()
    }

    #[test]
    fn contract_example_parses_and_resolves() {
        let p = parse(
            r#"{"channels": {"in_app": true, "push": true, "web_push": true, "email": true, "sms": false, "webhook": true},
                "categories": {"marketing": {"enabled": false}, "replies": {"channels": ["in_app", "push"]}},
                "quiet_hours": {"start": "22:00", "end": "07:00"},
                "frequency_cap": {"max": 3, "window_seconds": 3600}}"#,
        );
        p.validate().unwrap();
        let r = p.resolve(&PreferenceDefaults::default());
        assert!(!r.channel_enabled(Channel::Sms));
        let marketing = Category::parse("c", "marketing").unwrap();
        let replies = Category::parse("c", "replies").unwrap();
        assert!(r.category_opted_out(Some(&marketing)));
        assert!(!r.category_opted_out(Some(&replies)));
        assert!(r.category_allows(Some(&replies), Channel::Push));
        assert!(!r.category_allows(Some(&replies), Channel::Email));
        assert_eq!(r.quiet_hours.unwrap().start.minutes, 22 * 60);
    }

    #[test]
    fn omitted_uses_defaults_and_null_means_none() {
        let defaults = PreferenceDefaults {
            quiet_hours: Some(QuietHours { start: TimeOfDay { minutes: 0 }, end: TimeOfDay { minutes: 60 } }),
            frequency_cap: Some(FrequencyCap { max: 5, window_seconds: 600 }),
        };
        let r = parse("{}").resolve(&defaults);
        assert_eq!(r.quiet_hours, defaults.quiet_hours);
        assert_eq!(r.frequency_cap, defaults.frequency_cap);
        let r = parse(r#"{"quiet_hours": null, "frequency_cap": null}"#).resolve(&defaults);
        assert_eq!(r.quiet_hours, None);
        assert_eq!(r.frequency_cap, None);
    }

    #[test]
    fn patch_merges() {
        let base = parse(r#"{"channels": {"sms": false}, "categories": {"replies": {"enabled": false}}}"#);
        let patch = parse(r#"{"channels": {"email": false}, "categories": {"replies": {"channels": ["push"]}}}"#);
        let m = base.merged(&patch);
        assert_eq!(m.channels.get(&Channel::Sms), Some(&false));
        assert_eq!(m.channels.get(&Channel::Email), Some(&false));
        let replies = &m.categories[&Category::parse("c", "replies").unwrap()];
        assert_eq!(replies.enabled, Some(false));
        assert_eq!(replies.channels.as_deref(), Some(&[Channel::Push][..]));
    }

    #[test]
    fn invalid_values_are_refused() {
        assert!(
            serde_json::from_str::<StoredPreferences>(r#"{"quiet_hours": {"start": "25:00", "end": "07:00"}}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<StoredPreferences>(r#"{"channels": {"fax": true}}"#).is_err());
        assert!(parse(r#"{"frequency_cap": {"max": 0, "window_seconds": 3600}}"#).validate().is_err());
        assert!(parse(r#"{"quiet_hours": {"start": "07:00", "end": "07:00"}}"#).validate().is_err());
    }
}
