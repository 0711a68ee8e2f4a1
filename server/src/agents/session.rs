//! An admitted agent's connection: registered as online, kept alive with pings, serving the
//! post-authentication commands until it closes, goes silent, or a newer connection replaces it.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tether_common::agent_proto::{self, AgentToServer, MAX_AGENT_JSON, ServerToAgent};
use tether_common::handshake::wire::{self, cmd};
use tokio::time::{Instant, MissedTickBehavior, interval_at, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::admission::{Admission, SEND_DEADLINE};
use super::records;
use super::registry::Outgoing;
use super::upgrade::AgentSocket;
use crate::state::AppState;

type Sink = SplitSink<AgentSocket, Message>;

/// Why a session ended, for the log.
#[derive(Debug)]
enum End {
    Closed,
    Silent,
    Replaced,
    /// Its device or group was deleted.
    Removed,
    SendFailed,
    /// The server is shutting down: the agent is told "going away" and comes back later.
    ServerStopping,
}

pub(super) async fn run(
    state: AppState,
    socket: AgentSocket,
    peer: SocketAddr,
    admission: Admission,
) {
    let device_id = admission.admitted.device.id.clone();
    let group_id = admission.admitted.group.id.clone();
    let mut registration = state.agents.register(device_id.clone(), group_id.clone());
    if registration.replaced_older {
        tracing::info!(device = %device_id, %peer, "agent: a new connection of this device replaces the older one");
    } else {
        records::announce_online(state.store.as_ref(), &state.events, &admission.admitted).await;
    }
    tracing::info!(device = %device_id, %peer, group = %group_id, "agent: connected");

    let (mut sink, mut stream) = socket.split();
    let end = 'session: {
        // A stock MeshAgent waits to hear about its JavaScript core; asking for its hash and then
        // answering "core OK" keeps it connected without sending one.
        if admission.runs_javascript()
            && !send(
                &mut sink,
                Message::Binary(wire::encode_command(cmd::CORE_MODULE_HASH, 0, &[]).into()),
            )
            .await
        {
            break 'session End::SendFailed;
        }
        let ping_every = Duration::from_secs(state.config.agent_ping_interval_secs.max(1));
        let silent_after = Duration::from_secs(state.config.agent_idle_timeout_secs.max(1));
        let mut pings = interval_at(Instant::now() + ping_every, ping_every);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let mut info_limit = InfoLimit::default();
        loop {
            tokio::select! {
                _ = registration.replaced.cancelled() => break End::Replaced,
                _ = registration.removed.cancelled() => break End::Removed,
                () = state.stopping.cancelled() => break End::ServerStopping,
                message = stream.next() => {
                    let message = match message {
                        Some(Ok(message)) => message,
                        Some(Err(e)) => {
                            // e.g. a message over MAX_MESSAGE: worth knowing, since the agent
                            // will reconnect and may send it again.
                            tracing::info!(device = %device_id, %peer, "agent: reading failed: {e}");
                            break End::Closed;
                        }
                        None => break End::Closed,
                    };
                    last_heard = Instant::now();
                    let ok = match message {
                        Message::Binary(frame) => on_binary(&state, &mut sink, &device_id, &frame, &mut info_limit).await,
                        Message::Text(text) => on_json(&state, &mut sink, &device_id, text.as_str(), &mut info_limit).await,
                        Message::Close(_) => break End::Closed,
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => true,
                    };
                    if !ok {
                        break End::SendFailed;
                    }
                }
                Some(outgoing) = registration.outbox.recv() => {
                    let message = match outgoing {
                        Outgoing::Text(text) => Message::Text(text.into()),
                        Outgoing::Binary(bytes) => Message::Binary(bytes.into()),
                    };
                    if !send(&mut sink, message).await {
                        break End::SendFailed;
                    }
                }
                _ = pings.tick() => {
                    if last_heard.elapsed() >= silent_after {
                        break End::Silent;
                    }
                    if !send(&mut sink, Message::Ping(Default::default())).await {
                        break End::SendFailed;
                    }
                }
            }
        }
    };
    let close = match end {
        End::Closed => None,
        End::ServerStopping => Some(Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "server stopping".into(),
        }))),
        _ => Some(Message::Close(None)),
    };
    if let Some(close) = close {
        let _ = timeout(SEND_DEADLINE, sink.send(close)).await;
    }
    // On the way down nobody is left to tell, and thousands of offline writes would only delay
    // the stop: every agent is offline when the server starts again anyway. A machine whose
    // Intel AMT is still connected stays online (`mps/linking.rs`).
    let amt_connected = state.amt.is_online(&device_id);
    if state.agents.unregister(&device_id, registration.generation)
        && !matches!(end, End::ServerStopping)
        && !amt_connected
    {
        records::announce_offline(state.store.as_ref(), &state.events, &device_id, &group_id).await;
    }
    // Logged last: once this line is out, the device's state says the agent is gone.
    if amt_connected {
        tracing::info!(device = %device_id, %peer, reason = ?end, "agent: disconnected (the machine stays online through Intel AMT)");
    } else {
        tracing::info!(device = %device_id, %peer, reason = ?end, "agent: disconnected");
    }
}

