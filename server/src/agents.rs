//! Agents (`wss://…/agent.ashx`): MeshCentral's agent control channel. A connection runs the
//! binary handshake from `tether_common::handshake` (admission), then lives as a session that keeps
//! the device online until it closes, goes silent, or is replaced by a newer connection of the
//! same device. Also serves a group's `.msh` install file.
//!
//! Stock MeshCentral agents are served too: they authenticate the same way, and are told their
//! JavaScript core is fine so they stay connected without one.

mod admission;
mod enrolment;
mod keys;
mod msh_download;
mod records;
mod registry;
mod session;
mod strings;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use axum::routing::get;

pub use enrolment::{EnrolmentKey, group_key, rotate_group_key};
pub use msh_download::{enrollable_group, group_msh, may_enrol, msh_response, server_authority};
pub use registry::{OnlineAgents, Outgoing};
pub use strings::{MAX_DEVICE_NAME_CHARS, device_name_is_clean};

use crate::state::AppState;

/// Largest message accepted after authentication (before it, see `admission::MAX_FRAME_BEFORE_AUTH`).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/agent.ashx", get(get_agent_socket))
        .route(
            "/api/groups/{id}/agent.msh",
            get(msh_download::get_agent_msh),
        )
}

/// Read buffer per agent socket; larger messages still arrive, in several reads.
const AGENT_READ_BUFFER: usize = 4 * 1024;

async fn get_agent_socket(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    // Thousands of mostly idle agents: tungstenite's default 128 KiB read buffer per socket would be
    // most of the server's memory, and agents' messages are small. Writes go out as they are sent.
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .read_buffer_size(AGENT_READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |mut socket| async move {
            match admission::run(&state, &mut socket, peer).await {
                admission::Outcome::Admitted(admission) => {
                    session::run(state, socket, peer, *admission).await
                }
                admission::Outcome::Hold => {
                    admission::hold(socket, Duration::from_secs(state.config.agent_hold_secs)).await
                }
                admission::Outcome::Closed => {}
            }
        })
}
