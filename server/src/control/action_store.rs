//! The store as control actions see it. Reads are plain methods (what a caller is shown is
//! filtered by the action); every write asks for the proof of the rights check that authorises it
//! (`control/access.rs`), and takes what it writes to from that proof where it can, so a proof for
//! one group cannot be spent on another. The raw [`Store`] stays private here: an action has no
//! other way to write.
//!
//! The audit log (`append_event`) and invite housekeeping (`prune_invites`) are the server's own
//! records, written on behalf of whatever action ran, and take no proof.

use tether_common::control::EventRecord;
use tether_common::ids::{DeviceId, GroupId, UserId};

use super::access::{Device, Enrol, Granted, Group, ManageDevices, ManageGroup, View};
use super::access::{Myself, SessionGrant, SiteAdmin};
use crate::agents::{EnrolmentKey, group_key, rotate_group_key};
use crate::auth::accounts::{self, AccountError};
use crate::install::invite;
use crate::relay::{MintError, MintedSession, RelayBroker};
use crate::store::{
    AmtAdmin, BlockedDeviceRecord, DeviceRecord, DeviceUpdate, EventFilter, GroupRecord,
    InviteRecord, NewEvent, ShareRecord, Store, StoreResult, UserRecord,
};

#[derive(Clone, Copy)]
pub struct ActionStore<'a> {
    raw: &'a dyn Store,
}

impl<'a> ActionStore<'a> {
    /// For the code that builds an `ActionContext` (the connection, tests); actions get it made.
    pub fn new(raw: &'a dyn Store) -> ActionStore<'a> {
        ActionStore { raw }
    }

    // Reads.

    pub async fn user(&self, id: &UserId) -> StoreResult<Option<UserRecord>> {
        self.raw.user(id).await
    }

    pub async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        self.raw.users().await
    }

    pub async fn group(&self, id: &GroupId) -> StoreResult<Option<GroupRecord>> {
        self.raw.group(id).await
    }

    pub async fn groups(&self) -> StoreResult<Vec<GroupRecord>> {
        self.raw.groups().await
    }

    pub async fn device(&self, id: &DeviceId) -> StoreResult<Option<DeviceRecord>> {
        self.raw.device(id).await
    }

    pub async fn devices(&self, group: Option<&GroupId>) -> StoreResult<Vec<DeviceRecord>> {
        self.raw.devices(group).await
    }

    pub async fn events(&self, filter: &EventFilter) -> StoreResult<Vec<EventRecord>> {
        self.raw.events(filter).await
    }

    pub async fn invite(&self, id: &str) -> StoreResult<Option<InviteRecord>> {
        self.raw.invite(id).await
    }

    pub async fn invites(&self, group: Option<&GroupId>) -> StoreResult<Vec<InviteRecord>> {
        self.raw.invites(group).await
    }

    pub async fn blocked_device(&self, id: &DeviceId) -> StoreResult<Option<BlockedDeviceRecord>> {
        self.raw.blocked_device(id).await
    }

    pub async fn blocked_devices(
        &self,
        group: Option<&GroupId>,
    ) -> StoreResult<Vec<BlockedDeviceRecord>> {
        self.raw.blocked_devices(group).await
    }

    // The server's own records.

    pub async fn append_event(&self, event: NewEvent) -> StoreResult<EventRecord> {
        self.raw.append_event(event).await
    }

    /// Deletes invites that expired before `before` (Unix seconds), in every group.
    pub async fn prune_invites(&self, before: i64) -> StoreResult<u64> {
        self.raw.prune_invites(before).await
    }

    // Device groups.

    /// Stores a new group (a site admin creates groups).
    pub async fn create_group(&self, _: &SiteAdmin, group: &GroupRecord) -> StoreResult<()> {
        self.raw.put_group(group).await
    }

