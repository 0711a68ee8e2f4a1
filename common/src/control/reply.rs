//! The answer to one request ([`Reply`]), its error codes, and why a frame could not be read.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a request or frame could not be read, before any action ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the frame is not a JSON object")]
    NotJson,
    #[error("missing or non-numeric \"id\"")]
    MissingId,
    #[error("missing \"action\"")]
    MissingAction,
    #[error("unknown action \"{0}\"")]
    UnknownAction(String),
    #[error("bad arguments for \"{action}\": {detail}")]
    BadArguments { action: String, detail: String },
}

impl ParseError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ParseError::UnknownAction(_) => ErrorCode::UnknownAction,
            _ => ErrorCode::BadRequest,
        }
    }
}

/// Machine-readable error codes; `message` in [`ErrorBody`] is for people. These are *values*,
/// not field names, and keep their snake_case spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum ErrorCode {
    BadRequest,
    UnknownAction,
    Forbidden,
    NotFound,
    Conflict,
    RateLimited,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
#[error("{message}")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// The answer to one request. `result` is the action's
/// [`Action::Output`](super::Action::Output) as JSON; [`Reply::into_result`] reads it back typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Reply {
    /// Echo of the request's action (empty when it could not be read).
    pub action: String,
    /// Echo of the request's id (absent when it could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub id: Option<u64>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(type = "unknown"))]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub error: Option<ErrorBody>,
}

/// Why a reply did not give the typed result asked for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplyError {
    /// The server refused: its code and message.
    #[error("{0}")]
    Refused(ErrorBody),
    /// The server said `ok: false` but gave no reason.
    #[error("the server refused the request without saying why")]
    NoReason,
    /// The result is not the shape the action promises (a different server version, say).
    #[error("the server sent an unexpected \"{action}\" result: {detail}")]
    Unexpected { action: String, detail: String },
}

impl Reply {
    pub fn ok(action: &str, id: u64, result: Value) -> Reply {
        Reply {
            action: action.to_owned(),
            id: Some(id),
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    pub fn error(
        action: Option<&str>,
        id: Option<u64>,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Reply {
        Reply {
            action: action.unwrap_or_default().to_owned(),
            id,
            ok: false,
            result: None,
            error: Some(ErrorBody {
                code,
                message: message.into(),
            }),
        }
    }

    /// The result read as `T` (an action's `Output`), or the server's error.
    pub fn into_result<T: serde::de::DeserializeOwned>(self) -> Result<T, ReplyError> {
        match (self.ok, self.error) {
            (true, _) => serde_json::from_value(self.result.unwrap_or(Value::Null)).map_err(|e| {
                ReplyError::Unexpected {
                    action: self.action,
                    detail: e.to_string(),
                }
            }),
            (false, Some(error)) => Err(ReplyError::Refused(error)),
            (false, None) => Err(ReplyError::NoReason),
        }
    }
}

impl ReplyError {
    /// The server's error code, when it refused with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ReplyError::Refused(body) => Some(body.code),
            _ => None,
        }
    }
}
