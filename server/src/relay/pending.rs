//! The table of sessions that were minted and not yet paired: what makes a token single-use and
//! short-lived. Pure bookkeeping (the caller passes the time in), so it is tested without sockets.
//!
//! Each session has two sides; each side may be claimed once. The first end to connect leaves a
//! `W` (in the server, a channel to hand it the second end) for the second to pick up. Entries
//! stay until their deadline even after pairing, so a reused token is told "already used"
//! rather than "unknown".
//!
//! Each entry names its user and device, so the per-user and per-device quotas (`limits.rs`) can
//! count the sessions still waiting for an end.

use std::collections::HashMap;
use std::time::Instant;

use tether_common::ids::{DeviceId, UserId};
use tether_common::relay::RelaySide;

use super::limits::OpenSessions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("unknown or expired relay session")]
    Unknown,
    #[error("this relay token was already used")]
    AlreadyUsed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many relay sessions are waiting to be paired")]
pub struct TableFull;

/// Whose session it is, for the quotas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub user: UserId,
    pub device: DeviceId,
}

struct Pending<W> {
    owner: Owner,
    deadline: Instant,
    console_claimed: bool,
    agent_claimed: bool,
    /// The end that connected first, waiting for the other.
    waiting: Option<W>,
}

pub(super) struct PendingTable<W> {
    sessions: HashMap<String, Pending<W>>,
    capacity: usize,
}

