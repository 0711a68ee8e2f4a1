//! tether-server as a library: `main.rs` only parses the command line and calls [`run`], and
//! integration tests drive the real binary.

pub mod agents;
pub mod auth;
pub mod certs;
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
