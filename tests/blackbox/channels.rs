//! Every channel kind against a real local server (HTTP, or SMTP for e-mail) that checks the
//! request as its vendor documents it: method, path, headers, body and authentication. One
//! failed run opens an alert; a completed run 5m10s later resolves it.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::*;
use crate::smtp::SmtpServer;

const WAIT: Duration = Duration::from_secs(10);
const LINK: &str = "https://telltale.example.com/monitors/acme/nightly-sync";
const OPEN_TITLE: &str = "Nightly sync failed";
const RESOLVED_TITLE: &str = "Nightly sync recovered";
const WHAT: &str = "nightly-sync: run r1 failed with exit code 3";
const SINCE: &str = "Since 2026-03-01 12:00:04 UTC";
const LAST: &str = "run r1 failed with exit code 3 after 4.0s at 2026-03-01 12:00:04 UTC on db-1";
const LASTED: &str = "Lasted 5m10s (2026-03-01 12:00:04 UTC → 2026-03-01 12:05:14 UTC)";

async fn spawn() -> TestApp {
    TestApp::spawn_configured(Options::default(), |c| c.public_url = Some("https://telltale.example.com".into())).await
}

async fn add_channel(app: &TestApp, kind: &str, config: Value) -> Value {
    let response = app.post("/v1/channels", json!({"name": kind, "kind": kind, "config": config})).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn event(app: &TestApp, body: Value) {
    let response = app.post("/v1/monitors/nightly-sync/events", body).await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// A failed run opens a `failed` alert at 12:00:04; a completed run resolves it at 12:05:14.
async fn open_and_resolve(app: &TestApp) {
    let created = app
        .post(
            "/v1/monitors",
            // A failure pages at once here: this file is about how channels carry it.
            json!({"slug": "nightly-sync", "name": "Nightly sync", "schedule": {"every": "1h"}, "grace": "10m",
                   "tags": ["db"], "alert_policy": {"retry_window": "0s"}}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    event(app, json!({"type": "started", "run_id": "r1", "host": "db-1"})).await;
    app.advance(secs(4)).await;
    event(app, json!({"type": "failed", "run_id": "r1", "exit_code": 3, "output": "disk full", "host": "db-1"})).await;
    app.settle().await;
    delivered(app).await;
    app.advance(secs(305)).await;
    event(app, json!({"type": "started", "run_id": "r2", "host": "db-1"})).await;
    app.advance(secs(5)).await;
    event(app, json!({"type": "completed", "run_id": "r2", "exit_code": 0, "host": "db-1"})).await;
    app.settle().await;
}

/// The opening and the resolution a receiver got, and nothing else.
async fn both(receiver: &mut Receiver) -> (Received, Received) {
    let opened = receiver.next(WAIT).await.expect("the opening is delivered");
    let resolved = receiver.next(WAIT).await.expect("the resolution is delivered");
    (opened, resolved)
}

async fn delivered(app: &TestApp) {
    until("every notification is delivered", || async {
        let list: Value = app.get("/v1/channels").await.json().await.unwrap();
        list["channels"].as_array().unwrap().iter().all(|c| c["pending_notifications"] == 0 && c["health"] != "failing")
    })
    .await;
}

fn alert_id(app_alerts: &[Value]) -> String {
    app_alerts[0]["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_posts_a_signed_superset_of_the_old_payload() {
    let app = spawn().await;
    let mut receiver = Receiver::start().await;
    let secret = "s3cret-s3cret-s3cret";
    let channel =
        add_channel(&app, "webhook", json!({"url": receiver.url, "secret": secret, "headers": {"X-Team": "ops"}}))
            .await;
    assert_eq!(channel["config"]["secret"], "********", "the secret is never shown again");
    assert!(channel.get("secret").is_none(), "a secret the caller chose is not echoed");
    open_and_resolve(&app).await;
    let (opened, resolved) = both(&mut receiver).await;
    let alert = alert_id(&app.alerts("all").await);

    assert_eq!((opened.method.as_str(), opened.path.as_str()), ("POST", "/hook"));
    assert_eq!(opened.header("content-type"), Some("application/json"));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&opened.raw);
    assert_eq!(
        opened.header("x-telltale-signature").unwrap(),
        format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        "HMAC-SHA256 of the exact body bytes"
    );
    let body = &opened.body;
    assert_eq!(opened.header("idempotency-key"), body["notification_id"].as_str());
    assert_eq!(opened.header("x-telltale-notification"), body["notification_id"].as_str());
    assert_eq!(opened.header("x-telltale-event"), Some("alert.opened"));
    assert_eq!(opened.header("x-team"), Some("ops"), "the channel's own headers");
    // Today's fields, unchanged…
    for (field, value) in [
        ("transition", json!("opened")),
        ("alert_id", json!(alert)),
        ("client", json!("acme")),
        ("monitor", json!("nightly-sync")),
        ("cause", json!("failed")),
        ("state", json!("open")),
        ("message", json!(WHAT)),
        ("opened_at", json!("2026-03-01T12:00:04.000000Z")),
        ("resolved_at", Value::Null),
        ("link", json!(LINK)),
        ("attempt", json!(1)),
    ] {
        assert_eq!(body[field], value, "{field}");
    }
    // …and what is new.
    assert_eq!(body["monitor_name"], "Nightly sync");
    assert_eq!(body["tags"], json!(["db"]));
    assert_eq!(body["sent_at"], "2026-03-01T12:00:04.000000Z");
    assert_eq!(
        body["last_event"],
        json!({"type": "failed", "at": "2026-03-01T12:00:04.000000Z", "host": "db-1", "run_id": "r1",
               "exit_code": 3, "duration_ms": 4000, "message": "disk full"})
    );

    let body = &resolved.body;
    assert_eq!(resolved.header("x-telltale-event"), Some("alert.resolved"));
    assert_eq!((body["transition"].as_str(), body["state"].as_str()), (Some("resolved"), Some("resolved")));
    assert_eq!(body["resolved_at"], "2026-03-01T12:05:14.000000Z");
    assert_eq!(body["duration_ms"], 310_000, "a resolution says how long it lasted");
    assert_eq!(body["last_event"]["type"], "completed");
    assert_ne!(resolved.idempotency_key, opened.idempotency_key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_without_a_secret_gets_one_shown_once() {
    let app = spawn().await;
    let mut receiver = Receiver::start().await;
    let channel = add_channel(&app, "webhook", json!({"url": receiver.url})).await;
    let secret = channel["secret"].as_str().expect("the generated secret, once").to_string();
    assert!(secret.starts_with("whsec_") && secret.len() > 40, "{secret}");
    let listed = app.get("/v1/channels").await.text().await.unwrap();
    assert!(!listed.contains(&secret), "never again: {listed}");
    open_and_resolve(&app).await;
    let opened = receiver.next(WAIT).await.unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&opened.raw);
    assert_eq!(
        opened.header("x-telltale-signature").unwrap(),
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_gets_an_incoming_webhook_message_with_blocks() {
    let app = spawn().await;
    let mut receiver =
        Receiver::scripted(0, vec![Reply { status: 200, body: "ok".into(), delay: Duration::ZERO }; 2]).await;
    let url = format!("{}/services/T0001/B0001/XXXXXXXXXXXXXXXXXXXXXXXX", receiver.base);
    let channel = add_channel(&app, "slack", json!({"url": url})).await;
    assert_eq!(channel["config"]["url"], format!("{}/********", receiver.base), "a secret URL keeps only its host");
    open_and_resolve(&app).await;
    let (opened, resolved) = both(&mut receiver).await;
    assert_eq!(
        (opened.method.as_str(), opened.path.as_str()),
        ("POST", "/services/T0001/B0001/XXXXXXXXXXXXXXXXXXXXXXXX")
    );
    assert_eq!(opened.header("content-type"), Some("application/json"));
    let body = &opened.body;
    assert_eq!(body["text"], format!("{OPEN_TITLE}: {WHAT}"), "the fallback text of notifications");
    assert_eq!(
        body["blocks"][0],
        json!({"type": "header", "text": {"type": "plain_text", "text": OPEN_TITLE, "emoji": false}})
    );
    assert_eq!(body["blocks"][1]["type"], "section");
    assert_eq!(
        body["blocks"][1]["text"],
        json!({"type": "mrkdwn", "text": format!("{WHAT}\n{SINCE}\n*Last event:* {LAST}\n```disk full```")})
    );
    assert_eq!(
        body["blocks"][2],
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("<{LINK}|Open in telltale>")}]})
    );
    assert_eq!(resolved.body["blocks"][0]["text"]["text"], RESOLVED_TITLE);
    assert!(resolved.body["blocks"][1]["text"]["text"].as_str().unwrap().contains(LASTED));
    delivered(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_gets_an_adaptive_card() {
    let app = spawn().await;
    let mut receiver = Receiver::scripted(0, vec![Reply::status(202); 2]).await;
    add_channel(
        &app,
        "teams",
        json!({"url": format!("{}/workflows/abc/triggers/manual/paths/invoke?sig=x", receiver.base)}),
    )
    .await;
    open_and_resolve(&app).await;
    let (opened, resolved) = both(&mut receiver).await;
    assert_eq!((opened.method.as_str(), opened.path.as_str()), ("POST", "/workflows/abc/triggers/manual/paths/invoke"));
    assert_eq!(opened.query, "sig=x");
    let body = &opened.body;
    assert_eq!(body["type"], "message");
    let attachment = &body["attachments"][0];
    assert_eq!(attachment["contentType"], "application/vnd.microsoft.card.adaptive");
    assert!(attachment["contentUrl"].is_null());
    let card = &attachment["content"];
    assert_eq!(
        (card["$schema"].as_str(), card["type"].as_str(), card["version"].as_str()),
        (Some("http://adaptivecards.io/schemas/adaptive-card.json"), Some("AdaptiveCard"), Some("1.4"))
    );
    assert_eq!(card["body"][0]["text"], OPEN_TITLE);
    assert_eq!(card["body"][0]["color"], "Attention");
    assert_eq!(card["body"][1]["text"], WHAT);
    assert_eq!(card["body"][2]["text"], SINCE);
    assert_eq!(card["body"][3]["type"], "FactSet");
    assert!(card["body"][3]["facts"].as_array().unwrap().contains(&json!({"title": "Last event", "value": LAST})));
    assert_eq!(card["actions"], json!([{"type": "Action.OpenUrl", "title": "Open in telltale", "url": LINK}]));
    let resolved_card = &resolved.body["attachments"][0]["content"];
    assert_eq!(
        (resolved_card["body"][0]["text"].as_str(), resolved_card["body"][0]["color"].as_str()),
        (Some(RESOLVED_TITLE), Some("Good"))
    );
    assert_eq!(resolved_card["body"][2]["text"], LASTED);
    delivered(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_gets_an_embed_and_no_mentions() {
    let app = spawn().await;
    let mut receiver = Receiver::scripted(0, vec![Reply::status(204); 2]).await;
    add_channel(
        &app,
        "discord",
        json!({"url": format!("{}/api/webhooks/123/tok", receiver.base), "username": "telltale"}),
    )
    .await;
    open_and_resolve(&app).await;
    let (opened, resolved) = both(&mut receiver).await;
    assert_eq!((opened.method.as_str(), opened.path.as_str()), ("POST", "/api/webhooks/123/tok"));
    let body = &opened.body;
    assert_eq!(body["username"], "telltale");
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
    let embed = &body["embeds"][0];
    assert_eq!((embed["title"].as_str(), embed["url"].as_str()), (Some(OPEN_TITLE), Some(LINK)));
    assert_eq!(embed["color"], 0xd1242f);
    assert_eq!(embed["description"], format!("{WHAT}\n{SINCE}\n```\ndisk full\n```"));
    assert_eq!(embed["timestamp"], "2026-03-01T12:00:04.000Z");
    assert!(
        embed["fields"].as_array().unwrap().contains(&json!({"name": "Last event", "value": LAST, "inline": false}))
    );
    assert_eq!(resolved.body["embeds"][0]["color"], 0x1a7f37);
    assert_eq!(resolved.body["embeds"][0]["title"], RESOLVED_TITLE);
    delivered(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_chat_gets_a_threaded_idempotent_space_message() {
    let app = spawn().await;
    let mut receiver = Receiver::start().await;
    add_channel(
        &app,
        "google_chat",
        json!({"url": format!("{}/v1/spaces/AAAA/messages?key=k1&token=t1", receiver.base)}),
    )
    .await;
    open_and_resolve(&app).await;
    let (opened, resolved) = both(&mut receiver).await;
    let alert = alert_id(&app.alerts("all").await);
    assert_eq!((opened.method.as_str(), opened.path.as_str()), ("POST", "/v1/spaces/AAAA/messages"));
    assert_eq!(
        opened.query,
        format!(
            "key=k1&token=t1&messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD&requestId={}",
            opened.idempotency_key
        )
    );
    assert_eq!(opened.header("content-type"), Some("application/json; charset=UTF-8"));
    assert_eq!(
        opened.body,
        json!({"text": format!("*{OPEN_TITLE}*\n{WHAT}\n{SINCE}\nLast event: {LAST}\n```disk full```\n<{LINK}|Open in telltale>"),
               "thread": {"threadKey": alert}})
    );
    assert_eq!(resolved.body["thread"]["threadKey"], alert, "one thread per alert");
    assert!(resolved.query.ends_with(&format!("requestId={}", resolved.idempotency_key)));
    delivered(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_gets_markdown_to_the_chosen_channel() {
    let app = spawn().await;
    let mut receiver = Receiver::start().await;
    add_channel(
        &app,
        "mattermost",
        json!({"url": format!("{}/hooks/xyz", receiver.base), "channel": "town-square", "username": "telltale"}),
    )
    .await;
    open_and_resolve(&app).await;
    let (opened, resolved) = both(&mut receiver).await;
    assert_eq!((opened.method.as_str(), opened.path.as_str()), ("POST", "/hooks/xyz"));
    assert_eq!(
        opened.body,
        json!({"text": format!("#### {OPEN_TITLE}\n{WHAT}\n{SINCE}\n**Last event:** {LAST}\n```\ndisk full\n```\n[Open in telltale]({LINK})\n"),
               "channel": "town-square", "username": "telltale"})
    );
    assert!(resolved.body["text"].as_str().unwrap().starts_with(&format!("#### {RESOLVED_TITLE}\n")));
    delivered(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_triggers_and_resolves_one_incident_by_dedup_key() {
    let app = spawn().await;
    let accepted =
        |key: &str| Reply::json(202, json!({"status": "success", "message": "Event processed", "dedup_key": key}));
    let mut receiver = Receiver::scripted(0, vec![accepted("a"), accepted("a")]).await;
    let key = "R0UT1NGKEY0123456789ABCDEFGHIJKL";
    let channel = add_channel(&app, "pagerduty", json!({"routing_key": key, "api_url": receiver.base})).await;
    assert_eq!(channel["config"]["routing_key"], "********");
    open_and_resolve(&app).await;
    let (opened, resolved) = both(&mut receiver).await;
    let alert = alert_id(&app.alerts("all").await);
    assert_eq!((opened.method.as_str(), opened.path.as_str()), ("POST", "/v2/enqueue"));
    assert_eq!(opened.header("content-type"), Some("application/json"));
    let body = &opened.body;
    assert_eq!(
        (body["routing_key"].as_str(), body["event_action"].as_str(), body["dedup_key"].as_str()),
        (Some(key), Some("trigger"), Some(alert.as_str()))
    );
    let payload = &body["payload"];
    assert_eq!(payload["summary"], format!("{OPEN_TITLE}: {WHAT}"));
    assert_eq!(payload["source"], "db-1", "the host the last event came from");
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["timestamp"], "2026-03-01T12:00:04.000Z");
    assert_eq!(
        (payload["component"].as_str(), payload["group"].as_str(), payload["class"].as_str()),
        (Some("nightly-sync"), Some("acme"), Some("failed"))
    );
    assert_eq!(payload["custom_details"]["last_event"], LAST);
    assert_eq!(payload["custom_details"]["output"], "disk full");
    assert_eq!(body["links"], json!([{"href": LINK, "text": "Open in telltale"}]));
    assert_eq!(body["client_url"], LINK);
    assert_eq!(resolved.body, json!({"routing_key": key, "event_action": "resolve", "dedup_key": alert}));
    delivered(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opsgenie_creates_and_closes_by_alias() {
    let app = spawn().await;
    let accepted = || Reply::json(202, json!({"result": "Request will be processed", "took": 0.1, "requestId": "r"}));
    let mut receiver = Receiver::scripted(0, vec![accepted(), accepted()]).await;
    add_channel(
        &app,
        "opsgenie",
        json!({"api_key": "eb243592-faa2-4ba2-a551q-1afdf565c889", "api_url": receiver.base}),
    )
    .await;
    open_and_resolve(&app).await;
    let (opened, resolved) = both(&mut receiver).await;
    let alert = alert_id(&app.alerts("all").await);
    assert_eq!((opened.method.as_str(), opened.path.as_str()), ("POST", "/v2/alerts"));
    assert_eq!(opened.header("authorization"), Some("GenieKey eb243592-faa2-4ba2-a551q-1afdf565c889"));
    let body = &opened.body;
    assert_eq!((body["message"].as_str(), body["alias"].as_str()), (Some(OPEN_TITLE), Some(alert.as_str())));
    assert_eq!(body["priority"], "P2");
    assert_eq!(body["tags"], json!(["db", "telltale"]));
    assert_eq!((body["entity"].as_str(), body["source"].as_str()), (Some("nightly-sync"), Some("telltale")));
    assert_eq!(body["details"]["link"], LINK);
    assert!(body["description"].as_str().unwrap().starts_with(&format!("{WHAT}\n{SINCE}\nLast event: {LAST}\n")));
    assert_eq!(
        (resolved.method.as_str(), resolved.path.as_str()),
        ("POST", format!("/v2/alerts/{alert}/close").as_str())
    );
    assert_eq!(resolved.query, "identifierType=alias");
    assert_eq!(resolved.header("authorization"), opened.header("authorization"));
    assert_eq!(resolved.body["source"], "telltale");
    delivered(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_gets_a_json_publish_with_a_token() {
    let app = spawn().await;
    let mut receiver = Receiver::start().await;
    add_channel(&app, "ntfy", json!({"topic": "ops-alerts", "server": receiver.base, "token": "tk_abcdefghijklmnop"}))
        .await;
    open_and_resolve(&app).await;
    let (opened, resolved) = both(&mut receiver).await;
    assert_eq!((opened.method.as_str(), opened.path.as_str()), ("POST", "/"));
    assert_eq!(opened.header("authorization"), Some("Bearer tk_abcdefghijklmnop"));
    assert_eq!(
        opened.body,
        json!({"topic": "ops-alerts", "title": OPEN_TITLE, "priority": 4, "tags": ["rotating_light"], "click": LINK,
               "message": format!("{WHAT}\n{SINCE}\nLast event: {LAST}\n\n> disk full\n\n{LINK}")})
    );
    assert_eq!(
        (resolved.body["priority"].as_i64(), resolved.body["tags"][0].as_str()),
        (Some(3), Some("white_check_mark"))
    );
    delivered(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_gets_a_bot_api_send_message() {
    let app = spawn().await;
    let ok = || Reply::json(200, json!({"ok": true, "result": {"message_id": 1}}));
    let mut receiver = Receiver::scripted(0, vec![ok(), ok()]).await;
    let token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
    let channel = add_channel(
        &app,
        "telegram",
        json!({"bot_token": token, "chat_id": -1001234567890_i64, "api_url": receiver.base}),
    )
    .await;
    assert_eq!(channel["config"]["bot_token"], "********");
    open_and_resolve(&app).await;
    let (opened, _) = both(&mut receiver).await;
    assert_eq!((opened.method.as_str(), opened.path.as_str()), ("POST", format!("/bot{token}/sendMessage").as_str()));
    assert_eq!(
        opened.body,
        json!({
            "chat_id": -1001234567890_i64,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
            "text": format!("<b>{OPEN_TITLE}</b>\n{WHAT}\n{SINCE}\nLast event: {LAST}\n<pre>disk full</pre>\n<a href=\"{LINK}\">Open in telltale</a>"),
        })
    );
    delivered(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushover_gets_a_form_encoded_message() {
    let app = spawn().await;
    let ok = || Reply::json(200, json!({"status": 1, "request": "647d2300-702c-4b38-8b2f-d56326ae460b"}));
    let mut receiver = Receiver::scripted(0, vec![ok(), ok()]).await;
    let (token, user) = ("azGDORePK8gMaC0QOYAMyEEuzJnyUi", "uQiRzpo4DXghDmr9QzzfQu27cmVRsG");
    add_channel(&app, "pushover", json!({"token": token, "user": user, "api_url": receiver.base, "sound": "siren"}))
        .await;
    open_and_resolve(&app).await;
    let (opened, resolved) = both(&mut receiver).await;
    assert_eq!((opened.method.as_str(), opened.path.as_str()), ("POST", "/1/messages.json"));
    assert_eq!(opened.header("content-type"), Some("application/x-www-form-urlencoded"));
    let form: Vec<(String, String)> = url_decode(&opened.raw);
    let get = |form: &[(String, String)], k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get(&form, "token").as_deref(), Some(token));
    assert_eq!(get(&form, "user").as_deref(), Some(user));
    assert_eq!(get(&form, "title").as_deref(), Some(OPEN_TITLE));
    assert_eq!(get(&form, "message"), Some(format!("{WHAT}\n{SINCE}\nLast event: {LAST}\n\n> disk full\n\n{LINK}")));
    assert_eq!(get(&form, "url").as_deref(), Some(LINK));
    assert_eq!(get(&form, "url_title").as_deref(), Some("Open in telltale"));
    assert_eq!(get(&form, "priority").as_deref(), Some("1"));
    assert_eq!(get(&form, "sound").as_deref(), Some("siren"));
    assert_eq!(get(&form, "timestamp").as_deref(), Some("1772366404"), "2026-03-01T12:00:04Z");
    let form = url_decode(&resolved.raw);
    assert_eq!(get(&form, "priority").as_deref(), Some("0"));
    delivered(&app).await;
}

fn url_decode(raw: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(raw).replace('+', " ");
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
            (decode(k), decode(v))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_puts_with_the_idempotency_key_as_transaction_id() {
    let app = spawn().await;
    let ok = || Reply::json(200, json!({"event_id": "$abc"}));
    let mut receiver = Receiver::scripted(0, vec![ok(), ok()]).await;
    add_channel(
        &app,
        "matrix",
        json!({"homeserver": receiver.base, "access_token": "syt_abcdefghijklmn", "room_id": "!room:example.org"}),
    )
    .await;
    open_and_resolve(&app).await;
    let (opened, resolved) = both(&mut receiver).await;
    assert_eq!(opened.method, "PUT");
    assert_eq!(
        opened.path,
        format!("/_matrix/client/v3/rooms/%21room%3Aexample.org/send/m.room.message/{}", opened.idempotency_key)
    );
    assert_eq!(opened.header("authorization"), Some("Bearer syt_abcdefghijklmn"));
    assert_eq!(opened.body["msgtype"], "m.text");
    assert_eq!(opened.body["format"], "org.matrix.custom.html");
    assert_eq!(
        opened.body["body"],
        format!("{OPEN_TITLE}\n\n{WHAT}\n{SINCE}\nLast event: {LAST}\n\n> disk full\n\n{LINK}")
    );
    assert_eq!(
        opened.body["formatted_body"],
        format!(
            "<strong>{OPEN_TITLE}</strong><br>{WHAT}<br>{SINCE}<br>Last event: {LAST}<pre><code>disk full</code></pre><br><a href=\"{LINK}\">Open in telltale</a>"
        )
    );
    assert_ne!(opened.path, resolved.path, "each transition is its own transaction");
    delivered(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_goes_through_a_real_smtp_server_with_authentication() {
    let app = spawn().await;
    let mut smtp = SmtpServer::start().await;
    let channel = add_channel(
        &app,
        "email",
        json!({"to": ["ops@example.com", "Oncall <oncall@example.com>"], "from": "telltale <telltale@example.com>",
               "host": "127.0.0.1", "port": smtp.port, "security": "none", "username": "mailer", "password": "hunter2hunter2"}),
    )
    .await;
    assert_eq!(channel["config"]["password"], "********");
    open_and_resolve(&app).await;
    let opened = smtp.next(WAIT).await.expect("the opening is mailed");
    let resolved = smtp.next(WAIT).await.expect("the resolution is mailed");
    let outbox: Value =
        app.get(&format!("/v1/channels/{}/notifications", channel["id"].as_str().unwrap())).await.json().await.unwrap();
    let ids: Vec<&str> =
        outbox["notifications"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    let (resolved_id, opened_id) = (ids[0], ids[1]);

    assert_eq!(opened.auth, Some(("mailer".into(), "hunter2hunter2".into())));
    assert_eq!(opened.from, "<telltale@example.com>");
    assert_eq!(opened.to, vec!["<ops@example.com>", "<oncall@example.com>"]);
    assert_eq!(opened.header("Subject").as_deref(), Some(format!("[telltale] {OPEN_TITLE}").as_str()));
    assert_eq!(opened.header("Message-ID"), Some(format!("<{opened_id}@example.com>")));
    assert_eq!(opened.header("X-Telltale-Notification").as_deref(), Some(opened_id));
    assert_eq!(opened.header("Content-Type").as_deref(), Some("text/plain; charset=utf-8"));
    let body = opened.text();
    assert!(body.contains(&format!("{WHAT}\n{SINCE}\nLast event: {LAST}\n")), "{body}");
    assert!(body.contains(LINK), "{body}");
    assert_eq!(resolved.header("In-Reply-To"), Some(format!("<{opened_id}@example.com>")), "threads under the opening");
    assert_eq!(resolved.header("Message-ID"), Some(format!("<{resolved_id}@example.com>")));
    assert!(resolved.text().contains(LASTED), "{}", resolved.text());
    delivered(&app).await;
    assert!(smtp.drain().is_empty(), "one message per transition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_configuration_names_its_field_and_stores_nothing() {
    let app = spawn().await;
    let key32 = "R0UT1NGKEY0123456789ABCDEFGHIJKL";
    let mail = |extra: Value| {
        let mut config = json!({"to": ["ops@example.com"], "from": "telltale@example.com", "host": "smtp.example.com"});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        config
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("webhook", json!({}), "config.url"),
        ("webhook", json!({"url": "ftp://example.com"}), "config.url"),
        ("webhook", json!({"url": "https://example.com/", "secret": "short"}), "config.secret"),
        (
            "webhook",
            json!({"url": "https://example.com/", "headers": {"Content-Type": "text/plain"}}),
            "config.headers",
        ),
        ("webhook", json!({"url": "https://example.com/", "tags": ["db"]}), "config.tags"),
        ("slack", json!({"url": 5}), "config.url"),
        ("teams", json!({}), "config.url"),
        ("discord", json!({"url": "https://discord.com/api/webhooks/1/x", "username": ""}), "config.username"),
        ("google_chat", json!({"url": "chat.googleapis.com/v1/spaces/A/messages"}), "config.url"),
        ("mattermost", json!({"url": "https://mm.example.com/hooks/x", "channel": 7}), "config.channel"),
        ("email", json!({"from": "telltale@example.com", "host": "smtp.example.com"}), "config.to"),
        ("email", mail(json!({"to": []})), "config.to"),
        ("email", mail(json!({"to": ["not an address"]})), "config.to"),
        ("email", mail(json!({"from": "telltale"})), "config.from"),
        ("email", mail(json!({"security": "ssl"})), "config.security"),
        ("email", mail(json!({"port": 70000})), "config.port"),
        ("email", mail(json!({"password": "p"})), "config.username"),
        ("pagerduty", json!({}), "config.routing_key"),
        ("pagerduty", json!({"routing_key": "short"}), "config.routing_key"),
        ("pagerduty", json!({"routing_key": key32, "severity": "urgent"}), "config.severity"),
        ("pagerduty", json!({"routingkey": key32}), "config.routingkey"),
        ("pagerduty", json!({"routing_key": key32, "api_url": "events.pagerduty.com"}), "config.api_url"),
        ("opsgenie", json!({}), "config.api_key"),
        ("opsgenie", json!({"api_key": "k", "priority": "P9"}), "config.priority"),
        ("ntfy", json!({"topic": "a b"}), "config.topic"),
        ("ntfy", json!({"topic": "ops", "username": "u"}), "config.password"),
        ("ntfy", json!({"topic": "ops", "priority": 9}), "config.priority"),
        ("telegram", json!({"chat_id": 1}), "config.bot_token"),
        ("telegram", json!({"bot_token": "123456:ABCDEFGHIJ", "chat_id": "general"}), "config.chat_id"),
        ("pushover", json!({"token": "azGDORePK8gMaC0QOYAMyEEuzJnyUi", "user": "short"}), "config.user"),
        ("matrix", json!({"access_token": "t"}), "config.room_id"),
        ("matrix", json!({"access_token": "t", "room_id": "#ops:example.org"}), "config.room_id"),
        ("carrier-pigeon", json!({}), "kind"),
    ];
    let before = app.log().await.len();
    for (kind, config, field) in cases {
        let response = app.post("/v1/channels", json!({"name": "x", "kind": kind, "config": config.clone()})).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{kind} {config}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "invalid_value");
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("{field}: ")), "{kind} {config}: {message}");
    }
    let response = app
        .post(
            "/v1/channels",
            json!({"name": "x", "kind": "webhook", "config": {"url": "https://e.com/"}, "tags": [""]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().starts_with("tags: "), "{body}");
    assert_eq!(app.log().await.len(), before, "nothing recorded");
    let list: Value = app.get("/v1/channels").await.json().await.unwrap();
    assert_eq!(list["channels"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_never_shown_again() {
    let app = spawn().await;
    let secrets = [
        "T0001/B0001/slacksecretslacksecret",
        "R0UT1NGKEY0123456789ABCDEFGHIJKL",
        "opsgenie-key-0123456789",
        "tk_ntfytokenntfytoken",
        "987654:telegramtokentelegramtoken",
        "azGDORePK8gMaC0QOYAMyEEuzJnyUi",
        "uQiRzpo4DXghDmr9QzzfQu27cmVRsG",
        "syt_matrixtokenmatrixtoken",
        "smtp-password-smtp-password",
        "webhook-secret-webhook-secret",
        "Bearer header-secret-header-secret",
    ];
    let channels = [
        ("slack", json!({"url": format!("https://hooks.slack.com/services/{}", secrets[0])})),
        ("pagerduty", json!({"routing_key": secrets[1]})),
        ("opsgenie", json!({"api_key": secrets[2]})),
        ("ntfy", json!({"topic": "ops", "token": secrets[3]})),
        ("telegram", json!({"bot_token": secrets[4], "chat_id": "@opschannel"})),
        ("pushover", json!({"token": secrets[5], "user": secrets[6]})),
        ("matrix", json!({"access_token": secrets[7], "room_id": "!r:example.org"})),
        (
            "email",
            json!({"to": "ops@example.com", "from": "t@example.com", "host": "smtp.example.com", "username": "u",
                   "password": secrets[8]}),
        ),
        (
            "webhook",
            json!({"url": "https://example.com/hook", "secret": secrets[9], "headers": {"Authorization": secrets[10]}}),
        ),
    ];
    let mut answers = String::new();
    for (kind, config) in channels {
        let created = add_channel(&app, kind, config).await;
        answers.push_str(&created.to_string());
        answers.push_str(
            &app.get(&format!("/v1/channels/{}", created["id"].as_str().unwrap())).await.text().await.unwrap(),
        );
    }
    let list = app.get("/v1/channels").await.text().await.unwrap();
    answers.push_str(&list);
    for secret in secrets {
        assert!(!answers.contains(secret), "{secret} shown in {answers}");
    }
    let list: Value = serde_json::from_str(&list).unwrap();
    let by_kind =
        |kind: &str| list["channels"].as_array().unwrap().iter().find(|c| c["kind"] == kind).unwrap()["config"].clone();
    assert_eq!(by_kind("slack"), json!({"url": "https://hooks.slack.com/********"}));
    assert_eq!(
        by_kind("telegram"),
        json!({"bot_token": "********", "chat_id": "@opschannel"}),
        "what is not secret shows"
    );
    assert_eq!(by_kind("webhook")["headers"], json!({"Authorization": "********"}));
    assert_eq!(by_kind("webhook")["url"], "https://example.com/hook");
    assert_eq!(by_kind("email")["host"], "smtp.example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_with_tags_hear_only_monitors_with_one_of_them() {
    let app = spawn().await;
    let mut db = Receiver::start().await;
    let mut all = Receiver::start().await;
    let mut web = Receiver::start().await;
    for (name, receiver, tags) in
        [("db", &db, json!(["db", "backup"])), ("all", &all, json!([])), ("web", &web, json!(["web"]))]
    {
        let response = app
            .post(
                "/v1/channels",
                json!({"name": name, "kind": "webhook", "config": {"url": receiver.url}, "tags": tags}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["tags"], tags);
    }
    for (slug, tags) in [("pg-dump", json!(["db"])), ("untagged", json!([]))] {
        let response = app
            .post("/v1/monitors", json!({"slug": slug, "schedule": {"every": "10s"}, "grace": "0s", "tags": tags}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        app.beat(slug).await;
    }
    app.advance(secs(10)).await;
    assert_eq!(app.alerts("open").await.len(), 2);
    let slugs = |rs: Vec<Received>| {
        let mut s: Vec<String> = rs.iter().map(|r| r.body["monitor"].as_str().unwrap().to_string()).collect();
        s.sort();
        s
    };
    let take = async |r: &mut Receiver, n: usize| {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(r.next(WAIT).await.expect("a notification"));
        }
        out
    };
    assert_eq!(slugs(take(&mut db, 1).await), ["pg-dump"]);
    assert_eq!(slugs(take(&mut all, 2).await), ["pg-dump", "untagged"]);
    delivered(&app).await;
    assert!(web.drain().is_empty(), "no monitor tagged web");
    assert!(db.drain().is_empty(), "the untagged monitor does not reach a tagged channel");

    // The monitor is re-tagged while its alert is open: the resolution still reaches the
    // channel that heard the opening, and now the web channel too.
    let patched = app
        .http
        .patch(app.url("/v1/monitors/pg-dump"))
        .bearer_auth(&app.key)
        .json(&json!({"tags": ["web"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    app.beat("pg-dump").await;
    app.settle().await;
    let resolved = db.next(WAIT).await.expect("the channel told of the opening hears the resolution");
    assert_eq!(
        (resolved.body["monitor"].as_str(), resolved.body["transition"].as_str()),
        (Some("pg-dump"), Some("resolved"))
    );
    assert_eq!(web.next(WAIT).await.expect("now tagged web").body["transition"], "resolved");
    assert_eq!(all.next(WAIT).await.unwrap().body["monitor"], "pg-dump");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_or_a_channel_error() {
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_telltale");
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/telltale.db", dir.path().display());
    let key_out = Command::new(bin)
        .args(["keys", "create", "--client", "acme", "--create-client"])
        .env("TELLTALE_DATABASE_URL", &db)
        .env("TELLTALE_LOG", "warn")
        .output()
        .unwrap();
    assert!(key_out.status.success());
    let key = String::from_utf8(key_out.stdout).unwrap().lines().last().unwrap().trim().to_string();
    let log_path = dir.path().join("stderr.log");
    let mut child = Command::new(bin)
        .args(["serve", "--no-bootstrap"])
        .env("TELLTALE_DATABASE_URL", &db)
        .env("TELLTALE_LISTEN", "127.0.0.1:0")
        .env("TELLTALE_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut first).unwrap();
    let base = first.trim().rsplit(' ').next().unwrap().to_string();
    let http = http_client();
    let routing_key = "S3CR3TR0UT1NGKEY0123456789ABCDEF";
    let bot_token = "424242:telegramsecrettelegramsecret";
    let matrix_token = "syt_matrixsecretmatrixsecret";
    // A receiver that echoes the routing key in its error, as a vendor might.
    let echo = Receiver::scripted(
        0,
        vec![
            Reply::json(
                400,
                json!({"status": "invalid event", "errors": [format!("routing_key {routing_key} unknown")]})
            );
            20
        ],
    )
    .await;
    let failing = Receiver::scripted(0, vec![Reply::status(500); 20]).await;
    let closed = format!("http://127.0.0.1:{}", free_port());
    for (kind, config) in [
        ("pagerduty", json!({"routing_key": routing_key, "api_url": echo.base})),
        ("telegram", json!({"bot_token": bot_token, "chat_id": 1, "api_url": closed})),
        ("matrix", json!({"homeserver": failing.base, "access_token": matrix_token, "room_id": "!r:example.org"})),
    ] {
        let response = http
            .post(format!("{base}/v1/channels"))
            .bearer_auth(&key)
            .json(&json!({"name": kind, "kind": kind, "config": config}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let post = |path: String, body: Value| http.post(format!("{base}{path}")).bearer_auth(&key).json(&body).send();
    assert!(
        post(
            "/v1/monitors".into(),
            json!({"slug": "job", "schedule": {"every": "1h"}, "grace": "1h", "alert_policy": {"retry_window": "0s"}})
        )
        .await
        .unwrap()
        .status()
        .is_success()
    );
    assert!(
        post("/v1/monitors/job/events".into(), json!({"type": "failed", "exit_code": 1}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let channels: Value = tokio::time::timeout(WAIT, async {
        loop {
            let channels: Value =
                http.get(format!("{base}/v1/channels")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
            if channels["channels"].as_array().unwrap().iter().all(|c| c["consecutive_failures"].as_i64() >= Some(1)) {
                return channels;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("all three channels fail");
    let errors = channels.to_string();
    assert!(
        errors.contains("HTTP 400") && errors.contains("HTTP 500") && errors.contains("cannot connect"),
        "{errors}"
    );
    assert!(errors.contains("routing_key ******** unknown"), "a secret echoed back is blotted out: {errors}");
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("notification failed"), "the failures are logged: {log}");
    for secret in [routing_key, bot_token, matrix_token, "telegramsecret"] {
        assert!(!errors.contains(secret), "{secret} in the API");
        assert!(!log.contains(secret), "{secret} in the log");
    }
}
