//! The one error type of the HTTP API: a JSON body with a stable machine-readable `code` and a
//! human `message`. A 500 is opaque to the caller and logs the whole chain.

use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use telltale_domain::client::ClientError;
use telltale_domain::monitor::MonitorError;
use utoipa::ToSchema;

use crate::commands::CommandError;
use crate::store::StoreError;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable and machine-readable, e.g. `malformed_json`, `monitor_not_found`.
    #[schema(example = "monitor_not_found")]
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    allow: Option<&'static str>,
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), allow: None, retry_after: None }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the limit of {} KiB", limit / 1024),
        )
    }
    pub fn method_not_allowed(allow: &'static str) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("this path accepts only {allow}"),
        );
        e.allow = Some(allow);
        e
    }
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        e.retry_after = Some(1);
        e
    }
    /// An unexpected failure: logged with its chain, opaque to the caller.
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %error, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "telltale hit an internal error; it has been logged",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(allow) = self.allow {
            response.insert_header((ALLOW, allow));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((RETRY_AFTER, seconds.to_string()));
        }
        response.json(ErrorBody { code: self.code.to_string(), message: self.message.clone() })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Closed => ApiError::unavailable("telltale is shutting down; try again shortly"),
            StoreError::Conflict { .. } => {
                ApiError::conflict("conflict", "the resource changed while this request was handled; try again")
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<MonitorError> for ApiError {
    fn from(e: MonitorError) -> ApiError {
        match e {
            MonitorError::NotFound(slug) => ApiError::not_found(
                "monitor_not_found",
                format!("no monitor `{slug}` for this key's client; create it with POST /v1/monitors"),
            ),
            MonitorError::AlreadyExists(slug) => {
                ApiError::conflict("monitor_exists", format!("a monitor `{slug}` already exists"))
            }
            MonitorError::AlertNotFound(id) => {
                ApiError::not_found("alert_not_found", format!("no open alert `{id}` for this key's client"))
            }
            MonitorError::Invalid(message) => ApiError::unprocessable("invalid_value", message),
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> ApiError {
        match e {
            ClientError::NotFound(c) => ApiError::not_found("client_not_found", format!("no client `{c}`")),
            ClientError::AlreadyExists(c) => {
                ApiError::conflict("client_exists", format!("a client `{c}` already exists"))
            }
            ClientError::KeyNotFound(k) => ApiError::not_found("key_not_found", format!("no key `{k}`")),
            ClientError::ChannelNotFound(c) => ApiError::not_found("channel_not_found", format!("no channel `{c}`")),
            ClientError::WindowNotFound(w) => {
                ApiError::not_found("maintenance_window_not_found", format!("no maintenance window `{w}`"))
            }
            ClientError::Conflict(m) => ApiError::conflict("conflict", m),
            ClientError::Invalid(m) => ApiError::unprocessable("invalid_value", m),
            e @ ClientError::RotationNotConfigured(_) => ApiError::conflict("rotation_not_configured", e.to_string()),
            ClientError::RotationNotDue { key_id, due_at } => ApiError::conflict(
                "rotation_not_due",
                format!(
                    "key `{key_id}` is not due for rotation before {}",
                    due_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            ),
            e @ ClientError::KeyNotValid(_) => ApiError::conflict("key_not_valid", e.to_string()),
        }
    }
}

impl From<telltale_domain::users::UserError> for ApiError {
    fn from(e: telltale_domain::users::UserError) -> ApiError {
        use telltale_domain::users::UserError;
        match e {
            UserError::AlreadyExists(_) => ApiError::conflict("user_exists", e.to_string()),
            UserError::NotFound(_) => ApiError::not_found("user_not_found", e.to_string()),
            UserError::LinkNotValid => ApiError::not_found("link_not_valid", e.to_string()),
            UserError::Invalid(m) => ApiError::unprocessable("invalid_value", m),
        }
    }
}

impl<E: std::error::Error + Into<ApiError> + 'static> From<CommandError<E>> for ApiError {
    fn from(e: CommandError<E>) -> ApiError {
        match e {
            CommandError::Domain(e) => e.into(),
            CommandError::Store(e) => e.into(),
        }
    }
}
