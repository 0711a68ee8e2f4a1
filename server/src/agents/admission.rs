//! From a fresh `/agent.ashx` socket to an admitted device: the handshake, then the decision.
//!
//! Failures are logged with the peer address (never key material). A peer that fails anything
//! (a bad signature, a web-certificate hash that is not ours, an oversized frame) is disconnected
//! at once. Only an agent that proved its key and still cannot be admitted (its group does not
//! exist) is *held*: reconnecting would not help it, and a closed socket would make it retry at
//! once, so a misconfigured fleet would hammer us. Held sockets are capped in number, in total
//! and per source address, and read with a tiny frame limit.
//!
//! Frames are limited to `MAX_FRAME_BEFORE_AUTH` as their headers arrive (see `frame_guard`),
//! not after they were buffered; the admitted session then gets `MAX_MESSAGE`.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether_common::handshake::wire::capabilities;
use tether_common::handshake::{HandshakeError, ServerEvent, ServerHandshake};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::{self, Message};

use super::admission_rate::Verdict;
use super::frame_guard::{FrameLimit, too_large_in};
use super::keys::HandshakeKeys;
use super::records::{self, Admitted};
use super::upgrade::AgentSocket;
use crate::serve::caps::{CapPermit, Caps};
use crate::state::AppState;

/// Frames before authentication are small (the largest is a certificate plus a signature).
pub(super) const MAX_FRAME_BEFORE_AUTH: usize = 64 * 1024;
/// What a held agent may send: pings and small JSON, nothing worth buffering.
const MAX_FRAME_WHILE_HELD: usize = 1024;
/// Stock agents may send one `agentName` JSON before authenticating; a few more are tolerated.
const MAX_TEXT_BEFORE_AUTH: u32 = 4;
/// A send that takes longer than this means the peer stopped reading.
pub(super) const SEND_DEADLINE: Duration = Duration::from_secs(20);

pub(super) enum Outcome {
    Admitted(Box<Admission>),
    /// Keep the socket open, silently, for `agent_hold_secs`; the permit holds its place
    /// among the held connections.
    Hold(CapPermit),
    Closed,
}

pub(super) struct Admission {
    pub admitted: Admitted,
    /// AuthInfo capability bits (a stock MeshAgent with a JavaScript engine sets 0x10).
    pub capabilities: u32,
}

impl Admission {
    pub(super) fn runs_javascript(&self) -> bool {
        self.capabilities & capabilities::JAVASCRIPT != 0
    }
}

pub(super) async fn run(
    state: &AppState,
    socket: &mut AgentSocket,
    limit: &FrameLimit,
    peer: SocketAddr,
) -> Outcome {
    let keys = match HandshakeKeys::get(&state.agents.keys, &state.certs) {
        Ok(keys) => keys,
        Err(e) => {
            tracing::error!("agent: cannot use the agent-server key: {e}");
            return Outcome::Closed;
        }
    };
    let mut nonce = [0u8; 48];
    rand::fill(&mut nonce);
    let mut handshake = ServerHandshake::new(
        keys.config.clone(),
        nonce,
        keys.signer.clone(),
        keys.verifier.clone(),
    );
    let deadline = Instant::now() + Duration::from_secs(state.config.agent_handshake_timeout_secs);
    let mut agent_name: Option<String> = None;
    let mut texts = 0;
    loop {
        let message = match timeout_at(deadline, socket.next()).await {
            Err(_) => {
                tracing::info!(%peer, "agent: handshake not completed in time; closing");
                return Outcome::Closed;
            }
            Ok(Some(Err(e))) => {
                log_read_error(peer, &e, "before authentication");
                return Outcome::Closed;
            }
            Ok(None) | Ok(Some(Ok(Message::Close(_)))) => return Outcome::Closed,
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Binary(frame) => {
                if frame.len() > MAX_FRAME_BEFORE_AUTH {
                    tracing::warn!(%peer, len = frame.len(), "agent: oversized frame before authentication; closing");
                    return Outcome::Closed;
                }
                if let Err(e) = handshake.handle_input(&frame) {
                    return refuse(peer, e);
                }
            }
            Message::Text(text) => {
                texts += 1;
                if texts > MAX_TEXT_BEFORE_AUTH || text.len() > MAX_FRAME_BEFORE_AUTH {
                    tracing::warn!(%peer, "agent: too much JSON before authentication; closing");
                    return Outcome::Closed;
                }
                if let Some(name) = agent_name_of(text.as_str()) {
                    agent_name = Some(name);
                }
            }
            _ => {}
        }
        if !flush(socket, &mut handshake).await {
            return Outcome::Closed;
        }
        if handshake.poll_event() != Some(ServerEvent::AgentVerified) {
            continue;
        }
        // Only a verified agent gets here: its device id is proven, its claims are not.
        let Some(verified) = handshake.verified_agent().cloned() else {
            return Outcome::Closed;
        };
        let per_minute = state.config.agent_admissions_per_minute;
        if let Verdict::Refused { first } = state
            .agents
            .admissions
            .check(&verified.device_id, per_minute)
        {
            if first {
                tracing::warn!(%peer, device = %verified.device_id, "agent: this device connects more than {per_minute} times a minute (agent_admissions_per_minute); refusing it until it slows down");
            } else {
                tracing::debug!(%peer, device = %verified.device_id, "agent: still connecting too often; refused");
            }
            return Outcome::Closed;
        }
        match records::admit(state.store.as_ref(), &verified, agent_name.as_deref()).await {
            Ok(Some(admitted)) => {
                // Raised before the confirmation goes out: nothing the agent sends after it is
                // read under the pre-authentication limit.
                limit.set(super::MAX_MESSAGE);
                if handshake.accept().is_err() || !flush(socket, &mut handshake).await {
                    return Outcome::Closed;
                }
                let capabilities = verified.auth_info.capabilities;
                return Outcome::Admitted(Box::new(Admission {
                    admitted,
                    capabilities,
                }));
            }
            Ok(None) => {
                // `admit` logged why. The MeshID is not logged: it may be a valid enrolment key.
                let caps = Caps {
                    total: state.config.agent_hold_max,
                    per_source: state.config.agent_hold_max_per_ip,
                };
                return match state.agents.held.try_acquire(peer.ip(), caps) {
                    Ok(permit) => {
                        tracing::warn!(%peer, device = %verified.device_id, "agent: not admitted; holding the connection");
                        Outcome::Hold(permit)
                    }
                    Err(refused) => {
                        tracing::warn!(%peer, device = %verified.device_id, "agent: not admitted, and not held: {refused} (agent_hold_max, agent_hold_max_per_ip); closing");
                        Outcome::Closed
                    }
                };
            }
            Err(e) => {
                tracing::error!(%peer, "agent: cannot record the device: {e}");
                return Outcome::Closed;
            }
        }
    }
}

