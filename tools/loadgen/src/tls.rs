//! TLS as the real agent does it: any server certificate is accepted at the TLS layer and its hash
//! goes into the handshake, where the server must prove with the key the `.msh` ServerID pins that
//! this certificate is its own. The TLS handshake signature itself is still verified, so the peer
//! holds the key of the certificate we hash.
//!
//! One configuration serves every simulated agent; the leaf certificate is read back from each
//! connection. Session resumption is off: real agents are separate processes and each pays for a
//! full TLS handshake, so the server under test must too.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::client::Resumption;
use tether_net::tls::{AcceptAny, leaf_checked_config};

pub(crate) fn client_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut config = leaf_checked_config(Arc::new(AcceptAny))?;
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}
