//! Credentials: API keys (stored as SHA-256, compared in constant time for the admin key) and
//! user tokens (HS256 JWTs signed with a key kept in the store).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_domain::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::problem::ApiError;

/// The audience of user tokens, so that no other HS256 token of ours passes as one.
const AUDIENCE: &str = "herald:user";

/// A fresh API key: `hk_` + 32 random bytes, base64url.
pub fn generate_api_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("hk_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of an API key.
pub fn hash_api_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `key` is the admin key or an active stored key.
pub async fn check_api_key(state: &AppState, key: &str) -> Result<bool, ApiError> {
    if let Some(admin) = &state.admin_key
        && constant_time_eq(admin.as_bytes(), key.as_bytes())
    {
        return Ok(true);
    }
    Ok(state.store.find_api_key(&hash_api_key(key)).await?.is_some())
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    aud: String,
    iat: i64,
    exp: i64,
}

/// Issues a token for `user` valid for `ttl_seconds`; returns it with its expiry.
pub fn issue_user_token(
    state: &AppState,
    user: &UserId,
    ttl_seconds: i64,
) -> Result<(String, jiff::Timestamp), ApiError> {
    let now = state.clock.now();
    let exp = now.as_second() + ttl_seconds;
    let claims = Claims { sub: user.to_string(), aud: AUDIENCE.into(), iat: now.as_second(), exp };
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&state.token_key))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    let expires_at = jiff::Timestamp::from_second(exp).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((token, expires_at))
}

/// The user a valid, unexpired token was issued to.
pub fn verify_user_token(state: &AppState, token: &str) -> Option<UserId> {
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&[AUDIENCE]);
    // Expiry is checked against Herald's clock below, so an injected clock governs tokens too.
    v.validate_exp = false;
    v.set_required_spec_claims(&["exp", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&state.token_key), &v).ok()?;
    if data.claims.exp + 5 < state.clock.now().as_second() {
        return None;
    }
    UserId::parse("sub", &data.claims.sub).ok()
}
