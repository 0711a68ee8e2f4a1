//! The embedded backend: one redb file, `<datapath>/tether.redb`.
//!
//! Every table maps a text key (or the event number) to the record as serde_json bytes, so the
//! file stays readable with a generic redb dump and records can grow fields without a migration.
//! redb is blocking; each call runs one transaction on tokio's blocking pool, and every write
//! commits with redb's default durability (fsync before `commit` returns), which is what the
//! [`Store`] contract promises.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tether_common::control::EventRecord;
use tether_common::ids::{DeviceId, GroupId, UserId};

use super::{
    BlockedDeviceRecord, DeviceChange, DeviceRecord, DeviceUpdate, EnrolmentKeyRecord, EventFilter,
    GroupRecord, InviteRecord, NewEvent, SCHEMA_VERSION, SessionRecord, ShareRecord, ShareUse,
    Store, StoreError, StoreResult, UserRecord,
};

mod copy;

const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("groups");
const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// Enrolment key (hex) → `EnrolmentKeyRecord`: what a new device's `MeshID` admits to.
const ENROLMENT_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("enrolment_keys");
/// Group id → its current enrolment key (hex).
const GROUP_KEYS: TableDefinition<&str, &str> = TableDefinition::new("group_enrolment_keys");
const INVITES: TableDefinition<&str, &[u8]> = TableDefinition::new("invites");
const BLOCKED_DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("blocked_devices");
const SHARES: TableDefinition<&str, &[u8]> = TableDefinition::new("shares");
/// Internal sequence numbers. The last event id lives here too, so that pruning every event does
/// not make the next one reuse an id.
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

const SCHEMA_VERSION_KEY: &str = "schema_version";
const LAST_EVENT_ID: &str = "last_event_id";

pub struct RedbStore {
    db: Arc<Database>,
}

impl RedbStore {
    /// Opens the database at `path`, creating it (readable by the owner only) if it is missing,
    /// and brings its schema up to [`SCHEMA_VERSION`].
    pub fn open(path: &Path) -> StoreResult<RedbStore> {
        create_private_file(path)?;
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked,
            other => backend(other),
        })?;
        let txn = db.begin_write().map_err(backend)?;
        let found = read_schema_version(&txn)?;
        if found > SCHEMA_VERSION {
            // Dropping the transaction aborts it: a newer file is left exactly as it was.
            return Err(StoreError::TooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        create_tables(&txn)?;
        if found < SCHEMA_VERSION {
            migrate(&txn, found, SCHEMA_VERSION)?;
        }
        txn.commit().map_err(backend)?;
        Ok(RedbStore { db: Arc::new(db) })
    }

    /// Runs `work` in one write transaction on the blocking pool and commits it (durably) when it
    /// returns `Ok`; an `Err` drops the transaction, which aborts it.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_write().map_err(backend)?;
            let value = work(&txn)?;
            txn.commit().map_err(backend)?;
            Ok(value)
        })
        .await
    }

    async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> StoreResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || work(&db.begin_read().map_err(backend)?)).await
    }

    async fn get<T>(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        key: &str,
    ) -> StoreResult<Option<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let key = key.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(table).map_err(backend)?;
            let value = table.get(key.as_str()).map_err(backend)?;
            value.map(|v| decode(v.value())).transpose()
        })
        .await
    }

    async fn all<T>(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
    ) -> StoreResult<Vec<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.read(move |txn| {
            let table = txn.open_table(table).map_err(backend)?;
            table
                .iter()
                .map_err(backend)?
                .map(|row| decode(row.map_err(backend)?.1.value()))
                .collect()
        })
        .await
    }

    /// Reads record `key` of `table`, lets `change` edit it and, when it says so, writes it
    /// back, all in one write transaction (so a check and its update cannot race). `None` when
    /// there is no such record; else what `change` answered.
    async fn modify<T, R, F>(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        key: &str,
        change: F,
    ) -> StoreResult<Option<R>>
    where
        T: Serialize + DeserializeOwned,
        R: Send + 'static,
        F: FnOnce(&mut T) -> (bool, R) + Send + 'static,
    {
        let key = key.to_owned();
        self.write(move |txn| {
            let mut table = txn.open_table(table).map_err(backend)?;
            let Some(mut record) = table
                .get(key.as_str())
                .map_err(backend)?
                .map(|v| decode::<T>(v.value()))
                .transpose()?
            else {
                return Ok(None);
            };
            let (write, answer) = change(&mut record);
            if write {
                table
                    .insert(key.as_str(), encode(&record)?.as_slice())
                    .map_err(backend)?;
            }
            Ok(Some(answer))
        })
        .await
    }

    async fn put<T>(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        key: &str,
        value: &T,
    ) -> StoreResult<()>
    where
        T: Serialize,
    {
        let key = key.to_owned();
        let bytes = encode(value)?;
        self.write(move |txn| {
            let mut table = txn.open_table(table).map_err(backend)?;
            table
                .insert(key.as_str(), bytes.as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn remove(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        key: &str,
    ) -> StoreResult<bool> {
        let key = key.to_owned();
        self.write(move |txn| {
            let mut table = txn.open_table(table).map_err(backend)?;
            let existed = table.remove(key.as_str()).map_err(backend)?.is_some();
            Ok(existed)
        })
        .await
    }
}

/// Creates the file with mode 0600 before redb opens it: it holds password hashes and session
/// digests, which no other local account should read.
fn create_private_file(path: &Path) -> StoreResult<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Backend(format!(
            "creating {}: {e}",
            path.display()
        ))),
    }
}

