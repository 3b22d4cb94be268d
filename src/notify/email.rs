//! E-mail over SMTP (lettre, on tokio with rustls): STARTTLS (required) on 587 by default,
//! implicit TLS (`tls`, 465), or plain (`none`, 25, for a local relay), with optional
//! authentication. The `Message-ID` is the notification's idempotency key, so a repeat of one
//! notification is the same message to every mail system that de-duplicates; a resolution
//! answers the opening (`In-Reply-To`, `References`), so mail clients thread them.

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::Value;
use telltale_domain::notification::{Transition, notification_id};

use super::Delivery;
use super::http::Outgoing;
use super::text::{plain, render};

fn recipients(config: &Value) -> Vec<String> {
    match config.get("to") {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![],
    }
}

/// The message of one notification.
pub fn message(out: &Outgoing<'_>) -> Result<Message, String> {
    let n = out.notification;
    let from: Mailbox = out.str("from").unwrap_or_default().parse().map_err(|e| format!("config.from: {e}"))?;
    let domain = from.email.domain().to_string();
    let id = |notification: uuid::Uuid| format!("<{notification}@{domain}>");
    let t = render(n);
    let mut builder = Message::builder()
        .from(from)
        .subject(format!("[telltale] {}", t.title))
        .message_id(Some(id(n.notification_id)))
        .date(n.sent_at.map(std::time::SystemTime::from).unwrap_or_else(std::time::SystemTime::now))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Telltale-Notification"),
            n.notification_id.to_string(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Telltale-Event"),
            format!("alert.{}", n.transition),
        ));
    if n.transition != Transition::Opened.as_str() {
        let opening = id(notification_id(n.alert_id, Transition::Opened, out.channel_id));
        builder = builder.in_reply_to(opening.clone()).references(opening);
    }
    for to in recipients(out.config) {
        builder = builder.to(to.parse::<Mailbox>().map_err(|e| format!("config.to `{to}`: {e}"))?);
    }
    builder.header(ContentType::TEXT_PLAIN).body(plain(&t)).map_err(|e| format!("the message cannot be built: {e}"))
}

pub async fn send_email(out: &Outgoing<'_>) -> Delivery {
    let email = match message(out) {
        Ok(email) => email,
        Err(error) => return Delivery::failed(error),
    };
    let host = out.str("host").unwrap_or_default();
    let security = out.str("security").unwrap_or("starttls");
    let builder = match security {
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
        "none" => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(25)),
        _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
    };
    let mut builder = match builder {
        Ok(builder) => builder.timeout(Some(out.timeout)),
        Err(e) => return Delivery::failed(format!("cannot set up SMTP to {host}: {e}")),
    };
    if let Some(port) = out.i64("port").and_then(|p| u16::try_from(p).ok()) {
        builder = builder.port(port);
    }
    if let (Some(user), Some(password)) = (out.str("username"), out.str("password")) {
        builder = builder.credentials(Credentials::new(user.to_string(), password.to_string()));
    }
    let transport = builder.build();
    match tokio::time::timeout(out.timeout * 3, transport.send(email)).await {
        Ok(Ok(response)) => Delivery::Delivered { status: Some(response.code().into()) },
        Ok(Err(e)) => Delivery::failed(format!("SMTP to {host} failed: {e}")),
        Err(_) => Delivery::failed(format!("SMTP to {host} did not finish in time")),
    }
}
