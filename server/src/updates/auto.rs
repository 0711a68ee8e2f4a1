//! `agent_auto_update = true`: a server that starts with an agent binary some enrolled agents do
//! not run updates them, in the default waves, as MeshCentral updates its agents when it is
//! upgraded. The campaign starts before any agent is back; each is offered the update as it
//! reports in (`rollout.rs` offers again on `agentinfo`).

use tether_common::ids::UserId;

use super::rollout::audit_line;
use super::{NewCampaign, default_plan, taking_part};
use crate::state::AppState;

/// Who the audit log names for campaigns the server started itself.
const STARTED_BY: &str = "server";

pub(crate) async fn start_on_boot(state: AppState) {
    let release = match state.updates.publish(&state.config).await {
        Ok(release) => release,
        Err(e) => {
            tracing::warn!("agent auto-update: nothing to ship: {e}");
            return;
        }
    };
    let devices = match state.store.devices(None).await {
        Ok(devices) => taking_part(devices, &release.info),
        Err(e) => {
            tracing::error!("agent auto-update: cannot read the devices: {e}");
            return;
        }
    };
    let version = release.info.version.clone();
    if devices.is_empty() {
        tracing::info!(%version, "agent auto-update: every agent that can update itself runs this version");
        return;
    }
    let count = devices.len();
    let new = NewCampaign {
        release,
        devices,
        plan: default_plan(),
        group: None,
        started_by: UserId(STARTED_BY.into()),
    };
    match state.updates.start(&state.agents, new) {
        Ok(info) => {
            tracing::info!(%version, count, "agent auto-update: started");
            let message = format!(
                "The server started updating {count} agents to {version} (agent_auto_update)"
            );
            audit_line(&state, &info, message).await;
        }
        Err(e) => tracing::warn!("agent auto-update: {e}"),
    }
}
