//! One result for a send that went to several targets (a user's devices, numbers or endpoints):
//! any target that took it makes the send a success, reported with the devices found gone; else
//! a failure worth retrying wins (waiting as long as the most demanding `Retry-After` asked),
//! then a refusal, then a dead address, then "every device is gone". Every provider settles its
//! sends this way, so they agree on what a mixed answer means.

use uuid::Uuid;

use crate::{AddressBlock, SendError, Sent};

/// What the targets of one send said so far.
#[derive(Debug)]
pub(crate) struct Outcomes {
    /// What to say when no target of the provider's kind was in the send.
    nothing: &'static str,
    accepted: bool,
    gone: Vec<Uuid>,
    gone_message: Option<String>,
    transient: Option<(String, Option<u64>)>,
    permanent: Option<String>,
    unreachable: Option<(String, AddressBlock)>,
}

impl Outcomes {
    /// No answer yet; `nothing` explains a send without a target of this provider.
    pub(crate) fn new(nothing: &'static str) -> Self {
        Self {
            nothing,
            accepted: false,
            gone: Vec::new(),
            gone_message: None,
            transient: None,
            permanent: None,
            unreachable: None,
        }
    }

    /// One target's answer.
    pub(crate) fn add(&mut self, result: Result<Sent, SendError>) {
        match result {
            Ok(sent) => {
                self.accepted = true;
                self.gone.extend(sent.gone);
            }
            Err(SendError::Gone { message, devices }) => {
                self.gone.extend(devices);
                self.gone_message.get_or_insert(message);
            }
            Err(SendError::Transient { message, retry_after }) => match &mut self.transient {
                Some((_, longest)) => *longest = (*longest).max(retry_after),
                None => self.transient = Some((message, retry_after)),
            },
            Err(SendError::Permanent(message)) => {
                self.permanent.get_or_insert(message);
            }
            Err(SendError::Unreachable { message, block }) => {
                self.unreachable.get_or_insert((message, block));
            }
        }
    }

    /// The send's result.
    pub(crate) fn finish(self) -> Result<Sent, SendError> {
        if self.accepted {
            return Ok(Sent { gone: self.gone });
        }
        if let Some((message, retry_after)) = self.transient {
            return Err(SendError::Transient { message, retry_after });
        }
        if let Some(message) = self.permanent {
            return Err(SendError::Permanent(message));
        }
        // An address is reported dead only when nothing else was said: the caller blocks it.
        if let Some((message, block)) = self.unreachable {
            return Err(SendError::Unreachable { message, block });
        }
        match self.gone_message {
            Some(message) => Err(SendError::Gone { message, devices: self.gone }),
            None => Err(SendError::Permanent(self.nothing.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settle(results: Vec<Result<Sent, SendError>>) -> Result<Sent, SendError> {
        let mut outcomes = Outcomes::new("no target");
        results.into_iter().for_each(|r| outcomes.add(r));
        outcomes.finish()
    }

    fn gone(id: u128) -> Result<Sent, SendError> {
        Err(SendError::Gone { message: format!("{id} is gone"), devices: vec![Uuid::from_u128(id)] })
    }

    fn busy(seconds: u64) -> Result<Sent, SendError> {
        Err(SendError::Transient { message: format!("busy {seconds}"), retry_after: Some(seconds) })
    }

    #[test]
    fn one_acceptance_is_a_success_that_keeps_every_gone_device() {
        let r = settle(vec![gone(1), busy(5), Ok(Sent { gone: vec![Uuid::from_u128(2)] })]);
        assert_eq!(r, Ok(Sent { gone: vec![Uuid::from_u128(1), Uuid::from_u128(2)] }));
    }

    #[test]
    fn a_retry_waits_as_long_as_the_most_demanding_answer() {
        let r = settle(vec![Err(SendError::Permanent("400".into())), busy(5), gone(1), busy(30)]);
        assert_eq!(r, Err(SendError::Transient { message: "busy 5".into(), retry_after: Some(30) }));
    }

    #[test]
    fn then_a_refusal_then_a_dead_address_then_all_gone() {
        let stopped = || Err(SendError::Unreachable { message: "stop".into(), block: AddressBlock::Stopped });
        assert_eq!(
            settle(vec![stopped(), Err(SendError::Permanent("400".into()))]),
            Err(SendError::Permanent("400".into()))
        );
        assert_eq!(
            settle(vec![gone(1), stopped()]),
            Err(SendError::Unreachable { message: "stop".into(), block: AddressBlock::Stopped })
        );
        assert_eq!(
            settle(vec![gone(1), gone(2)]),
            Err(SendError::Gone { message: "1 is gone".into(), devices: vec![Uuid::from_u128(1), Uuid::from_u128(2)] })
        );
        assert_eq!(settle(Vec::new()), Err(SendError::Permanent("no target".into())));
    }
}
