//! Which devices have a live, authenticated agent connection, and a handle to each.
//!
//! One device, one connection: registering a device that is already connected hands the entry to
//! the newcomer and cancels the older connection (MeshCentral closes the duplicate the same way).
//! Every registration gets a generation number, so the older connection's clean-up cannot remove
//! the newer entry. The server can also tell a connection to go (its device or group was deleted).
//!
//! In a cluster the same holds across servers: the registry tells the [`Cluster`] what it holds,
//! and asks it about devices held elsewhere (online, messages for them, disconnecting them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tether_common::ids::{DeviceId, GroupId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;

/// How many outgoing messages may wait for one agent before senders are told it is congested.
pub(super) const OUTBOX_CAPACITY: usize = 64;

/// A message for one agent's socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Text(String),
    Binary(Vec<u8>),
}

struct Entry {
    generation: u64,
    group: GroupId,
    outbox: mpsc::Sender<Outgoing>,
    replaced: CancellationToken,
    removed: CancellationToken,
}

/// What a connection keeps after registering.
pub struct Registration {
    pub generation: u64,
    /// Cancelled when a newer connection of the same device takes over.
    pub replaced: CancellationToken,
    /// Cancelled when the server wants the connection gone (its device or group was deleted).
    pub removed: CancellationToken,
    /// Messages other parts of the server want sent to this agent.
    pub outbox: mpsc::Receiver<Outgoing>,
    /// Whether an older connection of the same device was still registered (and is now told to go).
    pub replaced_older: bool,
}

#[derive(Default)]
pub struct OnlineAgents {
    connected: Mutex<HashMap<DeviceId, Entry>>,
    next_generation: AtomicU64,
    pub(super) keys: super::keys::KeysCell,
    /// Agents held open (proved their key, cannot be admitted), in total and per source.
    pub(super) held: crate::serve::caps::ConnectionCounts,
    /// Recent admissions per device, to refuse a reconnect loop.
    pub(super) admissions: super::admission_rate::AdmissionRate,
    /// The other servers' agents (not linked on a server of its own).
    cluster: Arc<Cluster>,
}

impl OnlineAgents {
    pub fn new(cluster: Arc<Cluster>) -> OnlineAgents {
        OnlineAgents {
            cluster,
            ..OnlineAgents::default()
        }
    }

    /// Whether the device's agent is connected here or to another server of the cluster.
    pub fn is_online(&self, device: &DeviceId) -> bool {
        self.is_local(device) || self.cluster.held_elsewhere(device)
    }

    /// Whether the device's agent is connected to this server.
    pub fn is_local(&self, device: &DeviceId) -> bool {
        self.lock().contains_key(device)
    }

    /// Agents connected to this server.
    pub fn online_count(&self) -> usize {
        self.lock().len()
    }

    /// The group a connected device was admitted to.
    pub fn group_of(&self, device: &DeviceId) -> Option<GroupId> {
        self.lock().get(device).map(|e| e.group.clone())
    }

    /// Queues a message for a connected agent, here or on the server holding it; `false` if it
    /// is offline or its outbox (or the cluster link) is full.
    pub fn send(&self, device: &DeviceId, message: Outgoing) -> bool {
        if self.is_local(device) {
            return self.send_local(device, message);
        }
        self.cluster.send_to_agent(device, message)
    }

    /// [`OnlineAgents::send`] to an agent connected to this server only.
    pub fn send_local(&self, device: &DeviceId, message: Outgoing) -> bool {
        let outbox = match self.lock().get(device) {
            Some(entry) => entry.outbox.clone(),
            None => return false,
        };
        outbox.try_send(message).is_ok()
    }

