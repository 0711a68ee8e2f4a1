//! The agent's half of the handshake (agentcore.c `MeshServer_OnResponse` and the auth part of
//! `MeshServer_ProcessCommand`), stricter than MeshAgent: anything unexpected ends the connection.

use std::collections::VecDeque;
use std::sync::Arc;

use super::wire::{self, AuthInfo, cmd};
use super::{
    HandshakeError, Hash, MAX_HANDSHAKE_FRAMES, Nonce, Seen, Signer, Verifier,
    key_matches_server_id, signed_message,
};

/// What the agent knows before it connects.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The `.msh` ServerID: SHA-384 of the agent-server certificate's public key.
    pub server_id: Hash,
    /// The outer TLS certificate hash a previous connection proved to belong to this server, if any
    /// (MeshAgent's `ServerTlsCertHash`). Seeing it again lets the agent skip the server's signature.
    pub pinned_web_hash: Option<Hash>,
    /// The agent's own certificate (DER), whose key the [`Signer`] holds.
    pub agent_cert_der: Vec<u8>,
    pub auth_info: AuthInfo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// The server proved it holds the agent-server key and saw the same outer certificate as we did.
    /// Persist `web_cert_hash` as the new pin.
    ServerVerified { web_cert_hash: Hash },
    /// The server is verified (or pinned) and has accepted us: management traffic may flow.
    Authenticated { skipped_server_check: bool },
}

pub struct AgentHandshake {
    config: AgentConfig,
    signer: Arc<dyn Signer>,
    verifier: Arc<dyn Verifier>,
    seen_web_hash: Hash,
    agent_nonce: Nonce,
    server_nonce: Option<Nonce>,
    seen: Seen,
    skipped_server_check: bool,
    server_verified: bool,
    info_sent: bool,
    authenticated: bool,
    failed: bool,
    frames: u32,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<AgentEvent>,
}

impl AgentHandshake {
    /// Starts a handshake on a fresh connection whose TLS certificate hashed to `seen_web_hash`.
    /// `agent_nonce` must be fresh random bytes. The opening frames are ready in `poll_transmit`.
    pub fn new(
        config: AgentConfig,
        seen_web_hash: Hash,
        agent_nonce: Nonce,
        signer: Arc<dyn Signer>,
        verifier: Arc<dyn Verifier>,
    ) -> AgentHandshake {
        let skip = config.pinned_web_hash == Some(seen_web_hash);
        let mut handshake = AgentHandshake {
            config,
            signer,
            verifier,
            seen_web_hash,
            agent_nonce,
            server_nonce: None,
            seen: Seen::default(),
            skipped_server_check: skip,
            server_verified: skip,
            info_sent: false,
            authenticated: false,
            failed: false,
            frames: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        };
        // All opening frames go at once, as MeshAgent does: the round trips overlap.
        handshake
            .transmit
            .push_back(wire::encode_server_id(&handshake.config.server_id));
        if skip {
            handshake.transmit.push_back(wire::encode_auth_confirm());
        }
        handshake
            .transmit
            .push_back(wire::encode_auth_request(&seen_web_hash, &agent_nonce));
        if skip {
            handshake.send_auth_info();
        }
        handshake
    }

    /// Processes one binary frame from the server.
    pub fn handle_input(&mut self, frame: &[u8]) -> Result<(), HandshakeError> {
        if self.failed {
            return Err(HandshakeError::Failed);
        }
        let result = self.process(frame);
        if result.is_err() {
            self.failed = true;
            self.transmit.clear();
        }
        result
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<AgentEvent> {
        self.events.pop_front()
    }

    /// True once the server is verified and has confirmed us; from then on frames belong to the
    /// session and must not be fed here.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Whether this connection skipped the server's signature because the outer certificate was pinned.
    pub fn skipped_server_check(&self) -> bool {
        self.skipped_server_check
    }

    fn process(&mut self, frame: &[u8]) -> Result<(), HandshakeError> {
        let command = wire::command_id(frame).ok_or(HandshakeError::Truncated)?;
        if self.authenticated {
            return Err(HandshakeError::AlreadyAuthenticated(command));
        }
        self.frames += 1;
        if self.frames > MAX_HANDSHAKE_FRAMES {
            return Err(HandshakeError::TooManyFrames);
        }
        match command {
            cmd::AUTH_REQUEST => self.on_auth_request(frame),
            cmd::AUTH_VERIFY => self.on_auth_verify(frame),
            cmd::AUTH_CONFIRM => self.on_auth_confirm(frame),
            0..cmd::FIRST_POST_AUTH => Err(HandshakeError::Unexpected(command)),
            _ => Err(HandshakeError::NotAuthenticated(command)),
        }
    }

    /// The server's hash echo and nonce: answer with our certificate and signature.
    fn on_auth_request(&mut self, frame: &[u8]) -> Result<(), HandshakeError> {
        self.seen.first_time(cmd::AUTH_REQUEST)?;
        let (echoed_hash, server_nonce) = wire::parse_auth_request(frame)?;
        // The server tells us which outer certificate it serves; a different one means someone
        // else terminated our TLS connection.
        if echoed_hash != self.seen_web_hash {
            return Err(HandshakeError::WebCertHashMismatch);
        }
        self.server_nonce = Some(server_nonce);
        let message = signed_message(&self.seen_web_hash, &server_nonce, &self.agent_nonce);
        let signature = self.signer.sign_rsa_sha384(&message)?;
        self.transmit.push_back(wire::encode_auth_verify(
            &self.config.agent_cert_der,
            &signature,
        )?);
        Ok(())
    }

    /// The secondary check: the agent-server key (pinned by ServerID) signed H|Na|Ns.
    fn on_auth_verify(&mut self, frame: &[u8]) -> Result<(), HandshakeError> {
        self.seen.first_time(cmd::AUTH_VERIFY)?;
        let server_nonce = self
            .server_nonce
            .ok_or(HandshakeError::VerifyBeforeRequest)?;
        let (cert, signature) = wire::parse_auth_verify(frame)?;
        let public_key = self
            .verifier
            .rsa_public_key(cert)
            .ok_or(HandshakeError::BadCertificate)?;
        if !key_matches_server_id(&public_key, &self.config.server_id) {
            return Err(HandshakeError::ServerIdMismatch);
        }
        let message = signed_message(&self.seen_web_hash, &self.agent_nonce, &server_nonce);
        if !self
            .verifier
            .verify_rsa_sha384(&public_key, &message, signature)
        {
            return Err(HandshakeError::BadServerSignature);
        }
        self.server_verified = true;
        self.events.push_back(AgentEvent::ServerVerified {
            web_cert_hash: self.seen_web_hash,
        });
        self.send_auth_info();
        Ok(())
    }

    fn on_auth_confirm(&mut self, frame: &[u8]) -> Result<(), HandshakeError> {
        self.seen.first_time(cmd::AUTH_CONFIRM)?;
        if frame.len() != 2 {
            return Err(HandshakeError::BadLength {
                command: cmd::AUTH_CONFIRM,
                len: frame.len(),
            });
        }
        // The server confirms only after our AuthInfo, which we send only once it is verified; a
        // confirm before that is a server skipping the proof.
        if !self.server_verified {
            return Err(HandshakeError::ConfirmBeforeVerified);
        }
        self.authenticated = true;
        self.events.push_back(AgentEvent::Authenticated {
            skipped_server_check: self.skipped_server_check,
        });
        Ok(())
    }

    fn send_auth_info(&mut self) {
        if !self.info_sent {
            self.info_sent = true;
            self.transmit.push_back(self.config.auth_info.encode());
        }
    }
}
