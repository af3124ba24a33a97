//! The mobile push channel: one provider that sends each device through the service it belongs
//! to (APNs for Apple tokens, FCM for Firebase tokens) and merges what they say into one result.

use async_trait::async_trait;

use crate::apns::Apns;
use crate::fcm::Fcm;
use crate::{Provider, SendCommand, SendError, Sent, Target};

/// Routes push targets to APNs and FCM.
pub struct NativePush {
    apns: Option<Apns>,
    fcm: Option<Fcm>,
    name: &'static str,
}

impl NativePush {
    /// A router over the services configured; at least one must be.
    pub fn new(apns: Option<Apns>, fcm: Option<Fcm>) -> Result<NativePush, String> {
        let name = match (&apns, &fcm) {
            (Some(_), Some(_)) => "apns+fcm",
            (Some(_), None) => "apns",
            (None, Some(_)) => "fcm",
            (None, None) => return Err("native push needs [channels.push.apns] or [channels.push.fcm]".into()),
        };
        Ok(NativePush { apns, fcm, name })
    }

    /// The command narrowed to the targets of one service, or `None` when it has none.
    fn only(cmd: &SendCommand, keep: fn(&Target) -> bool) -> Option<SendCommand> {
        let targets: Vec<Target> = cmd.targets.iter().filter(|t| keep(t)).cloned().collect();
        (!targets.is_empty()).then(|| SendCommand { targets, ..cmd.clone() })
    }
}

#[async_trait]
impl Provider for NativePush {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn send(&self, cmd: &SendCommand) -> Result<Sent, SendError> {
        let apple = Self::only(cmd, |t| matches!(t, Target::Apns { .. }));
        let firebase = Self::only(cmd, |t| matches!(t, Target::Fcm { .. }));
        let mut results = Vec::new();
        let mut unserved = Vec::new();
        match (apple, &self.apns) {
            (Some(c), Some(apns)) => results.push(apns.send(&c).await),
            (Some(_), None) => unserved.push("APNs"),
            (None, _) => {}
        }
        match (firebase, &self.fcm) {
            (Some(c), Some(fcm)) => results.push(fcm.send(&c).await),
            (Some(_), None) => unserved.push("FCM"),
            (None, _) => {}
        }
        if !unserved.is_empty() {
            tracing::warn!(delivery_id = %cmd.delivery_id, services = ?unserved, "devices of an unconfigured push service are skipped");
        }
        merge(results, &unserved)
    }

    /// APNs and FCM fail independently: a user with only Android devices must not wait for an
    /// Apple outage, so each set of services a send touches has its own breaker.
    fn circuit(&self, cmd: &SendCommand) -> String {
        let apple = cmd.targets.iter().any(|t| matches!(t, Target::Apns { .. }));
        let firebase = cmd.targets.iter().any(|t| matches!(t, Target::Fcm { .. }));
        match (apple, firebase) {
            (true, false) => "push apns".into(),
            (false, true) => "push fcm".into(),
            _ => "push apns+fcm".into(),
        }
    }
}

/// One result for the whole send, as each service does for its devices: any success is a success
/// (with every gone device), else a transient failure is worth a retry, else the first refusal.
fn merge(results: Vec<Result<Sent, SendError>>, unserved: &[&str]) -> Result<Sent, SendError> {
    let mut gone = Vec::new();
    let mut delivered = false;
    let mut transient = None;
    let mut refused = None;
    for r in results {
        match r {
            Ok(sent) => {
                delivered = true;
                gone.extend(sent.gone);
            }
            Err(SendError::Gone { message, devices }) => {
                gone.extend(devices);
                refused.get_or_insert(SendError::Gone { message, devices: Vec::new() });
            }
            Err(e @ SendError::Transient { .. }) => {
                transient.get_or_insert(e);
            }
            Err(e) => {
                refused = Some(e);
            }
        }
    }
    if delivered {
        return Ok(Sent { gone });
    }
    if let Some(e) = transient {
        return Err(e);
    }
    match refused {
        Some(SendError::Gone { message, .. }) => Err(SendError::Gone { message, devices: gone }),
        Some(e) => Err(e),
        None => Err(SendError::Permanent(if unserved.is_empty() {
            "no push device among the targets".into()
        } else {
            format!("the user's devices need {}, which is not configured", unserved.join(" and "))
        })),
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn gone(id: u128) -> Result<Sent, SendError> {
        Err(SendError::Gone { message: "410".into(), devices: vec![Uuid::from_u128(id)] })
    }

    #[test]
    fn one_service_delivering_is_a_success_that_keeps_the_gone_devices() {
        let r = merge(vec![gone(1), Ok(Sent { gone: vec![Uuid::from_u128(2)] })], &[]);
        assert_eq!(r, Ok(Sent { gone: vec![Uuid::from_u128(1), Uuid::from_u128(2)] }));
    }

    #[test]
    fn transient_beats_refusals_and_all_gone_is_gone() {
        let busy = Err(SendError::Transient { message: "503".into(), retry_after: Some(3) });
        assert!(matches!(merge(vec![gone(1), busy], &[]), Err(SendError::Transient { retry_after: Some(3), .. })));
        match merge(vec![gone(1), gone(2)], &[]) {
            Err(SendError::Gone { devices, .. }) => assert_eq!(devices, vec![Uuid::from_u128(1), Uuid::from_u128(2)]),
            other => panic!("expected gone, got {other:?}"),
        }
        let refused = Err(SendError::Permanent("400 BadTopic".into()));
        assert_eq!(merge(vec![gone(1), refused], &[]), Err(SendError::Permanent("400 BadTopic".into())));
    }

    #[test]
    fn devices_of_an_unconfigured_service_are_explained() {
        match merge(Vec::new(), &["FCM"]) {
            Err(SendError::Permanent(m)) => assert!(m.contains("FCM"), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(NativePush::new(None, None).is_err());
    }
}
