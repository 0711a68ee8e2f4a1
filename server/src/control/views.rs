//! Stored records turned into what clients see. Public so that other modules (agents announcing a
//! device, accounts announcing a user) publish the same shapes.

use serde::Deserialize;
use tether_common::agent_proto::AgentInfo;
use tether_common::control::{AgentDetails, DeviceInfo, GroupInfo, GroupMember};

use crate::store::{DeviceRecord, GroupRecord};

/// Never includes the password hash.
pub use crate::auth::accounts::user_info;

pub fn group_info(group: &GroupRecord) -> GroupInfo {
    GroupInfo {
        id: group.id.clone(),
        name: group.name.clone(),
        description: group.description.clone(),
        members: group
            .members
            .iter()
            .map(|(user, rights)| GroupMember {
                user: user.clone(),
                rights: *rights,
            })
            .collect(),
        created: group.created,
        direct_connections: group.direct_connections,
        record_sessions: group.record_sessions,
        chat_transcripts: group.chat_transcripts,
        microphone: group.microphone,
        consent: group.consent,
    }
}

/// `online` comes from the live agent table, not from the record; an online device was "last
/// seen" now.
pub fn device_info(device: &DeviceRecord, online: bool, now_secs: i64) -> DeviceInfo {
    DeviceInfo {
        id: device.id.clone(),
        name: device.name.clone(),
        group: device.group.clone(),
        online,
        os: device.os.clone(),
        hostname: device.hostname.clone(),
        lastseen: if online { now_secs } else { device.last_seen },
        agent: agent_details(device),
        amt_uuid: device.amt_uuid.clone(),
    }
}

/// The agent's stored report as clients see it. A stock MeshAgent sends none (`null`); a stored
/// value that no longer reads as [`AgentInfo`] is left out rather than failing the whole list.
fn agent_details(device: &DeviceRecord) -> Option<AgentDetails> {
    if device.agent_info.is_null() {
        return None;
    }
    match AgentInfo::deserialize(&device.agent_info) {
        Ok(info) => Some(AgentDetails::from(info)),
        Err(e) => {
            tracing::debug!(device = %device.id, "control: stored agent info is unreadable: {e}");
            None
        }
    }
}
