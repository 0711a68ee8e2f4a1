//! A scripted agent for the relay tests: it passes the real handshake (the common crate's
//! `AgentHandshake`), stays connected, and hands the test every `tunnel` request the server sends.

use futures_util::{SinkExt, StreamExt};
use tether_common::handshake::rsa::rsa_public_key_of_cert;
use tether_common::handshake::sha384;
use tether_common::ids::{DeviceId, mesh_base64};
use tether_common::relay::{TunnelRequest, parse_tunnel};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::common::TestServer;
use crate::common::fake_agent::{open_agent_handshake, rsa_identity};
use crate::support::DEADLINE;

pub struct FakeAgent {
    pub device: DeviceId,
    tunnels: mpsc::UnboundedReceiver<TunnelRequest>,
    /// Ends with the close frame the server sent, if any.
    connection: JoinHandle<Option<CloseFrame>>,
}

impl FakeAgent {
    /// Connects to `/agent.ashx` as a new device presenting the enrolment key `mesh_id` (a
    /// `.msh`'s MeshID) and waits until the server accepts it.
    pub async fn connect(server: &TestServer, mesh_id: [u8; 48]) -> FakeAgent {
        let (key_pkcs8, cert) = rsa_identity("fake-agent");
        let public_key = rsa_public_key_of_cert(&cert).unwrap();
        let device = DeviceId(mesh_base64(&sha384(&public_key)));
        let (mut handshake, mut ws) =
            open_agent_handshake(server, &key_pkcs8, cert, mesh_id, None).await;
        let deadline = Instant::now() + DEADLINE;
        loop {
            while let Some(frame) = handshake.poll_transmit() {
                ws.send(Message::binary(frame)).await.unwrap();
            }
            if handshake.is_authenticated() {
                break;
            }
            match timeout_at(deadline, ws.next()).await {
                Ok(Some(Ok(Message::Binary(frame)))) => handshake.handle_input(&frame).unwrap(),
                Ok(Some(Ok(_))) => {}
                other => panic!("the fake agent's handshake failed: {other:?}"),
            }
        }
        let (sender, tunnels) = mpsc::unbounded_channel();
        let connection = tokio::spawn(async move {
            // Reading also answers the server's pings.
            while let Some(Ok(message)) = ws.next().await {
                match message {
                    Message::Text(text) => {
                        if let Some(tunnel) = parse_tunnel(&text) {
                            let _ = sender.send(tunnel);
                        }
                    }
                    Message::Close(frame) => return frame,
                    _ => {}
                }
            }
            None
        });
        FakeAgent {
            device,
            tunnels,
            connection,
        }
    }

    /// The next `tunnel` request the server sent.
    pub async fn next_tunnel(&mut self) -> TunnelRequest {
        match timeout_at(Instant::now() + DEADLINE, self.tunnels.recv()).await {
            Ok(Some(tunnel)) => tunnel,
            other => panic!("no tunnel request reached the fake agent: {other:?}"),
        }
    }

    pub fn disconnect(self) {
        self.connection.abort();
    }

    /// Waits until the server ends the agent's connection; the close frame it sent, if any.
    pub async fn closed(self) -> Option<CloseFrame> {
        match timeout_at(Instant::now() + DEADLINE, self.connection).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => panic!("the fake agent's reader failed: {e}"),
            Err(_) => panic!("the server did not end the agent's connection"),
        }
    }
}
