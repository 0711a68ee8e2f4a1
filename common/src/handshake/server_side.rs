//! The server's half of the handshake (meshagent.js, the `authenticated < 2` branch).
//!
//! The server never skips verifying the agent: every connection proves possession of the agent key
//! over a fresh server nonce, so a recorded handshake cannot be replayed.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::ids::DeviceId;

use super::wire::{self, AuthInfo, cmd};
use super::{
    HandshakeError, Hash, MAX_HANDSHAKE_FRAMES, Nonce, Seen, Signer, Verifier, signed_message,
};

/// What every connection of one server shares.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Hashes an agent may report for the outer TLS certificate: SHA-384 of the web certificate's
    /// full DER (current agents) and of its public key (older agents), plus any other certificate
    /// a TLS-terminating proxy in front of us presents.
    pub accepted_web_hashes: Vec<Hash>,
    /// The agent-server certificate (DER) whose key the [`Signer`] holds: the `.msh` ServerID.
    pub agent_server_cert_der: Vec<u8>,
}

/// An agent that proved its identity, waiting for the server to accept its device group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAgent {
    pub device_id: DeviceId,
    /// PKCS#1 `RSAPublicKey` DER; its SHA-384 is the device id.
    pub public_key: Vec<u8>,
    pub cert_der: Vec<u8>,
    pub auth_info: AuthInfo,
    /// The outer certificate hash the agent reported.
    pub web_cert_hash: Hash,
    /// The agent had pinned our certificate and asked us not to sign (command 4).
    pub skipped_server_signature: bool,
    /// The ServerID the agent said it expects (command 5), if it sent one.
    pub requested_server_id: Option<Hash>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// The agent's signature verified and its AuthInfo arrived: look at
    /// [`ServerHandshake::verified_agent`], then [`ServerHandshake::accept`] or drop the connection.
    AgentVerified,
}

pub struct ServerHandshake {
    config: Arc<ServerConfig>,
    signer: Arc<dyn Signer>,
    verifier: Arc<dyn Verifier>,
    server_nonce: Nonce,
    agent_request: Option<(Hash, Nonce)>,
    seen: Seen,
    skip_signature: bool,
    requested_server_id: Option<Hash>,
    agent_cert: Option<(Vec<u8>, Vec<u8>)>,
    pending_signature: Option<Vec<u8>>,
    signature_ok: bool,
    auth_info: Option<AuthInfo>,
    verified: Option<VerifiedAgent>,
    accepted: bool,
    failed: bool,
    frames: u32,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<ServerEvent>,
}

