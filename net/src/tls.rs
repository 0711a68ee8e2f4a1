//! A rustls server-certificate verifier for servers that are their own CA: it skips chain building
//! and host-name checks, hands the server's leaf certificate to the caller's [`LeafCheck`], and
//! still verifies the TLS handshake signature, so the peer provably holds the key of the leaf the
//! caller looked at. Whether that leaf is trusted — pinned by a later protocol step, by a
//! fingerprint, or on first use — is the caller's policy, not this module's.

use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The caller's decision about a server's leaf certificate (DER). An error aborts the handshake.
pub trait LeafCheck: fmt::Debug + Send + Sync {
    fn check(&self, leaf: &CertificateDer<'_>) -> Result<(), rustls::Error>;
}

/// Accepts every leaf; the caller reads it back from the connection if it needs it.
#[derive(Debug, Default)]
pub struct AcceptAny;

impl LeafCheck for AcceptAny {
    fn check(&self, _leaf: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        Ok(())
    }
}

/// Where one connection's verifier leaves the server's leaf certificate (DER).
pub type SeenCert = Arc<Mutex<Option<Vec<u8>>>>;

/// Accepts every leaf and records the latest one in a [`SeenCert`].
#[derive(Debug, Default)]
pub struct RecordLeaf(pub SeenCert);

impl LeafCheck for RecordLeaf {
    fn check(&self, leaf: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(leaf.to_vec());
        Ok(())
    }
}

/// Defers the leaf to a [`LeafCheck`], verifies handshake signatures with the crypto provider.
#[derive(Debug)]
pub struct LeafVerifier {
    check: Arc<dyn LeafCheck>,
    provider: Arc<CryptoProvider>,
}

impl LeafVerifier {
    pub fn new(check: Arc<dyn LeafCheck>, provider: Arc<CryptoProvider>) -> LeafVerifier {
        LeafVerifier { check, provider }
    }
}

impl ServerCertVerifier for LeafVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check.check(end_entity)?;
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

/// A client configuration (aws-lc-rs, safe default protocol versions, no client certificate)
/// whose server certificate is judged by `check` alone.
pub fn leaf_checked_config(check: Arc<dyn LeafCheck>) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = LeafVerifier::new(check, provider.clone());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leaf_goes_to_the_check_and_its_refusal_stops_verification() {
        #[derive(Debug)]
        struct Refuse;
        impl LeafCheck for Refuse {
            fn check(&self, _leaf: &CertificateDer<'_>) -> Result<(), rustls::Error> {
                Err(rustls::Error::General("no".into()))
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let name = ServerName::try_from("localhost").unwrap();
        let leaf = CertificateDer::from(vec![1u8, 2, 3]);

        let seen = SeenCert::default();
        let recording = LeafVerifier::new(Arc::new(RecordLeaf(seen.clone())), provider.clone());
        assert!(
            recording
                .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
                .is_ok()
        );
        assert_eq!(*seen.lock().unwrap(), Some(vec![1, 2, 3]));

        let refusing = LeafVerifier::new(Arc::new(Refuse), provider);
        assert!(
            refusing
                .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
                .is_err()
        );
    }
}
