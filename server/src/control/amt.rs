//! `setAmtAdmin`, `amtPower` and `openAmtWeb`: an Intel AMT machine's administrator account, its
//! power through its CIRA tunnel (`crate::amt`), and a link to its own web UI. All need the
//! right to manage the device; a power change and a web link are written to the audit log with
//! who asked.

use tether_common::control::{AmtPowerAction, AmtPowerState, AmtWebLink, DeviceInfo, Event};
use tether_common::ids::DeviceId;
use tether_common::rights::Rights;

use super::access::{ManageDevices, device_with};
use super::actions::{ActionContext, ActionError};
use super::audit::record_for_device;
use super::views::device_info;
use crate::clock::now_secs;
use crate::events::Audience;
use crate::store::AmtAdmin;

/// AMT's limits on its account names and passwords.
const MAX_USER: usize = 32;
const MAX_PASSWORD: usize = 32;

pub(super) async fn set_admin(
    ctx: &ActionContext<'_>,
    id: &DeviceId,
    user: &str,
    password: &str,
) -> Result<DeviceInfo, ActionError> {
    let granted = device_with::<ManageDevices>(ctx, id).await?;
    let user = user.trim();
    if user.is_empty() || user.chars().count() > MAX_USER || user.chars().any(char::is_control) {
        return Err(ActionError::BadRequest(format!(
            "an AMT user name is 1 to {MAX_USER} characters without control characters"
        )));
    }
    if password.is_empty() || password.chars().count() > MAX_PASSWORD {
        return Err(ActionError::BadRequest(format!(
            "an AMT password is 1 to {MAX_PASSWORD} characters"
        )));
    }
    let vault = ctx.store.amt_vault().await?;
    let admin = AmtAdmin {
        user: user.to_owned(),
        sealed_password: vault.seal(password),
    };
    let device = ctx
        .store
        .set_amt_admin(&granted, admin)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("no device {id}")))?
        .device;
    let group = granted.group();
    let info = device_info(&device, super::devices::is_online(ctx, id), now_secs());
    ctx.events.publish(
        Event::DeviceChanged {
            device: info.clone(),
        },
        Audience::group(group, Rights::VIEW),
    );
    let message = format!(
        "{} set the Intel AMT administrator of {} to {user}",
        ctx.caller.name, device.name
    );
    record_for_device(ctx, "amt_admin_set", group, &device.id, message).await;
    Ok(info)
}

pub(super) async fn open_web(
    ctx: &ActionContext<'_>,
    id: &DeviceId,
) -> Result<AmtWebLink, ActionError> {
    use crate::amt::web::{LINK_LIFETIME, WEB_PATH};

    let granted = device_with::<ManageDevices>(ctx, id).await?;
    let device = granted.device();
    if device.amt_admin.is_none() {
        return Err(ActionError::Conflict(format!(
            "{} has no Intel AMT administrator set (setAmtAdmin)",
            device.name
        )));
    }
    if !ctx.amt.is_online(id) {
        return Err(ActionError::Conflict(format!(
            "{} has no Intel AMT connection (CIRA) right now",
            device.name
        )));
    }
    let expires_ms = crate::clock::now_millis().max(0) as u64 + LINK_LIFETIME.as_millis() as u64;
    let token = ctx
        .store
        .sign_amt_web_link(&granted, &ctx.caller.id, expires_ms)
        .await?;
    let group = granted.group();
    let message = format!(
        "{} opened the Intel AMT web UI of {}",
        ctx.caller.name, device.name
    );
    record_for_device(ctx, "amt_web", group, &device.id, message).await;
    Ok(AmtWebLink {
        path: format!("{WEB_PATH}/{token}/"),
        expires_ms,
    })
}

pub(super) async fn power(
    ctx: &ActionContext<'_>,
    id: &DeviceId,
    action: AmtPowerAction,
) -> Result<AmtPowerState, ActionError> {
    let granted = device_with::<ManageDevices>(ctx, id).await?;
    let device = granted.device();
    let Some(admin) = &device.amt_admin else {
        return Err(ActionError::Conflict(format!(
            "{} has no Intel AMT administrator set (setAmtAdmin)",
            device.name
        )));
    };
    if !ctx.amt.is_online(id) {
        return Err(ActionError::Conflict(format!(
            "{} has no Intel AMT connection (CIRA) right now",
            device.name
        )));
    }
    let vault = ctx.store.amt_vault().await?;
    let password = vault.open(&admin.sealed_password).ok_or_else(|| {
        ActionError::Internal(
            "the AMT administrator's password does not open with this server's key".into(),
        )
    })?;
    let result = crate::amt::power(ctx.amt, id, &admin.user, &password, action).await;
    let state = result.map_err(|e| {
        tracing::warn!(device = %id, "amt: power {action:?} failed: {e}");
        ActionError::Conflict(format!("the Intel AMT machine did not do it: {e}"))
    })?;
    if action != AmtPowerAction::State {
        let group = granted.group();
        let asked = match action {
            AmtPowerAction::On => "power on",
            AmtPowerAction::Off => "power off",
            AmtPowerAction::Reset => "a reset",
            AmtPowerAction::Cycle => "a power cycle",
            AmtPowerAction::State => "the power state",
        };
        let message = format!(
            "{} asked Intel AMT on {} for {asked}; it is now {}",
            ctx.caller.name, device.name, state.label
        );
        record_for_device(ctx, "amt_power", group, &device.id, message).await;
    }
    Ok(state)
}
