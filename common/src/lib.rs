//! What the server, the agent and the tools share: identifiers, rights, and the wire types of every
//! protocol. Nothing in this crate does IO; protocol logic lives in pure state machines that the
//! binaries drive from their sockets.

pub mod agent_proto;
pub mod agent_session;
pub mod control;
pub mod handshake;
pub mod http_error;
pub mod ids;
pub mod install;
pub mod msh;
pub mod relay;
pub mod rights;
pub mod stun;
