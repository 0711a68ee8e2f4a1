//! Reading every table into a [`Snapshot`] and writing one back (`Store::snapshot`/`restore`).

use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::{Postgres, Transaction};
use tether_common::ids::GroupId;

use super::{SESSION_UPSERT, backend, decode, encode, run_record};
use crate::store::StoreResult;
use crate::store::snapshot::Snapshot;

type Tx = Transaction<'static, Postgres>;

/// Reads in one repeatable-read transaction: every table as of the same instant.
pub(super) async fn snapshot(mut tx: Tx) -> StoreResult<Snapshot> {
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    let snapshot = Snapshot {
        users: bodies(&mut tx, "SELECT body FROM users ORDER BY id").await?,
        groups: bodies(&mut tx, "SELECT body FROM device_groups ORDER BY id").await?,
        devices: bodies(&mut tx, "SELECT body FROM devices ORDER BY id").await?,
        events: bodies(&mut tx, "SELECT body FROM events ORDER BY id").await?,
        settings: texts(&mut tx, "SELECT key, value FROM settings ORDER BY key").await?,
        sessions: keyed(
            &mut tx,
            "SELECT token_hash, body FROM login_sessions ORDER BY token_hash",
        )
        .await?,
        enrolment_keys: keyed(&mut tx, "SELECT key, body FROM enrolment_keys ORDER BY key").await?,
        group_keys: texts(
            &mut tx,
            "SELECT group_id, key FROM group_enrolment_keys ORDER BY group_id",
        )
        .await?
        .into_iter()
        .map(|(group, key)| (GroupId::from(group.as_str()), key))
        .collect(),
        invites: bodies(&mut tx, "SELECT body FROM invites ORDER BY id").await?,
        shares: bodies(&mut tx, "SELECT body FROM shares ORDER BY id").await?,
        blocked_devices: bodies(
            &mut tx,
            "SELECT body FROM blocked_devices ORDER BY device_id",
        )
        .await?,
    };
    tx.commit().await.map_err(backend)?;
    Ok(snapshot)
}

pub(super) async fn restore(mut tx: Tx, snapshot: &Snapshot) -> StoreResult<()> {
    for user in &snapshot.users {
        let sql = "INSERT INTO users (id, body) VALUES ($1, $2)
                   ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body";
        run_record(&mut *tx, sql, user.id.as_str(), user).await?;
    }
    for group in &snapshot.groups {
        let sql = "INSERT INTO device_groups (id, body) VALUES ($1, $2)
                   ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body";
        run_record(&mut *tx, sql, group.id.as_str(), group).await?;
    }
    for device in &snapshot.devices {
        let sql = "INSERT INTO devices (id, group_id, body) VALUES ($1, $3, $2)
                   ON CONFLICT (id) DO UPDATE SET group_id = EXCLUDED.group_id, body = EXCLUDED.body";
        with_column(
            &mut tx,
            sql,
            device.id.as_str(),
            device,
            device.group.as_str(),
        )
        .await?;
    }
    for event in &snapshot.events {
        sqlx::query(
            "INSERT INTO events (id, time_ms, body) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET time_ms = EXCLUDED.time_ms, body = EXCLUDED.body",
        )
        .bind(i64::try_from(event.id).unwrap_or(i64::MAX))
        .bind(event.time)
        .bind(encode(event)?)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    // The next event id must stay above every copied one.
    sqlx::query(
        "SELECT setval('event_ids', (SELECT max(id) FROM events))
         WHERE (SELECT max(id) FROM events) > COALESCE(
             (SELECT last_value FROM event_ids WHERE is_called), 0)",
    )
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    for (key, value) in &snapshot.settings {
        let sql = "INSERT INTO settings (key, value) VALUES ($1, $2)
                   ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value";
        pair(&mut tx, sql, key, value).await?;
    }
    for (token_hash, session) in &snapshot.sessions {
        sqlx::query(SESSION_UPSERT)
            .bind(token_hash)
            .bind(session.user.as_str())
            .bind(session.expires)
            .bind(encode(session)?)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
    }
    for (key, record) in &snapshot.enrolment_keys {
        let sql = "INSERT INTO enrolment_keys (key, group_id, body) VALUES ($1, $3, $2)
                   ON CONFLICT (key) DO UPDATE SET group_id = EXCLUDED.group_id, body = EXCLUDED.body";
        with_column(&mut tx, sql, key, record, record.group.as_str()).await?;
    }
    for (group, key) in &snapshot.group_keys {
        let sql = "INSERT INTO group_enrolment_keys (group_id, key) VALUES ($1, $2)
                   ON CONFLICT (group_id) DO UPDATE SET key = EXCLUDED.key";
        pair(&mut tx, sql, group.as_str(), key).await?;
    }
    for invite in &snapshot.invites {
        let sql = "INSERT INTO invites (id, group_id, body) VALUES ($1, $3, $2)
                   ON CONFLICT (id) DO UPDATE SET group_id = EXCLUDED.group_id, body = EXCLUDED.body";
        with_column(&mut tx, sql, &invite.id, invite, invite.group.as_str()).await?;
    }
    for share in &snapshot.shares {
        let sql = "INSERT INTO shares (id, body) VALUES ($1, $2)
                   ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body";
        run_record(&mut *tx, sql, &share.id, share).await?;
    }
    for block in &snapshot.blocked_devices {
        let sql = "INSERT INTO blocked_devices (device_id, group_id, body) VALUES ($1, $3, $2)
                   ON CONFLICT (device_id) DO UPDATE SET group_id = EXCLUDED.group_id, body = EXCLUDED.body";
        with_column(
            &mut tx,
            sql,
            block.device.as_str(),
            block,
            block.group.as_str(),
        )
        .await?;
    }
    tx.commit().await.map_err(backend)
}

async fn bodies<T: DeserializeOwned>(tx: &mut Tx, sql: &'static str) -> StoreResult<Vec<T>> {
    let rows: Vec<(Value,)> = sqlx::query_as(sql)
        .fetch_all(&mut **tx)
        .await
        .map_err(backend)?;
    rows.into_iter().map(|(body,)| decode(body)).collect()
}

async fn keyed<T: DeserializeOwned>(
    tx: &mut Tx,
    sql: &'static str,
) -> StoreResult<Vec<(String, T)>> {
    let rows: Vec<(String, Value)> = sqlx::query_as(sql)
        .fetch_all(&mut **tx)
        .await
        .map_err(backend)?;
    rows.into_iter()
        .map(|(key, body)| Ok((key, decode(body)?)))
        .collect()
}

async fn texts(tx: &mut Tx, sql: &'static str) -> StoreResult<Vec<(String, String)>> {
    sqlx::query_as(sql)
        .fetch_all(&mut **tx)
        .await
        .map_err(backend)
}

async fn pair(tx: &mut Tx, sql: &'static str, first: &str, second: &str) -> StoreResult<()> {
    sqlx::query(sql)
        .bind(first)
        .bind(second)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

/// A key (`$1`), the record's JSON (`$2`) and one more text column (`$3`).
async fn with_column<T: serde::Serialize>(
    tx: &mut Tx,
    sql: &'static str,
    key: &str,
    record: &T,
    column: &str,
) -> StoreResult<()> {
    sqlx::query(sql)
        .bind(key)
        .bind(encode(record)?)
        .bind(column)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}
