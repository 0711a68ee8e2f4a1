//! Which Intel AMT machines have a CIRA tunnel up, and what consoles hear of it: a machine's
//! first login makes its device record (named after its UUID) unless its agent's device is already
//! there (`linking.rs`), every login marks it online in its group, and the end of the tunnel marks
//! it offline unless its agent is still connected. A newer connection from the same machine
//! replaces an older one.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;
use tether_common::apf::AmtUuid;
use tether_common::control::Event;
use tether_common::ids::{DeviceId, GroupId};
use tether_common::rights::Rights;
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::linking;
use crate::agents::OnlineAgents;
use crate::clock::{now_millis, now_secs};
use crate::control::views::device_info;
use crate::events::{Audience, EventBus};
use crate::store::{DeviceRecord, GroupRecord, NewEvent, Store};

/// The connected AMT machines.
#[derive(Default)]
pub(crate) struct AmtOnline {
    entries: Mutex<HashMap<DeviceId, Entry>>,
}

struct Entry {
    generation: u64,
    /// Cancelled when a newer connection from the machine takes over.
    replaced: CancellationToken,
    /// The connection's driver, for channels to the machine's ports.
    commands: mpsc::Sender<Command>,
}

/// What the rest of the server asks of a connection.
pub(super) enum Command {
    /// A channel to one of the ports AMT forwards, as a byte stream (`bridge.rs`).
    Open {
        port: u32,
        reply: oneshot::Sender<Result<DuplexStream, OpenError>>,
    },
}

/// Why no channel could be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("the Intel AMT machine is not connected")]
    Offline,
    #[error("the machine does not forward port {0}")]
    NotForwarded(u32),
    #[error("the machine refused the channel (reason {0})")]
    Refused(u32),
    #[error("the connection to the machine ended")]
    Gone,
}

/// One connection's place in [`AmtOnline`].
pub(super) struct Presence {
    pub device: DeviceId,
    pub group: GroupId,
    pub generation: u64,
    pub replaced: CancellationToken,
    pub commands: mpsc::Receiver<Command>,
}

impl AmtOnline {
    pub(crate) fn is_online(&self, device: &DeviceId) -> bool {
        self.lock().contains_key(device)
    }

    /// Ends the machine's connection so that it logs in again (AMT reconnects by itself), after
    /// its device record changed under it (`linking.rs`).
    pub(crate) fn ask_to_reconnect(&self, device: &DeviceId) {
        if let Some(entry) = self.lock().get(device) {
            entry.replaced.cancel();
        }
    }

    /// A byte stream to `port` on the machine, through its tunnel.
    pub(crate) async fn open(
        &self,
        device: &DeviceId,
        port: u32,
    ) -> Result<DuplexStream, OpenError> {
        let commands = self
            .lock()
            .get(device)
            .map(|entry| entry.commands.clone())
            .ok_or(OpenError::Offline)?;
        let (reply, answer) = oneshot::channel();
        commands
            .send(Command::Open { port, reply })
            .await
            .map_err(|_| OpenError::Gone)?;
        answer.await.map_err(|_| OpenError::Gone)?
    }

