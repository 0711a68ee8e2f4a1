//! Agent self-update: the offer the server signs and the agent checks, the version marker every
//! agent binary carries, and (in [`campaign`]) the staged rollout that decides who is offered what.
//!
//! Why a signature when the control channel is already authenticated: the binary travels on a
//! second connection and sits in the server's data folder until it is served. The offer names its
//! SHA-384 and is signed with the **agent-server key**, the key whose hash is the `.msh`'s
//! `ServerID`, fixed when the agent was installed. So an agent runs a new binary only if the server
//! that enrolled it vouched for exactly those bytes: a file swapped on the server's disk, or a
//! server that merely holds the web certificate, cannot push code. The offer carries the
//! agent-server certificate itself because an agent that pinned the web certificate skips the
//! full handshake and never sees it there.

use serde::{Deserialize, Serialize};

use crate::handshake::{Hash, Verifier, key_matches_server_id};

pub mod campaign;
mod status;

pub use status::{
    AgentRelease, AgentUpdates, CampaignCounts, CampaignInfo, CampaignProblem, CampaignState,
    DeviceUpdateState, MAX_PROBLEMS_LISTED,
};

/// The largest agent binary an offer may announce (the agent reserves no more than this on disk).
pub const MAX_AGENT_BINARY: u64 = 512 * 1024 * 1024;
/// Every agent binary carries `tether-agent-version:<version>;` once, so the server can tell the
/// version of a binary it is given without running it (or any binary for another system).
pub const VERSION_MARKER: &[u8] = b"tether-agent-version:";
const LONGEST_VERSION: usize = 64;

/// "Here is agent `version` for `platform`; fetch it from `path` on this server."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateOffer {
    pub version: String,
    /// `os-arch` as Rust names them, e.g. `linux-x86_64`.
    pub platform: String,
    /// SHA-384 of the binary, hex.
    pub sha384: String,
    pub size: u64,
    /// Where to fetch it: a path on the control channel's own server (a WebSocket that sends the
    /// binary and closes).
    pub path: String,
    /// The agent-server certificate, DER in hex: its key must hash to the agent's `ServerID`.
    pub server_cert: String,
    /// RSA PKCS#1 v1.5 SHA-384 over [`signed_message`], hex.
    pub signature: String,
}

/// An offer whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedOffer {
    pub version: String,
    pub sha384: Hash,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("the offered version {0:?} is not a version")]
    BadVersion(String),
    #[error("the offer is for {offered}, this agent runs on {ours}")]
    WrongPlatform { offered: String, ours: String },
    #[error("the offered binary's size {0} is over the limit")]
    TooLarge(u64),
    #[error("the offer's {0} is not valid hex of the right length")]
    BadEncoding(&'static str),
    #[error("the offer's certificate is not this agent's server (its key does not match ServerID)")]
    NotOurServer,
    #[error("the offer's signature does not verify")]
    BadSignature,
}

/// What the agent-server key signs: a fixed label, then each field on its own line, so no field
/// can be shifted into another.
pub fn signed_message(version: &str, platform: &str, sha384: &Hash, size: u64) -> Vec<u8> {
    format!(
        "tether-agent-update/1\n{version}\n{platform}\n{}\n{size}\n",
        hex::encode(sha384)
    )
    .into_bytes()
}