    pub fn register(&self, device: DeviceId, group: GroupId) -> Registration {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed) + 1;
        let (outbox, receiver) = mpsc::channel(OUTBOX_CAPACITY);
        let replaced = CancellationToken::new();
        let removed = CancellationToken::new();
        let entry = Entry {
            generation,
            group,
            outbox,
            replaced: replaced.clone(),
            removed: removed.clone(),
        };
        let group = entry.group.clone();
        let older = self.lock().insert(device.clone(), entry);
        if let Some(older) = &older {
            older.replaced.cancel();
        }
        self.cluster.claim(&device, &group);
        Registration {
            generation,
            replaced,
            removed,
            outbox: receiver,
            replaced_older: older.is_some(),
        }
    }

    /// Tells the device's connection to close, wherever it is; `false` if it is not connected.
    /// The connection unregisters itself as it ends, so consoles hear it go offline as usual.
    pub fn disconnect(&self, device: &DeviceId) -> bool {
        let elsewhere = self.cluster.held_elsewhere(device);
        if elsewhere {
            self.cluster.disconnect(device);
        }
        self.disconnect_local(device) || elsewhere
    }

    /// [`OnlineAgents::disconnect`] on this server only.
    pub fn disconnect_local(&self, device: &DeviceId) -> bool {
        match self.lock().get(device) {
            Some(entry) => {
                entry.removed.cancel();
                true
            }
            None => false,
        }
    }

    /// Tells every connection admitted to `group` to close, on every server; how many there were.
    pub fn disconnect_group(&self, group: &GroupId) -> usize {
        let elsewhere = self.cluster.remote_in_group(group);
        if self.cluster.is_linked() {
            self.cluster.disconnect_group(group);
        }
        self.disconnect_group_local(group) + elsewhere
    }

    /// [`OnlineAgents::disconnect_group`] on this server only.
    pub fn disconnect_group_local(&self, group: &GroupId) -> usize {
        let mut told = 0;
        for entry in self.lock().values().filter(|entry| entry.group == *group) {
            entry.removed.cancel();
            told += 1;
        }
        told
    }

    /// Another server took the device's agent over: the connection here is told it was replaced.
    pub(crate) fn replace_local(&self, device: &DeviceId) {
        if let Some(entry) = self.lock().get(device) {
            entry.replaced.cancel();
        }
    }

    /// Removes the device if `generation` still owns it. `true` means the device is now offline
    /// (no newer connection here, nor on another server).
    pub fn unregister(&self, device: &DeviceId, generation: u64) -> bool {
        let removed = {
            let mut connected = self.lock();
            match connected.get(device) {
                Some(entry) if entry.generation == generation => {
                    connected.remove(device);
                    true
                }
                _ => false,
            }
        };
        removed && self.cluster.release(device)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Entry>> {
        // A panic while holding this lock cannot leave the map half-updated (single inserts and
        // removes), so a poisoned lock is still safe to use.
        self.connected
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_connection_replaces_the_first() {
        let agents = OnlineAgents::default();
        let device = DeviceId::from("d");
        let first = agents.register(device.clone(), GroupId::from("g"));
        assert!(!first.replaced_older);
        let second = agents.register(device.clone(), GroupId::from("g"));
        assert!(second.replaced_older);
        assert!(
            first.replaced.is_cancelled(),
            "the older connection is told to go"
        );
        assert!(!second.replaced.is_cancelled());
        assert!(
            !agents.unregister(&device, first.generation),
            "the old clean-up leaves the new entry"
        );
        assert!(agents.is_online(&device));
        assert!(agents.unregister(&device, second.generation));
        assert!(!agents.is_online(&device));
    }

    #[test]
    fn messages_reach_the_current_connection() {
        let agents = OnlineAgents::default();
        let device = DeviceId::from("d");
        assert!(!agents.send(&device, Outgoing::Text("x".into())), "offline");
        let mut registration = agents.register(device.clone(), GroupId::from("g"));
        assert!(agents.send(&device, Outgoing::Text("hello".into())));
        assert_eq!(
            registration.outbox.try_recv().unwrap(),
            Outgoing::Text("hello".into())
        );
        assert_eq!(agents.group_of(&device), Some(GroupId::from("g")));
    }

    #[test]
    fn disconnecting_a_device_or_group_tells_exactly_its_connections() {
        let agents = OnlineAgents::default();
        let (g, other) = (GroupId::from("g"), GroupId::from("other"));
        let a = agents.register(DeviceId::from("a"), g.clone());
        let b = agents.register(DeviceId::from("b"), g.clone());
        let c = agents.register(DeviceId::from("c"), other.clone());
        assert!(!agents.disconnect(&DeviceId::from("nobody")));
        assert!(agents.disconnect(&DeviceId::from("a")));
        assert!(a.removed.is_cancelled());
        assert!(!a.replaced.is_cancelled(), "not a replacement");
        assert!(!b.removed.is_cancelled());
        assert_eq!(agents.disconnect_group(&g), 2);
        assert!(b.removed.is_cancelled());
        assert!(!c.removed.is_cancelled());
        assert!(
            agents.is_online(&DeviceId::from("a")),
            "the connection itself unregisters as it ends"
        );
    }
}
