//! MeshCentral's agent authentication (design paper §8), byte-compatible with its agents and
//! servers, as two sans-IO state machines: [`AgentHandshake`] and [`ServerHandshake`].
//!
//! Both are driven the same way: feed each binary WebSocket frame to `handle_input`, then drain
//! `poll_transmit` (frames to send, in order) and `poll_event` until they return `None`. Nothing
//! here does IO, keeps time or draws randomness: nonces come in from the caller and the RSA work
//! goes through the [`Signer`] and [`Verifier`] traits, so tests and the fuzzer can use fakes.
//!
//! The exchange (H = SHA-384 of the outer TLS certificate the agent saw, Na/Ns = 48-byte nonces):
//!
//! ```text
//! agent  -> server  [5][ServerID]  ([4] if H is pinned)  [1][H][Na]  ([3][AuthInfo] if pinned)
//! server -> agent   [1][H][Ns]     [2][agent-server cert][sig(H|Na|Ns)]  (no [2] after a [4])
//! agent  -> server  [2][agent cert][sig(H|Ns|Na)]   then, once the server is verified, [3][AuthInfo]
//! server -> agent   [4]   once the agent's signature is good and the server accepts the device
//! ```
//!
//! Signatures are RSA PKCS#1 v1.5 over SHA-384. Every handshake command is accepted once per
//! connection; a repeat is an error, as is anything outside the handshake before it completes.

mod agent_side;
#[cfg(feature = "aws-lc")]
pub mod rsa;
mod server_side;
pub mod wire;

use sha2::{Digest, Sha256, Sha384};

pub use agent_side::{AgentConfig, AgentEvent, AgentHandshake};
pub use server_side::{ServerConfig, ServerEvent, ServerHandshake, VerifiedAgent};
pub use wire::AuthInfo;

/// SHA-384 output size: certificate hashes, ServerID, MeshID.
pub const HASH_LEN: usize = 48;
/// Both sides' nonces are 48 random bytes.
pub const NONCE_LEN: usize = 48;

pub type Hash = [u8; HASH_LEN];
pub type Nonce = [u8; NONCE_LEN];

/// Makes RSA PKCS#1 v1.5 SHA-384 signatures with one private key.
pub trait Signer: Send + Sync {
    /// Signs SHA-384(`message`) (the implementation hashes).
    fn sign_rsa_sha384(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// Checks certificates and signatures from the peer.
pub trait Verifier: Send + Sync {
    /// The RSA public key (PKCS#1 `RSAPublicKey` DER) of an X.509 certificate in DER, or `None` if
    /// the bytes are not a certificate with an RSA key.
    fn rsa_public_key(&self, cert_der: &[u8]) -> Option<Vec<u8>>;
    /// Whether `signature` is a valid RSA PKCS#1 v1.5 SHA-384 signature of `message`.
    fn verify_rsa_sha384(&self, public_key_pkcs1: &[u8], message: &[u8], signature: &[u8]) -> bool;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SignError(pub String);

/// Why a handshake was abandoned. After any error the machine refuses further input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("frame too short to hold a command id")]
    Truncated,
    #[error("command {command} has a bad length ({len} bytes)")]
    BadLength { command: u16, len: usize },
    #[error("command {0} was sent twice")]
    Repeated(u16),
    #[error("command {0} is not expected from this peer")]
    Unexpected(u16),
    #[error("command {0} arrived before the handshake completed")]
    NotAuthenticated(u16),
    #[error("the handshake already completed; command {0} belongs to the session")]
    AlreadyAuthenticated(u16),
    #[error("signature before the nonce it covers (AuthVerify before AuthRequest)")]
    VerifyBeforeRequest,
    #[error("the server confirmed before it was verified")]
    ConfirmBeforeVerified,
    #[error(
        "the server echoed a web certificate hash other than the one this agent saw (man in the middle?)"
    )]
    WebCertHashMismatch,
    #[error(
        "the agent saw a web certificate that is not this server's (man in the middle, or a proxy the server does not know)"
    )]
    UnknownWebCertHash,
    #[error("the server's agent certificate does not match the pinned ServerID")]
    ServerIdMismatch,
    #[error("the peer's certificate is not an X.509 certificate with an RSA key")]
    BadCertificate,
    #[error("our certificate is too large for a 16-bit length")]
    CertificateTooLarge,
    #[error("the server's signature does not verify")]
    BadServerSignature,
    #[error("the agent's signature does not verify")]
    BadAgentSignature,
    #[error("too many frames before the handshake completed")]
    TooManyFrames,
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error("the handshake already failed")]
    Failed,
}

/// How many frames a peer may send before the handshake completes. A stock agent sends at most
/// about eight (5, 30, 31, 4, 1, 2, 3 and an `agentName`); more is a misbehaving peer.
pub const MAX_HANDSHAKE_FRAMES: u32 = 32;

pub fn sha384(bytes: &[u8]) -> Hash {
    Sha384::digest(bytes).into()
}

/// Whether `public_key_pkcs1` is the key named by `server_id`: SHA-384 of the key, or (for old
/// `.mshx` policies, as MeshAgent still accepts) SHA-256 in the first 32 bytes.
pub fn key_matches_server_id(public_key_pkcs1: &[u8], server_id: &Hash) -> bool {
    sha384(public_key_pkcs1) == *server_id
        || Sha256::digest(public_key_pkcs1).as_slice() == &server_id[..32]
}

/// The 144-byte message one side signs: three 48-byte values in the order that side uses.
fn signed_message(a: &[u8; 48], b: &[u8; 48], c: &[u8; 48]) -> Vec<u8> {
    let mut message = Vec::with_capacity(3 * 48);
    message.extend_from_slice(a);
    message.extend_from_slice(b);
    message.extend_from_slice(c);
    message
}

/// Which handshake commands have been seen, as MeshCentral's `receivedCommands` bitmask.
#[derive(Debug, Default, Clone, Copy)]
struct Seen(u8);

impl Seen {
    /// Records `command` (1..=5); `Repeated` if it was already there.
    fn first_time(&mut self, command: u16) -> Result<(), HandshakeError> {
        let bit = 1u8 << command;
        if self.0 & bit != 0 {
            return Err(HandshakeError::Repeated(command));
        }
        self.0 |= bit;
        Ok(())
    }

    fn has(self, command: u16) -> bool {
        self.0 & (1u8 << command) != 0
    }
}
