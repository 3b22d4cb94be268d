//! Reading request bodies with a size limit, and JSON with errors that say what is wrong.

use actix_web::HttpRequest;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::web::{self, Bytes, BytesMut};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use super::ApiError;

/// A body over the limit is still read (and dropped) up to this much, so the client sees the
/// 413 instead of a reset connection.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

pub async fn read(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    let declared =
        req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    let mut body = BytesMut::new();
    let mut seen = 0usize;
    let mut over = declared.is_some_and(|n| n > limit);
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request("invalid_body", format!("the request body could not be read: {e}")))?;
        seen += chunk.len();
        if seen > limit {
            over = true;
        }
        if over {
            if seen > DRAIN_LIMIT {
                break;
            }
            continue;
        }
        body.extend_from_slice(&chunk);
    }
    if over {
        return Err(ApiError::too_large(limit));
    }
    Ok(body.freeze())
}

/// Parses a JSON body. Broken JSON is a 400 `malformed_json`; a wrong shape (valid JSON, but
/// not an object, a field of the wrong type, a missing or unknown field) a 400
/// `invalid_request` whose message names the field (`schedule: …`) and what it takes.
pub fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("malformed_json", "a JSON body is required"));
    }
    let text = String::from_utf8_lossy(body);
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("the body must be a JSON object ({{…}}), not {}", kind_of(&value)),
        ));
    }
    let mut de = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let reason = readable(&e.inner().to_string());
        let message = if path.is_empty() || path == "." { reason } else { format!("{path}: {reason}") };
        ApiError::bad_request("invalid_request", format!("the JSON body has the wrong shape: {message}"))
    })
}

/// `an array`, `a string`, … for a JSON value.
fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// serde's reason in the API's words: no Rust type names, and what a field takes.
fn readable(reason: &str) -> String {
    // Where in the body: keep it, it helps with a long body.
    let (reason, at) = match reason.rfind(" at line ") {
        Some(i) => (&reason[..i], &reason[i..]),
        None => (reason, ""),
    };
    let reason = if let Some(name) = reason.strip_prefix("data did not match any variant of untagged enum ") {
        format!("expected {}", expectation(name))
    } else if let Some(i) = reason.find(", expected struct ") {
        let name = reason[i + ", expected struct ".len()..].split_whitespace().next().unwrap_or_default();
        let got = reason[..i].strip_prefix("invalid length ").map(|_| "invalid type: an array").unwrap_or(&reason[..i]);
        format!("{got}, expected {}", expectation(name))
    } else {
        reason.to_string()
    };
    // serde names Rust types where the API means JSON ones.
    let mut reason = reason
        .replace("expected a sequence", "expected an array")
        .replace("invalid type: sequence", "invalid type: array")
        .replace("expected a map", "expected an object")
        .replace("invalid type: map", "invalid type: object");
    for int in ["i16", "i32", "i64", "u8", "u16", "u32", "u64", "usize"] {
        if let Some(stripped) = reason.strip_suffix(&format!("expected {int}")) {
            reason = format!("{stripped}expected an integer");
        }
    }
    if let Some(stripped) = reason.strip_suffix("expected f64") {
        reason = format!("{stripped}expected a number");
    }
    format!("{reason}{at}")
}

/// What a type of the API takes, for a person.
fn expectation(type_name: &str) -> String {
    match type_name {
        "DurationInput" => "a duration such as \"30s\", \"5m\", \"2h\", \"1d\", or whole seconds as a number".into(),
        "ScheduleInput" => {
            "a schedule object: {\"every\": \"5m\"} or {\"cron\": \"30 2 * * *\", \"timezone\": \"Europe/Berlin\"}"
                .into()
        }
        "FailureToleranceInput" => {
            "a number of failed runs in a row, or {\"ratio\": 0.5, \"window\": \"1h\", \"min_runs\": 4}".into()
        }
        _ => "a JSON object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::readable;

    #[test]
    fn reasons_name_no_rust_types() {
        assert_eq!(
            readable("invalid type: integer `5`, expected struct ScheduleInput at line 1 column 14"),
            "invalid type: integer `5`, expected a schedule object: {\"every\": \"5m\"} or \
             {\"cron\": \"30 2 * * *\", \"timezone\": \"Europe/Berlin\"} at line 1 column 14"
        );
        assert_eq!(
            readable("invalid type: string \"x\", expected i64 at line 1 column 46"),
            "invalid type: string \"x\", expected an integer at line 1 column 46"
        );
        assert!(readable("data did not match any variant of untagged enum DurationInput").contains("\"5m\""));
        assert_eq!(
            readable("invalid length 0, expected struct SilenceInput with 2 elements at line 1 column 20"),
            "invalid type: an array, expected a JSON object at line 1 column 20"
        );
    }
}
