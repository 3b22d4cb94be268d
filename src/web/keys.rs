//! The dashboard's keys and key audit, for admins (their client) and operators (every client):
//! create (the key shown once), list, revoke, and the history replayed from the log.

use actix_web::http::header::{CACHE_CONTROL, HeaderValue, LOCATION};
use actix_web::web::{self, Data, Form, Path, Query};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use telltale_domain::client::Scope;
use telltale_projections::models::clients;

use super::auth::{SignedIn, csrf_field, nav, not_found_page};
use super::page_with;
use crate::api::ApiError;
use crate::api::dto::DurationInput;
use crate::api::keys::{KeyOut, key_audit, rotation_policy};
use crate::app::App;
use crate::keys::KeyOptions;
use crate::users::Person;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/keys", web::get().to(keys_page));
    cfg.route("/keys", web::post().to(create));
    cfg.route("/keys/{key_id}/revoke", web::post().to(revoke));
    cfg.route("/audit", web::get().to(audit_page));
}

#[derive(Debug, Deserialize)]
pub struct ClientQuery {
    client: Option<String>,
    at: Option<String>,
    key: Option<String>,
}

/// The clients this person manages, and the one asked for (or the first).
pub(super) async fn managed(
    app: &App,
    person: &Person,
    asked: Option<&str>,
) -> Result<Option<(Vec<String>, String)>, ApiError> {
    let all: Vec<String> = app.client_names().await.map_err(ApiError::internal)?;
    let mine: Vec<String> = all.into_iter().filter(|c| person.manages(c)).collect();
    let chosen = match asked {
        Some(c) if mine.iter().any(|m| m == c) => c.to_string(),
        Some(_) => return Ok(None),
        None => match mine.first() {
            Some(c) => c.clone(),
            None => return Ok(None),
        },
    };
    Ok(Some((mine, chosen)))
}

pub(super) fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or_else(|| "—".into())
}

pub(super) fn client_picker(path: &str, clients: &[String], chosen: &str) -> Markup {
    html! {
        @if clients.len() > 1 {
            form.inline method="get" action=(path) {
                label { "Client " select name="client" onchange="this.form.submit()" {
                    @for c in clients { option value=(c) selected[c == chosen] { (c) } }
                } }
                noscript { button type="submit" { "Show" } }
            }
        }
    }
}

/// A one-button form that posts `client` (and the CSRF token) to `action`.
pub(super) fn client_action(req: &HttpRequest, action: &str, client: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(req))
            input type="hidden" name="client" value=(client);
            button type="submit" { (label) }
        }
    }
}

async fn keys_body(
    app: &App,
    req: &HttpRequest,
    person: &Person,
    clients: &[String],
    client: &str,
) -> Result<Markup, ApiError> {
    app.consistent().await;
    let now = app.clock.now();
    let keys: Vec<KeyOut> =
        clients::list_keys(&app.read.pool, Some(client)).await?.into_iter().map(|k| KeyOut::of(k, now)).collect();
    Ok(html! {
        (nav(req, person))
        h1 { "Keys of " (client) }
        (client_picker("/keys", clients, client))
        p.sub { "Keys belong to the client, not to a person. Their secrets are never shown again after they are issued. "
            a href={ "/audit?client=" (client) } { "Key audit" } }
        table #keys {
            thead { tr { th { "Key" } th { "Status" } th { "Scopes" } th { "Label" } th { "Generation" } th { "Created" } th { "Expires" } th { "Rotates" } th {} } }
            tbody {
                @for k in &keys {
                    tr data-key=(k.id) data-status=(k.status) {
                        td { code { (k.id) } }
                        td { (k.status) }
                        td { (k.scopes.join(", ")) }
                        td { (k.label.as_deref().unwrap_or("")) }
                        td { (k.generation) }
                        td { (time(Some(k.created_at))) }
                        td { (time(k.expires_at)) }
                        td { @if let (Some(every), Some(overlap)) = (&k.rotate_every, &k.overlap) { "every " (every) ", overlap " (overlap) } }
                        td {
                            @if k.status != "revoked" && k.status != "expired" {
                                (client_action(req, &format!("/keys/{}/revoke", k.id), client, "Revoke"))
                            }
                        }
                    }
                }
            }
        }
        h2 { "Issue a key" }
        form #new-key method="post" action="/keys" {
            (csrf_field(req))
            input type="hidden" name="client" value=(client);
            p {
                @for scope in Scope::ALL {
                    label { input type="checkbox" name="scope" value=(scope.as_str()) checked[Scope::DEFAULT.contains(&scope)]; " " (scope.as_str()) }
                }
            }
            p {
                label { "Label " input name="label"; }
                label { "Rotate every " input name="rotate_every" placeholder="30d" size="6"; }
                label { "Overlap " input name="overlap" placeholder="7d" size="6"; }
            }
            p { button type="submit" { "Issue key" } }
        }
    })
}

