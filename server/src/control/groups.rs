//! Device-group actions: list, create, edit, delete, and members' rights.

use rand::RngCore;
use tether_common::control::{Deleted, EditGroup, Event, GroupInfo};
use tether_common::ids::{GroupId, UserId};
use tether_common::relay::consent::{ConsentMode, ConsentPolicy, WhenNobody};
use tether_common::rights::Rights;

use super::access::{ManageGroup, group_with, require_site_admin, rights_on};
use super::actions::{ActionContext, ActionError};
use super::audit::{Subject, record};
use super::views::group_info;
use crate::clock::now_secs;
use crate::events::Audience;
use crate::store::GroupRecord;

const MAX_NAME_CHARS: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 1024;

pub(super) async fn list(ctx: &ActionContext<'_>) -> Result<Vec<GroupInfo>, ActionError> {
    let mut visible: Vec<_> = ctx
        .store
        .groups()
        .await?
        .iter()
        .filter(|group| rights_on(ctx.caller, group).contains(Rights::VIEW))
        .map(group_info)
        .collect();
    visible.sort_by(|a, b| {
        a.name
            .to_lowercase()
            .cmp(&b.name.to_lowercase())
            .then(a.id.cmp(&b.id))
    });
    Ok(visible)
}

/// Site admins only (MeshCentral lets every user create groups unless `NONEWGROUPS`; we start
/// closed). The creator holds every right on the new group.
pub(super) async fn create(
    ctx: &ActionContext<'_>,
    name: &str,
    description: &str,
) -> Result<GroupInfo, ActionError> {
    let admin = require_site_admin(ctx.caller)?;
    let name = checked_name(name)?;
    let description = checked_description(description)?;
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let group = GroupRecord {
        id: GroupId::from_bytes(&bytes),
        name,
        description,
        members: [(ctx.caller.id.clone(), Rights::FULL)].into(),
        created: now_secs(),
        direct_connections: true,
        record_sessions: false,
        chat_transcripts: false,
        microphone: false,
        consent: Default::default(),
        cira: None,
    };
    ctx.store.create_group(&admin, &group).await?;
    let info = group_info(&group);
    ctx.events.publish(
        Event::GroupCreated {
            group: info.clone(),
        },
        Audience::group(&group, Rights::VIEW),
    );
    let message = format!("{} created device group {}", ctx.caller.name, group.name);
    let subject = Subject {
        group: Some(&group.id),
        ..Subject::default()
    };
    record(
        ctx,
        "group_created",
        subject,
        message,
        Audience::group(&group, Rights::EVENTS),
    )
    .await;
    Ok(info)
}

pub(super) async fn edit(
    ctx: &ActionContext<'_>,
    request: EditGroup,
) -> Result<GroupInfo, ActionError> {
    let EditGroup {
        group: id,
        name,
        description,
        direct_connections,
        record_sessions,
        chat_transcripts,
        microphone,
        consent,
    } = request;
    let granted = group_with::<ManageGroup>(ctx, &id).await?;
    let was_direct = granted.group().direct_connections;
    let was_recording = granted.group().record_sessions;
    let had_transcripts = granted.group().chat_transcripts;
    let had_microphone = granted.group().microphone;
    let had_consent = granted.group().consent;
    if let Some(policy) = &consent {
        policy.check().map_err(ActionError::BadRequest)?;
    }
    let name = name.as_deref().map(checked_name).transpose()?;
    let description = description
        .as_deref()
        .map(checked_description)
        .transpose()?;
    let group = ctx
        .store
        .update_group(&granted, |group| {
            if let Some(name) = name {
                group.name = name;
            }
            if let Some(description) = description {
                group.description = description;
            }
            if let Some(direct) = direct_connections {
                group.direct_connections = direct;
            }
            if let Some(record) = record_sessions {
                group.record_sessions = record;
            }
            if let Some(keep) = chat_transcripts {
                group.chat_transcripts = keep;
            }
            if let Some(listen) = microphone {
                group.microphone = listen;
            }
            if let Some(policy) = consent {
                group.consent = policy;
            }
        })
        .await?;
    let info = group_info(&group);
    ctx.events.publish(
        Event::GroupChanged {
            group: info.clone(),
        },
        Audience::group(&group, Rights::VIEW),
    );
    // A change of policy is named: it decides whether session bytes may bypass the server.
    let message = match (was_direct, group.direct_connections) {
        (true, false) => format!(
            "{} edited device group {}: direct connections off, sessions stay relayed",
            ctx.caller.name, group.name
        ),
        (false, true) => format!(
            "{} edited device group {}: direct connections on",
            ctx.caller.name, group.name
        ),
        _ => format!("{} edited device group {}", ctx.caller.name, group.name),
    };
    let message = match (was_recording, group.record_sessions) {
        (false, true) => format!("{message}: terminal and desktop sessions are now recorded"),
        (true, false) => format!("{message}: sessions are no longer recorded"),
        _ => message,
    };
    let message = match (had_transcripts, group.chat_transcripts) {
        (false, true) => format!("{message}: chat messages are now kept in the audit log"),
        (true, false) => format!("{message}: chat messages are no longer kept"),
        _ => message,
    };
    let message = match (had_microphone, group.microphone) {
        (false, true) => format!("{message}: desktop viewers may now listen to the microphone"),
        (true, false) => {
            format!("{message}: desktop viewers may no longer listen to the microphone")
        }
        _ => message,
    };
    let message = if had_consent == group.consent {
        message
    } else {
        format!(
            "{message}: consent at the device now {}",
            describe_consent(&group.consent)
        )
    };
    let subject = Subject {
        group: Some(&group.id),
        ..Subject::default()
    };
    record(
        ctx,
        "group_changed",
        subject,
        message,
        Audience::group(&group, Rights::EVENTS),
    )
    .await;
    Ok(info)
}

