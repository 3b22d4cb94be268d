//! Notification channels and the durable outbox. An alert transition becomes one outbox row per
//! channel of its client; the dispatcher's attempts come back as events, which this projection
//! folds, so the outbox is as rebuildable as every other read model.
//!
//! Host correlation: a host alert is notified like a monitor's. The `missed` and `flapping`
//! openings of a member of a host that could correlate (at least `host::MIN_SILENT` members)
//! wait `host::HOLD` before they are due, so that they are not sent alone just before their host
//! alert opens (a host down again and again makes its members flap with their silence: that
//! flapping is inhibited with the silence); an opening that a host alert inhibits before it was
//! attempted becomes `inhibited` and is never sent, nor is its resolution (unless it is
//! released: then it is sent after all, in its turn).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use telltale_domain::DomainEvent;
use telltale_domain::channel::{LastEvent, routes};
use telltale_domain::client::ClientEvent;
use telltale_domain::host::{self, HOST_SILENT, HostEvent};
use telltale_domain::ids::streams;
use telltale_domain::monitor::{AlertCause, MonitorEvent};
use telltale_domain::notification::{NotificationEvent, Transition, notification_id};
use telltale_domain::policy::AlertPolicy;
use uuid::Uuid;

use super::read_time;
use crate::log::fmt_time;
use crate::{Envelope, Projection};

pub struct NotificationsProjection;

/// The body of a notification, without the link (added when sent), for the alert events that
/// people hear of: an opening (not a held one), an announcement of a held one, a resolution
/// (not a quiet one), a reminder, an escalation, an acknowledgement. Pure.
pub fn payload(client: &str, slug: &str, event: &MonitorEvent, channel_id: Uuid) -> Option<(Transition, Uuid, Value)> {
    let (transition, alert_id, cause, opened_at, resolved_at, message) = match event {
        MonitorEvent::AlertOpened(e) if e.held.is_none() => {
            (Transition::Opened, e.alert_id, e.cause, e.opened_at, None, e.message.clone())
        }
        MonitorEvent::AlertAnnounced(e) => {
            (Transition::Opened, e.alert_id, e.cause, e.opened_at, None, e.message.clone())
        }
        MonitorEvent::AlertResolved(e) if !e.quiet => {
            (Transition::Resolved, e.alert_id, e.cause, e.opened_at, Some(e.resolved_at), e.message.clone())
        }
        MonitorEvent::AlertReminded(e) => {
            (Transition::Reminded(e.reminder), e.alert_id, e.cause, e.opened_at, None, e.message.clone())
        }
        MonitorEvent::AlertEscalated(e) => {
            (Transition::Escalated, e.alert_id, e.cause, e.opened_at, None, e.message.clone())
        }
        MonitorEvent::AlertAcknowledged(e) => {
            let by = e.by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default();
            let note = e.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
            (
                Transition::Acknowledged,
                e.alert_id,
                e.cause,
                e.opened_at,
                None,
                format!("{slug}: alert acknowledged{by}{note}"),
            )
        }
        _ => return None,
    };
    // An acknowledged alert is still open: `acknowledged_at` says it was taken.
    let state = if transition == Transition::Resolved { "resolved" } else { "open" };
    let mut body = json!({
        "notification_id": notification_id(alert_id, transition, channel_id),
        "transition": transition.as_str(),
        "alert_id": alert_id,
        "client": client,
        "monitor": slug,
        "kind": "monitor",
        "cause": cause,
        "state": state,
        "message": message,
        "opened_at": fmt_time(opened_at),
        "resolved_at": resolved_at.map(fmt_time),
    });
    // Every payload has both (null until someone takes the alert; filled in when sent).
    body["acknowledged_at"] = Value::Null;
    body["acknowledged_by"] = Value::Null;
    match event {
        MonitorEvent::AlertReminded(e) => body["reminder"] = e.reminder.into(),
        MonitorEvent::AlertEscalated(e) => body["escalated_to"] = json!(e.channels),
        MonitorEvent::AlertAcknowledged(e) => {
            body["acknowledged_at"] = json!(fmt_time(e.at));
            body["acknowledged_by"] = json!(e.by);
            body["note"] = json!(e.note);
        }
        _ => {}
    }
    Some((transition, alert_id, body))
}

/// The body of a host alert's notification, without the link (added when sent). Its `monitor`
/// is `host:<host>` (a slug never holds `:`), its `kind` is `host`, and it names the `host` and
/// its silent `monitors`. Pure.
pub fn host_payload(
    client: &str,
    host: &str,
    event: &HostEvent,
    monitors: &[String],
    channel_id: Uuid,
) -> Option<(Transition, Uuid, Value)> {
    let (transition, alert_id, opened_at, resolved_at, message) = match event {
        HostEvent::HostAlertOpened(e) => (Transition::Opened, e.alert_id, e.opened_at, None, &e.message),
        HostEvent::HostAlertResolved(e) => {
            (Transition::Resolved, e.alert_id, e.opened_at, Some(e.resolved_at), &e.message)
        }
        _ => return None,
    };
    let body = json!({
        "notification_id": notification_id(alert_id, transition, channel_id),
        "transition": transition.as_str(),
        "alert_id": alert_id,
        "client": client,
        "monitor": super::alerts::host_alert_slug(host),
        "kind": "host",
        "host": host,
        "monitors": monitors,
        "cause": HOST_SILENT,
        "state": if transition == Transition::Opened { "open" } else { "resolved" },
        "message": message,
        "opened_at": fmt_time(opened_at),
        "resolved_at": resolved_at.map(fmt_time),
    });
    Some((transition, alert_id, body))
}