fn refuse(peer: SocketAddr, error: HandshakeError) -> Outcome {
    match error {
        HandshakeError::UnknownWebCertHash => {
            // Not held: nothing is proven yet, and anyone can send these 98 bytes.
            tracing::warn!(
                %peer,
                "agent: it saw a web certificate that is not ours (a TLS proxy we do not know, or a man in the middle); closing"
            );
            Outcome::Closed
        }
        other => {
            tracing::warn!(%peer, "agent: handshake refused: {other}");
            Outcome::Closed
        }
    }
}

/// Logs why reading failed: an oversized frame is worth a warning, a vanished peer is not.
fn log_read_error(peer: SocketAddr, error: &tungstenite::Error, when: &str) {
    let too_large = match error {
        tungstenite::Error::Io(io) => too_large_in(io),
        _ => None,
    };
    match too_large {
        Some(too_large) => {
            tracing::warn!(%peer, "agent: {too_large} {when}; closing")
        }
        None => tracing::debug!(%peer, "agent: read failed {when}: {error}"),
    }
}

/// Sends what the handshake queued; `false` if the socket is gone.
async fn flush(socket: &mut AgentSocket, handshake: &mut ServerHandshake) -> bool {
    while let Some(frame) = handshake.poll_transmit() {
        match timeout(SEND_DEADLINE, socket.send(Message::Binary(frame.into()))).await {
            Ok(Ok(())) => {}
            _ => return false,
        }
    }
    true
}

/// A stock agent's `{"action":"agentName","value":"..."}` (MeshCentral's names, kept as they are).
#[derive(serde::Deserialize)]
struct AgentNameMessage {
    action: String,
    value: String,
}

/// The name from an `agentName` message (under 256 characters, as MeshCentral accepts it).
fn agent_name_of(text: &str) -> Option<String> {
    let message: AgentNameMessage = serde_json::from_str(text).ok()?;
    let name = message.value;
    (message.action == "agentName" && !name.is_empty() && name.chars().count() < 256)
        .then_some(name)
}

/// Keeps a socket open without serving it, then closes it. `_permit` keeps its place among the
/// held connections until then.
pub(super) async fn hold(
    mut socket: AgentSocket,
    peer: SocketAddr,
    limit: &FrameLimit,
    for_how_long: Duration,
    _permit: CapPermit,
) {
    limit.set(MAX_FRAME_WHILE_HELD);
    let deadline = Instant::now() + for_how_long;
    loop {
        match timeout_at(deadline, socket.next()).await {
            Err(_) => break,
            Ok(Some(Err(e))) => return log_read_error(peer, &e, "while held"),
            Ok(None | Some(Ok(Message::Close(_)))) => return,
            Ok(Some(Ok(_))) => {}
        }
    }
    let _ = timeout(SEND_DEADLINE, socket.send(Message::Close(None))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_stock_agents_name() {
        assert_eq!(
            agent_name_of(r#"{"action":"agentName","value":"Front desk"}"#),
            Some("Front desk".into())
        );
        assert_eq!(agent_name_of(r#"{"action":"agentName","value":""}"#), None);
        assert_eq!(
            agent_name_of(&format!(
                r#"{{"action":"agentName","value":"{}"}}"#,
                "x".repeat(256)
            )),
            None
        );
        assert_eq!(agent_name_of(r#"{"action":"other","value":"x"}"#), None);
        assert_eq!(agent_name_of("not json"), None);
    }
}