impl<W> PendingTable<W> {
    pub(super) fn new(capacity: usize) -> PendingTable<W> {
        PendingTable {
            sessions: HashMap::new(),
            capacity,
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.sessions.len()
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// A new session that must pair before `deadline`. Expired entries are swept first, so the
    /// capacity only counts live ones.
    pub(super) fn insert(
        &mut self,
        session: String,
        owner: Owner,
        deadline: Instant,
        now: Instant,
    ) -> Result<(), TableFull> {
        self.sweep(now);
        if self.sessions.len() >= self.capacity {
            return Err(TableFull);
        }
        let pending = Pending {
            owner,
            deadline,
            console_claimed: false,
            agent_claimed: false,
            waiting: None,
        };
        self.sessions.insert(session, pending);
        Ok(())
    }

    /// Marks `side` of `session` as used. Fails if the session is unknown or past its deadline,
    /// or if that side was claimed before.
    pub(super) fn claim(
        &mut self,
        session: &str,
        side: RelaySide,
        now: Instant,
    ) -> Result<(), ClaimError> {
        let Some(pending) = self.live(session, now) else {
            return Err(ClaimError::Unknown);
        };
        let claimed = match side {
            RelaySide::Console => &mut pending.console_claimed,
            RelaySide::Agent => &mut pending.agent_claimed,
        };
        if *claimed {
            return Err(ClaimError::AlreadyUsed);
        }
        *claimed = true;
        Ok(())
    }

    /// The end waiting in `session`, taken out (the caller pairs with it).
    pub(super) fn take_waiting(&mut self, session: &str) -> Option<W> {
        self.sessions.get_mut(session)?.waiting.take()
    }

    /// Leaves `end` to wait for its peer; `Err(end)` when the session is gone or expired.
    pub(super) fn wait(&mut self, session: &str, end: W, now: Instant) -> Result<Instant, W> {
        match self.live(session, now) {
            Some(pending) => {
                pending.waiting = Some(end);
                Ok(pending.deadline)
            }
            None => Err(end),
        }
    }

    /// Forgets a session at once (it could not be offered to the agent).
    pub(super) fn remove(&mut self, session: &str) {
        self.sessions.remove(session);
    }

    /// Sessions of `owner`'s user, and on its device, that are still waiting for an end (call
    /// [`sweep`](Self::sweep) first). Once both ends are in, the session counts as live instead.
    pub(super) fn waiting_for(&self, owner: &Owner) -> OpenSessions {
        let mut open = OpenSessions::default();
        for pending in self.sessions.values() {
            if pending.console_claimed && pending.agent_claimed {
                continue;
            }
            open.of_user += usize::from(pending.owner.user == owner.user);
            open.on_device += usize::from(pending.owner.device == owner.device);
        }
        open
    }

    /// Drops every entry past its deadline (and so any end still waiting in it).
    pub(super) fn sweep(&mut self, now: Instant) {
        self.sessions.retain(|_, pending| pending.deadline > now);
    }

    fn live(&mut self, session: &str, now: Instant) -> Option<&mut Pending<W>> {
        let expired = self.sessions.get(session)?.deadline <= now;
        if expired {
            self.sessions.remove(session);
            return None;
        }
        self.sessions.get_mut(session)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn owner(user: &str, device: &str) -> Owner {
        Owner {
            user: user.into(),
            device: device.into(),
        }
    }

    #[test]
    fn each_side_is_claimed_once() {
        let now = Instant::now();
        let mut table = PendingTable::<u8>::new(10);
        table
            .insert("s".into(), owner("u", "d"), now + MINUTE, now)
            .unwrap();
        assert_eq!(table.claim("s", RelaySide::Console, now), Ok(()));
        assert_eq!(
            table.claim("s", RelaySide::Console, now),
            Err(ClaimError::AlreadyUsed)
        );
        assert_eq!(table.claim("s", RelaySide::Agent, now), Ok(()));
        assert_eq!(
            table.claim("s", RelaySide::Agent, now),
            Err(ClaimError::AlreadyUsed)
        );
        assert_eq!(
            table.claim("other", RelaySide::Agent, now),
            Err(ClaimError::Unknown)
        );
    }

    #[test]
    fn sessions_expire_at_their_deadline() {
        let now = Instant::now();
        let mut table = PendingTable::<u8>::new(10);
        table
            .insert("s".into(), owner("u", "d"), now + MINUTE, now)
            .unwrap();
        assert_eq!(
            table.claim("s", RelaySide::Agent, now + MINUTE),
            Err(ClaimError::Unknown)
        );
        assert!(table.is_empty(), "an expired entry is removed when seen");
        table
            .insert("t".into(), owner("u", "d"), now + MINUTE, now)
            .unwrap();
        assert_eq!(table.wait("t", 1, now + MINUTE * 2), Err(1));
    }

    #[test]
    fn the_second_end_finds_the_first() {
        let now = Instant::now();
        let mut table = PendingTable::new(10);
        table
            .insert("s".into(), owner("u", "d"), now + MINUTE, now)
            .unwrap();
        assert_eq!(table.take_waiting("s"), None);
        assert_eq!(table.wait("s", "console end", now), Ok(now + MINUTE));
        assert_eq!(table.take_waiting("s"), Some("console end"));
        assert_eq!(table.take_waiting("s"), None, "taken once");
        assert_eq!(table.wait("gone", "x", now), Err("x"));
    }

    #[test]
    fn capacity_counts_only_live_sessions() {
        let now = Instant::now();
        let mut table = PendingTable::<u8>::new(2);
        table
            .insert("a".into(), owner("u", "d"), now + MINUTE, now)
            .unwrap();
        table
            .insert("b".into(), owner("u", "d"), now + MINUTE * 2, now)
            .unwrap();
        assert_eq!(
            table.insert("c".into(), owner("u", "d"), now + MINUTE, now),
            Err(TableFull)
        );
        // "a" expires; room again.
        table
            .insert("c".into(), owner("u", "d"), now + MINUTE * 3, now + MINUTE)
            .unwrap();
        assert_eq!(table.len(), 2);
        table.remove("c");
        assert_eq!(
            table.claim("c", RelaySide::Console, now),
            Err(ClaimError::Unknown)
        );
    }

    #[test]
    fn quotas_count_sessions_still_waiting_for_an_end() {
        let now = Instant::now();
        let mut table = PendingTable::<u8>::new(10);
        table
            .insert("a".into(), owner("alice", "d1"), now + MINUTE, now)
            .unwrap();
        table
            .insert("b".into(), owner("alice", "d2"), now + MINUTE, now)
            .unwrap();
        table
            .insert("c".into(), owner("bob", "d1"), now + MINUTE, now)
            .unwrap();
        let alice_on_d1 = owner("alice", "d1");
        assert_eq!(
            table.waiting_for(&alice_on_d1),
            OpenSessions {
                of_user: 2,
                on_device: 2
            }
        );
        // Both ends of "a" came: from now on it is a live session, counted elsewhere.
        table.claim("a", RelaySide::Console, now).unwrap();
        assert_eq!(
            table.waiting_for(&alice_on_d1).of_user,
            2,
            "one end is not enough"
        );
        table.claim("a", RelaySide::Agent, now).unwrap();
        assert_eq!(
            table.waiting_for(&alice_on_d1),
            OpenSessions {
                of_user: 1,
                on_device: 1
            }
        );
    }
}
