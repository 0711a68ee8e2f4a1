//! What an agent connection changes in the store, and the events that tell consoles about it.

use tether_common::agent_proto::AgentInfo;
use tether_common::control::Event;
use tether_common::handshake::VerifiedAgent;
use tether_common::ids::{DeviceId, GroupId};
use tether_common::rights::Rights;

use super::{enrolment, strings};
use crate::clock::{now_millis, now_secs};
use crate::control::views::device_info;
use crate::events::{Audience, EventBus};
use crate::store::{DeviceRecord, GroupRecord, NewEvent, Store, StoreResult};

/// A device admitted to the server, as stored after this connection.
pub(super) struct Admitted {
    pub device: DeviceRecord,
    pub group: GroupRecord,
    pub is_new: bool,
    /// The invite a new device enrolled with, if it did.
    pub invite: Option<String>,
}

/// Finds where a verified agent belongs and records the connection; `None` (with the reason
/// logged) when it may not come in.
///
/// A blocked device id is refused whatever it shows. A device the server already knows is admitted
/// by its proven id and stays in its stored group whatever its `.msh` says (the server side wins,
/// as in MeshCentral), so rotated keys and ended invites do not cut off enrolled devices. A new
/// device must present, as its MeshID, a valid enrolment key (`enrolment.rs`); the group id alone
/// admits nothing.
pub(super) async fn admit(
    store: &dyn Store,
    agent: &VerifiedAgent,
    agent_name: Option<&str>,
) -> StoreResult<Option<Admitted>> {
    let now = now_secs();
    let device_id = &agent.device_id;
    if let Some(block) = store.blocked_device(device_id).await? {
        tracing::warn!(
            device = %device_id,
            group = %block.group,
            "agent: refused: this device id is blocked from enrolling (removed as {:?} by {} at {})",
            block.name,
            block.blocked_by,
            block.time
        );
        return Ok(None);
    }
    let hostname = strings::hostname(&agent.auth_info.hostname);
    if let Some(device) = store.device(device_id).await? {
        let Some(group) = store.group(&device.group).await? else {
            tracing::warn!(device = %device_id, group = %device.group, "agent: refused: its device group is gone");
            return Ok(None);
        };
        let seen = move |device: &mut DeviceRecord| {
            if !hostname.is_empty() {
                device.hostname = hostname;
            }
            device.last_seen = now;
            true
        };
        // In one transaction: a device deleted (and maybe blocked) since it was read is not
        // written back.
        let Some(update) = store.update_device(device_id, Box::new(seen)).await? else {
            tracing::warn!(device = %device_id, "agent: refused: the device was removed while it connected");
            return Ok(None);
        };
        return Ok(Some(Admitted {
            device: update.device,
            group,
            is_new: false,
            invite: None,
        }));
    }
    let refused = |refusal: enrolment::Refusal| {
        tracing::warn!(device = %device_id, "agent: refused to enrol a new device: {refusal}");
        None
    };
    let (group, invite) =
        match enrolment::group_for_new_device(store, &agent.auth_info.mesh_id, now).await? {
            Ok(found) => found,
            Err(refusal) => return Ok(refused(refusal)),
        };
    if let Some(invite) = &invite
        && let Err(refusal) = enrolment::take_invite_place(store, invite, now).await?
    {
        return Ok(refused(refusal));
    }
    let name = agent_name
        .and_then(strings::device_name)
        .or_else(|| strings::device_name(&hostname))
        .unwrap_or_else(|| device_id.as_str().chars().take(8).collect());
    let device = DeviceRecord {
        id: device_id.clone(),
        group: group.id.clone(),
        name,
        hostname,
        os: String::new(),
        agent_info: serde_json::Value::Null,
        last_seen: now,
        created: now,
        amt_admin: None,
        amt_uuid: None,
    };
    store.put_device(&device).await?;
    Ok(Some(Admitted {
        device,
        group,
        is_new: true,
        invite: invite.map(|i| i.id),
    }))
}