/// When a transition recorded at `recorded_at` becomes due: at once, or `host::HOLD` after it
/// was recorded for an opening that a host alert may be about to cover: the `missed` or
/// `flapping` opening of a member of a host that could correlate. (Whether a flapping alert
/// opened with a silence is the host's to say, just after; a member flapping on failed runs
/// waits the hold for nothing, and is sent then.) The hold runs from the recording, not from
/// the deadline, so that a detector running late (or a clock that jumps) never leaves the host
/// less time to decide. Pure.
pub fn due_at(event: &MonitorEvent, host_members: Option<i64>, recorded_at: DateTime<Utc>) -> DateTime<Utc> {
    let held = matches!(event, MonitorEvent::AlertOpened(e) if matches!(e.cause, AlertCause::Missed | AlertCause::Flapping))
        && host_members.is_some_and(|n| n >= host::MIN_SILENT as i64);
    if held { recorded_at.max(event.at()) + host::HOLD.to_delta() } else { event.at() }
}

/// What the outbox remembers of a monitor, to route its alerts and word their messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonitorFacts {
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub last_event: Option<LastEvent>,
    /// Channels that hear of this monitor's alerts only once they escalate (`escalate_to`).
    pub escalation_only: Vec<String>,
}

/// Most characters of a run's output a message quotes.
pub const OUTPUT_QUOTE: usize = 500;

/// The last `max` characters of `text`, marked with `…` when cut.
pub fn tail_chars(text: &str, max: usize) -> String {
    let text = text.trim_end();
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    format!("…{}", text.chars().skip(count - max).collect::<String>())
}

/// The signal a monitor's process sent, as a message quotes it. Pure.
pub fn last_event_of(event: &MonitorEvent) -> Option<LastEvent> {
    let (kind, at, details, run) = match event {
        MonitorEvent::HeartbeatReceived(e) => ("heartbeat", e.at, &e.details, None),
        MonitorEvent::RunStarted(e) => ("started", e.at, &e.details, None),
        MonitorEvent::RunProgressed(e) => ("running", e.at, &e.details, None),
        MonitorEvent::RunCompleted(e) => ("completed", e.at, &e.details, Some(e)),
        MonitorEvent::RunFailed(e) => ("failed", e.at, &e.details, Some(e)),
        _ => return None,
    };
    let output = run.and_then(|r| r.output.as_deref()).filter(|o| !o.trim().is_empty());
    let message = details.message.as_deref().or(output).map(|m| tail_chars(m, OUTPUT_QUOTE));
    Some(LastEvent {
        kind: kind.into(),
        at,
        host: details.host.clone(),
        run_id: event.run_id().map(str::to_string),
        exit_code: run.and_then(|r| r.exit_code),
        duration_ms: run.and_then(|r| r.duration_ms),
        message,
    })
}

/// Adds to a notification's body what it says about its monitor: the name, tags, the last
/// signal and, for a resolution, how long the alert lasted. Pure.
pub fn enrich(body: &mut Value, facts: &MonitorFacts) {
    let Some(obj) = body.as_object_mut() else { return };
    obj.insert("monitor_name".into(), facts.name.clone().into());
    obj.insert("tags".into(), json!(facts.tags));
    if let Some(last) = &facts.last_event {
        obj.insert("last_event".into(), serde_json::to_value(last).unwrap_or(Value::Null));
    }
    let time = |key: &str| obj.get(key).and_then(Value::as_str).and_then(crate::log::parse_time);
    if let (Some(opened), Some(resolved)) = (time("opened_at"), time("resolved_at")) {
        obj.insert("duration_ms".into(), (resolved - opened).num_milliseconds().into());
    }
}

async fn monitor_facts(conn: &mut AnyConnection, client: &str, slug: &str) -> Result<MonitorFacts, sqlx::Error> {
    let row = sqlx::query(
        "SELECT name, tags, last_event, alert_policy, client_policy FROM rm_notify_monitors WHERE client = $1 AND slug = $2",
    )
        .bind(client)
        .bind(slug)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(MonitorFacts::default()) };
    let tags: String = row.try_get("tags")?;
    let last: Option<String> = row.try_get("last_event")?;
    let policy = |column: &str| -> Result<AlertPolicy, sqlx::Error> {
        let text: Option<String> = row.try_get(column)?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default())
    };
    Ok(MonitorFacts {
        name: Some(row.try_get("name")?),
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        last_event: last.and_then(|l| serde_json::from_str(&l).ok()),
        escalation_only: policy("alert_policy")?.over(&policy("client_policy")?).resolve().escalate_to,
    })
}

