//! A whole store's records at one instant, and the copy from one backend into another that
//! `tether-server migrate` runs (redb into PostgreSQL when one server becomes several).
//!
//! The copy writes every record with the key it had (event ids included), replacing what the
//! target holds under the same key, in one transaction; it then reads the target back and checks
//! that every source record is there, equal field for field. Re-running it is safe: a second run
//! finds the same records and rewrites them unchanged.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use tether_common::control::EventRecord;
use tether_common::ids::GroupId;

use super::{
    BlockedDeviceRecord, DeviceRecord, EnrolmentKeyRecord, GroupRecord, InviteRecord,
    SessionRecord, ShareRecord, Store, StoreError, UserRecord,
};

/// Every record a store holds. Settings leave out what belongs to a backend itself (redb's
/// schema version): the target keeps its own.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub users: Vec<UserRecord>,
    pub groups: Vec<GroupRecord>,
    pub devices: Vec<DeviceRecord>,
    pub events: Vec<EventRecord>,
    pub settings: Vec<(String, String)>,
    /// Keyed by the SHA-256 hex of the login cookie.
    pub sessions: Vec<(String, SessionRecord)>,
    pub enrolment_keys: Vec<(String, EnrolmentKeyRecord)>,
    /// Each group's current enrolment key.
    pub group_keys: Vec<(GroupId, String)>,
    pub invites: Vec<InviteRecord>,
    pub shares: Vec<ShareRecord>,
    pub blocked_devices: Vec<BlockedDeviceRecord>,
}

/// How many records of one table the source had and the target holds after the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    pub source: usize,
    pub target: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("reading the source: {0}")]
    Read(#[source] StoreError),
    #[error("writing the target: {0}")]
    Write(#[source] StoreError),
    #[error("reading the target back: {0}")]
    ReadBack(#[source] StoreError),
    #[error("{table} {key} is missing from the target after the copy")]
    Missing { table: &'static str, key: String },
    #[error("{table} {key} differs in the target after the copy")]
    Differs { table: &'static str, key: String },
    #[error("encoding {table} {key}: {reason}")]
    Encode {
        table: &'static str,
        key: String,
        reason: String,
    },
}

/// Copies everything in `from` into `to` and verifies it (see the module docs).
pub async fn copy(from: &dyn Store, to: &dyn Store) -> Result<Vec<TableCount>, CopyError> {
    let source = from.snapshot().await.map_err(CopyError::Read)?;
    to.restore(&source).await.map_err(CopyError::Write)?;
    let target = to.snapshot().await.map_err(CopyError::ReadBack)?;
    verify(&source, &target)
}

/// Checks that every record of `source` is in `target`, equal; the per-table counts.
pub fn verify(source: &Snapshot, target: &Snapshot) -> Result<Vec<TableCount>, CopyError> {
    let (source, target) = (source.keyed()?, target.keyed()?);
    source
        .into_iter()
        .zip(target)
        .map(|((table, wanted), (_, found))| {
            for (key, record) in &wanted {
                match found.get(key) {
                    None => {
                        return Err(CopyError::Missing {
                            table,
                            key: key.clone(),
                        });
                    }
                    // Compared as JSON values: PostgreSQL's JSONB does not keep key order.
                    Some(copied) if copied != record => {
                        return Err(CopyError::Differs {
                            table,
                            key: key.clone(),
                        });
                    }
                    Some(_) => {}
                }
            }
            Ok(TableCount {
                table,
                source: wanted.len(),
                target: found.len(),
            })
        })
        .collect()
}

type Keyed = BTreeMap<String, Value>;

impl Snapshot {
    /// Each table as its records' JSON by key, in a fixed order of tables.
    fn keyed(&self) -> Result<Vec<(&'static str, Keyed)>, CopyError> {
        Ok(vec![
            keyed("users", &self.users, |u| u.id.to_string())?,
            keyed("groups", &self.groups, |g| g.id.to_string())?,
            keyed("devices", &self.devices, |d| d.id.to_string())?,
            keyed("events", &self.events, |e| e.id.to_string())?,
            keyed("settings", &self.settings, |(k, _)| k.clone())?,
            keyed("sessions", &self.sessions, |(k, _)| k.clone())?,
            keyed("enrolment keys", &self.enrolment_keys, |(k, _)| k.clone())?,
            keyed("group enrolment keys", &self.group_keys, |(g, _)| {
                g.to_string()
            })?,
            keyed("invites", &self.invites, |i| i.id.clone())?,
            keyed("shares", &self.shares, |s| s.id.clone())?,
            keyed("blocked devices", &self.blocked_devices, |b| {
                b.device.to_string()
            })?,
        ])
    }
}

fn keyed<T: Serialize>(
    table: &'static str,
    records: &[T],
    key_of: impl Fn(&T) -> String,
) -> Result<(&'static str, Keyed), CopyError> {
    let mut keyed = Keyed::new();
    for record in records {
        let key = key_of(record);
        let value = serde_json::to_value(record).map_err(|e| CopyError::Encode {
            table,
            key: key.clone(),
            reason: e.to_string(),
        })?;
        keyed.insert(key, value);
    }
    Ok((table, keyed))
}
