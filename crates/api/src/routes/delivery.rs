//! Delivery operations: the dead-letter list and its replay, provider feedback
//! (`POST /v1/feedback`) that blocks addresses, switches channels off and removes dead devices,
//! and the list of blocked addresses with a way to lift a block.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_domain::Channel;
use herald_domain::contact::{Email, Phone};
use herald_store::{BlockKind, Cursor, Feedback, FeedbackKind, FeedbackOutcome};
use serde::{Deserialize, Serialize, Serializer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{IdPath, Limit, List, Page, list};
use crate::AppState;
use crate::extract::{ApiKey, JsonBody, Path, Query};
use crate::problem::{ApiError, ApiResult, Problem};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(dead_letters))
        .routes(routes!(replay))
        .routes(routes!(feedback))
        .routes(routes!(address_blocks))
        .routes(routes!(lift_block))
}

/// `?channel=&limit=&cursor=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ChannelPage {
    /// Only this channel.
    channel: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(inline)]
    limit: Option<Limit>,
    /// Cursor from the previous page.
    cursor: Option<String>,
}

impl ChannelPage {
    /// The channel asked for, the page size and the cursor.
    fn parse(self) -> ApiResult<(Option<Channel>, u32, Option<Cursor>)> {
        let channel = self
            .channel
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| c.parse::<Channel>().map_err(|e| ApiError::field("channel", e)))
            .transpose()?;
        let page = Page { limit: self.limit, cursor: self.cursor };
        Ok((channel, page.limit(50), page.cursor()))
    }
}

/// A delivery that failed for good.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct DeadLetter {
    /// The delivery id (the provider's idempotency key; replay keeps it).
    id: Uuid,
    notification_id: Uuid,
    user_id: String,
    channel: Channel,
    /// The last error.
    error: Option<String>,
    attempts: u32,
    /// The last provider tried.
    provider: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: jiff::Timestamp,
    /// When it failed for good.
    #[schema(value_type = String, format = DateTime)]
    dead_lettered_at: jiff::Timestamp,
}

/// Deliveries that failed for good (a permanent refusal, or retries exhausted), newest first.
#[utoipa::path(get, path = "/v1/dead-letters", tag = "deliveries", security(("api_key" = [])),
    params(ChannelPage), responses((status = 200, body = List<DeadLetter>), (status = 422, body = Problem)))]
async fn dead_letters(
    _: ApiKey,
    State(state): State<AppState>,
    Query(q): Query<ChannelPage>,
) -> ApiResult<Json<List<DeadLetter>>> {
    let (channel, limit, cursor) = q.parse()?;
    let rows = state.store.dead_letters(channel, cursor.as_ref(), limit).await?;
    Ok(Json(list(rows, |d| DeadLetter {
        id: d.id,
        notification_id: d.notification_id,
        user_id: d.user_id,
        channel: d.channel,
        error: d.error,
        attempts: d.attempts,
        provider: d.provider,
        created_at: d.created_at,
        dead_lettered_at: d.dead_at.unwrap_or(d.updated_at),
    })))
}

/// Accepted for another try.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Replayed {
    id: Uuid,
    status: &'static str,
}

/// Queues a dead letter again, attempts reset, same delivery id; consent is checked again before the send.
#[utoipa::path(post, path = "/v1/dead-letters/{id}/replay", tag = "deliveries", security(("api_key" = [])),
    params(IdPath), responses((status = 202, body = Replayed), (status = 404, body = Problem)))]
async fn replay(
    _: ApiKey,
    State(state): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
) -> ApiResult<(StatusCode, Json<Replayed>)> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("no such dead letter".into()))?;
    if !state.runtime.replay(id).await? {
        return Err(ApiError::NotFound("no such dead letter".into()));
    }
    Ok((StatusCode::ACCEPTED, Json(Replayed { id, status: "queued" })))
}

/// What a provider reported.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum Kind {
    /// The address does not exist (email, SMS): it is blocked for good.
    HardBounce,
    /// Marked as spam (email, SMS): the channel goes off for the users with that address.
    Complaint,
    /// The device token or push subscription is dead (push, web push, webhook): the device is removed.
    InvalidToken,
    /// Unsubscribed at the provider (email, SMS): the channel goes off for those users.
    Unsubscribe,
}

/// A provider report.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    channel: Channel,
    /// The email address, E.164 phone, device token, push endpoint or webhook URL.
    address: String,
    kind: Kind,
    /// The delivery the report is about, when known: its status becomes `bounced` (or stays delivered).
    delivery_id: Option<Uuid>,
}

/// What the report changed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct FeedbackResult {
    users_affected: u64,
    devices_removed: u64,
    address_blocked: bool,
    delivery_updated: bool,
}

/// Applies provider feedback: hard bounces block the address, complaints and unsubscribes switch
/// the channel off for its users, invalid tokens remove the device.
#[utoipa::path(post, path = "/v1/feedback", tag = "deliveries", security(("api_key" = [])),
    request_body = FeedbackBody, responses((status = 200, body = FeedbackResult), (status = 422, body = Problem)))]
