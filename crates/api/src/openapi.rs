//! The OpenAPI document: generated from the handlers' annotations, then completed with the error
//! answers every operation shares, so that each lists every status it can answer with.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, Schema};

use crate::extract::Path;
use crate::problem::ApiError;

/// Media type of every error answer.
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

#[derive(OpenApi)]
#[openapi(
    info(title = "Herald", description = "Self-hosted notification service: the v1 HTTP API.\n\n\
        Every error is an RFC 9457 problem document (`application/problem+json`); validation errors \
        list each offending field by its JSON path (`to[3]`, `channels.email.subject`), or by the \
        name of the query or path parameter."),
    modifiers(&Security),
    components(schemas(crate::problem::Problem)),
    tags(
        (name = "users", description = "Users, devices and preferences"),
        (name = "templates", description = "Templates and previews"),
        (name = "notifications", description = "Sending, status and cancellation"),
        (name = "inbox", description = "The in-app inbox and its live stream (user token)"),
        (name = "topics", description = "Topic subscriptions"),
        (name = "deliveries", description = "Dead letters, replay, provider feedback and provider callbacks"),
        (name = "operations", description = "Health, metrics, statistics and documentation"),
    )
)]
pub(crate) struct ApiDoc;

/// The two security schemes and the two documentation routes served beside the generated ones.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("An API key")).build(),
            ),
        );
        components.add_security_scheme(
            "user_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A user token"))
                    .build(),
            ),
        );
        for (path, summary, media_type) in [
            ("/openapi.json", "This OpenAPI document", "application/json"),
            ("/docs", "Interactive API documentation (Swagger UI)", "text/html"),
        ] {
            let answer = ResponseBuilder::new().description(summary).content(media_type, ContentBuilder::new().build());
            let op = OperationBuilder::new().summary(Some(summary)).tag("operations").response("200", answer).build();
            openapi.paths.add_path_operation(path, vec![HttpMethod::Get], op);
        }
    }
}

/// `/docs`: the Swagger UI page itself (not a redirect, so `curl /docs` shows something), with
/// its assets under `/docs/`, reading `/openapi.json`.
pub(crate) fn docs<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let config = Arc::new(utoipa_swagger_ui::Config::from("/openapi.json"));
    let (page, files) = (config.clone(), config);
    let page = get(move || async move { swagger(&page, "") });
    Router::new()
        .route("/docs", page.clone())
        .route("/docs/", page)
        .route("/docs/{*file}", get(move |Path(DocFile { file }): Path<DocFile>| async move { swagger(&files, &file) }))
}

/// `/docs/{*file}`.
#[derive(serde::Deserialize)]
struct DocFile {
    file: String,
}

/// One file of Swagger UI; the page gets a base URL so that it loads its assets from `/docs/`
/// whether it was asked for as `/docs` or `/docs/`.
fn swagger(config: &Arc<utoipa_swagger_ui::Config<'static>>, file: &str) -> HttpResponse {
    let found = match utoipa_swagger_ui::serve(file, config.clone()) {
        Ok(Some(found)) => found,
        Ok(None) => return ApiError::NotFound(format!("no documentation file {file}")).into_response(),
        Err(e) => return ApiError::Internal(format!("Swagger UI: {e}")).into_response(),
    };
    let page = file.is_empty() || file == "index.html";
    let bytes = match std::str::from_utf8(&found.bytes) {
        Ok(html) if page && !found.gzpipped => html
            .replacen("<head>", "<head>\n    <base href=\"/docs/\">", 1)
            .replacen("<title>Swagger UI</title>", "<title>Herald API</title>", 1)
            .replacen("<body>", NOSCRIPT, 1)
            .into_bytes(),
        _ => found.bytes.into_owned(),
    };
    let mut resp = ([(header::CONTENT_TYPE, found.content_type)], bytes).into_response();
    if found.gzpipped {
        resp.headers_mut().insert(header::CONTENT_ENCODING, header::HeaderValue::from_static("gzip"));
    }
    resp
}

/// What the page says without JavaScript (to curl, say).
const NOSCRIPT: &str = "<body>\n    <noscript><p>Herald's interactive API documentation needs JavaScript. \
    The OpenAPI document it shows is at <a href=\"/openapi.json\">/openapi.json</a>.</p></noscript>";

/// Operations that never reach the store, so never answer 500.
const STORE_FREE: [(&str, &str); 7] = [
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
    ("get", "/v1/web-push/vapid-public-key"),
    ("get", "/v1/unsubscribe/{token}"),
];

/// Adds to every operation the errors its inputs and credentials can cause, describes every
/// answer, and declares every problem as `application/problem+json`.
pub(crate) fn complete(api: &mut utoipa::openapi::OpenApi) {
    if let Some(components) = api.components.as_mut() {
        open_flattened(&mut components.schemas);
    }
    for (path, item) in api.paths.paths.iter_mut() {
        for (method, op) in operations(item) {
            add_common_errors(op, STORE_FREE.contains(&(method, path.as_str())));
            for (status, answer) in op.responses.responses.iter_mut() {
                if let RefOr::T(answer) = answer {
                    finish(status, answer);
                }
            }
        }
    }
}

