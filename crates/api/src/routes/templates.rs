//! Templates: store, read and preview.

use axum::Json;
use axum::extract::State;
use herald_domain::Channel;
use herald_domain::template::{RenderError, Rendered, TemplateSpec, render_context};
use herald_store::TemplateRecord;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::TemplatePath;
use crate::AppState;
use crate::extract::{ApiKey, JsonBody, Path};
use crate::problem::{ApiError, ApiResult, Problem};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put_template, get_template)).routes(routes!(preview))
}

/// A template as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct TemplateView {
    key: String,
    version: i64,
    #[serde(flatten)]
    spec: TemplateSpec,
    #[schema(value_type = String, format = DateTime)]
    created_at: jiff::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: jiff::Timestamp,
}

impl From<TemplateRecord> for TemplateView {
    fn from(t: TemplateRecord) -> Self {
        Self { key: t.key, version: t.version, spec: t.spec, created_at: t.created_at, updated_at: t.updated_at }
    }
}

/// Maps a render failure to a 422 naming the field.
pub(crate) fn render_problem(e: RenderError) -> ApiError {
    ApiError::field(e.field(), e.to_string())
}

/// Creates or replaces a template.
#[utoipa::path(put, path = "/v1/templates/{key}", tag = "templates", security(("api_key" = [])),
    params(TemplatePath), request_body = TemplateSpec,
    responses((status = 200, body = TemplateView), (status = 422, body = Problem)))]
async fn put_template(
    _: ApiKey,
    State(state): State<AppState>,
    Path(TemplatePath { key: k }): Path<TemplatePath>,
    JsonBody(spec): JsonBody<TemplateSpec>,
) -> ApiResult<Json<TemplateView>> {
    spec.validate()?;
    Ok(Json(state.store.put_template(&k, &spec, state.clock.now()).await?.into()))
}

/// Reads a template.
#[utoipa::path(get, path = "/v1/templates/{key}", tag = "templates", security(("api_key" = [])),
    params(TemplatePath), responses((status = 200, body = TemplateView), (status = 404, body = Problem)))]
async fn get_template(
    _: ApiKey,
    State(state): State<AppState>,
    Path(TemplatePath { key: k }): Path<TemplatePath>,
) -> ApiResult<Json<TemplateView>> {
    let t = state.store.get_template(&k).await?.ok_or_else(|| ApiError::NotFound(format!("no template {k}")))?;
    Ok(Json(t.into()))
}

/// What to preview.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    /// Channel to render.
    channel: Channel,
    /// Locale (falls back to the language, then the default).
    #[serde(default)]
    locale: Option<String>,
    /// Template variables; `user` may be given too.
    #[serde(default)]
    data: serde_json::Map<String, serde_json::Value>,
}

/// A rendered preview.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PreviewView {
    channel: Channel,
    #[serde(flatten)]
    rendered: Rendered,
    /// For SMS: what the body costs on the air.
    #[serde(skip_serializing_if = "Option::is_none")]
    sms: Option<SmsSize>,
}

/// An SMS body's size.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct SmsSize {
    /// `gsm7` or `ucs2`.
    encoding: &'static str,
    /// Septets (GSM-7) or UTF-16 units (UCS-2).
    units: usize,
    /// Messages it is sent and billed as.
    segments: u32,
}

/// Renders one channel of a template with the given data, strictly.
#[utoipa::path(post, path = "/v1/templates/{key}/preview", tag = "templates", security(("api_key" = [])),
    params(TemplatePath), request_body = PreviewRequest,
    responses((status = 200, body = PreviewView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn preview(
    _: ApiKey,
    State(state): State<AppState>,
    Path(TemplatePath { key: k }): Path<TemplatePath>,
    JsonBody(req): JsonBody<PreviewRequest>,
) -> ApiResult<Json<PreviewView>> {
    let t = state.store.get_template(&k).await?.ok_or_else(|| ApiError::NotFound(format!("no template {k}")))?;
    if !t.spec.channels().contains(&req.channel) {
        return Err(ApiError::field("channel", format!("template {k} has no {} content", req.channel)));
    }
    let ctx = render_context(&req.data, serde_json::json!({}));
    let rendered = t.spec.render(req.channel, req.locale.as_deref(), &ctx).map_err(render_problem)?;
    let sms = (req.channel == Channel::Sms).then(|| {
        let size = herald_domain::sms::measure(rendered.body.as_deref().unwrap_or_default());
        SmsSize { encoding: size.encoding.as_str(), units: size.units, segments: size.count }
    });
    Ok(Json(PreviewView { channel: req.channel, rendered, sms }))
}
