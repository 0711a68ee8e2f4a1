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

use std::sync::Arc;

use rustls::ClientConfig;
use tether_net::tls::{RecordLeaf, leaf_checked_config};

pub(crate) use tether_net::tls::SeenCert;

/// A client configuration for one connection, and the slot its server certificate lands in.
pub(crate) fn client_config() -> Result<(Arc<ClientConfig>, SeenCert), rustls::Error> {
    let seen = SeenCert::default();
    let config = leaf_checked_config(Arc::new(RecordLeaf(seen.clone())))?;
    Ok((Arc::new(config), seen))
}
