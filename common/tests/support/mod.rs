//! Shared set-up for the handshake tests: fixed identities, machine builders and a pump that
//! carries frames between an agent and a server until neither has anything left to say.

#![allow(dead_code)]

pub mod fixtures;

use std::sync::Arc;

use base64::Engine;
use tether_common::handshake::rsa::{RsaSigner, RsaVerifier, rsa_public_key_of_cert};
use tether_common::handshake::{
    AgentConfig, AgentHandshake, AuthInfo, HandshakeError, Hash, Nonce, ServerConfig, ServerEvent,
    ServerHandshake, sha384,
};

pub const AGENT_NONCE: Nonce = [0x11; 48];
pub const SERVER_NONCE: Nonce = [0x22; 48];
pub const MESH_ID: [u8; 48] = [0x33; 48];

pub fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("fixture PEM is base64")
}

pub fn agent_cert() -> Vec<u8> {
    pem_to_der(fixtures::AGENT_CERT_PEM)
}

pub fn agent_server_cert() -> Vec<u8> {
    pem_to_der(fixtures::AGENT_SERVER_CERT_PEM)
}

pub fn web_cert() -> Vec<u8> {
    pem_to_der(fixtures::WEB_CERT_PEM)
}

/// SHA-384 of the outer certificate's full DER: the H both sides agree on.
pub fn web_hash() -> Hash {
    sha384(&web_cert())
}

/// The `.msh` ServerID of the fixture agent-server identity.
pub fn server_id() -> Hash {
    sha384(&rsa_public_key_of_cert(&agent_server_cert()).unwrap())
}

pub fn agent_signer() -> Arc<RsaSigner> {
    Arc::new(RsaSigner::from_pkcs8(&pem_to_der(fixtures::AGENT_KEY_PEM)).unwrap())
}

pub fn server_signer() -> Arc<RsaSigner> {
    Arc::new(RsaSigner::from_pkcs8(&pem_to_der(fixtures::AGENT_SERVER_KEY_PEM)).unwrap())
}

pub fn auth_info() -> AuthInfo {
    AuthInfo {
        info_version: 1,
        agent_id: 6,
        agent_version: 1,
        platform_type: 4,
        mesh_id: MESH_ID,
        capabilities: 0,
        hostname: "fixture-host".into(),
    }
}

pub fn agent_config(pinned: Option<Hash>) -> AgentConfig {
    AgentConfig {
        server_id: server_id(),
        pinned_web_hash: pinned,
        agent_cert_der: agent_cert(),
        auth_info: auth_info(),
    }
}

pub fn agent(pinned: Option<Hash>, nonce: Nonce) -> AgentHandshake {
    AgentHandshake::new(
        agent_config(pinned),
        web_hash(),
        nonce,
        agent_signer(),
        Arc::new(RsaVerifier),
    )
}

pub fn server_config() -> Arc<ServerConfig> {
    Arc::new(ServerConfig {
        accepted_web_hashes: vec![web_hash()],
        agent_server_cert_der: agent_server_cert(),
    })
}

pub fn server(nonce: Nonce) -> ServerHandshake {
    ServerHandshake::new(
        server_config(),
        nonce,
        server_signer(),
        Arc::new(RsaVerifier),
    )
}

/// Every frame that crossed, in order, tagged with its direction.
#[derive(Debug, Default)]
pub struct Transcript {
    pub to_server: Vec<Vec<u8>>,
    pub to_agent: Vec<Vec<u8>>,
}

/// Runs the exchange to the end; the server accepts every verified agent.
pub fn pump(
    agent: &mut AgentHandshake,
    server: &mut ServerHandshake,
) -> Result<Transcript, HandshakeError> {
    let mut transcript = Transcript::default();
    loop {
        let mut progressed = false;
        while let Some(frame) = agent.poll_transmit() {
            progressed = true;
            server.handle_input(&frame)?;
            transcript.to_server.push(frame);
            while let Some(ServerEvent::AgentVerified) = server.poll_event() {
                server.accept()?;
            }
        }
        while let Some(frame) = server.poll_transmit() {
            progressed = true;
            agent.handle_input(&frame)?;
            transcript.to_agent.push(frame);
        }
        if !progressed {
            return Ok(transcript);
        }
    }
}

pub fn command_of(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[0], frame[1]])
}
