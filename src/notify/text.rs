//! How a notification reads, whatever the channel: a headline, what happened, since when (and,
//! for a resolution, how long it lasted), the last event, and the link to the monitor. Each
//! channel lays these parts out in its vendor's format. Pure.

use chrono::{DateTime, Utc};
use telltale_domain::channel::{LastEvent, Notification};
use telltale_domain::span::Span;

/// The parts of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    /// `nightly-sync is down`, `nightly-sync recovered`.
    pub title: String,
    /// What happened, as the alert says it.
    pub what: String,
    /// `Down since 2026-03-01 12:00:10 UTC`, or `Lasted 5m10s (12:00:10 → 12:05:20 UTC)`.
    pub since: String,
    /// `Last event: run r1 failed with exit code 3 at … on db-1`.
    pub last: Option<String>,
    /// The quoted output or message of the last event, if any.
    pub quote: Option<String>,
    pub link: String,
    pub facts: Vec<(&'static str, String)>,
}

pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A duration as people read it: `5m10s`, `2h`, `4.2s`, `850ms`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..10_000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => Span::from_millis((ms + 500) / 1000 * 1000).to_string(),
    }
}

fn problem(n: &Notification) -> &'static str {
    match n.cause.as_str() {
        "missed" => "is down",
        "failed" => "failed",
        "timed_out" => "is hung",
        "flapping" => "is flapping",
        "host_silent" => "is silent",
        _ => "is alerting",
    }
}

pub fn title(n: &Notification) -> String {
    let label = n.monitor_label();
    if n.is_resolution() {
        return match n.cause.as_str() {
            "flapping" => format!("{label} is stable again"),
            _ => format!("{label} recovered"),
        };
    }
    match n.transition.as_str() {
        "opened" => format!("{label} {}", problem(n)),
        "reminder" => match n.reminder {
            Some(k) => format!("{label} {} (reminder {k})", problem(n)),
            None => format!("{label} {} (reminder)", problem(n)),
        },
        "escalated" => format!("{label} {} (escalated)", problem(n)),
        "acknowledged" => match &n.acknowledged_by {
            Some(by) => format!("{label} {}: acknowledged by {by}", problem(n)),
            None => format!("{label} {}: acknowledged", problem(n)),
        },
        other => format!("{label} {} ({})", problem(n), other.replace('_', " ")),
    }
}

pub fn last_event(e: &LastEvent) -> String {
    let what = match (e.kind.as_str(), &e.run_id) {
        ("heartbeat", _) => "heartbeat".to_string(),
        ("started", Some(run)) => format!("run {run} started"),
        ("running", Some(run)) => format!("run {run} reported progress"),
        ("completed", Some(run)) => format!("run {run} completed"),
        ("failed", Some(run)) => format!("run {run} failed"),
        (kind, _) => kind.to_string(),
    };
    let code = e.exit_code.map(|c| format!(" with exit code {c}")).unwrap_or_default();
    let took = e.duration_ms.map(|d| format!(" after {}", duration(d))).unwrap_or_default();
    let host = e.host.as_deref().map(|h| format!(" on {h}")).unwrap_or_default();
    format!("{what}{code}{took} at {}{host}", time(e.at))
}

pub fn render(n: &Notification) -> Text {
    let since = match (n.is_resolution(), n.resolved_at) {
        (true, Some(resolved)) => format!(
            "Lasted {} ({} → {})",
            duration(n.duration_ms.unwrap_or_else(|| (resolved - n.opened_at).num_milliseconds())),
            time(n.opened_at),
            time(resolved)
        ),
        _ => format!("Since {}", time(n.opened_at)),
    };
    let last = n.last_event.as_ref().map(last_event);
    let quote = n.last_event.as_ref().and_then(|e| e.message.clone()).filter(|m| !m.trim().is_empty());
    let mut facts = if n.is_host() {
        let host = n.host.clone().unwrap_or_else(|| n.monitor.clone());
        vec![("Host", host), ("Monitors", n.monitors.join(", ")), ("Cause", n.cause.replace('_', " "))]
    } else {
        vec![("Monitor", n.monitor.clone()), ("Cause", n.cause.replace('_', " "))]
    };
    facts.push(("Opened", time(n.opened_at)));
    if let Some(resolved) = n.resolved_at {
        facts.push(("Resolved", time(resolved)));
    }
    if let Some(ms) = n.duration_ms.filter(|_| n.is_resolution()) {
        facts.push(("Lasted", duration(ms)));
    }
    if let Some(last) = &last {
        facts.push(("Last event", last.clone()));
    }
    if let Some(by) = n.acknowledged_by.as_ref().filter(|_| n.transition != "acknowledged") {
        facts.push(("Acknowledged by", by.clone()));
    }
    facts.push(("Client", n.client.clone()));
    // A title that is the slug already: the alert's message need not say it again.
    let what = match n.message.strip_prefix(&format!("{}: ", n.monitor)) {
        Some(rest) if n.monitor_label() == n.monitor => rest.to_string(),
        _ => n.message.clone(),
    };
    Text { title: title(n), what, since, last, quote, link: n.link.clone(), facts }
}

/// The message as plain text, for channels without formatting (and e-mail).
pub fn plain(t: &Text) -> String {
    let mut out = format!("{}\n\n{}\n{}\n", t.title, t.what, t.since);
    if let Some(last) = &t.last {
        out.push_str(&format!("Last event: {last}\n"));
    }
    if let Some(quote) = &t.quote {
        out.push('\n');
        for line in quote.lines() {
            out.push_str(&format!("> {line}\n"));
        }
    }
    if !t.link.is_empty() {
        out.push_str(&format!("\n{}\n", t.link));
    }
    out
}

