//! Agents (`wss://…/agent.ashx`): MeshCentral's agent control channel. A connection runs the
//! binary handshake from `tether_common::handshake` (admission), then lives as a session that keeps
//! the device online until it closes, goes silent, or is replaced by a newer connection of the
//! same device. Also serves a group's `.msh` install file.
//!
//! Stock MeshCentral agents are served too: they authenticate the same way, and are told their
//! JavaScript core is fine so they stay connected without one.

mod admission;
mod admission_rate;
mod enrolment;
mod frame_guard;
mod keys;
mod msh_download;
pub(crate) mod records;
mod registry;
mod session;
mod strings;
mod upgrade;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tether_common::agent_proto::MAX_AGENT_JSON;

pub(crate) use enrolment::{EnrolmentKey, group_key, rotate_group_key};
pub(crate) use msh_download::{
    enrollable_group, group_msh, may_enrol, msh_response, server_authority,
};
pub(crate) use records::announce_lost;
pub(crate) use registry::{OnlineAgents, Outgoing};
pub(crate) use strings::{MAX_DEVICE_NAME_CHARS, device_name_is_clean};

use crate::state::AppState;

/// Largest message accepted after authentication (before it, see `admission::MAX_FRAME_BEFORE_AUTH`):
/// the largest JSON message an agent sends. Nothing bigger is ever read, so it is not buffered.
pub(crate) const MAX_MESSAGE: usize = MAX_AGENT_JSON;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/agent.ashx", get(get_agent_socket))
        .route(
            "/api/groups/{id}/agent.msh",
            get(msh_download::get_agent_msh),
        )
}

async fn get_agent_socket(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (response, on_upgrade) = match upgrade::accept(request) {
        Ok(accepted) => accepted,
        Err(refusal) => {
            tracing::debug!(%peer, "agent: {refusal}");
            return refusal.into_response();
        }
    };
    // Tracked, so that stopping the server waits for the agent's close frame.
    let tasks = state.tasks.clone();
    tasks.spawn(async move {
        let stopping = state.stopping.clone();
        // Until the agent is admitted, its frames are held to the pre-authentication size.
        let limit = frame_guard::FrameLimit::new(admission::MAX_FRAME_BEFORE_AUTH);
        let mut socket = match upgrade::open(on_upgrade, limit.clone(), MAX_MESSAGE).await {
            Ok(socket) => socket,
            Err(e) => {
                tracing::debug!(%peer, "agent: the WebSocket upgrade failed: {e}");
                return;
            }
        };
        // An agent still proving itself, or held, is simply dropped when the server stops.
        let outcome = tokio::select! {
            () = stopping.cancelled() => return,
            outcome = admission::run(&state, &mut socket, &limit, peer) => outcome,
        };
        match outcome {
            admission::Outcome::Admitted(admission) => {
                session::run(state, socket, peer, *admission).await
            }
            admission::Outcome::Hold(permit) => {
                let for_how_long = Duration::from_secs(state.config.agent_hold_secs);
                tokio::select! {
                    () = stopping.cancelled() => {}
                    () = admission::hold(socket, peer, &limit, for_how_long, permit) => {}
                }
            }
            admission::Outcome::Closed => upgrade::close(socket).await,
        }
    });
    response
}