/// This build's platform name, as offers spell it.
pub fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// A version string we accept: 1–64 of `0-9 A-Z a-z . + -`, starting with a digit.
pub fn is_version(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= LONGEST_VERSION
        && text.starts_with(|c: char| c.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'))
}

/// Checks an offer for `platform` against the `ServerID` the agent was installed with.
pub fn verify_offer(
    offer: &UpdateOffer,
    server_id: &Hash,
    platform: &str,
    verifier: &dyn Verifier,
) -> Result<VerifiedOffer, OfferError> {
    if !is_version(&offer.version) {
        return Err(OfferError::BadVersion(offer.version.clone()));
    }
    if offer.platform != platform {
        return Err(OfferError::WrongPlatform {
            offered: offer.platform.clone(),
            ours: platform.to_owned(),
        });
    }
    if offer.size > MAX_AGENT_BINARY {
        return Err(OfferError::TooLarge(offer.size));
    }
    let sha384: Hash = hex::decode(&offer.sha384)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(OfferError::BadEncoding("sha384"))?;
    let cert =
        hex::decode(&offer.server_cert).map_err(|_| OfferError::BadEncoding("certificate"))?;
    let signature =
        hex::decode(&offer.signature).map_err(|_| OfferError::BadEncoding("signature"))?;
    let key = verifier
        .rsa_public_key(&cert)
        .ok_or(OfferError::NotOurServer)?;
    if !key_matches_server_id(&key, server_id) {
        return Err(OfferError::NotOurServer);
    }
    let message = signed_message(&offer.version, &offer.platform, &sha384, offer.size);
    if !verifier.verify_rsa_sha384(&key, &message, &signature) {
        return Err(OfferError::BadSignature);
    }
    Ok(VerifiedOffer {
        version: offer.version.clone(),
        sha384,
        size: offer.size,
    })
}

/// The version an agent binary declares in its marker: the first `tether-agent-version:` followed
/// by a valid version and `;`. `None` for a file that has none (not an agent, or a very old one).
pub fn version_in_binary(bytes: &[u8]) -> Option<String> {
    let mut rest = bytes;
    while let Some(at) = find(rest, VERSION_MARKER) {
        let after = &rest[at + VERSION_MARKER.len()..];
        let candidate = after
            .iter()
            .take(LONGEST_VERSION + 1)
            .position(|&b| b == b';')
            .and_then(|end| std::str::from_utf8(&after[..end]).ok())
            .filter(|text| is_version(text));
        if let Some(version) = candidate {
            return Some(version.to_owned());
        }
        rest = after;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(all(test, feature = "aws-lc"))]
mod tests {
    use super::*;
    use crate::handshake::rsa::{RsaSigner, RsaVerifier};
    use crate::handshake::{Signer, sha384};

    struct Server {
        cert: Vec<u8>,
        signer: RsaSigner,
        id: Hash,
    }

    fn server() -> Server {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["agent-server".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert = cert.der().to_vec();
        let public = RsaVerifier.rsa_public_key(&cert).unwrap();
        Server {
            signer: RsaSigner::from_pkcs8(&key.serialize_der()).unwrap(),
            id: sha384(&public),
            cert,
        }
    }

    fn offer(server: &Server, binary: &[u8]) -> UpdateOffer {
        let hash = sha384(binary);
        let size = binary.len() as u64;
        let message = signed_message("1.2.3", "linux-x86_64", &hash, size);
        UpdateOffer {
            version: "1.2.3".into(),
            platform: "linux-x86_64".into(),
            sha384: hex::encode(hash),
            size,
            path: "/agent-update.ashx?t=x".into(),
            server_cert: hex::encode(&server.cert),
            signature: hex::encode(server.signer.sign_rsa_sha384(&message).unwrap()),
        }
    }

    #[test]
    fn a_signed_offer_verifies_and_any_change_breaks_it() {
        let ours = server();
        let good = offer(&ours, b"new agent");
        let verified = verify_offer(&good, &ours.id, "linux-x86_64", &RsaVerifier).unwrap();
        assert_eq!(verified.sha384, sha384(b"new agent"));
        assert_eq!(verified.version, "1.2.3");

        let check =
            |offer: &UpdateOffer| verify_offer(offer, &ours.id, "linux-x86_64", &RsaVerifier);
        let mut other_hash = good.clone();
        other_hash.sha384 = hex::encode(sha384(b"evil agent"));
        assert_eq!(check(&other_hash), Err(OfferError::BadSignature));
        let mut other_size = good.clone();
        other_size.size += 1;
        assert_eq!(check(&other_size), Err(OfferError::BadSignature));
        let mut other_version = good.clone();
        other_version.version = "1.2.4".into();
        assert_eq!(check(&other_version), Err(OfferError::BadSignature));
        let mut other_platform = good.clone();
        other_platform.platform = "linux-aarch64".into();
        assert!(matches!(
            check(&other_platform),
            Err(OfferError::WrongPlatform { .. })
        ));
        let mut bad_version = good.clone();
        bad_version.version = "1.0;rm -rf /".into();
        assert!(matches!(
            check(&bad_version),
            Err(OfferError::BadVersion(_))
        ));
        let mut huge = good.clone();
        huge.size = MAX_AGENT_BINARY + 1;
        assert_eq!(
            check(&huge),
            Err(OfferError::TooLarge(MAX_AGENT_BINARY + 1))
        );
        let mut garbled = good.clone();
        garbled.signature = "zz".into();
        assert_eq!(check(&garbled), Err(OfferError::BadEncoding("signature")));
    }

    #[test]
    fn another_server_cannot_sign_for_ours() {
        let ours = server();
        let theirs = server();
        // Signed by another key, with its own certificate: the certificate is not our ServerID.
        let forged = offer(&theirs, b"evil agent");
        assert_eq!(
            verify_offer(&forged, &ours.id, "linux-x86_64", &RsaVerifier),
            Err(OfferError::NotOurServer)
        );
        // Our certificate, their signature.
        let mut borrowed = forged.clone();
        borrowed.server_cert = hex::encode(&ours.cert);
        assert_eq!(
            verify_offer(&borrowed, &ours.id, "linux-x86_64", &RsaVerifier),
            Err(OfferError::BadSignature)
        );
    }

    #[test]
    fn the_version_marker_is_found_in_a_binary() {
        let mut binary = b"\x7fELF....tether-agent-version:\x00junk".to_vec();
        binary.extend_from_slice(b"....tether-agent-version:0.4.1-rc.2+abc;....");
        assert_eq!(
            version_in_binary(&binary).as_deref(),
            Some("0.4.1-rc.2+abc")
        );
        assert_eq!(version_in_binary(b"no marker here"), None);
        assert_eq!(version_in_binary(b"tether-agent-version:;"), None);
        assert_eq!(version_in_binary(b"tether-agent-version:1.0"), None);
        let long = format!("tether-agent-version:1{};", "0".repeat(80));
        assert_eq!(version_in_binary(long.as_bytes()), None);
    }

    #[test]
    fn versions_are_plain() {
        for good in ["0.1.0", "1.2.3-rc.1", "2.0.0+build.7"] {
            assert!(is_version(good), "{good}");
        }
        for bad in ["", "v1.0", "1.0 ", "1.0;", "1/0", "é"] {
            assert!(!is_version(bad), "{bad}");
        }
    }
}
