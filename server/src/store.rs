//! Persistent records behind one trait, so the embedded redb backend and PostgreSQL (several
//! servers sharing one database) are interchangeable. Handlers never touch a database directly:
//! they hold an `Arc<dyn Store>`.
//!
//! Contract every backend keeps: a method that returned `Ok` has made its write durable (it
//! survives `kill -9` of the server the instant after).

pub mod postgres;
pub mod redb;
pub mod snapshot;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tether_common::control::EventRecord;
use tether_common::ids::{DeviceId, GroupId, UserId};
use tether_common::rights::Rights;

/// Opens the store the configuration names: PostgreSQL when `db` is set, else the data folder's
/// redb file (whose folder the caller has made private).
pub async fn open(config: &crate::config::Config) -> StoreResult<std::sync::Arc<dyn Store>> {
    Ok(match &config.db {
        Some(url) => std::sync::Arc::new(
            postgres::PostgresStore::connect(url.expose(), config.db_connections).await?,
        ),
        None => std::sync::Arc::new(redb::RedbStore::open(&config.data_file("tether.redb"))?),
    })
}

/// Opens the store at `location` (for `migrate`): a redb file must exist already, so that a typo
/// is not taken for an empty database.
pub async fn open_location(
    location: &crate::config::StoreLocation,
    connections: u32,
) -> StoreResult<std::sync::Arc<dyn Store>> {
    use crate::config::StoreLocation;
    Ok(match location {
        StoreLocation::Postgres(url) => {
            std::sync::Arc::new(postgres::PostgresStore::connect(url.expose(), connections).await?)
        }
        StoreLocation::Redb(path) => {
            if !path.is_file() {
                return Err(StoreError::Backend(format!(
                    "{} is not a redb database file",
                    path.display()
                )));
            }
            std::sync::Arc::new(redb::RedbStore::open(path)?)
        }
    })
}

/// Version of the record layout; `Store::open` migrates older databases up to it.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    /// A write would leave the server without a site administrator; checked inside the write
    /// itself, so two concurrent demotions cannot both pass.
    #[error("the last site administrator must stay one")]
    LastSiteAdmin,
    #[error("database error: {0}")]
    Backend(String),
    #[error("database schema version {found} is newer than this server supports ({supported})")]
    TooNew { found: u32, supported: u32 },
    #[error(
        "the database is in use by another process (is a tether-server already running on this data folder?)"
    )]
    Locked,
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: UserId,
    /// The name as typed at creation (the id is its lower-case form).
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// Argon2id PHC string (`$argon2id$v=19$…`).
    pub password_hash: String,
    pub site_admin: bool,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds of the last password change; sessions issued before it are void.
    #[serde(default)]
    pub password_changed: i64,
    /// Two-factor sign-in, once set up (`auth/second_factor.rs`).
    #[serde(default)]
    pub second_factor: Option<SecondFactor>,
    /// A TOTP secret shown for setting up and not confirmed with a code yet (sealed).
    #[serde(default)]
    pub pending_totp: Option<String>,
    /// Passkeys (WebAuthn) that sign this account in as a second factor (`auth/passkeys.rs`).
    #[serde(default)]
    pub passkeys: Vec<StoredPasskey>,
}

impl UserRecord {
    /// Whether signing in needs more than the password.
    pub fn has_second_factor(&self) -> bool {
        self.second_factor.is_some() || !self.passkeys.is_empty()
    }
}

/// A passkey as an account keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPasskey {
    /// What the user called it ("laptop", "YubiKey").
    pub name: String,
    /// Unix seconds.
    pub created: i64,
    pub passkey: webauthn_rs::prelude::Passkey,
}

impl PartialEq for StoredPasskey {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.passkey.cred_id() == other.passkey.cred_id()
    }
}

