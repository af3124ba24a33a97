//! The in-app inbox for its owner (user token) and for the server (API key), and the live
//! Server-Sent Events stream with `Last-Event-ID` resume.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use herald_domain::UserId;
use herald_runtime::LiveEvent;
use herald_store::{InboxItem, InboxQuery, InboxTarget};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Limit, UserPath};
use crate::AppState;
use crate::extract::{ApiKey, JsonBody, Path, Query, UserToken};
use crate::problem::{ApiError, ApiResult, Problem};

/// Items replayed at most when a stream resumes.
const REPLAY_LIMIT: u32 = 1000;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_inbox))
        .routes(routes!(mark_read))
        .routes(routes!(mark_unread))
        .routes(routes!(stream))
        .routes(routes!(user_inbox))
}

/// `?limit=&cursor=&unread=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct InboxParams {
    /// Page size, 1 to 100 (default 20).
    #[param(inline)]
    limit: Option<Limit>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Only unread items.
    unread: Option<bool>,
}

/// An inbox item.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ItemView {
    id: Uuid,
    notification_id: Uuid,
    title: Option<String>,
    body: Option<String>,
    action_url: Option<String>,
    category: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: jiff::Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    read_at: Option<jiff::Timestamp>,
}

impl From<InboxItem> for ItemView {
    fn from(i: InboxItem) -> Self {
        Self {
            id: i.id,
            notification_id: i.notification_id,
            title: i.title,
            body: i.body,
            action_url: i.action_url,
            category: i.category,
            created_at: i.created_at,
            read_at: i.read_at,
        }
    }
}

/// A page of the inbox.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct InboxPage {
    items: Vec<ItemView>,
    next_cursor: Option<String>,
    unread_count: u64,
}

async fn page(state: &AppState, user: &UserId, p: InboxParams) -> ApiResult<InboxPage> {
    let paging = super::Page { limit: p.limit, cursor: p.cursor };
    let query = InboxQuery { limit: paging.limit(20), cursor: paging.cursor(), unread_only: p.unread.unwrap_or(false) };
    let super::List { items, next_cursor } = super::list(state.store.list_inbox(user, query).await?, ItemView::from);
    let unread_count = state.store.unread_count(user).await?;
    Ok(InboxPage { items, next_cursor, unread_count })
}

/// The token holder's inbox, newest first.
#[utoipa::path(get, path = "/v1/me/inbox", tag = "inbox", security(("user_token" = [])),
    params(InboxParams), responses((status = 200, body = InboxPage), (status = 401, body = Problem)))]
async fn my_inbox(
    UserToken(user): UserToken,
    State(state): State<AppState>,
    Query(p): Query<InboxParams>,
) -> ApiResult<Json<InboxPage>> {
    Ok(Json(page(&state, &user, p).await?))
}

/// A user's inbox, read by the server.
#[utoipa::path(get, path = "/v1/users/{user_id}/inbox", tag = "inbox", security(("api_key" = [])),
    params(UserPath, InboxParams), responses((status = 200, body = InboxPage), (status = 404, body = Problem)))]
async fn user_inbox(
    _: ApiKey,
    State(state): State<AppState>,
    Path(UserPath { user_id: id }): Path<UserPath>,
    Query(p): Query<InboxParams>,
) -> ApiResult<Json<InboxPage>> {
    super::users::live_user(&state, &id).await?;
    Ok(Json(page(&state, &id, p).await?))
}

/// Which items to mark.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MarkRequest {
    /// Item ids.
    #[serde(default)]
    ids: Option<Vec<Uuid>>,
    /// Every item (read only).
    #[serde(default)]
    all: Option<bool>,
}

/// The result of a mark call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct MarkResult {
    updated: u64,
    unread_count: u64,
}

async fn mark(state: &AppState, user: &UserId, req: MarkRequest, read: bool) -> ApiResult<MarkResult> {
    let target = match (req.ids, req.all) {
        (Some(ids), None | Some(false)) if !ids.is_empty() && ids.len() <= 1000 => InboxTarget::Ids(ids),
        (None, Some(true)) if read => InboxTarget::All,
        _ if read => return Err(ApiError::field("ids", "give 1 to 1000 `ids`, or `all: true`")),
        _ => return Err(ApiError::field("ids", "give 1 to 1000 `ids`")),
    };
    let updated = state.store.mark_inbox(user, target, read, state.clock.now()).await?;
    let unread_count = state.store.unread_count(user).await?;
    if updated > 0 {
        state.runtime.hub().publish(user.as_str(), LiveEvent::UnreadCount(unread_count));
    }
    Ok(MarkResult { updated, unread_count })
}