    /// Writes the checked group as `edit` changes it, and returns what was written. Whatever the
    /// edit does to the id, the write goes to the group that was checked.
    pub async fn update_group(
        &self,
        granted: &Granted<ManageGroup, Group>,
        edit: impl FnOnce(&mut GroupRecord),
    ) -> StoreResult<GroupRecord> {
        let mut group = granted.group().clone();
        edit(&mut group);
        group.id = granted.group().id.clone();
        self.raw.put_group(&group).await?;
        Ok(group)
    }

    /// Deletes the checked group with its devices; `false` if it went meanwhile.
    pub async fn delete_group(&self, granted: &Granted<ManageGroup, Group>) -> StoreResult<bool> {
        self.raw.delete_group(&granted.group().id).await
    }

    // Devices.

    /// Renames the checked device in one transaction with the read (an agent's concurrent update
    /// is kept); `None` if it was deleted meanwhile (and it stays deleted).
    pub async fn rename_device(
        &self,
        granted: &Granted<ManageDevices, Device>,
        name: String,
    ) -> StoreResult<Option<DeviceUpdate>> {
        let rename = move |stored: &mut DeviceRecord| {
            stored.name = name;
            true
        };
        self.raw
            .update_device(&granted.device().id, Box::new(rename))
            .await
    }

    /// Sets the checked device's Intel AMT administrator (its password already sealed).
    pub async fn set_amt_admin(
        &self,
        granted: &Granted<ManageDevices, Device>,
        admin: AmtAdmin,
    ) -> StoreResult<Option<DeviceUpdate>> {
        let set = move |stored: &mut DeviceRecord| {
            stored.amt_admin = Some(admin);
            true
        };
        self.raw
            .update_device(&granted.device().id, Box::new(set))
            .await
    }

    /// The key that seals Intel AMT administrator passwords (`vault.rs`), made on first use.
    pub(crate) async fn amt_vault(&self) -> StoreResult<crate::vault::Vault> {
        crate::vault::Vault::load_or_create(self.raw, crate::vault::AMT_ADMIN_KEY).await
    }

    /// Signs a link to the checked device's own AMT web UI for `user` (`amt/web.rs`); the key is
    /// made on first use.
    pub(crate) async fn sign_amt_web_link(
        &self,
        granted: &Granted<ManageDevices, Device>,
        user: &UserId,
        expires_ms: u64,
    ) -> StoreResult<String> {
        let claims = crate::amt::web::WebClaims {
            device: granted.device().id.clone(),
            user: user.clone(),
            expires_ms,
            nonce: crate::tokens::random_id(12),
        };
        Ok(crate::amt::web::token_key(self.raw).await?.sign(&claims))
    }

    /// Deletes the checked device; `false` if it went meanwhile.
    pub async fn delete_device(
        &self,
        granted: &Granted<ManageDevices, Device>,
    ) -> StoreResult<bool> {
        self.raw.delete_device(&granted.device().id).await
    }

    /// Keeps the checked device from enrolling again, listed under its group.
    pub async fn block_device(
        &self,
        granted: &Granted<ManageDevices, Device>,
        blocked_by: &UserId,
        time: i64,
    ) -> StoreResult<()> {
        let device = granted.device();
        self.raw
            .block_device(&BlockedDeviceRecord {
                device: device.id.clone(),
                group: granted.group().id.clone(),
                name: device.name.clone(),
                blocked_by: blocked_by.clone(),
                time,
            })
            .await
    }

    /// Lifts the block of `device` if it is listed under the checked group; `false` otherwise
    /// (also when it is blocked in another group, which this proof says nothing about).
    pub async fn unblock_device(
        &self,
        granted: &Granted<Enrol, Group>,
        device: &DeviceId,
    ) -> StoreResult<bool> {
        match self.raw.blocked_device(device).await? {
            Some(block) if block.group == granted.group().id => {
                self.raw.unblock_device(device).await
            }
            _ => Ok(false),
        }
    }

    // Enrolment keys and invites.

    /// The checked group's enrolment key, made on first need.
    pub async fn group_key(&self, granted: &Granted<Enrol, Group>) -> StoreResult<EnrolmentKey> {
        group_key(self.raw, &granted.group().id).await
    }

