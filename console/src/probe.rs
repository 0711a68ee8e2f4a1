//! Fetches a server's TLS certificate without trusting it, for trust on first use.
//!
//! The handshake runs to completion with a verifier that records the leaf instead of checking it
//! against a CA; the handshake signature *is* still checked, so the fingerprint we show belongs to
//! a server that holds that certificate's private key.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConnection;
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};
use tether_net::tls::{RecordLeaf, SeenCert, leaf_checked_config};
use url::Url;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    #[error("not a valid URL: {0}")]
    BadUrl(#[from] url::ParseError),
    #[error("the server URL must start with https://")]
    NotHttps,
    #[error("the URL has no host name")]
    NoHost,
    #[error("cannot reach {host}: {source}")]
    Connect { host: String, source: io::Error },
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("the server sent no certificate")]
    NoCertificate,
}

/// What a server presented on its HTTPS port.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    /// `https://host:port`, the key under which the server is remembered.
    pub origin: String,
    /// Host name or IP address as WebKit matches it (no brackets, no port).
    pub host: String,
    pub leaf_der: Vec<u8>,
    pub fingerprint: String,
}

/// Checks that `text` is an https URL and returns it parsed, without connecting.
pub(crate) fn parse_server_url(text: &str) -> Result<Url, ProbeError> {
    let url = Url::parse(text.trim())?;
    if url.scheme() != "https" {
        return Err(ProbeError::NotHttps);
    }
    if url.host().is_none() {
        return Err(ProbeError::NoHost);
    }
    Ok(url)
}

pub(crate) fn probe(url: &Url) -> Result<Probe, ProbeError> {
    let host = match url.host() {
        Some(url::Host::Domain(name)) => name.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(ProbeError::NoHost),
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let connect_error = |source| ProbeError::Connect {
        host: host.clone(),
        source,
    };

    let mut socket = connect(&host, port).map_err(connect_error)?;
    socket
        .set_read_timeout(Some(TIMEOUT))
        .map_err(connect_error)?;
    socket
        .set_write_timeout(Some(TIMEOUT))
        .map_err(connect_error)?;

    let seen = SeenCert::default();
    let config = leaf_checked_config(Arc::new(RecordLeaf(seen.clone())))
        .map_err(|e| ProbeError::Tls(e.to_string()))?;
    let server_name =
        ServerName::try_from(host.clone()).map_err(|e| ProbeError::Tls(e.to_string()))?;
    let mut tls = ClientConnection::new(Arc::new(config), server_name)
        .map_err(|e| ProbeError::Tls(e.to_string()))?;
    while tls.is_handshaking() {
        tls.complete_io(&mut socket)
            .map_err(|e| ProbeError::Tls(e.to_string()))?;
    }
    tls.send_close_notify();
    let _ = tls.complete_io(&mut socket);

    let leaf_der = seen
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
        .ok_or(ProbeError::NoCertificate)?;
    let origin = match url.port() {
        Some(port) => format!("https://{}:{port}", url.host_str().unwrap_or(&host)),
        None => format!("https://{}", url.host_str().unwrap_or(&host)),
    };
    Ok(Probe {
        origin,
        host,
        fingerprint: fingerprint(&leaf_der),
        leaf_der,
    })
}

fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address for host");
    for address in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&address, TIMEOUT) {
            Ok(socket) => return Ok(socket),
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

/// SHA-256 of the certificate's DER, as colon-separated upper-case hex pairs (how browsers show it).
pub(crate) fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let pairs: Vec<String> = digest.iter().map(|byte| format!("{byte:02X}")).collect();
    pairs.join(":")
}

/// Compares fingerprints typed or pasted in any common form (colons, spaces, any case).
pub(crate) fn same_fingerprint(a: &str, b: &str) -> bool {
    let normalise = |text: &str| -> String {
        text.chars()
            .filter(char::is_ascii_hexdigit)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let (a, b) = (normalise(a), normalise(b));
    a.len() == 64 && a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_compare_in_any_notation() {
        let fp = fingerprint(b"certificate");
        assert!(same_fingerprint(&fp, &fp.replace(':', "").to_lowercase()));
        assert!(!same_fingerprint(&fp, &fingerprint(b"other")));
        assert!(!same_fingerprint("", ""));
    }

    #[test]
    fn only_https_urls_are_accepted() {
        assert!(matches!(
            parse_server_url("http://example.org"),
            Err(ProbeError::NotHttps)
        ));
        assert!(parse_server_url(" https://127.0.0.1:4433/ ").is_ok());
    }
}