    fn register(&self, device: &DeviceId) -> (u64, CancellationToken, mpsc::Receiver<Command>) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let generation = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let replaced = CancellationToken::new();
        let (commands, receiver) = mpsc::channel(8);
        let old = self.lock().insert(
            device.clone(),
            Entry {
                generation,
                replaced: replaced.clone(),
                commands,
            },
        );
        if let Some(old) = old {
            old.replaced.cancel();
        }
        (generation, replaced, receiver)
    }

    /// Removes the entry if it is still this connection's; whether it was.
    fn unregister(&self, device: &DeviceId, generation: u64) -> bool {
        let mut entries = self.lock();
        if entries
            .get(device)
            .is_some_and(|e| e.generation == generation)
        {
            entries.remove(device);
            true
        } else {
            false
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Entry>> {
        // A poisoned lock only means a panic elsewhere; the map itself is always whole.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A machine logged in to `group`: the device it shows as (its agent's, or its own record, made
/// on its first login and moved if it logs in to another group now), the online mark, and the
/// consoles' events.
pub(super) async fn arrive(
    store: &dyn Store,
    events: &EventBus,
    online: &AmtOnline,
    agents: &OnlineAgents,
    uuid: AmtUuid,
    group: &GroupRecord,
) -> Result<Presence, crate::store::StoreError> {
    let own_id = DeviceId::from_amt_uuid(&uuid.0);
    let now = now_secs();
    let existing = store.device(&own_id).await?;
    let (record, is_new) = match linking::agent_device_for(store, &uuid, &group.id).await? {
        Some(agent_device) => {
            // Its own record from before its agent said which machine it is goes into the agent's.
            let folded = match existing {
                Some(own) => linking::fold(store, events, own, &agent_device.id).await?,
                None => None,
            };
            let text = uuid.to_string();
            let mark = move |device: &mut DeviceRecord| {
                let changed = device.amt_uuid.as_deref() != Some(text.as_str());
                device.amt_uuid = Some(text);
                changed
            };
            let record = match store
                .update_device(&agent_device.id, Box::new(mark))
                .await?
            {
                Some(update) => update.device,
                None => folded.unwrap_or(agent_device),
            };
            (record, false)
        }
        None => {
            let is_new = existing.is_none();
            let mut record = existing.unwrap_or_else(|| DeviceRecord {
                id: own_id.clone(),
                group: group.id.clone(),
                name: format!("Intel AMT {uuid}"),
                hostname: String::new(),
                os: "Intel AMT".to_owned(),
                agent_info: Value::Null,
                last_seen: now,
                created: now,
                amt_admin: None,
                amt_uuid: None,
            });
            record.group = group.id.clone();
            record.last_seen = now;
            record.amt_uuid = Some(uuid.to_string());
            store.put_device(&record).await?;
            (record, is_new)
        }
    };
    let device = record.id.clone();
    let viewers = Audience::group(group, Rights::VIEW);
    if is_new {
        events.publish(
            Event::DeviceAdded {
                device: device_info(&record, true, now),
            },
            viewers.clone(),
        );
        let entry = NewEvent {
            time: now_millis(),
            kind: "device_added".into(),
            user: None,
            group: Some(group.id.clone()),
            device: Some(device.clone()),
            message: format!(
                "Intel AMT machine {uuid} joined group {} over CIRA",
                group.name
            ),
        };
        match store.append_event(entry).await {
            Ok(record) => events.publish(
                Event::Logged { record },
                Audience::group(group, Rights::EVENTS),
            ),
            Err(e) => tracing::error!("mps: could not write the audit record of a new device: {e}"),
        }
    }
    let (generation, replaced, commands) = online.register(&device);
    if !is_new {
        events.publish(
            Event::DeviceChanged {
                device: device_info(&record, true, now),
            },
            viewers.clone(),
        );
    }
    // A device whose agent is connected was online already.
    if !agents.is_online(&device) {
        events.publish(
            Event::DeviceOnline {
                device: device.clone(),
                group: group.id.clone(),
            },
            viewers,
        );
    }
    Ok(Presence {
        device,
        group: group.id.clone(),
        generation,
        replaced,
        commands,
    })
}

/// The tunnel ended: offline, unless a newer connection from the machine took over or its agent
/// is still connected.
pub(super) async fn leave(
    store: &dyn Store,
    events: &EventBus,
    online: &AmtOnline,
    agents: &OnlineAgents,
    presence: &Presence,
) {
    if online.unregister(&presence.device, presence.generation)
        && !agents.is_online(&presence.device)
    {
        crate::agents::records::announce_offline(store, events, &presence.device, &presence.group)
            .await;
    }
}
