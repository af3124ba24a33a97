//! Users, their devices, preferences, tokens and timeline.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_domain::device::DeviceSpec;
use herald_domain::preferences::{Preferences, StoredPreferences};
use herald_domain::reason::{Decision, Reason};
use herald_domain::user::{User, UserInput};
use herald_domain::{Channel, UserId};
use herald_store::{DeviceRecord, UserRecord};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{List, Page, UserPath};
use crate::AppState;
use crate::extract::{ApiKey, JsonBody, OptionalJsonBody, Path, Query, UserToken};
use crate::problem::{ApiError, ApiResult, Problem};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_user, get_user, delete_user))
        .routes(routes!(create_token))
        .routes(routes!(add_device, list_devices))
        .routes(routes!(delete_device))
        .routes(routes!(get_preferences, put_preferences, patch_preferences))
        .routes(routes!(get_my_preferences, put_my_preferences, patch_my_preferences))
        .routes(routes!(timeline))
}

/// A user as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UserView {
    id: String,
    email: Option<String>,
    phone: Option<String>,
    timezone: Option<String>,
    locale: Option<String>,
    name: Option<String>,
    data: serde_json::Map<String, serde_json::Value>,
    #[schema(value_type = String, format = DateTime)]
    created_at: jiff::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: jiff::Timestamp,
}

impl From<UserRecord> for UserView {
    fn from(r: UserRecord) -> Self {
        let u = r.user;
        Self {
            id: u.id.to_string(),
            email: u.email.map(|e| e.as_str().to_owned()),
            phone: u.phone.map(|p| p.as_str().to_owned()),
            timezone: u.timezone.map(|t| t.as_str().to_owned()),
            locale: u.locale.map(|l| l.as_str().to_owned()),
            name: u.name,
            data: u.data,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub(super) async fn live_user(state: &AppState, id: &UserId) -> ApiResult<UserRecord> {
    match state.store.get_user(id).await? {
        Some(u) if u.erased_at.is_none() => Ok(u),
        _ => Err(ApiError::NotFound(format!("no user {id}"))),
    }
}

/// Refuses to attach data to an erased user (unknown users are fine: they are created).
async fn not_erased(state: &AppState, id: &UserId) -> ApiResult<()> {
    if state.store.get_user(id).await?.is_some_and(|u| u.erased_at.is_some()) {
        return Err(ApiError::NotFound(format!("user {id} was erased; PUT it again first")));
    }
    Ok(())
}

/// Creates or updates a user. Omitted fields stay as they are; `null` clears one.
#[utoipa::path(put, path = "/v1/users/{user_id}", tag = "users", security(("api_key" = [])),
    params(UserPath),
    request_body = UserInput,
    responses((status = 200, body = UserView), (status = 422, body = Problem)))]
async fn put_user(
    _: ApiKey,
    State(state): State<AppState>,
    Path(UserPath { user_id: id }): Path<UserPath>,
    JsonBody(input): JsonBody<UserInput>,
) -> ApiResult<Json<UserView>> {
    let current = state
        .store
        .get_user(&id)
        .await?
        .filter(|u| u.erased_at.is_none())
        .map(|u| u.user)
        .unwrap_or_else(|| User::bare(id));
    let next = input.apply(&current)?;
    Ok(Json(state.store.put_user(&next, state.clock.now()).await?.into()))
}

/// Reads a user.
#[utoipa::path(get, path = "/v1/users/{user_id}", tag = "users", security(("api_key" = [])),
    params(UserPath),
    responses((status = 200, body = UserView), (status = 404, body = Problem)))]
async fn get_user(
    _: ApiKey,
    State(state): State<AppState>,
    Path(UserPath { user_id: id }): Path<UserPath>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(live_user(&state, &id).await?.into()))
}

/// Erases a user's personal data: contacts, devices, preferences, inbox. The audit keeps a tombstone.
#[utoipa::path(delete, path = "/v1/users/{user_id}", tag = "users", security(("api_key" = [])),
    params(UserPath),
    responses((status = 204, description = "Erased"), (status = 404, body = Problem)))]
async fn delete_user(
    _: ApiKey,
    State(state): State<AppState>,
    Path(UserPath { user_id: id }): Path<UserPath>,
) -> ApiResult<StatusCode> {
    live_user(&state, &id).await?;
    state.store.erase_user(&id, state.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Options of a user token.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    /// Lifetime in seconds (60 to 30 days; default 24 h).
    ttl_seconds: Option<i64>,
}

/// A user token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct TokenView {
    token: String,
    #[schema(value_type = String, format = DateTime)]
    expires_at: jiff::Timestamp,
}

