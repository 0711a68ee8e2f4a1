//! Which server holds each connected agent, as this server has heard it: a pure state machine
//! (no IO, no clock: the caller passes `now`), fed with the messages servers exchange over NATS
//! (`wire.rs`) and asked which devices are online where.
//!
//! Rules:
//! - a device is held by the server whose claim is newest (its `since_ms`, then the server id
//!   as a tie-break, so every server picks the same holder whatever order claims arrive in);
//! - a server that has not been heard for `timeout` is gone, and so are its devices; the clock
//!   starts no earlier than our own link's connection, so a server cut off from NATS does not
//!   declare everyone else dead;
//! - every server keeps a digest of each server's holdings and each heartbeat carries the
//!   holder's own, so a lost message shows up as a mismatch, and the caller asks for a resync.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tether_common::ids::{DeviceId, GroupId, UserId};

use super::wire::{HeldDevice, ServerId};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Holding {
    server: ServerId,
    group: GroupId,
    since_ms: i64,
    /// The holder's sync epoch this claim was last confirmed in (`holdings`).
    epoch: u64,
}

#[derive(Debug, Default, Clone)]
struct Peer {
    last_heard: Option<Instant>,
    address: String,
    /// Number and XOR of device-id hashes of what we believe this server holds.
    count: u64,
    digest: u64,
    /// The epoch of the newest full list received from it.
    epoch: u64,
    /// Who has a console open on it, as its latest heartbeat said.
    listeners: Vec<UserId>,
}

/// A device that went offline because its server is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lost {
    pub device: DeviceId,
    pub group: GroupId,
    pub server: ServerId,
}

#[derive(Debug)]
pub(crate) struct Presence {
    me: ServerId,
    timeout: Duration,
    holders: HashMap<DeviceId, Holding>,
    peers: HashMap<ServerId, Peer>,
    connected_since: Option<Instant>,
}

impl Presence {
    pub(crate) fn new(me: ServerId, timeout: Duration) -> Presence {
        Presence {
            me,
            timeout,
            holders: HashMap::new(),
            peers: HashMap::new(),
            connected_since: None,
        }
    }

    pub(crate) fn me(&self) -> &ServerId {
        &self.me
    }

    /// Our link to NATS came up (or back): silence before now says nothing about the others.
    pub(crate) fn connected(&mut self, now: Instant) {
        self.connected_since = Some(now);
    }

    pub(crate) fn disconnected(&mut self) {
        self.connected_since = None;
    }

    /// The server holding `device`, if it is online anywhere.
    pub(crate) fn holder(&self, device: &DeviceId) -> Option<&ServerId> {
        self.holders.get(device).map(|h| &h.server)
    }

    /// Whether `device` is held by a server other than this one.
    pub(crate) fn held_elsewhere(&self, device: &DeviceId) -> bool {
        self.holder(device).is_some_and(|server| *server != self.me)
    }

    /// The address peers reach `server` at (its heartbeats say).
    pub(crate) fn address_of(&self, server: &ServerId) -> Option<&str> {
        self.peers
            .get(server)
            .map(|p| p.address.as_str())
            .filter(|a| !a.is_empty())
    }

    /// The servers heard from (this one included once it has claimed anything or heartbeated).
    #[cfg(test)]
    pub(crate) fn servers(&self) -> Vec<ServerId> {
        let mut servers: Vec<_> = self.peers.keys().cloned().collect();
        servers.sort();
        servers
    }

    /// How many devices `server` holds, as we believe.
    #[cfg(test)]
    pub(crate) fn count_of(&self, server: &ServerId) -> u64 {
        self.peers.get(server).map_or(0, |p| p.count)
    }

    /// (count, digest) of what we believe `server` holds: what its heartbeat should carry.
    pub(crate) fn digest_of(&self, server: &ServerId) -> (u64, u64) {
        self.peers
            .get(server)
            .map_or((0, 0), |p| (p.count, p.digest))
    }

    /// A server claims `device`. `true` when it is now the holder. A claim of a device this
    /// server holds, when it wins, means the local connection is stale (the caller closes it).
    pub(crate) fn online(
        &mut self,
        server: &ServerId,
        device: &DeviceId,
        group: &GroupId,
        since_ms: i64,
    ) -> bool {
        let epoch = self.peers.get(server).map_or(0, |p| p.epoch);
        let newer = |held: &Holding| (since_ms, server) >= (held.since_ms, &held.server);
        match self.holders.get(device) {
            Some(held) if !newer(held) => false,
            _ => {
                let claim = Holding {
                    server: server.clone(),
                    group: group.clone(),
                    since_ms,
                    epoch,
                };
                if let Some(old) = self.holders.insert(device.clone(), claim) {
                    self.forget_digest(&old.server, device);
                }
                self.add_digest(server, device);
                true
            }
        }
    }

