//! What every scripted agent in the tests starts with: an RSA identity, the real sans-IO
//! `AgentHandshake` configured for a running `TestServer`, and an open `/agent.ashx` WebSocket.
//! Each test's fake then drives (or bends) the handshake its own way.

use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair, PKCS_RSA_SHA384, RsaKeySize};
use tether_common::handshake::rsa::{RsaSigner, RsaVerifier, rsa_public_key_of_cert};
use tether_common::handshake::{AgentConfig, AgentHandshake, AuthInfo, Hash, sha384};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{TestServer, read_cert_der};

pub type AgentSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An RSA-2048 key (PKCS#8 DER) and a self-signed certificate (DER) for it, named `name`.
pub fn rsa_identity(name: &str) -> (Vec<u8>, Vec<u8>) {
    let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA384, RsaKeySize::_2048).unwrap();
    let cert = CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (key.serialize_der(), cert.der().to_vec())
}

/// An agent with this identity, joining group `mesh_id` and presenting `pinned_web_hash`: its
/// handshake machine (trusting `server`'s agent-server key) and a WebSocket to `/agent.ashx`.
pub async fn open_agent_handshake(
    server: &TestServer,
    key_pkcs8: &[u8],
    cert: Vec<u8>,
    mesh_id: [u8; 48],
    pinned_web_hash: Option<Hash>,
) -> (AgentHandshake, AgentSocket) {
    let web_cert = read_cert_der(&server.file("webserver-cert-public.crt"));
    let agent_server_cert = read_cert_der(&server.file("agentserver-cert-public.crt"));
    let config = AgentConfig {
        server_id: sha384(&rsa_public_key_of_cert(&agent_server_cert).unwrap()),
        pinned_web_hash,
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
    let signer = Arc::new(RsaSigner::from_pkcs8(key_pkcs8).unwrap());
    let mut nonce = [0u8; 48];
    rand::fill(&mut nonce);
    let handshake = AgentHandshake::new(
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
    let (ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector))
            .await
            .unwrap();
    (handshake, ws)
}
