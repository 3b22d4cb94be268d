//! Service endpoints: liveness, readiness and the OpenAPI document.

use actix_web::HttpResponse;
use actix_web::web::{self, Data, Json};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::app::App;

#[derive(OpenApi)]
#[openapi(paths(healthz, readyz))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/healthz", "GET").route(web::get().to(healthz)));
    cfg.service(super::resource("/readyz", "GET").route(web::get().to(readyz)));
    cfg.service(super::resource("/openapi.json", "GET").route(web::get().to(openapi)));
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, or `lagging` when the read models trail the log.
    pub status: String,
    /// The last position in the event log.
    pub log_head: i64,
    /// The position every read model has applied.
    pub projections_at: i64,
    /// Monitors with a pending deadline.
    pub deadlines: usize,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// Readiness: the log answers and the read models keep up with it.
#[utoipa::path(get, path = "/readyz", tag = "service",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(app: Data<App>) -> HttpResponse {
    let head = match app.store.head().await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "readiness: the event log does not answer");
            return HttpResponse::ServiceUnavailable().json(Readiness {
                status: "log_unavailable".into(),
                log_head: 0,
                projections_at: 0,
                deadlines: 0,
            });
        }
    };
    let at = *app.projector.progress().borrow();
    let lagging = head - at > 1000;
    let body = Readiness {
        status: if lagging { "lagging" } else { "ready" }.into(),
        log_head: head,
        projections_at: at,
        deadlines: app.detector.len(),
    };
    if lagging { HttpResponse::ServiceUnavailable().json(body) } else { HttpResponse::Ok().json(body) }
}

/// The OpenAPI document of this API.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(super::openapi_json())
}
