//! The dashboard's hosts: every host the monitors report from, which of its monitors are silent,
//! and its host alert (most of its monitors fell silent together); a page per host.

use actix_web::web::{Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use telltale_domain::host::host_name;
use telltale_domain::ids;
use telltale_projections::models::alerts;
use telltale_projections::models::hosts::{self, HostView};

use super::auth::{self, SignedIn};
use super::{badge, page, path_segment, since};
use crate::api::ApiError;
use crate::app::App;

pub fn host_link(client: &str, host: &str) -> String {
    format!("/hosts/{client}/{}", path_segment(host))
}

pub fn section(rows: &[HostView], now: DateTime<Utc>) -> Markup {
    html! {
        @if !rows.is_empty() {
            h2 { "Hosts" }
            table #hosts {
                thead { tr { th { "Client" } th { "Host" } th { "Status" } th { "Monitors" } th { "Silent" } th { "Host alert" } } }
                tbody {
                    @for h in rows {
                        @let status = if h.state.alert.is_some() { "silent" } else { "up" };
                        tr data-host=(h.host) data-status=(status) {
                            td { (h.client) }
                            td { a href=(host_link(&h.client, &h.host)) { (h.host) } }
                            td { (badge(if status == "silent" { "down" } else { "up" })) }
                            td { (h.state.members.len()) }
                            td { (h.state.silent().count()) }
                            td {
                                @if let Some(a) = &h.state.alert {
                                    div.alert { "host silent since " (since(Some(a.opened_at), now)) ": " (a.monitors.iter().cloned().collect::<Vec<_>>().join(", ")) }
                                } @else { span.muted { "none" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub async fn host(
    app: Data<App>,
    req: HttpRequest,
    SignedIn(person): SignedIn,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (client, raw) = path.into_inner();
    if ids::validate_client_name(&client).is_err() || !person.sees(&client) {
        return Ok(auth::not_found_page());
    }
    let Some(host) = host_name(&raw) else { return Ok(auth::not_found_page()) };
    app.consistent().await;
    let now = app.clock.now();
    let Some(view) = hosts::get(&app.read.pool, &client, host).await? else { return Ok(auth::not_found_page()) };
    let alert_rows = alerts::list_for_host(&app.read.pool, Some(&client), None, host, 20).await?;
    let status = if view.state.alert.is_some() { "down" } else { "up" };
    Ok(page(
        &format!("Host {host}"),
        html! {
            (auth::nav(&req, &person))
            p { a href="/" { "← all monitors" } }
            h1 { "Host " (host) " " (badge(status)) }
            p.sub { (client) " · " (view.state.members.len()) " monitors, " (view.state.silent().count()) " silent" }
            h2 { "Monitors" }
            table #members {
                thead { tr { th { "Monitor" } th { "Silent since" } th { "Its alert" } } }
                tbody { @for (slug, m) in &view.state.members { tr data-monitor=(slug) {
                    td { a href={ "/monitors/" (client) "/" (slug) } { (slug) } }
                    td { @if let Some(s) = &m.silence { (since(Some(s.since), now)) } @else { span.muted { "—" } } }
                    td { @match &m.silence {
                        Some(s) if s.released => { "sent on its own" }
                        Some(s) if s.incident.is_some() => { "inhibited by the host alert" }
                        Some(_) => { "open" }
                        None => { span.muted { "—" } }
                    } }
                } } }
            }
            h2 { "Host alerts" }
            @if alert_rows.is_empty() { p.muted { "No host alerts." } } @else {
                table #host-alerts { thead { tr { th { "State" } th { "Opened" } th { "Resolved" } th { "Monitors" } th { "Message" } } }
                    tbody { @for a in &alert_rows { tr {
                        td { (a.state) } td { (since(Some(a.opened_at), now)) } td { (since(a.resolved_at, now)) }
                        td { (a.monitors.join(", ")) } td { (a.message) }
                    } } } }
            }
        },
    ))
}
