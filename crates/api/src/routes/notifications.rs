//! Notifications: accept (single and batch) with idempotency, status, cancellation.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use herald_domain::notification::{NotificationRequest, Recipients};
use herald_domain::reason::{Decision, Reason};
use herald_domain::{Channel, DeliveryStatus, UserId};
use herald_store::{AcceptOutcome, NewNotification, RecipientCounts, WorkItem};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::templates::render_problem;
use super::{IdPath, Page, code_schema, next_cursor};
use crate::AppState;
use crate::extract::{ApiKey, JsonBody, Path, Query, parse_item};
use crate::problem::{ApiError, ApiResult, Problem};

/// Most notifications in one batch call.
const MAX_BATCH: usize = 1000;
/// Subscribers read per page while expanding a topic.
const TOPIC_PAGE: u32 = 1000;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send))
        .routes(routes!(send_batch))
        .routes(routes!(get_notification, cancel_notification))
}

/// The answer to an accepted notification.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Accepted {
    id: Uuid,
    /// Always `accepted` in this answer.
    status: NotificationStatus,
    recipients: u64,
}

/// Validates one request and resolves everything the store needs to commit it.
async fn prepare(state: &AppState, req: NotificationRequest, header_key: Option<String>) -> ApiResult<NewNotification> {
    let now = state.clock.now();
    let (spec, recipients, body_key) = req.validate(now)?;
    let idempotency_key = match (header_key, body_key) {
        (Some(h), Some(b)) if h != b => {
            return Err(ApiError::field("idempotency_key", "differs from the Idempotency-Key header"));
        }
        (h, b) => h.or(b),
    };
    let compiled = state
        .runtime
        .templates()
        .get(&spec.template)
        .await?
        .ok_or_else(|| ApiError::field("template", format!("unknown template `{}`", spec.template)))?;
    let template = compiled.spec();
    if let Some(channels) = &spec.channels {
        let available = template.channels();
        if !channels.iter().any(|c| available.contains(c)) {
            let names: Vec<&str> = available.iter().map(|c: &Channel| c.as_str()).collect();
            return Err(ApiError::field(
                "channels",
                format!("template `{}` has none of these channels; it has {}", spec.template, names.join(", ")),
            ));
        }
    }
    compiled.check_renders(&spec.data).map_err(|e| match e {
        herald_domain::template::RenderError::MissingVariable { variable, field } => {
            ApiError::field("data", format!("missing template variable `{variable}` (used in {field})"))
        }
        other => render_problem(other),
    })?;
    let class = spec.class.unwrap_or(template.class);
    let recipients = match recipients {
        Recipients::Users(users) => users,
        Recipients::Topic(topic) => {
            let mut all: Vec<UserId> = Vec::new();
            let mut cursor = None;
            loop {
                let page = state.store.subscribers(&topic, cursor.as_ref(), TOPIC_PAGE).await?;
                all.extend(page.items);
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break all,
                }
            }
        }
    };
    let idempotency = idempotency_key.map(|k| {
        let mut canonical = req_fingerprint(&spec, &recipients);
        canonical.push_str(&k);
        (k, format!("{:x}", Sha256::digest(canonical.as_bytes())))
    });
    let due_at = spec.send_at.filter(|t| *t > now).unwrap_or(now);
    let content = serde_json::to_string(&(&spec.template, class, &spec.category, &spec.group_key, &spec.data))
        .unwrap_or_default();
    let fingerprint = Some(format!("{:x}", Sha256::digest(content.as_bytes())));
    // Recipients due at once are claimed by this node with the accept and decided here.
    let claim = Some(state.runtime.lease());
    Ok(NewNotification { id: Uuid::now_v7(), spec, class, recipients, idempotency, fingerprint, now, due_at, claim })
}

/// What makes two requests "the same" for idempotency: content and recipients.
fn req_fingerprint(spec: &herald_domain::notification::NotificationSpec, recipients: &[UserId]) -> String {
    serde_json::to_string(&(spec, recipients)).unwrap_or_default()
}

fn header_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|s| !s.is_empty() && s.len() <= 255)
                .map(str::to_owned)
                .ok_or_else(|| ApiError::field("Idempotency-Key", "must be 1 to 255 visible ASCII characters"))
        })
        .transpose()
}

