//! The dashboard's channel list: every channel of every client with its delivery health, so
//! that a channel that keeps failing is seen, with its last error.

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use telltale_projections::models::notifications::ChannelView;

/// `ok`, `failing` or `unused`, as `GET /v1/channels` says it.
pub fn health(c: &ChannelView) -> &'static str {
    if c.consecutive_failures > 0 {
        "failing"
    } else if c.last_success_at.is_some() {
        "ok"
    } else {
        "unused"
    }
}

pub fn section(channels: &[ChannelView], now: DateTime<Utc>) -> Markup {
    html! {
        h2 { "Channels" }
        @if channels.is_empty() {
            p.muted { "No channels yet: alerts are recorded but sent nowhere. Add one with " code { "POST /v1/channels" } "." }
        } @else {
            table #channels {
                thead { tr { th { "Client" } th { "Channel" } th { "Health" } th { "Last success" } th { "Waiting" } th { "Last error" } } }
                tbody {
                    @for c in channels {
                        @let health = health(c);
                        tr data-channel=(c.name) data-health=(health) {
                            td { (c.client) }
                            td {
                                (c.name) br;
                                span.muted { (c.kind) @if !c.tags.is_empty() { " · tags: " (c.tags.join(", ")) } }
                            }
                            td {
                                span class={ "badge " (match health { "ok" => "up", "failing" => "failing", _ => "new" }) } { (health) }
                                @if c.consecutive_failures > 0 { br; span.muted { (c.consecutive_failures) " failed attempts in a row" } }
                            }
                            td { (super::since(c.last_success_at, now)) }
                            td {
                                (c.pending)
                                @if c.failed > 0 { br; span.alert { (c.failed) " given up" } }
                            }
                            td {
                                @if let (Some(error), true) = (&c.last_error, c.consecutive_failures > 0) {
                                    span.alert { (error) } br; (super::since(c.last_failure_at, now))
                                } @else { span.muted { "—" } }
                            }
                        }
                    }
                }
            }
        }
    }
}
