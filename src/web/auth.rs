//! Signing in to the dashboard: sessions, CSRF protection for every form, the sign-in and
//! one-time-link pages, and sign-in rate limits.
//!
//! - The session is a random token in the `tt_session` cookie (HttpOnly, SameSite=Lax, Secure
//!   when `public_url` is https); the server keeps only its hash (table `sessions`).
//! - CSRF: every request that is not GET/HEAD/OPTIONS and not under `/v1/` (the API takes bearer
//!   keys, never cookies) must carry the `tt_csrf` cookie's value in a `csrf` form field or an
//!   `X-CSRF-Token` header (double submit; the cookie is SameSite=Strict). Once signed in, the
//!   token is bound to the session (`<nonce>.<HMAC-SHA256 keyed by the session token>`, issued
//!   at sign-in): whoever can plant a cookie (a sibling subdomain, a network on plain HTTP)
//!   cannot make a token for someone else's session, whose cookie is HttpOnly. [`csrf_guard`] checks
//!   it for every such request, so a form added later is covered without work: [`csrf_field`]
//!   puts the token in a form, and the page script fills it into any POST form that lacks it.
//! - Sign-in: per address, `limits.signin_attempts_per_minute` (429 with a clear message); per
//!   account, `limits.signin_failures_before_lockout` wrong passwords lock it (`UserLockedOut`).

use actix_web::body::BoxBody;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, LOCATION};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{self, Data, Form, Query};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use chrono::SecondsFormat;
use maud::{Markup, html};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::keys::random_hex;
use crate::limits::retry_after_secs;
use crate::users::{MIN_PASSWORD, Person, SignInRefused};

pub const SESSION_COOKIE: &str = "tt_session";
pub const CSRF_COOKIE: &str = "tt_csrf";
/// The largest form the CSRF check reads.
const MAX_FORM: usize = 64 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/signin", web::get().to(signin_page));
    cfg.route("/signin", web::post().to(signin));
    cfg.route("/signout", web::post().to(signout));
    cfg.route("/welcome", web::get().to(welcome_page));
    cfg.route("/welcome", web::post().to(welcome));
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn csrf_mac(session: &str, nonce: &str) -> HmacSha256 {
    use hmac::Mac;
    let mut mac = HmacSha256::new_from_slice(session.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"telltale csrf ");
    mac.update(nonce.as_bytes());
    mac
}

/// A new CSRF token bound to `session`.
fn bound_token(session: &str) -> String {
    use hmac::Mac;
    let nonce = random_hex(16);
    let tag = hex::encode(csrf_mac(session, &nonce).finalize().into_bytes());
    format!("{nonce}.{tag}")
}

/// Whether `token` was made for `session` (compared in constant time).
fn bound_to(token: &str, session: &str) -> bool {
    use hmac::Mac;
    let Some((nonce, tag)) = token.split_once('.') else { return false };
    let Ok(tag) = hex::decode(tag) else { return false };
    csrf_mac(session, nonce).verify_slice(&tag).is_ok()
}

fn csrf_cookie(app: &App, token: String) -> Cookie<'static> {
    Cookie::build(CSRF_COOKIE, token).path("/").same_site(SameSite::Strict).secure(secure(app)).finish()
}

/// The CSRF token of this request (set by [`csrf_guard`] when the browser had none yet).
#[derive(Debug, Clone)]
struct CsrfToken(String);

pub fn csrf_token(req: &HttpRequest) -> String {
    if let Some(token) = req.extensions().get::<CsrfToken>() {
        return token.0.clone();
    }
    req.cookie(CSRF_COOKIE).map(|c| c.value().to_string()).unwrap_or_default()
}

/// The hidden field that carries the CSRF token; put it in every form.
pub fn csrf_field(req: &HttpRequest) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf_token(req)); }
}

fn secure(app: &App) -> bool {
    app.config.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
}