/// The answer to an accept, with the recipients it claimed when it created the notification.
fn accepted(outcome: AcceptOutcome) -> ApiResult<(Option<Vec<WorkItem>>, Accepted)> {
    match outcome {
        AcceptOutcome::Created { id, recipients, claimed } => {
            Ok((Some(claimed), Accepted { id, status: NotificationStatus::Accepted, recipients }))
        }
        AcceptOutcome::Existing { id, recipients } => {
            Ok((None, Accepted { id, status: NotificationStatus::Accepted, recipients }))
        }
        AcceptOutcome::KeyConflict { id } => Err(ApiError::Conflict(format!(
            "this Idempotency-Key was used within 24 h for a different request (notification {id})"
        ))),
    }
}

/// Accepts a notification. 202 means it is committed: it will be delivered, suppressed with a reason, or dead-lettered.
#[utoipa::path(post, path = "/v1/notifications", tag = "notifications", security(("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key within 24 h gives the same notification")),
    request_body = NotificationRequest,
    responses((status = 202, body = Accepted), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn send(
    _: ApiKey,
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<NotificationRequest>,
) -> ApiResult<(StatusCode, HeaderMap, Json<Accepted>)> {
    let key = header_key(&headers)?;
    let new = prepare(&state, req, key).await?;
    let (created, body) = accepted(state.store.accept(new).await?)?;
    let mut out = HeaderMap::new();
    if let Some(claimed) = created {
        metrics::counter!("herald_notifications_accepted_total").increment(1);
        start(&state, claimed);
    } else {
        out.insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
    }
    Ok((StatusCode::ACCEPTED, out, Json(body)))
}

/// Sets a created notification going: its claimed recipients are decided at once; one due later
/// (nothing claimed) makes the feeder look again at when to wake.
fn start(state: &AppState, claimed: Vec<WorkItem>) {
    if claimed.is_empty() {
        state.runtime.wake();
    } else {
        state.runtime.decide(claimed);
    }
}

/// A batch of notifications.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    /// Up to 1000 notifications, each as for `POST /v1/notifications`.
    notifications: Vec<serde_json::Value>,
}

/// One result of a batch, in request order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
enum BatchResult {
    Ok(Accepted),
    Err { error: Problem },
}

/// The batch's results.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct BatchResponse {
    results: Vec<BatchResult>,
}

/// Accepts up to 1000 notifications in one call and one transaction; each is validated on its own.
#[utoipa::path(post, path = "/v1/notifications/batch", tag = "notifications", security(("api_key" = [])),
    request_body = BatchRequest, responses((status = 202, body = BatchResponse), (status = 422, body = Problem)))]
async fn send_batch(
    _: ApiKey,
    State(state): State<AppState>,
    JsonBody(batch): JsonBody<BatchRequest>,
) -> ApiResult<(StatusCode, Json<BatchResponse>)> {
    if batch.notifications.is_empty() || batch.notifications.len() > MAX_BATCH {
        return Err(ApiError::field("notifications", format!("must hold 1 to {MAX_BATCH} notifications")));
    }
    let mut results: Vec<Option<BatchResult>> = Vec::with_capacity(batch.notifications.len());
    let mut valid = Vec::new();
    let mut slots = Vec::new();
    for (i, raw) in batch.notifications.into_iter().enumerate() {
        let root = format!("notifications[{i}]");
        let prepared = match parse_item::<NotificationRequest>(raw, &root) {
            Ok(req) => prepare(&state, req, None).await.map_err(|e| within(&root, e)),
            Err(e) => Err(e),
        };
        match prepared {
            Ok(n) => {
                valid.push(n);
                slots.push(i);
                results.push(None);
            }
            Err(e) => results.push(Some(BatchResult::Err { error: e.problem() })),
        }
    }
    if !valid.is_empty() {
        let outcomes = state.store.accept_many(valid).await?;
        let mut claimed = Vec::new();
        let mut scheduled = false;
        for (slot, outcome) in slots.into_iter().zip(outcomes) {
            results[slot] = Some(match accepted(outcome) {
                Ok((created, a)) => {
                    if let Some(mine) = created {
                        scheduled |= mine.is_empty();
                        claimed.extend(mine);
                    }
                    BatchResult::Ok(a)
                }
                Err(e) => BatchResult::Err { error: e.problem() },
            });
        }
        if scheduled {
            state.runtime.wake();
        }
        state.runtime.decide(claimed);
    }
    let results = results.into_iter().map(|r| r.expect("every slot is filled")).collect();
    Ok((StatusCode::ACCEPTED, Json(BatchResponse { results })))
}