    /// Replaces the checked group's enrolment key.
    pub async fn rotate_group_key(
        &self,
        granted: &Granted<Enrol, Group>,
    ) -> StoreResult<EnrolmentKey> {
        rotate_group_key(self.raw, &granted.group().id).await
    }

    /// Makes `key` the checked group's enrolment key (`Conflict` when it is already a key here).
    pub async fn import_group_key(
        &self,
        granted: &Granted<Enrol, Group>,
        key: EnrolmentKey,
    ) -> StoreResult<EnrolmentKey> {
        self.raw
            .set_group_enrolment_key(&granted.group().id, &key.to_hex(), true)
            .await?;
        Ok(key)
    }

    /// Makes an invite to the checked group; its token and record.
    pub async fn create_invite(
        &self,
        granted: &Granted<Enrol, Group>,
        by: &UserId,
        minutes: u32,
        max_devices: Option<u32>,
        now: i64,
    ) -> StoreResult<(String, InviteRecord)> {
        invite::mint(self.raw, &granted.group().id, by, minutes, max_devices, now).await
    }

    /// Revokes invite `id` if it belongs to the checked group; the record as it is now, `None` if
    /// there is no such invite in that group.
    pub async fn revoke_invite(
        &self,
        granted: &Granted<Enrol, Group>,
        id: &str,
        by: &UserId,
        now: i64,
    ) -> StoreResult<Option<InviteRecord>> {
        match self.raw.invite(id).await? {
            Some(invite) if invite.group == granted.group().id => {
                self.raw.revoke_invite(id, by, now).await
            }
            _ => Ok(None),
        }
    }

    // Accounts (validation, hashing and their audit records are `auth::accounts`').

    pub async fn create_account(
        &self,
        _: &SiteAdmin,
        name: &str,
        password: &str,
        email: Option<String>,
    ) -> Result<UserRecord, AccountError> {
        accounts::create_account(self.raw, name, password, email).await
    }

    /// Fails with `LastSiteAdmin` rather than demote the last site administrator.
    pub async fn update_user(&self, _: &SiteAdmin, user: &UserRecord) -> StoreResult<()> {
        self.raw.update_user(user).await
    }

    pub async fn delete_user(&self, _: &SiteAdmin, id: &UserId) -> StoreResult<bool> {
        self.raw.delete_user(id).await
    }

    pub async fn reset_password(
        &self,
        _: &SiteAdmin,
        name: &str,
        password: &str,
    ) -> Result<UserRecord, AccountError> {
        accounts::reset_password(self.raw, name, password).await
    }

    /// The caller's own password; the old one must be right.
    pub async fn change_own_password(
        &self,
        myself: &Myself<'_>,
        old_password: &str,
        new_password: &str,
    ) -> Result<UserRecord, AccountError> {
        accounts::change_password(self.raw, myself.user(), old_password, new_password).await
    }

