//! Herald's HTTP API: the routes of the v1 contract, authentication, RFC 9457 errors and the
//! OpenAPI document generated from the handlers. Handlers talk to the store trait and the
//! runtime, never to SQL.

pub mod auth;
pub mod extract;
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

#[derive(OpenApi)]
#[openapi(
    info(title = "Herald", description = "Self-hosted notification service: the v1 HTTP API."),
    modifiers(&BearerAuth),
    tags(
        (name = "users", description = "Users, devices and preferences"),
        (name = "templates", description = "Templates and previews"),
        (name = "notifications", description = "Sending, status and cancellation"),
        (name = "inbox", description = "The in-app inbox and its live stream (user token)"),
        (name = "topics", description = "Topic subscriptions"),
        (name = "deliveries", description = "Dead letters, replay, provider feedback and provider callbacks"),
        (name = "operations", description = "Health, metrics, statistics and documentation"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("An API key")).build(),
            ),
        );
        // The two documentation routes are served beside the generated ones; list them too.
        for (path, summary) in [("/openapi.json", "This OpenAPI document"), ("/docs", "Interactive API documentation")]
        {
            let op = utoipa::openapi::path::OperationBuilder::new()
                .summary(Some(summary))
                .tag("operations")
                .response("200", utoipa::openapi::ResponseBuilder::new().description(summary).build())
                .build();
            openapi.paths.add_path_operation(path, vec![utoipa::openapi::path::HttpMethod::Get], op);
        }
        components.add_security_scheme(
            "user_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A user token"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document and the router, built together so they cannot disagree.
pub fn router(state: AppState) -> Router {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(routes::all()).split_for_parts();
    let api = Arc::new(api);
    let doc = api.clone();
    router
        .route("/openapi.json", axum::routing::get(move || async move { axum::Json(doc.as_ref().clone()) }))
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/docs/openapi.json", api.as_ref().clone()))
        .fallback(|| async { problem::ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(routes::ops::track))
        .layer(TraceLayer::new_for_http())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(60),
        ))
        .with_state(state)
}
