//! What the server, the agent and the tools share: identifiers, rights, and the wire types of every
//! protocol. Nothing in this crate does IO; protocol logic lives in pure state machines that the
//! binaries drive from their sockets.

// Kept here, not in the workspace [lints], because they must not reach the integration tests
// (see CONTRIBUTING.md, "Lints").
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod agent_proto;
pub mod agent_session;
pub mod agent_update;
pub mod apf;
pub mod control;
pub mod handshake;
pub mod http_error;
pub mod ids;
pub mod install;
pub mod msh;
pub mod recording;
pub mod relay;
pub mod rights;
pub mod share;
pub mod stun;
