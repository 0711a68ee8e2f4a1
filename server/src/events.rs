//! The in-process event bus: every change that a console may want to see is published here once,
//! with the audience it is meant for, and each `/control` connection forwards what its user may see.
//!
//! The audience is fixed when the event is published (as MeshCentral's `DispatchEvent(ids, …)` does),
//! so "group deleted" still reaches the group's former members after the record is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use tether_common::control::Event;
use tether_common::ids::UserId;
use tether_common::rights::Rights;
use tokio::sync::{broadcast, mpsc};

use crate::store::GroupRecord;

/// How many events a slow console may fall behind before it is disconnected (it reconnects and
/// re-reads the state rather than silently missing changes).
pub(crate) const BUS_CAPACITY: usize = 4096;
/// Internal signals are rare (one per logout); a listener that misses some re-checks everything.
const SIGNAL_CAPACITY: usize = 256;

/// Who may see one event. Site administrators see everything, except what is meant for one
/// user alone (an invitation carrying that user's own session link).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Audience {
    pub users: BTreeSet<UserId>,
    /// Every logged-in user (e.g. server-wide announcements).
    pub everyone: bool,
    /// Only `users`: site administrators do not see it either.
    pub exclusive: bool,
}

impl Audience {
    pub fn admins_only() -> Audience {
        Audience::default()
    }

    pub fn everyone() -> Audience {
        Audience {
            users: BTreeSet::new(),
            everyone: true,
            exclusive: false,
        }
    }

    pub fn user(user: &UserId) -> Audience {
        Audience {
            users: BTreeSet::from([user.clone()]),
            everyone: false,
            exclusive: false,
        }
    }

    /// `user` and nobody else, site administrators included.
    pub fn only(user: &UserId) -> Audience {
        Audience {
            exclusive: true,
            ..Audience::user(user)
        }
    }

    /// The members of `group` holding all of `required` (plus site admins).
    pub fn group(group: &GroupRecord, required: Rights) -> Audience {
        let users = group
            .members
            .iter()
            .filter(|(_, rights)| rights.normalized().contains(required))
            .map(|(user, _)| user.clone())
            .collect();
        Audience {
            users,
            everyone: false,
            exclusive: false,
        }
    }

    pub fn with_user(mut self, user: &UserId) -> Audience {
        self.users.insert(user.clone());
        self
    }

    pub fn includes(&self, user: &UserId, site_admin: bool) -> bool {
        if self.exclusive {
            return self.users.contains(user);
        }
        site_admin || self.everyone || self.users.contains(user)
    }
}

/// A signal between parts of the server that consoles never see (so it is not an [`Event`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Signal {
    /// A login session was ended (logout): the `/control` and relay sockets opened with it close.
    /// Carries the SHA-256 of the session token, the key the store knows it by, never the token.
    LoginSessionEnded { token_hash: String },
}

#[derive(Debug)]
pub struct Published {
    pub event: Event,
    pub audience: Audience,
}

/// Cheap to clone; all clones publish to the same subscribers.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Published>>,
    signals: broadcast::Sender<Signal>,
    /// Open `/control` connections per user: who is at a console now (for the messenger).
    listening: Arc<Mutex<BTreeMap<UserId, usize>>>,
    /// Who is at a console on another server of the cluster (their heartbeats say).
    elsewhere: Arc<Mutex<BTreeSet<UserId>>>,
    /// Where events and signals go to reach the other servers of a cluster (`cluster/link.rs`);
    /// unset on a server of its own.
    forward: Arc<OnceLock<mpsc::Sender<Forward>>>,
}

/// What the bus hands the cluster link to publish to the other servers.
#[derive(Debug)]
pub(crate) enum Forward {
    Event(Arc<Published>),
    Signal(Signal),
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            sender: broadcast::channel(BUS_CAPACITY).0,
            signals: broadcast::channel(SIGNAL_CAPACITY).0,
            listening: Arc::default(),
            elsewhere: Arc::default(),
            forward: Arc::default(),
        }
    }
}

/// Counts one console of its user while it lives (`EventBus::listen`).
pub struct Listening {
    user: UserId,
    listening: Arc<Mutex<BTreeMap<UserId, usize>>>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let mut listening = lock(&self.listening);
        if let Some(count) = listening.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                listening.remove(&self.user);
            }
        }
    }
}