/// Marks items read: `{"ids": [...]}` or `{"all": true}`.
#[utoipa::path(post, path = "/v1/me/inbox/read", tag = "inbox", security(("user_token" = [])),
    request_body = MarkRequest, responses((status = 200, body = MarkResult), (status = 422, body = Problem)))]
async fn mark_read(
    UserToken(user): UserToken,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<MarkRequest>,
) -> ApiResult<Json<MarkResult>> {
    Ok(Json(mark(&state, &user, req, true).await?))
}

/// Marks items unread again: `{"ids": [...]}`.
#[utoipa::path(post, path = "/v1/me/inbox/unread", tag = "inbox", security(("user_token" = [])),
    request_body = MarkRequest, responses((status = 200, body = MarkResult), (status = 422, body = Problem)))]
async fn mark_unread(
    UserToken(user): UserToken,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<MarkRequest>,
) -> ApiResult<Json<MarkResult>> {
    Ok(Json(mark(&state, &user, req, false).await?))
}

fn item_event(item: InboxItem) -> Event {
    let seq = item.seq;
    Event::default()
        .event("notification")
        .id(seq.to_string())
        .json_data(ItemView::from(item))
        .unwrap_or_else(|_| Event::default().comment("unserializable item"))
}

fn unread_event(n: u64) -> Event {
    Event::default().event("unread_count").data(format!("{{\"unread_count\":{n}}}"))
}

/// `?token=&last_event_id=` of the stream (browsers' EventSource cannot set headers).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamParams {
    /// A user token, when no Authorization header can be sent.
    #[allow(dead_code)]
    token: Option<String>,
    /// Resume after this event id (the `Last-Event-ID` header wins).
    last_event_id: Option<i64>,
}

/// Live inbox: `event: notification` (an item, `id` = its stream position) and `event: unread_count`.
/// Resumes after `Last-Event-ID`. An open stream makes the user online.
#[utoipa::path(get, path = "/v1/me/inbox/stream", tag = "inbox", security(("user_token" = [])),
    params(StreamParams, ("Last-Event-ID" = Option<String>, Header)),
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream"), (status = 401, body = Problem)))]
async fn stream(
    UserToken(user): UserToken,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<StreamParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(params.last_event_id);
    // Subscribe before reading the backlog so nothing falls between the two.
    let mut sub = state.runtime.hub().subscribe(user.as_str());
    state.runtime.user_online(&user).await?;
    let mut last = match resume {
        Some(id) => id,
        None => latest_seq(&state, &user).await?,
    };
    let backlog = if resume.is_some() { state.store.inbox_after(&user, last, REPLAY_LIMIT).await? } else { Vec::new() };
    let unread = state.store.unread_count(&user).await?;
    let store = state.store.clone();
    let events = async_stream::stream! {
        for item in backlog {
            last = last.max(item.seq);
            yield Ok(item_event(item));
        }
        yield Ok(unread_event(unread));
        loop {
            match sub.events.recv().await {
                Ok(LiveEvent::Notification(item)) => {
                    if item.seq > last {
                        last = item.seq;
                        yield Ok(item_event(*item));
                    }
                }
                Ok(LiveEvent::UnreadCount(n)) => yield Ok(unread_event(n)),
                Err(RecvError::Lagged(_)) => {
                    // Too slow to keep up: catch up from the store instead of skipping.
                    match store.inbox_after(&user, last, REPLAY_LIMIT).await {
                        Ok(items) => for item in items {
                            last = last.max(item.seq);
                            yield Ok(item_event(item));
                        },
                        Err(e) => tracing::warn!(error = %e, "stream catch-up failed"),
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
    };
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The newest stream position of a user's inbox (0 when empty).
async fn latest_seq(state: &AppState, user: &UserId) -> ApiResult<i64> {
    let newest = state.store.list_inbox(user, InboxQuery { limit: 1, ..InboxQuery::default() }).await?;
    Ok(newest.items.first().map_or(0, |i| i.seq))
}
