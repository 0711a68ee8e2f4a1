//! A scripted agent for the relay tests: it passes the real handshake (the common crate's
//! `AgentHandshake`), stays connected, and hands the test every `tunnel` request the server sends.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rcgen::{CertificateParams, KeyPair, PKCS_RSA_SHA384, RsaKeySize};
use tether_common::handshake::rsa::{RsaSigner, RsaVerifier, rsa_public_key_of_cert};
use tether_common::handshake::{AgentConfig, AgentHandshake, AuthInfo, sha384};
use tether_common::ids::{DeviceId, GroupId, mesh_base64, mesh_base64_decode};
use tether_common::relay::{TunnelRequest, parse_tunnel};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{self, TestServer};
use crate::support::DEADLINE;

pub struct FakeAgent {
    pub device: DeviceId,
    tunnels: mpsc::UnboundedReceiver<TunnelRequest>,
    connection: JoinHandle<()>,
}

impl FakeAgent {
    /// Connects to `/agent.ashx` as a new device of `group` and waits until the server accepts it.
    pub async fn connect(server: &TestServer, group: &GroupId) -> FakeAgent {
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA384, RsaKeySize::_2048).unwrap();
        let cert = CertificateParams::new(vec!["fake-agent".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert = cert.der().to_vec();
        let public_key = rsa_public_key_of_cert(&cert).unwrap();
        let device = DeviceId(mesh_base64(&sha384(&public_key)));
        let web_cert = common::read_cert_der(&server.file("webserver-cert-public.crt"));
        let agent_server_cert = common::read_cert_der(&server.file("agentserver-cert-public.crt"));
        let mesh_id: [u8; 48] = mesh_base64_decode(group.as_str())
            .unwrap()
            .try_into()
            .unwrap();
        let config = AgentConfig {
            server_id: sha384(&rsa_public_key_of_cert(&agent_server_cert).unwrap()),
            pinned_web_hash: None,
            agent_cert_der: cert,
            auth_info: AuthInfo {
                info_version: 1,
                agent_id: 6,
                agent_version: 1,
                platform_type: 1,
                mesh_id,
                capabilities: 0,
                hostname: "fake-agent".into(),
            },
        };
        let signer = Arc::new(RsaSigner::from_pkcs8(&key.serialize_der()).unwrap());
        let mut nonce = [0u8; 48];
        rand::fill(&mut nonce);
        let mut handshake = AgentHandshake::new(
            config,
            sha384(&web_cert),
            nonce,
            signer,
            Arc::new(RsaVerifier),
        );

        let request = format!("wss://127.0.0.1:{}/agent.ashx", server.port)
            .into_client_request()
            .unwrap();
        let connector = tokio_tungstenite::Connector::Rustls(server.tls_client_config());
        let (mut ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector))
                .await
                .unwrap();
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
                if let Message::Text(text) = message
                    && let Some(tunnel) = parse_tunnel(&text)
                {
                    let _ = sender.send(tunnel);
                }
            }
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
}