/// A batch item's error with its fields named from the batch body (`notifications[2].to[1]`).
fn within(root: &str, e: ApiError) -> ApiError {
    match e {
        ApiError::Validation(mut errors) => {
            for error in &mut errors.0 {
                error.field = format!("{root}.{}", error.field);
            }
            ApiError::Validation(errors)
        }
        other => other,
    }
}

/// One delivery of one recipient.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct DeliveryView {
    /// The deterministic delivery id (the `webhook-id`, the dead letter's id).
    id: Uuid,
    channel: Channel,
    status: DeliveryStatus,
    attempts: u32,
    provider: Option<String>,
    error: Option<String>,
    /// When it was decided.
    #[schema(value_type = String, format = DateTime)]
    created_at: jiff::Timestamp,
    /// When it first went to a provider.
    #[schema(value_type = Option<String>, format = DateTime)]
    dispatched_at: Option<jiff::Timestamp>,
    /// When the next attempt is due, while retrying.
    #[schema(value_type = Option<String>, format = DateTime)]
    next_attempt_at: Option<jiff::Timestamp>,
    /// Whether it is in the dead-letter list (`GET /v1/dead-letters`).
    dead_letter: bool,
    #[schema(value_type = String, format = DateTime)]
    updated_at: jiff::Timestamp,
}

/// A recipient's decision as shown: pending until the store records one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecipientDecision {
    /// Not decided yet.
    Pending,
    /// Decided.
    Decided(Decision),
}

impl RecipientDecision {
    /// The code shown for it: a decision's own, or `pending`.
    fn as_str(self) -> &'static str {
        match self {
            RecipientDecision::Pending => "pending",
            RecipientDecision::Decided(d) => d.as_str(),
        }
    }
}

impl From<Option<Decision>> for RecipientDecision {
    fn from(d: Option<Decision>) -> Self {
        d.map_or(RecipientDecision::Pending, RecipientDecision::Decided)
    }
}

impl Serialize for RecipientDecision {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl utoipa::PartialSchema for RecipientDecision {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        let decided = Decision::ALL.map(|d| RecipientDecision::Decided(d).as_str());
        let description = "`pending` until decided, then the decision.";
        code_schema(description, std::iter::once(RecipientDecision::Pending.as_str()).chain(decided))
    }
}

impl utoipa::ToSchema for RecipientDecision {}

/// One recipient's decision.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct RecipientView {
    user_id: String,
    #[schema(inline)]
    decision: RecipientDecision,
    reason: Option<Reason>,
    deliveries: Vec<DeliveryView>,
}

/// A notification's status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct NotificationView {
    id: Uuid,
    template: String,
    class: herald_domain::Class,
    /// Where the notification stands; `completed` only once every delivery is final.
    status: NotificationStatus,
    #[schema(value_type = String, format = DateTime)]
    created_at: jiff::Timestamp,
    recipients: Vec<RecipientView>,
    next_cursor: Option<String>,
    recipients_total: u64,
    recipients_processed: u64,
    #[schema(value_type = Object)]
    counts: std::collections::BTreeMap<String, u64>,
}

/// Where a notification stands, from its recipients' decisions and its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum NotificationStatus {
    /// Accepted; no recipient decided yet.
    Accepted,
    /// Some recipients decided, others not yet.
    Processing,
    /// Everyone decided; some wait for the end of quiet hours, a digest or a shed period.
    Waiting,
    /// Everyone decided; some deliveries are still queued, sending, retrying or on standby.
    Delivering,
    /// Every delivery is final: delivered, sent, failed, bounced or suppressed.
    Completed,
    /// Cancelled before everything was sent.
    Cancelled,
}

