//! The simulated-path test kit: the network (`sim.rs`) and a stand-in for the agent's encoder
//! (`source.rs`).

pub mod sim;
pub mod source;
