//! Identifiers chosen by producers: user ids, template keys, categories and other keys.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationErrors;

fn valid_key(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
}

macro_rules! key_type {
    ($(#[$doc:meta])* $name:ident, $max:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates: 1..max of `[A-Za-z0-9._:@-]`.
            pub fn parse(field: &str, s: &str) -> Result<Self, ValidationErrors> {
                if valid_key(s, $max) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(ValidationErrors::single(
                        field,
                        format!("{} must be 1 to {} characters of A-Z a-z 0-9 . _ : @ -", $what, $max),
                    ))
                }
            }

            /// The key as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                if valid_key(&s, $max) {
                    Ok(Self(s))
                } else {
                    Err(format!("{} must be 1 to {} characters of A-Z a-z 0-9 . _ : @ -", $what, $max))
                }
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

key_type!(
    /// A producer-chosen user id.
    UserId, 128, "a user id"
);
key_type!(
    /// The key of a template.
    TemplateKey, 128, "a template key"
);
key_type!(
    /// A preference category such as `replies` or `marketing`.
    Category, 64, "a category"
);
impl Category {
    /// The category of marketing notifications that name none: one opt-out (or one email
    /// unsubscribe link) covers all of them.
    pub fn marketing() -> &'static Category {
        static MARKETING: std::sync::LazyLock<Category> = std::sync::LazyLock::new(|| Category("marketing".to_owned()));
        &MARKETING
    }
}

key_type!(
    /// A topic key.
    TopicKey, 128, "a topic key"
);

/// Namespace of deterministic delivery ids.
const DELIVERY_NS: uuid::Uuid = uuid::Uuid::from_u128(0x6865_7261_6c64_4000_8000_6465_6c69_7672);

/// The deterministic delivery id of (notification, user, channel): the same on every retry and
/// every redelivery after a crash, and the provider's idempotency key.
pub fn delivery_id(notification: uuid::Uuid, user: &UserId, channel: crate::Channel) -> uuid::Uuid {
    uuid::Uuid::new_v5(&DELIVERY_NS, format!("{notification}/{user}/{channel}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn user_ids_follow_the_contract() {
        assert!(UserId::parse("user_id", "u1").is_ok());
        assert!(UserId::parse("user_id", "ana@example.com").is_ok());
        assert!(UserId::parse("user_id", "tenant:42.user-7_x").is_ok());
        assert!(UserId::parse("user_id", "").is_err());
        assert!(UserId::parse("user_id", "has space").is_err());
        assert!(UserId::parse("user_id", "slash/no").is_err());
        assert!(UserId::parse("user_id", "é").is_err());
        assert!(UserId::parse("user_id", &"a".repeat(128)).is_ok());
        assert!(UserId::parse("user_id", &"a".repeat(129)).is_err());
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_the_charset(s in "\\PC{0,140}") {
            let ok = !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || "._:@-".contains(c));
            prop_assert_eq!(UserId::parse("f", &s).is_ok(), ok);
        }
    }
}
