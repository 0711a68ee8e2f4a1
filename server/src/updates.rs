//! Agent self-update, the server's side (the agent's is `agent/src/update.rs`, the wire and the
//! rules `tether_common::agent_update`):
//!
//! - `release.rs`: the version this server ships, read from the agent binary it hands out, frozen
//!   and signed with the agent-server key when a campaign starts;
//! - `rollout.rs`: the campaign under way, in waves (`Updates`, one per server, in `AppState`);
//!   fed by `agents/session.rs` (each `agentinfo`'s version, each `updatefailed`);
//! - `download.rs`: `/agent-update.ashx`, where offered agents fetch the binary;
//! - the control actions are `control/updates.rs`.

mod download;
mod release;
mod rollout;

pub(crate) use download::routes;
pub(crate) use release::{Release, ReleaseError, Signing, current};
pub(crate) use rollout::Updates;
pub(crate) use rollout::{NewCampaign, RolloutError};
