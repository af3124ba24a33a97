//! `GET /v1/stats`: what Herald accepted, delivered and held back, counted from the store.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use herald_domain::Class;
use herald_domain::reason::Reason;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::extract::{ApiKey, Query};
use crate::problem::{ApiError, ApiResult, Problem};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stats))
}

/// `?since=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct StatsQuery {
    /// Count only what was created at or after this time (RFC 3339); default: everything.
    since: Option<String>,
}

/// Counts by class, channel, status and suppression reason.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Stats {
    /// The start of the counted period, if one was asked for.
    #[schema(value_type = Option<String>, format = DateTime)]
    since: Option<jiff::Timestamp>,
    notifications: NotificationCounts,
    deliveries: DeliveryCounts,
    suppressed: SuppressedCounts,
    /// Deliveries in the dead-letter list.
    dead_letters: u64,
}

/// Notifications accepted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct NotificationCounts {
    total: u64,
    /// By class.
    by_class: BTreeMap<String, u64>,
}

/// Deliveries (one per notification, user and channel; the inbox included as `in_app`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct DeliveryCounts {
    total: u64,
    /// By status.
    by_status: BTreeMap<String, u64>,
    /// By channel, then status.
    by_channel: BTreeMap<String, BTreeMap<String, u64>>,
    /// By the notification's class, then status.
    by_class: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Suppression decisions in the audit trail.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct SuppressedCounts {
    total: u64,
    /// By reason code.
    by_reason: BTreeMap<String, u64>,
}

/// Counts of notifications by class, deliveries by channel, class and status, suppressions by
/// reason, and dead letters.
#[utoipa::path(get, path = "/v1/stats", tag = "operations", security(("api_key" = [])),
    params(StatsQuery), responses((status = 200, body = Stats), (status = 422, body = Problem)))]
async fn stats(_: ApiKey, State(state): State<AppState>, Query(q): Query<StatsQuery>) -> ApiResult<Json<Stats>> {
    let since = q
        .since
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<jiff::Timestamp>().map_err(|e| ApiError::field("since", format!("not an RFC 3339 time: {e}")))
        })
        .transpose()?;
    let s = state.store.stats(since).await?;
    let mut deliveries =
        DeliveryCounts { total: 0, by_status: BTreeMap::new(), by_channel: BTreeMap::new(), by_class: BTreeMap::new() };
    for d in s.deliveries {
        deliveries.total += d.count;
        let status = d.status.as_str().to_owned();
        // Rows from before classes were recorded count under `unknown`.
        let class = d.class.map_or("unknown", Class::as_str).to_owned();
        *deliveries.by_status.entry(status.clone()).or_default() += d.count;
        *deliveries.by_channel.entry(d.channel.as_str().to_owned()).or_default().entry(status.clone()).or_default() +=
            d.count;
        *deliveries.by_class.entry(class).or_default().entry(status).or_default() += d.count;
    }
    Ok(Json(Stats {
        since,
        notifications: NotificationCounts {
            total: s.notifications_by_class.iter().map(|(_, n)| n).sum(),
            by_class: s.notifications_by_class.into_iter().map(|(c, n)| (c.as_str().to_owned(), n)).collect(),
        },
        deliveries,
        suppressed: SuppressedCounts {
            total: s.suppressed_by_reason.iter().map(|(_, n)| n).sum(),
            // Lines without a reason count under `unknown`.
            by_reason: s
                .suppressed_by_reason
                .into_iter()
                .map(|(r, n)| (r.map_or("unknown", Reason::as_str).to_owned(), n))
                .collect(),
        },
        dead_letters: s.dead_letters,
    }))
}
