//! Rights checks shared by the actions, and the proofs they hand out.
//!
//! A check that passes returns a proof value: [`Granted<R, T>`] (right `R` held on the checked
//! group or device `T`), [`SiteAdmin`], [`SessionGrant`] (a relay session of one kind) or
//! [`Myself`] (the caller's own account). Their fields are private to this module and none of them
//! has a public constructor, so the only way to hold one is to have passed its check here. Every
//! write of [`ActionStore`](super::action_store::ActionStore) asks for the proof that authorises
//! it, so an action that forgets its check does not compile.
//!
//! A group the caller cannot see is reported exactly like a group that does not exist, so ids
//! cannot be probed.

use std::marker::PhantomData;

use tether_common::ids::{DeviceId, GroupId, UserId};
use tether_common::relay::SessionKind;
use tether_common::rights::Rights;

use super::actions::{ActionContext, ActionError};
use crate::agents::may_enrol;
use crate::store::{DeviceRecord, GroupRecord, UserRecord};

#[cfg(test)]
pub(super) mod tests;

/// What `user` may do on `group`: everything for site admins, otherwise the member entry (any
/// right implies VIEW).
pub(crate) fn rights_on(user: &UserRecord, group: &GroupRecord) -> Rights {
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

mod sealed {
    /// Only the rights below exist: a marker defined elsewhere could claim to be granted always.
    pub trait Sealed {}
}

/// A right on a device group, as a type: the `R` of [`Granted<R, T>`].
pub trait Right: sealed::Sealed {
    /// The bits it stands for (named in refusals).
    const BITS: Rights;

    /// Whether `user` holds it on `group` (seeing the group is checked before).
    fn held(user: &UserRecord, group: &GroupRecord) -> bool {
        rights_on(user, group).contains(Self::BITS)
    }

    /// What a caller who can see the group but lacks the right is told.
    fn refusal(group: &GroupRecord) -> String {
        format!(
            "you need the '{}' right on device group {}",
            Self::BITS,
            group.name
        )
    }
}

/// See the group and its devices.
pub struct View;
/// Rename or delete the group and set its members' rights.
pub struct ManageGroup;
/// Rename and remove the group's devices.
pub struct ManageDevices;
/// Read the group's and its devices' events.
pub struct Events;
/// Remove the agent from the group's devices.
pub(super) struct Uninstall;
/// Enrol devices in the group, or control how they enrol (its `.msh`, invites, blocks): the
/// rule of the `agent.msh` download, [`may_enrol`], so every way to an enrolment key asks the same.
pub struct Enrol;

impl sealed::Sealed for View {}
impl sealed::Sealed for ManageGroup {}
impl sealed::Sealed for ManageDevices {}
impl sealed::Sealed for Events {}
impl sealed::Sealed for Uninstall {}
impl sealed::Sealed for Enrol {}

impl Right for View {
    const BITS: Rights = Rights::VIEW;
}
impl Right for ManageGroup {
    const BITS: Rights = Rights::MANAGE_GROUP;
}
impl Right for ManageDevices {
    const BITS: Rights = Rights::MANAGE_DEVICES;
}
impl Right for Events {
    const BITS: Rights = Rights::EVENTS;
}
impl Right for Uninstall {
    const BITS: Rights = Rights::UNINSTALL;
}
impl Right for Enrol {
    /// Either one of them (see [`may_enrol`]).
    const BITS: Rights = Rights(Rights::MANAGE_GROUP.0 | Rights::MANAGE_DEVICES.0);

    fn held(user: &UserRecord, group: &GroupRecord) -> bool {
        may_enrol(user, group)
    }

    fn refusal(group: &GroupRecord) -> String {
        format!(
            "you need the 'manage' or 'devices' right on device group {} to add devices to it",
            group.name
        )
    }
}

/// A checked device group (the `T` of [`Granted<R, T>`]).
pub struct Group {
    group: GroupRecord,
}

/// A checked device, with the group whose rights were checked.
pub struct Device {
    device: DeviceRecord,
    group: GroupRecord,
}

/// What a proof was checked on: a group, or a device in its group.
pub trait InGroup {
    fn group(&self) -> &GroupRecord;
}

impl InGroup for Group {
    fn group(&self) -> &GroupRecord {
        &self.group
    }
}

impl InGroup for Device {
    fn group(&self) -> &GroupRecord {
        &self.group
    }
}

/// Proof that the caller held right `R` on `T` (a [`Group`] or a [`Device`]) when it was checked.
/// Made only by [`group_with`] and [`device_with`].
pub struct Granted<R: Right, T> {
    target: T,
    /// Everything the caller held on the group at the check (`FULL` for a site admin).
    held: Rights,
    right: PhantomData<R>,
}

impl<R: Right, T: InGroup> Granted<R, T> {
    /// The group as read for the check.
    pub fn group(&self) -> &GroupRecord {
        self.target.group()
    }

    /// All the caller's rights on the group, not only `R` (a manager may only grant what they
    /// hold).
    pub fn held(&self) -> Rights {
        self.held
    }
}

impl<R: Right> Granted<R, Device> {
    /// The device as read for the check.
    pub fn device(&self) -> &DeviceRecord {
        &self.target.device
    }
}

/// Proof that the caller is a site administrator. Made only by [`require_site_admin`].
///
/// The type can be named anywhere (it is in `ActionStore`'s signatures):
///
/// ```
/// fn needs_proof(_: &tether_server::control::SiteAdmin) {}
/// ```
///
/// but outside this module it cannot be made, as its field is private (error E0451); the same
/// holds for `Granted`, `SessionGrant` and `Myself`:
///
/// ```compile_fail,E0451
/// let forged = tether_server::control::SiteAdmin { _checked: () };
/// ```
pub struct SiteAdmin {
    _checked: (),
}

/// Proof that the caller may open a session of [`kind`](Self::kind) on a device: made only by
/// [`session_on`]. Which right that takes is known at run time only, so the proof records the
/// kind it was checked for, and the rights the session's tokens will carry.
pub struct SessionGrant {
    device: DeviceRecord,
    group: GroupRecord,
    user: UserId,
    kind: SessionKind,
    rights: Rights,
}

impl SessionGrant {
    pub fn device(&self) -> &DeviceRecord {
        &self.device
    }

    pub fn group(&self) -> &GroupRecord {
        &self.group
    }

    /// Whose session it is.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    pub fn kind(&self) -> SessionKind {
        self.kind
    }

    /// The caller's rights on the device's group; the agent re-checks the kind against them.
    pub fn rights(&self) -> Rights {
        self.rights
    }
}

