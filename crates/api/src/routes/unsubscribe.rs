//! One-click unsubscribe (RFC 8058): the link in every email's `List-Unsubscribe` header. `GET`
//! shows a small page with a button (link scanners fetch links, so a GET changes nothing); `POST`,
//! from that button or from the mail client's one-click, takes the email of that category away
//! at once. The signed token is the only credential.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use herald_channels::unsubscribe::{Claims, TokenError};
use herald_domain::UserId;
use herald_domain::ids::Category;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::extract::Path;
use crate::problem::ApiResult;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, unsubscribe))
}

/// What the link unsubscribes from, in words.
fn scope(claims: &Claims) -> String {
    match &claims.category {
        Some(c) => format!("“{}” emails", html_escape(c)),
        None => "marketing emails".into(),
    }
}

/// The page that says why a link does not work.
fn refused(e: TokenError) -> Response {
    let status = match e {
        TokenError::Invalid => StatusCode::NOT_FOUND,
        TokenError::Expired => StatusCode::GONE,
    };
    page(
        status,
        "Link not valid",
        &format!("{e}. Use the link in a more recent email, or change your preferences in the app."),
    )
}

/// `{token}` of an unsubscribe link.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct TokenPath {
    /// The signed token from the email's List-Unsubscribe link.
    token: String,
}

/// The confirmation page: the change happens only when its button posts back.
#[utoipa::path(get, path = "/v1/unsubscribe/{token}", tag = "users",
    params(TokenPath),
    responses((status = 200, description = "A page with an unsubscribe button", content_type = "text/html"),
        (status = 404, description = "Not a valid link", content_type = "text/html"),
        (status = 410, description = "The link has expired", content_type = "text/html")))]
async fn show(State(state): State<AppState>, Path(TokenPath { token }): Path<TokenPath>) -> Response {
    let claims = match state.unsubscribe.verify(&token, state.clock.now()) {
        Ok(c) => c,
        Err(e) => return refused(e),
    };
    let body = format!(
        "<p>Stop receiving {} from us? Other messages are not affected.</p>\
         <form method=\"post\"><button type=\"submit\" name=\"List-Unsubscribe\" value=\"One-Click\">Unsubscribe</button></form>",
        scope(&claims)
    );
    page(StatusCode::OK, "Unsubscribe", &body)
}

/// Unsubscribes at once: the category's email (or all marketing email) is switched off in the
/// user's preferences; later sends are suppressed with reason `category_opt_out`.
#[utoipa::path(post, path = "/v1/unsubscribe/{token}", tag = "users",
    params(TokenPath),
    responses((status = 200, description = "Unsubscribed", content_type = "text/html"),
        (status = 404, description = "Not a valid link", content_type = "text/html"),
        (status = 410, description = "The link has expired", content_type = "text/html")))]
async fn unsubscribe(State(state): State<AppState>, Path(TokenPath { token }): Path<TokenPath>) -> ApiResult<Response> {
    let claims = match state.unsubscribe.verify(&token, state.clock.now()) {
        Ok(c) => c,
        Err(e) => return Ok(refused(e)),
    };
    let category = match &claims.category {
        Some(c) => Category::parse("category", c).ok(),
        None => Some(Category::marketing().clone()),
    };
    // Tokens are Herald's own, so these parse; an erased user has nothing left to unsubscribe.
    if let (Ok(user), Some(category)) = (UserId::parse("user_id", &claims.user_id), category)
        && state.store.get_user(&user).await?.is_some_and(|u| u.erased_at.is_none())
    {
        let mut prefs = state.store.get_preferences(&user).await?.unwrap_or_default();
        prefs.unsubscribe_email(category.clone());
        state.store.put_preferences(&user, &prefs, state.clock.now()).await?;
        metrics::counter!("herald_unsubscribes_total", "source" => "link").increment(1);
        tracing::info!(user_id = %user, %category, "unsubscribed from email by link");
    }
    Ok(page(StatusCode::OK, "Unsubscribed", &format!("<p>You will no longer receive {}.</p>", scope(&claims))))
}

/// A minimal, self-contained HTML page.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}\
         button{{font-size:1rem;padding:.5rem 1.25rem;cursor:pointer}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>"
    );
    (status, Html(html)).into_response()
}

/// Escapes text for HTML.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
