//! How long a relay session may live: while the login session that opened it is valid, its user
//! still holds the right its kind needs on the device's group, the device exists, and (if the site
//! sets one) the maximum length has not passed.
//!
//! The rule is one check against the store ([`check`]), run
//! - when the session starts (closing the gap between minting and pairing),
//! - by the [`watch`] task, for the sessions a change may concern (user removed or changed, group
//!   rights changed or group deleted, device removed, logout), and for all of them when it missed
//!   changes,
//! - by each session itself when its login session expires, and once a minute as a backstop.

use std::sync::Arc;
use std::time::Duration;

use tether_common::control::Event;
use tether_common::relay::SessionKind;
use tether_common::rights::Rights;
use tokio::sync::{broadcast, oneshot};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::live::{Affected, LiveSession, Opener, Revoked};
use crate::auth::sessions::valid_session;
use crate::clock::now_secs;
use crate::control::rights_on;
use crate::events::{Published, Signal};
use crate::state::AppState;
use crate::store::StoreResult;

/// A backstop re-check, for anything that ends a session without an event.
const RECHECK_EVERY: Duration = Duration::from_secs(60);

/// Whether `session` may go on. `Ok` carries when its login session or sharing link expires
/// (Unix seconds).
pub(super) async fn check(
    state: &AppState,
    session: &LiveSession,
) -> StoreResult<Result<i64, Revoked>> {
    let login_hash = match &session.opener {
        Opener::Login(hash) => hash,
        Opener::Share(id) => return check_shared(state, session, id).await,
    };
    let Some((user, login)) = valid_session(state, login_hash).await? else {
        let removed = state.store.user(&session.user).await?.is_none();
        return Ok(Err(if removed {
            Revoked::AccountRemoved
        } else {
            Revoked::LoginEnded
        }));
    };
    if user.id != session.user {
        // Cannot happen (the relay admitted this cookie for this user); refuse rather than trust.
        return Ok(Err(Revoked::LoginEnded));
    }
    // A chat between two users has no device: it lasts while both logins do.
    if let Some((invitee, invitee_login)) = &session.peer {
        return Ok(match valid_session(state, invitee_login).await? {
            Some((peer, peer_login)) if &peer.id == invitee => {
                Ok(login.expires.min(peer_login.expires))
            }
            _ => Err(Revoked::LoginEnded),
        });
    }
    let Some(device) = state.store.device(&session.device).await? else {
        return Ok(Err(Revoked::DeviceRemoved));
    };
    let rights = match state.store.group(&device.group).await? {
        Some(group) => rights_on(&user, &group),
        None => Rights::NONE,
    };
    if !still_covered(session.kind, session.granted, rights) {
        return Ok(Err(Revoked::RightLost));
    }
    Ok(Ok(login.expires))
}

/// A guest's session: its link is live, and its creator (`session.user`) still exists and holds
/// the right on the device's group.
async fn check_shared(
    state: &AppState,
    session: &LiveSession,
    share: &str,
) -> StoreResult<Result<i64, Revoked>> {
    let Some(link) = state.store.share(share).await? else {
        return Ok(Err(Revoked::ShareEnded));
    };
    if !link.live_at(crate::clock::now_millis()) {
        return Ok(Err(Revoked::ShareEnded));
    }
    let Some(creator) = state.store.user(&session.user).await? else {
        return Ok(Err(Revoked::AccountRemoved));
    };
    let Some(device) = state.store.device(&session.device).await? else {
        return Ok(Err(Revoked::DeviceRemoved));
    };
    let rights = match state.store.group(&device.group).await? {
        Some(group) => rights_on(&creator, &group),
        None => Rights::NONE,
    };
    if !still_covered(session.kind, session.granted, rights) {
        return Ok(Err(Revoked::RightLost));
    }
    Ok(Ok((link.expires_ms + 999) / 1000))
}

/// Whether `now` (the user's rights today) still covers a `kind` session minted with `granted`.
/// A desktop minted with input (REMOTE_CONTROL) needs it still: the agent acts on the rights it
/// was given, so a viewer demoted to view-only must reconnect to become one.
fn still_covered(kind: SessionKind, granted: Rights, now: Rights) -> bool {
    if !kind.allowed_by(now) {
        return false;
    }
    match kind {
        SessionKind::Desktop if granted.contains(Rights::REMOTE_CONTROL) => {
            now.contains(Rights::REMOTE_CONTROL)
        }
        _ => true,
    }
}