/// Tells consoles a device connected (and, the first time, that it exists).
pub(super) async fn announce_online(store: &dyn Store, events: &EventBus, admitted: &Admitted) {
    let Admitted {
        device,
        group,
        is_new,
        invite,
    } = admitted;
    let viewers = Audience::group(group, Rights::VIEW);
    if *is_new {
        events.publish(
            Event::DeviceAdded {
                device: device_info(device, true, now_secs()),
            },
            viewers.clone(),
        );
        let record = NewEvent {
            time: now_millis(),
            kind: "device_added".into(),
            user: None,
            group: Some(group.id.clone()),
            device: Some(device.id.clone()),
            message: match invite {
                Some(invite) => format!(
                    "Device {} joined group {} with invite {invite}",
                    device.name, group.name
                ),
                None => format!("Device {} joined group {}", device.name, group.name),
            },
        };
        match store.append_event(record).await {
            Ok(record) => events.publish(
                Event::Logged { record },
                Audience::group(group, Rights::EVENTS),
            ),
            Err(e) => {
                tracing::error!("agent: could not write the audit record of a new device: {e}")
            }
        }
    }
    events.publish(
        Event::DeviceOnline {
            device: device.id.clone(),
            group: group.id.clone(),
        },
        viewers,
    );
}

/// Records the disconnection time and tells consoles. The group is re-read: it may have changed
/// (or gone) while the agent was connected.
pub(crate) async fn announce_offline(
    store: &dyn Store,
    events: &EventBus,
    device_id: &DeviceId,
    group_id: &GroupId,
) {
    let now = now_secs();
    let seen = move |device: &mut DeviceRecord| {
        device.last_seen = now;
        true
    };
    let group_id = match store.update_device(device_id, Box::new(seen)).await {
        Ok(Some(update)) => update.device.group,
        Ok(None) => group_id.clone(),
        Err(e) => {
            tracing::warn!(device = %device_id, "agent: could not record the last-seen time: {e}");
            group_id.clone()
        }
    };
    let audience = match store.group(&group_id).await {
        Ok(Some(group)) => Audience::group(&group, Rights::VIEW),
        _ => Audience::admins_only(),
    };
    events.publish(
        Event::DeviceOffline {
            device: device_id.clone(),
            group: group_id,
        },
        audience,
    );
}

/// A device whose server is gone (`cluster/`): this server's consoles see it go offline. Each
/// server tells its own consoles, so the event is not forwarded; the record's last-seen time
/// stays at the last one written.
pub(crate) async fn announce_lost(
    state: &crate::state::AppState,
    device: &DeviceId,
    group: &GroupId,
) {
    let audience = match state.store.group(group).await {
        Ok(Some(group)) => Audience::group(&group, Rights::VIEW),
        _ => Audience::admins_only(),
    };
    state.events.publish_local(
        Event::DeviceOffline {
            device: device.clone(),
            group: group.clone(),
        },
        audience,
    );
}

/// Stores what the agent reported about its machine, cleaned and bounded (`strings.rs`); consoles
/// see it as a device change. Nothing is written when nothing changed (agents resend on every
/// reconnect).
pub(super) async fn store_agent_info(
    store: &dyn Store,
    events: &EventBus,
    device_id: &DeviceId,
    info: &AgentInfo,
) -> StoreResult<()> {
    let (info, trimmed) = strings::bounded_agent_info(info);
    if trimmed {
        tracing::warn!(
            device = %device_id,
            "agent: its agentinfo had control or invisible characters, or was too large; stored a cleaned, shortened copy"
        );
    }
    let value = serde_json::to_value(&info).unwrap_or_default();
    let os = info.os_description();
    let describe = move |device: &mut DeviceRecord| {
        let hostname = if info.hostname.is_empty() {
            device.hostname.clone()
        } else {
            info.hostname
        };
        if device.agent_info == value && device.os == os && device.hostname == hostname {
            return false;
        }
        device.agent_info = value;
        device.os = os;
        device.hostname = hostname;
        true
    };
    // In one transaction, so a device deleted meanwhile stays deleted.
    let device = match store.update_device(device_id, Box::new(describe)).await? {
        Some(update) if update.changed => update.device,
        _ => return Ok(()),
    };
    let audience = match store.group(&device.group).await? {
        Some(group) => Audience::group(&group, Rights::VIEW),
        None => Audience::admins_only(),
    };
    events.publish(
        Event::DeviceChanged {
            device: device_info(&device, true, now_secs()),
        },
        audience,
    );
    Ok(())
}
