//! The VAPID public key browsers need to subscribe to Herald's web push.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(vapid_public_key))
}

/// The server's VAPID public key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct VapidPublicKey {
    /// Base64url (no padding) of the uncompressed P-256 point: `applicationServerKey` for
    /// `pushManager.subscribe`.
    public_key: String,
}

/// The key to pass as `applicationServerKey` to the browser's `pushManager.subscribe`; the
/// resulting subscription is registered with `POST /v1/users/{user_id}/devices` (`kind: web_push`).
#[utoipa::path(get, path = "/v1/web-push/vapid-public-key", tag = "users",
    responses((status = 200, body = VapidPublicKey)))]
async fn vapid_public_key(State(state): State<AppState>) -> Json<VapidPublicKey> {
    Json(VapidPublicKey { public_key: state.vapid_public_key.clone() })
}
