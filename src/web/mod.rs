//! The dashboard: every monitor on every server on one page, server-rendered, refreshing
//! itself. No scripts or styles from anywhere else.

use actix_web::web::{self, Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use telltale_domain::ids;
use telltale_domain::monitor::MonitorStatus;
use telltale_projections::models::{alerts, history, monitors, runs};

use crate::api::ApiError;
use crate::api::dto::MonitorOut;
use crate::app::App;
use auth::SignedIn;

pub mod auth;
mod channels;
mod hosts;
mod keys;
mod people;

const REFRESH_SECONDS: u32 = 5;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index));
    cfg.route("/favicon.ico", web::get().to(favicon));
    cfg.route("/favicon.svg", web::get().to(favicon));
    cfg.route("/monitors/{client}/{slug}", web::get().to(monitor));
    cfg.route("/monitors/{client}/{slug}/alerts/{alert_id}/acknowledge", web::post().to(acknowledge));
    cfg.route("/hosts/{client}/{host}", web::get().to(hosts::host));
    auth::configure(cfg);
    keys::configure(cfg);
    people::configure(cfg);
}

/// One path segment, percent-encoded (a host name may hold any character).
pub fn path_segment(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// "12 s ago", "3 min ago", "2 h ago", "4 d ago".
pub fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds().max(0);
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

fn since(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    match at {
        Some(at) => {
            html! { time datetime=(at.to_rfc3339()) data-since=(at.timestamp_millis()) title=(at.to_rfc3339()) { (ago(at, now)) } }
        }
        None => html! { span.muted { "never" } },
    }
}

/// "in 25 s", "in 3 min", "in 2 h", "in 4 d" ("now" once it has passed).
pub fn until(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (then - now).num_seconds();
    match secs {
        ..=0 => "now".into(),
        1..=59 => format!("in {secs} s"),
        60..=3599 => format!("in {} min", secs / 60),
        3600..=86_399 => format!("in {} h", secs / 3600),
        _ => format!("in {} d", secs / 86_400),
    }
}

/// A time to come: the UTC time, and how long until it.
fn when(at: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) { (at.format("%Y-%m-%d %H:%M:%S UTC")) }
        " " span.muted { "(" (until(at, now)) ")" }
    }
}

fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