async fn save_last_events(
    conn: &mut AnyConnection,
    pending: &mut HashMap<(String, String), LastEvent>,
) -> Result<(), sqlx::Error> {
    for ((client, slug), last) in pending.drain() {
        sqlx::query("UPDATE rm_notify_monitors SET last_event = $1 WHERE client = $2 AND slug = $3")
            .bind(serde_json::to_string(&last).unwrap_or_default())
            .bind(client)
            .bind(slug)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// What kind of transition is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    /// An opening, an announcement or a reminder.
    Opening,
    Resolution,
    /// To the channels of these names.
    Escalation(&'a [String]),
    Acknowledgement,
}

impl<'a> Route<'a> {
    fn of(event: &'a MonitorEvent) -> Route<'a> {
        match event {
            MonitorEvent::AlertResolved(_) => Route::Resolution,
            MonitorEvent::AlertEscalated(e) => Route::Escalation(&e.channels),
            MonitorEvent::AlertAcknowledged(_) => Route::Acknowledgement,
            _ => Route::Opening,
        }
    }
}

/// The channels a transition of `alert_id` goes to:
/// - an opening or reminder: the client's channels whose tags match the monitor's (all of them
///   when a channel has no tags), except those kept for escalation, and every channel already
///   told of the alert;
/// - an escalation: the channels it names;
/// - a resolution: the same as an opening, and every channel that was told of it before,
///   whatever its tags say now; the resolution of an alert a host alert inhibited goes only to
///   the channels that were told of its opening;
/// - an acknowledgement: only the channels told of the alert.
async fn route(
    conn: &mut AnyConnection,
    client: &str,
    alert_id: Uuid,
    facts: &MonitorFacts,
    route: Route<'_>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let resolution = route == Route::Resolution;
    if resolution && inhibited(conn, alert_id).await? == Some(false) {
        let told: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT o.channel_id FROM rm_outbox o JOIN rm_channels c ON c.channel_id = o.channel_id
             WHERE o.alert_id = $1 AND o.state <> 'inhibited' AND c.removed_at IS NULL ORDER BY o.channel_id",
        )
        .bind(alert_id.to_string())
        .fetch_all(&mut *conn)
        .await?;
        return told.iter().map(|id| Uuid::parse_str(id).map_err(|e| sqlx::Error::Decode(Box::new(e)))).collect();
    }
    let rows = sqlx::query(
        "SELECT channel_id, name, tags FROM rm_channels WHERE client = $1 AND removed_at IS NULL ORDER BY channel_id",
    )
    .bind(client)
    .fetch_all(&mut *conn)
    .await?;
    let told: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT channel_id FROM rm_outbox WHERE alert_id = $1 AND state <> 'inhibited'")
            .bind(alert_id.to_string())
            .fetch_all(&mut *conn)
            .await?;
    let mut out = Vec::new();
    for row in rows {
        let id: String = row.try_get("channel_id")?;
        let name: String = row.try_get("name")?;
        let tags: String = row.try_get("tags")?;
        let tags: Vec<String> = serde_json::from_str(&tags).unwrap_or_default();
        let was_told = told.contains(&id);
        let routed = routes(&tags, &facts.tags) && !facts.escalation_only.contains(&name);
        let chosen = match route {
            Route::Escalation(names) => names.contains(&name),
            Route::Acknowledgement => was_told,
            Route::Opening | Route::Resolution => routed || was_told,
        };
        if chosen {
            out.push(Uuid::parse_str(&id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?);
        }
    }
    Ok(out)
}

/// When `alert_id` was acknowledged, and by whom, as its acknowledgement's notification said
/// (`None` when it was not, or no channel was told of it).
async fn acknowledgement(conn: &mut AnyConnection, alert_id: Uuid) -> Result<Option<(Value, Value)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT payload, created_at FROM rm_outbox WHERE alert_id = $1 AND transition = 'acknowledged'
         ORDER BY position LIMIT 1",
    )
    .bind(alert_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let body: Value = serde_json::from_str(&row.try_get::<String, _>("payload")?).unwrap_or(Value::Null);
    // An acknowledgement queued before its body carried the time: the row's (the event's) time.
    let at = match body.get("acknowledged_at").filter(|v| !v.is_null()) {
        Some(at) => at.clone(),
        None => json!(row.try_get::<String, _>("created_at")?),
    };
    Ok(Some((at, body.get("acknowledged_by").cloned().unwrap_or(Value::Null))))
}

/// Whether a host alert inhibited `alert_id`: `Some(released)`, or `None` when none did.
async fn inhibited(conn: &mut AnyConnection, alert_id: Uuid) -> Result<Option<bool>, sqlx::Error> {
    let released: Option<i64> = sqlx::query_scalar("SELECT released FROM rm_notify_inhibited WHERE alert_id = $1")
        .bind(alert_id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(released.map(|r| r != 0))
}

/// The host this monitor is a member of, if any.
async fn member_host(conn: &mut AnyConnection, client: &str, slug: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT host FROM rm_notify_host_members WHERE client = $1 AND slug = $2")
        .bind(client)
        .bind(slug)
        .fetch_optional(&mut *conn)
        .await
}

/// How many monitors `host` has (`None` for no host).
async fn host_members(conn: &mut AnyConnection, client: &str, host: Option<&str>) -> Result<Option<i64>, sqlx::Error> {
    let Some(host) = host else { return Ok(None) };
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rm_notify_host_members WHERE client = $1 AND host = $2")
        .bind(client)
        .bind(host)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Some(n))
}

#[allow(clippy::too_many_arguments)]
async fn enqueue(
    conn: &mut AnyConnection,
    notification: Uuid,
    client: &str,
    channel_id: Uuid,
    alert_id: Uuid,
    transition: Transition,
    slug: &str,
    body: &Value,
    position: i64,
    state: &str,
    next_attempt_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rm_outbox (notification_id, client, channel_id, alert_id, transition, slug, payload,
             position, state, attempts, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11)
         ON CONFLICT (notification_id) DO NOTHING",
    )
    .bind(notification.to_string())
    .bind(client)
    .bind(channel_id.to_string())
    .bind(alert_id.to_string())
    .bind(transition.key())
    .bind(slug)
    .bind(body.to_string())
    .bind(position)
    .bind(state)
    .bind(fmt_time(next_attempt_at))
    .bind(fmt_time(created_at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The tags of these monitors, together: a host alert reaches every channel that hears one of
/// them.
async fn tags_of(conn: &mut AnyConnection, client: &str, slugs: &[String]) -> Result<Vec<String>, sqlx::Error> {
    let mut tags: Vec<String> = Vec::new();
    for slug in slugs {
        let facts = monitor_facts(conn, client, slug).await?;
        for tag in facts.tags {
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
    }
    // A monitor without tags is heard by untagged channels only; so is a host alert whose
    // monitors carry none.
    tags.sort();
    Ok(tags)
}

async fn apply_host(conn: &mut AnyConnection, envelope: &Envelope, event: &HostEvent) -> Result<(), sqlx::Error> {
    let Some((client, host)) = streams::parse_host(&envelope.stream_id) else { return Ok(()) };
    match event {
        HostEvent::HostMonitorJoined(e) => {
            sqlx::query(
                "INSERT INTO rm_notify_host_members (client, slug, host) VALUES ($1, $2, $3)
                 ON CONFLICT (client, slug) DO UPDATE SET host = excluded.host",
            )
            .bind(client)
            .bind(&e.slug)
            .bind(host)
            .execute(&mut *conn)
            .await?;
        }
        HostEvent::HostMonitorLeft(e) => {
            // A monitor that moved may have joined its new host first.
            sqlx::query("DELETE FROM rm_notify_host_members WHERE client = $1 AND slug = $2 AND host = $3")
                .bind(client)
                .bind(&e.slug)
                .bind(host)
                .execute(&mut *conn)
                .await?;
        }
        HostEvent::MonitorAlertInhibited(e) => {
            sqlx::query(
                "INSERT INTO rm_notify_inhibited (alert_id, host_alert_id, released) VALUES ($1, $2, 0)
                 ON CONFLICT (alert_id) DO UPDATE SET host_alert_id = excluded.host_alert_id, released = 0",
            )
            .bind(e.alert_id.to_string())
            .bind(e.host_alert_id.to_string())
            .execute(&mut *conn)
            .await?;
            // An opening not attempted yet is never sent. One already on its way stays sent,
            // and its resolution follows it.
            sqlx::query(
                "UPDATE rm_outbox SET state = 'inhibited'
                 WHERE alert_id = $1 AND transition = 'opened' AND state = 'pending' AND attempts = 0
                   AND claimed_attempt = 0",
            )
            .bind(e.alert_id.to_string())
            .execute(&mut *conn)
            .await?;
            let monitors: Option<String> =
                sqlx::query_scalar("SELECT monitors FROM rm_notify_host_alerts WHERE alert_id = $1")
                    .bind(e.host_alert_id.to_string())
                    .fetch_optional(&mut *conn)
                    .await?;
            if let Some(monitors) = monitors {
                let mut list: Vec<String> = serde_json::from_str(&monitors).unwrap_or_default();
                if !list.contains(&e.slug) {
                    list.push(e.slug.clone());
                    list.sort();
                    sqlx::query("UPDATE rm_notify_host_alerts SET monitors = $1 WHERE alert_id = $2")
                        .bind(json!(list).to_string())
                        .bind(e.host_alert_id.to_string())
                        .execute(&mut *conn)
                        .await?;
                    // A host alert's opening not sent yet names every monitor attached so far
                    // (those that fell silent in the same instant are attached one by one).
                    let waiting = sqlx::query(
                        "SELECT notification_id, payload FROM rm_outbox
                         WHERE alert_id = $1 AND transition = 'opened' AND state = 'pending' AND attempts = 0
                           AND claimed_attempt = 0",
                    )
                    .bind(e.host_alert_id.to_string())
                    .fetch_all(&mut *conn)
                    .await?;
                    for row in waiting {
                        let id: String = row.try_get("notification_id")?;
                        let mut body: Value =
                            serde_json::from_str(&row.try_get::<String, _>("payload")?).unwrap_or(Value::Null);
                        if let Some(obj) = body.as_object_mut() {
                            obj.insert("monitors".into(), json!(list));
                        }
                        sqlx::query("UPDATE rm_outbox SET payload = $1 WHERE notification_id = $2")
                            .bind(body.to_string())
                            .bind(id)
                            .execute(&mut *conn)
                            .await?;
                    }
                }
            }
        }
        HostEvent::MonitorAlertReleased(e) => {
            sqlx::query("UPDATE rm_notify_inhibited SET released = 1 WHERE alert_id = $1")
                .bind(e.alert_id.to_string())
                .execute(&mut *conn)
                .await?;
            // Sent after all, in its turn: behind everything already waiting.
            sqlx::query(
                "UPDATE rm_outbox SET state = 'pending', position = $1, next_attempt_at = $2, created_at = $2
                 WHERE alert_id = $3 AND transition = 'opened' AND state = 'inhibited'",
            )
            .bind(envelope.position)
            .bind(fmt_time(e.at))
            .bind(e.alert_id.to_string())
            .execute(&mut *conn)
            .await?;
        }
        HostEvent::HostAlertOpened(_) | HostEvent::HostAlertResolved(_) => {
            let (alert_id, at) = match event {
                HostEvent::HostAlertOpened(e) => {
                    let tags = tags_of(conn, client, &e.monitors).await?;
                    sqlx::query(
                        "INSERT INTO rm_notify_host_alerts (alert_id, client, host, monitors, tags) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (alert_id) DO NOTHING",
                    )
                    .bind(e.alert_id.to_string())
                    .bind(client)
                    .bind(host)
                    .bind(json!(e.monitors).to_string())
                    .bind(json!(tags).to_string())
                    .execute(&mut *conn)
                    .await?;
                    (e.alert_id, e.opened_at)
                }
                HostEvent::HostAlertResolved(e) => (e.alert_id, e.resolved_at),
                _ => unreachable!(),
            };
            let row = sqlx::query("SELECT monitors, tags FROM rm_notify_host_alerts WHERE alert_id = $1")
                .bind(alert_id.to_string())
                .fetch_optional(&mut *conn)
                .await?;
            let (monitors, tags): (Vec<String>, Vec<String>) = match row {
                Some(row) => (
                    serde_json::from_str(&row.try_get::<String, _>("monitors")?).unwrap_or_default(),
                    serde_json::from_str(&row.try_get::<String, _>("tags")?).unwrap_or_default(),
                ),
                None => (vec![], vec![]),
            };
            let resolution = matches!(event, HostEvent::HostAlertResolved(_));
            let slug = super::alerts::host_alert_slug(host);
            let facts = MonitorFacts {
                name: Some(format!("Host {host}")),
                tags: tags.clone(),
                last_event: None,
                escalation_only: vec![],
            };
            let kind = if resolution { Route::Resolution } else { Route::Opening };
            for channel_id in route(conn, client, alert_id, &facts, kind).await? {
                let Some((transition, _, mut body)) = host_payload(client, host, event, &monitors, channel_id) else {
                    continue;
                };
                enrich(&mut body, &facts);
                let id = notification_id(alert_id, transition, channel_id);
                enqueue(
                    conn,
                    id,
                    client,
                    channel_id,
                    alert_id,
                    transition,
                    &slug,
                    &body,
                    envelope.position,
                    "pending",
                    at,
                    at,
                )
                .await?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[async_trait]
impl Projection for NotificationsProjection {
    fn name(&self) -> &'static str {
        "notifications"
    }
    fn version(&self) -> i32 {
        3
    }
    fn tables(&self) -> &'static [&'static str] {
        &[
            "rm_channels",
            "rm_outbox",
            "rm_notify_monitors",
            "rm_notify_host_members",
            "rm_notify_inhibited",
            "rm_notify_host_alerts",
        ]
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[&Envelope]) -> Result<(), sqlx::Error> {
        // The last signal of each monitor, written once per batch rather than once per beat.
        let mut last_events: HashMap<(String, String), LastEvent> = HashMap::new();
        for envelope in events {
            match &envelope.event {
                DomainEvent::Monitor(MonitorEvent::MonitorCreated(e)) => {
                    sqlx::query(
                        "INSERT INTO rm_notify_monitors (client, slug, name, tags, last_event, alert_policy, client_policy)
                         VALUES ($1, $2, $3, $4, NULL, $5, NULL)
                         ON CONFLICT (client, slug) DO UPDATE SET name = excluded.name, tags = excluded.tags,
                             last_event = NULL, alert_policy = excluded.alert_policy, client_policy = NULL",
                    )
                    .bind(&e.client)
                    .bind(&e.slug)
                    .bind(&e.config.name)
                    .bind(json!(e.config.tags).to_string())
                    .bind(json!(e.config.alert_policy).to_string())
                    .execute(&mut *conn)
                    .await?;
                    last_events.remove(&(e.client.clone(), e.slug.clone()));
                }
                DomainEvent::Monitor(MonitorEvent::MonitorReconfigured(e)) => {
                    let Some((client, slug)) = streams::parse_monitor(&envelope.stream_id) else { continue };
                    sqlx::query(
                        "UPDATE rm_notify_monitors SET name = $1, tags = $2, alert_policy = $3 WHERE client = $4 AND slug = $5",
                    )
                    .bind(&e.config.name)
                    .bind(json!(e.config.tags).to_string())
                    .bind(json!(e.config.alert_policy).to_string())
                    .bind(client)
                    .bind(slug)
                    .execute(&mut *conn)
                    .await?;
                }
                DomainEvent::Monitor(MonitorEvent::ClientDefaultsApplied(e)) => {
                    let Some((client, slug)) = streams::parse_monitor(&envelope.stream_id) else { continue };
                    sqlx::query("UPDATE rm_notify_monitors SET client_policy = $1 WHERE client = $2 AND slug = $3")
                        .bind(json!(e.defaults.alert_policy).to_string())
                        .bind(client)
                        .bind(slug)
                        .execute(&mut *conn)
                        .await?;
                }
                DomainEvent::Monitor(
                    event @ (MonitorEvent::HeartbeatReceived(_)
                    | MonitorEvent::RunStarted(_)
                    | MonitorEvent::RunProgressed(_)
                    | MonitorEvent::RunCompleted(_)
                    | MonitorEvent::RunFailed(_)),
                ) => {
                    let Some((client, slug)) = streams::parse_monitor(&envelope.stream_id) else { continue };
                    if let Some(last) = last_event_of(event) {
                        last_events.insert((client.to_string(), slug.to_string()), last);
                    }
                }
                DomainEvent::Client(ClientEvent::ChannelAdded(e)) => {
                    let Some(client) = envelope.stream_id.strip_prefix("client:") else { continue };
                    sqlx::query(
                        "INSERT INTO rm_channels (channel_id, client, name, kind, config, created_at, consecutive_failures, tags)
                         VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
                    )
                    .bind(e.channel_id.to_string())
                    .bind(client)
                    .bind(&e.name)
                    .bind(&e.kind)
                    .bind(e.config.to_string())
                    .bind(fmt_time(e.at))
                    .bind(json!(e.tags).to_string())
                    .execute(&mut *conn)
                    .await?;
                }
                DomainEvent::Client(ClientEvent::ChannelRemoved(e)) => {
                    sqlx::query("UPDATE rm_channels SET removed_at = $1 WHERE channel_id = $2")
                        .bind(fmt_time(e.at))
                        .bind(e.channel_id.to_string())
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query(
                        "UPDATE rm_outbox SET state = 'cancelled' WHERE channel_id = $1 AND state IN ('pending', 'inhibited')",
                    )
                        .bind(e.channel_id.to_string())
                        .execute(&mut *conn)
                        .await?;
                }
                DomainEvent::Monitor(event) if event.alert().is_some() => {
                    let Some((client, slug)) = streams::parse_monitor(&envelope.stream_id) else { continue };
                    // The alert id and transition do not depend on the channel.
                    let Some((transition, alert_id, _)) = payload(client, slug, event, Uuid::nil()) else { continue };
                    save_last_events(conn, &mut last_events).await?;
                    let facts = monitor_facts(conn, client, slug).await?;
                    let resolution = matches!(event, MonitorEvent::AlertResolved(_));
                    let host = member_host(conn, client, slug).await?;
                    let members = host_members(conn, client, host.as_deref()).await?;
                    let at = event.at();
                    let next_at = due_at(event, members, envelope.recorded_at);
                    // Inhibited already (its host alert was decided first): recorded, not sent.
                    let held_back = !resolution && inhibited(conn, alert_id).await? == Some(false);
                    let state = if held_back { "inhibited" } else { "pending" };
                    // A transition after an acknowledgement (its resolution) says it was taken.
                    let acked = match transition {
                        Transition::Acknowledged => None,
                        _ => acknowledgement(conn, alert_id).await?,
                    };
                    for channel_id in route(conn, client, alert_id, &facts, Route::of(event)).await? {
                        let Some((_, _, mut body)) = payload(client, slug, event, channel_id) else { continue };
                        enrich(&mut body, &facts);
                        if let Some(obj) = body.as_object_mut() {
                            obj.insert("host".into(), json!(host));
                            if let Some((at, by)) = &acked {
                                obj.insert("acknowledged_at".into(), at.clone());
                                obj.insert("acknowledged_by".into(), by.clone());
                            }
                        }
                        let id = notification_id(alert_id, transition, channel_id);
                        enqueue(
                            conn,
                            id,
                            client,
                            channel_id,
                            alert_id,
                            transition,
                            slug,
                            &body,
                            envelope.position,
                            state,
                            next_at,
                            at,
                        )
                        .await?;
                    }
                }
                DomainEvent::Host(event) => {
                    save_last_events(conn, &mut last_events).await?;
                    apply_host(conn, envelope, event).await?;
                }
                DomainEvent::Notification(NotificationEvent::NotificationAttemptStarted(e)) => {
                    sqlx::query(
                        "UPDATE rm_outbox SET claimed_attempt = $1, claim_expires_at = $2
                         WHERE notification_id = $3 AND state = 'pending'",
                    )
                    .bind(i64::from(e.attempt))
                    .bind(fmt_time(e.lease_until))
                    .bind(e.notification_id.to_string())
                    .execute(&mut *conn)
                    .await?;
                }
                DomainEvent::Notification(NotificationEvent::NotificationAbandoned(e)) => {
                    sqlx::query(
                        "UPDATE rm_outbox SET state = 'failed', last_error = $1, claim_expires_at = NULL
                         WHERE notification_id = $2 AND state = 'pending'",
                    )
                    .bind(&e.error)
                    .bind(e.notification_id.to_string())
                    .execute(&mut *conn)
                    .await?;
                }
                DomainEvent::Notification(NotificationEvent::NotificationDelivered(e)) => {
                    sqlx::query(
                        "UPDATE rm_outbox SET state = 'delivered', attempts = $1, delivered_at = $2, claim_expires_at = NULL
                         WHERE notification_id = $3",
                    )
                    .bind(i64::from(e.attempt))
                    .bind(fmt_time(e.at))
                    .bind(e.notification_id.to_string())
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query(
                        "UPDATE rm_channels SET last_success_at = $1, consecutive_failures = 0, last_error = NULL WHERE channel_id = $2",
                    )
                    .bind(fmt_time(e.at))
                    .bind(e.channel_id.to_string())
                    .execute(&mut *conn)
                    .await?;
                }
                DomainEvent::Notification(NotificationEvent::NotificationAttemptFailed(e)) => {
                    sqlx::query(
                        "UPDATE rm_outbox SET attempts = $1, last_error = $2, next_attempt_at = $3, claim_expires_at = NULL
                         WHERE notification_id = $4 AND state = 'pending'",
                    )
                    .bind(i64::from(e.attempt))
                    .bind(&e.error)
                    .bind(fmt_time(e.next_attempt_at))
                    .bind(e.notification_id.to_string())
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query(
                        "UPDATE rm_channels SET last_failure_at = $1, last_error = $2,
                             consecutive_failures = consecutive_failures + 1 WHERE channel_id = $3",
                    )
                    .bind(fmt_time(e.at))
                    .bind(&e.error)
                    .bind(e.channel_id.to_string())
                    .execute(&mut *conn)
                    .await?;
                }
                _ => {}
            }
        }
        save_last_events(conn, &mut last_events).await?;
        Ok(())
    }
}

// ---- queries ------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct ChannelView {
    pub channel_id: Uuid,
    pub client: String,
    pub name: String,
    pub kind: String,
    pub config: Value,
    pub created_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub consecutive_failures: i64,
    pub tags: Vec<String>,
    /// Notifications waiting to be delivered to it.
    pub pending: i64,
    /// Notifications given up on.
    pub failed: i64,
}

fn channel_of(row: &AnyRow) -> Result<ChannelView, sqlx::Error> {
    let id: String = row.try_get("channel_id")?;
    let config: String = row.try_get("config")?;
    Ok(ChannelView {
        channel_id: Uuid::parse_str(&id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        client: row.try_get("client")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        config: serde_json::from_str(&config).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        created_at: read_time(row.try_get("created_at")?).unwrap_or_default(),
        last_success_at: read_time(row.try_get("last_success_at")?),
        last_failure_at: read_time(row.try_get("last_failure_at")?),
        last_error: row.try_get("last_error")?,
        consecutive_failures: row.try_get("consecutive_failures")?,
        tags: serde_json::from_str(&row.try_get::<String, _>("tags")?).unwrap_or_default(),
        pending: row.try_get("pending")?,
        failed: row.try_get("failed")?,
    })
}

const CHANNEL_COLUMNS: &str = "channel_id, client, name, kind, config, created_at, last_success_at, last_failure_at, \
     last_error, consecutive_failures, tags, \
     (SELECT COUNT(*) FROM rm_outbox o WHERE o.channel_id = rm_channels.channel_id AND o.state = 'pending') AS pending, \
     (SELECT COUNT(*) FROM rm_outbox o WHERE o.channel_id = rm_channels.channel_id AND o.state = 'failed') AS failed";

pub async fn channels(pool: &AnyPool, client: &str) -> Result<Vec<ChannelView>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANNEL_COLUMNS} FROM rm_channels WHERE client = $1 AND removed_at IS NULL ORDER BY created_at, channel_id"
    )))
    .bind(client)
    .fetch_all(pool)
    .await?;
    rows.iter().map(channel_of).collect()
}

/// Every channel of every client, for the dashboard.
pub async fn all_channels(pool: &AnyPool) -> Result<Vec<ChannelView>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANNEL_COLUMNS} FROM rm_channels WHERE removed_at IS NULL ORDER BY client, created_at, channel_id"
    )))
    .fetch_all(pool)
    .await?;
    rows.iter().map(channel_of).collect()
}

