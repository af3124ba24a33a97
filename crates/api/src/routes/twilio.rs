//! Twilio's callbacks: delivery statuses of sent SMS, and inbound messages with the STOP / START
//! / HELP keywords. Both verify `X-Twilio-Signature` against the account's auth token and the
//! URL Twilio called (Herald's `public_url` + the request's path and query); a forged or altered
//! request is refused with 403 and changes nothing.

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_channels::AddressBlock;
use herald_channels::twilio::{Status, status, verify_signature};
use herald_domain::Channel;
use herald_domain::contact::Phone;
use herald_domain::reason::Reason;
use herald_domain::sms::{Keyword, keyword};
use herald_store::{Feedback, FeedbackKind, FeedbackOutcome, FinalStatus, ProviderStatus};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::problem::{ApiError, ApiResult};
use crate::{AppState, TwilioHooks};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status_callback)).routes(routes!(inbound))
}

/// A callback whose signature checked out: its form parameters.
struct Signed(Vec<(String, String)>);

impl Signed {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Verifies the request came from Twilio, for this account.
fn verify<'a>(
    state: &'a AppState,
    uri: &OriginalUri,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<(&'a TwilioHooks, Signed)> {
    let hooks = state.twilio.as_ref().ok_or_else(|| ApiError::NotFound("Twilio is not configured".into()))?;
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let given = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let path = uri.0.path_and_query().map_or("", |p| p.as_str());
    let url = format!("{}{path}", hooks.public_url);
    if given.is_empty() || !verify_signature(&hooks.auth_token, &url, &params, given) {
        metrics::counter!("herald_twilio_callbacks_total", "kind" => "forged").increment(1);
        tracing::warn!(%url, "refused a Twilio callback with a missing or wrong signature");
        return Err(ApiError::Forbidden("the X-Twilio-Signature does not match this request".into()));
    }
    let signed = Signed(params);
    if signed.get("AccountSid") != Some(hooks.account_sid.as_str()) {
        return Err(ApiError::Forbidden("the callback is about another Twilio account".into()));
    }
    Ok((hooks, signed))
}

/// Applies an address block or lift for the phone number.
async fn feedback(state: &AppState, phone: &str, kind: FeedbackKind) -> ApiResult<FeedbackOutcome> {
    let phone = Phone::parse("From", phone)?;
    let report = Feedback {
        channel: Channel::Sms,
        address: phone.as_str().to_owned(),
        kind,
        delivery_id: None,
        now: state.clock.now(),
    };
    Ok(state.store.apply_feedback(report).await?)
}

/// Twilio's delivery status for one SMS (the `StatusCallback` Herald set, which names the
/// delivery): `delivered` and final failures update the delivery; an unknown number or a STOP
/// reported by the carrier also blocks the number.
#[utoipa::path(post, path = "/v1/providers/twilio/status", tag = "deliveries",
    params(("delivery_id" = Uuid, Query, description = "The delivery the callback is about (set by Herald)")),
    request_body(content = std::collections::HashMap<String, String>, content_type = "application/x-www-form-urlencoded", description = "Twilio's status callback parameters"),
    responses((status = 204, description = "Recorded"), (status = 403, body = crate::problem::Problem),
        (status = 404, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
async fn status_callback(
    State(state): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let (_, signed) = verify(&state, &uri, &headers, &body)?;
    let query = |name: &str| {
        uri.0.query().and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name)).map(|(_, v)| v)
    };
    let delivery_id = query("delivery_id")
        .and_then(|v| Uuid::parse_str(&v).ok())
        .ok_or_else(|| ApiError::field("delivery_id", "the callback URL must name the delivery"))?;
    let about = Callback { delivery_id, attempt: query("attempt").and_then(|v| v.parse().ok()) };
    let reported = signed.get("MessageStatus").or(signed.get("SmsStatus")).unwrap_or_default();
    let code = signed.get("ErrorCode").filter(|c| !c.is_empty());
    let label = match status(reported, code) {
        None => return Err(ApiError::field("MessageStatus", format!("`{reported}` is not a Twilio message status"))),
        Some(Status::Pending | Status::Sent) => "progress",
        Some(Status::Delivered) => {
            record(&state, &about, FinalStatus::Delivered, None, None).await?;
            "delivered"
        }
        Some(Status::Failed { code, block }) => {
            let error = Some(match code {
                Some(c) => format!("Twilio reported {reported}, error {c}"),
                None => format!("Twilio reported {reported}"),
            });
            match block {
                Some(block) => {
                    let (kind, reason) = match block {
                        AddressBlock::HardBounce => (FeedbackKind::HardBounce, Reason::HardBounce),
                        AddressBlock::Stopped => (FeedbackKind::Stop, Reason::SmsStop),
                    };
                    if let Some(to) = signed.get("To") {
                        feedback(&state, to, kind).await?;
                    }
                    record(&state, &about, FinalStatus::Bounced, error, Some(reason)).await?;
                    "bounced"
                }
                None => {
                    record(&state, &about, FinalStatus::Failed, error, Some(Reason::ProviderRejected)).await?;
                    "failed"
                }
            }
        }
    };
    metrics::counter!("herald_twilio_callbacks_total", "kind" => label).increment(1);
    Ok(StatusCode::NO_CONTENT)
}

/// The delivery and attempt a status callback is about (from the URL Herald gave Twilio).
struct Callback {
    delivery_id: Uuid,
    attempt: Option<u32>,
}

async fn record(
    state: &AppState,
    about: &Callback,
    status: FinalStatus,
    error: Option<String>,
    reason: Option<Reason>,
) -> ApiResult<()> {
    let report = ProviderStatus {
        delivery_id: about.delivery_id,
        channel: Channel::Sms,
        attempt: about.attempt,
        status,
        error,
        reason,
        now: state.clock.now(),
    };
    if !state.runtime.provider_status(report).await? {
        // A late or repeated callback for a delivery already settled, or about an attempt since
        // superseded: nothing to change.
        tracing::debug!(delivery_id = %about.delivery_id, ?status, "Twilio status for a settled or superseded attempt");
    }
    Ok(())
}

/// An SMS sent to Herald's number. STOP (STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT,
/// REVOKE) blocks the number: no SMS reaches it, not even critical, until START (YES, UNSTOP,
/// OPTIN). HELP (INFO) is answered with `help_text` when configured. Answers TwiML.
#[utoipa::path(post, path = "/v1/providers/twilio/inbound", tag = "deliveries",
    request_body(content = std::collections::HashMap<String, String>, content_type = "application/x-www-form-urlencoded", description = "Twilio's incoming message parameters"),
    responses((status = 200, description = "TwiML", content_type = "text/xml"), (status = 403, body = crate::problem::Problem),
        (status = 404, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
async fn inbound(
    State(state): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let (hooks, signed) = verify(&state, &uri, &headers, &body)?;
    let from = signed.get("From").unwrap_or_default();
    let said = keyword(signed.get("Body").unwrap_or_default());
    let reply = match said {
        Some(Keyword::OptOut) => {
            feedback(&state, from, FeedbackKind::Stop).await?;
            tracing::info!("a number replied STOP; no SMS goes to it until START");
            None
        }
        Some(Keyword::OptIn) => {
            if feedback(&state, from, FeedbackKind::Start).await?.address_unblocked {
                tracing::info!("a number replied START; SMS may reach it again");
            }
            None
        }
        Some(Keyword::Help) => hooks.help_text.clone(),
        None => None,
    };
    let label = match said {
        Some(Keyword::OptOut) => "stop",
        Some(Keyword::OptIn) => "start",
        Some(Keyword::Help) => "help",
        None => "other",
    };
    metrics::counter!("herald_twilio_callbacks_total", "kind" => label).increment(1);
    let twiml = match reply {
        Some(text) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
            xml_escape(&text)
        ),
        None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>".to_owned(),
    };
    Ok(([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], twiml).into_response())
}

/// Escapes text for an XML element.
fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