fn lock(
    listening: &Mutex<BTreeMap<UserId, usize>>,
) -> std::sync::MutexGuard<'_, BTreeMap<UserId, usize>> {
    // One counter changes per update: a panic elsewhere cannot leave the map torn.
    listening
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock_set(set: &Mutex<BTreeSet<UserId>>) -> std::sync::MutexGuard<'_, BTreeSet<UserId>> {
    // Replaced whole on every update: a panic elsewhere cannot leave it torn.
    set.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl EventBus {
    /// Delivers to this server's consoles and, in a cluster, to the other servers'.
    pub fn publish(&self, event: Event, audience: Audience) {
        let published = Arc::new(Published { event, audience });
        self.forward(|| Forward::Event(published.clone()));
        // No subscriber is not an error: nobody is watching right now.
        let _ = self.sender.send(published);
    }

    /// Delivers to this server's consoles only: an event another server published, or one
    /// every server derives on its own (a gone server's devices going offline).
    pub(crate) fn publish_local(&self, event: Event, audience: Audience) {
        let _ = self.sender.send(Arc::new(Published { event, audience }));
    }

    /// From now on, events and signals are also handed to `forward` (once, at start).
    pub(crate) fn forward_to(&self, forward: mpsc::Sender<Forward>) {
        let _ = self.forward.set(forward);
    }

    fn forward(&self, message: impl FnOnce() -> Forward) {
        let Some(forward) = self.forward.get() else {
            return;
        };
        if let Err(e) = forward.try_send(message()) {
            // Consoles of the other servers miss a live event; they re-read state on reconnect.
            tracing::warn!("cluster: an event could not be forwarded to the other servers: {e}");
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.sender.subscribe()
    }

    /// `user` has a console open for as long as the guard lives.
    pub fn listen(&self, user: &UserId) -> Listening {
        *lock(&self.listening).entry(user.clone()).or_default() += 1;
        Listening {
            user: user.clone(),
            listening: self.listening.clone(),
        }
    }

    /// Whether `user` has a console open now, here or on another server.
    pub fn is_listening(&self, user: &UserId) -> bool {
        lock(&self.listening).contains_key(user) || lock_set(&self.elsewhere).contains(user)
    }

    /// The users with a console open now, here or on another server.
    pub fn listeners(&self) -> Vec<UserId> {
        let mut all: BTreeSet<UserId> = lock(&self.listening).keys().cloned().collect();
        all.extend(lock_set(&self.elsewhere).iter().cloned());
        all.into_iter().collect()
    }

    /// The users with a console open on this server (what its heartbeat tells the others).
    pub(crate) fn local_listeners(&self) -> Vec<UserId> {
        lock(&self.listening).keys().cloned().collect()
    }

    /// Who is at a console on the other servers, as their latest heartbeats say.
    pub(crate) fn set_listening_elsewhere(&self, users: BTreeSet<UserId>) {
        *lock_set(&self.elsewhere) = users;
    }

    pub fn signal(&self, signal: Signal) {
        self.forward(|| Forward::Signal(signal.clone()));
        let _ = self.signals.send(signal);
    }

    /// A signal another server raised: for this server's listeners only.
    pub(crate) fn signal_local(&self, signal: Signal) {
        let _ = self.signals.send(signal);
    }

    /// Internal signals. A receiver that lags (`RecvError::Lagged`) missed some and should
    /// re-check whatever they could have been about.
    pub fn subscribe_signals(&self) -> broadcast::Receiver<Signal> {
        self.signals.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_common::ids::GroupId;

    #[test]
    fn an_exclusive_audience_leaves_out_site_administrators() {
        let (bob, admin) = (UserId::from("bob"), UserId::from("admin"));
        assert!(Audience::user(&bob).includes(&admin, true));
        assert!(Audience::only(&bob).includes(&bob, false));
        assert!(!Audience::only(&bob).includes(&admin, true));
    }

    #[test]
    fn listeners_are_counted_per_console_until_the_last_one_goes() {
        let bus = EventBus::default();
        let bob = UserId::from("bob");
        let first = bus.listen(&bob);
        let second = bus.listen(&bob);
        drop(first);
        assert!(bus.is_listening(&bob));
        drop(second);
        assert!(!bus.is_listening(&bob));
        assert!(bus.listeners().is_empty());
    }

    #[test]
    fn group_audience_needs_the_right() {
        let group = GroupRecord {
            id: GroupId::from("g"),
            name: "g".into(),
            description: String::new(),
            members: BTreeMap::from([
                (UserId::from("viewer"), Rights::VIEW),
                (UserId::from("auditor"), Rights::EVENTS),
            ]),
            created: 0,
            direct_connections: true,
            record_sessions: false,
            chat_transcripts: false,
            microphone: false,
            consent: Default::default(),
            cira: None,
        };
        let viewers = Audience::group(&group, Rights::VIEW);
        assert!(viewers.includes(&UserId::from("viewer"), false));
        assert!(
            viewers.includes(&UserId::from("auditor"), false),
            "any right implies view"
        );
        let auditors = Audience::group(&group, Rights::EVENTS);
        assert!(!auditors.includes(&UserId::from("viewer"), false));
        assert!(
            auditors.includes(&UserId::from("stranger"), true),
            "site admins see everything"
        );
    }
}