pub async fn channel(pool: &AnyPool, channel_id: Uuid) -> Result<Option<ChannelView>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANNEL_COLUMNS} FROM rm_channels WHERE channel_id = $1 AND removed_at IS NULL"
    )))
    .bind(channel_id.to_string())
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(channel_of).transpose()
}

#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub notification_id: Uuid,
    pub client: String,
    pub channel_id: Uuid,
    pub slug: String,
    pub payload: Value,
    pub attempts: i64,
    /// The highest attempt a dispatcher claimed; the next attempt is one more than this and
    /// `attempts`.
    pub claimed_attempt: i64,
    /// When the transition happened.
    pub created_at: Option<DateTime<Utc>>,
    pub kind: String,
    pub config: Value,
}

impl OutboxItem {
    /// The number of the next attempt, from 1.
    pub fn next_attempt(&self) -> u32 {
        u32::try_from(self.attempts.max(self.claimed_attempt)).unwrap_or(u32::MAX - 1) + 1
    }
}

/// Notifications ready to send at `now`: per channel only the oldest pending one, so that a
/// channel receives its notifications in order; none whose attempt another dispatcher holds.
pub async fn due(pool: &AnyPool, now: DateTime<Utc>, limit: i64) -> Result<Vec<OutboxItem>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT o.notification_id, o.client, o.channel_id, o.slug, o.payload, o.attempts, o.claimed_attempt,
                o.created_at, c.kind, c.config
         FROM rm_outbox o JOIN rm_channels c ON c.channel_id = o.channel_id
         WHERE o.state = 'pending' AND o.next_attempt_at <= $1
           AND (o.claim_expires_at IS NULL OR o.claim_expires_at <= $1)
           AND NOT EXISTS (SELECT 1 FROM rm_outbox p
                           WHERE p.channel_id = o.channel_id AND p.state = 'pending' AND p.position < o.position)
         ORDER BY o.position LIMIT $2",
    )
    .bind(fmt_time(now))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let decode = |e: uuid::Error| sqlx::Error::Decode(Box::new(e));
            let json = |s: String| serde_json::from_str::<Value>(&s).map_err(|e| sqlx::Error::Decode(Box::new(e)));
            Ok(OutboxItem {
                notification_id: Uuid::parse_str(&row.try_get::<String, _>("notification_id")?).map_err(decode)?,
                client: row.try_get("client")?,
                channel_id: Uuid::parse_str(&row.try_get::<String, _>("channel_id")?).map_err(decode)?,
                slug: row.try_get("slug")?,
                payload: json(row.try_get("payload")?)?,
                attempts: row.try_get("attempts")?,
                claimed_attempt: row.try_get("claimed_attempt")?,
                created_at: read_time(row.try_get("created_at")?),
                kind: row.try_get("kind")?,
                config: json(row.try_get("config")?)?,
            })
        })
        .collect()
}

