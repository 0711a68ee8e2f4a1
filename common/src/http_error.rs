//! The JSON body of every HTTP error the server answers (`/api/*`, downloads, invite links, the
//! relay's refusals): `{"error": "rate_limited", "message": "…", "retryAfter": 60}`. The server
//! writes it in one place (`server/src/http/error.rs`); tetherctl and the console read it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpErrorBody {
    /// For programs: `unauthorized`, `bad_credentials`, `rate_limited`, `not_found`, …
    pub error: String,
    /// For people: what went wrong and what to do about it.
    pub message: String,
    /// Seconds to wait before trying again (the `Retry-After` header says the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl HttpErrorBody {
    /// Reads an error body; `None` when `bytes` is not one (a proxy's HTML page, say).
    pub fn parse(bytes: &[u8]) -> Option<HttpErrorBody> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_is_camel_case_and_leaves_out_an_absent_retry() {
        let body = HttpErrorBody {
            error: "rate_limited".into(),
            message: "later".into(),
            retry_after: Some(60),
        };
        let json = serde_json::to_string(&body).unwrap();
        assert_eq!(
            json,
            r#"{"error":"rate_limited","message":"later","retryAfter":60}"#
        );
        assert_eq!(HttpErrorBody::parse(json.as_bytes()), Some(body));
        let plain = HttpErrorBody::parse(br#"{"error":"not_found","message":"gone"}"#).unwrap();
        assert_eq!(plain.retry_after, None);
        assert_eq!(HttpErrorBody::parse(b"<html>bad gateway</html>"), None);
    }
}
