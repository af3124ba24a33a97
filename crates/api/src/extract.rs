//! Extractors at the boundary: JSON bodies with problem+json rejections, API-key auth and
//! user-token auth.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use herald_domain::UserId;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::auth;
use crate::problem::ApiError;

/// A JSON body: 400 when it is not JSON, 422 when it has the wrong shape, 413 when too large.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(e.body_text())
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses JSON with the same classification as [`JsonBody`].
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::field("body", e.to_string()),
        _ => ApiError::BadRequest(format!("malformed JSON: {e}")),
    })
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// A caller holding a valid API key (or the `HERALD_API_KEY` admin key).
pub struct ApiKey;

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = bearer(parts).ok_or(ApiError::Unauthorized)?;
        if auth::check_api_key(state, key).await? { Ok(ApiKey) } else { Err(ApiError::Unauthorized) }
    }
}

/// The user a user token was issued to; the stream also accepts `?token=`.
pub struct UserToken(pub UserId);

impl FromRequestParts<AppState> for UserToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let from_query = || {
            parts.uri.query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")).map(|t| t.to_owned()))
        };
        let token = bearer(parts).map(str::to_owned).or_else(from_query).ok_or(ApiError::Unauthorized)?;
        auth::verify_user_token(state, &token).map(UserToken).ok_or(ApiError::Unauthorized)
    }
}

/// Parses a `{user_id}` path segment (404 rather than 422: such a user cannot exist).
pub fn user_id(s: &str) -> Result<UserId, ApiError> {
    UserId::parse("user_id", s).map_err(ApiError::from)
}
