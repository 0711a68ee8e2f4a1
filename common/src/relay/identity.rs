//! The agent proves that the DTLS certificate it answers a direct path with is its own, so the
//! server that relays the signalling cannot put itself in the middle of a direct session
//! unnoticed (it would have to answer with its own DTLS certificate, and cannot sign for the
//! device's key).
//!
//! The agent signs, with its agent key (RSA PKCS#1 v1.5, SHA-384, as in the MeshCentral
//! handshake), both DTLS fingerprints of the session: the viewer's from the offer and its own from
//! the answer. Binding the viewer's fingerprint means a proof cannot be replayed into another
//! session, nor a server-made offer be passed off as the viewer's. The viewer checks that the key
//! is the device's (its id is the key's hash, `DeviceId::from_public_key`), then the signature.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::handshake::{Signer, Verifier};
use crate::ids::DeviceId;

/// What the agent sends beside its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathProof {
    /// The agent's RSA public key, PKCS#1 `RSAPublicKey` DER, base64.
    pub public_key: String,
    /// RSA PKCS#1 v1.5 SHA-384 over [`proof_message`], base64.
    pub signature: String,
}

/// Why a viewer refuses an answer's proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the answer carries no proof of the device's identity")]
    Missing,
    #[error("the offer or the answer has no DTLS fingerprint")]
    NoFingerprint,
    #[error("the proof is not valid base64")]
    Encoding,
    #[error("the proof is signed by a key that is not this device's")]
    WrongKey,
    #[error("the signature does not match the session's DTLS fingerprints")]
    BadSignature,
}

/// The first `a=fingerprint:` value of an SDP (`sha-256 AB:CD:…`).
pub fn fingerprint(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|line| line.trim_end().strip_prefix("a=fingerprint:"))
        .map(str::trim)
}

/// The bytes the agent signs: a label, then the offer's and the answer's fingerprints.
pub fn proof_message(offer_sdp: &str, answer_sdp: &str) -> Option<Vec<u8>> {
    let (offer, answer) = (fingerprint(offer_sdp)?, fingerprint(answer_sdp)?);
    Some(format!("tether direct path v1\noffer {offer}\nanswer {answer}\n").into_bytes())
}

/// The agent's proof for its `answer_sdp` to `offer_sdp`; `None` if either lacks a fingerprint
/// or the key cannot sign.
pub fn prove(
    signer: &dyn Signer,
    public_key_pkcs1: &[u8],
    offer_sdp: &str,
    answer_sdp: &str,
) -> Option<PathProof> {
    let message = proof_message(offer_sdp, answer_sdp)?;
    let signature = signer.sign_rsa_sha384(&message).ok()?;
    Some(PathProof {
        public_key: STANDARD.encode(public_key_pkcs1),
        signature: STANDARD.encode(signature),
    })
}

/// The viewer's check: the proof is `device`'s key signing these two fingerprints.
pub fn check(
    proof: Option<&PathProof>,
    device: &DeviceId,
    offer_sdp: &str,
    answer_sdp: &str,
    verifier: &dyn Verifier,
) -> Result<(), ProofError> {
    let proof = proof.ok_or(ProofError::Missing)?;
    let message = proof_message(offer_sdp, answer_sdp).ok_or(ProofError::NoFingerprint)?;
    let key = STANDARD
        .decode(&proof.public_key)
        .map_err(|_| ProofError::Encoding)?;
    let signature = STANDARD
        .decode(&proof.signature)
        .map_err(|_| ProofError::Encoding)?;
    if DeviceId::from_public_key(&key) != *device {
        return Err(ProofError::WrongKey);
    }
    if !verifier.verify_rsa_sha384(&key, &message, &signature) {
        return Err(ProofError::BadSignature);
    }
    Ok(())
}

#[cfg(all(test, feature = "aws-lc"))]
mod tests {
    use super::*;
    use crate::handshake::rsa::{RsaSigner, RsaVerifier, rsa_public_key_of_cert};

    const OFFER: &str = "v=0\r\na=fingerprint:sha-256 AA:BB\r\nm=application 9\r\n";
    const ANSWER: &str = "v=0\r\na=fingerprint:sha-256 CC:DD\r\n";

    fn key() -> (RsaSigner, Vec<u8>) {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA384, rcgen::RsaKeySize::_2048)
                .expect("an RSA key");
        let cert = rcgen::CertificateParams::new(vec!["agent".into()])
            .expect("params")
            .self_signed(&key)
            .expect("a certificate");
        let public = rsa_public_key_of_cert(cert.der()).expect("an RSA public key");
        (
            RsaSigner::from_pkcs8(&key.serialize_der()).expect("signer"),
            public,
        )
    }

    #[test]
    fn a_proof_checks_out_only_for_its_device_and_its_fingerprints() {
        let (signer, public) = key();
        let device = DeviceId::from_public_key(&public);
        let proof = prove(&signer, &public, OFFER, ANSWER).expect("a proof");
        assert_eq!(
            check(Some(&proof), &device, OFFER, ANSWER, &RsaVerifier),
            Ok(())
        );

        // The server answered with its own DTLS certificate: another fingerprint.
        let swapped = ANSWER.replace("CC:DD", "EE:FF");
        assert_eq!(
            check(Some(&proof), &device, OFFER, &swapped, &RsaVerifier),
            Err(ProofError::BadSignature)
        );
        // The server made its own offer to the agent and replays the proof to the viewer.
        let other_offer = OFFER.replace("AA:BB", "12:34");
        assert_eq!(
            check(Some(&proof), &device, &other_offer, ANSWER, &RsaVerifier),
            Err(ProofError::BadSignature)
        );
        // Another key (the server's own) signing for this device.
        let (other_signer, other_public) = key();
        let forged = prove(&other_signer, &other_public, OFFER, ANSWER).expect("a proof");
        assert_eq!(
            check(Some(&forged), &device, OFFER, ANSWER, &RsaVerifier),
            Err(ProofError::WrongKey)
        );
        assert_eq!(
            check(None, &device, OFFER, ANSWER, &RsaVerifier),
            Err(ProofError::Missing)
        );
        let garbled = PathProof {
            signature: "***".into(),
            ..proof
        };
        assert_eq!(
            check(Some(&garbled), &device, OFFER, ANSWER, &RsaVerifier),
            Err(ProofError::Encoding)
        );
        assert_eq!(
            check(Some(&forged), &device, "v=0\r\n", ANSWER, &RsaVerifier),
            Err(ProofError::NoFingerprint)
        );
    }

    #[test]
    fn reads_the_fingerprint_line() {
        assert_eq!(fingerprint(OFFER), Some("sha-256 AA:BB"));
        assert_eq!(fingerprint("v=0\r\n"), None);
    }
}
