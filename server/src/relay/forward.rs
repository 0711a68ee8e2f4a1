//! A relay end that reached a server other than the one its session was minted on (several
//! servers behind one address, `cluster.rs`). The token names that server (`RelayClaims::home`);
//! this server opens the same request to it, carrying the end's cookie, origin and host, so the
//! home server admits or refuses the end exactly as if it had come straight there, and then
//! passes frames both ways. Its refusal reaches the end as it was given.
//!
//! The link to the home server is TLS that must present the web certificate every server of the
//! cluster shares (`certs/shared.rs`): nothing else is accepted. Each direction moves one frame
//! at a time, awaiting the far side's write before reading the next, so a slow end slows its
//! sender through both servers and neither buffers more than a frame.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::CertificateDer;
use tether_common::relay::{MAX_RELAY_FRAME, RELAY_PATH};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::cluster::wire::ServerId;
use crate::http::error::ApiError;
use crate::state::AppState;

type Upstream = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Headers of the end's request that the home server judges it by.
const PASSED_ON: [header::HeaderName; 4] = [
    header::COOKIE,
    header::ORIGIN,
    header::USER_AGENT,
    header::HOST,
];

pub(super) async fn forward(
    state: AppState,
    home: ServerId,
    token: &str,
    headers: &HeaderMap,
    addr: SocketAddr,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(address) = state.cluster.address_of(&home) else {
        tracing::info!(%addr, %home, "relay: the session's server is gone");
        let message = "the server holding this session has stopped; open the session again";
        return ApiError::new(StatusCode::GONE, "expired", message).into_response();
    };
    let upstream = match connect(&state, &address, token, headers, addr).await {
        Ok(upstream) => upstream,
        Err(tungstenite::Error::Http(refusal)) => {
            // The home server's own answer: pass it on unchanged.
            let status = refusal.status();
            let body = refusal.body().clone().unwrap_or_default();
            tracing::info!(%addr, %home, %status, "relay: the session's server refused the end");
            return (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response();
        }
        Err(e) => {
            tracing::warn!(%addr, %home, "relay: cannot reach the session's server: {e}");
            let message = "the server holding this session cannot be reached";
            return ApiError::new(StatusCode::BAD_GATEWAY, "unavailable", message).into_response();
        }
    };
    tracing::debug!(%addr, %home, "relay: end passed on to the session's server");
    upgrade
        .max_message_size(MAX_RELAY_FRAME)
        .max_frame_size(MAX_RELAY_FRAME)
        .on_failed_upgrade(|e| tracing::info!("relay: WebSocket upgrade failed: {e}"))
        .on_upgrade(move |socket| {
            let tasks = state.tasks.clone();
            tasks.track_future(splice(socket, upstream, state))
        })
}

async fn connect(
    state: &AppState,
    address: &str,
    token: &str,
    headers: &HeaderMap,
    addr: SocketAddr,
) -> Result<Upstream, tungstenite::Error> {
    let url = match address.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}{RELAY_PATH}?id={token}"),
        Some(("http", rest)) => format!("ws://{rest}{RELAY_PATH}?id={token}"),
        _ => format!("wss://{address}{RELAY_PATH}?id={token}"),
    };
    let mut request = url.into_client_request()?;
    let passed = request.headers_mut();
    for name in PASSED_ON {
        if let Some(value) = headers.get(&name) {
            passed.insert(name, value.clone());
        }
    }
    if let Ok(client) = HeaderValue::from_str(&addr.ip().to_string()) {
        passed.insert("x-forwarded-for", client);
    }
    passed.insert(
        header::SEC_WEBSOCKET_KEY,
        HeaderValue::from_str(&generate_key())
            .map_err(|e| tungstenite::Error::Utf8(e.to_string()))?,
    );
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_RELAY_FRAME))
        .max_frame_size(Some(MAX_RELAY_FRAME));
    let shared = CertificateDer::from(state.certs.web.cert_der.clone()).into_owned();
    let tls = tether_net::tls::leaf_checked_config(Arc::new(SharedCertificate(shared)))
        .map_err(|e| tungstenite::Error::Tls(e.into()))?;
    let (upstream, _) = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        Some(Connector::Rustls(Arc::new(tls))),
    )
    .await?;
    Ok(upstream)
}

/// Accepts exactly the web certificate this server presents itself: the cluster's shared one.
#[derive(Debug)]
struct SharedCertificate(CertificateDer<'static>);

impl tether_net::tls::LeafCheck for SharedCertificate {
    fn check(&self, leaf: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if leaf.as_ref() == self.0.as_ref() {
            Ok(())
        } else {
            Err(rustls::Error::General(
                "a server of the cluster presented another certificate than the shared one".into(),
            ))
        }
    }
}

/// Passes frames both ways until either side closes or the server stops.
async fn splice(end: WebSocket, upstream: Upstream, state: AppState) {
    let (mut end_sink, mut end_stream) = end.split();
    let (mut up_sink, mut up_stream) = upstream.split();
    let outward = async {
        while let Some(Ok(message)) = end_stream.next().await {
            let message = match message {
                ws::Message::Text(text) => Message::Text(text.as_str().into()),
                ws::Message::Binary(bytes) => Message::Binary(bytes),
                ws::Message::Close(frame) => {
                    let _ = up_sink
                        .send(Message::Close(frame.map(close_to_upstream)))
                        .await;
                    break;
                }
                ws::Message::Ping(_) | ws::Message::Pong(_) => continue,
            };
            if up_sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = up_sink.close().await;
    };
    let inward = async {
        while let Some(Ok(message)) = up_stream.next().await {
            let message = match message {
                Message::Text(text) => ws::Message::Text(text.as_str().into()),
                Message::Binary(bytes) => ws::Message::Binary(bytes),
                Message::Close(frame) => {
                    let _ = end_sink
                        .send(ws::Message::Close(frame.map(close_to_end)))
                        .await;
                    break;
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            if end_sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = end_sink.close().await;
    };
    // Either direction ending ends the session: the home server has closed its side, or the
    // end has left (and the home server hears it from the closed link).
    tokio::select! {
        () = outward => {}
        () = inward => {}
        () = state.stopping.cancelled() => {}
    }
}

fn close_to_upstream(frame: ws::CloseFrame) -> tungstenite::protocol::CloseFrame {
    tungstenite::protocol::CloseFrame {
        code: frame.code.into(),
        reason: frame.reason.as_str().into(),
    }
}

fn close_to_end(frame: tungstenite::protocol::CloseFrame) -> ws::CloseFrame {
    ws::CloseFrame {
        code: frame.code.into(),
        reason: frame.reason.as_str().into(),
    }
}
