//! Where a delivery goes: the user's contacts and devices for a channel, as provider targets.

use herald_channels::Target;
use herald_domain::Channel;
use herald_domain::device::DeviceSpec;
use herald_store::DeviceRecord;

/// The targets of a delivery for `channel` among the user's devices and contacts.
pub(crate) fn targets(
    channel: Channel,
    devices: &[DeviceRecord],
    user: Option<&herald_domain::user::User>,
) -> Vec<Target> {
    match channel {
        Channel::Email => {
            user.and_then(|u| u.email.as_ref()).map(|e| Target::Email(e.as_str().into())).into_iter().collect()
        }
        Channel::Sms => {
            user.and_then(|u| u.phone.as_ref()).map(|p| Target::Phone(p.as_str().into())).into_iter().collect()
        }
        _ => devices
            .iter()
            .filter(|d| d.spec.channel() == channel)
            .map(|d| match &d.spec {
                DeviceSpec::Webhook { url, secret } => {
                    Target::Webhook { device_id: d.id, url: url.clone(), secret: secret.clone() }
                }
                DeviceSpec::Apns { token } => Target::Apns { device_id: d.id, token: token.clone() },
                DeviceSpec::Fcm { token } => Target::Fcm { device_id: d.id, token: token.clone() },
                DeviceSpec::WebPush { subscription } => Target::WebPush {
                    device_id: d.id,
                    endpoint: subscription.endpoint.clone(),
                    p256dh: subscription.keys.p256dh.clone(),
                    auth: subscription.keys.auth.clone(),
                },
            })
            .collect(),
    }
}
