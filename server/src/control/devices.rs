//! Device actions: list, rename, delete (and block from enrolling again: `blocked.rs` lists and
//! lifts blocks).

use tether_common::control::{Deleted, DeviceInfo, Event};
use tether_common::ids::{DeviceId, GroupId};
use tether_common::rights::Rights;

use super::access::{ManageDevices, Uninstall, View, device_with, group_with, rights_on};
use super::actions::{ActionContext, ActionError};
use super::audit::{Subject, record, record_for_device};
use super::views::device_info;
use crate::agents::{MAX_DEVICE_NAME_CHARS, device_name_is_clean};
use crate::clock::now_secs;
use crate::events::Audience;

/// Devices of the groups the caller can see (of one group, when given).
pub(super) async fn list(
    ctx: &ActionContext<'_>,
    group: Option<&GroupId>,
) -> Result<Vec<DeviceInfo>, ActionError> {
    let devices = match group {
        Some(group) => {
            group_with::<View>(ctx, group).await?;
            ctx.store.devices(Some(group)).await?
        }
        None => {
            let visible: std::collections::HashSet<GroupId> = ctx
                .store
                .groups()
                .await?
                .into_iter()
                .filter(|g| rights_on(ctx.caller, g).contains(Rights::VIEW))
                .map(|g| g.id)
                .collect();
            ctx.store
                .devices(None)
                .await?
                .into_iter()
                .filter(|d| visible.contains(&d.group))
                .collect()
        }
    };
    let now = now_secs();
    let mut infos: Vec<_> = devices
        .iter()
        .map(|d| device_info(d, is_online(ctx, &d.id), now))
        .collect();
    infos.sort_by(|a, b| {
        a.name
            .to_lowercase()
            .cmp(&b.name.to_lowercase())
            .then(a.id.cmp(&b.id))
    });
    Ok(infos)
}

pub(super) async fn rename(
    ctx: &ActionContext<'_>,
    id: &DeviceId,
    name: &str,
) -> Result<DeviceInfo, ActionError> {
    let granted = device_with::<ManageDevices>(ctx, id).await?;
    let group = granted.group();
    let name = name.trim();
    // The same rule that names sent by agents are cleaned to (`agents/strings.rs`).
    if !device_name_is_clean(name) {
        return Err(ActionError::BadRequest(format!(
            "a device name must be 1 to {MAX_DEVICE_NAME_CHARS} characters without control, \
             bidirectional or zero-width characters"
        )));
    }
    let old_name = granted.device().name.clone();
    // In one transaction: an agent's concurrent update is kept, a concurrent delete stays.
    let device = ctx
        .store
        .rename_device(&granted, name.to_owned())
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("no device {id}")))?
        .device;
    let info = device_info(&device, is_online(ctx, &device.id), now_secs());
    ctx.events.publish(
        Event::DeviceChanged {
            device: info.clone(),
        },
        Audience::group(group, Rights::VIEW),
    );
    let message = format!(
        "{} renamed device {old_name} to {}",
        ctx.caller.name, device.name
    );
    record_for_device(ctx, "device_renamed", group, &device.id, message).await;
    Ok(info)
}

/// Asks the device's agent to uninstall itself. The agent deletes what its installer put in place
/// and exits; its record stays (offline) until someone removes it.
pub(super) async fn uninstall_agent(
    ctx: &ActionContext<'_>,
    id: &DeviceId,
) -> Result<DeviceInfo, ActionError> {
    let granted = device_with::<Uninstall>(ctx, id).await?;
    let device = granted.device();
    let request = tether_common::agent_proto::ServerToAgent::Uninstall {
        by: ctx.caller.id.clone(),
    };
    tell_agent(ctx, device, &request, "uninstalled")?;
    let message = format!(
        "{} asked the agent on {} to uninstall itself",
        ctx.caller.name, device.name
    );
    record_for_device(ctx, "agent_uninstall", granted.group(), &device.id, message).await;
    Ok(device_info(device, is_online(ctx, &device.id), now_secs()))
}

/// Sends `message` to the device's connected agent, or says it is offline (`done`: what the
/// message would have had done, e.g. "uninstalled").
pub(super) fn tell_agent(
    ctx: &ActionContext<'_>,
    device: &crate::store::DeviceRecord,
    message: &tether_common::agent_proto::ServerToAgent,
    done: &str,
) -> Result<(), ActionError> {
    let text = tether_common::agent_proto::to_json(message);
    if ctx
        .agents
        .send(&device.id, crate::agents::Outgoing::Text(text))
    {
        Ok(())
    } else {
        Err(ActionError::Conflict(format!(
            "{} is offline: its agent can be {done} only while it is connected",
            device.name
        )))
    }
}

/// Removes the device record and closes its agent's connection. An agent that still has a valid
/// enrolment key (the group's current `.msh`, or a live invite's) reconnects and enrols again as a
/// new device, as in MeshCentral; with `block` its device id is refused from then on (until
/// `unblockDevice`). The block is written first, so a reconnect racing the deletion is refused too.
pub(super) async fn delete(
    ctx: &ActionContext<'_>,
    id: &DeviceId,
    block: bool,
) -> Result<Deleted<DeviceId>, ActionError> {
    let granted = device_with::<ManageDevices>(ctx, id).await?;
    let (device, group) = (granted.device(), granted.group());
    if block {
        ctx.store
            .block_device(&granted, &ctx.caller.id, now_secs())
            .await?;
    }
    if !ctx.store.delete_device(&granted).await? {
        return Err(ActionError::NotFound(format!("no device {id}")));
    }
    let event = Event::DeviceRemoved {
        device: id.clone(),
        group: group.id.clone(),
    };
    ctx.events
        .publish(event, Audience::group(group, Rights::VIEW));
    ctx.agents.disconnect(id);
    let message = format!(
        "{} removed device {} from group {}{}",
        ctx.caller.name,
        device.name,
        group.name,
        if block {
            " and blocked it from enrolling again"
        } else {
            ""
        }
    );
    let subject = Subject {
        group: Some(&group.id),
        device: Some(id),
        ..Subject::default()
    };
    record(
        ctx,
        if block {
            "device_blocked"
        } else {
            "device_removed"
        },
        subject,
        message,
        Audience::group(group, Rights::EVENTS),
    )
    .await;
    Ok(Deleted {
        deleted: id.clone(),
    })
}

/// Online through its agent or, for an Intel AMT machine, its CIRA tunnel.
pub(super) fn is_online(ctx: &ActionContext<'_>, device: &tether_common::ids::DeviceId) -> bool {
    ctx.agents.is_online(device) || ctx.amt.is_online(device)
}
