//! Stable snake_case codes for every decision Herald records, shown by the timeline.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::code::{UnknownCode, find};

/// What happened to a notification for one user on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Going out on the channel.
    Delivering,
    /// Not sent, with a reason.
    Suppressed,
    /// Waiting until a later time.
    Deferred,
    /// Waiting in the user's pending digest.
    Batched,
    /// Cancelled by the producer before it went out.
    Cancelled,
    /// Handed to the provider.
    Sent,
    /// Confirmed delivered (the inbox, or a provider receipt).
    Delivered,
    /// Failed for good.
    Failed,
    /// The provider reported a hard bounce or an invalid token after accepting it.
    Bounced,
}

impl Decision {
    /// Every decision.
    pub const ALL: [Decision; 9] = [
        Decision::Delivering,
        Decision::Suppressed,
        Decision::Deferred,
        Decision::Batched,
        Decision::Cancelled,
        Decision::Sent,
        Decision::Delivered,
        Decision::Failed,
        Decision::Bounced,
    ];

    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Delivering => "delivering",
            Decision::Suppressed => "suppressed",
            Decision::Deferred => "deferred",
            Decision::Batched => "batched",
            Decision::Cancelled => "cancelled",
            Decision::Sent => "sent",
            Decision::Delivered => "delivered",
            Decision::Failed => "failed",
            Decision::Bounced => "bounced",
        }
    }
}

/// Why a decision was taken; codes are part of the API and never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// None of the requested channels is in the template.
    NoChannel,
    /// The user switched the channel off.
    ChannelDisabled,
    /// The user opted out of the category, or kept it off this channel.
    CategoryOptOut,
    /// No email, phone, device or endpoint for the channel.
    NoAddress,
    /// The user was erased.
    Erased,
    /// Marketing SMS without an explicit opt-in for the category.
    NoSmsOptIn,
    /// Over the frequency cap: waiting in the pending digest.
    FrequencyCap,
    /// Inside the user's quiet hours: waiting for them to end.
    QuietHours,
    /// The user has the app open: the inbox is enough.
    UserOnline,
    /// A newer notification with the same collapse key replaced it.
    Collapsed,
    /// Sent as part of a digest.
    Digest,
    /// The pending digest went to the inbox because the user came online.
    DrainedToInbox,
    /// A transactional fallback after the previous channel failed.
    Fallback,
    /// The template could not be rendered for this user.
    RenderError,
    /// The producer cancelled the notification.
    Cancelled,
    /// Already sent on this path.
    Duplicate,
    /// The provider refused it for good.
    ProviderRejected,
    /// Retries ran out.
    RetriesExhausted,
    /// The user already had the hard ceiling of sends on this channel in the last hour.
    HourlyCeiling,
    /// The server's daily SMS budget is spent.
    SmsBudget,
    /// Herald is overloaded: this class waits so that more urgent ones flow.
    Overload,
    /// The address hard-bounced earlier and is blocked.
    AddressBlocked,
    /// An operator replayed a dead letter.
    Replayed,
    /// The provider reported a hard bounce.
    HardBounce,
    /// The recipient marked it as spam.
    Complaint,
    /// The provider reported the device token or subscription invalid.
    InvalidToken,
    /// The recipient unsubscribed through the provider.
    Unsubscribed,
    /// The phone number replied STOP: no SMS goes to it, not even critical, until START.
    SmsStop,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 28] = [
        Reason::NoChannel,
        Reason::ChannelDisabled,
        Reason::CategoryOptOut,
        Reason::NoAddress,
        Reason::Erased,
        Reason::NoSmsOptIn,
        Reason::FrequencyCap,
        Reason::QuietHours,
        Reason::UserOnline,
        Reason::Collapsed,
        Reason::Digest,
        Reason::DrainedToInbox,
        Reason::Fallback,
        Reason::RenderError,
        Reason::Cancelled,
        Reason::Duplicate,
        Reason::ProviderRejected,
        Reason::RetriesExhausted,
        Reason::HourlyCeiling,
        Reason::SmsBudget,
        Reason::Overload,
        Reason::AddressBlocked,
        Reason::Replayed,
        Reason::HardBounce,
        Reason::Complaint,
        Reason::InvalidToken,
        Reason::Unsubscribed,
        Reason::SmsStop,
    ];

    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoChannel => "no_channel",
            Reason::ChannelDisabled => "channel_disabled",
            Reason::CategoryOptOut => "category_opt_out",
            Reason::NoAddress => "no_address",
            Reason::Erased => "erased",
            Reason::NoSmsOptIn => "no_sms_opt_in",
            Reason::FrequencyCap => "frequency_cap",
            Reason::QuietHours => "quiet_hours",
            Reason::UserOnline => "user_online",
            Reason::Collapsed => "collapsed",
            Reason::Digest => "digest",
            Reason::DrainedToInbox => "drained_to_inbox",
            Reason::Fallback => "fallback",
            Reason::RenderError => "render_error",
            Reason::Cancelled => "cancelled",
            Reason::Duplicate => "duplicate",
            Reason::ProviderRejected => "provider_rejected",
            Reason::RetriesExhausted => "retries_exhausted",
            Reason::HourlyCeiling => "hourly_ceiling",
            Reason::SmsBudget => "sms_budget",
            Reason::Overload => "overload",
            Reason::AddressBlocked => "address_blocked",
            Reason::Replayed => "replayed",
            Reason::HardBounce => "hard_bounce",
            Reason::Complaint => "complaint",
            Reason::InvalidToken => "invalid_token",
            Reason::Unsubscribed => "unsubscribed",
            Reason::SmsStop => "sms_stop",
        }
    }
}

impl FromStr for Decision {
    type Err = UnknownCode;
    fn from_str(s: &str) -> Result<Self, UnknownCode> {
        find(&Self::ALL, Self::as_str, "decision", s)
    }
}

impl FromStr for Reason {
    type Err = UnknownCode;
    fn from_str(s: &str) -> Result<Self, UnknownCode> {
        find(&Self::ALL, Self::as_str, "reason", s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_back() {
        for d in Decision::ALL {
            assert_eq!(d.as_str().parse::<Decision>(), Ok(d));
            assert_eq!(serde_json::to_value(d).unwrap(), serde_json::json!(d.as_str()));
        }
        for r in Reason::ALL {
            assert_eq!(r.as_str().parse::<Reason>(), Ok(r));
            assert_eq!(serde_json::to_value(r).unwrap(), serde_json::json!(r.as_str()));
        }
        assert!("pending".parse::<Decision>().is_err());
        assert!("unknown".parse::<Reason>().is_err());
    }
}
