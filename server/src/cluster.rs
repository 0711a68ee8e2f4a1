//! Several servers as one (`--nats`): they share PostgreSQL for state and talk over NATS for what
//! is live: which server holds each agent, the events consoles see, logouts, and messages for
//! agents connected elsewhere. Sessions whose two ends reach different servers are joined by
//! the server that minted them (`relay/forward.rs`).
//!
//! - `wire.rs`: the messages and subjects;
//! - `presence.rs`: who holds which agent, a pure state machine;
//! - `link.rs`: the NATS connection and the task that feeds `presence.rs` and the event bus.
//!
//! Nothing here is durable, on purpose: records live in PostgreSQL, and what NATS carries is
//! rebuilt from the servers themselves (heartbeats with digests, full lists on request), so a
//! NATS restart loses no state, only the live events sent while it was down.
//!
//! A server without `--nats` has a [`Cluster`] that is not linked: every call is a no-op and
//! nothing is kept.

mod link;
pub(crate) mod presence;
pub(crate) mod wire;

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tether_common::ids::{DeviceId, GroupId};
use tokio::sync::mpsc;

pub(crate) use link::start;
use presence::Presence;
use wire::{AgentBody, AgentMessage, PresenceMessage, ServerId};

use crate::agents::Outgoing;

/// How long a server may stay silent before the others take it for dead.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// What the rest of the server asks the link to publish.
#[derive(Debug)]
pub(crate) enum Outbound {
    Presence(PresenceMessage),
    Agent(ServerId, AgentMessage),
}

pub struct Cluster {
    presence: Mutex<Presence>,
    /// Set once the link to NATS is up; unset, this server is on its own.
    outbox: OnceLock<mpsc::Sender<Outbound>>,
}

impl Default for Cluster {
    fn default() -> Cluster {
        Cluster::new(DEFAULT_TIMEOUT)
    }
}

impl Cluster {
    pub(crate) fn new(timeout: Duration) -> Cluster {
        Cluster {
            presence: Mutex::new(Presence::new(ServerId::random(), timeout)),
            outbox: OnceLock::new(),
        }
    }

    /// This server's id in the cluster.
    pub(crate) fn me(&self) -> ServerId {
        self.lock().me().clone()
    }

    pub(crate) fn is_linked(&self) -> bool {
        self.outbox.get().is_some()
    }

    /// Whether another server holds `device`'s agent.
    pub(crate) fn held_elsewhere(&self, device: &DeviceId) -> bool {
        self.is_linked() && self.lock().held_elsewhere(device)
    }

    /// How many of `group`'s agents other servers hold.
    pub(crate) fn remote_in_group(&self, group: &GroupId) -> usize {
        if !self.is_linked() {
            return 0;
        }
        self.lock().remote_in_group(group)
    }

    /// The address peers reach `server` at.
    pub(crate) fn address_of(&self, server: &ServerId) -> Option<String> {
        self.lock().address_of(server).map(str::to_owned)
    }

    /// This server now holds `device`'s agent: the others learn it (and close any older
    /// connection of the device they still hold).
    pub(crate) fn claim(&self, device: &DeviceId, group: &GroupId) {
        if !self.is_linked() {
            return;
        }
        let since_ms = crate::clock::now_millis();
        let server = {
            let mut presence = self.lock();
            let me = presence.me().clone();
            presence.online(&me, device, group, since_ms);
            me
        };
        self.publish(Outbound::Presence(PresenceMessage::Online {
            server,
            device: device.clone(),
            group: group.clone(),
            since_ms,
        }));
    }

    /// This server's connection of `device` ended. `true` when the device is offline
    /// everywhere (no other server holds it).
    pub(crate) fn release(&self, device: &DeviceId) -> bool {
        if !self.is_linked() {
            return true;
        }
        let mut presence = self.lock();
        let me = presence.me().clone();
        if presence.offline(&me, device) {
            drop(presence);
            self.publish(Outbound::Presence(PresenceMessage::Offline {
                server: me,
                device: device.clone(),
            }));
            return true;
        }
        !presence.held_elsewhere(device)
    }

    /// Hands `message` to the server holding `device`; `false` if none does or the link is
    /// congested.
    pub(crate) fn send_to_agent(&self, device: &DeviceId, message: Outgoing) -> bool {
        let Some(holder) = self.lock().holder(device).cloned() else {
            return false;
        };
        let body = match message {
            Outgoing::Text(text) => AgentBody::Text(text),
            Outgoing::Binary(bytes) => AgentBody::Binary(bytes),
        };
        let message = AgentMessage {
            device: device.clone(),
            body,
        };
        self.publish(Outbound::Agent(holder, message))
    }

    /// Every server closes `device`'s agent connection, if it holds one.
    pub(crate) fn disconnect(&self, device: &DeviceId) {
        self.publish(Outbound::Presence(PresenceMessage::Disconnect {
            device: device.clone(),
        }));
    }

    /// Every server closes the agent connections of `group`.
    pub(crate) fn disconnect_group(&self, group: &GroupId) {
        self.publish(Outbound::Presence(PresenceMessage::DisconnectGroup {
            group: group.clone(),
        }));
    }

    fn publish(&self, message: Outbound) -> bool {
        let Some(outbox) = self.outbox.get() else {
            return false;
        };
        match outbox.try_send(message) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("cluster: the link to NATS is congested; dropped: {e}");
                false
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Presence> {
        // Each update leaves the maps whole: a panic elsewhere cannot tear them.
        self.presence
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