/// Issues a user token for browsers and apps (`/v1/me/...`).
#[utoipa::path(post, path = "/v1/users/{user_id}/token", tag = "users", security(("api_key" = [])),
    params(UserPath), request_body(content = Option<TokenRequest>, description = "Optional; an empty body takes the defaults"),
    responses((status = 200, body = TokenView), (status = 404, body = Problem)))]
async fn create_token(
    _: ApiKey,
    State(state): State<AppState>,
    Path(UserPath { user_id: id }): Path<UserPath>,
    OptionalJsonBody(req): OptionalJsonBody<TokenRequest>,
) -> ApiResult<Json<TokenView>> {
    let req = req.unwrap_or_default();
    let ttl = req.ttl_seconds.unwrap_or(86_400);
    if !(60..=30 * 86_400).contains(&ttl) {
        return Err(ApiError::field("ttl_seconds", "must be between 60 and 2592000"));
    }
    live_user(&state, &id).await?;
    let (token, expires_at) = crate::auth::issue_user_token(&state, &id, ttl)?;
    Ok(Json(TokenView { token, expires_at }))
}

/// A device as the API shows it (webhook secrets are never echoed back).
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct DeviceView {
    id: Uuid,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: jiff::Timestamp,
}

impl From<DeviceRecord> for DeviceView {
    fn from(d: DeviceRecord) -> Self {
        let kind = d.spec.kind();
        let (mut token, mut endpoint, mut url) = (None, None, None);
        match d.spec {
            DeviceSpec::Apns { token: t } | DeviceSpec::Fcm { token: t } => token = Some(t),
            DeviceSpec::WebPush { subscription } => endpoint = Some(subscription.endpoint),
            DeviceSpec::Webhook { url: u, .. } => url = Some(u),
        }
        Self { id: d.id, kind, token, endpoint, url, created_at: d.created_at }
    }
}

/// Registers a device: an APNs or FCM token, a web push subscription or a signed webhook.
#[utoipa::path(post, path = "/v1/users/{user_id}/devices", tag = "users", security(("api_key" = [])),
    params(UserPath), request_body = DeviceSpec,
    responses((status = 201, body = DeviceView), (status = 404, body = Problem, description = "The user was erased"),
        (status = 422, body = Problem)))]
async fn add_device(
    _: ApiKey,
    State(state): State<AppState>,
    Path(UserPath { user_id: id }): Path<UserPath>,
    JsonBody(spec): JsonBody<DeviceSpec>,
) -> ApiResult<(StatusCode, Json<DeviceView>)> {
    spec.validate()?;
    not_erased(&state, &id).await?;
    let rec = state.store.add_device(&id, &spec, state.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(rec.into())))
}

/// Lists a user's devices.
#[utoipa::path(get, path = "/v1/users/{user_id}/devices", tag = "users", security(("api_key" = [])),
    params(UserPath), responses((status = 200, body = List<DeviceView>), (status = 404, body = Problem)))]
async fn list_devices(
    _: ApiKey,
    State(state): State<AppState>,
    Path(UserPath { user_id: id }): Path<UserPath>,
) -> ApiResult<Json<List<DeviceView>>> {
    live_user(&state, &id).await?;
    let items = state.store.list_devices(&id).await?.into_iter().map(DeviceView::from).collect();
    Ok(Json(List { items, next_cursor: None }))
}

/// `{user_id}/devices/{device_id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct DevicePath {
    /// A user id: 1 to 128 of `A-Z a-z 0-9 . _ : @ -`.
    #[param(value_type = String, pattern = "^[A-Za-z0-9._:@-]{1,128}$", min_length = 1, max_length = 128)]
    user_id: UserId,
    /// The device's id, as registering it answered.
    #[param(value_type = Uuid)]
    device_id: String,
}

/// Removes a device.
#[utoipa::path(delete, path = "/v1/users/{user_id}/devices/{device_id}", tag = "users", security(("api_key" = [])),
    params(DevicePath),
    responses((status = 204, description = "Removed"), (status = 404, body = Problem)))]
async fn delete_device(
    _: ApiKey,
    State(state): State<AppState>,
    Path(DevicePath { user_id: id, device_id }): Path<DevicePath>,
) -> ApiResult<StatusCode> {
    let device = Uuid::parse_str(&device_id).map_err(|_| ApiError::NotFound("no such device".into()))?;
    if state.store.delete_device(&id, device).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("no such device".into()))
    }
}

async fn read_prefs(state: &AppState, id: &UserId) -> ApiResult<Preferences> {
    live_user(state, id).await?;
    Ok(state.store.get_preferences(id).await?.unwrap_or_default().resolve(&state.defaults))
}

async fn write_prefs(state: &AppState, id: &UserId, body: StoredPreferences, merge: bool) -> ApiResult<Preferences> {
    not_erased(state, id).await?;
    let next = if merge { state.store.get_preferences(id).await?.unwrap_or_default().merged(&body) } else { body };
    next.validate()?;
    state.store.put_preferences(id, &next, state.clock.now()).await?;
    Ok(next.resolve(&state.defaults))
}

