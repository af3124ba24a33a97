//! Topics: who subscribes to what, for `{"to": {"topic": "key"}}`.

use axum::Json;
use axum::extract::State;
use herald_domain::UserId;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{List, Page, TopicPath};
use crate::AppState;
use crate::extract::{ApiKey, JsonBody, Path, Query};
use crate::problem::{ApiError, ApiResult, Problem};

/// Most user ids in one call.
const MAX_IDS: usize = 10_000;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(add, remove, list))
}

/// User ids to add or remove.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Subscribers {
    /// Up to 10,000 user ids.
    user_ids: Vec<String>,
}

/// How many subscriptions changed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Changed {
    changed: u64,
}

fn user_ids(body: &Subscribers) -> ApiResult<Vec<UserId>> {
    if body.user_ids.is_empty() || body.user_ids.len() > MAX_IDS {
        return Err(ApiError::field("user_ids", format!("must hold 1 to {MAX_IDS} user ids")));
    }
    let mut errs = herald_domain::ValidationErrors::default();
    let ids: Vec<UserId> = body
        .user_ids
        .iter()
        .enumerate()
        .filter_map(|(i, s)| errs.check(UserId::parse(&format!("user_ids[{i}]"), s)))
        .collect();
    Ok(errs.into_result(ids)?)
}

/// Subscribes users (creating unknown ones with no contacts).
#[utoipa::path(put, path = "/v1/topics/{key}/subscribers", tag = "topics", security(("api_key" = [])),
    params(TopicPath), request_body = Subscribers, responses((status = 200, body = Changed), (status = 422, body = Problem)))]
async fn add(
    _: ApiKey,
    State(state): State<AppState>,
    Path(TopicPath { key: topic }): Path<TopicPath>,
    JsonBody(body): JsonBody<Subscribers>,
) -> ApiResult<Json<Changed>> {
    let ids = user_ids(&body)?;
    Ok(Json(Changed { changed: state.store.subscribe(&topic, &ids, state.clock.now()).await? }))
}

/// Unsubscribes users.
#[utoipa::path(delete, path = "/v1/topics/{key}/subscribers", tag = "topics", security(("api_key" = [])),
    params(TopicPath), request_body = Subscribers, responses((status = 200, body = Changed), (status = 422, body = Problem)))]
async fn remove(
    _: ApiKey,
    State(state): State<AppState>,
    Path(TopicPath { key: topic }): Path<TopicPath>,
    JsonBody(body): JsonBody<Subscribers>,
) -> ApiResult<Json<Changed>> {
    let ids = user_ids(&body)?;
    Ok(Json(Changed { changed: state.store.unsubscribe(&topic, &ids).await? }))
}

/// Lists subscribers in id order.
#[utoipa::path(get, path = "/v1/topics/{key}/subscribers", tag = "topics", security(("api_key" = [])),
    params(TopicPath, Page), responses((status = 200, body = List<String>)))]
async fn list(
    _: ApiKey,
    State(state): State<AppState>,
    Path(TopicPath { key: topic }): Path<TopicPath>,
    Query(page): Query<Page>,
) -> ApiResult<Json<List<String>>> {
    let limit = page.limit(100);
    let ids = state.store.subscribers(&topic, page.cursor().as_ref(), limit).await?;
    Ok(Json(super::list(ids, String::from)))
}
