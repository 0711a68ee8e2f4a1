//! Reading every table into a [`Snapshot`] and writing one back (`Store::snapshot`/`restore`).

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tether_common::ids::GroupId;

use super::{
    BLOCKED_DEVICES, COUNTERS, DEVICES, ENROLMENT_KEYS, EVENTS, GROUP_KEYS, GROUPS, INVITES,
    LAST_EVENT_ID, SCHEMA_VERSION_KEY, SESSIONS, SETTINGS, SHARES, USERS, backend, decode, encode,
};
use crate::store::StoreResult;
use crate::store::snapshot::Snapshot;

type RecordTable = TableDefinition<'static, &'static str, &'static [u8]>;

pub(super) fn snapshot(txn: &ReadTransaction) -> StoreResult<Snapshot> {
    let mut events = Vec::new();
    for row in txn
        .open_table(EVENTS)
        .map_err(backend)?
        .iter()
        .map_err(backend)?
    {
        events.push(decode(row.map_err(backend)?.1.value())?);
    }
    let texts = |table: TableDefinition<'static, &'static str, &'static str>| {
        each_row(txn, table, |key, value: &str| {
            Ok((key.to_owned(), value.to_owned()))
        })
    };
    let settings = texts(SETTINGS)?
        .into_iter()
        .filter(|(key, _)| key != SCHEMA_VERSION_KEY)
        .collect();
    let group_keys = texts(GROUP_KEYS)?
        .into_iter()
        .map(|(group, key)| (GroupId::from(group.as_str()), key))
        .collect();
    Ok(Snapshot {
        users: values(txn, USERS)?,
        groups: values(txn, GROUPS)?,
        devices: values(txn, DEVICES)?,
        events,
        settings,
        sessions: rows(txn, SESSIONS)?,
        enrolment_keys: rows(txn, ENROLMENT_KEYS)?,
        group_keys,
        invites: values(txn, INVITES)?,
        shares: values(txn, SHARES)?,
        blocked_devices: values(txn, BLOCKED_DEVICES)?,
    })
}

pub(super) fn restore(txn: &WriteTransaction, snapshot: &Snapshot) -> StoreResult<()> {
    put_all(
        txn,
        USERS,
        snapshot.users.iter().map(|u| (u.id.as_str(), u)),
    )?;
    put_all(
        txn,
        GROUPS,
        snapshot.groups.iter().map(|g| (g.id.as_str(), g)),
    )?;
    put_all(
        txn,
        DEVICES,
        snapshot.devices.iter().map(|d| (d.id.as_str(), d)),
    )?;
    put_all(
        txn,
        SESSIONS,
        snapshot.sessions.iter().map(|(k, s)| (k.as_str(), s)),
    )?;
    put_all(
        txn,
        ENROLMENT_KEYS,
        snapshot.enrolment_keys.iter().map(|(k, e)| (k.as_str(), e)),
    )?;
    put_all(
        txn,
        INVITES,
        snapshot.invites.iter().map(|i| (i.id.as_str(), i)),
    )?;
    put_all(
        txn,
        SHARES,
        snapshot.shares.iter().map(|s| (s.id.as_str(), s)),
    )?;
    put_all(
        txn,
        BLOCKED_DEVICES,
        snapshot
            .blocked_devices
            .iter()
            .map(|b| (b.device.as_str(), b)),
    )?;
    let mut settings = txn.open_table(SETTINGS).map_err(backend)?;
    for (key, value) in &snapshot.settings {
        settings
            .insert(key.as_str(), value.as_str())
            .map_err(backend)?;
    }
    let mut group_keys = txn.open_table(GROUP_KEYS).map_err(backend)?;
    for (group, key) in &snapshot.group_keys {
        group_keys
            .insert(group.as_str(), key.as_str())
            .map_err(backend)?;
    }
    let mut events = txn.open_table(EVENTS).map_err(backend)?;
    for event in &snapshot.events {
        events
            .insert(event.id, encode(event)?.as_slice())
            .map_err(backend)?;
    }
    // The next event id must stay above every copied one (pruning never lowers it).
    let copied_last = snapshot.events.iter().map(|e| e.id).max().unwrap_or(0);
    let mut counters = txn.open_table(COUNTERS).map_err(backend)?;
    let issued = counters
        .get(LAST_EVENT_ID)
        .map_err(backend)?
        .map_or(0, |v| v.value());
    counters
        .insert(LAST_EVENT_ID, issued.max(copied_last))
        .map_err(backend)?;
    Ok(())
}

fn values<T: DeserializeOwned>(txn: &ReadTransaction, table: RecordTable) -> StoreResult<Vec<T>> {
    Ok(rows(txn, table)?
        .into_iter()
        .map(|(_, record)| record)
        .collect())
}

fn rows<T: DeserializeOwned>(
    txn: &ReadTransaction,
    table: RecordTable,
) -> StoreResult<Vec<(String, T)>> {
    each_row(txn, table, |key, value: &[u8]| {
        Ok((key.to_owned(), decode(value)?))
    })
}

/// Every row of a text-keyed table, through `take`.
fn each_row<V, T>(
    txn: &ReadTransaction,
    table: TableDefinition<'static, &'static str, V>,
    take: impl Fn(&str, V::SelfType<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>>
where
    V: redb::Value + 'static,
{
    let mut rows = Vec::new();
    for row in txn
        .open_table(table)
        .map_err(backend)?
        .iter()
        .map_err(backend)?
    {
        let (key, value) = row.map_err(backend)?;
        rows.push(take(key.value(), value.value())?);
    }
    Ok(rows)
}

fn put_all<'r, T: Serialize + 'r>(
    txn: &WriteTransaction,
    table: RecordTable,
    records: impl Iterator<Item = (&'r str, &'r T)>,
) -> StoreResult<()> {
    let mut table = txn.open_table(table).map_err(backend)?;
    for (key, record) in records {
        table
            .insert(key, encode(record)?.as_slice())
            .map_err(backend)?;
    }
    Ok(())
}