/// Effective preferences (server defaults fill what the user left unset).
#[utoipa::path(get, path = "/v1/users/{user_id}/preferences", tag = "users", security(("api_key" = [])),
    params(UserPath), responses((status = 200, body = Preferences), (status = 404, body = Problem)))]
async fn get_preferences(
    _: ApiKey,
    State(state): State<AppState>,
    Path(UserPath { user_id: id }): Path<UserPath>,
) -> ApiResult<Json<Preferences>> {
    Ok(Json(read_prefs(&state, &id).await?))
}

/// Replaces preferences.
#[utoipa::path(put, path = "/v1/users/{user_id}/preferences", tag = "users", security(("api_key" = [])),
    params(UserPath), request_body = StoredPreferences,
    responses((status = 200, body = Preferences), (status = 404, body = Problem, description = "The user was erased"),
        (status = 422, body = Problem)))]
async fn put_preferences(
    _: ApiKey,
    State(state): State<AppState>,
    Path(UserPath { user_id: id }): Path<UserPath>,
    JsonBody(body): JsonBody<StoredPreferences>,
) -> ApiResult<Json<Preferences>> {
    Ok(Json(write_prefs(&state, &id, body, false).await?))
}

/// Merges preferences: maps merge key by key, other given fields replace.
#[utoipa::path(patch, path = "/v1/users/{user_id}/preferences", tag = "users", security(("api_key" = [])),
    params(UserPath), request_body = StoredPreferences,
    responses((status = 200, body = Preferences), (status = 404, body = Problem, description = "The user was erased"),
        (status = 422, body = Problem)))]
async fn patch_preferences(
    _: ApiKey,
    State(state): State<AppState>,
    Path(UserPath { user_id: id }): Path<UserPath>,
    JsonBody(body): JsonBody<StoredPreferences>,
) -> ApiResult<Json<Preferences>> {
    Ok(Json(write_prefs(&state, &id, body, true).await?))
}

/// The token holder's effective preferences.
#[utoipa::path(get, path = "/v1/me/preferences", tag = "inbox", security(("user_token" = [])),
    responses((status = 200, body = Preferences), (status = 404, body = Problem, description = "The user was erased")))]
async fn get_my_preferences(UserToken(id): UserToken, State(state): State<AppState>) -> ApiResult<Json<Preferences>> {
    Ok(Json(read_prefs(&state, &id).await?))
}

/// Replaces the token holder's preferences.
#[utoipa::path(put, path = "/v1/me/preferences", tag = "inbox", security(("user_token" = [])), request_body = StoredPreferences,
    responses((status = 200, body = Preferences), (status = 404, body = Problem, description = "The user was erased")))]
async fn put_my_preferences(
    UserToken(id): UserToken,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<StoredPreferences>,
) -> ApiResult<Json<Preferences>> {
    Ok(Json(write_prefs(&state, &id, body, false).await?))
}

/// Merges into the token holder's preferences.
#[utoipa::path(patch, path = "/v1/me/preferences", tag = "inbox", security(("user_token" = [])), request_body = StoredPreferences,
    responses((status = 200, body = Preferences), (status = 404, body = Problem, description = "The user was erased")))]
async fn patch_my_preferences(
    UserToken(id): UserToken,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<StoredPreferences>,
) -> ApiResult<Json<Preferences>> {
    Ok(Json(write_prefs(&state, &id, body, true).await?))
}

/// One line of a user's timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct TimelineItem {
    #[schema(value_type = String, format = DateTime)]
    at: jiff::Timestamp,
    notification_id: Uuid,
    decision: Decision,
    reason: Option<Reason>,
    channel: Option<Channel>,
}

/// Why this person did or did not get each notification, newest first.
#[utoipa::path(get, path = "/v1/users/{user_id}/timeline", tag = "users", security(("api_key" = [])),
    params(UserPath, Page), responses((status = 200, body = List<TimelineItem>), (status = 404, body = Problem)))]
async fn timeline(
    _: ApiKey,
    State(state): State<AppState>,
    Path(UserPath { user_id: id }): Path<UserPath>,
    Query(page): Query<Page>,
) -> ApiResult<Json<List<TimelineItem>>> {
    if state.store.get_user(&id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no user {id}")));
    }
    let limit = page.limit(50);
    let rows = state.store.timeline(&id, page.cursor().as_ref(), limit).await?;
    Ok(Json(super::list(rows, |r| TimelineItem {
        at: r.at,
        notification_id: r.notification_id,
        decision: r.decision,
        reason: r.reason,
        channel: r.channel,
    })))
}
