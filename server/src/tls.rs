//! rustls configuration for the HTTPS port (design paper §7.1: TLS 1.2+, forward-secret suites only).
//!
//! MeshCentral's list is six ECDHE-RSA suites, AES-GCM and AES-CBC. rustls never implements
//! `TLS_RSA_*` key exchange (no forward secrecy) nor CBC modes, so what remains here is a subset in
//! spirit and a superset in strength: ECDHE with AES-GCM or ChaCha20-Poly1305 on TLS 1.2, and the
//! three TLS 1.3 suites. Browsers from the last decade all speak one of them.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{self, cipher_suite};

use crate::certs::ServerCerts;

#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// Most often: the web key does not fit the web certificate, or is of an unsupported kind.
    #[error("cannot set up TLS with the web certificate")]
    Setup(#[source] rustls::Error),
}

/// The cipher suites offered, in the order the server would pick them.
pub(crate) fn cipher_suites() -> Vec<rustls::SupportedCipherSuite> {
    vec![
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
}

/// The MPS port's TLS settings (`crate::mps`): the `mpsserver` certificate, TLS 1.2 and 1.3 with
/// the suites above, no ALPN (AMT speaks APF straight after the handshake).
pub(crate) fn mps_server_config(certs: &ServerCerts) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = CryptoProvider {
        cipher_suites: cipher_suites(),
        ..aws_lc_rs::default_provider()
    };
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(certs.mps.key_pkcs8_der.clone().into());
    let chain = vec![
        rustls_pki_types::CertificateDer::from(certs.mps.cert_der.clone()),
        rustls_pki_types::CertificateDer::from(certs.root.cert_der.clone()),
    ];
    let config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Setup)?;
    Ok(Arc::new(config))
}

/// The HTTPS port's TLS settings: the web certificate (and any chain dropped in with it),
/// TLS 1.2 and 1.3 only, ALPN `h2` then `http/1.1`.
pub(crate) fn server_config(certs: &ServerCerts) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = CryptoProvider {
        cipher_suites: cipher_suites(),
        ..aws_lc_rs::default_provider()
    };
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(certs.web.key_pkcs8_der.clone().into());
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_single_cert(certs.web_chain_der(), key)
        .map_err(TlsError::Setup)?;
    // Browsers open WebSockets on a separate HTTP/1.1 connection unless the server offers
    // RFC 8441 extended CONNECT over h2, which we do not: so h2 is safe to offer for pages.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
