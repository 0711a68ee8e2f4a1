//! Agent update actions (site administrators only: an update runs new code as root on every
//! machine it reaches): `agentUpdates`, `startAgentUpdate`, `pauseAgentUpdate`,
//! `resumeAgentUpdate`, `cancelAgentUpdate`. The campaign itself is `updates/rollout.rs`.

use std::time::Duration;

use tether_common::agent_proto::ServerToAgent;
use tether_common::agent_update::campaign::CampaignPlan;
use tether_common::agent_update::{AgentUpdates, CampaignInfo};
use tether_common::control::{DeviceInfo, StartAgentUpdate};
use tether_common::ids::DeviceId;

use super::access::require_site_admin;
use super::actions::{ActionContext, ActionError};
use super::audit::{Subject, record};
use super::devices::tell_agent;
use super::views::device_info;
use crate::clock::now_secs;
use crate::events::Audience;
use crate::updates::{self, NewCampaign, RolloutError};

/// A device gets at least this long (a download and a restart), at most a day.
const WAVE_TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 10..=86_400;

pub(super) async fn status(ctx: &ActionContext<'_>) -> Result<AgentUpdates, ActionError> {
    require_site_admin(ctx.caller)?;
    let (release, problem) = match updates::current(ctx.site_config).await {
        Ok(release) => (Some(release), String::new()),
        Err(e) => (None, e.to_string()),
    };
    Ok(AgentUpdates {
        release,
        problem,
        campaign: ctx.updates.info(),
    })
}

pub(super) async fn start(
    ctx: &ActionContext<'_>,
    request: StartAgentUpdate,
) -> Result<CampaignInfo, ActionError> {
    require_site_admin(ctx.caller)?;
    let plan = CampaignPlan {
        waves: if request.waves.is_empty() {
            updates::DEFAULT_WAVES.to_vec()
        } else {
            request.waves
        },
        wave_timeout: match request.wave_timeout_secs {
            0 => updates::DEFAULT_WAVE_TIMEOUT,
            secs if WAVE_TIMEOUT_RANGE.contains(&secs) => Duration::from_secs(secs),
            secs => {
                return Err(ActionError::BadRequest(format!(
                    "waveTimeoutSecs {secs} is outside {}–{}",
                    WAVE_TIMEOUT_RANGE.start(),
                    WAVE_TIMEOUT_RANGE.end()
                )));
            }
        },
        max_failures: request.max_failures,
    };
    plan.check()
        .map_err(|e| ActionError::BadRequest(e.to_string()))?;
    if let Some(group) = &request.group
        && ctx.store.group(group).await?.is_none()
    {
        return Err(ActionError::NotFound(format!("no group {group}")));
    }
    let release = ctx
        .updates
        .publish(ctx.site_config)
        .await
        .map_err(|e| match e {
            updates::ReleaseError::Io(_) | updates::ReleaseError::Sign(_) => {
                ActionError::Internal(e.to_string())
            }
            other => ActionError::Conflict(other.to_string()),
        })?;
    let devices = updates::taking_part(
        ctx.store.devices(request.group.as_ref()).await?,
        &release.info,
    );
    if devices.is_empty() {
        return Err(ActionError::Conflict(format!(
            "no device {} runs an agent that can update itself to {} (they run it already, are \
             stock MeshAgents or packaged, or run on another platform)",
            if request.group.is_some() {
                "of the group"
            } else {
                ""
            },
            release.info.version
        )));
    }
    let version = release.info.version.clone();
    let count = devices.len();
    let new = NewCampaign {
        release,
        devices,
        plan,
        group: request.group.clone(),
        started_by: ctx.caller.id.clone(),
    };
    let info = ctx.updates.start(ctx.agents, new).map_err(rollout_error)?;
    let message = format!(
        "{} started updating {count} agents to {version} in waves of {:?} %",
        ctx.caller.name, info.waves
    );
    logged(ctx, &info, message).await;
    Ok(info)
}

pub(super) async fn pause(ctx: &ActionContext<'_>) -> Result<CampaignInfo, ActionError> {
    require_site_admin(ctx.caller)?;
    let why = format!("paused by {}", ctx.caller.name);
    let info = ctx.updates.pause(&why).map_err(rollout_error)?;
    logged(ctx, &info, changed_by(ctx, "paused", &info)).await;
    Ok(info)
}

pub(super) async fn resume(ctx: &ActionContext<'_>) -> Result<CampaignInfo, ActionError> {
    require_site_admin(ctx.caller)?;
    let info = ctx.updates.resume(ctx.agents).map_err(rollout_error)?;
    logged(ctx, &info, changed_by(ctx, "resumed", &info)).await;
    Ok(info)
}

pub(super) async fn cancel(ctx: &ActionContext<'_>) -> Result<CampaignInfo, ActionError> {
    require_site_admin(ctx.caller)?;
    let info = ctx.updates.cancel().map_err(rollout_error)?;
    logged(ctx, &info, changed_by(ctx, "cancelled", &info)).await;
    Ok(info)
}

/// Sends one agent `rollback`, outside any campaign's rules.
pub(super) async fn roll_back(
    ctx: &ActionContext<'_>,
    device: &DeviceId,
) -> Result<DeviceInfo, ActionError> {
    require_site_admin(ctx.caller)?;
    let found = ctx
        .store
        .device(device)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("no device {device}")))?;
    tell_agent(ctx, &found, &ServerToAgent::Rollback, "rolled back")?;
    let message = format!(
        "{} asked the agent on {} to go back to its previous version",
        ctx.caller.name, found.name
    );
    let subject = Subject {
        group: Some(&found.group),
        device: Some(device),
        ..Subject::default()
    };
    record(
        ctx,
        "agent_rollback",
        subject,
        message,
        Audience::admins_only(),
    )
    .await;
    Ok(device_info(&found, true, now_secs()))
}

/// The audit record of a change to the campaign, for site admins.
async fn logged(ctx: &ActionContext<'_>, info: &CampaignInfo, message: String) {
    let subject = Subject {
        group: info.group.as_ref(),
        ..Subject::default()
    };
    record(
        ctx,
        "agent_update",
        subject,
        message,
        Audience::admins_only(),
    )
    .await;
}

fn changed_by(ctx: &ActionContext<'_>, verb: &str, info: &CampaignInfo) -> String {
    format!(
        "{} {verb} the agent update to {}",
        ctx.caller.name, info.version
    )
}

fn rollout_error(e: RolloutError) -> ActionError {
    match e {
        RolloutError::Plan(e) => ActionError::BadRequest(e.to_string()),
        other => ActionError::Conflict(other.to_string()),
    }
}