    /// `server` lost `device`; nothing changes if another server holds it now. `true` when the
    /// device is offline everywhere as a result.
    pub(crate) fn offline(&mut self, server: &ServerId, device: &DeviceId) -> bool {
        match self.holders.get(device) {
            Some(held) if held.server == *server => {
                self.holders.remove(device);
                self.forget_digest(server, device);
                true
            }
            _ => false,
        }
    }

    /// A heartbeat from `server`. `true` when its digest differs from ours: ask it for its list.
    pub(crate) fn heartbeat(
        &mut self,
        server: &ServerId,
        address: &str,
        (count, digest): (u64, u64),
        listeners: Vec<UserId>,
        now: Instant,
    ) -> bool {
        let peer = self.peers.entry(server.clone()).or_default();
        peer.last_heard = Some(now);
        peer.address = address.to_owned();
        peer.listeners = listeners;
        *server != self.me && (peer.count, peer.digest) != (count, digest)
    }

    /// Part of `server`'s full list of holdings (a resync). The chunks of one list share an
    /// epoch; the last one drops whatever the list did not confirm.
    pub(crate) fn holdings(
        &mut self,
        server: &ServerId,
        epoch: u64,
        devices: &[HeldDevice],
        last: bool,
    ) -> Vec<Lost> {
        let peer = self.peers.entry(server.clone()).or_default();
        if epoch < peer.epoch {
            return Vec::new(); // an older list that arrived late
        }
        peer.epoch = epoch;
        for held in devices {
            if self.online(server, &held.device, &held.group, held.since_ms)
                && let Some(holding) = self.holders.get_mut(&held.device)
            {
                holding.epoch = epoch;
            }
        }
        if !last {
            return Vec::new();
        }
        let stale: Vec<_> = self
            .holders
            .iter()
            .filter(|(_, h)| h.server == *server && h.epoch < epoch)
            .map(|(device, _)| device.clone())
            .collect();
        stale
            .into_iter()
            .filter_map(|device| self.drop_holding(&device))
            .collect()
    }

    /// Who has a console open on the other servers.
    pub(crate) fn listeners_elsewhere(&self) -> std::collections::BTreeSet<UserId> {
        self.peers
            .iter()
            .filter(|(server, _)| **server != self.me)
            .flat_map(|(_, peer)| peer.listeners.iter().cloned())
            .collect()
    }

    /// Servers silent for longer than the timeout are gone, with their devices.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<Lost> {
        let Some(connected_since) = self.connected_since else {
            return Vec::new();
        };
        let gone: Vec<ServerId> = self
            .peers
            .iter()
            .filter(|(server, _)| **server != self.me)
            .filter(|(_, peer)| {
                let heard = peer
                    .last_heard
                    .map_or(connected_since, |t| t.max(connected_since));
                now.saturating_duration_since(heard) > self.timeout
            })
            .map(|(server, _)| server.clone())
            .collect();
        gone.iter().flat_map(|server| self.gone(server)).collect()
    }

    /// `server` stopped (it said so, or it timed out): its devices are offline.
    pub(crate) fn gone(&mut self, server: &ServerId) -> Vec<Lost> {
        self.peers.remove(server);
        let held: Vec<_> = self
            .holders
            .iter()
            .filter(|(_, h)| h.server == *server)
            .map(|(device, _)| device.clone())
            .collect();
        held.into_iter()
            .filter_map(|device| self.drop_holding(&device))
            .collect()
    }

    /// Our own holdings, for a resync answer.
    pub(crate) fn own(&self) -> Vec<HeldDevice> {
        self.holders
            .iter()
            .filter(|(_, h)| h.server == self.me)
            .map(|(device, h)| HeldDevice {
                device: device.clone(),
                group: h.group.clone(),
                since_ms: h.since_ms,
            })
            .collect()
    }

    /// The devices of `group` held by other servers.
    pub(crate) fn remote_in_group(&self, group: &GroupId) -> usize {
        self.holders
            .values()
            .filter(|h| h.group == *group && h.server != self.me)
            .count()
    }

    fn drop_holding(&mut self, device: &DeviceId) -> Option<Lost> {
        let held = self.holders.remove(device)?;
        self.forget_digest(&held.server, device);
        Some(Lost {
            device: device.clone(),
            group: held.group,
            server: held.server,
        })
    }

    fn add_digest(&mut self, server: &ServerId, device: &DeviceId) {
        let peer = self.peers.entry(server.clone()).or_default();
        peer.count += 1;
        peer.digest ^= device_hash(device);
    }

    fn forget_digest(&mut self, server: &ServerId, device: &DeviceId) {
        if let Some(peer) = self.peers.get_mut(server) {
            peer.count = peer.count.saturating_sub(1);
            peer.digest ^= device_hash(device);
        }
    }
}

