//! Feeds arbitrary frames to both handshake machines. Run with `cargo +nightly fuzz run handshake`
//! from `common/`.
//!
//! The crypto is fake so the fuzzer can pass the checks and explore the states behind them: a
//! "certificate" is its own public key, and a signature is valid when it is `sha384(key || message)`
//! truncated to 4 bytes, which the fuzzer can learn from comparisons.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tether_common::handshake::{
    AgentConfig, AgentHandshake, AuthInfo, ServerConfig, ServerEvent, ServerHandshake, SignError,
    Signer, Verifier, sha384,
};

struct FakeKey(&'static [u8]);

impl Signer for FakeKey {
    fn sign_rsa_sha384(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(fake_signature(self.0, message))
    }
}

struct FakeVerifier;

impl Verifier for FakeVerifier {
    fn rsa_public_key(&self, cert_der: &[u8]) -> Option<Vec<u8>> {
        (!cert_der.is_empty()).then(|| cert_der.to_vec())
    }

    fn verify_rsa_sha384(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        signature == fake_signature(public_key, message)
    }
}

fn fake_signature(key: &[u8], message: &[u8]) -> Vec<u8> {
    sha384(&[key, message].concat())[..4].to_vec()
}

const SERVER_KEY: &[u8] = b"S";
const AGENT_KEY: &[u8] = b"A";
const WEB_HASH: [u8; 48] = [7; 48];

// Input: a sequence of `[target byte][u16 length][frame]` records; target bit 0 picks the agent
// or the server.
fuzz_target!(|data: &[u8]| {
    let auth_info = AuthInfo {
        info_version: 1,
        agent_id: 6,
        agent_version: 1,
        platform_type: 1,
        mesh_id: [1; 48],
        capabilities: 0,
        hostname: "fuzz".into(),
    };
    let config = AgentConfig {
        server_id: sha384(SERVER_KEY),
        pinned_web_hash: data.first().filter(|b| **b & 0x80 != 0).map(|_| WEB_HASH),
        agent_cert_der: AGENT_KEY.to_vec(),
        auth_info,
    };
    let mut agent = AgentHandshake::new(
        config,
        WEB_HASH,
        [2; 48],
        Arc::new(FakeKey(AGENT_KEY)),
        Arc::new(FakeVerifier),
    );
    let server_config = Arc::new(ServerConfig {
        accepted_web_hashes: vec![WEB_HASH],
        agent_server_cert_der: SERVER_KEY.to_vec(),
    });
    let mut server = ServerHandshake::new(
        server_config,
        [3; 48],
        Arc::new(FakeKey(SERVER_KEY)),
        Arc::new(FakeVerifier),
    );

    let mut rest = data;
    while rest.len() >= 3 {
        let target = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let frame = &rest[3..3 + len];
        rest = &rest[3 + len..];
        if target & 1 == 0 {
            let _ = agent.handle_input(frame);
        } else {
            let _ = server.handle_input(frame);
            if let Some(ServerEvent::AgentVerified) = server.poll_event() {
                assert!(
                    server.verified_agent().is_some(),
                    "the event implies a verified agent"
                );
                let _ = server.accept();
            }
        }
        while agent.poll_transmit().is_some() {}
        while server.poll_transmit().is_some() {}
        while agent.poll_event().is_some() {}
    }
});
