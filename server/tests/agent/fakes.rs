//! Fake peers built from the real sans-IO machines, each cheating in one way: an agent whose
//! signature is tampered with, and a server whose signature is.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tether_common::handshake::rsa::{RsaSigner, RsaVerifier, rsa_public_key_of_cert};
use tether_common::handshake::{
    AgentHandshake, Hash, ServerConfig, ServerEvent, ServerHandshake, sha384,
};
use tether_common::ids::DeviceId;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;

use crate::common::fake_agent::{AgentSocket, open_agent_handshake, rsa_identity};
use crate::common::{self, TestServer};
use crate::support::DEADLINE;

/// An RSA-2048 key (PKCS#8 DER) and a self-signed certificate (DER) for it.
pub fn identity() -> (Vec<u8>, Vec<u8>) {
    rsa_identity("localhost")
}

fn flip_last_byte(mut frame: Vec<u8>) -> Vec<u8> {
    *frame.last_mut().unwrap() ^= 0x01;
    frame
}

/// How a fake agent's handshake with the real server ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// The server confirmed (command 4).
    Accepted,
    /// The server closed the connection.
    Closed,
    /// The server said something our machine refused, or nothing before the deadline.
    Stuck,
}

/// A scripted agent for the real server, built on the real `AgentHandshake`.
pub struct FakeAgent {
    key_pkcs8: Vec<u8>,
    cert: Vec<u8>,
    pub mesh_id: [u8; 48],
    /// Alter the last byte of our command 2 (the agent's signature).
    pub tamper_signature: bool,
    /// The outer-certificate pin to present (command 4 skip when it matches).
    pub pinned: Option<Hash>,
    /// Sent as a stock agent's `agentName` JSON before the handshake.
    pub agent_name: Option<String>,
    /// Text frames sent once accepted, before closing.
    pub after_auth: Vec<String>,
}

impl FakeAgent {
    pub fn new(mesh_id: [u8; 48]) -> FakeAgent {
        let (key_pkcs8, cert) = identity();
        FakeAgent {
            key_pkcs8,
            cert,
            mesh_id,
            tamper_signature: false,
            pinned: None,
            agent_name: None,
            after_auth: Vec::new(),
        }
    }

    /// The device id the server gives this identity.
    pub fn device_id(&self) -> DeviceId {
        DeviceId::from_public_key(&rsa_public_key_of_cert(&self.cert).unwrap())
    }

    /// Connects to `/agent.ashx` and runs the handshake; also returns how long the handshake took
    /// from the open WebSocket to the server's confirmation.
    pub async fn run(&self, server: &TestServer) -> (Ending, std::time::Duration) {
        let (mut handshake, mut ws) = self.open(server).await;
        let started = Instant::now();
        if let Some(name) = &self.agent_name {
            let json = serde_json::json!({ "action": "agentName", "value": name });
            ws.send(Message::text(json.to_string())).await.unwrap();
        }
        let ending = self
            .drive(
                &mut handshake,
                &mut ws,
                tokio::time::sleep_until(started + DEADLINE),
            )
            .await;
        let took = started.elapsed();
        if ending == Ending::Accepted {
            for text in &self.after_auth {
                ws.send(Message::text(text.clone())).await.unwrap();
            }
        }
        let _ = ws.close(None).await;
        (ending, took)
    }

    /// Runs the handshake until the server confirms or closes, or `until` resolves (`Stuck`),
    /// and hands back the socket, still open in the last case (a held agent hears nothing).
    pub async fn run_until(
        &self,
        server: &TestServer,
        until: impl std::future::Future<Output = ()>,
    ) -> (Ending, AgentSocket) {
        let (mut handshake, mut ws) = self.open(server).await;
        let ending = self.drive(&mut handshake, &mut ws, until).await;
        (ending, ws)
    }

    async fn open(&self, server: &TestServer) -> (AgentHandshake, AgentSocket) {
        open_agent_handshake(
            server,
            &self.key_pkcs8,
            self.cert.clone(),
            self.mesh_id,
            self.pinned,
        )
        .await
    }

    async fn drive(
        &self,
        handshake: &mut AgentHandshake,
        ws: &mut AgentSocket,
        until: impl std::future::Future<Output = ()>,
    ) -> Ending {
        tokio::pin!(until);
        loop {
            while let Some(frame) = handshake.poll_transmit() {
                let frame = if self.tamper_signature && frame[..2] == [0, 2] {
                    flip_last_byte(frame)
                } else {
                    frame
                };
                if ws.send(Message::binary(frame)).await.is_err() {
                    break;
                }
            }
            if handshake.is_authenticated() {
                return Ending::Accepted;
            }
            let message = tokio::select! {
                () = &mut until => return Ending::Stuck,
                message = ws.next() => message,
            };
            match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ending::Closed,
                Some(Ok(Message::Binary(frame))) => {
                    if handshake.handle_input(&frame).is_err() {
                        return Ending::Stuck;
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

/// A loopback agent-server whose signature (its command 2) is altered. Returns its port and the
/// ServerID an agent must pin to trust its key.
pub async fn server_with_tampered_signature() -> (u16, Hash) {
    common::install_crypto_provider();
    let (tls_key, tls_cert) = identity();
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![tls_cert.clone().into()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(tls_key)),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let (agent_server_key, agent_server_cert) = identity();
    let server_id = sha384(&rsa_public_key_of_cert(&agent_server_cert).unwrap());
    let config = Arc::new(ServerConfig {
        accepted_web_hashes: vec![sha384(&tls_cert)],
        agent_server_cert_der: agent_server_cert,
    });
    let signer = Arc::new(RsaSigner::from_pkcs8(&agent_server_key).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, config, signer) = (acceptor.clone(), config.clone(), signer.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                let mut handshake =
                    ServerHandshake::new(config, [7; 48], signer, Arc::new(RsaVerifier));
                while let Some(Ok(message)) = ws.next().await {
                    let Message::Binary(frame) = message else {
                        continue;
                    };
                    if handshake.handle_input(&frame).is_err() {
                        return;
                    }
                    if let Some(ServerEvent::AgentVerified) = handshake.poll_event() {
                        let _ = handshake.accept();
                    }
                    while let Some(frame) = handshake.poll_transmit() {
                        let frame = if frame[..2] == [0, 2] {
                            flip_last_byte(frame)
                        } else {
                            frame
                        };
                        if ws.send(Message::binary(frame)).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, server_id)
}
