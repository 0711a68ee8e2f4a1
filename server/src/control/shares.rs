//! `createShare`, `listShares`, `revokeShare`: guest sharing links (`tether_common::share`). The
//! guest's side, trading a link for a session, is `relay/guest.rs`.
//!
//! Who may do what: a link is made by a user who may open that kind of session on the device
//! themselves (desktop control for a control link); it is seen and revoked by its creator, site
//! administrators and those who manage the device's group.

use sha2::{Digest, Sha256};
use tether_common::ids::DeviceId;
use tether_common::rights::Rights;
use tether_common::share::{
    GUEST_PAGE_PATH, MAX_SHARE_LABEL, MAX_SHARE_MINUTES, ShareInfo, ShareKind, ShareLink,
};

use super::access::{View, device_with, rights_on, session_on};
use super::actions::{ActionContext, ActionError};
use super::audit::record_for_device;
use crate::clock::now_millis;
use crate::store::{GroupRecord, ShareRecord, UserRecord};
use crate::tokens::random_id;

pub(super) async fn create(
    ctx: &ActionContext<'_>,
    device: &DeviceId,
    kind: ShareKind,
    minutes: u32,
    single_use: bool,
    label: &str,
) -> Result<ShareLink, ActionError> {
    let granted = session_on(ctx, device, kind.session_kind()).await?;
    if !kind.allowed_by(granted.rights()) {
        return Err(ActionError::Forbidden(format!(
            "you may not share what you may not do yourself: a {} link",
            kind.describe()
        )));
    }
    if !(1..=MAX_SHARE_MINUTES).contains(&minutes) {
        return Err(ActionError::BadRequest(format!(
            "a link lasts 1 to {MAX_SHARE_MINUTES} minutes, not {minutes}"
        )));
    }
    let label = checked_label(label)?;
    let secret = random_id(32);
    let now = now_millis();
    let record = ShareRecord {
        id: random_id(12),
        secret_sha256: secret_hash(&secret),
        device: granted.device().id.clone(),
        kind,
        label,
        creator: ctx.caller.id.clone(),
        created_ms: now,
        expires_ms: now + i64::from(minutes) * 60_000,
        single_use,
        uses: 0,
        revoked_ms: None,
        revoked_by: None,
    };
    ctx.store.create_share(&granted, &record).await?;
    let device_name = granted.device().name.clone();
    let message = format!(
        "{} made a guest link \"{}\" to {device_name}: {}, for {minutes} min{}",
        ctx.caller.name,
        record.label,
        kind.describe(),
        if single_use { ", single use" } else { "" }
    );
    record_for_device(
        ctx,
        "share_created",
        granted.group(),
        &record.device,
        message,
    )
    .await;
    let url = ctx
        .site
        .url(&format!("{GUEST_PAGE_PATH}#{}.{secret}", record.id));
    Ok(ShareLink {
        share: info(&record, device_name, now),
        url,
    })
}

pub(super) async fn list(
    ctx: &ActionContext<'_>,
    device: Option<&DeviceId>,
) -> Result<Vec<ShareInfo>, ActionError> {
    let now = now_millis();
    let mut shown = Vec::new();
    for share in ctx.store.shares().await? {
        if device.is_some_and(|d| *d != share.device) {
            continue;
        }
        let Some(record) = ctx.store.device(&share.device).await? else {
            continue;
        };
        let Some(group) = ctx.store.group(&record.group).await? else {
            continue;
        };
        if may_oversee(ctx.caller, &group, &share) {
            shown.push(info(&share, record.name, now));
        }
    }
    Ok(shown)
}

pub(super) async fn revoke(ctx: &ActionContext<'_>, id: &str) -> Result<ShareInfo, ActionError> {
    let not_found = || ActionError::NotFound(format!("no sharing link {id}"));
    let share = ctx.store.share(id).await?.ok_or_else(not_found)?;
    let seen = device_with::<View>(ctx, &share.device)
        .await
        .map_err(|_| not_found())?;
    let group = seen.group().clone();
    if !may_oversee(ctx.caller, &group, &share) {
        return Err(ActionError::Forbidden(
            "only its creator and those who manage the group may revoke a sharing link".into(),
        ));
    }
    let revoked = ctx
        .store
        .revoke_share(&seen, id, &ctx.caller.id, now_millis())
        .await?
        .ok_or_else(not_found)?;
    // Sessions opened with it end now, not at their next check.
    crate::relay::end_shared_sessions(ctx.relay, id);
    let device_name = seen.device().name.clone();
    let message = format!(
        "{} revoked the guest link \"{}\" to {device_name}",
        ctx.caller.name, revoked.label
    );
    record_for_device(ctx, "share_revoked", &group, &revoked.device, message).await;
    Ok(info(&revoked, device_name, now_millis()))
}

/// The creator (while they still see the group), site administrators, group managers.
fn may_oversee(caller: &UserRecord, group: &GroupRecord, share: &ShareRecord) -> bool {
    let held = rights_on(caller, group);
    (share.creator == caller.id && held.contains(Rights::VIEW))
        || held.contains(Rights::MANAGE_GROUP)
}

fn info(share: &ShareRecord, device_name: String, now_ms: i64) -> ShareInfo {
    ShareInfo {
        id: share.id.clone(),
        device: share.device.clone(),
        device_name,
        kind: share.kind,
        label: share.label.clone(),
        creator: share.creator.clone(),
        created_ms: share.created_ms,
        expires_ms: share.expires_ms,
        single_use: share.single_use,
        uses: share.uses,
        status: share.status_at(now_ms),
    }
}

/// SHA-256 (hex) of a link's secret, as the store keeps it.
pub(crate) fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn checked_label(label: &str) -> Result<String, ActionError> {
    let label = label.trim();
    if label.chars().count() > MAX_SHARE_LABEL || label.chars().any(char::is_control) {
        return Err(ActionError::BadRequest(format!(
            "a label is at most {MAX_SHARE_LABEL} characters, without control characters"
        )));
    }
    Ok(if label.is_empty() {
        "guest".to_owned()
    } else {
        label.to_owned()
    })
}
