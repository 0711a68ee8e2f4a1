//! The shared backend: PostgreSQL, for several servers behind one address (issue 17).
//!
//! Records are the same serde JSON the redb backend stores, in JSONB columns beside the few
//! columns that queries select on (`migrations/postgres/`), so a record gains fields without a
//! migration and `tether-server migrate` can copy one backend into the other record by record.
//! Migrations are embedded and run at start; a database that has a migration this server does
//! not know (a newer server wrote it) is refused rather than touched.
//!
//! Where redb gets atomicity from its single writer, this file takes row locks (`FOR UPDATE`) for
//! a check and its update, and a table lock where the check spans rows (the last site
//! administrator, a group's one enrolment key, the first account). Every method that returned
//! `Ok` has committed, and PostgreSQL's commit is durable (`synchronous_commit` on, its default).

use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use tether_common::control::EventRecord;
use tether_common::ids::{DeviceId, GroupId, UserId};

use super::{
    BlockedDeviceRecord, DeviceChange, DeviceRecord, DeviceUpdate, EnrolmentKeyRecord, EventFilter,
    GroupRecord, InviteRecord, NewEvent, SessionRecord, ShareRecord, ShareUse, Store, StoreError,
    StoreResult, UserRecord,
};

mod copy;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// How one kind of record is read for a change and written back (`PostgresStore::modify`).
#[derive(Clone, Copy)]
struct Row {
    select: &'static str,
    update: &'static str,
}

const INVITE_ROW: Row = Row {
    select: "SELECT body FROM invites WHERE id = $1 FOR UPDATE",
    update: "UPDATE invites SET body = $2 WHERE id = $1",
};

const SHARE_ROW: Row = Row {
    select: "SELECT body FROM shares WHERE id = $1 FOR UPDATE",
    update: "UPDATE shares SET body = $2 WHERE id = $1",
};

/// Writes one login session (`put_session`, and `restore` in `copy.rs`).
const SESSION_UPSERT: &str = "INSERT INTO login_sessions (token_hash, user_id, expires, body)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (token_hash) DO UPDATE
     SET user_id = EXCLUDED.user_id, expires = EXCLUDED.expires, body = EXCLUDED.body";

/// How long a call waits for a pooled connection before it fails with a clear error.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`) with at most `connections` pooled connections and
    /// brings the schema up to date.
    pub async fn connect(url: &str, connections: u32) -> StoreResult<PostgresStore> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("unusable PostgreSQL address: {e}")))?;
        PostgresStore::connect_with(options, connections).await
    }

    /// [`PostgresStore::connect`] with options already parsed.
    pub async fn connect_with(
        options: PgConnectOptions,
        connections: u32,
    ) -> StoreResult<PostgresStore> {
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Backend(format!("cannot connect to PostgreSQL: {e}")))?;
        MIGRATOR.run(&pool).await.map_err(|e| match e {
            MigrateError::VersionMissing(found) => StoreError::TooNew {
                found: u32::try_from(found).unwrap_or(u32::MAX),
                supported: latest_migration(),
            },
            other => StoreError::Backend(format!("PostgreSQL migrations: {other}")),
        })?;
        Ok(PostgresStore { pool })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        sql: &'static str,
        key: &str,
    ) -> StoreResult<Option<T>> {
        let row: Option<(Value,)> = sqlx::query_as(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.map(|(body,)| decode(body)).transpose()
    }

    async fn all<T: DeserializeOwned>(&self, sql: &'static str) -> StoreResult<Vec<T>> {
        let rows: Vec<(Value,)> = sqlx::query_as(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.into_iter().map(|(body,)| decode(body)).collect()
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(backend)
    }

    /// Reads one record with a row lock, lets `change` edit it and, when it says so, writes it
    /// back, in one transaction. `None` when there is no such record.
    async fn modify<T, R>(
        &self,
        Row { select, update }: Row,
        key: &str,
        change: impl FnOnce(&mut T) -> (bool, R) + Send,
    ) -> StoreResult<Option<R>>
    where
        T: Serialize + DeserializeOwned + Send,
    {
        let mut tx = self.begin().await?;
        let row: Option<(Value,)> = sqlx::query_as(select)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some((body,)) = row else {
            return Ok(None);
        };
        let mut record: T = decode(body)?;
        let (write, answer) = change(&mut record);
        if write {
            sqlx::query(update)
                .bind(key)
                .bind(encode(&record)?)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            tx.commit().await.map_err(backend)?;
        }
        Ok(Some(answer))
    }
}

/// The newest migration this server knows.
fn latest_migration() -> u32 {
    MIGRATOR
        .iter()
        .map(|m| u32::try_from(m.version).unwrap_or(u32::MAX))
        .max()
        .unwrap_or(0)
}

fn backend(error: sqlx::Error) -> StoreError {
    StoreError::Backend(format!("PostgreSQL: {error}"))
}

fn encode<T: Serialize>(value: &T) -> StoreResult<Value> {
    serde_json::to_value(value).map_err(|e| StoreError::Backend(format!("encoding a record: {e}")))
}

fn decode<T: DeserializeOwned>(body: Value) -> StoreResult<T> {
    serde_json::from_value(body).map_err(|e| StoreError::Backend(format!("decoding a record: {e}")))
}

/// Runs `sql` with one text parameter (`$1`); how many rows it affected.
async fn run_keyed<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    sql: &'e str,
    key: &'e str,
) -> StoreResult<u64> {
    Ok(sqlx::query(sql)
        .bind(key)
        .execute(executor)
        .await
        .map_err(backend)?
        .rows_affected())
}

