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

/// Parses a JSON body. Broken JSON or a wrong shape is a 400 that quotes serde's reason.
pub fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("malformed_json", "a JSON body is required"));
    }
    let text = String::from_utf8_lossy(body);
    serde_json::from_str(&text).map_err(|e| {
        let code = if e.is_data() { "invalid_request" } else { "malformed_json" };
        ApiError::bad_request(code, format!("the JSON body is not valid: {e}"))
    })
}
