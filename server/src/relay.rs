//! The session relay (`WSS /meshrelay.ashx?id=TOKEN`, alias `/relay`): pipes a console to an
//! agent for terminal, files, desktop and chat sessions.
//!
//! A console asks for a session on `/control` (`createSession`, in `control/sessions.rs`); the
//! [`RelayBroker`] mints one token per side; the agent is sent its token on its control channel.
//! Each side connects here with its token; when both are there the server sends `"c"` to both and
//! passes frames through, one frame in flight per direction, until one side goes. See
//! `tether_common::relay` for the wire conventions.
//!
//! - `token.rs`: the MAC'd token format and the server's token key;
//! - `pending.rs`: the single-use, expiring table of sessions waiting to pair;
//! - `broker.rs`: `RelayBroker`, minting, admission and the meeting point of the two ends;
//! - `endpoint.rs`: the HTTP/WebSocket handler and the lone end's wait;
//! - `forward.rs`: an end that reached another server than its session's, passed on to that one;
//! - `session.rs`, `pipe.rs`: a paired session and its frame forwarding;
//! - `audit.rs`: the session start/end records;
//! - `recording.rs`: recording sessions of groups that say so (and reading recordings back);
//! - `limits.rs`: per-user and per-device quotas, the maximum session length;
//! - `live.rs`: the sessions being relayed now, and how to end one;
//! - `lifetime.rs`: when a session must end (login session over, right revoked, device or
//!   account removed, sharing link revoked or expired, maximum length), and the task that
//!   watches for those changes;
//! - `guest.rs`: guests trading a sharing link for a session (`POST /api/share/session`).

mod audit;
mod broker;
mod chat_opens;
mod endpoint;
mod forward;
mod guest;
mod invitations;
mod lifetime;
mod limits;
mod live;
mod pending;
mod pipe;
pub(crate) mod recording;
pub(crate) mod recordings;
mod session;
mod token;

use axum::Router;
use axum::routing::get;
use tether_common::relay::RELAY_PATH;

pub(crate) use broker::{MintError, MintedSession, RelayBroker, user_chat_device};
pub(crate) use lifetime::watch as watch_revocations;

use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(RELAY_PATH, get(endpoint::get_relay))
        .route("/relay", get(endpoint::get_relay))
        .route(
            tether_common::share::GUEST_SESSION_PATH,
            axum::routing::post(guest::post_guest_session),
        )
}

/// Ends every live session opened with sharing link `share` (it was revoked).
pub(crate) fn end_shared_sessions(relay: &RelayBroker, share: &str) {
    let affected = live::Affected::Share(share.to_owned());
    for session in relay.live().affected(&affected) {
        relay.live().stop(&session.id, live::Revoked::ShareEnded);
    }
}
