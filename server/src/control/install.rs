//! Enrolment actions: `agentConfig` (a group's `.msh`) and `createInvite` (a short-lived link to
//! the agent, the `.msh` and an install script). Both need the right to enrol devices in the
//! group, the same rule as the `agent.msh` download (`crate::agents::may_enrol`).

use tether_common::ids::GroupId;
use tether_common::install::{
    AgentConfig, DEFAULT_INVITE_MINUTES, Invite, MAX_INVITE_MINUTES, ROOT_CERT_PATH,
    install_command, invite_url,
};
use tether_common::rights::Rights;

use super::access::group_with;
use super::actions::{ActionContext, ActionError, ActionResult, to_value};
use super::audit::{Subject, record};
use super::views::now_secs;
use crate::agents::{group_msh, may_enrol};
use crate::events::Audience;
use crate::install::invite;
use crate::store::GroupRecord;

pub async fn agent_config(ctx: &ActionContext<'_>, id: &GroupId) -> ActionResult {
    let group = enrollable(ctx, id).await?;
    let msh = group_msh(&group, ctx.site.agent_server_id, &ctx.site.authority)
        .ok_or_else(|| ActionError::Conflict("this group has no MeshCentral-style id".into()))?;
    to_value(&AgentConfig {
        group: group.id,
        msh: msh.to_string(),
    })
}

pub async fn create_invite(
    ctx: &ActionContext<'_>,
    id: &GroupId,
    minutes: Option<u32>,
) -> ActionResult {
    let minutes = minutes.unwrap_or(DEFAULT_INVITE_MINUTES);
    if !(1..=MAX_INVITE_MINUTES).contains(&minutes) {
        return Err(ActionError::BadRequest(format!(
            "an invite lasts 1 to {MAX_INVITE_MINUTES} minutes (7 days)"
        )));
    }
    let group = enrollable(ctx, id).await?;
    let (token, claims) = invite::mint(ctx.store, &group.id, &ctx.caller.id, minutes, now_secs())
        .await
        .map_err(|e| ActionError::Internal(format!("invite key: {e}")))?;
    let site = ctx.site;
    let root_cert_url = site.url(ROOT_CERT_PATH);
    let root_cert_sha256 = site.root_cert_sha256();
    let install_url = invite_url(&site.authority, &token, "install.sh");
    let install_command = install_command(&root_cert_url, &root_cert_sha256, &install_url);
    let invite = Invite {
        group: group.id.clone(),
        msh_url: invite_url(&site.authority, &token, "agent.msh"),
        agent_url: invite_url(&site.authority, &token, "tether-agent"),
        install_url,
        root_cert_url,
        root_cert_sha256,
        install_command,
        token,
        expires: claims.exp,
    };
    let message = format!(
        "{} created invite {} to enrol devices in group {}, valid for {minutes} minutes",
        ctx.caller.name, claims.id, group.name
    );
    let subject = Subject {
        group: Some(&group.id),
        ..Subject::default()
    };
    record(
        ctx,
        "invite_created",
        subject,
        message,
        Audience::group(&group, Rights::EVENTS),
    )
    .await;
    to_value(&invite)
}

/// The group, if the caller may enrol devices in it.
async fn enrollable(ctx: &ActionContext<'_>, id: &GroupId) -> Result<GroupRecord, ActionError> {
    let group = group_with(ctx, id, Rights::VIEW).await?;
    if !may_enrol(ctx.caller, &group) {
        return Err(ActionError::Forbidden(format!(
            "you need the 'manage' or 'devices' right on device group {} to add devices to it",
            group.name
        )));
    }
    Ok(group)
}