/// Runs `sql` with a key (`$1`) and a record's JSON (`$2`); how many rows it affected.
async fn run_record<'e, T: Serialize>(
    executor: impl sqlx::PgExecutor<'e>,
    sql: &'e str,
    key: &'e str,
    record: &T,
) -> StoreResult<u64> {
    Ok(sqlx::query(sql)
        .bind(key)
        .bind(encode(record)?)
        .execute(executor)
        .await
        .map_err(backend)?
        .rows_affected())
}

/// Site administrators among the users, as `tx` sees them (the caller holds the users lock).
async fn site_admins(tx: &mut Transaction<'static, Postgres>) -> StoreResult<usize> {
    let rows: Vec<(Value,)> = sqlx::query_as("SELECT body FROM users")
        .fetch_all(&mut **tx)
        .await
        .map_err(backend)?;
    let mut count = 0;
    for (body,) in rows {
        count += usize::from(decode::<UserRecord>(body)?.site_admin);
    }
    Ok(count)
}

/// Serialises the writes that check something across all users (the first account, the last
/// site administrator); readers are not blocked.
async fn lock_users(tx: &mut Transaction<'static, Postgres>) -> StoreResult<()> {
    sqlx::query("LOCK TABLE users IN EXCLUSIVE MODE")
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn snapshot(&self) -> StoreResult<super::snapshot::Snapshot> {
        copy::snapshot(self.begin().await?).await
    }

    async fn restore(&self, snapshot: &super::snapshot::Snapshot) -> StoreResult<()> {
        copy::restore(self.begin().await?, snapshot).await
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<UserRecord>> {
        self.get("SELECT body FROM users WHERE id = $1", id.as_str())
            .await
    }

    async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        self.all("SELECT body FROM users ORDER BY id").await
    }

    async fn user_count(&self) -> StoreResult<u64> {
        let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        Ok(count as u64)
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        let inserted = run_record(
            &self.pool,
            "INSERT INTO users (id, body) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            user.id.as_str(),
            user,
        )
        .await?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!("user {}", user.id)));
        }
        Ok(())
    }

    async fn create_first_user(&self, user: &UserRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        lock_users(&mut tx).await?;
        let (any,): (bool,) = sqlx::query_as("SELECT EXISTS (SELECT 1 FROM users)")
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        if any {
            return Err(StoreError::Conflict("an account".to_owned()));
        }
        run_record(
            &mut *tx,
            "INSERT INTO users (id, body) VALUES ($1, $2)",
            user.id.as_str(),
            user,
        )
        .await?;
        tx.commit().await.map_err(backend)
    }

    async fn update_user(&self, user: &UserRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        lock_users(&mut tx).await?;
        if !user.site_admin {
            let old: Option<(Value,)> = sqlx::query_as("SELECT body FROM users WHERE id = $1")
                .bind(user.id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
            let was_admin = match old {
                Some((body,)) => decode::<UserRecord>(body)?.site_admin,
                None => false,
            };
            if was_admin && site_admins(&mut tx).await? <= 1 {
                return Err(StoreError::LastSiteAdmin);
            }
        }
        run_record(
            &mut *tx,
            "INSERT INTO users (id, body) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body",
            user.id.as_str(),
            user,
        )
        .await?;
        tx.commit().await.map_err(backend)
    }

    async fn delete_user(&self, id: &UserId) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        lock_users(&mut tx).await?;
        let removed: Option<(Value,)> =
            sqlx::query_as("DELETE FROM users WHERE id = $1 RETURNING body")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let Some((body,)) = removed else {
            return Ok(false);
        };
        // Counted after the removal, inside this transaction: returning the error rolls it back.
        if decode::<UserRecord>(body)?.site_admin && site_admins(&mut tx).await? == 0 {
            return Err(StoreError::LastSiteAdmin);
        }
        let groups: Vec<(Value,)> =
            sqlx::query_as("SELECT body FROM device_groups ORDER BY id FOR UPDATE")
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        for (body,) in groups {
            let mut group: GroupRecord = decode(body)?;
            if group.members.remove(id).is_some() {
                run_record(
                    &mut *tx,
                    "UPDATE device_groups SET body = $2 WHERE id = $1",
                    group.id.as_str(),
                    &group,
                )
                .await?;
            }
        }
        run_keyed(
            &mut *tx,
            "DELETE FROM login_sessions WHERE user_id = $1",
            id.as_str(),
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn group(&self, id: &GroupId) -> StoreResult<Option<GroupRecord>> {
        self.get("SELECT body FROM device_groups WHERE id = $1", id.as_str())
            .await
    }

    async fn groups(&self) -> StoreResult<Vec<GroupRecord>> {
        self.all("SELECT body FROM device_groups ORDER BY id").await
    }

    async fn put_group(&self, group: &GroupRecord) -> StoreResult<()> {
        run_record(
            &self.pool,
            "INSERT INTO device_groups (id, body) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body",
            group.id.as_str(),
            group,
        )
        .await?;
        Ok(())
    }

    async fn delete_group(&self, id: &GroupId) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let existed = run_keyed(
            &mut *tx,
            "DELETE FROM device_groups WHERE id = $1",
            id.as_str(),
        )
        .await?
            > 0;
        // A group's devices, enrolment keys, invites and blocked devices go with it.
        for sql in [
            "DELETE FROM devices WHERE group_id = $1",
            "DELETE FROM group_enrolment_keys WHERE group_id = $1",
            "DELETE FROM enrolment_keys WHERE group_id = $1",
            "DELETE FROM invites WHERE group_id = $1",
            "DELETE FROM blocked_devices WHERE group_id = $1",
        ] {
            run_keyed(&mut *tx, sql, id.as_str()).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(existed)
    }

    async fn device(&self, id: &DeviceId) -> StoreResult<Option<DeviceRecord>> {
        self.get("SELECT body FROM devices WHERE id = $1", id.as_str())
            .await
    }

    async fn devices(&self, group: Option<&GroupId>) -> StoreResult<Vec<DeviceRecord>> {
        let rows: Vec<(Value,)> = match group {
            Some(group) => {
                sqlx::query_as("SELECT body FROM devices WHERE group_id = $1 ORDER BY id")
                    .bind(group.as_str())
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                sqlx::query_as("SELECT body FROM devices ORDER BY id")
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(backend)?;
        rows.into_iter().map(|(body,)| decode(body)).collect()
    }

    async fn put_device(&self, device: &DeviceRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO devices (id, group_id, body) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET group_id = EXCLUDED.group_id, body = EXCLUDED.body",
        )
        .bind(device.id.as_str())
        .bind(device.group.as_str())
        .bind(encode(device)?)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn update_device(
        &self,
        id: &DeviceId,
        change: DeviceChange,
    ) -> StoreResult<Option<DeviceUpdate>> {
        let mut tx = self.begin().await?;
        let row: Option<(Value,)> =
            sqlx::query_as("SELECT body FROM devices WHERE id = $1 FOR UPDATE")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let Some((body,)) = row else {
            return Ok(None);
        };
        let mut device: DeviceRecord = decode(body)?;
        let changed = change(&mut device);
        // Unchanged: dropping the transaction rolls it back, which writes nothing.
        if changed {
            sqlx::query("UPDATE devices SET group_id = $2, body = $3 WHERE id = $1")
                .bind(id.as_str())
                .bind(device.group.as_str())
                .bind(encode(&device)?)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            tx.commit().await.map_err(backend)?;
        }
        Ok(Some(DeviceUpdate { device, changed }))
    }

    async fn delete_device(&self, id: &DeviceId) -> StoreResult<bool> {
        Ok(run_keyed(&self.pool, "DELETE FROM devices WHERE id = $1", id.as_str()).await? > 0)
    }

    async fn append_event(&self, event: NewEvent) -> StoreResult<EventRecord> {
        let (id,): (i64,) = sqlx::query_as("SELECT nextval('event_ids')")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        let record = EventRecord {
            id: id as u64,
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
        sqlx::query("INSERT INTO events (id, time_ms, body) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(record.time)
            .bind(encode(&record)?)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(record)
    }

    async fn events(&self, filter: &EventFilter) -> StoreResult<Vec<EventRecord>> {
        let limit = if filter.limit == 0 {
            usize::MAX
        } else {
            filter.limit
        };
        // Newest first, read as a stream: a filtered page stops reading once it is full.
        let mut rows = sqlx::query_as::<_, (Value,)>("SELECT body FROM events ORDER BY id DESC")
            .fetch(&self.pool);
        let mut found = Vec::new();
        while found.len() < limit {
            let Some((body,)) = rows.try_next().await.map_err(backend)? else {
                break;
            };
            let record: EventRecord = decode(body)?;
            if filter.admits(&record) {
                found.push(record);
            }
        }
        Ok(found)
    }

    async fn prune_events(&self, before_ms: i64) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM events WHERE time_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected())
    }

    async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.map(|(value,)| value))
    }

    async fn put_setting(&self, key: &str, value: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn claim_setting(&self, key: &str, value: &str) -> StoreResult<String> {
        // The no-op update makes RETURNING give the row that won, whoever inserted it.
        let (stored,): (String,) = sqlx::query_as(
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = settings.value
             RETURNING value",
        )
        .bind(key)
        .bind(value)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(stored)
    }

    async fn session(&self, token_hash: &str) -> StoreResult<Option<SessionRecord>> {
        self.get(
            "SELECT body FROM login_sessions WHERE token_hash = $1",
            token_hash,
        )
        .await
    }

    async fn put_session(&self, token_hash: &str, session: &SessionRecord) -> StoreResult<()> {
        sqlx::query(SESSION_UPSERT)
            .bind(token_hash)
            .bind(session.user.as_str())
            .bind(session.expires)
            .bind(encode(session)?)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        run_keyed(
            &self.pool,
            "DELETE FROM login_sessions WHERE token_hash = $1",
            token_hash,
        )
        .await
        .map(drop)
    }

    async fn prune_sessions(&self, now: i64) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM login_sessions WHERE expires < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected())
    }

    async fn enrolment_key(&self, key: &str) -> StoreResult<Option<EnrolmentKeyRecord>> {
        self.get("SELECT body FROM enrolment_keys WHERE key = $1", key)
            .await
    }

    async fn group_enrolment_key(&self, group: &GroupId) -> StoreResult<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT key FROM group_enrolment_keys WHERE group_id = $1")
                .bind(group.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(row.map(|(key,)| key))
    }

    async fn set_group_enrolment_key(
        &self,
        group: &GroupId,
        key: &str,
        replace: bool,
    ) -> StoreResult<String> {
        let record = encode(&EnrolmentKeyRecord {
            group: group.clone(),
            invite: None,
        })?;
        let mut tx = self.begin().await?;
        // Two first callers must not each hand out a key of their own: one waits for the other.
        sqlx::query("LOCK TABLE group_enrolment_keys IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let old: Option<(String,)> =
            sqlx::query_as("SELECT key FROM group_enrolment_keys WHERE group_id = $1")
                .bind(group.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        if let Some((old,)) = &old
            && !replace
        {
            return Ok(old.clone());
        }
        let inserted =
            sqlx::query("INSERT INTO enrolment_keys (key, group_id, body) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(key)
                .bind(group.as_str())
                .bind(record)
                .execute(&mut *tx)
                .await
                .map_err(backend)?
                .rows_affected();
        if inserted == 0 {
            return Err(StoreError::Conflict("enrolment key".to_owned()));
        }
        if let Some((old,)) = &old {
            run_keyed(&mut *tx, "DELETE FROM enrolment_keys WHERE key = $1", old).await?;
        }
        sqlx::query(
            "INSERT INTO group_enrolment_keys (group_id, key) VALUES ($1, $2)
             ON CONFLICT (group_id) DO UPDATE SET key = EXCLUDED.key",
        )
        .bind(group.as_str())
        .bind(key)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(key.to_owned())
    }

    async fn create_invite(&self, invite: &InviteRecord) -> StoreResult<()> {
        let key_record = encode(&EnrolmentKeyRecord {
            group: invite.group.clone(),
            invite: Some(invite.id.clone()),
        })?;
        let conflict = || StoreError::Conflict(format!("invite {}", invite.id));
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO invites (id, group_id, body) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(invite.id.as_str())
        .bind(invite.group.as_str())
        .bind(encode(invite)?)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        if inserted == 0 {
            return Err(conflict());
        }
        let inserted = sqlx::query(
            "INSERT INTO enrolment_keys (key, group_id, body) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(invite.enrolment_key.as_str())
        .bind(invite.group.as_str())
        .bind(key_record)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        if inserted == 0 {
            return Err(conflict());
        }
        tx.commit().await.map_err(backend)
    }

    async fn invite(&self, id: &str) -> StoreResult<Option<InviteRecord>> {
        self.get("SELECT body FROM invites WHERE id = $1", id).await
    }

    async fn invites(&self, group: Option<&GroupId>) -> StoreResult<Vec<InviteRecord>> {
        Ok(super::invites_in_order(
            self.all("SELECT body FROM invites").await?,
            group,
        ))
    }

    async fn revoke_invite(
        &self,
        id: &str,
        by: &UserId,
        now: i64,
    ) -> StoreResult<Option<InviteRecord>> {
        self.modify(INVITE_ROW, id, |invite: &mut InviteRecord| {
            (invite.revoke(by, now), invite.clone())
        })
        .await
    }

    async fn create_share(&self, share: &ShareRecord) -> StoreResult<()> {
        let inserted = run_record(
            &self.pool,
            "INSERT INTO shares (id, body) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            share.id.as_str(),
            share,
        )
        .await?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!("share {}", share.id)));
        }
        Ok(())
    }

    async fn share(&self, id: &str) -> StoreResult<Option<ShareRecord>> {
        self.get("SELECT body FROM shares WHERE id = $1", id).await
    }

    async fn shares(&self) -> StoreResult<Vec<ShareRecord>> {
        Ok(super::shares_in_order(
            self.all("SELECT body FROM shares").await?,
        ))
    }

    async fn use_share(&self, id: &str, now_ms: i64) -> StoreResult<ShareUse> {
        let used = self
            .modify(SHARE_ROW, id, |share: &mut ShareRecord| {
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
        self.modify(SHARE_ROW, id, |share: &mut ShareRecord| {
            (share.revoke(by, now_ms), share.clone())
        })
        .await
    }

    async fn prune_shares(&self, before_ms: i64) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let rows: Vec<(Value, bool)> = sqlx::query_as(
            "SELECT s.body, NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = s.body->>'device')
             FROM shares s FOR UPDATE OF s",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let mut gone = 0;
        for (body, device_gone) in rows {
            let share: ShareRecord = decode(body)?;
            if share.expires_ms < before_ms || device_gone {
                run_keyed(
                    &mut *tx,
                    "DELETE FROM shares WHERE id = $1",
                    share.id.as_str(),
                )
                .await?;
                gone += 1;
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(gone)
    }

    async fn count_invite_enrolment(&self, id: &str, now: i64) -> StoreResult<bool> {
        let counted = self
            .modify(INVITE_ROW, id, |invite: &mut InviteRecord| {
                let counted = invite.count_enrolment(now);
                (counted, counted)
            })
            .await?;
        Ok(counted.unwrap_or(false))
    }

    async fn prune_invites(&self, before: i64) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let rows: Vec<(Value,)> = sqlx::query_as("SELECT body FROM invites FOR UPDATE")
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
        let mut count = 0;
        for (body,) in rows {
            let invite: InviteRecord = decode(body)?;
            if invite.expires >= before {
                continue;
            }
            // An expired invite's enrolment key goes with it.
            for (sql, key) in [
                ("DELETE FROM invites WHERE id = $1", invite.id.as_str()),
                (
                    "DELETE FROM enrolment_keys WHERE key = $1",
                    invite.enrolment_key.as_str(),
                ),
            ] {
                run_keyed(&mut *tx, sql, key).await?;
            }
            count += 1;
        }
        tx.commit().await.map_err(backend)?;
        Ok(count)
    }

    async fn block_device(&self, block: &BlockedDeviceRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO blocked_devices (device_id, group_id, body) VALUES ($1, $2, $3)
             ON CONFLICT (device_id) DO UPDATE SET group_id = EXCLUDED.group_id, body = EXCLUDED.body",
        )
        .bind(block.device.as_str())
        .bind(block.group.as_str())
        .bind(encode(block)?)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn blocked_device(&self, id: &DeviceId) -> StoreResult<Option<BlockedDeviceRecord>> {
        self.get(
            "SELECT body FROM blocked_devices WHERE device_id = $1",
            id.as_str(),
        )
        .await
    }

    async fn blocked_devices(
        &self,
        group: Option<&GroupId>,
    ) -> StoreResult<Vec<BlockedDeviceRecord>> {
        Ok(super::blocks_in_order(
            self.all("SELECT body FROM blocked_devices").await?,
            group,
        ))
    }

    async fn unblock_device(&self, id: &DeviceId) -> StoreResult<bool> {
        Ok(run_keyed(
            &self.pool,
            "DELETE FROM blocked_devices WHERE device_id = $1",
            id.as_str(),
        )
        .await?
            > 0)
    }
}
