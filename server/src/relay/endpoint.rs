//! `GET /meshrelay.ashx?id=TOKEN` (alias `/relay`): admits one end of a session and waits for the
//! other.
//!
//! Who may connect:
//! - the **console** end presents a console token *and* the session cookie of the user the token
//!   was minted for; or, for a guest (the token names a sharing link), a token whose link is
//!   still live: the token itself, handed out once for one use of the link, is the credential;
//! - the other end of a **chat between two users** (`RelayClaims::peer`) presents its token and
//!   the session cookie of the invitee, as a console end does;
//! - the **agent** end presents the agent token only. The agent authenticated itself on its control
//!   channel (the RSA handshake), and that channel, which is TLS to this server, is the only place
//!   the agent token ever travels. So holding it shows the connection comes from that agent (or from
//!   something that already controls the agent's connection). The token is unguessable (128
//!   random bits under a MAC), admits one connection, and expires unpaired after the pairing
//!   timeout. The console's token, which passes through browsers, cannot stand in for it: each
//!   token names its side, under the MAC.
//!
//! Refusals happen before the WebSocket opens, as HTTP errors with a JSON body.

use std::net::SocketAddr;

use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use tether_common::relay::{MAX_RELAY_FRAME, RelayClaims, RelaySide};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::broker::{Meeting, Refusal, RelayEnd};
use super::pending::ClaimError;
use super::{pipe, session};
use crate::auth::sessions::{request_user, token_from_headers, token_hash};
use crate::http::error::ApiError;
use crate::state::AppState;

/// Bound on a relay socket's outgoing buffer: one frame and change. Writes are flushed one frame
/// at a time, so this is a backstop, not a working size.
const MAX_WRITE_BUFFER: usize = 2 * MAX_RELAY_FRAME + 64 * 1024;

#[derive(Deserialize)]
pub(super) struct RelayQuery {
    id: String,
}

pub(super) async fn get_relay(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(query): Query<RelayQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let claims = match state.relay.check(state.store.as_ref(), &query.id).await {
        Ok(claims) => claims,
        Err(refusal) => return refuse(&refusal, addr),
    };
    if let Some(home) = claims.home.as_deref()
        && home != state.cluster.me().as_str()
    {
        let home = crate::cluster::wire::ServerId::from(home);
        return super::forward::forward(state, home, &query.id, &headers, addr, upgrade).await;
    }
    // The ends a browser opens: the console's, and the invitee's in a chat between users.
    let browser_user = match claims.side {
        RelaySide::Console => Some(&claims.user),
        RelaySide::Agent => claims.peer.as_ref(),
    };
    if let Some(user) = browser_user
        && let Some(refused) = cross_origin(&headers, user, addr)
    {
        return refused;
    }
    if let Some(share) = claims
        .share
        .as_ref()
        .filter(|_| claims.side == RelaySide::Console)
    {
        match state.store.share(share).await {
            Ok(Some(link)) if link.live_at(crate::clock::now_millis()) => {}
            Ok(_) => {
                tracing::info!(%addr, share = %share, "relay: guest end refused: the link is no longer live");
                let message = "the sharing link was revoked or expired";
                return ApiError::new(StatusCode::GONE, "expired", message).into_response();
            }
            Err(e) => return refuse(&Refusal::Store(e), addr),
        }
    }
    // A browser end without a sharing link must come with its user's login, and lives only as
    // long as that login does (`lifetime.rs`).
    let mut login = None;
    if let Some(user) = browser_user.filter(|_| claims.share.is_none()) {
        match request_user(&state, &headers).await {
            Ok(Some(found)) if &found.id == user => {
                login = token_from_headers(&state.config, &headers).map(token_hash);
            }
            Ok(_) => {
                tracing::warn!(%addr, %user, side = ?claims.side, "relay: end without that user's session refused");
                let message = match claims.side {
                    RelaySide::Console => "log in as the user who opened this session",
                    RelaySide::Agent => "log in as the user who was invited",
                };
                return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
                    .into_response();
            }
            Err(e) => return refuse(&Refusal::Store(e), addr),
        }
    }
    if claims.side == RelaySide::Agent && claims.peer.is_some() {
        state.relay.invitations().forget(&claims.session);
    }
    if let Err(refusal) = state.relay.claim(&claims) {
        return refuse(&refusal, addr);
    }
    tracing::debug!(%addr, side = ?claims.side, device = %claims.device, user = %claims.user, kind = %claims.kind, "relay: end admitted");
    upgrade
        .max_message_size(MAX_RELAY_FRAME)
        .max_frame_size(MAX_RELAY_FRAME)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_failed_upgrade(|e| tracing::info!("relay: WebSocket upgrade failed: {e}"))
        .on_upgrade(move |socket| {
            let side = claims.side;
            let end = RelayEnd {
                socket,
                side,
                addr,
                login,
            };
            // Tracked, so that stopping the server waits for both ends' close frames.
            let tasks = state.tasks.clone();
            tasks.track_future(join(state, claims, end))
        })
}