/// Deletes the group and its devices, and closes their agents' connections (they are then held
/// as agents of an unknown group). The audiences are taken before the record goes, so the former
/// members still hear about it.
pub(super) async fn delete(
    ctx: &ActionContext<'_>,
    id: &GroupId,
) -> Result<Deleted<GroupId>, ActionError> {
    let granted = group_with::<ManageGroup>(ctx, id).await?;
    let group = granted.group();
    let viewers = Audience::group(group, Rights::VIEW);
    let readers = Audience::group(group, Rights::EVENTS);
    if !ctx.store.delete_group(&granted).await? {
        return Err(ActionError::NotFound(format!("no device group {id}")));
    }
    ctx.events
        .publish(Event::GroupDeleted { group: id.clone() }, viewers);
    ctx.agents.disconnect_group(id);
    let message = format!("{} deleted device group {}", ctx.caller.name, group.name);
    record(
        ctx,
        "group_deleted",
        Subject {
            group: Some(id),
            ..Subject::default()
        },
        message,
        readers,
    )
    .await;
    Ok(Deleted {
        deleted: id.clone(),
    })
}

/// Gives `user` exactly `rights` on the group (`NONE` removes them). Someone who is not a site
/// admin can neither hand out rights they do not hold themselves, nor change a member who holds
/// rights they lack: every bit is a grant, and taking away what you could not give is no better
/// (a manager stripping the group's owners, say).
pub(super) async fn set_rights(
    ctx: &ActionContext<'_>,
    id: &GroupId,
    user: &UserId,
    rights: Rights,
) -> Result<GroupInfo, ActionError> {
    let granted = group_with::<ManageGroup>(ctx, id).await?;
    let own = granted.held();
    if !own.contains(rights) {
        return Err(ActionError::Forbidden(format!(
            "you cannot grant rights you do not hold ({own})"
        )));
    }
    let target = ctx
        .store
        .user(user)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("no user {user}")))?;
    let current = granted
        .group()
        .members
        .get(&target.id)
        .copied()
        .unwrap_or(Rights::NONE);
    if !own.contains(current) {
        return Err(ActionError::Forbidden(format!(
            "{} holds rights you do not hold ({own}); only someone who holds them may change theirs",
            target.name
        )));
    }
    let group = ctx
        .store
        .update_group(&granted, |group| {
            if rights.is_empty() {
                group.members.remove(&target.id);
            } else {
                group.members.insert(target.id.clone(), rights);
            }
        })
        .await?;
    let info = group_info(&group);
    // The affected user hears about it too, also when they were just removed (their client then
    // drops the group, since they are no longer among its members).
    ctx.events.publish(
        Event::GroupChanged {
            group: info.clone(),
        },
        Audience::group(&group, Rights::VIEW).with_user(&target.id),
    );
    let message = format!(
        "{} set {}'s rights on device group {} to {rights}",
        ctx.caller.name, target.name, group.name
    );
    let subject = Subject {
        group: Some(&group.id),
        ..Subject::default()
    };
    record(
        ctx,
        "group_rights_changed",
        subject,
        message,
        Audience::group(&group, Rights::EVENTS).with_user(&target.id),
    )
    .await;
    Ok(info)
}

fn checked_name(name: &str) -> Result<String, ActionError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(ActionError::BadRequest(format!(
            "a group name must be 1 to {MAX_NAME_CHARS} characters without control characters"
        )));
    }
    Ok(name.to_owned())
}

fn checked_description(description: &str) -> Result<String, ActionError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ActionError::BadRequest(format!(
            "a description may hold at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(description.trim().to_owned())
}

/// `desktop prompt, terminal notify, files none; 30 s to answer; with nobody there: allow`.
fn describe_consent(policy: &ConsentPolicy) -> String {
    let mode = |mode: ConsentMode| match mode {
        ConsentMode::None => "none",
        ConsentMode::Notify => "notify",
        ConsentMode::Prompt => "prompt",
    };
    let nobody = match policy.when_nobody {
        WhenNobody::Allow => "allow",
        WhenNobody::Refuse => "refuse",
    };
    format!(
        "desktop {}, terminal {}, files {}; {} s to answer; with nobody there: {nobody}",
        mode(policy.desktop),
        mode(policy.terminal),
        mode(policy.files),
        policy.prompt_secs
    )
}