    /// The raw store for reading recordings' rights (`relay/recordings.rs` checks them itself,
    /// per recording, and writes nothing).
    pub(crate) fn raw_store(&self) -> &'a dyn Store {
        self.raw
    }

    // Second factors.

    /// The key that seals TOTP secrets, made on first use.
    pub(crate) async fn totp_vault(&self) -> StoreResult<crate::vault::Vault> {
        crate::vault::Vault::load_or_create(self.raw, crate::vault::TOTP_KEY).await
    }

    /// Keeps (or clears) the caller's TOTP secret awaiting confirmation.
    pub(crate) async fn set_own_pending_totp(
        &self,
        myself: &Myself<'_>,
        sealed: Option<String>,
    ) -> StoreResult<UserRecord> {
        self.change_own(myself, move |user| user.pending_totp = sealed)
            .await
    }

    /// Sets (or removes) the caller's second factor; a pending secret goes either way.
    pub(crate) async fn set_own_second_factor(
        &self,
        myself: &Myself<'_>,
        factor: Option<crate::store::SecondFactor>,
    ) -> StoreResult<UserRecord> {
        self.change_own(myself, move |user| {
            user.second_factor = factor;
            user.pending_totp = None;
        })
        .await
    }

    /// Changes the caller's passkeys.
    pub(crate) async fn change_own_passkeys(
        &self,
        myself: &Myself<'_>,
        change: impl FnOnce(&mut Vec<crate::store::StoredPasskey>) + Send,
    ) -> StoreResult<UserRecord> {
        self.change_own(myself, move |user| change(&mut user.passkeys))
            .await
    }

    /// Checks a code of the caller's own second factor and spends it.
    pub(crate) async fn verify_own_code(
        &self,
        myself: &Myself<'_>,
        code: &str,
    ) -> StoreResult<crate::auth::second_factor::Verdict> {
        crate::auth::second_factor::verify_and_spend(self.raw, &myself.user().id, code).await
    }

    /// Removes another account's second factor; `None` if there is no such account.
    pub(crate) async fn reset_second_factor(
        &self,
        _: &SiteAdmin,
        id: &UserId,
    ) -> StoreResult<Option<UserRecord>> {
        let Some(mut user) = self.raw.user(id).await? else {
            return Ok(None);
        };
        user.second_factor = None;
        user.pending_totp = None;
        user.passkeys.clear();
        self.raw.update_user(&user).await?;
        Ok(Some(user))
    }

    /// Reads the caller's record afresh, changes it and writes it back.
    async fn change_own(
        &self,
        myself: &Myself<'_>,
        change: impl FnOnce(&mut UserRecord),
    ) -> StoreResult<UserRecord> {
        let id = &myself.user().id;
        let mut user = self
            .raw
            .user(id)
            .await?
            .unwrap_or_else(|| myself.user().clone());
        change(&mut user);
        self.raw.update_user(&user).await?;
        Ok(user)
    }

    // Relay sessions.

    /// Mints the checked session's tokens. The broker needs the store for its token key, and this
    /// is the actions' only way to it: a session cannot be issued unchecked.
    pub async fn shares(&self) -> StoreResult<Vec<ShareRecord>> {
        self.raw.shares().await
    }

    pub async fn share(&self, id: &str) -> StoreResult<Option<ShareRecord>> {
        self.raw.share(id).await
    }

    /// A link to the device the grant is for, of a kind the grant covers.
    pub async fn create_share(
        &self,
        granted: &SessionGrant,
        share: &ShareRecord,
    ) -> StoreResult<()> {
        debug_assert_eq!(share.device, granted.device().id);
        debug_assert_eq!(share.kind.session_kind(), granted.kind());
        self.raw.create_share(share).await
    }

    /// Revokes a link to the device the caller was checked to see (the caller checks who may).
    pub async fn revoke_share(
        &self,
        seen: &Granted<View, Device>,
        id: &str,
        by: &UserId,
        now_ms: i64,
    ) -> StoreResult<Option<ShareRecord>> {
        match self.raw.share(id).await? {
            Some(share) if share.device == seen.device().id => {
                self.raw.revoke_share(id, by, now_ms).await
            }
            _ => Ok(None),
        }
    }

    pub async fn mint_session(
        &self,
        relay: &RelayBroker,
        granted: &SessionGrant,
    ) -> Result<MintedSession, MintError> {
        relay
            .mint(
                self.raw,
                &granted.device().id,
                granted.user(),
                granted.kind(),
                granted.rights(),
                None,
            )
            .await
    }

    /// A chat between two users; `user_chat.rs` checked that they may chat (no group right is
    /// involved, so there is no proof to take; the token key is the only thing written).
    pub async fn mint_user_chat(
        &self,
        relay: &RelayBroker,
        inviter: &UserId,
        invitee: &UserId,
    ) -> Result<MintedSession, MintError> {
        relay.mint_user_chat(self.raw, inviter, invitee).await
    }
}
