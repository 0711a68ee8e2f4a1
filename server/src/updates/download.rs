//! `GET /agent-update.ashx?t=TOKEN`: where an offered agent fetches its new binary. A WebSocket,
//! like the agent's other connections to this server (so its certificate check is the same one):
//! the server sends the frozen release in binary messages and closes. The token is a random link
//! from the offer, valid while that device's offer stands.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::time::timeout;

use crate::http::error::ApiError;
use crate::state::AppState;

pub(crate) const UPDATE_PATH: &str = "/agent-update.ashx";
/// Well under the agent's 1 MiB message limit, big enough to keep the link busy.
const CHUNK: usize = 256 * 1024;
/// A turn among the concurrent downloads comes within this, or the agent is told to wait for the
/// next offer (its own stall limit is 60 s).
const TURN_WAIT: Duration = Duration::from_secs(45);
const SEND_DEADLINE: Duration = Duration::from_secs(30);

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route(UPDATE_PATH, get(get_update))
}

#[derive(Deserialize)]
struct UpdateQuery {
    t: String,
}

async fn get_update(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(query): Query<UpdateQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some((device, release)) = state.updates.download(&query.t) else {
        tracing::info!(%addr, "agent update: refused a download link that is unknown or no longer offered");
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "This update link is unknown or no longer offered.",
        )
        .into_response();
    };
    upgrade
        .max_message_size(1024)
        .on_upgrade(move |socket| async move {
            let started = std::time::Instant::now();
            match send_release(&state, socket, &release.path).await {
                Ok(bytes) => tracing::info!(
                    %device, %addr, bytes, ms = started.elapsed().as_millis() as u64,
                    "agent update: binary sent"
                ),
                Err(e) => tracing::warn!(%device, %addr, "agent update: download failed: {e}"),
            }
        })
}

async fn send_release(
    state: &AppState,
    mut socket: WebSocket,
    path: &std::path::Path,
) -> anyhow::Result<u64> {
    let Ok(Ok(_turn)) = timeout(TURN_WAIT, state.updates.downloads.acquire()).await else {
        let _ = socket
            .send(Message::Text(
                "too many agents are downloading; the offer will come again".into(),
            ))
            .await;
        anyhow::bail!("no download turn within {TURN_WAIT:?}");
    };
    let mut file = tokio::fs::File::open(path).await?;
    let mut sent = 0u64;
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let n = read_full(&mut file, &mut chunk).await?;
        if n == 0 {
            break;
        }
        chunk.truncate(n);
        timeout(SEND_DEADLINE, socket.send(Message::Binary(chunk.into())))
            .await
            .map_err(|_| anyhow::anyhow!("the agent stopped reading"))??;
        sent += n as u64;
    }
    let _ = timeout(SEND_DEADLINE, socket.send(Message::Close(None))).await;
    Ok(sent)
}

/// Reads until `buf` is full or the file ends.
async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}
