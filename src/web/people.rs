//! The dashboard's people, for admins (their client) and operators (every client): add a viewer
//! or an admin (who gets a one-time sign-in link, shown once, to choose a password), give
//! someone a new link (a forgotten password), and remove someone (their sessions end at once).
//! Operators are made on the command line only (`telltale users add NAME --operator`).

use actix_web::http::header::LOCATION;
use actix_web::web::{self, Data, Form, Path, Query};
use actix_web::{HttpRequest, HttpResponse};
use maud::{Markup, html};
use serde::Deserialize;
use telltale_domain::users::Role;

use super::auth::{SignedIn, csrf_field, nav, not_found_page};
use super::keys::{ClientForm, client_action, client_picker, managed, shown_once, time};
use super::page_with;
use crate::api::ApiError;
use crate::app::App;
use crate::users::{LINK_LIFETIME, Person};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/people", web::get().to(people_page));
    cfg.route("/people", web::post().to(add));
    cfg.route("/people/{name}/link", web::post().to(link));
    cfg.route("/people/{name}/remove", web::post().to(remove));
}

#[derive(Debug, Deserialize)]
pub struct ClientQuery {
    client: Option<String>,
}

/// Where a sign-in link points: the configured public address, else the address this request
/// came to.
fn base_url(app: &App, req: &HttpRequest) -> String {
    match &app.config.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

async fn people_body(
    app: &App,
    req: &HttpRequest,
    person: &Person,
    clients: &[String],
    client: &str,
) -> Result<Markup, ApiError> {
    let directory = app.directory().await?;
    let now = app.clock.now();
    let people: Vec<_> =
        directory.users.iter().filter(|(_, u)| !u.removed && u.client.as_deref() == Some(client)).collect();
    Ok(html! {
        (nav(req, person))
        h1 { "People of " (client) }
        (client_picker("/people", clients, client))
        p.sub { "A viewer sees the client's monitors; an admin also manages its keys and people. Operators, who see every client, are added on the command line." }
        table #people {
            thead { tr { th { "Name" } th { "Role" } th { "Password" } th { "Locked until" } th {} } }
            tbody {
                @for (name, user) in &people {
                    tr data-person=(name) {
                        td { (name) }
                        td { (user.role.as_str()) }
                        td { @if user.password_hash.is_some() { "set" } @else { span.muted { "waiting for their link" } } }
                        td { @if let Some(until) = user.locked_until.filter(|u| *u > now) { (time(Some(until))) } }
                        td {
                            (client_action(req, &format!("/people/{name}/link"), client, "New sign-in link"))
                            @if name.as_str() != person.name {
                                (client_action(req, &format!("/people/{name}/remove"), client, "Remove"))
                            }
                        }
                    }
                }
            }
        }
        h2 { "Add a person" }
        form #new-person method="post" action="/people" {
            (csrf_field(req))
            input type="hidden" name="client" value=(client);
            label { "Name " input name="name" required autocomplete="off"; }
            label { "Role " select name="role" {
                option value="viewer" selected { "viewer" }
                option value="admin" { "admin" }
            } }
            button type="submit" { "Add" }
        }
    })
}

async fn people_page(
    app: Data<App>,
    req: HttpRequest,
    SignedIn(person): SignedIn,
    query: Query<ClientQuery>,
) -> Result<HttpResponse, ApiError> {
    let Some((clients, client)) = managed(&app, &person, query.client.as_deref()).await? else {
        return Ok(not_found_page());
    };
    Ok(page_with("People", people_body(&app, &req, &person, &clients, &client).await?, false))
}

/// The page again, with a one-time link (shown once) or a problem above the list.
async fn answer(
    app: &App,
    req: &HttpRequest,
    person: &Person,
    (clients, client): (Vec<String>, String),
    outcome: Result<(String, String), ApiError>,
) -> Result<HttpResponse, ApiError> {
    let list = people_body(app, req, person, &clients, &client).await?;
    let shown = outcome.map(|(name, token)| {
        html! {
            h2 { "A sign-in link for " (name) }
            p.alert { "Send it to them now: it is shown only this once, works once, within "
                (LINK_LIFETIME.num_hours()) " h, and lets them choose a password." }
            p.key #sign-in-link { (base_url(app, req)) "/welcome?token=" (token) }
        }
    });
    Ok(shown_once("People", shown, list))
}

#[derive(Debug, Deserialize)]
pub struct AddForm {
    client: String,
    name: String,
    role: String,
}

async fn add(
    app: Data<App>,
    req: HttpRequest,
    SignedIn(person): SignedIn,
    form: Form<AddForm>,
) -> Result<HttpResponse, ApiError> {
    let Some(managed) = managed(&app, &person, Some(&form.client)).await? else {
        return Ok(not_found_page());
    };
    let name = form.name.trim().to_lowercase();
    let by = format!("user:{}", person.name);
    let outcome = async {
        let role = Role::parse(&form.role)
            .filter(|r| *r != Role::Operator)
            .ok_or_else(|| ApiError::unprocessable("invalid_value", "the role is viewer or admin"))?;
        app.add_user(&name, Some(&form.client), role, &by).await?;
        let token = app.issue_sign_in_link(&name, &by).await?;
        tracing::info!(user = %name, by = %by, "added a person");
        Ok((name.clone(), token.expose().to_string()))
    }
    .await;
    answer(&app, &req, &person, managed, outcome).await
}

/// The person `name` of `client`, when `person` manages that client.
async fn of_client(
    app: &App,
    person: &Person,
    client: &str,
    name: &str,
) -> Result<Option<(Vec<String>, String)>, ApiError> {
    let Some(managed) = managed(app, person, Some(client)).await? else { return Ok(None) };
    let directory = app.directory().await?;
    let theirs = directory.users.get(name).is_some_and(|u| !u.removed && u.client.as_deref() == Some(client));
    Ok(theirs.then_some(managed))
}

async fn link(
    app: Data<App>,
    req: HttpRequest,
    SignedIn(person): SignedIn,
    name: Path<String>,
    form: Form<ClientForm>,
) -> Result<HttpResponse, ApiError> {
    let Some(managed) = of_client(&app, &person, &form.client, &name).await? else {
        return Ok(not_found_page());
    };
    let by = format!("user:{}", person.name);
    let outcome = async {
        let token = app.issue_sign_in_link(&name, &by).await?;
        Ok((name.to_string(), token.expose().to_string()))
    }
    .await;
    answer(&app, &req, &person, managed, outcome).await
}

async fn remove(
    app: Data<App>,
    req: HttpRequest,
    SignedIn(person): SignedIn,
    name: Path<String>,
    form: Form<ClientForm>,
) -> Result<HttpResponse, ApiError> {
    let Some(managed) = of_client(&app, &person, &form.client, &name).await? else {
        return Ok(not_found_page());
    };
    if *name == person.name {
        let refused = ApiError::unprocessable("invalid_value", "you cannot remove yourself; ask another admin");
        return answer(&app, &req, &person, managed, Err(refused)).await;
    }
    app.remove_user(&name, &format!("user:{}", person.name)).await?;
    tracing::info!(user = %name, by = %person.name, "removed a person");
    Ok(HttpResponse::SeeOther().insert_header((LOCATION, format!("/people?client={}", form.client))).finish())
}
