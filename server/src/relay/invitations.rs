//! Chats between two users waiting for the invitee's answer: who invited whom, so that only the
//! invitee may decline, and the inviter is the one told. An entry lives as long as its session
//! may pair; joining or declining ends it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use tether_common::ids::UserId;

#[derive(Default)]
pub struct Invitations {
    open: Mutex<HashMap<String, Invitation>>,
}

#[derive(Debug, Clone)]
pub struct Invitation {
    pub inviter: UserId,
    pub invitee: UserId,
    until: Instant,
}

impl Invitations {
    pub fn add(&self, session: &str, inviter: &UserId, invitee: &UserId, until: Instant) {
        let mut open = self.table();
        let now = Instant::now();
        open.retain(|_, invitation| invitation.until > now);
        open.insert(
            session.to_owned(),
            Invitation {
                inviter: inviter.clone(),
                invitee: invitee.clone(),
                until,
            },
        );
    }

    /// Ends `session`'s invitation if `invitee` is its invitee (and it has not expired).
    pub fn take_for(&self, session: &str, invitee: &UserId) -> Option<Invitation> {
        let mut open = self.table();
        let invitation = open.get(session)?;
        if &invitation.invitee != invitee || invitation.until <= Instant::now() {
            return None;
        }
        open.remove(session)
    }

    /// The session paired (or ended): nothing to decline any more.
    pub fn forget(&self, session: &str) {
        self.table().remove(session);
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Invitation>> {
        // Single inserts and removes: a panic elsewhere cannot leave it torn.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_invitee_may_take_an_invitation_and_only_once() {
        let invitations = Invitations::default();
        let (alice, bob) = (UserId::from("alice"), UserId::from("bob"));
        let later = Instant::now() + std::time::Duration::from_secs(60);
        invitations.add("s", &alice, &bob, later);
        assert!(invitations.take_for("s", &alice).is_none());
        assert_eq!(invitations.take_for("s", &bob).unwrap().inviter, alice);
        assert!(invitations.take_for("s", &bob).is_none());
        invitations.add("old", &alice, &bob, Instant::now());
        assert!(invitations.take_for("old", &bob).is_none());
    }
}
