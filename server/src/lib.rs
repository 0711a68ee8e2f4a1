//! tether-server as a library: `main.rs` parses the command line, binds the [`serve::Listeners`]
//! and calls [`run`] with a shutdown signal; integration tests drive the real binary, or run the
//! server in-process on port 0 (`server/tests/common/mod.rs`, `TestServer::in_process`).

pub mod agents;
pub mod auth;
pub mod certs;
pub mod clock;
pub mod config;
pub mod control;
pub mod events;
pub mod http;
pub mod install;
pub mod relay;
pub mod serve;
pub mod state;
pub mod store;
pub mod tls;
pub mod tokens;

pub use serve::run;
