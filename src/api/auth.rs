//! Bearer API keys. A key belongs to one client and decides it: every request acts inside that
//! client, so a key of client A cannot even name a monitor of client B.
//!
//! In order: the key is parsed, looked up and its secret compared in constant time (a wrong
//! secret counts against the (key id, address) pair, which is locked out at the threshold); a
//! revoked or expired key is refused; the key's rate is taken (429 with `Retry-After`, before
//! anything is read or recorded); and a key that is due for rotation is marked so that every
//! response to it carries `Telltale-Key-Rotation`.

use std::future::Future;
use std::pin::Pin;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use chrono::{DateTime, SecondsFormat, Utc};
use telltale_domain::client::{ClientCommand, Rotation, Scope};
use telltale_domain::ids::streams;
use telltale_projections::models::clients::KeyRecord;

use super::ApiError;
use crate::app::App;
use crate::keys::{Secret, parse_token, secret_matches};
use crate::limits::{Counted, retry_after_secs};

/// The header on every response to a key that is due for rotation.
pub const ROTATION_HEADER: &str = "telltale-key-rotation";

/// Who is calling: the client their key belongs to, and what the key may do.
#[derive(Debug, Clone)]
pub struct Caller {
    pub client: String,
    pub key_id: String,
    pub scopes: Vec<Scope>,
    /// The secret presented (for `rotate`, which opens the successor with it).
    pub secret: Secret,
    /// The caller's address and agent, for the audit.
    pub source: String,
}

impl Caller {
    /// `admin` may do everything but auto-provision (which is asked for explicitly, so that a
    /// mistyped slug in a script is a 404 rather than a new monitor); otherwise the key needs
    /// the scope itself.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || (scope != Scope::Provision && self.scopes.contains(&Scope::Admin))
    }

    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this key lacks the `{}` scope", scope.as_str())))
        }
    }

    /// How this caller is named in the log: `key:<id> from <address>`.
    pub fn actor(&self) -> String {
        format!("key:{} ({})", self.key_id, self.source)
    }
}

/// What `Telltale-Key-Rotation` says about the calling key.
#[derive(Debug, Clone)]
pub struct RotationNotice(String);

impl RotationNotice {
    pub fn of(rotation: &Rotation) -> Option<RotationNotice> {
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        match rotation {
            Rotation::Never | Rotation::NotDue { .. } => None,
            Rotation::Due { since } => Some(RotationNotice(format!("due; since={}; successor=pending", time(since)))),
            Rotation::Rotated { expires_at, .. } => Some(RotationNotice::issued(*expires_at)),
        }
    }

    /// The successor is issued; the calling key stops working at `expires_at`.
    pub fn issued(expires_at: Option<DateTime<Utc>>) -> RotationNotice {
        let mut value = "due; successor=issued".to_string();
        if let Some(at) = expires_at {
            value.push_str(&format!("; expires={}", at.to_rfc3339_opts(SecondsFormat::Secs, true)));
        }
        RotationNotice(value)
    }
}

/// Middleware: puts `Telltale-Key-Rotation` on every response to a due key, errors included.
pub async fn rotation_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(req).await?;
    let notice = response.request().extensions().get::<RotationNotice>().cloned();
    if let Some(notice) = notice
        && let Ok(value) = HeaderValue::from_str(&notice.0)
    {
        response.headers_mut().insert(HeaderName::from_static(ROTATION_HEADER), value);
    }
    Ok(response)
}

const HOW: &str = "send `Authorization: Bearer <key>` with a key from `telltale keys create --client NAME`";

/// The caller's address (the TCP peer; telltale trusts no forwarding header for this).
fn address(req: &HttpRequest) -> String {
    req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

async fn authenticate(app: web::Data<App>, req: HttpRequest, header: Option<String>) -> Result<Caller, ApiError> {
    let header = header.ok_or_else(|| ApiError::unauthorized(format!("no API key: {HOW}")))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized(format!("the Authorization header is not a bearer key: {HOW}")))?;
    let invalid = || ApiError::unauthorized("the API key is not valid");
    let (key_id, secret) = parse_token(token).ok_or_else(|| {
        ApiError::unauthorized("the API key is not valid: a key looks like tt_<16 hex digits>_<64 hex digits>")
    })?;
    let record: KeyRecord = app.find_key(key_id).await?.ok_or_else(invalid)?;
    let now = app.clock.now();
    let address = address(&req);
    let pair = (record.key_id.clone(), address.clone());
    if let Some(until) = app.guards.key_failures.locked_until(&pair, now) {
        return Err(locked_out(until, now));
    }
    if !secret_matches(secret, &record.secret_hash) {
        if let Counted::LockedOut { failures, until } = app.guards.key_failures.fail(&pair, now) {
            tracing::warn!(key_id = %record.key_id, source = %address, failures, "locking an address out of a key");
            let command = ClientCommand::LockOutKey { key_id: record.key_id.clone(), source: address, failures, until };
            if let Err(e) = app.clients.execute(&streams::client(&record.client), command, None).await {
                tracing::error!(error = %e, "could not record a key lock-out");
            }
            return Err(locked_out(until, now));
        }
        return Err(invalid());
    }
    if record.revoked_at.is_some_and(|at| at <= now) {
        return Err(ApiError::unauthorized("the API key has been revoked"));
    }
    if !record.valid_at(now) {
        return Err(ApiError::unauthorized("the API key has expired"));
    }
    if let Some(notice) = RotationNotice::of(&record.rotation_at(now)) {
        req.extensions_mut().insert(notice);
    }
    if let Err(wait) = app.guards.key_rate.take(&record.key_id, now) {
        let seconds = retry_after_secs(wait);
        let limits = &app.config.limits;
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "this key made more than {} requests at once ({} per second sustained); nothing was recorded: retry after {seconds} s",
                limits.key_burst, limits.key_requests_per_second
            ),
        );
        error.retry_after = Some(seconds);
        return Err(error);
    }
    let agent = req.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("unknown agent");
    let source = format!("{address}, {}", agent.chars().take(100).collect::<String>());
    Ok(Caller {
        client: record.client,
        key_id: record.key_id,
        scopes: record.scopes,
        secret: Secret::new(secret),
        source,
    })
}

fn locked_out(until: DateTime<Utc>, now: DateTime<Utc>) -> ApiError {
    let mut error = ApiError::unauthorized(format!(
        "too many wrong secrets for this key from your address; it is locked out until {}",
        until.to_rfc3339_opts(SecondsFormat::Secs, true)
    ));
    error.retry_after = Some(retry_after_secs(until - now));
    error
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let app = req.app_data::<web::Data<App>>().cloned();
        let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        let req = req.clone();
        Box::pin(async move {
            let app = app.ok_or_else(|| ApiError::internal("the app is not configured"))?;
            authenticate(app, req, header).await
        })
    }
}
