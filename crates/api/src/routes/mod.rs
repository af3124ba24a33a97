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

use std::borrow::Cow;

use herald_domain::UserId;
use herald_domain::ids::{TemplateKey, TopicKey};
use herald_store::Cursor;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

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

/// `{user_id}` in a path.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct UserPath {
    /// A user id: 1 to 128 of `A-Z a-z 0-9 . _ : @ -`.
    #[param(value_type = String, pattern = "^[A-Za-z0-9._:@-]{1,128}$", min_length = 1, max_length = 128)]
    pub user_id: UserId,
}

/// `{id}` in a path: an id Herald issued. Anything else is no such thing (404), whatever its shape.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct IdPath {
    /// The id, as Herald gave it.
    #[param(value_type = uuid::Uuid)]
    pub id: String,
}

/// `{key}` of a template in a path.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TemplatePath {
    /// A template key: 1 to 128 of `A-Z a-z 0-9 . _ : @ -`.
    #[param(value_type = String, pattern = "^[A-Za-z0-9._:@-]{1,128}$", min_length = 1, max_length = 128)]
    pub key: TemplateKey,
}

/// `{key}` of a topic in a path.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TopicPath {
    /// A topic key: 1 to 128 of `A-Z a-z 0-9 . _ : @ -`.
    #[param(value_type = String, pattern = "^[A-Za-z0-9._:@-]{1,128}$", min_length = 1, max_length = 128)]
    pub key: TopicKey,
}

/// Most items one page holds.
const MAX_LIMIT: u32 = 100;

/// `?limit=`: a page size, a whole number from 1 to [`MAX_LIMIT`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit(u32);

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Query strings are text; out of range reads the same as not a number.
        let text = Cow::<str>::deserialize(d)?;
        text.parse()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .map(Limit)
            .ok_or_else(|| D::Error::custom(format!("must be a whole number from 1 to {MAX_LIMIT}")))
    }
}

impl utoipa::PartialSchema for Limit {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(1))
            .maximum(Some(MAX_LIMIT))
            .into()
    }
}

impl utoipa::ToSchema for Limit {}

/// The schema of a closed set shown as its codes: a string that is one of `codes`, described
/// here because an inlined field's own doc comment would not merge into it.
pub(crate) fn code_schema(description: &str, codes: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).description(Some(description)).enum_values(Some(codes)).into()
}

/// `?limit=&cursor=` of list endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Page {
    /// Page size, 1 to 100.
    #[param(inline)]
    pub limit: Option<Limit>,
    /// Opaque cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl Page {
    /// The limit, or `default` when none was given.
    pub(crate) fn limit(&self, default: u32) -> u32 {
        self.limit.map_or(default, |Limit(n)| n)
    }

    /// The cursor the client sent back, if any (empty is none: the first page); the store says
    /// whether it is one of its own.
    pub(crate) fn cursor(&self) -> Option<Cursor> {
        self.cursor.as_deref().filter(|c| !c.is_empty()).map(|c| Cursor::from_token(c.to_owned()))
    }
}

/// A page of the store as a page of the API: its rows shown by `view`, and its next cursor.
pub(crate) fn list<T, V>(page: herald_store::Page<T>, view: impl FnMut(T) -> V) -> List<V> {
    List { items: page.items.into_iter().map(view).collect(), next_cursor: next_cursor(page.next) }
}

/// The token of the store's next cursor, for `next_cursor`.
pub(crate) fn next_cursor(next: Option<Cursor>) -> Option<String> {
    next.map(|c| c.as_str().to_owned())
}

/// The shared list shape.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct List<T> {
    /// The page.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}
