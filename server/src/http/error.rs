//! [`ApiError`]: every HTTP error answer the server gives outside `/control` (which answers in
//! its own replies). One status, one machine code, one message for the person at the other end,
//! as a [`HttpErrorBody`]; causes that would help an attacker or leak internals go to the server
//! log instead, at the place the error is made.

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};
use tether_common::http_error::HttpErrorBody;

#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Also sets the `Retry-After` header.
    pub(crate) fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    pub(crate) fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Please log in.")
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(HttpErrorBody {
            error: self.code.to_owned(),
            message: self.message,
            retry_after: self.retry_after,
        });
        match self.retry_after {
            Some(seconds) => {
                (self.status, [(RETRY_AFTER, seconds.to_string())], body).into_response()
            }
            None => (self.status, body).into_response(),
        }
    }
}
