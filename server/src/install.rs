//! Enrolling machines: a group's `.msh` for `tetherctl agentconfig`, the agent binary for
//! download, and invites — short-lived signed links that let a machine fetch both, and an install
//! script, without anyone logging in on it.
//!
//! - `invite.rs`: invites (the token's claims, the stored record, minting, whether one is usable);
//! - `binary.rs`: which agent binary the server offers, streamed;
//! - `script.rs`: the `install.sh` an invite serves;
//! - `downloads.rs`: the HTTP routes.
//!
//! The control actions (`agentConfig`, `rotateEnrolmentKey`, `createInvite`, `listInvites`,
//! `revokeInvite`) are in `control/install.rs`.

pub(crate) mod binary;
mod downloads;
pub(crate) mod invite;
mod script;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use sha2::{Digest, Sha256};
use tether_common::install::ROOT_CERT_PATH;

use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(ROOT_CERT_PATH, get(downloads::get_root_cert))
        .route(
            "/api/groups/{id}/tether-agent",
            get(downloads::get_group_agent_binary),
        )
        .route(
            "/api/invite/{token}/{file}",
            get(downloads::get_invite_file),
        )
}

/// How the server is reached and what installers must pin, as seen by one client.
#[derive(Debug, Clone)]
pub struct Site {
    /// `host:port` the client connected to (its Host header), else the configured name and port.
    pub authority: String,
    /// `ServerID` for `.msh` files: SHA-384 of the agent-server certificate's public key.
    pub agent_server_id: [u8; 48],
    /// The root the web certificate chains to, as served at `/api/root.crt`.
    pub root_cert_pem: String,
    /// The same root, DER (its hash is what Intel AMT is told to trust).
    pub root_cert_der: Vec<u8>,
}

impl Site {
    pub fn of_request(state: &AppState, headers: &HeaderMap) -> Site {
        Site {
            authority: crate::agents::server_authority(headers, &state.config),
            agent_server_id: state.certs.agent_server_id(),
            root_cert_pem: state.certs.root.cert_pem.clone(),
            root_cert_der: state.certs.root.cert_der.clone(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.authority)
    }

    /// Hex SHA-256 of `/api/root.crt`'s bytes, as `sha256sum` prints it.
    pub fn root_cert_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.root_cert_pem.as_bytes()))
    }
}

impl Default for Site {
    fn default() -> Site {
        Site {
            authority: "localhost:443".to_owned(),
            agent_server_id: [0; 48],
            root_cert_pem: String::new(),
            root_cert_der: Vec::new(),
        }
    }
}