fn forbidden_page(message: &str) -> HttpResponse {
    let body = html! {
        h1 { "Refused" }
        p { (message) }
        p { a href="/" { "Back to the dashboard" } }
    };
    let mut response = super::page_with("Refused", body, false);
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

/// Middleware: checks the CSRF token of every state-changing request outside the API, and gives
/// every browser that loads a page a token cookie.
pub async fn csrf_guard(
    mut req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if req.path().starts_with("/v1/") {
        return next.call(req).await;
    }
    let cookie = req.cookie(CSRF_COOKIE).map(|c| c.value().to_string()).filter(|v| v.len() >= 32);
    let session = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string()).filter(|v| !v.is_empty());
    if safe {
        // A browser with none gets a token; one with a session gets a token bound to it.
        let stale = match (&cookie, &session) {
            (None, _) => true,
            (Some(token), Some(session)) => !bound_to(token, session),
            (Some(_), None) => false,
        };
        let fresh = stale.then(|| match &session {
            Some(session) => bound_token(session),
            None => random_hex(32),
        });
        if let Some(token) = &fresh {
            req.extensions_mut().insert(CsrfToken(token.clone()));
        }
        let app = req.app_data::<Data<App>>().cloned();
        let mut response = next.call(req).await?;
        let html = response
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        if let (Some(token), Some(app)) = (fresh.filter(|_| html), app) {
            let cookie = csrf_cookie(&app, token);
            if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
                response.headers_mut().append(actix_web::http::header::SET_COOKIE, value);
            }
        }
        return Ok(response);
    }
    let header = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    let provided = match header {
        Some(token) => Some(token),
        None => {
            let (http, mut payload) = req.into_parts();
            let bytes = match web::Bytes::from_request(&http, &mut payload).await {
                Ok(bytes) if bytes.len() <= MAX_FORM => bytes,
                _ => {
                    let response = forbidden_page("This form is too large.");
                    return Ok(ServiceResponse::new(http, response));
                }
            };
            let token = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
                .ok()
                .and_then(|fields| fields.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v));
            req = ServiceRequest::from_parts(http, Payload::from(bytes));
            token
        }
    };
    let matches = match (&cookie, &provided) {
        (Some(cookie), Some(provided)) => {
            bool::from(cookie.as_bytes().ct_eq(provided.as_bytes()))
                && session.as_deref().is_none_or(|session| bound_to(provided, session))
        }
        _ => false,
    };
    if !matches {
        let response = forbidden_page(
            "This form did not come from this telltale, or it has expired (CSRF check). Reload the page and try again.",
        );
        return Ok(req.into_response(response));
    }
    next.call(req).await
}

/// A person signed in; a request without a session is sent to the sign-in page.
pub struct SignedIn(pub Person);

/// "Sign in first": a redirect to the sign-in page, coming back here afterwards.
#[derive(Debug)]
pub struct SignInFirst(String);

impl std::fmt::Display for SignInFirst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sign in first")
    }
}

impl ResponseError for SignInFirst {
    fn status_code(&self) -> StatusCode {
        StatusCode::SEE_OTHER
    }
    fn error_response(&self) -> HttpResponse {
        let next = percent_encoding::utf8_percent_encode(&self.0, percent_encoding::NON_ALPHANUMERIC);
        HttpResponse::SeeOther().insert_header((LOCATION, format!("/signin?next={next}"))).finish()
    }
}

impl FromRequest for SignedIn {
    type Error = SignInFirst;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<SignedIn, SignInFirst>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let app = req.app_data::<Data<App>>().cloned();
        let token = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
        let here = match req.method() {
            &Method::GET => req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_else(|| "/".into()),
            _ => "/".into(),
        };
        Box::pin(async move {
            let (Some(app), Some(token)) = (app, token) else { return Err(SignInFirst(here)) };
            app.session_person(&token).await.map(SignedIn).ok_or(SignInFirst(here))
        })
    }
}

/// Only where to go back to on this site: a path, never another host.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn signin_form(req: &HttpRequest, next: &str, name: &str, problem: Option<&str>) -> Markup {
    html! {
        h1 { "Sign in to telltale" }
        @if let Some(problem) = problem { p.alert #problem { (problem) } }
        form #signin method="post" action="/signin" {
            (csrf_field(req))
            input type="hidden" name="next" value=(next);
            p { label { "Name " input name="name" value=(name) autocomplete="username" required autofocus; } }
            p { label { "Password " input name="password" type="password" autocomplete="current-password" required; } }
            p { button type="submit" { "Sign in" } }
        }
        p.muted { "No password yet? Ask an operator for a sign-in link (" code { "telltale users link NAME" } ")." }
    }
}

async fn signin_page(req: HttpRequest, query: Query<NextQuery>) -> HttpResponse {
    let next = safe_next(query.next.as_deref());
    super::page_with("Sign in", signin_form(&req, &next, "", None), false)
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    name: String,
    password: String,
    next: Option<String>,
}