/// Post-authentication binary commands: `[u16 command][u16 request id][body]`.
async fn on_binary(
    state: &AppState,
    sink: &mut Sink,
    device: &tether_common::ids::DeviceId,
    frame: &[u8],
    info_limit: &mut InfoLimit,
) -> bool {
    if frame.first() == Some(&b'{') {
        // MeshCentral-era peers may carry JSON in binary frames.
        return match std::str::from_utf8(frame) {
            Ok(text) => on_json(state, sink, device, text, info_limit).await,
            Err(_) => true,
        };
    }
    match wire::command_id(frame) {
        // The agent's core hash (or "no core"): whatever it runs, it needs nothing from us.
        Some(cmd::CORE_MODULE_HASH) => {
            send(
                sink,
                Message::Binary(wire::encode_command(cmd::CORE_OK, 0, &[]).into()),
            )
            .await
        }
        Some(command) => {
            tracing::debug!(%device, command, "agent: ignoring a binary command");
            true
        }
        None => true,
    }
}

async fn on_json(
    state: &AppState,
    sink: &mut Sink,
    device: &tether_common::ids::DeviceId,
    text: &str,
    info_limit: &mut InfoLimit,
) -> bool {
    if text.len() > MAX_AGENT_JSON {
        tracing::warn!(%device, len = text.len(), "agent: ignoring an oversized JSON message");
        return true;
    }
    match agent_proto::parse_from_agent(text) {
        Some(AgentToServer::AgentInfo(_)) if !info_limit.allow() => {
            tracing::debug!(%device, "agent: ignoring an agentinfo sent too soon after the last");
            true
        }
        Some(AgentToServer::AgentInfo(info)) => {
            if let Err(e) =
                records::store_agent_info(state.store.as_ref(), &state.events, device, &info).await
            {
                tracing::error!(%device, "agent: cannot store the agent's info: {e}");
            }
            crate::mps::link_agent(state, device, &info).await;
            state
                .updates
                .agent_reported(&state.agents, device, &info.agent_version);
            true
        }
        Some(AgentToServer::UpdateFailed {
            version,
            running,
            why,
        }) => {
            // The agent's words: cleaned like every agent string before the log and consoles.
            let (why, _) = super::strings::clean(&why, 500);
            let (version, _) = super::strings::clean(&version, 64);
            let (running, _) = super::strings::clean(&running, 64);
            tracing::warn!(%device, %version, %running, "agent: update failed: {why}");
            state
                .updates
                .agent_failed(&state.agents, device, &version, &why);
            true
        }
        Some(AgentToServer::ChatOpened(mut report)) => {
            // The agent's words reach the administrator: cleaned like every agent string.
            let clean = |text: &mut Option<String>| {
                if let Some(value) = text {
                    *value = super::strings::clean(value, 300).0;
                }
            };
            clean(&mut report.user);
            clean(&mut report.display);
            clean(&mut report.error);
            state.relay.chat_opens().answered(device, report);
            true
        }
        Some(AgentToServer::Ping) => {
            send(
                sink,
                Message::Text(agent_proto::to_json(&ServerToAgent::Pong).into()),
            )
            .await
        }
        Some(AgentToServer::Pong) => true,
        Some(AgentToServer::Unknown) | None => {
            tracing::debug!(%device, "agent: ignoring a JSON message it is too early to understand");
            true
        }
    }
}

/// Each `agentinfo` is a store write and an event to every console watching the group, so an
/// agent gets a few at once and then one per interval.
struct InfoLimit {
    tokens: u32,
    refilled: Instant,
}

impl InfoLimit {
    const BURST: u32 = 3;
    const EVERY: Duration = Duration::from_secs(10);

    fn allow(&mut self) -> bool {
        let earned = (self.refilled.elapsed().as_secs() / Self::EVERY.as_secs()) as u32;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(Self::BURST);
            self.refilled = Instant::now();
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

impl Default for InfoLimit {
    fn default() -> Self {
        InfoLimit {
            tokens: Self::BURST,
            refilled: Instant::now(),
        }
    }
}

/// `false` when the peer is gone or stopped reading.
async fn send(sink: &mut Sink, message: Message) -> bool {
    matches!(timeout(SEND_DEADLINE, sink.send(message)).await, Ok(Ok(())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_info_is_limited_to_a_burst_then_one_per_interval() {
        let mut limit = InfoLimit::default();
        assert!((0..InfoLimit::BURST).all(|_| limit.allow()));
        assert!(!limit.allow());
        // One interval later, one more.
        limit.refilled = Instant::now().checked_sub(InfoLimit::EVERY).unwrap();
        assert!(limit.allow());
        assert!(!limit.allow());
    }
}