/// The Origin check of an end that comes with a user's cookie: a page on another site may not
/// ride that cookie (defence in depth: the token already binds the end to its user, as on
/// `/control`). The refusal, if it is one.
fn cross_origin(
    headers: &HeaderMap,
    user: &tether_common::ids::UserId,
    addr: SocketAddr,
) -> Option<Response> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if crate::control::origin::same_origin(origin, host) {
        return None;
    }
    tracing::warn!(%addr, %user, origin = origin.unwrap_or_default(), "relay: cross-origin end refused");
    let message = "cross-origin WebSocket refused";
    Some(ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response())
}

fn refuse(refusal: &Refusal, addr: SocketAddr) -> Response {
    let (status, code) = match refusal {
        Refusal::BadToken(_) => (StatusCode::FORBIDDEN, "forbidden"),
        Refusal::Expired => (StatusCode::GONE, "expired"),
        Refusal::Claim(ClaimError::Unknown) => (StatusCode::NOT_FOUND, "not_found"),
        Refusal::Claim(ClaimError::AlreadyUsed) => (StatusCode::CONFLICT, "already_used"),
        Refusal::Store(e) => {
            tracing::error!("relay: store error: {e}");
            let message = "internal server error (see the server log)";
            return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
                .into_response();
        }
    };
    tracing::info!(%addr, "relay: refused: {refusal}");
    ApiError::new(status, code, refusal.to_string()).into_response()
}

/// Runs one admitted end: pairs it with its peer (whoever arrives second hands its socket to the
/// first, whose task then runs the session).
async fn join(state: AppState, claims: RelayClaims, end: RelayEnd) {
    match state.relay.meet(&claims.session, end) {
        Meeting::HandedOver => {}
        Meeting::PeerGone(end) => close(end, close_code::AWAY, "the other side left").await,
        Meeting::Gone(end) => close(end, close_code::POLICY, "the session expired").await,
        Meeting::Wait {
            end,
            peer,
            deadline,
        } => {
            if let Some((mine, theirs)) = wait_for_peer(&state, &claims, end, peer, deadline).await
            {
                session::run(state, claims, mine, theirs).await;
            }
        }
    }
}

/// Waits alone until the peer arrives, the pairing deadline passes, or this end leaves.
/// Returns both ends when paired; otherwise closes what it holds.
async fn wait_for_peer(
    state: &AppState,
    claims: &RelayClaims,
    mut end: RelayEnd,
    mut peer: oneshot::Receiver<RelayEnd>,
    deadline: std::time::Instant,
) -> Option<(RelayEnd, RelayEnd)> {
    let (code, why) = loop {
        tokio::select! {
            arrived = &mut peer => match arrived {
                Ok(theirs) => return Some((end, theirs)),
                // The table dropped us: the session expired.
                Err(_) => break (close_code::POLICY, "the session expired"),
            },
            _ = tokio::time::sleep_until(Instant::from_std(deadline)) => break (close_code::POLICY, TIMED_OUT),
            () = state.stopping.cancelled() => break (close_code::AWAY, "server stopping"),
            message = end.socket.recv() => match message {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                    break (close_code::POLICY, "sent data before the session was paired");
                }
                _ => break (close_code::AWAY, "left before the session was paired"),
            },
        }
    };
    state.relay.stop_waiting(&claims.session);
    // The peer may have been handed over between the wake-up and `stop_waiting`. If it arrived
    // in time, pair; if this end misbehaved or left, the peer is told.
    if let Ok(theirs) = peer.try_recv() {
        if why == TIMED_OUT {
            return Some((end, theirs));
        }
        close(theirs, close_code::AWAY, "the other side left").await;
    }
    tracing::info!(side = ?end.side, device = %claims.device, user = %claims.user, "relay: lone end: {why}");
    close(end, code, why).await;
    None
}

const TIMED_OUT: &str = "nobody joined the session in time";

async fn close(end: RelayEnd, code: u16, reason: &'static str) {
    let (sink, stream) = end.socket.split();
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    pipe::shut(sink, stream, Some(frame)).await;
}
