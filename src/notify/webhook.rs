//! The generic webhook: a JSON POST of the notification, signed.
//!
//! Headers: `Idempotency-Key` and `X-Telltale-Notification` (the notification's id, the same on
//! every attempt), `X-Telltale-Event` (`alert.opened`, `alert.resolved`, …) and, with the
//! channel's secret, `X-Telltale-Signature: sha256=<hex>`: the HMAC-SHA256 of the exact body
//! bytes, keyed with the secret. The body carries `sent_at`, so a receiver that checks the
//! signature can also refuse an old replay.

use hmac::{Hmac, Mac};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use sha2::Sha256;

use super::Delivery;
use super::http::{Outgoing, send as send_request};

/// `sha256=` and the hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub async fn send(out: &Outgoing<'_>) -> Delivery {
    let url = match out.required("url") {
        Ok(url) => url,
        Err(failed) => return failed,
    };
    let body = serde_json::to_vec(out.payload).expect("a JSON value serialises");
    let n = out.notification;
    let mut request = out
        .request(Method::POST, url)
        .header(CONTENT_TYPE, "application/json")
        .header("X-Telltale-Notification", n.notification_id.to_string())
        .header("X-Telltale-Event", format!("alert.{}", n.transition));
    if let Some(secret) = out.config.get("secret").and_then(Value::as_str) {
        request = request.header("X-Telltale-Signature", signature(secret, &body));
    }
    if let Some(headers) = out.config.get("headers").and_then(Value::as_object) {
        for (name, value) in headers {
            if let Some(value) = value.as_str() {
                request = request.header(name.as_str(), value);
            }
        }
    }
    send_request(request.body(body)).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signature_is_the_rfc_4231_hmac() {
        // RFC 4231, test case 2.
        assert_eq!(
            super::signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
