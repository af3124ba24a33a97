//! Extractors at the boundary, each failing with a problem document that names the field:
//! JSON bodies, query strings and path parameters, API-key auth and user-token auth.

use axum::body::Bytes;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use herald_domain::UserId;
use serde::de::value::MapDeserializer;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::AppState;
use crate::auth;
use crate::plain;
use crate::problem::ApiError;

/// A JSON object body: 415 when declared as another type, 413 over the limit, 400 when it is not
/// JSON, 422 naming the field when it has the wrong shape.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        parse(&body(req, state).await?).map(JsonBody)
    }
}

/// Like [`JsonBody`], but an empty body is `None`.
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            Ok(OptionalJsonBody(None))
        } else {
            parse(&bytes).map(|v| OptionalJsonBody(Some(v)))
        }
    }
}

/// The body's bytes, when its declared type can be JSON. No type, JSON types and curl's default
/// for `-d` (`application/x-www-form-urlencoded`) are read as JSON.
async fn body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    if let Some(declared) = req.headers().get(header::CONTENT_TYPE) {
        let declared = declared.to_str().unwrap_or("an unreadable type");
        let essence = declared.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let json = essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
            || essence == "application/x-www-form-urlencoded";
        if !json {
            return Err(ApiError::UnsupportedMediaType(declared.to_owned()));
        }
    }
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(format!("the body could not be read: {e}"))
        }
    })
}

/// Parses a JSON object: 400 when the bytes are not JSON, 422 naming the field otherwise.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, so that malformed JSON is always a 400 and any later error is about shape.
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(bytes) {
        return Err(malformed(bytes, &e));
    }
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::field("body", "must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| shape("", &e))
}

/// Parses one item of a list in a body (a batch's notification), its fields named from `root`.
pub(crate) fn parse_item<T: DeserializeOwned>(value: serde_json::Value, root: &str) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::field(root, "must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| shape(root, &e))
}

fn malformed(bytes: &[u8], e: &serde_json::Error) -> ApiError {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return ApiError::BadRequest("the body is empty; send a JSON object".into());
    }
    ApiError::BadRequest(format!(
        "the body is not valid JSON: {} (line {}, column {})",
        plain::syntax(&unplaced(e)),
        e.line(),
        e.column()
    ))
}

fn shape(root: &str, e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    plain::field_error(root, &e.path().to_string(), &unplaced(e.inner())).into()
}

/// serde_json's message without the position it appends (`… at line 1 column 13`).
fn unplaced(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.strip_suffix(&format!(" at line {} column {}", e.line(), e.column())) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

/// A query string: unknown parameters are ignored, a bad value is a 422 naming the parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| plain::field_error("", &e.path().to_string(), &e.inner().to_string()).into())
    }
}

/// Path parameters, named by a struct's fields: a value that cannot be what it names is a 422
/// naming the parameter.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state).await.map_err(|e| match e {
            RawPathParamsRejection::InvalidUtf8InPathParam(e) => {
                // axum keeps the parameter's name private; its message is "Invalid UTF-8 in `name`".
                let text = e.body_text();
                let name = text.split('`').nth(1).unwrap_or("path");
                ApiError::field(name, "must be UTF-8 text once percent-decoded")
            }
            other => ApiError::Internal(format!("path parameters: {}", other.body_text())),
        })?;
        let de = MapDeserializer::<_, serde::de::value::Error>::new(params.iter());
        serde_path_to_error::deserialize(de)
            .map(Path)
            .map_err(|e| plain::field_error("", &e.path().to_string(), &e.inner().to_string()).into())
    }
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
