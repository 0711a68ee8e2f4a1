//! The deny list: device ids that `deleteDevice { block: true }` keeps from enrolling again.
//! Listed under the group the device was removed from; reading and lifting a block needs the right
//! to enrol devices there (`may_enrol`), since unblocking lets the device back in.

use tether_common::control::Unblocked;
use tether_common::ids::{DeviceId, GroupId};
use tether_common::install::BlockedDevice;
use tether_common::rights::Rights;

use super::access::{Enrol, group_with};
use super::actions::{ActionContext, ActionError};
use super::audit::{Subject, record};
use crate::events::Audience;
use crate::store::BlockedDeviceRecord;

pub(super) async fn list(
    ctx: &ActionContext<'_>,
    group: &GroupId,
) -> Result<Vec<BlockedDevice>, ActionError> {
    let group = group_with::<Enrol>(ctx, group).await?.group().clone();
    let blocked: Vec<BlockedDevice> = ctx
        .store
        .blocked_devices(Some(&group.id))
        .await?
        .into_iter()
        .map(info)
        .collect();
    Ok(blocked)
}

pub(super) async fn unblock(
    ctx: &ActionContext<'_>,
    device: &DeviceId,
) -> Result<Unblocked, ActionError> {
    let not_found = || ActionError::NotFound(format!("no blocked device {device}"));
    let block = ctx
        .store
        .blocked_device(device)
        .await?
        .ok_or_else(not_found)?;
    let granted = match group_with::<Enrol>(ctx, &block.group).await {
        Ok(granted) => granted,
        Err(ActionError::NotFound(_)) => return Err(not_found()),
        Err(other) => return Err(other),
    };
    let group = granted.group();
    if !ctx.store.unblock_device(&granted, device).await? {
        return Err(not_found());
    }
    let message = format!(
        "{} unblocked device {} ({}): it may enrol again in group {}",
        ctx.caller.name, block.name, device, group.name
    );
    let subject = Subject {
        group: Some(&group.id),
        device: Some(device),
        ..Subject::default()
    };
    record(
        ctx,
        "device_unblocked",
        subject,
        message,
        Audience::group(group, Rights::EVENTS),
    )
    .await;
    Ok(Unblocked {
        unblocked: device.clone(),
    })
}

fn info(block: BlockedDeviceRecord) -> BlockedDevice {
    BlockedDevice {
        device: block.device,
        group: block.group,
        name: block.name,
        blocked_by: block.blocked_by,
        time: block.time,
    }
}
