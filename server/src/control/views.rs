//! Stored records turned into what clients see. Public so that other modules (agents announcing a
//! device, accounts announcing a user) publish the same shapes.

use tether_common::control::{DeviceInfo, GroupInfo, GroupMember};

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
        agent: device.agent_info.clone(),
    }
}

pub fn now_secs() -> i64 {
    now_millis() / 1000
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