/// A user's second factor: a TOTP secret and the backup codes not used yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondFactor {
    /// The TOTP secret, sealed with the server's second-factor key, so that a copy of the
    /// database alone does not give it away.
    pub sealed_secret: String,
    /// The last time step a code was taken for: each code is good once (RFC 6238 §5.2).
    pub last_step: u64,
    /// SHA-256 (hex) of each backup code not used yet.
    pub backup_codes: Vec<String>,
    /// Unix seconds.
    pub enabled: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub id: GroupId,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Users with rights on this group (MeshCentral's `links`).
    #[serde(default)]
    pub members: BTreeMap<UserId, Rights>,
    pub created: i64,
    /// Sessions to its devices may move to a direct path (groups stored before this existed: yes).
    #[serde(default = "allowed")]
    pub direct_connections: bool,
    /// Terminal and desktop sessions to its devices are recorded on the server (and so never
    /// leave the relay).
    #[serde(default)]
    pub record_sessions: bool,
    /// Chat messages with the people at its devices are kept in the audit log (and so chats
    /// never leave the relay). Off: chats leave no trace of what was said.
    #[serde(default)]
    pub chat_transcripts: bool,
    /// Desktop viewers may listen to its devices' microphones; the person at the device is shown
    /// a notice while they do. Off by default.
    #[serde(default)]
    pub microphone: bool,
    /// What the person at a device is shown or asked when a session starts (`relay/consent.rs`
    /// in `common`).
    #[serde(default)]
    pub consent: tether_common::relay::consent::ConsentPolicy,
    /// The login Intel AMT machines of this group use on the MPS port (`mps/login.rs`).
    #[serde(default)]
    pub cira: Option<CiraAccount>,
}

/// A group's CIRA login: the user name AMT sends, and the argon2id hash of its password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiraAccount {
    pub user: String,
    pub password_hash: String,
}

fn allowed() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub id: DeviceId,
    pub group: GroupId,
    /// Display name; starts as the hostname, admins may rename.
    pub name: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub os: String,
    /// The agent's self-description as it last sent it.
    #[serde(default)]
    pub agent_info: Value,
    /// Unix seconds of the last connection or disconnection.
    #[serde(default)]
    pub last_seen: i64,
    pub created: i64,
    /// For an Intel AMT machine: the administrator account its web services take (`amt/`).
    #[serde(default)]
    pub amt_admin: Option<AmtAdmin>,
    /// The machine's Intel AMT UUID, once AMT connected over CIRA (on its own record, or on its
    /// agent's device: `mps/linking.rs`).
    #[serde(default)]
    pub amt_uuid: Option<String>,
}

/// An Intel AMT administrator account; the password sealed with the server's key
/// (`vault.rs`), so a copy of the database alone does not give it away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmtAdmin {
    pub user: String,
    pub sealed_password: String,
}

/// An edit for [`Store::update_device`]: returns whether it changed the record.
pub type DeviceChange = Box<dyn FnOnce(&mut DeviceRecord) -> bool + Send>;

/// What [`Store::update_device`] did: the record as stored now, and whether it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceUpdate {
    pub device: DeviceRecord,
    pub changed: bool,
}

/// A logged-in browser or tool. Stored under the SHA-256 of the cookie value, so a stolen database
/// does not hand out live sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user: UserId,
    /// Unix seconds.
    pub created: i64,
    pub expires: i64,
}

/// What an enrolment key admits to. An enrolment key is the secret a new device presents as the
/// `MeshID` of its `.msh` (48 random bytes, stored as lower-case hex); the group id alone admits
/// nothing. Each group has one current key, and each invite has its own, which only admits while
/// the invite is usable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrolmentKeyRecord {
    pub group: GroupId,
    /// Set for an invite's key: the invite's id.
    #[serde(default)]
    pub invite: Option<String>,
}