/// A struct flattened into a larger one (`#[serde(flatten)]`, an `allOf` part) cannot forbid
/// the larger one's other fields, even when it refuses unknown fields on its own (a request body):
/// the part is inlined without that rule.
fn open_flattened(schemas: &mut BTreeMap<String, RefOr<Schema>>) {
    let closed: BTreeMap<String, Schema> = schemas
        .iter()
        .filter_map(|(name, schema)| match schema {
            RefOr::T(Schema::Object(o))
                if matches!(o.additional_properties.as_deref(), Some(AdditionalProperties::FreeForm(false))) =>
            {
                let mut open = o.clone();
                open.additional_properties = None;
                Some((format!("#/components/schemas/{name}"), Schema::Object(open)))
            }
            _ => None,
        })
        .collect();
    for schema in schemas.values_mut() {
        let RefOr::T(Schema::AllOf(all)) = schema else { continue };
        for part in &mut all.items {
            if let RefOr::Ref(r) = part
                && let Some(open) = closed.get(&r.ref_location)
            {
                *part = RefOr::T(open.clone());
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("patch", &mut item.patch),
        ("head", &mut item.head),
        ("options", &mut item.options),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
}

/// The statuses that follow from what the operation takes (credentials, a body, parameters).
fn add_common_errors(op: &mut Operation, store_free: bool) {
    let authenticated = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let json_body = op.request_body.as_ref().map(|b| match b {
        RefOr::T(body) => body.content.keys().any(|media_type| media_type.ends_with("json")),
        RefOr::Ref(_) => true,
    });
    let parameters = op
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p, RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Query | ParameterIn::Path)));
    let mut statuses = Vec::new();
    if authenticated {
        statuses.push("401");
    }
    match json_body {
        Some(true) => statuses.extend(["400", "413", "415", "422"]),
        // Form bodies (Twilio's) are read as bytes: only their size is checked before the handler.
        Some(false) => statuses.push("413"),
        None => {}
    }
    if parameters {
        statuses.push("422");
    }
    if !store_free {
        statuses.push("500");
    }
    for status in statuses {
        op.responses.responses.entry(status.to_owned()).or_insert_with(|| RefOr::T(problem(status)));
    }
}

/// A problem answer for `status`.
fn problem(status: &str) -> Response {
    let schema = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
    ResponseBuilder::new().description(describe(status)).content(PROBLEM_JSON, schema).build()
}

/// Gives the answer a description when it has none, and problem answers their media type.
fn finish(status: &str, answer: &mut Response) {
    if answer.description.is_empty() {
        answer.description = describe(status).to_owned();
    }
    let error = status.starts_with('4') || status.starts_with('5');
    if error && let Some(content) = answer.content.shift_remove("application/json") {
        answer.content.insert(PROBLEM_JSON.to_owned(), content);
    }
}

/// What a status means for this API.
fn describe(status: &str) -> &'static str {
    match status {
        "400" => "Malformed: the body is not JSON (the detail gives the line and column)",
        "401" => "Missing or invalid credentials",
        "403" => "Refused: the request's signature or account does not check out",
        "404" => "Not found",
        "409" => "Conflicts with the current state",
        "413" => "The body is larger than 1 MiB",
        "415" => "The body is declared as something other than JSON",
        "422" => "Invalid: `errors` names each offending field or parameter and what it must be",
        "500" => "Internal error; the details are in the server's log",
        "503" => "Not ready: the store does not answer",
        other => other
            .parse::<u16>()
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_free_operations_exist_and_answer_no_500() {
        let (_, mut api) = crate::documented();
        for (method, path) in STORE_FREE {
            let item = api.paths.paths.get_mut(path).unwrap_or_else(|| panic!("{path} is documented"));
            let (_, op) = operations(item).find(|(m, _)| *m == method).unwrap_or_else(|| panic!("{method} {path}"));
            assert!(!op.responses.responses.contains_key("500"), "{method} {path}");
        }
    }

    #[test]
    fn every_answer_is_described_and_every_problem_is_problem_json() {
        let (_, mut api) = crate::documented();
        for (path, item) in api.paths.paths.iter_mut() {
            for (method, op) in operations(item) {
                for (status, answer) in &op.responses.responses {
                    let RefOr::T(answer) = answer else { continue };
                    assert!(!answer.description.is_empty(), "{method} {path} {status}");
                    let problem = status.as_str() >= "400" && !answer.content.contains_key("text/html");
                    assert_eq!(problem, answer.content.contains_key(PROBLEM_JSON), "{method} {path} {status}");
                }
            }
        }
    }
}
