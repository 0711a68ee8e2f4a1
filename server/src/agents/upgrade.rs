//! The `/agent.ashx` WebSocket upgrade (RFC 6455 over HTTP/1.1), done here rather than by axum's
//! `WebSocketUpgrade` because the socket must read through a [`FrameGuard`], whose limit changes
//! as the agent authenticates, and axum does not let a handler wrap the upgraded connection.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::time::{Duration, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::frame_guard::{FrameGuard, FrameLimit};

pub(super) type AgentSocket = WebSocketStream<FrameGuard<TokioIo<Upgraded>>>;

/// Read buffer per agent socket; larger messages still arrive, in several reads.
const READ_BUFFER: usize = 4 * 1024;
/// How long a refused peer's socket may take to close cleanly (it may not be reading).
const CLOSE_DEADLINE: Duration = Duration::from_secs(2);

/// Why a request to `/agent.ashx` is not a WebSocket upgrade we can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum NotAnUpgrade {
    #[error("expected a WebSocket upgrade")]
    Headers,
    #[error("WebSocket version 13 only")]
    Version,
    #[error("missing or bad Sec-WebSocket-Key")]
    Key,
    #[error("this connection cannot be upgraded")]
    Connection,
}

impl IntoResponse for NotAnUpgrade {
    fn into_response(self) -> Response {
        let text = format!("{self}\n");
        match self {
            NotAnUpgrade::Version => (
                StatusCode::UPGRADE_REQUIRED,
                [(header::SEC_WEBSOCKET_VERSION, "13")],
                text,
            )
                .into_response(),
            _ => (StatusCode::BAD_REQUEST, text).into_response(),
        }
    }
}

/// Checks the upgrade request; the `101 Switching Protocols` to answer with, and the connection
/// to come.
pub(super) fn accept(request: Request) -> Result<(Response, OnUpgrade), NotAnUpgrade> {
    let (mut parts, _body) = request.into_parts();
    let key = websocket_key(&parts.headers)?;
    let accept =
        HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| NotAnUpgrade::Key)?;
    let on_upgrade = parts
        .extensions
        .remove::<OnUpgrade>()
        .ok_or(NotAnUpgrade::Connection)?;
    let response = (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, HeaderValue::from_static("upgrade")),
            (header::UPGRADE, HeaderValue::from_static("websocket")),
            (header::SEC_WEBSOCKET_ACCEPT, accept),
        ],
    )
        .into_response();
    Ok((response, on_upgrade))
}

/// The WebSocket over the upgraded connection, once the `101` is out. `max_message` is the
/// socket's own limit (the largest message ever accepted); `limit` is the one that applies now.
pub(super) async fn open(
    on_upgrade: OnUpgrade,
    limit: FrameLimit,
    max_message: usize,
) -> Result<AgentSocket, hyper::Error> {
    let upgraded = on_upgrade.await?;
    // Thousands of mostly idle agents: tungstenite's default 128 KiB read buffer per socket would
    // be most of the server's memory, and agents' messages are small. Writes go out as they are sent.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let io = FrameGuard::new(TokioIo::new(upgraded), limit);
    Ok(WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await)
}

/// Ends a socket the server refuses: a Close frame, then TLS close_notify, so a real agent reads
/// a refusal rather than a torn connection. Bounded: the peer may not be reading.
pub(super) async fn close(mut socket: AgentSocket) {
    let _ = timeout(CLOSE_DEADLINE, async {
        let _ = socket.close(None).await;
        let _ = socket.get_mut().shutdown().await;
    })
    .await;
}

/// The `Sec-WebSocket-Key` of a well-formed upgrade request.
fn websocket_key(headers: &HeaderMap) -> Result<&HeaderValue, NotAnUpgrade> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    };
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err(NotAnUpgrade::Headers);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|version| version != "13")
    {
        return Err(NotAnUpgrade::Version);
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(NotAnUpgrade::Key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    header::HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn a_standard_upgrade_request_is_accepted() {
        let request = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", KEY),
        ]);
        assert_eq!(websocket_key(&request).unwrap(), KEY);
        // RFC 6455's own example.
        assert_eq!(
            derive_accept_key(KEY.as_bytes()),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let refusal =
            |pairs: &[(&'static str, &'static str)]| websocket_key(&headers(pairs)).unwrap_err();
        assert_eq!(
            refusal(&[("sec-websocket-key", KEY)]),
            NotAnUpgrade::Headers
        );
        assert_eq!(
            refusal(&[
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "8"),
                ("sec-websocket-key", KEY),
            ]),
            NotAnUpgrade::Version
        );
        assert_eq!(
            NotAnUpgrade::Version.into_response().status(),
            StatusCode::UPGRADE_REQUIRED
        );
        assert_eq!(
            refusal(&[
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "13"),
            ]),
            NotAnUpgrade::Key
        );
    }
}
