//! Enrolment keys: the secret a new device must present to join a group.
//!
//! A `.msh` file's `MeshID` is 48 bytes that the agent sends back unchanged in its AuthInfo. In
//! MeshCentral (and in Tether before) those bytes were the group id, which every member who can
//! see the group reads, so seeing a group was enough to enrol rogue devices into it. Here the
//! `MeshID` of every `.msh` we hand out is a random 48-byte *enrolment key* that the server maps
//! back to its group. Stock MeshAgent binaries keep working unchanged: to them it is just the
//! `MeshID`.
//!
//! - Each group has one current key, made on first need (the first `.msh` asked for), revealed
//!   only to users who may enrol devices there (`may_enrol`), and rotatable: after a rotation the
//!   old key admits no new device.
//! - Each invite has a key of its own, which admits only while the invite is usable (not revoked,
//!   not expired, not used up, its creator still entitled): revoking an invite also voids every
//!   `.msh` it served.
//! - A device the server already knows is admitted by its (proven) device id whatever key it
//!   shows, so rotating a key or ending an invite never cuts off enrolled devices; deleting the
//!   device with `block` is what keeps one out.

use tether_common::ids::GroupId;

use crate::install::invite;
use crate::store::{GroupRecord, InviteRecord, Store, StoreResult};

pub(super) const KEY_LEN: usize = 48;

/// One enrolment key. No `Debug` or `Display`: it is a secret and must not reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrolmentKey([u8; KEY_LEN]);

impl EnrolmentKey {
    pub fn random() -> EnrolmentKey {
        let mut bytes = [0u8; KEY_LEN];
        rand::fill(&mut bytes);
        EnrolmentKey(bytes)
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> EnrolmentKey {
        EnrolmentKey(bytes)
    }

    /// The stored form (lower-case hex); `None` for anything else.
    pub fn from_hex(text: &str) -> Option<EnrolmentKey> {
        let bytes = hex::decode(text).ok()?;
        Some(EnrolmentKey(bytes.try_into().ok()?))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// What goes into a `.msh` as `MeshID`.
    pub fn bytes(&self) -> [u8; KEY_LEN] {
        self.0
    }
}

/// The group's current key, made (and stored) the first time anyone needs it. Groups created
/// before enrolment keys existed get theirs this way.
pub(crate) async fn group_key(store: &dyn Store, group: &GroupId) -> StoreResult<EnrolmentKey> {
    if let Some(key) = store
        .group_enrolment_key(group)
        .await?
        .and_then(|hex| EnrolmentKey::from_hex(&hex))
    {
        return Ok(key);
    }
    let made = store
        .set_group_enrolment_key(group, &EnrolmentKey::random().to_hex(), false)
        .await?;
    tracing::info!(%group, "enrolment: made the device group's enrolment key");
    match EnrolmentKey::from_hex(&made) {
        Some(key) => Ok(key),
        // A stored value that is not a key (edited by hand?) is replaced rather than served.
        None => rotate_group_key(store, group).await,
    }
}

/// Replaces the group's key: the old one admits no new device from now on.
pub(crate) async fn rotate_group_key(
    store: &dyn Store,
    group: &GroupId,
) -> StoreResult<EnrolmentKey> {
    let key = EnrolmentKey::random();
    store
        .set_group_enrolment_key(group, &key.to_hex(), true)
        .await?;
    Ok(key)
}

/// Why a new device was not let in. Logged; the agent itself is told nothing.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refusal {
    #[error(
        "its MeshID is not an enrolment key of this server (an old or foreign .msh, or a group id)"
    )]
    UnknownKey,
    #[error("the device group of its enrolment key is gone")]
    GroupGone,
    #[error("{0}")]
    Invite(invite::InviteError),
    #[error("invite {0} admitted as many devices as it may")]
    InviteUsedUp(String),
}

/// Where a new device presenting `mesh_id` may enrol, and through which invite.
pub(super) async fn group_for_new_device(
    store: &dyn Store,
    mesh_id: &[u8; KEY_LEN],
    now: i64,
) -> StoreResult<Result<(GroupRecord, Option<InviteRecord>), Refusal>> {
    let key = EnrolmentKey::from_bytes(*mesh_id).to_hex();
    let Some(target) = store.enrolment_key(&key).await? else {
        return Ok(Err(Refusal::UnknownKey));
    };
    let Some(invite_id) = target.invite else {
        return Ok(match store.group(&target.group).await? {
            Some(group) => Ok((group, None)),
            None => Err(Refusal::GroupGone),
        });
    };
    let invite = match store.invite(&invite_id).await? {
        Some(invite) => invite,
        None => return Ok(Err(Refusal::UnknownKey)),
    };
    match invite::usable(store, &invite, now).await {
        Ok(group) => Ok(Ok((group, Some(invite)))),
        Err(invite::InviteError::Store(e)) => Err(e),
        Err(other) => Ok(Err(Refusal::Invite(other))),
    }
}

/// Counts a device enrolled through `invite`; the refusal when it has no room left (another
/// device took the last place since it was checked).
pub(super) async fn take_invite_place(
    store: &dyn Store,
    invite: &InviteRecord,
    now: i64,
) -> StoreResult<Result<(), Refusal>> {
    Ok(if store.count_invite_enrolment(&invite.id, now).await? {
        Ok(())
    } else {
        Err(Refusal::InviteUsedUp(invite.id.clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_through_its_stored_form_and_nothing_else_passes() {
        let key = EnrolmentKey::random();
        let hex = key.to_hex();
        assert_eq!(hex.len(), 96);
        assert!(EnrolmentKey::from_hex(&hex) == Some(key.clone()));
        assert!(EnrolmentKey::from_hex(&hex[2..]).is_none());
        assert!(EnrolmentKey::from_hex("zz").is_none());
        assert!(EnrolmentKey::random() != key, "keys are random");
    }
}