fn address(req: &HttpRequest) -> String {
    req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

fn session_cookie(app: &App, token: &str) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token.to_string())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure(app))
        .max_age(actix_web::cookie::time::Duration::seconds(crate::users::SESSION_LIFETIME.num_seconds()))
        .finish()
}

/// Refuses a sign-in attempt from an address over its rate.
fn over_rate(app: &App, req: &HttpRequest) -> Option<HttpResponse> {
    let wait = app.guards.signin_rate.take(&address(req), app.clock.now()).err()?;
    let seconds = retry_after_secs(wait);
    let message = format!(
        "Too many sign-in attempts from your address ({} a minute at most). Try again in {seconds} s.",
        app.config.limits.signin_attempts_per_minute
    );
    let body = html! { h1 { "Slow down" } p.alert #problem { (message) } };
    let mut response = super::page_with("Too many attempts", body, false);
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    response.headers_mut().insert(actix_web::http::header::RETRY_AFTER, HeaderValue::from(seconds));
    Some(response)
}

async fn signin(
    app: Data<App>,
    req: HttpRequest,
    form: Form<SignInForm>,
) -> Result<HttpResponse, crate::api::ApiError> {
    if let Some(refused) = over_rate(&app, &req) {
        return Ok(refused);
    }
    let next = safe_next(form.next.as_deref());
    let name = form.name.trim().to_lowercase();
    match app.sign_in(&name, &form.password).await {
        Ok(person) => {
            let token = app.open_session(&person.name).await?;
            tracing::info!(user = %person.name, "signed in");
            Ok(HttpResponse::SeeOther()
                .cookie(session_cookie(&app, token.expose()))
                .cookie(csrf_cookie(&app, bound_token(token.expose())))
                .insert_header((LOCATION, next))
                .finish())
        }
        Err(refused) => {
            let problem = match refused {
                SignInRefused::Wrong => "Wrong name or password.".to_string(),
                SignInRefused::Locked(until) => format!(
                    "Too many wrong passwords: this account is locked until {}. Try again then, or ask an operator for a sign-in link.",
                    until.to_rfc3339_opts(SecondsFormat::Secs, true)
                ),
            };
            let mut response = super::page_with("Sign in", signin_form(&req, &next, &name, Some(&problem)), false);
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            Ok(response)
        }
    }
}

async fn signout(app: Data<App>, req: HttpRequest) -> Result<HttpResponse, crate::api::ApiError> {
    if let Some(cookie) = req.cookie(SESSION_COOKIE) {
        app.close_session(cookie.value()).await?;
    }
    let mut gone = session_cookie(&app, "");
    gone.make_removal();
    Ok(HttpResponse::SeeOther().cookie(gone).insert_header((LOCATION, "/signin")).finish())
}

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

fn welcome_form(req: &HttpRequest, token: &str, name: &str, problem: Option<&str>) -> Markup {
    html! {
        h1 { "Welcome, " (name) }
        p { "Choose a password to sign in with (at least " (MIN_PASSWORD) " characters). This link works once." }
        @if let Some(problem) = problem { p.alert #problem { (problem) } }
        form #welcome method="post" action="/welcome" {
            (csrf_field(req))
            input type="hidden" name="token" value=(token);
            p { label { "Password " input name="password" type="password" autocomplete="new-password" required autofocus; } }
            p { label { "Again " input name="again" type="password" autocomplete="new-password" required; } }
            p { button type="submit" { "Set password and sign in" } }
        }
    }
}

fn link_not_valid() -> HttpResponse {
    let body = html! {
        h1 { "This link does not work" }
        p.alert #problem { "This sign-in link was already used, has expired, or never existed. Ask an operator for a new one ("
            code { "telltale users link NAME" } ")." }
        p { a href="/signin" { "Sign in" } }
    };
    let mut response = super::page_with("Sign-in link", body, false);
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

async fn welcome_page(app: Data<App>, req: HttpRequest, query: Query<TokenQuery>) -> HttpResponse {
    let token = query.token.clone().unwrap_or_default();
    match app.link_holder(&token).await {
        Some(name) => {
            let mut response = super::page_with("Welcome", welcome_form(&req, &token, &name, None), false);
            response.headers_mut().insert(actix_web::http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        None => link_not_valid(),
    }
}

#[derive(Debug, Deserialize)]
pub struct WelcomeForm {
    token: String,
    password: String,
    again: String,
}

async fn welcome(
    app: Data<App>,
    req: HttpRequest,
    form: Form<WelcomeForm>,
) -> Result<HttpResponse, crate::api::ApiError> {
    if let Some(refused) = over_rate(&app, &req) {
        return Ok(refused);
    }
    let Some(name) = app.link_holder(&form.token).await else { return Ok(link_not_valid()) };
    let problem = if form.password != form.again {
        Some("The two passwords differ.".to_string())
    } else if form.password.chars().count() < MIN_PASSWORD {
        Some(format!("A password needs at least {MIN_PASSWORD} characters."))
    } else {
        None
    };
    if let Some(problem) = problem {
        let mut response = super::page_with("Welcome", welcome_form(&req, &form.token, &name, Some(&problem)), false);
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(response);
    }
    match app.set_password_with_link(&form.token, &form.password).await {
        Ok(name) => {
            let token = app.open_session(&name).await?;
            tracing::info!(user = %name, "set a password with a sign-in link");
            Ok(HttpResponse::SeeOther()
                .cookie(session_cookie(&app, token.expose()))
                .cookie(csrf_cookie(&app, bound_token(token.expose())))
                .insert_header((LOCATION, "/"))
                .finish())
        }
        Err(crate::commands::CommandError::Domain(_)) => Ok(link_not_valid()),
        Err(e) => Err(e.into()),
    }
}

/// The bar on top of every signed-in page: who, where, sign out.
pub fn nav(req: &HttpRequest, person: &Person) -> Markup {
    let manages = person.role != telltale_domain::users::Role::Viewer;
    html! {
        nav.sub {
            a href="/" { "Monitors" }
            @if manages { " · " a href="/keys" { "Keys" } " · " a href="/audit" { "Key audit" } " · " a href="/people" { "People" } }
            " · signed in as " strong { (person.name) } " (" (person.role.as_str())
            @if let Some(client) = &person.client { ", " (client) } ")"
            form.inline method="post" action="/signout" { (csrf_field(req)) button type="submit" { "Sign out" } }
        }
    }
}

/// A 404 page.
pub fn not_found_page() -> HttpResponse {
    let body = html! { h1 { "Not found" } p { "There is nothing here for you." } p { a href="/" { "Back to the dashboard" } } };
    let mut response = super::page_with("Not found", body, false);
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// Query parameters whose values are never logged: a sign-in link's token, and whatever
/// credential a client may put in a URL by mistake (telltale takes keys only as a header).
const SECRET_PARAMS: [&str; 7] = ["token", "key", "api_key", "apikey", "access_token", "secret", "password"];

/// Logs the request line with secrets blotted out: the values of [`SECRET_PARAMS`] query
/// parameters, and the secret of anything shaped like an API key anywhere in the line.
pub fn redacted_request_line(req: &ServiceRequest) -> String {
    let query = req.query_string();
    let query = if query.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = query
            .split('&')
            .map(|part| match part.split_once('=') {
                Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => format!("{k}=…"),
                _ => part.to_string(),
            })
            .collect();
        format!("?{}", parts.join("&"))
    };
    blot_keys(&format!("{} {}{query} {:?}", req.method(), req.path(), req.version()))
}

/// `text` with the secret of every `tt_<16 hex>_<hex…>` in it replaced by `…` (the public id
/// stays, to say which key it was).
pub fn blot_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("tt_") {
        let (before, candidate) = rest.split_at(at);
        out.push_str(before);
        let id = &candidate[3..];
        let id_len = id.bytes().take_while(u8::is_ascii_hexdigit).count();
        if id_len == 16 && id.as_bytes().get(16) == Some(&b'_') {
            let secret_len = id[17..].bytes().take_while(u8::is_ascii_hexdigit).count();
            out.push_str(&candidate[..3 + 17]);
            out.push('…');
            rest = &candidate[3 + 17 + secret_len..];
        } else {
            out.push_str("tt_");
            rest = &candidate[3..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::blot_keys;

    #[test]
    fn keys_lose_their_secret_and_nothing_else_changes() {
        let key = format!("tt_{}_{}", "0123456789abcdef", "f".repeat(64));
        assert_eq!(
            blot_keys(&format!("POST /x?key={key}&tt_=1 {key}")),
            "POST /x?key=tt_0123456789abcdef_…&tt_=1 tt_0123456789abcdef_…"
        );
        assert_eq!(blot_keys("GET /v1/monitors/tt_job/heartbeat"), "GET /v1/monitors/tt_job/heartbeat");
        assert_eq!(blot_keys("tt_0123"), "tt_0123");
    }
}
