//! One machine, one device: a machine with both a Tether agent and Intel AMT shows as the agent's
//! device, with AMT as its second connection. The two are matched by the machine's SMBIOS UUID,
//! which the agent reports (`AgentInfo::system_uuid`) and AMT sends when it logs in, and only
//! within one device group: the group's enrolment key and its CIRA login were both handed out by
//! the same administrators, so neither side can claim a machine of another group.
//!
//! Either may come first. Agent first: AMT's login finds the agent's device and joins it. AMT
//! first: it gets a record of its own ("Intel AMT <uuid>"); when an agent of the group reports the
//! same UUID, that record is folded into the agent's device (the AMT administrator moves with it)
//! and the AMT connection is asked to come back, which then lands on the agent's device.

use serde_json::Value;
use tether_common::agent_proto::AgentInfo;
use tether_common::apf::AmtUuid;
use tether_common::control::Event;
use tether_common::ids::{DeviceId, GroupId};
use tether_common::rights::Rights;

use crate::clock::{now_millis, now_secs};
use crate::control::views::device_info;
use crate::events::{Audience, EventBus};
use crate::state::AppState;
use crate::store::{DeviceRecord, NewEvent, Store, StoreResult};

/// The SMBIOS UUID an agent reported for the device, if any (stored as `AgentInfo` JSON).
fn reported_uuid(device: &DeviceRecord) -> Option<&str> {
    device
        .agent_info
        .get("system_uuid")
        .and_then(Value::as_str)
        .filter(|uuid| !uuid.is_empty())
}

/// The agent's device in `group` on the machine whose AMT has `uuid`, if one reported it.
pub(super) async fn agent_device_for(
    store: &dyn Store,
    uuid: &AmtUuid,
    group: &GroupId,
) -> StoreResult<Option<DeviceRecord>> {
    let own = DeviceId::from_amt_uuid(&uuid.0);
    let uuid = uuid.to_string();
    Ok(store
        .devices(Some(group))
        .await?
        .into_iter()
        .find(|device| {
            device.id != own
                && reported_uuid(device)
                    .is_some_and(|reported| reported.eq_ignore_ascii_case(&uuid))
        }))
}

/// Folds AMT's own record `own` into the agent's device `into`: the administrator moves over
/// unless the device has one, the record goes, and consoles and the audit log hear of it.
/// Returns the agent's device as it is now (`None` if it went meanwhile).
pub(super) async fn fold(
    store: &dyn Store,
    events: &EventBus,
    own: DeviceRecord,
    into: &DeviceId,
) -> StoreResult<Option<DeviceRecord>> {
    let (admin, uuid) = (own.amt_admin.clone(), own.amt_uuid.clone());
    let join = move |device: &mut DeviceRecord| {
        if device.amt_admin.is_none() {
            device.amt_admin = admin;
        }
        device.amt_uuid = uuid;
        true
    };
    let Some(update) = store.update_device(into, Box::new(join)).await? else {
        return Ok(None);
    };
    let device = update.device;
    store.delete_device(&own.id).await?;
    let group = store.group(&own.group).await?;
    let (viewers, auditors) = match &group {
        Some(group) => (
            Audience::group(group, Rights::VIEW),
            Audience::group(group, Rights::EVENTS),
        ),
        None => (Audience::admins_only(), Audience::admins_only()),
    };
    events.publish(
        Event::DeviceRemoved {
            device: own.id.clone(),
            group: own.group.clone(),
        },
        viewers,
    );
    let entry = NewEvent {
        time: now_millis(),
        kind: "amt_linked".into(),
        user: None,
        group: Some(device.group.clone()),
        device: Some(device.id.clone()),
        message: format!(
            "Intel AMT of {} is now part of that device (its agent reported the same machine UUID); the separate record {} was removed",
            device.name, own.name
        ),
    };
    match store.append_event(entry).await {
        Ok(record) => events.publish(Event::Logged { record }, auditors),
        Err(e) => tracing::error!("mps: could not write the audit record of a link: {e}"),
    }
    Ok(Some(device))
}

/// After an agent's report: if AMT on its machine has a record of its own in the same group, it
/// is folded into the agent's device, and a live AMT connection is asked to come back so that
/// it joins the agent's device.
pub(crate) async fn link_agent(state: &AppState, device: &DeviceId, info: &AgentInfo) {
    let Some(uuid) = AmtUuid::parse(&info.system_uuid) else {
        return;
    };
    let own_id = DeviceId::from_amt_uuid(&uuid.0);
    let store = state.store.as_ref();
    let found = async {
        let own = store.device(&own_id).await?;
        let agent = store.device(device).await?;
        Ok::<_, crate::store::StoreError>(own.zip(agent))
    };
    let (own, agent) = match found.await {
        Ok(Some(pair)) => pair,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(%device, "mps: cannot look for the machine's AMT record: {e}");
            return;
        }
    };
    if own.group != agent.group {
        tracing::info!(%device, %uuid, "mps: the agent's machine has Intel AMT in another group; not linked");
        return;
    }
    match fold(store, &state.events, own, device).await {
        Ok(Some(linked)) => {
            tracing::info!(%device, %uuid, "mps: Intel AMT joined its agent's device");
            state.events.publish(
                Event::DeviceChanged {
                    device: device_info(&linked, true, now_secs()),
                },
                match store.group(&linked.group).await {
                    Ok(Some(group)) => Audience::group(&group, Rights::VIEW),
                    _ => Audience::admins_only(),
                },
            );
            state.amt.ask_to_reconnect(&own_id);
        }
        Ok(None) => {}
        Err(e) => tracing::error!(%device, "mps: cannot link the machine's AMT: {e}"),
    }
}
