//! Fake peers built from the real sans-IO machines, each cheating in one way: an agent whose
//! signature is tampered with, and a server whose signature is.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rcgen::{CertificateParams, KeyPair, PKCS_RSA_SHA384, RsaKeySize};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tether_common::handshake::rsa::{RsaSigner, RsaVerifier, rsa_public_key_of_cert};
use tether_common::handshake::{
    AgentConfig, AgentHandshake, AuthInfo, Hash, ServerConfig, ServerEvent, ServerHandshake, sha384,
};
use tokio::net::TcpListener;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{self, TestServer};
use crate::support::DEADLINE;

/// An RSA-2048 key (PKCS#8 DER) and a self-signed certificate (DER) for it.
pub fn identity() -> (Vec<u8>, Vec<u8>) {
    let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA384, RsaKeySize::_2048).unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap();
    (key.serialize_der(), cert.der().to_vec())
}

fn flip_last_byte(mut frame: Vec<u8>) -> Vec<u8> {
    *frame.last_mut().unwrap() ^= 0x01;
    frame
}

/// Runs a handshake against the real server with the agent's signature (its command 2) altered.
/// Returns how the server ended it: `true` if it closed the connection.
pub async fn agent_with_tampered_signature(server: &TestServer, mesh_id: [u8; 48]) -> bool {
    let web_cert = common::read_cert_der(&server.file("webserver-cert-public.crt"));
    let agent_cert = common::read_cert_der(&server.file("agentserver-cert-public.crt"));
    let server_id = sha384(&rsa_public_key_of_cert(&agent_cert).unwrap());
    let (key, cert) = identity();
    let config = AgentConfig {
        server_id,
        pinned_web_hash: None,
        agent_cert_der: cert,
        auth_info: AuthInfo {
            info_version: 1,
            agent_id: 6,
            agent_version: 1,
            platform_type: 1,
            mesh_id,
            capabilities: 0,
            hostname: "impostor".into(),
        },
    };
    let signer = Arc::new(RsaSigner::from_pkcs8(&key).unwrap());
    let mut handshake = AgentHandshake::new(config, sha384(&web_cert), [9; 48], signer, Arc::new(RsaVerifier));

    let request = format!("wss://127.0.0.1:{}/agent.ashx", server.port).into_client_request().unwrap();
    let connector = tokio_tungstenite::Connector::Rustls(server.tls_client_config());
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector)).await.unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        while let Some(frame) = handshake.poll_transmit() {
            let frame = if frame[..2] == [0, 2] { flip_last_byte(frame) } else { frame };
            if ws.send(Message::binary(frame)).await.is_err() {
                return true;
            }
        }
        match timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(Message::Binary(frame)))) => {
                if handshake.handle_input(&frame).is_err() {
                    return false;
                }
                assert!(!handshake.is_authenticated(), "the server accepted a tampered signature");
            }
            Ok(Some(Ok(_))) => {}
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
        .with_single_cert(vec![tls_cert.clone().into()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(tls_key)))
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
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else { return };
                let mut handshake = ServerHandshake::new(config, [7; 48], signer, Arc::new(RsaVerifier));
                while let Some(Ok(message)) = ws.next().await {
                    let Message::Binary(frame) = message else { continue };
                    if handshake.handle_input(&frame).is_err() {
                        return;
                    }
                    if let Some(ServerEvent::AgentVerified) = handshake.poll_event() {
                        let _ = handshake.accept();
                    }
                    while let Some(frame) = handshake.poll_transmit() {
                        let frame = if frame[..2] == [0, 2] { flip_last_byte(frame) } else { frame };
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