/// A stable 64-bit hash of a device id (the same on every server and version).
fn device_hash(device: &DeviceId) -> u64 {
    let digest = Sha256::digest(device.as_str().as_bytes());
    u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(15);

    fn ids() -> (ServerId, ServerId, ServerId) {
        (
            ServerId::from("a"),
            ServerId::from("b"),
            ServerId::from("c"),
        )
    }

    fn held(device: &str, since_ms: i64) -> HeldDevice {
        HeldDevice {
            device: DeviceId::from(device),
            group: GroupId::from("g"),
            since_ms,
        }
    }

    #[test]
    fn the_newest_claim_holds_whatever_order_claims_arrive_in() {
        let (a, b, _) = ids();
        let d = DeviceId::from("d");
        let g = GroupId::from("g");
        let mut here = Presence::new(a.clone(), TIMEOUT);
        let mut there = Presence::new(b.clone(), TIMEOUT);
        assert!(here.online(&a, &d, &g, 100));
        assert!(here.online(&b, &d, &g, 200), "b reconnected later: it wins");
        assert!(there.online(&b, &d, &g, 200));
        assert!(!there.online(&a, &d, &g, 100), "a's older claim loses");
        assert_eq!(here.holder(&d), Some(&b));
        assert_eq!(there.holder(&d), Some(&b));
        assert!(here.held_elsewhere(&d));
        // a's stale connection closing does not take the device offline.
        assert!(!here.offline(&a, &d));
        assert_eq!(here.holder(&d), Some(&b));
        assert!(here.offline(&b, &d));
        assert_eq!(here.holder(&d), None);
    }

    #[test]
    fn a_silent_server_loses_its_devices_but_only_while_we_hear_anything() {
        let (a, b, c) = ids();
        let g = GroupId::from("g");
        let start = Instant::now();
        let mut presence = Presence::new(a.clone(), TIMEOUT);
        presence.connected(start);
        presence.heartbeat(&b, "https://b", (0, 0), Vec::new(), start);
        presence.heartbeat(&c, "https://c", (0, 0), Vec::new(), start);
        presence.online(&b, &DeviceId::from("d1"), &g, 1);
        presence.online(&c, &DeviceId::from("d2"), &g, 1);
        let later = start + TIMEOUT + Duration::from_secs(1);
        presence.heartbeat(&c, "https://c", (1, 0), Vec::new(), later);
        let lost = presence.expire(later);
        assert_eq!(
            lost,
            vec![Lost {
                device: DeviceId::from("d1"),
                group: g.clone(),
                server: b.clone()
            }]
        );
        assert_eq!(presence.servers(), vec![c.clone()]);
        assert_eq!(presence.address_of(&c), Some("https://c"));

        // Cut off from NATS: nobody is declared dead, and after reconnecting the clock restarts.
        presence.disconnected();
        let much_later = later + TIMEOUT * 10;
        assert!(presence.expire(much_later).is_empty());
        presence.connected(much_later);
        assert!(presence.expire(much_later + TIMEOUT / 2).is_empty());
        assert_eq!(
            presence.expire(much_later + TIMEOUT * 2).len(),
            1,
            "then c goes"
        );
    }

    #[test]
    fn a_digest_mismatch_asks_for_a_list_and_the_list_repairs_it() {
        let (a, b, _) = ids();
        let now = Instant::now();
        let mut theirs = Presence::new(b.clone(), TIMEOUT);
        for device in ["d1", "d2", "d3"] {
            theirs.online(&b, &DeviceId::from(device), &GroupId::from("g"), 5);
        }
        let (count, digest) = theirs.digest_of(&b);
        let mut ours = Presence::new(a.clone(), TIMEOUT);
        // We missed d3's claim and never heard d4 go (it was never theirs).
        ours.online(&b, &DeviceId::from("d1"), &GroupId::from("g"), 5);
        ours.online(&b, &DeviceId::from("d2"), &GroupId::from("g"), 5);
        ours.online(&b, &DeviceId::from("d4"), &GroupId::from("g"), 5);
        assert!(ours.heartbeat(&b, "https://b", (count, digest), Vec::new(), now));
        let list = theirs.own();
        let (first, rest) = list.split_at(1);
        assert!(ours.holdings(&b, 1, first, false).is_empty());
        let lost = ours.holdings(&b, 1, rest, true);
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].device, DeviceId::from("d4"));
        assert!(
            !ours.heartbeat(&b, "https://b", (count, digest), Vec::new(), now),
            "in step again"
        );
        assert_eq!(ours.count_of(&b), 3);
        // A late chunk of an older list changes nothing.
        assert!(ours.holdings(&b, 0, &[held("d9", 1)], true).is_empty());
        assert_eq!(ours.holder(&DeviceId::from("d9")), None);
    }

    #[test]
    fn a_server_that_says_it_stops_takes_its_devices_along() {
        let (a, b, _) = ids();
        let mut presence = Presence::new(a.clone(), TIMEOUT);
        presence.online(&b, &DeviceId::from("d1"), &GroupId::from("g"), 1);
        presence.online(&a, &DeviceId::from("d2"), &GroupId::from("g"), 1);
        assert_eq!(presence.remote_in_group(&GroupId::from("g")), 1);
        let lost = presence.gone(&b);
        assert_eq!(lost.len(), 1);
        assert_eq!(presence.own().len(), 1);
    }
}
