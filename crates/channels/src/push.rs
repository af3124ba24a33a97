//! The mobile push channel: one provider that sends each device through the service it belongs
//! to (APNs for Apple tokens, FCM for Firebase tokens) and merges what they say into one result.

use async_trait::async_trait;

use crate::apns::Apns;
use crate::fcm::Fcm;
use crate::outcome::Outcomes;
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
        let mut outcomes = Outcomes::new("no push device among the targets");
        let unserved = |service: &str| {
            tracing::warn!(delivery_id = %cmd.delivery_id, service, "devices of an unconfigured push service are skipped");
            Err(SendError::Permanent(format!("the user's devices need {service}, which is not configured")))
        };
        match (apple, &self.apns) {
            (Some(c), Some(apns)) => outcomes.add(apns.send(&c).await),
            (Some(_), None) => outcomes.add(unserved("APNs")),
            (None, _) => {}
        }
        match (firebase, &self.fcm) {
            (Some(c), Some(fcm)) => outcomes.add(fcm.send(&c).await),
            (Some(_), None) => outcomes.add(unserved("FCM")),
            (None, _) => {}
        }
        outcomes.finish()
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use herald_domain::{Channel, Class};
    use herald_testkit::apns::{FakeApns, signing_key};
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::apns::ApnsConfig;

    fn command(targets: Vec<Target>) -> SendCommand {
        SendCommand {
            delivery_id: Uuid::now_v7(),
            channel: Channel::Push,
            user_id: "ana".into(),
            payload: json!({"title": "t", "body": "b"}),
            targets,
            attempt: 1,
            class: Class::Social,
            collapse_key: None,
            ttl: None,
            unsubscribe_url: None,
        }
    }

    #[tokio::test]
    async fn each_device_goes_to_its_service_and_an_unconfigured_one_is_explained() {
        let fake = FakeApns::start().await;
        let config = ApnsConfig {
            endpoint: fake.url().to_owned(),
            key_pem: signing_key().0,
            key_id: "KEY1234567".into(),
            team_id: "TEAM123456".into(),
            topic: "com.example.app".into(),
        };
        let push = NativePush::new(Some(Apns::new(config, Duration::from_secs(5)).unwrap()), None).unwrap();
        assert_eq!(push.name(), "apns");
        let apple = Target::Apns { device_id: Uuid::now_v7(), token: "abc123".into() };
        let android = Target::Fcm { device_id: Uuid::now_v7(), token: "fcm-1".into() };
        let both = command(vec![apple.clone(), android.clone()]);
        assert_eq!(push.circuit(&both), "push apns+fcm");
        assert_eq!(push.send(&both).await, Ok(Sent::default()), "the Apple device took it");
        assert_eq!(fake.take().len(), 1, "only the Apple device went to APNs");
        match push.send(&command(vec![android])).await {
            Err(SendError::Permanent(m)) => assert!(m.contains("FCM") && m.contains("not configured"), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(push.circuit(&command(vec![apple])), "push apns");
        assert!(NativePush::new(None, None).is_err());
    }
}