async fn keys_page(
    app: Data<App>,
    req: HttpRequest,
    SignedIn(person): SignedIn,
    query: Query<ClientQuery>,
) -> Result<HttpResponse, ApiError> {
    let Some((clients, client)) = managed(&app, &person, query.client.as_deref()).await? else {
        return Ok(not_found_page());
    };
    Ok(page_with("Keys", keys_body(&app, &req, &person, &clients, &client).await?, false))
}

/// The new-key form. `scope` repeats, so the form is read as pairs.
fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.trim().is_empty())
}

async fn create(
    app: Data<App>,
    req: HttpRequest,
    SignedIn(person): SignedIn,
    form: Form<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let Some((clients, client)) = managed(&app, &person, field(&form, "client")).await? else {
        return Ok(not_found_page());
    };
    let scopes: Vec<String> = form.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone()).collect();
    let text = |name: &str| field(&form, name).map(|v| DurationInput::Text(v.trim().to_string()));
    let issued = async {
        let options = KeyOptions {
            scopes: crate::api::keys::parse_scopes(Some(&scopes))?,
            label: field(&form, "label").map(str::to_string),
            expires_at: None,
            rotation: rotation_policy(text("rotate_every").as_ref(), text("overlap").as_ref())?,
            by: Some(format!("user:{}", person.name)),
        };
        Ok::<_, ApiError>(app.issue_key_with(&client, options).await?)
    }
    .await;
    let list = keys_body(&app, &req, &person, &clients, &client).await?;
    let shown = issued.map(|key| {
        html! {
            h2 { "New key " code { (key.key_id) } }
            p.alert { "Copy it now: it is shown only this once." }
            p.key #new-key-token { (key.token) }
        }
    });
    Ok(shown_once("Keys", shown, list))
}

/// A page answering a form: what it issued (a secret, shown this once) or the problem, above
/// `list`. Never stored by the browser or a proxy.
pub(super) fn shown_once(title: &str, shown: Result<Markup, ApiError>, list: Markup) -> HttpResponse {
    let body = match shown {
        Ok(shown) => html! { div #issued { (shown) } (list) },
        Err(e) => html! { p.alert #problem { (e.message) } (list) },
    };
    let mut response = page_with(title, body, false);
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A form that names the client it acts on.
#[derive(Debug, Deserialize)]
pub struct ClientForm {
    pub(super) client: String,
}

async fn revoke(
    app: Data<App>,
    SignedIn(person): SignedIn,
    key_id: Path<String>,
    form: Form<ClientForm>,
) -> Result<HttpResponse, ApiError> {
    if managed(&app, &person, Some(&form.client)).await?.is_none() {
        return Ok(not_found_page());
    }
    app.consistent().await;
    match clients::find_key(&app.read.pool, &key_id).await? {
        Some(key) if key.client == form.client => {
            app.revoke_key(&form.client, &key.key_id, Some(format!("user:{}", person.name))).await?;
            Ok(HttpResponse::SeeOther().insert_header((LOCATION, format!("/keys?client={}", form.client))).finish())
        }
        _ => Ok(not_found_page()),
    }
}

async fn audit_page(
    app: Data<App>,
    req: HttpRequest,
    SignedIn(person): SignedIn,
    query: Query<ClientQuery>,
) -> Result<HttpResponse, ApiError> {
    let Some((clients, client)) = managed(&app, &person, query.client.as_deref()).await? else {
        return Ok(not_found_page());
    };
    let at = query.at.as_deref().and_then(|a| DateTime::parse_from_rfc3339(a).ok()).map(|t| t.with_timezone(&Utc));
    let key = query.key.as_deref().filter(|k| !k.is_empty());
    let audit = match key_audit(&app, &client, at, key).await {
        Ok(audit) => audit,
        Err(_) => key_audit(&app, &client, at, None).await?,
    };
    let body = html! {
        (nav(&req, &person))
        h1 { "Key audit of " (client) }
        (client_picker("/audit", &clients, &client))
        form method="get" action="/audit" {
            input type="hidden" name="client" value=(client);
            label { "Valid at (RFC 3339) " input name="at" value=(query.at.as_deref().unwrap_or("")) placeholder="2026-03-01T12:00:00Z"; }
            label { "Key " input name="key" value=(key.unwrap_or("")) size="18"; }
            button type="submit" { "Replay" }
        }
        @if let (Some(at), Some(valid)) = (audit.at, &audit.valid_at) {
            p #valid-at { "Valid at " (time(Some(at))) ": " @if valid.is_empty() { "no key" } @else { (valid.join(", ")) } }
        }
        table #audit {
            thead { tr { th { "When" } th { "What" } th { "Key" } th { "Successor" } th { "Generation" } th { "By" } } }
            tbody { @for e in &audit.entries { tr data-action=(e.action) {
                td { (time(Some(e.at))) } td { (e.action) } td { code { (e.key_id) } }
                td { @if let Some(s) = &e.successor_id { code { (s) } } }
                td { @if let Some(g) = e.generation { (g) } }
                td { (e.by.as_deref().unwrap_or("")) @if let Some(source) = &e.source { (source) " until " (time(e.until)) } }
            } } }
        }
    };
    Ok(page_with("Key audit", body, false))
}
