//! Bearer API keys. A key belongs to one client and decides it: every request acts inside that
//! client, so a key of client A cannot even name a monitor of client B.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use subtle::ConstantTimeEq;
use telltale_domain::client::Scope;
use telltale_projections::models::clients::KeyRecord;

use super::ApiError;
use crate::app::{App, hash_secret, parse_token};

/// Who is calling: the client their key belongs to, and what the key may do.
#[derive(Debug, Clone)]
pub struct Caller {
    pub client: String,
    pub key_id: String,
    pub scopes: Vec<Scope>,
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
}

const HOW: &str = "send `Authorization: Bearer <key>` with a key from `telltale keys create --client NAME`";

async fn authenticate(app: web::Data<App>, header: Option<String>) -> Result<Caller, ApiError> {
    let header = header.ok_or_else(|| ApiError::unauthorized(format!("no API key: {HOW}")))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized(format!("the Authorization header is not a bearer key: {HOW}")))?;
    let invalid = || ApiError::unauthorized("the API key is not valid");
    let (key_id, secret) = parse_token(token).ok_or_else(invalid)?;
    let record: KeyRecord = app.find_key(key_id).await?.ok_or_else(invalid)?;
    let presented = hash_secret(secret);
    if !bool::from(presented.as_bytes().ct_eq(record.secret_hash.as_bytes())) {
        return Err(invalid());
    }
    if record.revoked_at.is_some() {
        return Err(ApiError::unauthorized("the API key has been revoked"));
    }
    if record.expires_at.is_some_and(|at| at <= app.clock.now()) {
        return Err(ApiError::unauthorized("the API key has expired"));
    }
    Ok(Caller { client: record.client, key_id: record.key_id, scopes: record.scopes })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let app = req.app_data::<web::Data<App>>().cloned();
        let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        Box::pin(async move {
            let app = app.ok_or_else(|| ApiError::internal("the app is not configured"))?;
            authenticate(app, header).await
        })
    }
}
