//! Herald's HTTP API: the routes of the v1 contract, authentication, RFC 9457 errors and the
//! OpenAPI document generated from the handlers. Handlers talk to the store trait and the
//! runtime, never to SQL.

pub mod auth;
pub mod extract;
mod openapi;
mod plain;
pub mod problem;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use herald_channels::unsubscribe::UnsubscribeLinks;
use herald_domain::preferences::PreferenceDefaults;
use herald_runtime::{Clock, Runtime};
use herald_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Longest a request may take before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The source of truth.
    pub store: Arc<dyn Store>,
    /// Lanes, dispatch and the live hub.
    pub runtime: Arc<Runtime>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// `HERALD_API_KEY`, accepted as an admin key when set.
    pub admin_key: Option<String>,
    /// Signing key of user tokens.
    pub token_key: Arc<[u8]>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Server-wide preference defaults.
    pub defaults: PreferenceDefaults,
    /// Makes and checks the one-click unsubscribe links of emails.
    pub unsubscribe: UnsubscribeLinks,
    /// The VAPID public key browsers subscribe with (base64url, uncompressed P-256 point).
    pub vapid_public_key: String,
    /// Twilio's callbacks, when Twilio sends SMS.
    pub twilio: Option<TwilioHooks>,
}

/// What verifying and answering Twilio's callbacks takes.
#[derive(Clone)]
pub struct TwilioHooks {
    /// Only callbacks about this account are taken.
    pub account_sid: String,
    /// Signs the callbacks (`X-Twilio-Signature`).
    pub auth_token: String,
    /// Herald's public base URL: the URL Twilio signed starts with it.
    pub public_url: String,
    /// The reply to HELP / INFO, if Herald gives one.
    pub help_text: Option<String>,
}

/// The routes and their completed OpenAPI document, built together so they cannot disagree.
fn documented() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut api) =
        OpenApiRouter::with_openapi(openapi::ApiDoc::openapi()).merge(routes::all()).split_for_parts();
    openapi::complete(&mut api);
    (router, api)
}

/// The application: every route, `/openapi.json`, `/docs`, and the layers around them.
pub fn router(state: AppState) -> Router {
    let (router, api) = documented();
    let api = Arc::new(api);
    let app = router
        .route("/openapi.json", axum::routing::get(move || async move { axum::Json(api.as_ref().clone()) }))
        .merge(openapi::docs())
        .fallback(|| async { problem::ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(routes::ops::track))
        .layer(TraceLayer::new_for_http())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state);
    // Around the whole router rather than its routes: axum's own answers (a 405 and its `Allow`)
    // are made outside route layers.
    Router::new().fallback_service(app).layer(axum::middleware::from_fn(problem::backstop))
}