/// The body without the title, as plain text.
pub fn plain_body(t: &Text) -> String {
    let full = plain(t);
    full.split_once("\n\n").map(|(_, rest)| rest.to_string()).unwrap_or(full)
}

pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Escapes what Slack's and Mattermost's markup give a meaning to in plain text.
pub fn escape_slack(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The first `max` characters of `s`, marked with `…` when cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The colour of a message: red while a problem is open, green once it is resolved.
pub fn colour(n: &Notification) -> u32 {
    if n.is_resolution() { 0x1a7f37 } else { 0xd1242f }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;

    fn notification(state: &str) -> Notification {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 10).unwrap();
        Notification {
            notification_id: Uuid::nil(),
            transition: if state == "open" { "opened".into() } else { "resolved".into() },
            alert_id: Uuid::nil(),
            client: "acme".into(),
            monitor: "nightly-sync".into(),
            monitor_name: Some("Nightly sync".into()),
            tags: vec![],
            cause: "failed".into(),
            state: state.into(),
            message: "nightly-sync: run r1 failed with exit code 3".into(),
            opened_at: at,
            resolved_at: (state == "resolved").then(|| at + chrono::TimeDelta::seconds(310)),
            duration_ms: (state == "resolved").then_some(310_000),
            last_event: Some(LastEvent {
                kind: "failed".into(),
                at,
                host: Some("db-1".into()),
                run_id: Some("r1".into()),
                exit_code: Some(3),
                duration_ms: Some(4_200),
                message: Some("disk full".into()),
            }),
            link: "https://telltale.example.com/monitors/acme/nightly-sync".into(),
            attempt: 1,
            sent_at: None,
            reminder: None,
            escalated_to: None,
            acknowledged_by: None,
            note: None,
            kind: None,
            host: None,
            monitors: vec![],
        }
    }

    fn host_alert(state: &str) -> Notification {
        let mut n = notification(state);
        n.kind = Some("host".into());
        n.host = Some("web-1".into());
        n.monitor = "host:web-1".into();
        n.monitor_name = Some("Host web-1".into());
        n.monitors = vec!["sync".into(), "backup".into(), "rotate".into()];
        n.cause = "host_silent".into();
        n.message = "web-1 has gone silent: 3 of its 3 monitors stopped signalling together (by \
                     2026-03-01T12:00:10Z): sync, backup, rotate"
            .into();
        n.last_event = None;
        n.link = "https://telltale.example.com/hosts/acme/web-1".into();
        n
    }

    #[test]
    fn a_host_alert_names_the_host_and_its_silent_monitors() {
        let t = render(&host_alert("open"));
        assert_eq!(t.title, "Host web-1 is silent");
        assert_eq!(t.facts[0], ("Host", "web-1".to_string()));
        assert_eq!(t.facts[1], ("Monitors", "sync, backup, rotate".to_string()));
        assert_eq!(t.facts[2], ("Cause", "host silent".to_string()));
        assert!(plain(&t).contains("3 of its 3 monitors stopped signalling together"));
        assert_eq!(render(&host_alert("resolved")).title, "Host web-1 recovered");
    }

    #[test]
    fn an_opening_says_what_since_when_the_last_event_and_links() {
        let text = plain(&render(&notification("open")));
        assert_eq!(
            text,
            "Nightly sync failed\n\nnightly-sync: run r1 failed with exit code 3\nSince 2026-03-01 12:00:10 UTC\n\
             Last event: run r1 failed with exit code 3 after 4.2s at 2026-03-01 12:00:10 UTC on db-1\n\n\
             > disk full\n\nhttps://telltale.example.com/monitors/acme/nightly-sync\n"
        );
    }

    #[test]
    fn a_resolution_says_how_long_it_lasted() {
        let t = render(&notification("resolved"));
        assert_eq!(t.title, "Nightly sync recovered");
        assert_eq!(t.since, "Lasted 5m10s (2026-03-01 12:00:10 UTC → 2026-03-01 12:05:20 UTC)");
    }

    #[test]
    fn the_alert_policy_s_transitions_say_what_they_are() {
        let mut n = notification("open");
        n.transition = "reminder".into();
        n.reminder = Some(2);
        assert_eq!(title(&n), "Nightly sync failed (reminder 2)");
        n.transition = "escalated".into();
        assert_eq!(title(&n), "Nightly sync failed (escalated)");
        n.transition = "acknowledged".into();
        n.acknowledged_by = Some("ana".into());
        assert_eq!(title(&n), "Nightly sync failed: acknowledged by ana");
        let mut n = notification("open");
        n.cause = "flapping".into();
        assert_eq!(title(&n), "Nightly sync is flapping");
        let mut n = notification("resolved");
        n.cause = "flapping".into();
        assert_eq!(title(&n), "Nightly sync is stable again");
    }

    #[test]
    fn a_monitor_named_by_its_slug_is_not_named_twice_and_a_resolution_says_who_took_it() {
        let mut n = notification("resolved");
        n.monitor_name = None;
        n.message = "nightly-sync: run r2 completed".into();
        n.acknowledged_by = Some("ana".into());
        let t = render(&n);
        assert_eq!((t.title.as_str(), t.what.as_str()), ("nightly-sync recovered", "run r2 completed"));
        assert!(t.facts.contains(&("Acknowledged by", "ana".to_string())), "{:?}", t.facts);
        // With a name of its own, the message keeps the slug (it says which monitor that is).
        assert_eq!(render(&notification("open")).what, "nightly-sync: run r1 failed with exit code 3");
    }

    #[test]
    fn other_transitions_read_without_any_change_here() {
        let mut n = notification("open");
        n.transition = "reminded".into();
        assert_eq!(title(&n), "Nightly sync failed (reminded)");
    }
}
