//! Rights checks shared by the actions. A group the caller cannot see is reported exactly like a
//! group that does not exist, so ids cannot be probed.

use tether_common::ids::{DeviceId, GroupId};
use tether_common::rights::Rights;

use super::actions::{ActionContext, ActionError};
use crate::store::{DeviceRecord, GroupRecord, UserRecord};

/// What `user` may do on `group`: everything for site admins, otherwise the member entry (any
/// right implies VIEW).
pub fn rights_on(user: &UserRecord, group: &GroupRecord) -> Rights {
    if user.site_admin {
        return Rights::FULL;
    }
    group
        .members
        .get(&user.id)
        .copied()
        .unwrap_or(Rights::NONE)
        .normalized()
}

pub fn require_site_admin(user: &UserRecord) -> Result<(), ActionError> {
    if user.site_admin {
        Ok(())
    } else {
        Err(ActionError::Forbidden(
            "only site administrators may do that".into(),
        ))
    }
}

/// Loads a group the caller can see and checks that they hold `needed` on it.
pub async fn group_with(
    ctx: &ActionContext<'_>,
    id: &GroupId,
    needed: Rights,
) -> Result<GroupRecord, ActionError> {
    let not_found = || ActionError::NotFound(format!("no device group {id}"));
    let group = ctx.store.group(id).await?.ok_or_else(not_found)?;
    let rights = rights_on(ctx.caller, &group);
    if !rights.contains(Rights::VIEW) {
        return Err(not_found());
    }
    if !rights.contains(needed) {
        return Err(ActionError::Forbidden(format!(
            "you need the '{needed}' right on device group {}",
            group.name
        )));
    }
    Ok(group)
}

/// Loads a device whose group the caller can see and checks `needed` on that group.
pub async fn device_with(
    ctx: &ActionContext<'_>,
    id: &DeviceId,
    needed: Rights,
) -> Result<(DeviceRecord, GroupRecord), ActionError> {
    let not_found = || ActionError::NotFound(format!("no device {id}"));
    let device = ctx.store.device(id).await?.ok_or_else(not_found)?;
    let group = match group_with(ctx, &device.group, needed).await {
        Ok(group) => group,
        Err(ActionError::NotFound(_)) => return Err(not_found()),
        Err(other) => return Err(other),
    };
    Ok((device, group))
}