/// The earliest time a pending notification becomes due (or its claim lapses).
pub async fn next_due_at(pool: &AnyPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let at: Option<String> = sqlx::query_scalar(
        "SELECT MIN(CASE WHEN claim_expires_at IS NOT NULL AND claim_expires_at > next_attempt_at
                         THEN claim_expires_at ELSE next_attempt_at END)
         FROM rm_outbox WHERE state = 'pending'",
    )
    .fetch_one(pool)
    .await?;
    Ok(read_time(at))
}

/// One notification of a channel, as `GET /v1/channels/{id}/notifications` shows it.
#[derive(Debug, Clone)]
pub struct OutboxView {
    pub notification_id: Uuid,
    pub alert_id: Uuid,
    pub monitor: String,
    pub transition: String,
    /// `pending`, `delivered`, `failed` (given up), `cancelled` (the channel was removed) or
    /// `inhibited` (a host alert covered it before it was sent: never sent).
    pub state: String,
    pub attempts: i64,
    pub created_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// A channel's notifications, newest first.
pub async fn channel_outbox(pool: &AnyPool, channel_id: Uuid, limit: i64) -> Result<Vec<OutboxView>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT notification_id, alert_id, slug, transition, state, attempts, created_at, next_attempt_at,
                delivered_at, last_error
         FROM rm_outbox WHERE channel_id = $1 ORDER BY position DESC, notification_id LIMIT $2",
    )
    .bind(channel_id.to_string())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let uuid = |s: String| Uuid::parse_str(&s).map_err(|e| sqlx::Error::Decode(Box::new(e)));
            let state: String = row.try_get("state")?;
            Ok(OutboxView {
                notification_id: uuid(row.try_get("notification_id")?)?,
                alert_id: uuid(row.try_get("alert_id")?)?,
                monitor: row.try_get("slug")?,
                transition: row.try_get("transition")?,
                next_attempt_at: if state == "pending" { read_time(row.try_get("next_attempt_at")?) } else { None },
                state,
                attempts: row.try_get("attempts")?,
                created_at: read_time(row.try_get("created_at")?),
                delivered_at: read_time(row.try_get("delivered_at")?),
                last_error: row.try_get("last_error")?,
            })
        })
        .collect()
}
