//! The in-process event bus: every change that a console may want to see is published here once,
//! with the audience it is meant for, and each `/control` connection forwards what its user may see.
//!
//! The audience is fixed when the event is published (as MeshCentral's `DispatchEvent(ids, …)` does),
//! so "group deleted" still reaches the group's former members after the record is gone.

use std::collections::BTreeSet;
use std::sync::Arc;

use tether_common::control::Event;
use tether_common::ids::UserId;
use tether_common::rights::Rights;
use tokio::sync::broadcast;

use crate::store::GroupRecord;

/// How many events a slow console may fall behind before it is disconnected (it reconnects and
/// re-reads the state rather than silently missing changes).
pub(crate) const BUS_CAPACITY: usize = 4096;
/// Internal signals are rare (one per logout); a listener that misses some re-checks everything.
const SIGNAL_CAPACITY: usize = 256;

/// Who may see one event. Site administrators see everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Audience {
    pub users: BTreeSet<UserId>,
    /// Every logged-in user (e.g. server-wide announcements).
    pub everyone: bool,
}

impl Audience {
    pub fn admins_only() -> Audience {
        Audience::default()
    }

    pub fn everyone() -> Audience {
        Audience {
            users: BTreeSet::new(),
            everyone: true,
        }
    }

    pub fn user(user: &UserId) -> Audience {
        Audience {
            users: BTreeSet::from([user.clone()]),
            everyone: false,
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
        }
    }

    pub fn with_user(mut self, user: &UserId) -> Audience {
        self.users.insert(user.clone());
        self
    }

    pub fn includes(&self, user: &UserId, site_admin: bool) -> bool {
        site_admin || self.everyone || self.users.contains(user)
    }
}

/// A signal between parts of the server that consoles never see (so it is not an [`Event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            sender: broadcast::channel(BUS_CAPACITY).0,
            signals: broadcast::channel(SIGNAL_CAPACITY).0,
        }
    }
}

impl EventBus {
    pub fn publish(&self, event: Event, audience: Audience) {
        // No subscriber is not an error: nobody is watching right now.
        let _ = self.sender.send(Arc::new(Published { event, audience }));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.sender.subscribe()
    }

    pub fn signal(&self, signal: Signal) {
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
    use std::collections::BTreeMap;
    use tether_common::ids::GroupId;

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
