//! The real [`Signer`] and [`Verifier`]: aws-lc-rs for RSA, x509-parser to find a certificate's key.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_SHA384, RsaKeyPair, UnparsedPublicKey,
};
use x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{SignError, Signer, Verifier};

/// An RSA private key that signs handshakes.
pub struct RsaSigner {
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl RsaSigner {
    /// From a PKCS#8 DER private key (what rcgen and `ServerCerts` store).
    pub fn from_pkcs8(der: &[u8]) -> Result<RsaSigner, SignError> {
        let key = RsaKeyPair::from_pkcs8(der)
            .map_err(|e| SignError(format!("not an RSA PKCS#8 key: {e}")))?;
        Ok(RsaSigner {
            key,
            rng: SystemRandom::new(),
        })
    }
}

impl Signer for RsaSigner {
    fn sign_rsa_sha384(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA384, &self.rng, message, &mut signature)
            .map_err(|_| SignError("RSA signing failed".into()))?;
        Ok(signature)
    }
}

/// Stateless; share one everywhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct RsaVerifier;

impl Verifier for RsaVerifier {
    fn rsa_public_key(&self, cert_der: &[u8]) -> Option<Vec<u8>> {
        rsa_public_key_of_cert(cert_der)
    }

    fn verify_rsa_sha384(&self, public_key_pkcs1: &[u8], message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA384, public_key_pkcs1)
            .verify(message, signature)
            .is_ok()
    }
}

/// The PKCS#1 `RSAPublicKey` DER inside a certificate: the bytes MeshCentral hashes for device ids
/// and the ServerID. `None` for anything that is not a whole certificate with an RSA key.
pub fn rsa_public_key_of_cert(cert_der: &[u8]) -> Option<Vec<u8>> {
    let (rest, cert) = X509Certificate::from_der(cert_der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let spki = cert.public_key();
    if spki.algorithm.algorithm != OID_PKCS1_RSAENCRYPTION
        || spki.subject_public_key.unused_bits != 0
    {
        return None;
    }
    Some(spki.subject_public_key.data.to_vec())
}
