//! Signed webhooks per Standard Webhooks: `webhook-id` (the delivery id, stable across retries),
//! `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_domain::device::webhook_secret_bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Provider, SendCommand, SendError, Sent, Target, outbound};

/// Signs `body` for `msg_id` at `timestamp` (seconds) with the decoded secret: `v1,<base64>`.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Posts the notification to each of the user's webhook endpoints.
pub struct WebhookProvider {
    client: outbound::Client,
}

impl WebhookProvider {
    /// A provider whose requests time out after `timeout` and reach only what `policy` permits.
    pub fn new(timeout: Duration, policy: outbound::Policy) -> Result<Self, reqwest::Error> {
        Ok(Self { client: outbound::Client::new(policy, timeout)? })
    }

    async fn post(&self, cmd: &SendCommand, url: &str, secret: &str, body: &[u8]) -> Result<(), SendError> {
        let key = webhook_secret_bytes(secret).ok_or_else(|| SendError::Permanent("invalid webhook secret".into()))?;
        let url = reqwest::Url::parse(url).map_err(|e| SendError::Permanent(format!("invalid webhook URL: {e}")))?;
        let id = cmd.delivery_id.to_string();
        let ts = crate::unix_now() as i64;
        let resp = self
            .client
            .post("webhook target", url, |request| {
                request
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", sign(&key, &id, ts, body))
                    .body(body.to_vec())
            })
            .await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = crate::retry_after(resp.headers());
        Err(SendError::from_status(status, format!("endpoint answered {status}"), retry_after))
    }
}

#[async_trait]
impl Provider for WebhookProvider {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, cmd: &SendCommand) -> Result<Sent, SendError> {
        let body = serde_json::to_vec(&cmd.payload).map_err(|e| SendError::Permanent(e.to_string()))?;
        let mut first_error = None;
        for t in &cmd.targets {
            if let Target::Webhook { url, secret, .. } = t
                && let Err(e) = self.post(cmd, url, secret, &body).await
            {
                tracing::warn!(delivery_id = %cmd.delivery_id, %url, error = %e, "webhook attempt failed");
                // A transient failure anywhere makes the whole delivery worth retrying.
                if first_error.as_ref().is_none_or(|f| matches!(f, SendError::Permanent(_))) {
                    first_error = Some(e);
                }
            }
        }
        first_error.map_or(Ok(Sent::default()), Err)
    }

    /// Each receiving host has its own breaker: one dead endpoint must not hold up the others.
    fn circuit(&self, cmd: &SendCommand) -> String {
        let origin = cmd.targets.iter().find_map(|t| match t {
            Target::Webhook { url, .. } => reqwest::Url::parse(url).ok().map(|u| u.origin().ascii_serialization()),
            _ => None,
        });
        format!("webhook {}", origin.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector published with the Standard Webhooks reference libraries.
    #[test]
    fn standard_webhooks_vector() {
        let key = webhook_secret_bytes("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let sig = sign(
            &key,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let key = webhook_secret_bytes("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let good = sign(&key, "msg_1", 1, b"{}");
        assert_ne!(good, sign(&key, "msg_2", 1, b"{}"));
        assert_ne!(good, sign(&key, "msg_1", 2, b"{}"));
        assert_ne!(good, sign(&key, "msg_1", 1, b"{ }"));
    }
}
