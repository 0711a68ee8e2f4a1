//! The authenticated control channel: report the machine, answer pings, keep the connection alive,
//! and notice when the server goes silent.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use anyhow::{anyhow, bail};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tether_common::agent_proto::{self, AgentToServer, ServerToAgent};
use tether_common::handshake::wire::{self, cmd};
use tether_common::relay::TunnelRequest;
use tokio::time::{Instant, MissedTickBehavior, interval_at, timeout};
use tokio_tungstenite::tungstenite::Message;

use crate::agent::Agent;
use crate::handshake::Socket;
use crate::info_report::{self, InfoReport};
use crate::relay;

/// A send that takes longer than this means the server stopped reading.
pub const SEND_DEADLINE: Duration = Duration::from_secs(20);
/// Relay sessions this agent serves at once. The server's per-device quota (96 by default)
/// keeps a well-behaved server below it; this bounds the tasks, sockets and shells a flood of
/// `tunnel` requests could make.
pub const MAX_TUNNELS: usize = 128;
/// Requests past [`MAX_TUNNELS`] are answered through the relay with an error, this many at a
/// time (each holds a socket until the console comes); past that they are only logged.
const MAX_TURNED_AWAY: usize = 8;

/// The agent's tunnel slots, shared by every control connection of the process (sessions outlive
/// the connection that asked for them).
#[derive(Clone)]
pub struct TunnelSlots {
    serving: Arc<Semaphore>,
    turning_away: Arc<Semaphore>,
}

impl Default for TunnelSlots {
    fn default() -> Self {
        TunnelSlots::new(MAX_TUNNELS, MAX_TURNED_AWAY)
    }
}

enum Slot {
    Serve(OwnedSemaphorePermit),
    TurnAway(OwnedSemaphorePermit),
    Full,
}

impl TunnelSlots {
    fn new(serving: usize, turning_away: usize) -> TunnelSlots {
        TunnelSlots {
            serving: Arc::new(Semaphore::new(serving)),
            turning_away: Arc::new(Semaphore::new(turning_away)),
        }
    }

    fn take(&self) -> Slot {
        if let Ok(permit) = self.serving.clone().try_acquire_owned() {
            return Slot::Serve(permit);
        }
        match self.turning_away.clone().try_acquire_owned() {
            Ok(permit) => Slot::TurnAway(permit),
            Err(_) => Slot::Full,
        }
    }
}

type Sink = SplitSink<Socket, Message>;

/// Serves until the connection ends; the error says why.
pub async fn serve(agent: &Agent, socket: Socket, relay: Arc<relay::Settings>) -> anyhow::Error {
    let (mut sink, mut stream) = socket.split();
    let mut report = InfoReport::default();
    if let Some(text) = info_report::collect().await.and_then(|i| report.changed(i))
        && let Err(e) = send(&mut sink, Message::text(text)).await
    {
        return e;
    }
    let mut info_checks = interval_at(
        Instant::now() + info_report::CHECK_EVERY,
        info_report::CHECK_EVERY,
    );
    info_checks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let every = agent.timing.ping_interval;
    let mut ticks = interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        let result = tokio::select! {
            message = stream.next() => match message {
                None => Err(anyhow!("the server closed the connection")),
                Some(Err(e)) => Err(anyhow!("connection failed: {e}")),
                Some(Ok(message)) => {
                    last_heard = Instant::now();
                    on_message(&mut sink, message, &relay, &agent.tunnels).await
                }
            },
            _ = info_checks.tick() => match info_report::collect().await.and_then(|i| report.changed(i)) {
                Some(text) => send(&mut sink, Message::text(text)).await,
                None => Ok(()),
            },
            _ = ticks.tick() => {
                if last_heard.elapsed() >= agent.timing.idle_timeout {
                    Err(anyhow!("the server went silent for {:?}", agent.timing.idle_timeout))
                } else {
                    // A WebSocket ping for the server and the TCP path, an application ping for
                    // proxies that answer WebSocket pings themselves.
                    match send(&mut sink, Message::Ping(Default::default())).await {
                        Ok(()) => send(&mut sink, Message::text(agent_proto::to_json(&AgentToServer::Ping))).await,
                        Err(e) => Err(e),
                    }
                }
            }
        };
        if let Err(e) = result {
            let _ = timeout(SEND_DEADLINE, sink.send(Message::Close(None))).await;
            return e;
        }
    }
}

