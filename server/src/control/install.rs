//! Enrolment actions: `agentConfig` (a group's `.msh`), `rotateEnrolmentKey`, and invites
//! (`createInvite`, a short-lived link to the agent, a `.msh` and an install script;
//! `listInvites`; `revokeInvite`). All need the right to enrol devices in the group, the same rule
//! as the `agent.msh` download (`crate::agents::may_enrol`), because each of them hands out or
//! controls an enrolment key.

use tether_common::ids::GroupId;
use tether_common::install::{
    AgentConfig, DEFAULT_INVITE_MINUTES, Invite, InviteInfo, InviteStatus, MAX_INVITE_MINUTES,
    ROOT_CERT_PATH, install_command, invite_url,
};
use tether_common::rights::Rights;

use super::access::{Enrol, group_with};
use super::actions::{ActionContext, ActionError};
use super::audit::{Subject, record};
use crate::agents::{EnrolmentKey, group_msh};
use crate::clock::now_secs;
use crate::events::Audience;
use crate::store::{GroupRecord, InviteRecord};

/// Invites stay listed this long after they expired, then go (with their keys).
const KEEP_EXPIRED_INVITES_SECS: i64 = 30 * 24 * 3600;

pub(super) async fn agent_config(
    ctx: &ActionContext<'_>,
    id: &GroupId,
) -> Result<AgentConfig, ActionError> {
    let granted = group_with::<Enrol>(ctx, id).await?;
    let key = ctx.store.group_key(&granted).await?;
    let group = granted.group().clone();
    config_of(ctx, group, &key)
}

pub(super) async fn rotate_enrolment_key(
    ctx: &ActionContext<'_>,
    id: &GroupId,
) -> Result<AgentConfig, ActionError> {
    let granted = group_with::<Enrol>(ctx, id).await?;
    let key = ctx.store.rotate_group_key(&granted).await?;
    let group = granted.group().clone();
    let message = format!(
        "{} replaced the enrolment key of group {}: earlier .msh files admit no new device",
        ctx.caller.name, group.name
    );
    audit(ctx, &group, "enrolment_key_rotated", message).await;
    config_of(ctx, group, &key)
}

/// A MeshCentral group's `MeshID` becomes the group's enrolment key (see `ImportEnrolmentKey`).
pub(super) async fn import_enrolment_key(
    ctx: &ActionContext<'_>,
    id: &GroupId,
    mesh_id: &str,
) -> Result<AgentConfig, ActionError> {
    let granted = group_with::<Enrol>(ctx, id).await?;
    let key = parse_mesh_id(mesh_id).ok_or_else(|| {
        ActionError::BadRequest(
            "a MeshID is 0x and 96 hex digits (48 bytes), as in a MeshCentral .msh file".into(),
        )
    })?;
    let key = ctx
        .store
        .import_group_key(&granted, key)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict(_) => ActionError::Conflict(
                "that MeshID is already an enrolment key on this server".into(),
            ),
            other => other.into(),
        })?;
    let group = granted.group().clone();
    let message = format!(
        "{} made a MeshCentral MeshID the enrolment key of group {}: MeshAgents of that group enrol here; earlier .msh files admit no new device",
        ctx.caller.name, group.name
    );
    audit(ctx, &group, "enrolment_key_imported", message).await;
    config_of(ctx, group, &key)
}

/// `0x` and 96 hex digits (either case, the `0x` optional); not a key with one byte repeated,
/// which no MeshCentral group has (its ids are random).
fn parse_mesh_id(text: &str) -> Option<EnrolmentKey> {
    let hex = text.trim();
    let hex = hex
        .strip_prefix("0x")
        .or_else(|| hex.strip_prefix("0X"))
        .unwrap_or(hex);
    let bytes: [u8; 48] = hex::decode(hex).ok()?.try_into().ok()?;
    (bytes.iter().any(|b| *b != bytes[0])).then(|| EnrolmentKey::from_bytes(bytes))
}

fn config_of(
    ctx: &ActionContext<'_>,
    group: GroupRecord,
    key: &EnrolmentKey,
) -> Result<AgentConfig, ActionError> {
    let msh = group_msh(&group, key, ctx.site.agent_server_id, &ctx.site.authority);
    Ok(AgentConfig {
        group: group.id,
        msh: msh.to_string(),
    })
}

