//! The v1 routes, one module per resource.

mod delivery;
mod inbox;
mod notifications;
pub(crate) mod ops;
mod stats;
mod templates;
mod topics;
mod twilio;
mod unsubscribe;
mod users;
mod web_push;

use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;
use crate::problem::ApiError;

/// Every route with its OpenAPI description.
pub(crate) fn all() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(users::routes())
        .merge(templates::routes())
        .merge(notifications::routes())
        .merge(inbox::routes())
        .merge(topics::routes())
        .merge(delivery::routes())
        .merge(ops::routes())
        .merge(stats::routes())
        .merge(twilio::routes())
        .merge(unsubscribe::routes())
        .merge(web_push::routes())
}

/// `?limit=&cursor=` of list endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct Page {
    /// Page size, 1 to 100.
    pub limit: Option<u32>,
    /// Opaque cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl Page {
    /// The limit, defaulted and bounded.
    pub(crate) fn limit(&self, default: u32) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(default),
            Some(n @ 1..=100) => Ok(n),
            Some(_) => Err(ApiError::field("limit", "must be between 1 and 100")),
        }
    }

    /// The cursor as a sequence number.
    pub(crate) fn seq(&self) -> Result<Option<i64>, ApiError> {
        self.cursor
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| c.parse::<i64>().map_err(|_| ApiError::field("cursor", "is not a cursor this API returned")))
            .transpose()
    }
}

/// The cursor of the page after `rows`: the last row's key when the page was full, else none.
pub(crate) fn next_cursor<T>(rows: &[T], limit: u32, key: impl Fn(&T) -> String) -> Option<String> {
    if rows.len() == limit as usize { rows.last().map(key) } else { None }
}

/// The shared list shape.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct List<T> {
    /// The page.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}
