//! The generic webhook: a JSON POST of the notification.

use serde_json::Value;
use telltale_projections::models::notifications::OutboxItem;

use super::Delivery;

pub async fn send(http: &reqwest::Client, item: &OutboxItem, payload: &Value) -> Delivery {
    let Some(url) = item.config.get("url").and_then(Value::as_str) else {
        return Delivery::Failed { error: "the channel has no url".into() };
    };
    let transition = payload.get("transition").and_then(Value::as_str).unwrap_or_default();
    let request = http
        .post(url)
        .header("Idempotency-Key", item.notification_id.to_string())
        .header("X-Telltale-Notification", item.notification_id.to_string())
        .header("X-Telltale-Event", format!("alert.{transition}"))
        .json(payload);
    match request.send().await {
        Ok(response) if response.status().is_success() => {
            Delivery::Delivered { status: Some(response.status().as_u16()) }
        }
        Ok(response) => {
            Delivery::Failed { error: format!("the receiver answered HTTP {}", response.status().as_u16()) }
        }
        Err(e) if e.is_timeout() => Delivery::Failed { error: "the receiver did not answer in time".into() },
        Err(e) if e.is_connect() => Delivery::Failed { error: format!("cannot connect to the receiver: {e}") },
        Err(e) => Delivery::Failed { error: format!("the request failed: {e}") },
    }
}
