//! What a message from the server asks of the agent, once authenticated.

use crate::agent_proto::{self, ServerToAgent};
use crate::handshake::wire::{self, cmd};
use crate::relay::TunnelRequest;

use super::ServerMessage;

#[derive(Debug)]
pub(crate) enum Incoming {
    /// "Join this relay session."
    Tunnel(TunnelRequest),
    /// "Remove yourself", asked by this user.
    Uninstall(crate::ids::UserId),
    /// "Update yourself" (checked by the driver, which holds the keys and the files).
    Update(crate::agent_update::UpdateOffer),
    Rollback,
    /// "Open the messenger for the person at the screen."
    OpenChat(crate::relay::chat::OpenChat),
    /// A JSON `ping`: answer `pong`.
    Ping,
    /// "Which JavaScript core do you run?"
    CoreModuleHashQuery,
    /// A handshake command (1–9) after authentication: the server is confused or hostile.
    HandshakeCommand(u16),
    Closed(String),
    /// A JSON message whose action this agent does not know.
    Unknown,
    /// Nothing to do: a pong, a WebSocket control frame, a binary command we do not serve, or a
    /// binary frame that only looks like JSON.
    Nothing,
}

pub(crate) fn classify(message: &ServerMessage<'_>) -> Incoming {
    match message {
        ServerMessage::Text(text) => classify_json(text),
        // MeshCentral-era peers may carry JSON in binary frames.
        ServerMessage::Binary(frame) if frame.first() == Some(&b'{') => {
            match std::str::from_utf8(frame) {
                Ok(text) => classify_json(text),
                Err(_) => Incoming::Nothing,
            }
        }
        ServerMessage::Binary(frame) => match wire::command_id(frame) {
            Some(cmd::CORE_MODULE_HASH) => Incoming::CoreModuleHashQuery,
            Some(command) if command < cmd::FIRST_POST_AUTH => Incoming::HandshakeCommand(command),
            _ => Incoming::Nothing,
        },
        ServerMessage::Control => Incoming::Nothing,
        ServerMessage::Close { detail } => Incoming::Closed((*detail).to_owned()),
    }
}

fn classify_json(text: &str) -> Incoming {
    match agent_proto::parse_from_server(text) {
        Some(ServerToAgent::Tunnel(tunnel)) => Incoming::Tunnel(tunnel),
        Some(ServerToAgent::Uninstall { by }) => Incoming::Uninstall(by),
        Some(ServerToAgent::Update(offer)) => Incoming::Update(offer),
        Some(ServerToAgent::Rollback) => Incoming::Rollback,
        Some(ServerToAgent::OpenChat(open)) => Incoming::OpenChat(open),
        Some(ServerToAgent::Ping) => Incoming::Ping,
        Some(ServerToAgent::Pong) => Incoming::Nothing,
        Some(ServerToAgent::Unknown) | None => Incoming::Unknown,
    }
}

/// The answer to the core-module query: no core, a 4-byte command as MeshAgent gives.
pub(crate) fn no_core_module() -> Vec<u8> {
    wire::encode_command(cmd::CORE_MODULE_HASH, 0, &[])
}
