//! Persistent records behind one trait, so the embedded redb backend and (later) PostgreSQL are
//! interchangeable. Handlers never touch a database directly: they hold an `Arc<dyn Store>`.
//!
//! Contract every backend keeps: a method that returned `Ok` has made its write durable (it
//! survives `kill -9` of the server the instant after).

pub mod redb;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tether_common::control::EventRecord;
use tether_common::ids::{DeviceId, GroupId, UserId};
use tether_common::rights::Rights;

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

    // Login sessions, keyed by the SHA-256 hex of the cookie
    async fn session(&self, token_hash: &str) -> StoreResult<Option<SessionRecord>>;
    async fn put_session(&self, token_hash: &str, session: &SessionRecord) -> StoreResult<()>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Deletes sessions whose `expires` is before `now` (Unix seconds); returns how many went.
    async fn prune_sessions(&self, now: i64) -> StoreResult<u64>;
}
