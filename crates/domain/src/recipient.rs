//! Where a recipient row stands in the work queue.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::code::{UnknownCode, find};

/// A recipient's queue state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecipientState {
    /// Due (now or later) for a decision.
    Pending,
    /// Taken by a lane, being decided.
    Claimed,
    /// Waiting in the user's pending digest.
    Batched,
    /// Decided for good.
    Done,
}

impl RecipientState {
    /// Every state.
    pub const ALL: [RecipientState; 4] =
        [RecipientState::Pending, RecipientState::Claimed, RecipientState::Batched, RecipientState::Done];

    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientState::Pending => "pending",
            RecipientState::Claimed => "claimed",
            RecipientState::Batched => "batched",
            RecipientState::Done => "done",
        }
    }
}

impl FromStr for RecipientState {
    type Err = UnknownCode;
    fn from_str(s: &str) -> Result<Self, UnknownCode> {
        find(&Self::ALL, Self::as_str, "recipient state", s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_parses_back_from_its_code() {
        for s in RecipientState::ALL {
            assert_eq!(s.as_str().parse::<RecipientState>(), Ok(s));
        }
        assert!("lost".parse::<RecipientState>().is_err());
    }
}
