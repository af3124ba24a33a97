//! Channels a notification can travel on, and the classes producers give notifications.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A delivery channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The in-app inbox and its live stream.
    InApp,
    /// Mobile push (APNs, FCM).
    Push,
    /// Browser push (RFC 8030/8291).
    WebPush,
    /// Email over SMTP.
    Email,
    /// SMS.
    Sms,
    /// A signed HTTP POST to the user's endpoint.
    Webhook,
}

impl Channel {
    /// Every channel, in the order transactional fallback tries the interrupting ones.
    pub const ALL: [Channel; 6] =
        [Channel::InApp, Channel::Push, Channel::WebPush, Channel::Email, Channel::Sms, Channel::Webhook];

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::InApp => "in_app",
            Channel::Push => "push",
            Channel::WebPush => "web_push",
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Webhook => "webhook",
        }
    }

    /// Whether the channel interrupts the user (everything but the inbox).
    pub fn interrupts(self) -> bool {
        self != Channel::InApp
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| format!("unknown channel `{s}`"))
    }
}

/// What the producer says a notification is; drives caps, quiet hours and channel strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Security and account takeover: breaks through caps and quiet hours on a budget.
    Critical,
    /// Receipts, password resets: never capped, one channel with fallback.
    Transactional,
    /// Replies, likes, follows: capped and batched into digests.
    #[default]
    Social,
    /// Campaigns: capped, first to be shed, never SMS without opt-in.
    Marketing,
}

impl Class {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Critical => "critical",
            Class::Transactional => "transactional",
            Class::Social => "social",
            Class::Marketing => "marketing",
        }
    }

    /// Critical and transactional: what a person is waiting for. They go ahead of everything else
    /// that is due, in the queue, the lanes and the send slots.
    pub fn is_urgent(self) -> bool {
        matches!(self, Class::Critical | Class::Transactional)
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Class {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "critical" => Ok(Class::Critical),
            "transactional" => Ok(Class::Transactional),
            "social" => Ok(Class::Social),
            "marketing" => Ok(Class::Marketing),
            _ => Err(format!("unknown class `{s}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), c);
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", c.as_str()));
        }
        assert!(!Channel::InApp.interrupts());
        assert!(Channel::Sms.interrupts());
    }
}