/// A guest sharing link (`tether_common::share`): what it opens, for how long, and how often it
/// was used. Only the SHA-256 of its secret is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareRecord {
    pub id: String,
    /// SHA-256 (hex) of the link's secret.
    pub secret_sha256: String,
    pub device: DeviceId,
    pub kind: tether_common::share::ShareKind,
    #[serde(default)]
    pub label: String,
    pub creator: UserId,
    /// Unix milliseconds.
    pub created_ms: i64,
    /// Unix milliseconds; from then on the link opens nothing, and its sessions end.
    pub expires_ms: i64,
    #[serde(default)]
    pub single_use: bool,
    #[serde(default)]
    pub uses: u32,
    /// Unix milliseconds of the revocation, if it was revoked.
    #[serde(default)]
    pub revoked_ms: Option<i64>,
    #[serde(default)]
    pub revoked_by: Option<UserId>,
}

impl ShareRecord {
    /// Whether the link opens a new session at `now_ms`.
    pub fn status_at(&self, now_ms: i64) -> tether_common::share::ShareStatus {
        use tether_common::share::ShareStatus;
        if self.revoked_ms.is_some() {
            ShareStatus::Revoked
        } else if now_ms >= self.expires_ms {
            ShareStatus::Expired
        } else if self.single_use && self.uses > 0 {
            ShareStatus::Used
        } else {
            ShareStatus::Active
        }
    }

    /// Whether sessions already opened with it may go on at `now_ms` (a used single-use link
    /// keeps its one session).
    pub fn live_at(&self, now_ms: i64) -> bool {
        self.revoked_ms.is_none() && now_ms < self.expires_ms
    }

    /// Counts one session opened at `now_ms` if the link is active then (every backend's
    /// `use_share`, inside its transaction); whether the record changed, and the answer.
    pub(crate) fn take_use(&mut self, now_ms: i64) -> (bool, ShareUse) {
        let status = self.status_at(now_ms);
        if status != tether_common::share::ShareStatus::Active {
            return (false, ShareUse::Refused(status));
        }
        self.uses = self.uses.saturating_add(1);
        (true, ShareUse::Admitted(self.clone()))
    }

    /// Marks the link revoked unless it already was (the first revocation stands); whether the
    /// record changed.
    pub(crate) fn revoke(&mut self, by: &UserId, now_ms: i64) -> bool {
        let first = self.revoked_ms.is_none();
        if first {
            self.revoked_ms = Some(now_ms);
            self.revoked_by = Some(by.clone());
        }
        first
    }
}

/// What trying to open a session with a link did.
#[derive(Debug, Clone, PartialEq)]
pub enum ShareUse {
    /// Counted: the record as it is now.
    Admitted(ShareRecord),
    /// Not counted: why.
    Refused(tether_common::share::ShareStatus),
    Unknown,
}

/// An invite link: who made it, until when it serves its downloads, and how many devices it
/// enrolled. The link itself (a MAC'd token) is never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InviteRecord {
    pub id: String,
    pub group: GroupId,
    pub created_by: UserId,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds; from then on the invite serves and admits nothing.
    pub expires: i64,
    /// The `MeshID` of the `.msh` this invite serves (hex); see [`EnrolmentKeyRecord`].
    pub enrolment_key: String,
    /// How many new devices enrolled with it.
    #[serde(default)]
    pub enrolled: u32,
    /// At most this many devices may enrol with it; `None`: no limit but the expiry.
    #[serde(default)]
    pub max_devices: Option<u32>,
    /// Unix seconds of the revocation, if it was revoked.
    #[serde(default)]
    pub revoked: Option<i64>,
    #[serde(default)]
    pub revoked_by: Option<UserId>,
}

