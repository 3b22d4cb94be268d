//! Matrix client-server API: `PUT {homeserver}/_matrix/client/v3/rooms/{room_id}/send/
//! m.room.message/{txnId}` with `Authorization: Bearer <access_token>`. The transaction id is the
//! notification's idempotency key, so the homeserver itself drops a repeat of one notification.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::{Value, json};

use super::Delivery;
use super::http::{Outgoing, send};
use super::text::{Text, escape_html, plain, render};

pub fn html(t: &Text) -> String {
    let mut out =
        format!("<strong>{}</strong><br>{}<br>{}", escape_html(&t.title), escape_html(&t.what), escape_html(&t.since));
    if let Some(last) = &t.last {
        out.push_str(&format!("<br>Last event: {}", escape_html(last)));
    }
    if let Some(quote) = &t.quote {
        out.push_str(&format!("<pre><code>{}</code></pre>", escape_html(quote)));
    }
    if !t.link.is_empty() {
        out.push_str(&format!("<br><a href=\"{}\">Open in telltale</a>", escape_html(&t.link)));
    }
    out
}

pub fn message(t: &Text) -> Value {
    json!({"msgtype": "m.text", "body": plain(t).trim_end(), "format": "org.matrix.custom.html", "formatted_body": html(t)})
}

/// What a path segment may hold unencoded (RFC 3986 "unreserved").
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The URL of one send, its path segments percent-encoded (a room id holds `!` and `:`).
pub fn send_url(homeserver: &str, room_id: &str, txn_id: &str) -> String {
    format!(
        "{}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
        homeserver.trim_end_matches('/'),
        utf8_percent_encode(room_id, SEGMENT),
        utf8_percent_encode(txn_id, SEGMENT)
    )
}

pub async fn send_matrix(out: &Outgoing<'_>) -> Delivery {
    let (homeserver, token, room) =
        match (out.required("homeserver"), out.required("access_token"), out.required("room_id")) {
            (Ok(h), Ok(t), Ok(r)) => (h, t, r),
            (Err(failed), _, _) | (_, Err(failed), _) | (_, _, Err(failed)) => return failed,
        };
    let n = out.notification;
    let url = send_url(homeserver, room, &n.notification_id.to_string());
    send(out.request(Method::PUT, &url).bearer_auth(token).json(&message(&render(n)))).await
}
