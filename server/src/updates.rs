//! Agent self-update, the server's side (the agent's is `agent/src/update.rs`, the wire and the
//! rules `tether_common::agent_update`):
//!
//! - `release.rs`: the version this server ships, read from the agent binary it hands out, frozen
//!   and signed with the agent-server key when a campaign starts;
//! - `rollout.rs`: the campaign under way, in waves (`Updates`, one per server, in `AppState`);
//!   fed by `agents/session.rs` (each `agentinfo`'s version, each `updatefailed`);
//! - `download.rs`: `/agent-update.ashx`, where offered agents fetch the binary;
//! - `auto.rs`: `agent_auto_update`, a campaign the server starts itself when it boots with a
//!   new agent;
//! - the control actions are `control/updates.rs`.

mod auto;
mod download;
mod release;
mod rollout;

use std::time::Duration;

use rand::seq::SliceRandom;
use tether_common::agent_proto::AgentInfo;
use tether_common::agent_update::campaign::CampaignPlan;
use tether_common::agent_update::{AgentRelease, is_version};
use tether_common::ids::DeviceId;

use crate::store::DeviceRecord;

pub(crate) use auto::start_on_boot;

pub(crate) use download::routes;
pub(crate) use release::{Release, ReleaseError, Signing, current};
pub(crate) use rollout::Updates;
pub(crate) use rollout::{NewCampaign, RolloutError};

/// Waves when none are given: one device in a hundred first.
pub(crate) const DEFAULT_WAVES: [u8; 4] = [1, 10, 50, 100];
pub(crate) const DEFAULT_WAVE_TIMEOUT: Duration = Duration::from_secs(600);

pub(crate) fn default_plan() -> CampaignPlan {
    CampaignPlan {
        waves: DEFAULT_WAVES.to_vec(),
        wave_timeout: DEFAULT_WAVE_TIMEOUT,
        max_failures: 0,
    }
}

/// The devices a campaign for `release` covers, in a random order (so the first wave is not
/// always the same machines), with their names: those whose agent last reported this platform
/// (packaged agents and stock MeshAgents report none) and another version.
pub(crate) fn taking_part(
    devices: Vec<DeviceRecord>,
    release: &AgentRelease,
) -> Vec<(DeviceId, String)> {
    let mut taking_part: Vec<_> = devices
        .into_iter()
        .filter(|device| {
            let info: AgentInfo =
                serde_json::from_value(device.agent_info.clone()).unwrap_or_default();
            info.platform == release.platform
                && is_version(&info.agent_version)
                && info.agent_version != release.version
        })
        .map(|device| (device.id, device.name))
        .collect();
    taking_part.shuffle(&mut rand::rng());
    taking_part
}