async fn on_message(
    sink: &mut Sink,
    message: Message,
    relay: &Arc<relay::Settings>,
    tunnels: &TunnelSlots,
) -> anyhow::Result<()> {
    match message {
        Message::Text(text) => on_json(sink, text.as_str(), relay, tunnels).await,
        Message::Binary(frame) if frame.first() == Some(&b'{') => match std::str::from_utf8(&frame)
        {
            Ok(text) => on_json(sink, text, relay, tunnels).await,
            Err(_) => Ok(()),
        },
        Message::Binary(frame) => match wire::command_id(&frame) {
            // "Which JavaScript core do you run?" None: a 4-byte answer, as MeshAgent gives.
            Some(cmd::CORE_MODULE_HASH) => {
                send(
                    sink,
                    Message::binary(wire::encode_command(cmd::CORE_MODULE_HASH, 0, &[])),
                )
                .await
            }
            Some(command) if command < cmd::FIRST_POST_AUTH => {
                bail!("handshake command {command} after authentication")
            }
            _ => Ok(()),
        },
        Message::Close(frame) => bail!("the server closed the connection ({frame:?})"),
        _ => Ok(()),
    }
}

async fn on_json(
    sink: &mut Sink,
    text: &str,
    relay: &Arc<relay::Settings>,
    tunnels: &TunnelSlots,
) -> anyhow::Result<()> {
    if let Some(tunnel) = tether_common::relay::parse_tunnel(text) {
        start_tunnel(relay.clone(), tunnels, tunnel);
        return Ok(());
    }
    match agent_proto::parse_from_server(text) {
        Some(ServerToAgent::Ping) => {
            send(
                sink,
                Message::text(agent_proto::to_json(&AgentToServer::Pong)),
            )
            .await
        }
        Some(ServerToAgent::Pong) => Ok(()),
        Some(ServerToAgent::Unknown) | None => {
            tracing::debug!("ignoring a server message this agent does not know");
            Ok(())
        }
    }
}

/// Each session runs on its own task, holding its slot, and outlives this connection if it drops.
fn start_tunnel(relay: Arc<relay::Settings>, tunnels: &TunnelSlots, tunnel: TunnelRequest) {
    match tunnels.take() {
        Slot::Serve(slot) => {
            tokio::spawn(async move {
                if let Err(e) = relay::serve_tunnel(relay, tunnel).await {
                    tracing::warn!("relay session failed: {e:#}");
                }
                drop(slot);
            });
        }
        Slot::TurnAway(slot) => {
            tracing::warn!(user = %tunnel.user, kind = %tunnel.kind, "relay: refusing a session: already serving {MAX_TUNNELS}");
            tokio::spawn(async move {
                let message = format!(
                    "this device is already serving {MAX_TUNNELS} sessions at once; close one and try again"
                );
                if let Err(e) = relay::turn_away(relay, tunnel, &message).await {
                    tracing::info!("could not tell the console its session was refused: {e:#}");
                }
                drop(slot);
            });
        }
        Slot::Full => {
            tracing::warn!(user = %tunnel.user, kind = %tunnel.kind, "relay: dropping a session request: already serving {MAX_TUNNELS} and refusing {MAX_TURNED_AWAY}");
        }
    }
}

async fn send(sink: &mut Sink, message: Message) -> anyhow::Result<()> {
    timeout(SEND_DEADLINE, sink.send(message))
        .await
        .map_err(|_| anyhow!("the server stopped reading"))??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_tunnels_are_turned_away_then_dropped_and_slots_come_back() {
        let slots = TunnelSlots::new(2, 1);
        let first = slots.take();
        let second = slots.take();
        assert!(matches!(
            (&first, &second),
            (Slot::Serve(_), Slot::Serve(_))
        ));
        let refusing = slots.take();
        assert!(matches!(refusing, Slot::TurnAway(_)));
        assert!(matches!(slots.take(), Slot::Full));
        drop(first);
        let third = slots.take();
        assert!(
            matches!(third, Slot::Serve(_)),
            "an ended session frees its slot"
        );
        drop(refusing);
        assert!(matches!(slots.take(), Slot::TurnAway(_)));
    }
}