impl NotificationStatus {
    fn of(cancelled: bool, counts: &RecipientCounts) -> Self {
        if cancelled {
            Self::Cancelled
        } else if counts.pending > 0 {
            if counts.processed == 0 { Self::Accepted } else { Self::Processing }
        } else if counts.waiting > 0 {
            Self::Waiting
        } else if counts.open_deliveries > 0 {
            Self::Delivering
        } else {
            Self::Completed
        }
    }
}

fn notification_id(s: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| ApiError::NotFound(format!("no notification {s}")))
}

/// A notification with its recipients' decisions and deliveries (paged by `cursor`).
#[utoipa::path(get, path = "/v1/notifications/{id}", tag = "notifications", security(("api_key" = [])),
    params(IdPath, Page), responses((status = 200, body = NotificationView), (status = 404, body = Problem)))]
async fn get_notification(
    _: ApiKey,
    State(state): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    Query(page): Query<Page>,
) -> ApiResult<Json<NotificationView>> {
    let id = notification_id(&id)?;
    let n =
        state.store.get_notification(id).await?.ok_or_else(|| ApiError::NotFound(format!("no notification {id}")))?;
    let limit = page.limit(100);
    // Counts first: if they say everyone is decided, the rows read after them are decided too.
    let counts = state.store.recipient_counts(id).await?;
    let rows = state.store.list_recipients(id, page.cursor().as_ref(), limit).await?;
    let recipients = rows
        .items
        .into_iter()
        .map(|r| RecipientView {
            user_id: r.user_id,
            decision: r.decision.into(),
            reason: r.reason,
            deliveries: r
                .deliveries
                .into_iter()
                .map(|d| DeliveryView {
                    id: d.id,
                    channel: d.channel,
                    status: d.status,
                    attempts: d.attempts,
                    provider: d.provider,
                    error: d.error,
                    created_at: d.created_at,
                    dispatched_at: d.dispatched_at,
                    next_attempt_at: d.next_attempt_at,
                    dead_letter: d.dead_at.is_some(),
                    updated_at: d.updated_at,
                })
                .collect(),
        })
        .collect();
    Ok(Json(NotificationView {
        id,
        template: n.template,
        class: n.class,
        status: NotificationStatus::of(n.cancelled_at.is_some(), &counts),
        created_at: n.created_at,
        recipients,
        next_cursor: next_cursor(rows.next),
        recipients_total: n.recipients_total,
        recipients_processed: counts.processed,
        counts: counts.by_decision.into_iter().map(|(d, n)| (d.as_str().to_owned(), n)).collect(),
    }))
}

/// The result of a cancellation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Cancelled {
    id: Uuid,
    /// Recipients whose notification had not been processed and now never will be.
    cancelled: u64,
}

/// Cancels what has not been sent yet.
#[utoipa::path(delete, path = "/v1/notifications/{id}", tag = "notifications", security(("api_key" = [])),
    params(IdPath), responses((status = 200, body = Cancelled), (status = 404, body = Problem)))]
async fn cancel_notification(
    _: ApiKey,
    State(state): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
) -> ApiResult<Json<Cancelled>> {
    let id = notification_id(&id)?;
    state.store.get_notification(id).await?.ok_or_else(|| ApiError::NotFound(format!("no notification {id}")))?;
    let cancelled = state.store.cancel_notification(id, state.clock.now()).await?;
    Ok(Json(Cancelled { id, cancelled }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pending: u64, processed: u64, waiting: u64, open_deliveries: u64) -> RecipientCounts {
        RecipientCounts { pending, processed, waiting, open_deliveries, ..RecipientCounts::default() }
    }

    #[test]
    fn completed_only_when_every_delivery_is_final() {
        use NotificationStatus::*;
        assert_eq!(NotificationStatus::of(false, &counts(2, 0, 0, 0)), Accepted);
        assert_eq!(NotificationStatus::of(false, &counts(1, 1, 0, 1)), Processing);
        assert_eq!(NotificationStatus::of(false, &counts(0, 2, 1, 1)), Waiting);
        assert_eq!(NotificationStatus::of(false, &counts(0, 2, 0, 1)), Delivering);
        assert_eq!(NotificationStatus::of(false, &counts(0, 2, 0, 0)), Completed);
        assert_eq!(NotificationStatus::of(true, &counts(0, 2, 0, 1)), Cancelled);
    }
}