/// Proof that an action is about the caller's own account (every caller may manage that).
pub struct Myself<'a> {
    user: &'a UserRecord,
}

impl<'a> Myself<'a> {
    pub fn user(&self) -> &'a UserRecord {
        self.user
    }
}

pub(super) fn require_site_admin(user: &UserRecord) -> Result<SiteAdmin, ActionError> {
    if user.site_admin {
        Ok(SiteAdmin { _checked: () })
    } else {
        Err(ActionError::Forbidden(
            "only site administrators may do that".into(),
        ))
    }
}

/// The caller, for the actions on their own account.
pub(super) fn myself<'a>(ctx: &ActionContext<'a>) -> Myself<'a> {
    Myself { user: ctx.caller }
}

/// Loads a group the caller can see and checks that they hold `R` on it.
pub(super) async fn group_with<R: Right>(
    ctx: &ActionContext<'_>,
    id: &GroupId,
) -> Result<Granted<R, Group>, ActionError> {
    let not_found = || ActionError::NotFound(format!("no device group {id}"));
    let group = ctx.store.group(id).await?.ok_or_else(not_found)?;
    let held = rights_on(ctx.caller, &group);
    if !held.contains(Rights::VIEW) {
        return Err(not_found());
    }
    if !R::held(ctx.caller, &group) {
        return Err(ActionError::Forbidden(R::refusal(&group)));
    }
    Ok(Granted {
        target: Group { group },
        held,
        right: PhantomData,
    })
}

/// Loads a device whose group the caller can see and checks `R` on that group.
pub(super) async fn device_with<R: Right>(
    ctx: &ActionContext<'_>,
    id: &DeviceId,
) -> Result<Granted<R, Device>, ActionError> {
    let not_found = || ActionError::NotFound(format!("no device {id}"));
    let device = ctx.store.device(id).await?.ok_or_else(not_found)?;
    let granted = match group_with::<R>(ctx, &device.group).await {
        Ok(granted) => granted,
        Err(ActionError::NotFound(_)) => return Err(not_found()),
        Err(other) => return Err(other),
    };
    Ok(Granted {
        target: Device {
            device,
            group: granted.target.group,
        },
        held: granted.held,
        right: PhantomData,
    })
}

/// Checks that the caller may open a `kind` session on the device: they see it, and their rights
/// on its group allow that kind (`SessionKind::allowed_by`).
pub(super) async fn session_on(
    ctx: &ActionContext<'_>,
    id: &DeviceId,
    kind: SessionKind,
) -> Result<SessionGrant, ActionError> {
    let seen = device_with::<View>(ctx, id).await?;
    let Device { device, group } = seen.target;
    if !kind.allowed_by(seen.held) {
        return Err(ActionError::Forbidden(format!(
            "you need the '{}' right on device group {} to open a {kind} session",
            kind.required_right(),
            group.name
        )));
    }
    Ok(SessionGrant {
        device,
        group,
        user: ctx.caller.id.clone(),
        kind,
        rights: seen.held,
    })
}