async fn feedback(
    _: ApiKey,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<FeedbackBody>,
) -> ApiResult<Json<FeedbackResult>> {
    let contact = matches!(body.channel, Channel::Email | Channel::Sms);
    let token = matches!(body.channel, Channel::Push | Channel::WebPush | Channel::Webhook);
    let (kind, fits) = match body.kind {
        Kind::HardBounce => (FeedbackKind::HardBounce, contact),
        Kind::Complaint => (FeedbackKind::Complaint, contact),
        Kind::Unsubscribe => (FeedbackKind::Unsubscribe, contact),
        Kind::InvalidToken => (FeedbackKind::InvalidToken, token),
    };
    if !fits {
        return Err(ApiError::field(
            "kind",
            format!(
                "does not apply to {}: hard_bounce, complaint and unsubscribe are for email and sms, invalid_token for push, web_push and webhook",
                body.channel
            ),
        ));
    }
    // Addresses are compared in the form Herald stores them.
    let address = match body.channel {
        Channel::Email => Email::parse("address", &body.address)?.as_str().to_owned(),
        Channel::Sms => Phone::parse("address", &body.address)?.as_str().to_owned(),
        _ if body.address.trim().is_empty() || body.address.len() > 4096 => {
            return Err(ApiError::field("address", "must be 1 to 4096 characters"));
        }
        _ => body.address.clone(),
    };
    let FeedbackOutcome { users_affected, devices_removed, address_blocked, delivery_updated, .. } = state
        .store
        .apply_feedback(Feedback {
            channel: body.channel,
            address,
            kind,
            delivery_id: body.delivery_id,
            now: state.clock.now(),
        })
        .await?;
    let kind = match body.kind {
        Kind::HardBounce => "hard_bounce",
        Kind::Complaint => "complaint",
        Kind::InvalidToken => "invalid_token",
        Kind::Unsubscribe => "unsubscribe",
    };
    metrics::counter!("herald_feedback_total", "channel" => body.channel.as_str(), "kind" => kind).increment(1);
    Ok(Json(FeedbackResult { users_affected, devices_removed, address_blocked, delivery_updated }))
}

/// Why an address is blocked, shown as the store's code for it.
#[derive(Debug)]
struct BlockKindView(BlockKind);

impl Serialize for BlockKindView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl utoipa::PartialSchema for BlockKindView {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        let description =
            "`hard_bounce` (the address does not exist) or `stop` (the number replied STOP; START lifts it).";
        super::code_schema(description, BlockKind::ALL.map(BlockKind::as_str))
    }
}

impl utoipa::ToSchema for BlockKindView {}

/// An address Herald sends nothing to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct AddressBlock {
    channel: Channel,
    address: String,
    #[schema(inline)]
    kind: BlockKindView,
    #[schema(value_type = String, format = DateTime)]
    created_at: jiff::Timestamp,
}

/// Blocked addresses, oldest first: hard bounces and SMS STOPs.
#[utoipa::path(get, path = "/v1/address-blocks", tag = "deliveries", security(("api_key" = [])),
    params(ChannelPage), responses((status = 200, body = List<AddressBlock>), (status = 422, body = Problem)))]
async fn address_blocks(
    _: ApiKey,
    State(state): State<AppState>,
    Query(q): Query<ChannelPage>,
) -> ApiResult<Json<List<AddressBlock>>> {
    let (channel, limit, cursor) = q.parse()?;
    let rows = state.store.address_blocks(channel, cursor.as_ref(), limit).await?;
    Ok(Json(list(rows, |b| AddressBlock {
        channel: b.channel,
        address: b.address,
        kind: BlockKindView(b.kind),
        created_at: b.created_at,
    })))
}

/// `{channel}/{address}` of a block.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct BlockPath {
    /// `email` or `sms`.
    channel: String,
    /// The address, URL-encoded.
    address: String,
}

/// Lifts a block that was a mistake (a relay that bounced a good address, say): sends to the
/// address resume. A STOP is better lifted by the person texting START.
#[utoipa::path(delete, path = "/v1/address-blocks/{channel}/{address}", tag = "deliveries", security(("api_key" = [])),
    params(BlockPath),
    responses((status = 204, description = "Lifted"), (status = 404, body = Problem)))]
async fn lift_block(
    _: ApiKey,
    State(state): State<AppState>,
    Path(BlockPath { channel, address }): Path<BlockPath>,
) -> ApiResult<StatusCode> {
    let channel = channel.parse::<Channel>().map_err(|_| ApiError::NotFound("no such block".into()))?;
    let address = match channel {
        Channel::Email => Email::parse("address", &address).map(|e| e.as_str().to_owned()),
        Channel::Sms => Phone::parse("address", &address).map(|p| p.as_str().to_owned()),
        _ => return Err(ApiError::NotFound("no such block".into())),
    }
    .map_err(|_| ApiError::NotFound("no such block".into()))?;
    if state.store.remove_address_block(channel, &address).await? {
        tracing::info!(%channel, "an operator lifted an address block");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("no such block".into()))
    }
}