impl ServerHandshake {
    /// `server_nonce` must be fresh random bytes. The server speaks only after the agent's
    /// AuthRequest, as MeshCentral 1.1.55 does, because it echoes the hash the agent saw.
    pub fn new(
        config: Arc<ServerConfig>,
        server_nonce: Nonce,
        signer: Arc<dyn Signer>,
        verifier: Arc<dyn Verifier>,
    ) -> ServerHandshake {
        ServerHandshake {
            config,
            signer,
            verifier,
            server_nonce,
            agent_request: None,
            seen: Seen::default(),
            skip_signature: false,
            requested_server_id: None,
            agent_cert: None,
            pending_signature: None,
            signature_ok: false,
            auth_info: None,
            verified: None,
            accepted: false,
            failed: false,
            frames: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Processes one binary frame from the agent.
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

    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The proven identity and claims of the agent, once [`ServerEvent::AgentVerified`] fired.
    pub fn verified_agent(&self) -> Option<&VerifiedAgent> {
        self.verified.as_ref()
    }

    /// Tells the agent it is authenticated (command 4). From here on frames belong to the session.
    pub fn accept(&mut self) -> Result<(), HandshakeError> {
        if self.failed {
            return Err(HandshakeError::Failed);
        }
        if self.verified.is_none() {
            return Err(HandshakeError::NotAuthenticated(cmd::AUTH_CONFIRM));
        }
        if !self.accepted {
            self.accepted = true;
            self.transmit.push_back(wire::encode_auth_confirm());
        }
        Ok(())
    }

    pub fn is_authenticated(&self) -> bool {
        self.accepted
    }

    fn process(&mut self, frame: &[u8]) -> Result<(), HandshakeError> {
        let command = wire::command_id(frame).ok_or(HandshakeError::Truncated)?;
        if self.accepted {
            return Err(HandshakeError::AlreadyAuthenticated(command));
        }
        self.frames += 1;
        if self.frames > MAX_HANDSHAKE_FRAMES {
            return Err(HandshakeError::TooManyFrames);
        }
        match command {
            cmd::SERVER_ID => {
                self.seen.first_time(cmd::SERVER_ID)?;
                self.requested_server_id = Some(wire::parse_server_id(frame)?);
            }
            cmd::AUTH_CONFIRM => {
                self.seen.first_time(cmd::AUTH_CONFIRM)?;
                if frame.len() != 2 {
                    return Err(HandshakeError::BadLength {
                        command,
                        len: frame.len(),
                    });
                }
                // Only honoured before the AuthRequest, which is where the signature is made.
                self.skip_signature = !self.seen.has(cmd::AUTH_REQUEST);
            }
            cmd::AUTH_REQUEST => self.on_auth_request(frame)?,
            cmd::AUTH_VERIFY => self.on_auth_verify(frame)?,
            cmd::AUTH_INFO => {
                self.seen.first_time(cmd::AUTH_INFO)?;
                self.auth_info = Some(AuthInfo::parse(frame)?);
            }
            // Stock agents announce their build date and OS before authenticating; harmless.
            cmd::AGENT_COMMIT_DATE | cmd::HOST_INFO => {}
            // JSON before authentication (a stock agent's `agentName`) is not the handshake's business.
            0x7B00..=0x7BFF => {}
            0..cmd::FIRST_POST_AUTH => return Err(HandshakeError::Unexpected(command)),
            _ => return Err(HandshakeError::NotAuthenticated(command)),
        }
        self.check_verified();
        Ok(())
    }

    /// Echo the agent's view of our certificate with our nonce, and sign unless told to skip.
    fn on_auth_request(&mut self, frame: &[u8]) -> Result<(), HandshakeError> {
        self.seen.first_time(cmd::AUTH_REQUEST)?;
        let (agent_hash, agent_nonce) = wire::parse_auth_request(frame)?;
        // The agent must have seen one of our certificates; otherwise its TLS session ends somewhere
        // else and signing would vouch for that stranger.
        if !self.config.accepted_web_hashes.contains(&agent_hash) {
            return Err(HandshakeError::UnknownWebCertHash);
        }
        self.agent_request = Some((agent_hash, agent_nonce));
        self.transmit
            .push_back(wire::encode_auth_request(&agent_hash, &self.server_nonce));
        if !self.skip_signature {
            let message = signed_message(&agent_hash, &agent_nonce, &self.server_nonce);
            let signature = self.signer.sign_rsa_sha384(&message)?;
            self.transmit.push_back(wire::encode_auth_verify(
                &self.config.agent_server_cert_der,
                &signature,
            )?);
        }
        if let Some(signature) = self.pending_signature.take() {
            self.check_agent_signature(&signature)?;
        }
        Ok(())
    }

    fn on_auth_verify(&mut self, frame: &[u8]) -> Result<(), HandshakeError> {
        self.seen.first_time(cmd::AUTH_VERIFY)?;
        let (cert, signature) = wire::parse_auth_verify(frame)?;
        let public_key = self
            .verifier
            .rsa_public_key(cert)
            .ok_or(HandshakeError::BadCertificate)?;
        self.agent_cert = Some((cert.to_vec(), public_key));
        // MeshCentral keeps a signature that overtook the AuthRequest and checks it afterwards.
        if self.agent_request.is_some() {
            self.check_agent_signature(signature)
        } else {
            self.pending_signature = Some(signature.to_vec());
            Ok(())
        }
    }

    fn check_agent_signature(&mut self, signature: &[u8]) -> Result<(), HandshakeError> {
        let (Some((agent_hash, agent_nonce)), Some((_, public_key))) =
            (&self.agent_request, &self.agent_cert)
        else {
            return Err(HandshakeError::VerifyBeforeRequest);
        };
        let message = signed_message(agent_hash, &self.server_nonce, agent_nonce);
        if !self
            .verifier
            .verify_rsa_sha384(public_key, &message, signature)
        {
            return Err(HandshakeError::BadAgentSignature);
        }
        self.signature_ok = true;
        Ok(())
    }

    fn check_verified(&mut self) {
        if self.verified.is_some() || !self.signature_ok {
            return;
        }
        let (Some(auth_info), Some((cert_der, public_key)), Some((web_cert_hash, _))) =
            (&self.auth_info, &self.agent_cert, &self.agent_request)
        else {
            return;
        };
        self.verified = Some(VerifiedAgent {
            device_id: DeviceId::from_public_key(public_key),
            public_key: public_key.clone(),
            cert_der: cert_der.clone(),
            auth_info: auth_info.clone(),
            web_cert_hash: *web_cert_hash,
            skipped_server_signature: self.skip_signature,
            requested_server_id: self.requested_server_id,
        });
        self.events.push_back(ServerEvent::AgentVerified);
    }
}
