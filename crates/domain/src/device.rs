//! Devices: push tokens, web push subscriptions and webhook endpoints, validated on registration.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::error::ValidationErrors;

/// Web push subscription keys from the browser's `PushSubscription.toJSON()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebPushKeys {
    /// The client's P-256 public key, base64url of the uncompressed point (65 bytes).
    pub p256dh: String,
    /// The 16-byte authentication secret, base64url.
    pub auth: String,
}

/// A browser push subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebPushSubscription {
    /// The push service URL for this browser.
    pub endpoint: String,
    /// Encryption keys.
    pub keys: WebPushKeys,
}

/// What a device is; the registration body of `POST /v1/users/{id}/devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeviceSpec {
    /// An Apple device token (hex).
    Apns {
        /// The device token.
        token: String,
    },
    /// A Firebase registration token.
    Fcm {
        /// The registration token.
        token: String,
    },
    /// A browser push subscription.
    WebPush {
        /// The subscription as the browser returns it.
        subscription: WebPushSubscription,
    },
    /// A signed webhook endpoint.
    Webhook {
        /// Where to POST.
        url: String,
        /// Signing secret: `whsec_` + base64 (Standard Webhooks).
        secret: String,
    },
}

/// The fields of every kind of device, read as one plain object: serde reads an internally tagged
/// enum through a buffer that loses the path of a wrong value inside it, and an error must name
/// the field (`token`, `subscription.keys.auth`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceFields {
    kind: DeviceKind,
    token: Option<String>,
    subscription: Option<WebPushSubscription>,
    url: Option<String>,
    secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum DeviceKind {
    Apns,
    Fcm,
    WebPush,
    Webhook,
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let f = DeviceFields::deserialize(d)?;
        let given = [
            ("token", f.token.is_some()),
            ("subscription", f.subscription.is_some()),
            ("url", f.url.is_some()),
            ("secret", f.secret.is_some()),
        ];
        let only = |expected: &'static [&'static str]| match given.iter().find(|(n, set)| *set && !expected.contains(n))
        {
            Some((name, _)) => Err(D::Error::unknown_field(name, expected)),
            None => Ok(()),
        };
        fn need<T, E: Error>(v: Option<T>, name: &'static str) -> Result<T, E> {
            v.ok_or_else(|| E::missing_field(name))
        }
        Ok(match f.kind {
            DeviceKind::Apns => {
                only(&["token"])?;
                DeviceSpec::Apns { token: need(f.token, "token")? }
            }
            DeviceKind::Fcm => {
                only(&["token"])?;
                DeviceSpec::Fcm { token: need(f.token, "token")? }
            }
            DeviceKind::WebPush => {
                only(&["subscription"])?;
                DeviceSpec::WebPush { subscription: need(f.subscription, "subscription")? }
            }
            DeviceKind::Webhook => {
                only(&["url", "secret"])?;
                DeviceSpec::Webhook { url: need(f.url, "url")?, secret: need(f.secret, "secret")? }
            }
        })
    }
}

impl DeviceSpec {
    /// The channel this device serves.
    pub fn channel(&self) -> Channel {
        match self {
            DeviceSpec::Apns { .. } | DeviceSpec::Fcm { .. } => Channel::Push,
            DeviceSpec::WebPush { .. } => Channel::WebPush,
            DeviceSpec::Webhook { .. } => Channel::Webhook,
        }
    }

    /// The stable snake_case kind.
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceSpec::Apns { .. } => "apns",
            DeviceSpec::Fcm { .. } => "fcm",
            DeviceSpec::WebPush { .. } => "web_push",
            DeviceSpec::Webhook { .. } => "webhook",
        }
    }

    /// Checks every field of the registration.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        match self {
            DeviceSpec::Apns { token } => {
                if !(32..=200).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
                    errs.push("token", "an APNs device token is 32 to 200 hexadecimal characters");
                }
            }
            DeviceSpec::Fcm { token } => {
                if token.is_empty() || token.len() > 4096 || token.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    errs.push("token", "an FCM token is 1 to 4096 characters without spaces");
                }
            }
            DeviceSpec::WebPush { subscription } => {
                errs.check(check_url("subscription.endpoint", &subscription.endpoint, true));
                match URL_SAFE_NO_PAD.decode(subscription.keys.p256dh.trim_end_matches('=')) {
                    Ok(k) if k.len() == 65 && k[0] == 4 => {}
                    _ => errs.push(
                        "subscription.keys.p256dh",
                        "must be base64url of an uncompressed P-256 point (65 bytes)",
                    ),
                }
                match URL_SAFE_NO_PAD.decode(subscription.keys.auth.trim_end_matches('=')) {
                    Ok(k) if k.len() == 16 => {}
                    _ => errs.push("subscription.keys.auth", "must be base64url of 16 bytes"),
                }
            }
            DeviceSpec::Webhook { url, secret } => {
                errs.check(check_url("url", url, false));
                if webhook_secret_bytes(secret).is_none() {
                    errs.push("secret", "must be `whsec_` followed by base64 of 24 to 64 random bytes");
                }
            }
        }
        errs.into_result(())
    }
}

/// Decodes a Standard Webhooks secret (`whsec_` + base64) into its key bytes.
pub fn webhook_secret_bytes(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_")?;
    STANDARD.decode(b64).ok().filter(|k| (24..=64).contains(&k.len()))
}

fn check_url(field: &str, s: &str, https_only_off_loopback: bool) -> Result<(), ValidationErrors> {
    let bad = |m: &str| Err(ValidationErrors::single(field, m));
    let Ok(u) = url::Url::parse(s) else { return bad("must be an absolute http(s) URL") };
    if s.len() > 2048 {
        return bad("must be at most 2048 characters");
    }
    let loopback = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match u.scheme() {
        "https" => Ok(()),
        "http" if !https_only_off_loopback || loopback => Ok(()),
        "http" => bad("must use https"),
        _ => bad("must be an absolute http(s) URL"),
    }
    .and_then(|()| if u.host_str().is_some() { Ok(()) } else { bad("must have a host") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<DeviceSpec, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn each_kind_validates() {
        let ok = [
            r#"{"kind":"apns","token":"a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"}"#,
            r#"{"kind":"fcm","token":"dGVzdDp0b2tlbg"}"#,
            r#"{"kind":"web_push","subscription":{"endpoint":"https://push.example.com/x","keys":{"p256dh":"BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM","auth":"tBHItJI5svbpez7KI4CCXg"}}}"#,
            r#"{"kind":"webhook","url":"https://hooks.example.com/h","secret":"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"}"#,
        ];
        for j in ok {
            parse(j).unwrap().validate().unwrap();
        }
        let bad = [
            r#"{"kind":"apns","token":"not-hex"}"#,
            r#"{"kind":"fcm","token":""}"#,
            r#"{"kind":"web_push","subscription":{"endpoint":"http://push.example.com/x","keys":{"p256dh":"AAAA","auth":"tBHItJI5svbpez7KI4CCXg"}}}"#,
            r#"{"kind":"webhook","url":"ftp://x","secret":"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"}"#,
            r#"{"kind":"webhook","url":"https://x.example.com","secret":"plain"}"#,
        ];
        for j in bad {
            assert!(parse(j).unwrap().validate().is_err(), "{j}");
        }
        assert!(parse(r#"{"kind":"carrier_pigeon"}"#).is_err());
    }
}
