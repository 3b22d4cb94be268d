//! The HTTP API under `/v1`. Handlers only map request → command and result → response.

pub mod alerts;
mod auth;
mod body;
pub mod channels;
pub mod dto;
mod error;
pub mod hosts;
pub mod ingest;
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
        scheme.description = Some("A client's API key: `tt_<id>_<secret>`".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
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
    doc.merge(policy::Api::openapi());
    doc.merge(service::Api::openapi());
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
    .app_data(
        web::PathConfig::default()
            .error_handler(|e, _| ApiError::bad_request("invalid_path", format!("the path is not valid: {e}")).into()),
    );
    service::configure(cfg);
    ingest::configure(cfg);
    monitors::configure(cfg);
    replay::configure(cfg);
    alerts::configure(cfg);
    hosts::configure(cfg);
    channels::configure(cfg);
    policy::configure(cfg);
}

/// Unknown paths.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("route_not_found", format!("nothing at {} {}", req.method(), req.path())))
}

pub type AppData = Data<crate::app::App>;
