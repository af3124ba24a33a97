//! Where a delivery stands: the closed set of statuses a delivery row goes through.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::code::{UnknownCode, find};

/// A delivery's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting to be attempted (first time or for a retry).
    Queued,
    /// An attempt is under way.
    Sending,
    /// A transactional fallback, waiting for the channel before it to fail.
    Standby,
    /// Handed to the provider.
    Sent,
    /// Confirmed delivered.
    Delivered,
    /// Failed for good: a dead letter.
    Failed,
    /// The address will not take messages.
    Bounced,
    /// Decided not to send.
    Suppressed,
}

impl DeliveryStatus {
    /// Every status.
    pub const ALL: [DeliveryStatus; 8] = [
        DeliveryStatus::Queued,
        DeliveryStatus::Sending,
        DeliveryStatus::Standby,
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::Bounced,
        DeliveryStatus::Suppressed,
    ];

    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Standby => "standby",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Bounced => "bounced",
            DeliveryStatus::Suppressed => "suppressed",
        }
    }

    /// Whether nothing more will happen to the delivery on its own (a provider may still report
    /// on a sent one); queued, sending and standby deliveries are still open.
    pub fn is_final(self) -> bool {
        !matches!(self, DeliveryStatus::Queued | DeliveryStatus::Sending | DeliveryStatus::Standby)
    }
}

impl FromStr for DeliveryStatus {
    type Err = UnknownCode;
    fn from_str(s: &str) -> Result<Self, UnknownCode> {
        find(&Self::ALL, Self::as_str, "delivery status", s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_parses_back_from_its_code() {
        for s in DeliveryStatus::ALL {
            assert_eq!(s.as_str().parse::<DeliveryStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
        assert!("lost".parse::<DeliveryStatus>().is_err());
    }

    #[test]
    fn only_queued_sending_and_standby_are_open() {
        let open: Vec<_> = DeliveryStatus::ALL.into_iter().filter(|s| !s.is_final()).collect();
        assert_eq!(open, [DeliveryStatus::Queued, DeliveryStatus::Sending, DeliveryStatus::Standby]);
    }
}
