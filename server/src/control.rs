//! `WSS /control`: the console's and `tetherctl`'s one connection to the server.
//!
//! A logged-in user (session cookie, checked by [`AuthUser`]) upgrades `GET /control` to a WebSocket
//! and then exchanges JSON text frames as described in [`tether_common::control`]: requests answered
//! by exactly one reply each, and events pushed whenever something the user may see changes.
//! Every action checks the caller's rights here on the server; the client's view is never trusted.

mod access;
mod action_store;
mod actions;
mod amt;
mod audit;
mod blocked;
mod chat;
pub(crate) mod cira;
mod connection;
mod devices;
mod flood;
mod groups;
mod install;
pub(crate) mod origin;
mod second_factor;
pub(crate) mod sessions;
pub(crate) mod shares;
mod updates;
mod user_chat;
mod users;
pub mod views;

#[cfg(test)]
mod tests;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tether_common::control::{MAX_CONTROL_FRAME, PROTOCOL_VERSION, ServerInfo};

use crate::auth::sessions::AuthUser;
use crate::http::client_ip::ClientIp;
use crate::state::AppState;

/// The relay re-checks live sessions with the same rule the actions use.
pub(crate) use access::rights_on;
/// The proofs `ActionStore`'s writes ask for; only `access`'s checks make them.
pub use access::{
    Device, Enrol, Events, Granted, Group, ManageDevices, ManageGroup, Myself, Right, SessionGrant,
    SiteAdmin, View,
};
pub use action_store::ActionStore;
pub use actions::{ActionContext, ActionError, perform};

pub fn routes() -> Router<AppState> {
    Router::new().route("/control", get(get_control))
}

async fn get_control(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !origin::same_origin(origin, host) {
        // A page on another site must not drive this user's console with their cookie.
        tracing::warn!(user = %user.id, origin = origin.unwrap_or_default(), "control: cross-origin WebSocket refused");
        return crate::http::error::ApiError::forbidden("cross-origin WebSocket refused")
            .into_response();
    }
    let Some(token) = connection::session_token(&state.config, &headers) else {
        // AuthUser found a session cookie a moment ago; this cannot happen, but do not panic.
        return crate::http::error::ApiError::unauthorized().into_response();
    };
    // The host this client reached us by: what `.msh` files and invite links it asks for name.
    let site = crate::install::Site::of_request(&state, &headers);
    upgrade
        .max_message_size(MAX_CONTROL_FRAME)
        .max_frame_size(MAX_CONTROL_FRAME)
        .on_failed_upgrade(|error| tracing::info!("control: WebSocket upgrade failed: {error}"))
        .on_upgrade(move |socket| {
            // Tracked, so that stopping the server waits for the close frame.
            let tasks = state.tasks.clone();
            tasks.track_future(connection::serve(
                state, user, token, site, client_ip, socket,
            ))
        })
}

/// What `serverInfo` answers; the certificate hashes are what agents and `.msh` files pin.
pub fn server_info(state: &AppState) -> ServerInfo {
    ServerInfo {
        name: state.config.cert.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: PROTOCOL_VERSION,
        agent_cert_hash: hex::encode(state.certs.agent_server_id()),
        web_cert_hash: hex::encode(state.certs.web_cert_hash()),
        https_port: state.config.port,
        stun_port: state.config.stunport.filter(|port| *port != 0),
        mps_port: Some(state.config.mpsport).filter(|port| *port != 0),
    }
}
