//! Notification requests: what producers send to `POST /v1/notifications`, validated into a
//! [`NotificationSpec`] that the store keeps and the engine reads.

use serde::{Deserialize, Serialize};

use crate::channel::{Channel, Class};
use crate::error::ValidationErrors;
use crate::ids::{Category, TemplateKey, TopicKey, UserId};

/// How long the same content reaching a user again (by a topic and a direct send, say) counts as a
/// duplicate.
pub const DUPLICATE_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// Most user ids one request may name directly.
pub const MAX_RECIPIENTS: usize = 10_000;

/// Who a notification is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Audience {
    /// Explicit user ids.
    Users(Vec<String>),
    /// Every subscriber of a topic.
    Topic {
        /// The topic key.
        topic: String,
    },
}

/// The body of `POST /v1/notifications`, as received.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationRequest {
    /// Template key.
    pub template: String,
    /// Recipients: user ids or `{"topic": "key"}`.
    pub to: Audience,
    /// Template variables.
    #[serde(default)]
    pub data: serde_json::Map<String, serde_json::Value>,
    /// Overrides the template's class.
    #[serde(default)]
    pub class: Option<Class>,
    /// Overrides the template's category.
    #[serde(default)]
    pub category: Option<String>,
    /// Restricts the channels used.
    #[serde(default)]
    pub channels: Option<Vec<Channel>>,
    /// Digest grouping key.
    #[serde(default)]
    pub group_key: Option<String>,
    /// A newer notification with the same key replaces a pending older one.
    #[serde(default)]
    pub collapse_key: Option<String>,
    /// When to send (RFC 3339); absent means now.
    #[serde(default)]
    pub send_at: Option<String>,
    /// Lets a transactional notification through quiet hours.
    #[serde(default)]
    pub time_sensitive: bool,
    /// Discard if not delivered within this many seconds.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Same key within 24 h gives the same notification.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Validated recipients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipients {
    /// Explicit, de-duplicated, in request order.
    Users(Vec<UserId>),
    /// A topic to fan out.
    Topic(TopicKey),
}

/// A validated notification, as stored and read by the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationSpec {
    /// Template key.
    pub template: TemplateKey,
    /// Template variables.
    pub data: serde_json::Map<String, serde_json::Value>,
    /// Class given by the producer (else the template's).
    pub class: Option<Class>,
    /// Category given by the producer (else the template's).
    pub category: Option<Category>,
    /// Channel restriction.
    pub channels: Option<Vec<Channel>>,
    /// Digest grouping key.
    pub group_key: Option<String>,
    /// Collapse key.
    pub collapse_key: Option<String>,
    /// Scheduled time.
    pub send_at: Option<jiff::Timestamp>,
    /// Breaks quiet hours for transactional.
    pub time_sensitive: bool,
    /// Time to live.
    pub ttl_seconds: Option<u64>,
}

fn short_key(errs: &mut ValidationErrors, field: &str, v: &Option<String>) -> Option<String> {
    match v {
        Some(s) if s.is_empty() || s.len() > 255 || s.chars().any(char::is_control) => {
            errs.push(field, "must be 1 to 255 printable characters");
            None
        }
        other => other.clone(),
    }
}