fn read_schema_version(txn: &WriteTransaction) -> StoreResult<u32> {
    let settings = txn.open_table(SETTINGS).map_err(backend)?;
    let Some(value) = settings.get(SCHEMA_VERSION_KEY).map_err(backend)? else {
        return Ok(0);
    };
    value
        .value()
        .parse()
        .map_err(|_| StoreError::Backend(format!("unreadable schema_version {:?}", value.value())))
}

fn create_tables(txn: &WriteTransaction) -> StoreResult<()> {
    // Tables added later (enrolment keys, invites, blocks) are simply created when missing: they
    // change no existing record, so they need no schema version of their own.
    for table in [
        USERS,
        GROUPS,
        DEVICES,
        SESSIONS,
        ENROLMENT_KEYS,
        INVITES,
        BLOCKED_DEVICES,
        SHARES,
    ] {
        txn.open_table(table).map_err(backend)?;
    }
    txn.open_table(EVENTS).map_err(backend)?;
    txn.open_table(SETTINGS).map_err(backend)?;
    txn.open_table(COUNTERS).map_err(backend)?;
    txn.open_table(GROUP_KEYS).map_err(backend)?;
    Ok(())
}

/// Converts the records of schema `from` to schema `to`, inside the opening transaction so that a
/// crash mid-way leaves the old file untouched. Version 0 is "no database yet".
fn migrate(txn: &WriteTransaction, from: u32, to: u32) -> StoreResult<()> {
    for version in from..to {
        match version {
            // 0 → 1: a new database; `create_tables` already made everything.
            0 => {}
            other => {
                return Err(StoreError::Backend(format!(
                    "no migration from schema version {other}"
                )));
            }
        }
    }
    let mut settings = txn.open_table(SETTINGS).map_err(backend)?;
    settings
        .insert(SCHEMA_VERSION_KEY, to.to_string().as_str())
        .map_err(backend)?;
    Ok(())
}

async fn blocking<T, F>(work: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> StoreResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Backend(format!("database task failed: {e}")))?
}

fn backend(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(error.into().to_string())
}

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("encoding a record: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Backend(format!("decoding a record: {e}")))
}

/// Keys of the rows of `table` whose record satisfies `pick`.
fn keys_where<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    pick: impl Fn(&T) -> bool,
) -> StoreResult<Vec<String>> {
    let mut keys = Vec::new();
    for row in table.iter().map_err(backend)? {
        let (key, value) = row.map_err(backend)?;
        if pick(&decode(value.value())?) {
            keys.push(key.value().to_owned());
        }
    }
    Ok(keys)
}

