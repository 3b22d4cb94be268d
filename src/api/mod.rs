//! The HTTP API under `/v1`. Handlers only map request → command and result → response.

pub mod alerts;
pub mod auth;
mod body;
pub mod channels;
pub mod dto;
mod error;
pub mod hosts;
pub mod ingest;
pub mod keys;
pub mod monitors;
pub mod policy;
pub mod replay;
pub mod service;

use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub use auth::Caller;
pub use error::{ApiError, ErrorBody};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "telltale",
        description = "Heartbeats and run lifecycles of unattended processes, and alerts when one goes silent or fails.",
        license(name = "MIT")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "ingest", description = "What monitored processes send"),
        (name = "monitors", description = "Monitors and their history"),
        (name = "alerts", description = "Incidents"),
        (name = "hosts", description = "Hosts the monitors report from, and host alerts"),
        (name = "channels", description = "Where notifications go"),
        (name = "keys", description = "API keys of the client: issue, rotation, revocation, audit"),
        (name = "policy", description = "A client's default alert policy and maintenance windows"),
        (name = "service", description = "Health of telltale itself"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some(
            "A client's API key: `tt_<id>_<secret>`. Each operation's security requirements name the scope \
             it needs (`ingest`, `read`, `admin`; `[]`: any key); alternatives are listed side by side, and \
             `admin` stands for `ingest` and `read`. A key of another client gets 404 (or 403), never its data. \
             Every response to a key that is due for rotation, errors included, carries the header \
             `Telltale-Key-Rotation`: `due; since=<RFC 3339>; successor=pending` until `POST /v1/keys/rotate` \
             issues its successor, then `due; successor=issued; expires=<RFC 3339>` (when the key stops working)."
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Where an operation asks for `ingest` or `read`, an `admin` key may call it too: say so with a
/// second security requirement, as [`Caller::has`] decides.
fn scope_alternatives(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::SecurityRequirement;
    for item in doc.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            let Some(security) = operation.security.as_mut() else { continue };
            let scopes: Vec<String> = security
                .iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .filter_map(|v| v.get("bearer").cloned())
                .flat_map(|v| serde_json::from_value::<Vec<String>>(v).unwrap_or_default())
                .collect();
            if scopes.iter().any(|s| s == "ingest" || s == "read") && !scopes.iter().any(|s| s == "admin") {
                security.push(SecurityRequirement::new("bearer", ["admin"]));
            }
        }
    }
}

/// The whole OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(ingest::Api::openapi());
    doc.merge(monitors::Api::openapi());
    doc.merge(replay::Api::openapi());
    doc.merge(alerts::Api::openapi());
    doc.merge(hosts::Api::openapi());
    doc.merge(channels::Api::openapi());
    doc.merge(keys::Api::openapi());
    doc.merge(policy::Api::openapi());
    doc.merge(service::Api::openapi());
    scope_alternatives(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The document as committed in `openapi/openapi.json`.
pub fn openapi_json() -> String {
    let mut text = openapi().to_pretty_json().expect("the OpenAPI document serialises");
    text.push('\n');
    text
}

/// A resource that answers 405 with `Allow` for the methods it does not take.
pub(crate) fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path)
        .default_service(web::to(move || async move { Err::<HttpResponse, _>(ApiError::method_not_allowed(allow)) }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(|e, _| {
        ApiError::bad_request("invalid_query", format!("the query string is not valid: {e}")).into()
    }))
    .app_data(web::PathConfig::default().error_handler(|_, req| unparsable_id(req).into()));
    service::configure(cfg);
    ingest::configure(cfg);
    monitors::configure(cfg);
    replay::configure(cfg);
    alerts::configure(cfg);
    hosts::configure(cfg);
    channels::configure(cfg);
    keys::configure(cfg);
    policy::configure(cfg);
}

/// A path whose id cannot be one (`/v1/alerts/not-a-uuid/acknowledge`): nothing has that id,
/// so it is the same 404 as for an id that parses and does not exist.
fn unparsable_id(req: &HttpRequest) -> ApiError {
    let raw = req.match_info().get("id").or_else(|| req.match_info().iter().last().map(|(_, v)| v)).unwrap_or("");
    let (code, what) = match req.path() {
        p if p.starts_with("/v1/alerts/") || p.contains("/alerts/") => ("alert_not_found", "alert"),
        p if p.starts_with("/v1/maintenance/") => ("maintenance_window_not_found", "maintenance window"),
        p if p.starts_with("/v1/channels/") => ("channel_not_found", "channel"),
        p if p.starts_with("/v1/keys/") => ("key_not_found", "key"),
        _ => ("route_not_found", "resource"),
    };
    ApiError::not_found(code, format!("no {what} `{raw}` for this key's client: {what} ids are UUIDs"))
}

/// Unknown paths: JSON, except for a browser asking for a page outside the API.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let browser = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if browser && !req.path().starts_with("/v1/") {
        return Ok(crate::web::auth::not_found_page());
    }
    Err(ApiError::not_found("route_not_found", format!("nothing at {} {}", req.method(), req.path())))
}

pub type AppData = Data<crate::app::App>;
