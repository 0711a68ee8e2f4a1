//! TLS for the control channel. The agent accepts whatever certificate the server presents and
//! records it; it does *not* rely on the certificate chain or name.
//!
//! That is safe because trust comes from the handshake on top (design paper §8), as in MeshAgent:
//! the agent sends the SHA-384 of the certificate it saw, and the server must prove, with the
//! agent-server key the `.msh` ServerID pins, that this very certificate is its own (it signs the
//! hash together with our fresh nonce). A man in the middle with another certificate cannot get
//! that signature. When the certificate matches the hash pinned by an earlier full check, the TLS
//! handshake itself proves the peer holds that certificate's key, because the handshake signature
//! below *is* verified; only chain building and name checks are skipped. This lets agents reach
//! servers by IP, behind proxies, and across certificate renewals without a public CA.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// Where one connection's verifier leaves the server's leaf certificate (DER).
pub type SeenCert = Arc<Mutex<Option<Vec<u8>>>>;

#[derive(Debug)]
struct RecordingVerifier {
    seen: SeenCert,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration for one connection, and the slot its server certificate lands in.
pub fn client_config() -> Result<(Arc<ClientConfig>, SeenCert), rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let seen = SeenCert::default();
    let verifier = RecordingVerifier {
        seen: seen.clone(),
        provider: provider.clone(),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((Arc::new(config), seen))
}
