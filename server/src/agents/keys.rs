//! What every agent handshake of this server shares, built once from the certificates: the
//! agent-server key that signs, and the outer-certificate hashes agents may report.

use std::sync::{Arc, OnceLock};

use tether_common::handshake::rsa::{RsaSigner, RsaVerifier, rsa_public_key_of_cert};
use tether_common::handshake::{ServerConfig, SignError, sha384};

use crate::certs::ServerCerts;

pub(super) struct HandshakeKeys {
    pub config: Arc<ServerConfig>,
    pub signer: Arc<RsaSigner>,
    pub verifier: Arc<RsaVerifier>,
}

/// Lazily filled: parsing the RSA key is not free, and the first agent can pay for it.
pub(super) type KeysCell = OnceLock<Arc<HandshakeKeys>>;

impl HandshakeKeys {
    pub(super) fn from_certs(certs: &ServerCerts) -> Result<HandshakeKeys, SignError> {
        let signer = RsaSigner::from_pkcs8(&certs.agent.key_pkcs8_der)?;
        // Current agents report the hash of the whole certificate, older ones the hash of its key.
        let mut accepted_web_hashes = vec![certs.web_cert_hash()];
        if let Some(key) = rsa_public_key_of_cert(&certs.web.cert_der) {
            accepted_web_hashes.push(sha384(&key));
        }
        Ok(HandshakeKeys {
            config: Arc::new(ServerConfig {
                accepted_web_hashes,
                agent_server_cert_der: certs.agent.cert_der.clone(),
            }),
            signer: Arc::new(signer),
            verifier: Arc::new(RsaVerifier),
        })
    }

    /// The shared keys, made on first use.
    pub(super) fn get(
        cell: &KeysCell,
        certs: &ServerCerts,
    ) -> Result<Arc<HandshakeKeys>, SignError> {
        if let Some(keys) = cell.get() {
            return Ok(keys.clone());
        }
        let keys = Arc::new(HandshakeKeys::from_certs(certs)?);
        Ok(cell.get_or_init(|| keys).clone())
    }
}