impl NotificationRequest {
    /// Validates the request into a spec and its recipients; `header_key` is the `Idempotency-Key`.
    pub fn validate(
        &self,
        now: jiff::Timestamp,
    ) -> Result<(NotificationSpec, Recipients, Option<String>), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let template = errs.check(TemplateKey::parse("template", &self.template));
        let recipients = match &self.to {
            Audience::Users(ids) if ids.is_empty() => {
                errs.push("to", "must name at least one user id or a topic");
                None
            }
            Audience::Users(ids) if ids.len() > MAX_RECIPIENTS => {
                errs.push("to", format!("at most {MAX_RECIPIENTS} user ids per notification; use a topic for more"));
                None
            }
            Audience::Users(ids) => {
                let mut seen = std::collections::HashSet::new();
                let mut out = Vec::with_capacity(ids.len());
                for (i, id) in ids.iter().enumerate() {
                    if let Some(u) = errs.check(UserId::parse(&format!("to[{i}]"), id))
                        && seen.insert(u.clone())
                    {
                        out.push(u);
                    }
                }
                Some(Recipients::Users(out))
            }
            Audience::Topic { topic } => errs.check(TopicKey::parse("to.topic", topic)).map(Recipients::Topic),
        };
        let category = self.category.as_deref().and_then(|c| errs.check(Category::parse("category", c)));
        if self.channels.as_ref().is_some_and(Vec::is_empty) {
            errs.push("channels", "must list at least one channel when given");
        }
        let group_key = short_key(&mut errs, "group_key", &self.group_key);
        let collapse_key = short_key(&mut errs, "collapse_key", &self.collapse_key);
        let idempotency_key = short_key(&mut errs, "idempotency_key", &self.idempotency_key);
        let send_at = match &self.send_at {
            None => None,
            Some(s) => match s.parse::<jiff::Timestamp>() {
                Ok(t) if t > now.checked_add(jiff::SignedDuration::from_hours(24 * 366)).unwrap_or(now) => {
                    errs.push("send_at", "must be within a year");
                    None
                }
                Ok(t) => Some(t),
                Err(_) => {
                    errs.push("send_at", "must be an RFC 3339 time like 2026-12-01T09:00:00Z");
                    None
                }
            },
        };
        if let Some(ttl) = self.ttl_seconds
            && !(1..=30 * 86_400).contains(&ttl)
        {
            errs.push("ttl_seconds", "must be between 1 and 2592000 (30 days)");
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let (Some(template), Some(recipients)) = (template, recipients) else {
            return Err(errs);
        };
        let spec = NotificationSpec {
            template,
            data: self.data.clone(),
            class: self.class,
            category,
            channels: self.channels.clone(),
            group_key,
            collapse_key,
            send_at,
            time_sensitive: self.time_sensitive,
            ttl_seconds: self.ttl_seconds,
        };
        Ok((spec, recipients, idempotency_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(j: serde_json::Value) -> NotificationRequest {
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn minimal_request() {
        let (spec, to, key) =
            req(json!({"template": "t", "to": ["u1", "u2", "u1"]})).validate(jiff::Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(spec.template.as_str(), "t");
        assert_eq!(to, Recipients::Users(vec![UserId::parse("", "u1").unwrap(), UserId::parse("", "u2").unwrap()]));
        assert_eq!(key, None);
    }

    #[test]
    fn topic_and_full_request() {
        let (spec, to, key) = req(json!({
            "template": "new_reply", "to": {"topic": "thread:42"}, "data": {"sender": "Ana"},
            "class": "social", "category": "replies", "channels": ["in_app", "push"],
            "group_key": "thread:42", "collapse_key": "thread:42:typing", "send_at": "2026-12-01T09:00:00Z",
            "time_sensitive": false, "ttl_seconds": 86400, "idempotency_key": "k1"
        }))
        .validate("2026-11-22T00:00:00Z".parse().unwrap())
        .unwrap();
        assert_eq!(to, Recipients::Topic(TopicKey::parse("", "thread:42").unwrap()));
        assert_eq!(spec.channels, Some(vec![Channel::InApp, Channel::Push]));
        assert_eq!(key.as_deref(), Some("k1"));
    }

    #[test]
    fn every_problem_is_reported() {
        let err = req(json!({"template": "bad key", "to": ["ok", "not ok"], "send_at": "tomorrow", "ttl_seconds": 0}))
            .validate(jiff::Timestamp::UNIX_EPOCH)
            .unwrap_err();
        let fields: Vec<_> = err.0.iter().map(|e| e.field.clone()).collect();
        assert_eq!(fields, ["template", "to[1]", "send_at", "ttl_seconds"]);
        assert!(req(json!({"template": "t", "to": []})).validate(jiff::Timestamp::UNIX_EPOCH).is_err());
        assert!(
            serde_json::from_value::<NotificationRequest>(json!({"template": "t", "to": ["u"], "colour": 1})).is_err()
        );
    }
}