impl InviteRecord {
    /// Why the invite no longer serves or admits anything at `now`, if it does not.
    pub fn unusable_at(&self, now: i64) -> Option<&'static str> {
        if self.revoked.is_some() {
            Some("revoked")
        } else if now >= self.expires {
            Some("expired")
        } else if self.max_devices.is_some_and(|max| self.enrolled >= max) {
            Some("used up")
        } else {
            None
        }
    }

    /// Counts one device enrolled at `now` if the invite still admits one; whether it counted.
    pub(crate) fn count_enrolment(&mut self, now: i64) -> bool {
        if self.unusable_at(now).is_some() {
            return false;
        }
        self.enrolled = self.enrolled.saturating_add(1);
        true
    }

    /// Marks the invite revoked unless it already was (the first revocation stands); whether
    /// the record changed.
    pub(crate) fn revoke(&mut self, by: &UserId, now: i64) -> bool {
        let first = self.revoked.is_none();
        if first {
            self.revoked = Some(now);
            self.revoked_by = Some(by.clone());
        }
        first
    }
}

/// The order every backend lists in: invites oldest first, shares newest first, blocks oldest
/// first (ties by id), each of one group when asked.
pub(crate) fn invites_in_order(
    mut invites: Vec<InviteRecord>,
    group: Option<&GroupId>,
) -> Vec<InviteRecord> {
    if let Some(group) = group {
        invites.retain(|i| &i.group == group);
    }
    invites.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    invites
}

pub(crate) fn shares_in_order(mut shares: Vec<ShareRecord>) -> Vec<ShareRecord> {
    shares.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(a.id.cmp(&b.id)));
    shares
}

pub(crate) fn blocks_in_order(
    mut blocked: Vec<BlockedDeviceRecord>,
    group: Option<&GroupId>,
) -> Vec<BlockedDeviceRecord> {
    if let Some(group) = group {
        blocked.retain(|b| &b.group == group);
    }
    blocked.sort_by(|a, b| a.time.cmp(&b.time).then(a.device.cmp(&b.device)));
    blocked
}

/// A device id refused at admission (a removed device kept from enrolling again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockedDeviceRecord {
    pub device: DeviceId,
    /// The group it was removed from (where the block is listed).
    pub group: GroupId,
    /// Its name when it was removed, so the list means something to people.
    pub name: String,
    pub blocked_by: UserId,
    /// Unix seconds.
    pub time: i64,
}

/// An audit record before the store has numbered it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewEvent {
    /// Unix milliseconds; 0 means "now" (the store fills it in).
    pub time: i64,
    pub kind: String,
    pub user: Option<UserId>,
    pub group: Option<GroupId>,
    pub device: Option<DeviceId>,
    pub message: String,
}

/// Which events to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// At most this many records; 0 means no limit.
    pub limit: usize,
    pub group: Option<GroupId>,
    pub device: Option<DeviceId>,
    pub user: Option<UserId>,
    /// Only what a non-administrator may read: events of these groups, or events about this user
    /// alone (no group or device). One pass over the log instead of one per group.
    pub readable_by: Option<Readable>,
    /// Only this kind (`login`, `session_ended`, …).
    pub kind: Option<String>,
    /// Only records whose message contains this, ignoring case.
    pub text: Option<String>,
    /// Only records from this time on / before this time (Unix ms).
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only records older than this one (paging back through the log).
    pub before_id: Option<u64>,
}

impl EventFilter {
    /// Whether `record` passes every condition but the limit: the one rule every store applies.
    pub fn admits(&self, record: &EventRecord) -> bool {
        let some_or =
            |wanted: Option<&str>, got: Option<&str>| wanted.is_none_or(|w| got == Some(w));
        some_or(
            self.group.as_ref().map(GroupId::as_str),
            record.group.as_ref().map(GroupId::as_str),
        ) && some_or(
            self.device.as_ref().map(DeviceId::as_str),
            record.device.as_ref().map(DeviceId::as_str),
        ) && some_or(
            self.user.as_ref().map(UserId::as_str),
            record.user.as_ref().map(UserId::as_str),
        ) && self.kind.as_ref().is_none_or(|k| *k == record.kind)
            && self.since_ms.is_none_or(|t| record.time >= t)
            && self.until_ms.is_none_or(|t| record.time < t)
            && self.before_id.is_none_or(|id| record.id < id)
            && self
                .text
                .as_ref()
                .is_none_or(|t| record.message.to_lowercase().contains(&t.to_lowercase()))
            && self
                .readable_by
                .as_ref()
                .is_none_or(|readable| readable.admits(record))
    }
}