/// A group's enrolment keys, invites and blocked devices go with it.
fn remove_enrolment_of_group(txn: &WriteTransaction, group: &GroupId) -> StoreResult<()> {
    txn.open_table(GROUP_KEYS)
        .map_err(backend)?
        .remove(group.as_str())
        .map_err(backend)?;
    let mut keys = txn.open_table(ENROLMENT_KEYS).map_err(backend)?;
    for key in keys_where(&keys, |k: &EnrolmentKeyRecord| &k.group == group)? {
        keys.remove(key.as_str()).map_err(backend)?;
    }
    let mut invites = txn.open_table(INVITES).map_err(backend)?;
    for id in keys_where(&invites, |i: &InviteRecord| &i.group == group)? {
        invites.remove(id.as_str()).map_err(backend)?;
    }
    let mut blocked = txn.open_table(BLOCKED_DEVICES).map_err(backend)?;
    for id in keys_where(&blocked, |b: &BlockedDeviceRecord| &b.group == group)? {
        blocked.remove(id.as_str()).map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl Store for RedbStore {
    async fn snapshot(&self) -> StoreResult<super::snapshot::Snapshot> {
        self.read(copy::snapshot).await
    }

    async fn restore(&self, snapshot: &super::snapshot::Snapshot) -> StoreResult<()> {
        let snapshot = snapshot.clone();
        self.write(move |txn| copy::restore(txn, &snapshot)).await
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<UserRecord>> {
        self.get(USERS, id.as_str()).await
    }

    async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        self.all(USERS).await
    }

    async fn user_count(&self) -> StoreResult<u64> {
        self.read(|txn| {
            txn.open_table(USERS)
                .map_err(backend)?
                .len()
                .map_err(backend)
        })
        .await
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        let user = user.clone();
        let bytes = encode(&user)?;
        self.write(move |txn| {
            let mut users = txn.open_table(USERS).map_err(backend)?;
            if users.get(user.id.as_str()).map_err(backend)?.is_some() {
                return Err(StoreError::Conflict(format!("user {}", user.id)));
            }
            users
                .insert(user.id.as_str(), bytes.as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn create_first_user(&self, user: &UserRecord) -> StoreResult<()> {
        let id = user.id.clone();
        let bytes = encode(user)?;
        self.write(move |txn| {
            let mut users = txn.open_table(USERS).map_err(backend)?;
            // Counted inside the write transaction: two concurrent setups cannot both see zero.
            if !users.is_empty().map_err(backend)? {
                return Err(StoreError::Conflict("an account".to_owned()));
            }
            users
                .insert(id.as_str(), bytes.as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn update_user(&self, user: &UserRecord) -> StoreResult<()> {
        let user = user.clone();
        let bytes = encode(&user)?;
        self.write(move |txn| {
            let mut users = txn.open_table(USERS).map_err(backend)?;
            if !user.site_admin {
                let was_admin = match users.get(user.id.as_str()).map_err(backend)? {
                    Some(old) => decode::<UserRecord>(old.value())?.site_admin,
                    None => false,
                };
                if was_admin && site_admins(&users)? <= 1 {
                    return Err(StoreError::LastSiteAdmin);
                }
            }
            users
                .insert(user.id.as_str(), bytes.as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn delete_user(&self, id: &UserId) -> StoreResult<bool> {
        let id = id.clone();
        self.write(move |txn| {
            let mut users = txn.open_table(USERS).map_err(backend)?;
            let removed: Option<UserRecord> = match users.remove(id.as_str()).map_err(backend)? {
                Some(old) => Some(decode(old.value())?),
                None => None,
            };
            let Some(removed) = removed else {
                return Ok(false);
            };
            // Counted after the removal, inside this write: returning the error aborts it.
            if removed.site_admin && site_admins(&users)? == 0 {
                return Err(StoreError::LastSiteAdmin);
            }
            drop(users);
            let mut groups = txn.open_table(GROUPS).map_err(backend)?;
            let mut changed = Vec::new();
            for row in groups.iter().map_err(backend)? {
                let mut group: GroupRecord = decode(row.map_err(backend)?.1.value())?;
                if group.members.remove(&id).is_some() {
                    changed.push(group);
                }
            }
            for group in changed {
                groups
                    .insert(group.id.as_str(), encode(&group)?.as_slice())
                    .map_err(backend)?;
            }
            let mut sessions = txn.open_table(SESSIONS).map_err(backend)?;
            let mut ended = Vec::new();
            for row in sessions.iter().map_err(backend)? {
                let (key, value) = row.map_err(backend)?;
                let session: SessionRecord = decode(value.value())?;
                if session.user == id {
                    ended.push(key.value().to_owned());
                }
            }
            for key in ended {
                sessions.remove(key.as_str()).map_err(backend)?;
            }
            Ok(true)
        })
        .await
    }

    async fn group(&self, id: &GroupId) -> StoreResult<Option<GroupRecord>> {
        self.get(GROUPS, id.as_str()).await
    }

    async fn groups(&self) -> StoreResult<Vec<GroupRecord>> {
        self.all(GROUPS).await
    }

    async fn put_group(&self, group: &GroupRecord) -> StoreResult<()> {
        self.put(GROUPS, group.id.as_str(), group).await
    }

    async fn delete_group(&self, id: &GroupId) -> StoreResult<bool> {
        let id = id.clone();
        self.write(move |txn| {
            let existed = txn
                .open_table(GROUPS)
                .map_err(backend)?
                .remove(id.as_str())
                .map_err(backend)?
                .is_some();
            let mut devices = txn.open_table(DEVICES).map_err(backend)?;
            let mut orphans = Vec::new();
            for row in devices.iter().map_err(backend)? {
                let (key, value) = row.map_err(backend)?;
                let device: DeviceRecord = decode(value.value())?;
                if device.group == id {
                    orphans.push(key.value().to_owned());
                }
            }
            for key in orphans {
                devices.remove(key.as_str()).map_err(backend)?;
            }
            remove_enrolment_of_group(txn, &id)?;
            Ok(existed)
        })
        .await
    }

    async fn device(&self, id: &DeviceId) -> StoreResult<Option<DeviceRecord>> {
        self.get(DEVICES, id.as_str()).await
    }

    async fn devices(&self, group: Option<&GroupId>) -> StoreResult<Vec<DeviceRecord>> {
        let devices: Vec<DeviceRecord> = self.all(DEVICES).await?;
        Ok(match group {
            Some(group) => devices.into_iter().filter(|d| &d.group == group).collect(),
            None => devices,
        })
    }

    async fn put_device(&self, device: &DeviceRecord) -> StoreResult<()> {
        self.put(DEVICES, device.id.as_str(), device).await
    }

    async fn update_device(
        &self,
        id: &DeviceId,
        change: DeviceChange,
    ) -> StoreResult<Option<DeviceUpdate>> {
        let id = id.clone();
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_write().map_err(backend)?;
            let update = {
                let mut devices = txn.open_table(DEVICES).map_err(backend)?;
                let stored = devices
                    .get(id.as_str())
                    .map_err(backend)?
                    .map(|v| decode::<DeviceRecord>(v.value()))
                    .transpose()?;
                let Some(mut device) = stored else {
                    return Ok(None);
                };
                let changed = change(&mut device);
                if changed {
                    devices
                        .insert(id.as_str(), encode(&device)?.as_slice())
                        .map_err(backend)?;
                }
                DeviceUpdate { device, changed }
            };
            // Unchanged: dropping the transaction aborts it, which costs no fsync.
            if update.changed {
                txn.commit().map_err(backend)?;
            }
            Ok(Some(update))
        })
        .await
    }

    async fn delete_device(&self, id: &DeviceId) -> StoreResult<bool> {
        self.remove(DEVICES, id.as_str()).await
    }

    async fn append_event(&self, event: NewEvent) -> StoreResult<EventRecord> {
        self.write(move |txn| {
            let mut events = txn.open_table(EVENTS).map_err(backend)?;
            let mut counters = txn.open_table(COUNTERS).map_err(backend)?;
            let last_stored = events
                .last()
                .map_err(backend)?
                .map_or(0, |(key, _)| key.value());
            let last_issued = counters
                .get(LAST_EVENT_ID)
                .map_err(backend)?
                .map_or(0, |v| v.value());
            let id = last_stored.max(last_issued) + 1;
            let record = EventRecord {
                id,
                time: if event.time == 0 {
                    crate::clock::now_millis()
                } else {
                    event.time
                },
                kind: event.kind,
                user: event.user,
                group: event.group,
                device: event.device,
                message: event.message,
            };
            events
                .insert(id, encode(&record)?.as_slice())
                .map_err(backend)?;
            counters.insert(LAST_EVENT_ID, id).map_err(backend)?;
            Ok(record)
        })
        .await
    }

    async fn events(&self, filter: &EventFilter) -> StoreResult<Vec<EventRecord>> {
        let filter = filter.clone();
        let limit = if filter.limit == 0 {
            usize::MAX
        } else {
            filter.limit
        };
        self.read(move |txn| {
            let events = txn.open_table(EVENTS).map_err(backend)?;
            let mut found = Vec::new();
            for row in events.iter().map_err(backend)?.rev() {
                if found.len() >= limit {
                    break;
                }
                let record: EventRecord = decode(row.map_err(backend)?.1.value())?;
                if filter.admits(&record) {
                    found.push(record);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn prune_events(&self, before_ms: i64) -> StoreResult<u64> {
        self.write(move |txn| {
            let mut events = txn.open_table(EVENTS).map_err(backend)?;
            let mut old = Vec::new();
            for row in events.iter().map_err(backend)? {
                let (key, value) = row.map_err(backend)?;
                let record: EventRecord = decode(value.value())?;
                if record.time < before_ms {
                    old.push(key.value());
                }
            }
            for key in &old {
                events.remove(key).map_err(backend)?;
            }
            Ok(old.len() as u64)
        })
        .await
    }

    async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        let key = key.to_owned();
        self.read(move |txn| {
            let settings = txn.open_table(SETTINGS).map_err(backend)?;
            Ok(settings
                .get(key.as_str())
                .map_err(backend)?
                .map(|v| v.value().to_owned()))
        })
        .await
    }

    async fn put_setting(&self, key: &str, value: &str) -> StoreResult<()> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |txn| {
            txn.open_table(SETTINGS)
                .map_err(backend)?
                .insert(key.as_str(), value.as_str())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn claim_setting(&self, key: &str, value: &str) -> StoreResult<String> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |txn| {
            let mut settings = txn.open_table(SETTINGS).map_err(backend)?;
            if let Some(stored) = settings.get(key.as_str()).map_err(backend)? {
                return Ok(stored.value().to_owned());
            }
            settings
                .insert(key.as_str(), value.as_str())
                .map_err(backend)?;
            Ok(value)
        })
        .await
    }

    async fn session(&self, token_hash: &str) -> StoreResult<Option<SessionRecord>> {
        self.get(SESSIONS, token_hash).await
    }

    async fn put_session(&self, token_hash: &str, session: &SessionRecord) -> StoreResult<()> {
        self.put(SESSIONS, token_hash, session).await
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        self.remove(SESSIONS, token_hash).await.map(drop)
    }

    async fn prune_sessions(&self, now: i64) -> StoreResult<u64> {
        let expired = self
            .read(move |txn| {
                let sessions = txn.open_table(SESSIONS).map_err(backend)?;
                let mut expired = Vec::new();
                for row in sessions.iter().map_err(backend)? {
                    let (key, value) = row.map_err(backend)?;
                    let session: SessionRecord = decode(value.value())?;
                    if session.expires < now {
                        expired.push(key.value().to_owned());
                    }
                }
                Ok(expired)
            })
            .await?;
        // Found with a read first: most runs delete nothing and then cost no write (and no fsync).
        if expired.is_empty() {
            return Ok(0);
        }
        self.write(move |txn| {
            let mut sessions = txn.open_table(SESSIONS).map_err(backend)?;
            let mut count = 0;
            for key in expired {
                count += u64::from(sessions.remove(key.as_str()).map_err(backend)?.is_some());
            }
            Ok(count)
        })
        .await
    }

    async fn enrolment_key(&self, key: &str) -> StoreResult<Option<EnrolmentKeyRecord>> {
        self.get(ENROLMENT_KEYS, key).await
    }

    async fn group_enrolment_key(&self, group: &GroupId) -> StoreResult<Option<String>> {
        let group = group.clone();
        self.read(move |txn| {
            let keys = txn.open_table(GROUP_KEYS).map_err(backend)?;
            Ok(keys
                .get(group.as_str())
                .map_err(backend)?
                .map(|v| v.value().to_owned()))
        })
        .await
    }

    async fn set_group_enrolment_key(
        &self,
        group: &GroupId,
        key: &str,
        replace: bool,
    ) -> StoreResult<String> {
        let (group, key) = (group.clone(), key.to_owned());
        let record = encode(&EnrolmentKeyRecord {
            group: group.clone(),
            invite: None,
        })?;
        self.write(move |txn| {
            let mut group_keys = txn.open_table(GROUP_KEYS).map_err(backend)?;
            let old = group_keys
                .get(group.as_str())
                .map_err(backend)?
                .map(|v| v.value().to_owned());
            if let Some(old) = &old
                && !replace
            {
                return Ok(old.clone());
            }
            let mut keys = txn.open_table(ENROLMENT_KEYS).map_err(backend)?;
            if keys.get(key.as_str()).map_err(backend)?.is_some() {
                return Err(StoreError::Conflict("enrolment key".to_owned()));
            }
            if let Some(old) = &old {
                keys.remove(old.as_str()).map_err(backend)?;
            }
            keys.insert(key.as_str(), record.as_slice())
                .map_err(backend)?;
            group_keys
                .insert(group.as_str(), key.as_str())
                .map_err(backend)?;
            Ok(key)
        })
        .await
    }

    async fn create_invite(&self, invite: &InviteRecord) -> StoreResult<()> {
        let invite = invite.clone();
        let bytes = encode(&invite)?;
        let key_record = encode(&EnrolmentKeyRecord {
            group: invite.group.clone(),
            invite: Some(invite.id.clone()),
        })?;
        self.write(move |txn| {
            let mut invites = txn.open_table(INVITES).map_err(backend)?;
            let mut keys = txn.open_table(ENROLMENT_KEYS).map_err(backend)?;
            if invites.get(invite.id.as_str()).map_err(backend)?.is_some()
                || keys
                    .get(invite.enrolment_key.as_str())
                    .map_err(backend)?
                    .is_some()
            {
                return Err(StoreError::Conflict(format!("invite {}", invite.id)));
            }
            invites
                .insert(invite.id.as_str(), bytes.as_slice())
                .map_err(backend)?;
            keys.insert(invite.enrolment_key.as_str(), key_record.as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn invite(&self, id: &str) -> StoreResult<Option<InviteRecord>> {
        self.get(INVITES, id).await
    }

    async fn invites(&self, group: Option<&GroupId>) -> StoreResult<Vec<InviteRecord>> {
        Ok(super::invites_in_order(self.all(INVITES).await?, group))
    }

    async fn revoke_invite(
        &self,
        id: &str,
        by: &UserId,
        now: i64,
    ) -> StoreResult<Option<InviteRecord>> {
        let by = by.clone();
        self.modify(INVITES, id, move |invite: &mut InviteRecord| {
            (invite.revoke(&by, now), invite.clone())
        })
        .await
    }

    async fn create_share(&self, share: &ShareRecord) -> StoreResult<()> {
        let share = share.clone();
        let bytes = encode(&share)?;
        self.write(move |txn| {
            let mut shares = txn.open_table(SHARES).map_err(backend)?;
            if shares.get(share.id.as_str()).map_err(backend)?.is_some() {
                return Err(StoreError::Conflict(format!("share {}", share.id)));
            }
            shares
                .insert(share.id.as_str(), bytes.as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn share(&self, id: &str) -> StoreResult<Option<ShareRecord>> {
        self.get(SHARES, id).await
    }

    async fn shares(&self) -> StoreResult<Vec<ShareRecord>> {
        Ok(super::shares_in_order(self.all(SHARES).await?))
    }

    async fn use_share(&self, id: &str, now_ms: i64) -> StoreResult<ShareUse> {
        let used = self
            .modify(SHARES, id, move |share: &mut ShareRecord| {
                share.take_use(now_ms)
            })
            .await?;
        Ok(used.unwrap_or(ShareUse::Unknown))
    }

    async fn revoke_share(
        &self,
        id: &str,
        by: &UserId,
        now_ms: i64,
    ) -> StoreResult<Option<ShareRecord>> {
        let by = by.clone();
        self.modify(SHARES, id, move |share: &mut ShareRecord| {
            (share.revoke(&by, now_ms), share.clone())
        })
        .await
    }

    async fn prune_shares(&self, before_ms: i64) -> StoreResult<u64> {
        self.write(move |txn| {
            let devices = txn.open_table(DEVICES).map_err(backend)?;
            let mut shares = txn.open_table(SHARES).map_err(backend)?;
            let mut gone = Vec::new();
            for row in shares.iter().map_err(backend)? {
                let (key, value) = row.map_err(backend)?;
                let share: ShareRecord = decode(value.value())?;
                let device_gone = devices
                    .get(share.device.as_str())
                    .map_err(backend)?
                    .is_none();
                if share.expires_ms < before_ms || device_gone {
                    gone.push(key.value().to_owned());
                }
            }
            for id in &gone {
                shares.remove(id.as_str()).map_err(backend)?;
            }
            Ok(gone.len() as u64)
        })
        .await
    }

    async fn count_invite_enrolment(&self, id: &str, now: i64) -> StoreResult<bool> {
        let counted = self
            .modify(INVITES, id, move |invite: &mut InviteRecord| {
                let counted = invite.count_enrolment(now);
                (counted, counted)
            })
            .await?;
        Ok(counted.unwrap_or(false))
    }

    async fn prune_invites(&self, before: i64) -> StoreResult<u64> {
        let old: Vec<InviteRecord> = self
            .invites(None)
            .await?
            .into_iter()
            .filter(|i| i.expires < before)
            .collect();
        if old.is_empty() {
            return Ok(0);
        }
        self.write(move |txn| {
            let mut invites = txn.open_table(INVITES).map_err(backend)?;
            let mut keys = txn.open_table(ENROLMENT_KEYS).map_err(backend)?;
            let mut count = 0;
            for invite in old {
                count += u64::from(
                    invites
                        .remove(invite.id.as_str())
                        .map_err(backend)?
                        .is_some(),
                );
                keys.remove(invite.enrolment_key.as_str())
                    .map_err(backend)?;
            }
            Ok(count)
        })
        .await
    }

    async fn block_device(&self, block: &BlockedDeviceRecord) -> StoreResult<()> {
        self.put(BLOCKED_DEVICES, block.device.as_str(), block)
            .await
    }

    async fn blocked_device(&self, id: &DeviceId) -> StoreResult<Option<BlockedDeviceRecord>> {
        self.get(BLOCKED_DEVICES, id.as_str()).await
    }

    async fn blocked_devices(
        &self,
        group: Option<&GroupId>,
    ) -> StoreResult<Vec<BlockedDeviceRecord>> {
        Ok(super::blocks_in_order(
            self.all(BLOCKED_DEVICES).await?,
            group,
        ))
    }

    async fn unblock_device(&self, id: &DeviceId) -> StoreResult<bool> {
        self.remove(BLOCKED_DEVICES, id.as_str()).await
    }
}

/// Site administrators among the users, as a write transaction sees them.
fn site_admins(users: &redb::Table<&str, &[u8]>) -> StoreResult<usize> {
    let mut count = 0;
    for row in users.iter().map_err(backend)? {
        let user: UserRecord = decode(row.map_err(backend)?.1.value())?;
        count += usize::from(user.site_admin);
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_file_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tether.redb");
        let first = RedbStore::open(&path).unwrap();
        assert!(matches!(RedbStore::open(&path), Err(StoreError::Locked)));
        drop(first);
        RedbStore::open(&path).expect("reopens once the first handle is gone");
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tether.redb");
        RedbStore::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_new_database_records_the_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tether.redb");
        drop(RedbStore::open(&path).unwrap());
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        assert_eq!(read_schema_version(&txn).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_newer_database_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tether.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(SETTINGS)
                .unwrap()
                .insert(SCHEMA_VERSION_KEY, "99")
                .unwrap();
            txn.commit().unwrap();
        }
        match RedbStore::open(&path) {
            Err(StoreError::TooNew {
                found: 99,
                supported,
            }) => assert_eq!(supported, SCHEMA_VERSION),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a newer database was opened"),
        }
        let db = Database::create(&path).unwrap();
        let txn = db.begin_read().unwrap();
        assert!(
            txn.open_table(USERS).is_err(),
            "no tables were added to the newer file"
        );
    }
}
