//! Notification requests: what producers send to `POST /v1/notifications`, validated into a
//! [`NotificationSpec`] that the store keeps and the engine reads.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::channel::{Channel, Class};
use crate::error::ValidationErrors;
use crate::ids::{Category, TemplateKey, TopicKey, UserId};

/// How long the same content reaching a user again (by a topic and a direct send, say) counts as a
/// duplicate.
pub const DUPLICATE_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// Most user ids one request may name directly.
pub const MAX_RECIPIENTS: usize = 10_000;

/// Who a notification is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

/// Written by hand so that a wrong `to` is reported in words and at the offending element
/// (`to[3]`), where serde's untagged enums only say that no variant matched.
impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AudienceVisitor)
    }
}

struct AudienceVisitor;

impl<'de> Visitor<'de> for AudienceVisitor {
    type Value = Audience;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of user ids or {\"topic\": key}")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
        let mut ids = Vec::new();
        while let Some(id) = seq.next_element::<String>()? {
            ids.push(id);
        }
        Ok(Audience::Users(ids))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Audience, A::Error> {
        let mut topic = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "topic" if topic.is_none() => topic = Some(map.next_value::<String>()?),
                "topic" => return Err(de::Error::duplicate_field("topic")),
                _ => return Err(de::Error::invalid_type(Unexpected::Map, &self)),
            }
        }
        topic.map(|topic| Audience::Topic { topic }).ok_or_else(|| de::Error::missing_field("topic"))
    }
}

/// The body of `POST /v1/notifications`, as received.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationRequest {
    /// Template key.
    #[schema(pattern = "^[A-Za-z0-9._:@-]{1,128}$", min_length = 1, max_length = 128)]
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
    #[schema(min_length = 1, max_length = 255)]
    pub group_key: Option<String>,
    /// A newer notification with the same key replaces a pending older one.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    pub collapse_key: Option<String>,
    /// When to send (RFC 3339); absent means now.
    #[serde(default)]
    pub send_at: Option<String>,
    /// Lets a transactional notification through quiet hours.
    #[serde(default)]
    pub time_sensitive: bool,
    /// Discard if not delivered within this many seconds (at most 30 days).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2592000)]
    pub ttl_seconds: Option<u64>,
    /// Same key within 24 h gives the same notification.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
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

    #[test]
    fn a_wrong_audience_is_described_in_words() {
        let shape = |to: serde_json::Value| {
            serde_json::from_value::<NotificationRequest>(json!({"template": "t", "to": to})).map(|r| r.to)
        };
        assert_eq!(shape(json!({"topic": "news"})).unwrap(), Audience::Topic { topic: "news".into() });
        assert_eq!(shape(json!(["a"])).unwrap(), Audience::Users(vec!["a".into()]));
        for bad in [json!(5), json!({"segment": {}}), json!("u1"), json!(null)] {
            let e = shape(bad.clone()).unwrap_err().to_string();
            assert!(e.contains("expected a list of user ids or {\"topic\": key}"), "{bad}: {e}");
        }
        assert!(shape(json!({})).unwrap_err().to_string().contains("missing field `topic`"));
        assert!(shape(json!(["a", 7])).unwrap_err().to_string().contains("expected a string"));
    }
}