/// See [`EventFilter::readable_by`].
#[derive(Debug, Clone)]
pub struct Readable {
    pub groups: std::collections::HashSet<GroupId>,
    pub user: UserId,
}

impl Readable {
    pub fn admits(&self, record: &EventRecord) -> bool {
        match &record.group {
            Some(group) => self.groups.contains(group),
            None => record.device.is_none() && record.user.as_ref() == Some(&self.user),
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Users
    async fn user(&self, id: &UserId) -> StoreResult<Option<UserRecord>>;
    async fn users(&self) -> StoreResult<Vec<UserRecord>>;
    async fn user_count(&self) -> StoreResult<u64>;
    /// Fails with `Conflict` when the id is taken.
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// Fails with `Conflict` when any user exists: makes "first account is the admin" race-free.
    async fn create_first_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// Fails with [`StoreError::LastSiteAdmin`] rather than demote the last site administrator.
    async fn update_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// Also removes the user from every group and ends their sessions. `false` if there was none.
    async fn delete_user(&self, id: &UserId) -> StoreResult<bool>;

    // Device groups
    async fn group(&self, id: &GroupId) -> StoreResult<Option<GroupRecord>>;
    async fn groups(&self) -> StoreResult<Vec<GroupRecord>>;
    async fn put_group(&self, group: &GroupRecord) -> StoreResult<()>;
    /// Also deletes the group's devices. `false` if there was none.
    async fn delete_group(&self, id: &GroupId) -> StoreResult<bool>;

    // Devices
    async fn device(&self, id: &DeviceId) -> StoreResult<Option<DeviceRecord>>;
    async fn devices(&self, group: Option<&GroupId>) -> StoreResult<Vec<DeviceRecord>>;
    async fn put_device(&self, device: &DeviceRecord) -> StoreResult<()>;
    /// Changes a stored device in one transaction: `change` gets the record and says whether it
    /// changed anything (nothing is written otherwise). `None` when there is no such device, so a
    /// device deleted meanwhile is never written back by a late update (an agent's, say).
    async fn update_device(
        &self,
        id: &DeviceId,
        change: DeviceChange,
    ) -> StoreResult<Option<DeviceUpdate>>;
    async fn delete_device(&self, id: &DeviceId) -> StoreResult<bool>;

    // Audit log
    /// Numbers the record (ids grow monotonically) and stores it.
    async fn append_event(&self, event: NewEvent) -> StoreResult<EventRecord>;
    async fn events(&self, filter: &EventFilter) -> StoreResult<Vec<EventRecord>>;
    /// Deletes events older than `before_ms` (Unix ms); returns how many went.
    async fn prune_events(&self, before_ms: i64) -> StoreResult<u64>;

    // Settings (server-wide key/value)
    async fn setting(&self, key: &str) -> StoreResult<Option<String>>;
    async fn put_setting(&self, key: &str, value: &str) -> StoreResult<()>;
    /// Stores `value` under `key` unless something is there already, in one step; returns what
    /// is stored then. Keys made on first use go through this, so that of several servers
    /// making one at once, all end with the same.
    async fn claim_setting(&self, key: &str, value: &str) -> StoreResult<String>;

    // Login sessions, keyed by the SHA-256 hex of the cookie
    async fn session(&self, token_hash: &str) -> StoreResult<Option<SessionRecord>>;
    async fn put_session(&self, token_hash: &str, session: &SessionRecord) -> StoreResult<()>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Deletes sessions whose `expires` is before `now` (Unix seconds); returns how many went.
    async fn prune_sessions(&self, now: i64) -> StoreResult<u64>;

    // Enrolment keys (hex of 48 bytes). `delete_group` also removes the group's keys, invites and
    // blocked devices.
    /// What `key` admits to, if anything.
    async fn enrolment_key(&self, key: &str) -> StoreResult<Option<EnrolmentKeyRecord>>;
    /// The group's current key, if it has one yet.
    async fn group_enrolment_key(&self, group: &GroupId) -> StoreResult<Option<String>>;
    /// Makes `key` the group's key and returns the group's key afterwards. With `replace` false a
    /// key the group already has stays (and is returned): this is how a key is made on first need
    /// without two racing callers each handing out their own. With `replace` true the previous key
    /// stops admitting at once.
    async fn set_group_enrolment_key(
        &self,
        group: &GroupId,
        key: &str,
        replace: bool,
    ) -> StoreResult<String>;

    // Invites
    /// Stores a new invite and its enrolment key. `Conflict` when the id or the key is taken.
    async fn create_invite(&self, invite: &InviteRecord) -> StoreResult<()>;
    async fn invite(&self, id: &str) -> StoreResult<Option<InviteRecord>>;
    /// The invites of one group (of all, with `None`), oldest first.
    async fn invites(&self, group: Option<&GroupId>) -> StoreResult<Vec<InviteRecord>>;
    /// Marks the invite revoked (its key stops admitting); the record as it is now, `None` if there
    /// is no such invite. Revoking twice keeps the first time.
    async fn revoke_invite(
        &self,
        id: &str,
        by: &UserId,
        now: i64,
    ) -> StoreResult<Option<InviteRecord>>;
    /// Counts one device enrolled with the invite, in one transaction with the check that it is
    /// still usable at `now` (so a one-device invite admits one device even when two race).
    /// `false`, counting nothing, when it is not.
    async fn count_invite_enrolment(&self, id: &str, now: i64) -> StoreResult<bool>;
    /// Deletes invites that expired before `before` (Unix seconds), with their keys; how many went.
    async fn prune_invites(&self, before: i64) -> StoreResult<u64>;

    // Guest sharing links
    /// Stores a new link. `Conflict` when the id is taken.
    async fn create_share(&self, share: &ShareRecord) -> StoreResult<()>;
    async fn share(&self, id: &str) -> StoreResult<Option<ShareRecord>>;
    /// Every link, newest first.
    async fn shares(&self) -> StoreResult<Vec<ShareRecord>>;
    /// Counts one session opened with the link, in one transaction with the check that it is
    /// active at `now_ms` (so a single-use link opens one session even when two race).
    async fn use_share(&self, id: &str, now_ms: i64) -> StoreResult<ShareUse>;
    /// Marks the link revoked; the record as it is now (`None`: no such link). Revoking twice
    /// keeps the first time.
    async fn revoke_share(
        &self,
        id: &str,
        by: &UserId,
        now_ms: i64,
    ) -> StoreResult<Option<ShareRecord>>;
    /// Deletes links that expired before `before_ms`, and links to devices that are gone; how many.
    async fn prune_shares(&self, before_ms: i64) -> StoreResult<u64>;

    // Blocked devices
    /// Records (or replaces) a block.
    async fn block_device(&self, block: &BlockedDeviceRecord) -> StoreResult<()>;
    async fn blocked_device(&self, id: &DeviceId) -> StoreResult<Option<BlockedDeviceRecord>>;
    /// Blocks listed under one group (all, with `None`).
    async fn blocked_devices(
        &self,
        group: Option<&GroupId>,
    ) -> StoreResult<Vec<BlockedDeviceRecord>>;
    /// `false` if it was not blocked.
    async fn unblock_device(&self, id: &DeviceId) -> StoreResult<bool>;

    // Copying a whole store (`snapshot.rs`, `tether-server migrate`)
    /// Every record, read in one consistent view.
    async fn snapshot(&self) -> StoreResult<snapshot::Snapshot>;
    /// Writes every record of `snapshot` under its own key (event ids too), replacing records
    /// with the same key, in one transaction; later event ids stay above the copied ones.
    async fn restore(&self, snapshot: &snapshot::Snapshot) -> StoreResult<()>;
}
