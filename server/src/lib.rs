//! tether-server as a library: `main.rs` parses the command line, binds the [`serve::Listeners`]
//! and calls [`run`] with a shutdown signal; integration tests drive the real binary, or run the
//! server in-process on port 0 (`server/tests/common/mod.rs`, `TestServer::in_process`).

// Kept here, not in the workspace [lints], because they must not reach the integration tests
// (see CONTRIBUTING.md, "Lints").
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod agents;
mod amt;
mod auth;
mod certs;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod control;
mod events;
mod http;
mod install;
mod mps;
mod relay;
pub mod serve;
mod state;
pub mod store;
mod stun;
mod tls;
mod tokens;
mod turn;
mod updates;
mod vault;

pub use auth::accounts;
pub use certs::{CertError, ServerCerts, ensure_private_dir};
pub use serve::run;