const STYLE: &str = r#"
:root { font-family: system-ui, sans-serif; color: #1d2330; background: #f6f7f9; }
body { margin: 0 auto; max-width: 80rem; padding: 1.5rem; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
.sub { color: #5b6475; margin: 0 0 1.25rem; }
table { width: 100%; border-collapse: collapse; background: #fff; border-radius: 8px; overflow: hidden; box-shadow: 0 1px 2px #0001; }
th, td { text-align: left; padding: .55rem .75rem; border-bottom: 1px solid #eceef2; vertical-align: top; }
th { font-size: .8rem; text-transform: uppercase; letter-spacing: .03em; color: #5b6475; background: #fafbfc; }
a { color: #2450b2; text-decoration: none; } a:hover { text-decoration: underline; }
.badge { display: inline-block; padding: .1rem .5rem; border-radius: 99px; font-size: .8rem; font-weight: 600; }
.up { background: #d9f5e3; color: #11663a; } .late { background: #fff1cc; color: #7a5200; }
.down { background: #ffe0e0; color: #a31b1b; } .failing { background: #ffe8d6; color: #9a3d00; }
.retrying { background: #fff1cc; color: #7a5200; }
.paused, .new { background: #eceef2; color: #4b5363; } .hung { background: #f3e0ff; color: #6a1b9a; }
.early { background: #e0efff; color: #1b4f9a; } .running { background: #e0efff; color: #1b4f9a; }
.completed { background: #d9f5e3; color: #11663a; } .failed { background: #ffe8d6; color: #9a3d00; }
.timed_out { background: #f3e0ff; color: #6a1b9a; } .flapping { background: #ffe0f0; color: #9a1b5c; }
.held { background: #eceef2; color: #4b5363; } form.inline { display: inline; margin: 0; }
button { font: inherit; font-size: .8rem; padding: .15rem .6rem; border: 1px solid #c7ccd6; border-radius: 6px; background: #fff; cursor: pointer; }
.alert { color: #a31b1b; font-weight: 600; } .muted { color: #8a93a3; }
.summary > span { margin-right: 1rem; } pre { white-space: pre-wrap; margin: 0; font-size: .8rem; }
nav { margin-bottom: 1rem; } form.inline { display: inline; margin-left: .5rem; }
label { display: inline-block; margin-right: 1rem; } input, select, button { font: inherit; }
.key { font-family: monospace; background: #fff; padding: .5rem; border: 1px solid #ccc; word-break: break-all; }
"#;

/// The icon: a heartbeat line on a round badge. Pages name it inline (a data URI, so they
/// cost no request); `/favicon.ico` serves it too, for browsers that ask anyway (on the JSON
/// pages, say), so that none logs a 404.
pub const FAVICON_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" r="15" fill="#2450b2"/><path d="M4 17h6l3-7 4 13 3-8 2 2h6" fill="none" stroke="#fff" stroke-width="2.5" stroke-linecap="round" stroke-linejoin="round"/></svg>"##;

async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .body(FAVICON_SVG)
}

fn favicon_link() -> String {
    format!(
        "data:image/svg+xml,{}",
        percent_encoding::utf8_percent_encode(FAVICON_SVG, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// Keeps "… ago" current between refreshes.
const SCRIPT: &str = r#"
function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll('[data-since]')) {
    const s = Math.max(0, Math.floor((now - Number(el.dataset.since)) / 1000));
    el.textContent = s < 60 ? s + ' s ago' : s < 3600 ? Math.floor(s / 60) + ' min ago'
      : s < 86400 ? Math.floor(s / 3600) + ' h ago' : Math.floor(s / 86400) + ' d ago';
  }
}
setInterval(tick, 1000);
// Every POST form carries the CSRF token (the tt_csrf cookie), also forms without the field.
document.addEventListener('submit', function (e) {
  const form = e.target;
  if ((form.method || '').toLowerCase() !== 'post') return;
  const m = document.cookie.match(/(?:^|; )tt_csrf=([^;]+)/);
  if (!m) return;
  let field = form.querySelector('input[name=csrf]');
  if (!field) { field = document.createElement('input'); field.type = 'hidden'; field.name = 'csrf'; form.appendChild(field); }
  field.value = m[1];
}, true);
"#;

fn page(title: &str, body: Markup) -> HttpResponse {
    page_with(title, body, true)
}

/// A page; `refresh` makes it reload itself (not for pages with forms).
pub fn page_with(title: &str, body: Markup, refresh: bool) -> HttpResponse {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh { meta http-equiv="refresh" content=(REFRESH_SECONDS); }
                title { (title) " · telltale" }
                link rel="icon" type="image/svg+xml" href=(favicon_link());
                style { (PreEscaped(STYLE)) }
            }
            body { (body) script { (PreEscaped(SCRIPT)) } }
        }
    };
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(markup.into_string())
}

async fn index(app: Data<App>, req: HttpRequest, SignedIn(person): SignedIn) -> Result<HttpResponse, ApiError> {
    app.consistent().await;
    let now = app.clock.now();
    let mut rows = monitors::list(&app.read.pool, person.client.as_deref()).await?;
    rows.retain(|v| person.sees(&v.state.client));
    let views: Vec<(String, MonitorOut)> =
        rows.iter().map(|v| (v.state.client.clone(), MonitorOut::of(&v.state, now, app.started_at))).collect();
    let count = |s: MonitorStatus| views.iter().filter(|(_, m)| m.status == s.as_str()).count();
    let open_alerts = views.iter().map(|(_, m)| m.alerts.len()).sum::<usize>();
    let mut channel_rows = telltale_projections::models::notifications::all_channels(&app.read.pool).await?;
    channel_rows.retain(|c| person.sees(&c.client));
    let mut host_rows = telltale_projections::models::hosts::list(&app.read.pool, None).await?;
    host_rows.retain(|h| person.sees(&h.state.client));
    let host_alerts = host_rows.iter().filter(|h| h.state.alert.is_some()).count();
    Ok(page(
        "Monitors",
        html! {
            (auth::nav(&req, &person))
            h1 { "telltale" }
            p.sub.summary {
                span { (views.len()) " monitors" }
                span { (count(MonitorStatus::Up)) " up" }
                span { (count(MonitorStatus::Late)) " late" }
                span { (count(MonitorStatus::Down)) " down" }
                span { (count(MonitorStatus::Retrying)) " retrying" }
                span { (count(MonitorStatus::Failing)) " failing" }
                span { (count(MonitorStatus::Hung)) " hung" }
                span { (open_alerts) " active alerts" }
                @if host_alerts > 0 { span.alert { (host_alerts) " hosts silent" } }
            }
            @if views.is_empty() {
                p { "No monitors yet. Create one with " code { "POST /v1/monitors" } "; see " a href="/openapi.json" { "the API" } "." }
            } @else {
                table #monitors {
                    thead { tr { th { "Client" } th { "Monitor" } th { "Status" } th title="The last heartbeat or run event" { "Last signal" } th { "Host" } th { "Last run" } th { "Active alerts" } } }
                    tbody {
                        @for (client, m) in &views {
                            tr data-monitor=(m.slug) data-status=(m.status) {
                                td { (client) }
                                td { a href={ "/monitors/" (client) "/" (m.slug) } { (m.name) } br; span.muted { (m.slug) } }
                                td { (badge(&m.status)) }
                                td { (since(m.last_signal_at, now)) }
                                td { @if let Some(host) = &m.host {
                                    a href=(hosts::host_link(client, host)) { (host) }
                                } @else { "—" } }
                                td {
                                    @if let Some(run) = &m.last_run {
                                        (run.outcome) @if let Some(code) = run.exit_code { " (exit " (code) ")" }
                                        br; (since(Some(run.finished_at), now))
                                    } @else { span.muted { "—" } }
                                }
                                td {
                                    @for alert in &m.alerts {
                                        div.alert { (alert.cause) " since " (since(Some(alert.opened_at), now))
                                            @if let Some(held) = &alert.held { " " span.badge.held { "held: " (held) } } }
                                    }
                                    @if m.alerts.is_empty() { span.muted { "none" } }
                                    @if let Some(s) = &m.silenced { div.muted { "silenced until " (s.until.format("%H:%M UTC")) } }
                                    @if !m.maintenance.is_empty() { div.muted { "in maintenance" } }
                                }
                            }
                        }
                    }
                }
            }
            (hosts::section(&host_rows, now))
            (channels::section(&channel_rows, now))
        },
    ))
}

async fn monitor(
    app: Data<App>,
    req: HttpRequest,
    SignedIn(person): SignedIn,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (client, slug) = path.into_inner();
    if ids::validate_client_name(&client).is_err() || ids::validate_slug(&slug).is_err() || !person.sees(&client) {
        return Ok(auth::not_found_page());
    }
    app.consistent().await;
    let now = app.clock.now();
    let Some(view) = monitors::get(&app.read.pool, &client, &slug).await? else {
        return Ok(auth::not_found_page());
    };
    let m = MonitorOut::of(&view.state, now, app.started_at);
    let events = history::page(&app.read.pool, &client, &slug, None, None, 50).await?;
    let alert_rows = alerts::list(&app.read.pool, Some(&client), None, Some(&slug), 20).await?;
    let run_rows = runs::page(&app.read.pool, &client, &slug, None, 20).await?;
    Ok(page(
        &m.name,
        html! {
            (auth::nav(&req, &person))
            p { a href="/" { "← all monitors" } }
            h1 { (m.name) " " (badge(&m.status)) }
            p.sub { (client) " / " (m.slug) " · " (m.schedule.describe()) ", grace " (m.grace)
                @if let Some(host) = &m.host { " · host " (host) } }
            p.summary #last {
                span { "Last signal: " (since(m.last_signal_at, now)) }
                span #last-run { "Last run: "
                    @if let Some(run) = &m.last_run {
                        span class={ "badge " (run.outcome) } { (run.outcome) }
                        @if let Some(code) = run.exit_code { " exit " (code) }
                        @if let Some(d) = run.duration_seconds { ", took " (format_duration((d * rust_decimal::Decimal::from(1000)).trunc().try_into().unwrap_or(0))) }
                        ", finished " (since(Some(run.finished_at), now))
                    } @else { span.muted { "none yet" } }
                }
                @if let Some(max) = &m.max_runtime { span { "Max runtime: " (max) } }
                @if m.open_runs > 0 { span { "Running: " (m.open_runs) @if m.hung_runs > 0 { " (" (m.hung_runs) " hung)" } } }
            }
            @if let Some(until) = m.retry_until {
                p.summary #retrying { span.badge.retrying { "retrying" }
                    " a run failed; an alert opens " (when(until, now)) " unless a run succeeds first" }
            }
            p.summary #expected {
                span { "Next expected: " @if let Some(t) = m.next_expected.first() { (when(*t, now)) } @else { "—" } }
                span { "Alert if silent by: " @if let Some(d) = m.next_deadline_at { (when(d, now)) } @else { span.muted { "nothing expected yet" } } }
            }
            @if m.next_expected.len() > 1 {
                p.summary.muted #upcoming { "Then: "
                    @for t in m.next_expected.iter().skip(1) { span { time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) { (t.format("%Y-%m-%d %H:%M:%S UTC")) } } }
                }
            }
            @if let Some(s) = &m.silenced {
                p.summary #silenced { span.badge.held { "silenced" } " until " (s.until.format("%Y-%m-%d %H:%M:%S UTC"))
                    @if let Some(reason) = &s.reason { " · " (reason) } " · alerts are held" }
            }
            @for w in &m.maintenance {
                p.summary.maintenance { span.badge.held { "in maintenance" } " until " (w.until.format("%Y-%m-%d %H:%M:%S UTC"))
                    @if !w.reason.is_empty() { " · " (w.reason) } " · alerts are held" }
            }
            p.summary #policy { "Alert policy: " (policy_summary(&m.effective_policy)) }
            h2 { "Alerts" }
            @if alert_rows.is_empty() { p.muted { "No alerts." } } @else {
                table #alerts { thead { tr { th { "Cause" } th { "State" } th { "Opened" } th { "Resolved" } th { "Message" } th { "" } } }
                    tbody { @for a in &alert_rows { tr data-alert=(a.alert_id) {
                        td { (a.cause) } td { (a.state)
                            @if let Some(held) = &a.held { " " span.badge.held { "held: " (held) } }
                            @if a.quiet { " " span.muted { "(never announced)" } } }
                        td { (since(Some(a.opened_at), now)) }
                        td { (since(a.resolved_at, now)) }
                        td { (a.message)
                            @if a.inhibited_by.is_some() {
                                br; span.muted { @if a.released_at.is_some() { "sent on its own after its host came back" }
                                    @else { "inhibited: its host went silent (see the host alert)" } }
                            } }
                        td {
                            @if let Some(at) = a.acknowledged_at {
                                span.muted { "acknowledged " (since(Some(at), now))
                                    @if let Some(by) = &a.acknowledged_by { " by " (by) } }
                            } @else if a.state == "open" {
                                form.inline method="post" action={ "/monitors/" (client) "/" (m.slug) "/alerts/" (a.alert_id) "/acknowledge" } {
                                    (auth::csrf_field(&req))
                                    button type="submit" { "Acknowledge" }
                                }
                            }
                        }
                    } } } }
            }
            h2 { "Runs" }
            @if run_rows.is_empty() { p.muted { "No runs yet." } } @else {
                table #runs { thead { tr { th { "Run" } th { "Status" } th { "Started" } th { "Duration" } th { "Exit" } th { "Host" } th { "Output (tail)" } } }
                    tbody { @for r in &run_rows { tr data-status=(r.status) {
                        td { code { (r.run_id) } }
                        td { (badge(&r.status)) }
                        td { @if r.started_at.is_some() { (since(r.started_at, now)) } @else { span.muted { "unknown" } } }
                        td { @if let Some(ms) = r.duration_ms { (format_duration(ms)) } @else { span.muted { "—" } } }
                        td { @if let Some(code) = r.exit_code { (code) } }
                        td { (r.host.as_deref().unwrap_or("")) }
                        td { pre { (tail(r.output.as_deref().unwrap_or(""), 300)) } }
                    } } } }
            }
            h2 { "Recent events" }
            table { thead { tr { th { "When" } th { "Event" } th { "Run" } th { "Details" } } }
                tbody { @for e in &events { tr {
                    td { (since(Some(e.at), now)) } td { (e.event_type) } td { (e.run_id.as_deref().unwrap_or("")) }
                    td { pre { (details(&e.data)) } }
                } } } }
        },
    ))
}

/// The policy in force, in one line.
fn policy_summary(p: &crate::api::dto::AlertPolicyOut) -> String {
    let mut parts = Vec::new();
    let tolerance = match &p.failure_tolerance {
        Some(crate::api::dto::FailureToleranceInput::Consecutive(n)) => format!("failure after {n} failed run(s)"),
        Some(crate::api::dto::FailureToleranceInput::Ratio(r)) => {
            let window = match &r.window {
                crate::api::dto::DurationInput::Text(t) => t.clone(),
                crate::api::dto::DurationInput::Seconds(s) => format!("{s}s"),
            };
            format!("failure when {} of the runs in {window} failed", r.ratio)
        }
        None => String::new(),
    };
    parts.push(tolerance);
    let field = |v: &Option<String>| v.clone().unwrap_or_default();
    parts.push(format!("retry window {}", field(&p.retry_window)));
    parts.push(format!("missed tolerance {}", p.missed_tolerance.unwrap_or_default()));
    parts.push(format!("recovery after {}", p.recovery_threshold.unwrap_or(1)));
    if p.realert_every.as_deref().is_some_and(|r| r != "0s") {
        parts.push(format!("reminders every {}", field(&p.realert_every)));
    }
    if let Some(to) = p.escalate_to.as_ref().filter(|t| !t.is_empty()) {
        parts.push(format!("escalates after {} to {}", field(&p.escalate_after), to.join(", ")));
    }
    if p.flapping_threshold.unwrap_or_default() > 0 {
        parts.push(format!(
            "flapping above {} changes in {}",
            p.flapping_threshold.unwrap_or_default(),
            field(&p.flapping_window)
        ));
    }
    parts.retain(|p| !p.is_empty());
    parts.join(" · ")
}

/// The dashboard's acknowledge button: acknowledges in the name of who is signed in, then back
/// to the monitor's page. Anyone who sees the client's monitors may take one of its alerts
/// (an on-call act, not a change of configuration); the CSRF guard covers the form.
async fn acknowledge(
    app: Data<App>,
    SignedIn(person): SignedIn,
    path: Path<(String, String, uuid::Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (client, slug, alert_id) = path.into_inner();
    if ids::validate_client_name(&client).is_err() || ids::validate_slug(&slug).is_err() || !person.sees(&client) {
        return Ok(auth::not_found_page());
    }
    crate::api::alerts::acknowledge_alert(&app, &client, alert_id, Some(person.name.clone()), None).await?;
    Ok(HttpResponse::SeeOther().insert_header(("Location", format!("/monitors/{client}/{slug}"))).finish())
}

/// "850 ms", "12.3 s", "4 min 05 s", "2 h 03 min".
fn format_duration(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {:02} s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{} h {:02} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// The last `max` bytes of a text, cut at a character boundary.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

fn details(data: &serde_json::Value) -> String {
    let mut shown = data.clone();
    if let Some(obj) = shown.as_object_mut() {
        for key in ["at", "run_id"] {
            obj.remove(key);
        }
        if let Some(out) = obj.get_mut("output")
            && let Some(text) = out.as_str()
        {
            *out = tail(text, 400).into();
        }
    }
    if shown.as_object().is_some_and(|o| o.is_empty()) { String::new() } else { shown.to_string() }
}
