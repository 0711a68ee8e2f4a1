//! An online agent: reports its machine, then keeps the connection alive (answering the server's
//! pings, sending its own heartbeat) until its hold ends or the run is stopped.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether_common::agent_proto::{self, AgentInfo, AgentToServer, ServerToAgent};
use tether_common::handshake::wire::{self, cmd};
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;

use super::{Cause, Failure, Shared, Socket, fail, hostname, update};

/// A send that takes longer means the server stopped reading.
const SEND_DEADLINE: Duration = Duration::from_secs(20);
/// How often a holding agent sends a WebSocket ping and a `{"action":"ping"}`, as the real agent.
const HEARTBEAT: Duration = Duration::from_secs(60);

/// How a hold ended without a failure.
pub(super) enum Ended {
    /// The hold's time is up, or the run was stopped.
    Done,
    /// Took an update offer: reconnect as this version.
    Updated(String),
}

/// Online: report the machine, then keep the connection alive until the hold ends (or, with
/// `--accept-updates`, an update offer was taken).
pub(super) async fn hold(
    shared: &Shared,
    index: usize,
    version: &str,
    mut socket: Socket,
) -> Result<Ended, Failure> {
    let info = agent_proto::to_json(&AgentToServer::AgentInfo(agent_info(
        index,
        version,
        shared.accept_updates,
    )));
    send(&mut socket, Message::text(info)).await?;
    let deadline = shared.hold.map(|hold| Instant::now() + hold);
    // Spread heartbeats so 10,000 agents started together do not ping together.
    let first = HEARTBEAT / 2 + HEARTBEAT.mul_f64(rand::random::<f64>());
    let mut heartbeat = interval_at(Instant::now() + first, HEARTBEAT);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let result = loop {
        tokio::select! {
            _ = shared.stop.cancelled() => break Ok(Ended::Done),
            _ = until(deadline) => break Ok(Ended::Done),
            _ = heartbeat.tick() => {
                // Our application pings are answered, so this much silence is a dead connection.
                if last_heard.elapsed() > 2 * HEARTBEAT {
                    break Err(fail(Cause::Dropped, "the server went silent"));
                }
                if let Err(e) = send(&mut socket, Message::Ping(Default::default())).await {
                    break Err(e);
                }
                if let Err(e) = send(&mut socket, Message::text(agent_proto::to_json(&AgentToServer::Ping))).await {
                    break Err(e);
                }
            }
            message = socket.next() => {
                last_heard = Instant::now();
                // WebSocket pings are answered by tungstenite as we keep reading.
                let reply = match message {
                    None => break Err(fail(Cause::Dropped, "connection ended")),
                    Some(Err(e)) => break Err(fail(Cause::Dropped, e)),
                    Some(Ok(Message::Close(frame))) => break Err(fail(Cause::Dropped, format!("close frame {frame:?}"))),
                    Some(Ok(message)) => {
                        if shared.accept_updates && let Some(offer) = update::offer_in(&message) {
                            match update::take(shared, index, &offer).await {
                                Ok(()) => break Ok(Ended::Updated(offer.version)),
                                Err(e) => break Err(e),
                            }
                        }
                        reply_to(&message)
                    }
                };
                if let Some(reply) = reply
                    && let Err(e) = send(&mut socket, reply).await
                {
                    break Err(e);
                }
            }
        }
    };
    if result.is_ok() {
        let _ = timeout(SEND_DEADLINE, socket.close(None)).await;
    }
    result
}

fn agent_info(index: usize, version: &str, updates: bool) -> AgentInfo {
    AgentInfo {
        protocol: agent_proto::AGENT_PROTOCOL_VERSION,
        hostname: hostname(index),
        os_name: "Tether loadgen".into(),
        os_version: env!("CARGO_PKG_VERSION").into(),
        arch: std::env::consts::ARCH.into(),
        agent_version: version.into(),
        // Without --accept-updates, simulated agents take no part in update campaigns.
        platform: if updates {
            tether_common::agent_update::platform()
        } else {
            String::new()
        },
        interfaces: Vec::new(),
        users: Vec::new(),
        uptime_secs: 1,
        system_uuid: String::new(),
    }
}

/// What a held agent answers: `pong` to a JSON `ping` (in a text frame, or a binary one as
/// MeshCentral sends its JSON), and "no JavaScript core" to a core hash request.
fn reply_to(message: &Message) -> Option<Message> {
    let json = match message {
        Message::Text(text) => text.as_str(),
        Message::Binary(frame) if frame.first() == Some(&b'{') => {
            std::str::from_utf8(frame).ok()?
        }
        Message::Binary(frame) if wire::command_id(frame) == Some(cmd::CORE_MODULE_HASH) => {
            return Some(Message::binary(wire::encode_command(
                cmd::CORE_MODULE_HASH,
                0,
                &[],
            )));
        }
        _ => return None,
    };
    match agent_proto::parse_from_server(json) {
        Some(ServerToAgent::Ping) => {
            Some(Message::text(agent_proto::to_json(&AgentToServer::Pong)))
        }
        _ => None,
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn send(socket: &mut Socket, message: Message) -> Result<(), Failure> {
    match timeout(SEND_DEADLINE, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(fail(Cause::Dropped, e)),
        Err(_) => Err(fail(Cause::Dropped, "the server stopped reading")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_json_pings_in_either_frame_type_and_core_requests() {
        let pong = Some(Message::text(r#"{"action":"pong"}"#));
        assert_eq!(reply_to(&Message::text(r#"{"action":"ping"}"#)), pong);
        assert_eq!(
            reply_to(&Message::binary(br#"{"action":"ping"}"#.to_vec())),
            pong
        );
        assert_eq!(reply_to(&Message::text(r#"{"action":"sysinfo"}"#)), None);
        assert_eq!(
            reply_to(&Message::binary(vec![0, 11, 0, 0])),
            Some(Message::binary(vec![0, 11, 0, 0]))
        );
        assert_eq!(reply_to(&Message::binary(vec![0, 16, 0, 0])), None);
    }
}
