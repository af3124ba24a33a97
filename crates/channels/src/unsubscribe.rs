//! One-click unsubscribe links (RFC 8058): `<public_url>/v1/unsubscribe/<token>`, where the token
//! names the user and the category, expires, and is signed (HMAC-SHA256) so it cannot be forged
//! or altered.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How long a link works: long enough for an old email to still unsubscribe.
pub const VALIDITY: SignedDuration = SignedDuration::from_hours(24 * 90);

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    #[serde(rename = "u")]
    pub user_id: String,
    /// The category to leave; none: all marketing email.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Expiry, seconds since the epoch.
    #[serde(rename = "e")]
    pub expires: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token Herald made, or altered.
    #[error("this unsubscribe link is not valid")]
    Invalid,
    /// Too old.
    #[error("this unsubscribe link has expired")]
    Expired,
}

/// Makes and checks unsubscribe links.
#[derive(Clone)]
pub struct UnsubscribeLinks {
    base: String,
    key: Arc<[u8]>,
}

impl std::fmt::Debug for UnsubscribeLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsubscribeLinks").field("base", &self.base).finish_non_exhaustive()
    }
}

impl UnsubscribeLinks {
    /// Links under `public_url`, signed with `key`.
    pub fn new(public_url: &str, key: Arc<[u8]>) -> Self {
        Self { base: public_url.trim_end_matches('/').to_owned(), key }
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(data);
        mac
    }

    /// A token for `user` and `category`, valid from `now` for [`VALIDITY`].
    pub fn token(&self, user_id: &str, category: Option<&str>, now: Timestamp) -> String {
        let claims = Claims {
            user_id: user_id.to_owned(),
            category: category.map(str::to_owned),
            expires: (now + VALIDITY).as_second(),
        };
        let body = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let sig = B64.encode(self.mac(body.as_bytes()).finalize().into_bytes());
        format!("{body}.{sig}")
    }

    /// The full link for an email's `List-Unsubscribe` header.
    pub fn link(&self, user_id: &str, category: Option<&str>, now: Timestamp) -> String {
        format!("{}/v1/unsubscribe/{}", self.base, self.token(user_id, category, now))
    }

    /// Checks a token's signature and expiry.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Claims, TokenError> {
        let (body, sig) = token.split_once('.').ok_or(TokenError::Invalid)?;
        let sig = B64.decode(sig).map_err(|_| TokenError::Invalid)?;
        self.mac(body.as_bytes()).verify_slice(&sig).map_err(|_| TokenError::Invalid)?;
        let claims: Claims = serde_json::from_slice(&B64.decode(body).map_err(|_| TokenError::Invalid)?)
            .map_err(|_| TokenError::Invalid)?;
        if now.as_second() > claims.expires {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_expire_and_resist_tampering() {
        let links = UnsubscribeLinks::new("https://herald.example/", Arc::from(&b"secret"[..]));
        let now: Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
        let link = links.link("ana", Some("news"), now);
        assert!(link.starts_with("https://herald.example/v1/unsubscribe/"));
        let token = link.rsplit('/').next().unwrap();
        let claims = links.verify(token, now).unwrap();
        assert_eq!((claims.user_id.as_str(), claims.category.as_deref()), ("ana", Some("news")));
        assert_eq!(links.verify(token, now + VALIDITY + SignedDuration::from_secs(1)), Err(TokenError::Expired));
        let other = links.token("bo", Some("news"), now);
        let forged = format!("{}.{}", other.split_once('.').unwrap().0, token.split_once('.').unwrap().1);
        assert_eq!(links.verify(&forged, now), Err(TokenError::Invalid));
        let foreign = UnsubscribeLinks::new("https://herald.example", Arc::from(&b"other"[..]));
        assert_eq!(foreign.verify(token, now), Err(TokenError::Invalid));
        assert_eq!(links.verify("garbage", now), Err(TokenError::Invalid));
    }
}
