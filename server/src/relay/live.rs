//! The sessions being relayed right now: who opened them, to what, with which login session, and
//! a way to end each one. The quotas count them; `lifetime.rs` ends them when they lose their
//! right to exist.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tether_common::ids::{DeviceId, GroupId, UserId};
use tether_common::relay::SessionKind;
use tether_common::rights::Rights;
use tokio::sync::oneshot;

use super::limits::OpenSessions;
use super::pending::Owner;

/// What a live session is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    pub id: String,
    pub user: UserId,
    pub device: DeviceId,
    /// The device's group when the session started (the check reads the device's current one).
    pub group: Option<GroupId>,
    pub kind: SessionKind,
    /// The rights the session was minted with (the agent acts on these).
    pub granted: Rights,
    /// What admitted the console end; the session ends with it.
    pub opener: Opener,
    /// A chat between two users: the invitee and the login session their end came with (the
    /// session ends with either login).
    pub peer: Option<(UserId, String)>,
    pub started: Instant,
}

/// What a session's console end came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opener {
    /// A login session's cookie: the store key (SHA-256 of the token) of that login session.
    Login(String),
    /// A guest sharing link: its id (`tether_common::share`).
    Share(String),
}

/// Why a session was ended from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    LoginEnded,
    AccountRemoved,
    RightLost,
    DeviceRemoved,
    /// The guest's sharing link was revoked or expired.
    ShareEnded,
    MaxLength,
    /// Not a revocation: the server is shutting down.
    ServerStopping,
}

impl Revoked {
    /// The close reason both ends are given (a WebSocket close reason is at most 123 bytes).
    pub fn reason(self) -> &'static str {
        match self {
            Revoked::LoginEnded => {
                "the login session ended (logged out, expired or password changed)"
            }
            Revoked::AccountRemoved => "the account was removed",
            Revoked::RightLost => "the right to this session was revoked",
            Revoked::DeviceRemoved => "the device was removed",
            Revoked::ShareEnded => "the sharing link was revoked or expired",
            Revoked::MaxLength => "the session reached the site's maximum session length",
            Revoked::ServerStopping => "server stopping",
        }
    }
}

/// Which live sessions a change may concern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Affected {
    User(UserId),
    Group(GroupId),
    Device(DeviceId),
    Login(String),
    Share(String),
    /// Changes were missed: every session.
    All,
}

impl Affected {
    fn includes(&self, session: &LiveSession) -> bool {
        match self {
            // A chat between users depends on the invitee's account and login as much.
            Affected::User(user) => {
                session.user == *user || session.peer.as_ref().is_some_and(|(p, _)| p == user)
            }
            Affected::Group(group) => session.group.as_ref() == Some(group),
            Affected::Device(device) => session.device == *device,
            Affected::Login(hash) => {
                session.opener == Opener::Login(hash.clone())
                    || session
                        .peer
                        .as_ref()
                        .is_some_and(|(_, login)| login == hash)
            }
            Affected::Share(id) => session.opener == Opener::Share(id.clone()),
            Affected::All => true,
        }
    }
}

struct Entry {
    session: Arc<LiveSession>,
    /// Taken when the session is told to end.
    stop: Option<oneshot::Sender<Revoked>>,
}

#[derive(Default)]
pub struct LiveSessions {
    entries: Mutex<HashMap<String, Entry>>,
}

/// Keeps a session registered; dropping it (the session ended) removes the entry.
pub struct Registration<'a> {
    sessions: &'a LiveSessions,
    pub session: Arc<LiveSession>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.sessions.entries().remove(&self.session.id);
    }
}

impl LiveSessions {
    /// Adds `session`; the receiver hears when it must end.
    pub fn register(&self, session: LiveSession) -> (Registration<'_>, oneshot::Receiver<Revoked>) {
        let (stop, stopped) = oneshot::channel();
        let session = Arc::new(session);
        let entry = Entry {
            session: session.clone(),
            stop: Some(stop),
        };
        self.entries().insert(session.id.clone(), entry);
        let registration = Registration {
            sessions: self,
            session,
        };
        (registration, stopped)
    }

    /// Live sessions of `owner`'s user, and on its device.
    pub fn open_for(&self, owner: &Owner) -> OpenSessions {
        let mut open = OpenSessions::default();
        for entry in self.entries().values() {
            open.of_user += usize::from(entry.session.user == owner.user);
            open.on_device += usize::from(entry.session.device == owner.device);
        }
        open
    }

    pub fn affected(&self, by: &Affected) -> Vec<Arc<LiveSession>> {
        self.entries()
            .values()
            .filter(|entry| entry.stop.is_some() && by.includes(&entry.session))
            .map(|entry| entry.session.clone())
            .collect()
    }

    /// Tells session `id` to end (once; later calls do nothing).
    pub fn stop(&self, id: &str, why: Revoked) {
        if let Some(stop) = self
            .entries()
            .get_mut(id)
            .and_then(|entry| entry.stop.take())
        {
            let _ = stop.send(why);
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Every update is a single insert/remove/take: a panic elsewhere cannot leave it torn.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, user: &str, device: &str, login: &str) -> LiveSession {
        LiveSession {
            id: id.into(),
            user: user.into(),
            device: device.into(),
            group: Some("g".into()),
            kind: SessionKind::Terminal,
            granted: Rights::TERMINAL,
            opener: Opener::Login(login.into()),
            peer: None,
            started: Instant::now(),
        }
    }

    #[test]
    fn sessions_are_found_by_what_they_depend_on_and_stopped_once() {
        let live = LiveSessions::default();
        let (_a, mut a_stopped) = live.register(session("a", "alice", "d1", "h1"));
        let (b, _) = live.register(session("b", "alice", "d2", "h2"));
        let _c = live.register(session("c", "bob", "d1", "h3"));
        let ids = |by: Affected| {
            let mut ids: Vec<String> = live.affected(&by).iter().map(|s| s.id.clone()).collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(Affected::User("alice".into())), ["a", "b"]);
        assert_eq!(ids(Affected::Device("d1".into())), ["a", "c"]);
        assert_eq!(ids(Affected::Login("h2".into())), ["b"]);
        assert_eq!(ids(Affected::Group("g".into())).len(), 3);
        let owner = Owner {
            user: "alice".into(),
            device: "d1".into(),
        };
        assert_eq!(
            live.open_for(&owner),
            OpenSessions {
                of_user: 2,
                on_device: 2
            }
        );

        live.stop("a", Revoked::RightLost);
        live.stop("a", Revoked::AccountRemoved);
        assert_eq!(a_stopped.try_recv(), Ok(Revoked::RightLost));
        assert_eq!(
            ids(Affected::All),
            ["b", "c"],
            "a stopped one is not stopped again"
        );
        drop(b);
        assert_eq!(
            live.open_for(&owner).of_user,
            1,
            "an ended session is forgotten"
        );
    }

    #[test]
    fn a_chat_between_users_depends_on_the_invitees_account_and_login_too() {
        let live = LiveSessions::default();
        let chat = LiveSession {
            peer: Some(("bob".into(), "bob-login".into())),
            ..session("chat", "alice", "user:bob", "alice-login")
        };
        let _chat = live.register(chat);
        for by in [
            Affected::User("bob".into()),
            Affected::Login("bob-login".into()),
            Affected::User("alice".into()),
            Affected::Login("alice-login".into()),
        ] {
            assert_eq!(live.affected(&by).len(), 1, "{by:?}");
        }
        assert!(live.affected(&Affected::User("carol".into())).is_empty());
    }
}