pub(super) async fn create_invite(
    ctx: &ActionContext<'_>,
    id: &GroupId,
    minutes: Option<u32>,
    max_devices: Option<u32>,
) -> Result<Invite, ActionError> {
    let minutes = minutes.unwrap_or(DEFAULT_INVITE_MINUTES);
    if !(1..=MAX_INVITE_MINUTES).contains(&minutes) {
        return Err(ActionError::BadRequest(format!(
            "an invite lasts 1 to {MAX_INVITE_MINUTES} minutes (7 days)"
        )));
    }
    if max_devices == Some(0) {
        return Err(ActionError::BadRequest(
            "an invite admits at least one device (leave max_devices out for no limit)".into(),
        ));
    }
    let granted = group_with::<Enrol>(ctx, id).await?;
    let group = granted.group();
    let now = now_secs();
    prune_old_invites(ctx, now).await;
    let (token, created) = ctx
        .store
        .create_invite(&granted, &ctx.caller.id, minutes, max_devices, now)
        .await
        .map_err(|e| ActionError::Internal(format!("storing an invite: {e}")))?;
    let site = ctx.site;
    let root_cert_url = site.url(ROOT_CERT_PATH);
    let root_cert_sha256 = site.root_cert_sha256();
    let install_url = invite_url(&site.authority, &token, "install.sh");
    let install_command = install_command(&root_cert_url, &root_cert_sha256, &install_url);
    let invite = Invite {
        id: created.id.clone(),
        group: group.id.clone(),
        msh_url: invite_url(&site.authority, &token, "agent.msh"),
        agent_url: invite_url(&site.authority, &token, "tether-agent"),
        install_url,
        root_cert_url,
        root_cert_sha256,
        install_command,
        token,
        expires: created.expires,
    };
    let limit = match max_devices {
        Some(1) => ", for one device".to_owned(),
        Some(n) => format!(", for up to {n} devices"),
        None => String::new(),
    };
    let message = format!(
        "{} created invite {} to enrol devices in group {}, valid for {minutes} minutes{limit}",
        ctx.caller.name, created.id, group.name
    );
    audit(ctx, group, "invite_created", message).await;
    Ok(invite)
}

pub(super) async fn list_invites(
    ctx: &ActionContext<'_>,
    id: &GroupId,
) -> Result<Vec<InviteInfo>, ActionError> {
    let group = group_with::<Enrol>(ctx, id).await?.group().clone();
    let now = now_secs();
    prune_old_invites(ctx, now).await;
    let infos: Vec<InviteInfo> = ctx
        .store
        .invites(Some(&group.id))
        .await?
        .iter()
        .map(|i| invite_info(i, now))
        .collect();
    Ok(infos)
}

pub(super) async fn revoke_invite(
    ctx: &ActionContext<'_>,
    id: &str,
) -> Result<InviteInfo, ActionError> {
    let not_found = || ActionError::NotFound(format!("no invite {id}"));
    let invite = ctx.store.invite(id).await?.ok_or_else(not_found)?;
    let granted = match group_with::<Enrol>(ctx, &invite.group).await {
        Ok(granted) => granted,
        Err(ActionError::NotFound(_)) => return Err(not_found()),
        Err(other) => return Err(other),
    };
    let group = granted.group();
    let now = now_secs();
    let revoked = ctx
        .store
        .revoke_invite(&granted, id, &ctx.caller.id, now)
        .await?
        .ok_or_else(not_found)?;
    if invite.revoked.is_none() {
        let message = format!(
            "{} revoked invite {} to group {} (it had enrolled {} devices)",
            ctx.caller.name, invite.id, group.name, revoked.enrolled
        );
        audit(ctx, group, "invite_revoked", message).await;
    }
    Ok(invite_info(&revoked, now))
}

pub(super) fn invite_info(invite: &InviteRecord, now: i64) -> InviteInfo {
    let status = match invite.unusable_at(now) {
        None => InviteStatus::Active,
        Some(_) if invite.revoked.is_some() => InviteStatus::Revoked,
        Some(_) if now >= invite.expires => InviteStatus::Expired,
        Some(_) => InviteStatus::UsedUp,
    };
    InviteInfo {
        id: invite.id.clone(),
        group: invite.group.clone(),
        created_by: invite.created_by.clone(),
        created: invite.created,
        expires: invite.expires,
        enrolled: invite.enrolled,
        max_devices: invite.max_devices,
        status,
        revoked: invite.revoked,
        revoked_by: invite.revoked_by.clone(),
    }
}

/// Housekeeping on the way: a failure only costs some disk space, so it is logged, not returned.
async fn prune_old_invites(ctx: &ActionContext<'_>, now: i64) {
    if let Err(e) = ctx
        .store
        .prune_invites(now - KEEP_EXPIRED_INVITES_SECS)
        .await
    {
        tracing::warn!("control: could not prune old invites: {e}");
    }
}

async fn audit(ctx: &ActionContext<'_>, group: &GroupRecord, kind: &str, message: String) {
    let subject = Subject {
        group: Some(&group.id),
        ..Subject::default()
    };
    record(
        ctx,
        kind,
        subject,
        message,
        Audience::group(group, Rights::EVENTS),
    )
    .await;
}

#[cfg(test)]
mod mesh_id_tests {
    use super::parse_mesh_id;

    #[test]
    fn mesh_ids_are_read_as_a_msh_file_writes_them() {
        let hex = "ab".repeat(47) + "cd";
        assert!(parse_mesh_id(&format!("0x{hex}")).is_some());
        assert!(parse_mesh_id(&format!(" 0X{} ", hex.to_uppercase())).is_some());
        assert!(parse_mesh_id(&hex).is_some());
        assert!(
            parse_mesh_id(&"00".repeat(48)).is_none(),
            "no random id is all zeros"
        );
        assert!(parse_mesh_id(&hex[..94]).is_none());
        assert!(parse_mesh_id("0xzz").is_none());
    }
}
