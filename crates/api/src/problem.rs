//! RFC 9457 problem details: every error the API returns, as `application/problem+json`.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use herald_domain::{FieldError, ValidationErrors};
use herald_store::StoreError;
use serde::Serialize;

/// The problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem kind.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// Explanation of this occurrence.
    pub detail: String,
    /// Field-level problems, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Errors a handler returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON or has the wrong shape (400).
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong credentials (401).
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// Authenticated by something that does not check out, such as a forged signature (403).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing here, or not yours (404).
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The method is not one the path answers (405).
    #[error("{method} is not allowed here; this path answers {allow}")]
    MethodNotAllowed {
        /// The method asked for.
        method: String,
        /// The methods the path answers, as in the `Allow` header.
        allow: String,
    },
    /// The request took too long (408).
    #[error("the request took longer than {} seconds", crate::REQUEST_TIMEOUT.as_secs())]
    RequestTimeout,
    /// Body over the limit (413).
    #[error("the request body is larger than 1 MiB")]
    PayloadTooLarge,
    /// The body is declared as something other than JSON (415); holds the declared type.
    #[error("the body must be sent as application/json, not {0}")]
    UnsupportedMediaType(String),
    /// Well-formed but invalid (422).
    #[error("{0}")]
    Validation(ValidationErrors),
    /// The store failed (500); details are logged, not returned.
    #[error("internal error")]
    Internal(String),
    /// Not ready (503).
    #[error("{0}")]
    Unavailable(String),
    /// Any other error status a layer answered with, described by its status alone.
    #[error("{}", .0.canonical_reason().unwrap_or("error"))]
    Status(StatusCode),
}

impl ApiError {
    /// A 422 about one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(ValidationErrors::single(field, message))
    }

    /// The status, the problem type URI and its title.
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "/problems/bad-request", "Malformed request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "/problems/unauthorized", "Unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "/problems/forbidden", "Forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "/problems/not-found", "Not found"),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "/problems/method-not-allowed", "Method not allowed")
            }
            ApiError::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "/problems/timeout", "Request timeout"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "/problems/conflict", "Conflict"),
            ApiError::PayloadTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "/problems/payload-too-large", "Payload too large")
            }
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "/problems/unsupported-media-type", "Unsupported media type")
            }
            ApiError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "/problems/validation", "Validation failed"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "/problems/internal", "Internal error"),
            ApiError::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "/problems/unavailable", "Service unavailable")
            }
            // RFC 9457: `about:blank` means nothing beyond the status itself.
            ApiError::Status(s) => (*s, "about:blank", s.canonical_reason().unwrap_or("Error")),
        }
    }

    /// The error for a bare status a layer answered with (no body, or plain text).
    fn from_status(status: StatusCode, method: &Method, allow: Option<&str>) -> Self {
        match status {
            StatusCode::NOT_FOUND => ApiError::NotFound("no such route".into()),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed {
                method: method.to_string(),
                allow: allow.unwrap_or("other methods").to_owned(),
            },
            StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::INTERNAL_SERVER_ERROR => ApiError::Internal(format!("a layer answered {method} with 500")),
            other => ApiError::Status(other),
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let (status, kind, title) = self.parts();
        let (detail, errors) = match self {
            ApiError::Validation(v) => {
                let detail = v.0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
                (detail, v.0.clone())
            }
            other => (other.to_string(), Vec::new()),
        };
        Problem { kind: kind.into(), title: title.into(), status: status.as_u16(), detail, errors }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // Only the client's `?cursor=` reaches a list; a bad one is theirs to fix.
            StoreError::BadCursor => ApiError::field("cursor", "is not a cursor this API returned"),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Validation(ValidationErrors(vec![e]))
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        ApiError::Validation(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(msg) = &self {
            tracing::error!(error = %msg, "request failed");
        }
        let problem = self.problem();
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, axum::Json(problem)).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// Turns an error answered by a layer or by axum itself (405 from the method router, 408 from the
/// timeout, 413 from the body limit, ...) into a problem document, keeping its headers (`Allow`).
/// Problem documents, HTML pages (unsubscribe links) and every 1xx-3xx answer pass untouched.
pub(crate) async fn backstop(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let resp = next.run(req).await;
    let status = resp.status();
    let declared = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !(status.is_client_error() || status.is_server_error())
        || declared.starts_with("application/problem+json")
        || declared.starts_with("text/html")
    {
        return resp;
    }
    let (mut parts, _) = resp.into_parts();
    let allow = parts.headers.get(header::ALLOW).and_then(|v| v.to_str().ok());
    let (problem, body) = ApiError::from_status(status, &method, allow).into_response().into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(problem.headers);
    Response::from_parts(parts, body)
}