/// Resolves when `session` must end: told so by [`watch`] (through `stopped`), its login session
/// expired, the maximum length passed, or a check failed. Never resolves otherwise.
pub(super) async fn until_ended(
    state: &AppState,
    session: &LiveSession,
    stopped: oneshot::Receiver<Revoked>,
    max_session: Option<Duration>,
) -> Revoked {
    let mut stopped = Some(stopped);
    let ends_at = max_session.map(|max| Instant::from_std(session.started) + max);
    loop {
        let login_expires = match check(state, session).await {
            Ok(Ok(expires)) => Some(expires),
            Ok(Err(why)) => return why,
            Err(e) => {
                // A database hiccup: keep the session rather than cut it; try again later.
                tracing::error!(user = %session.user, "relay: could not re-check a session: {e}");
                None
            }
        };
        let mut next = Instant::now() + RECHECK_EVERY;
        if let Some(expires) = login_expires {
            let left = u64::try_from(expires - now_secs()).unwrap_or(0);
            next = next.min(Instant::now() + Duration::from_secs(left));
        }
        if let Some(ends_at) = ends_at {
            next = next.min(ends_at);
        }
        let told = tokio::select! {
            told = told(&mut stopped) => Some(told),
            _ = sleep_until(next) => None,
            () = state.stopping.cancelled() => return Revoked::ServerStopping,
        };
        match told {
            Some(Ok(why)) => return why,
            // The registry let go of the sender (it does not while the session runs): only the
            // timers are left.
            Some(Err(_)) => stopped = None,
            None => {}
        }
        if ends_at.is_some_and(|ends_at| Instant::now() >= ends_at) {
            return Revoked::MaxLength;
        }
    }
}

/// What `stopped` says, or never once it said nothing.
async fn told(
    stopped: &mut Option<oneshot::Receiver<Revoked>>,
) -> Result<Revoked, oneshot::error::RecvError> {
    match stopped {
        Some(receiver) => receiver.await,
        None => std::future::pending().await,
    }
}

/// The task that follows the event bus and ends the live sessions a change revokes, for the
/// server's life. It subscribes at once (before it runs), so when it is made before the listeners
/// start, no change after any session's first check can be missed.
pub(crate) fn watch(state: AppState, shutdown: CancellationToken) -> impl Future<Output = ()> {
    let events = state.events.subscribe();
    let signals = state.events.subscribe_signals();
    follow(state, events, signals, shutdown)
}

async fn follow(
    state: AppState,
    mut events: broadcast::Receiver<Arc<Published>>,
    mut signals: broadcast::Receiver<Signal>,
    shutdown: CancellationToken,
) {
    loop {
        let affected = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => match event {
                Ok(published) => affected_by(&published),
                Err(broadcast::error::RecvError::Lagged(_)) => Some(Affected::All),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            signal = signals.recv() => match signal {
                Ok(Signal::LoginSessionEnded { token_hash }) => Some(Affected::Login(token_hash)),
                Err(broadcast::error::RecvError::Lagged(_)) => Some(Affected::All),
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if let Some(affected) = affected {
            recheck(&state, &affected).await;
        }
    }
}

fn affected_by(published: &Published) -> Option<Affected> {
    Some(match &published.event {
        Event::UserRemoved { user } => Affected::User(user.clone()),
        // A password change or reset, or a site-admin flag taken away.
        Event::UserChanged { user } => Affected::User(user.id.clone()),
        Event::GroupChanged { group } => Affected::Group(group.id.clone()),
        Event::GroupDeleted { group } => Affected::Group(group.clone()),
        Event::DeviceRemoved { device, .. } => Affected::Device(device.clone()),
        _ => return None,
    })
}

async fn recheck(state: &AppState, affected: &Affected) {
    for session in state.relay.live().affected(affected) {
        match check(state, &session).await {
            Ok(Ok(_)) => {}
            Ok(Err(why)) => {
                tracing::info!(user = %session.user, device = %session.device, kind = %session.kind, "relay: ending a session: {}", why.reason());
                state.relay.live().stop(&session.id, why);
            }
            Err(e) => {
                tracing::error!(user = %session.user, "relay: could not re-check a session: {e}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_needs_the_right_of_its_kind_and_desktop_input_stays_granted() {
        let terminal = SessionKind::Terminal;
        assert!(still_covered(terminal, Rights::FULL, Rights::TERMINAL));
        assert!(!still_covered(terminal, Rights::FULL, Rights::FILES));
        assert!(!still_covered(
            SessionKind::Files,
            Rights::FILES,
            Rights::VIEW
        ));
        let desktop = SessionKind::Desktop;
        let view_only = Rights::DESKTOP_VIEW_ONLY;
        assert!(!still_covered(desktop, Rights::REMOTE_CONTROL, view_only));
        assert!(still_covered(desktop, view_only, view_only));
        assert!(
            still_covered(desktop, view_only, Rights::REMOTE_CONTROL),
            "more rights never end a session"
        );
    }
}
