//! What the person at the device sees of a session: a prompt to accept or decline it, and a
//! notice while it lasts with a button that ends it (the group's consent policy,
//! `tether_common::relay::consent`).
//!
//! Both are small X11 windows the agent draws itself on the display its desktop sessions show
//! (`--x-display`, with `XAUTHORITY` from the environment), so they need nothing installed on the
//! device — no zenity, no notification daemon, no browser — and they appear in the very session
//! the remote desktop shows (`window.rs` draws them). An agent built without the `desktop`
//! feature has no X11 and behaves as if nobody were signed in.
//!
//! Each window runs on a thread of its own (x11rb's connection blocks), talking to the async
//! side through channels; dropping a [`Notice`] closes its window.

#[cfg(feature = "desktop")]
mod window;

use tokio::sync::oneshot;

/// The person's answer to a prompt.
#[cfg_attr(not(feature = "desktop"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Accepted,
    Declined,
    /// The time ran out with no answer.
    Unanswered,
}

/// Why nothing could be shown.
#[cfg_attr(not(feature = "desktop"), allow(dead_code))]
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScreenError {
    #[error("no X display is configured for this agent (--x-display)")]
    NoDisplay,
    #[error("cannot show a window on {display}: {reason}")]
    Unreachable { display: String, reason: String },
    #[error("the window on the device's screen went away: {0}")]
    Lost(String),
}

/// What a window says. Lines are drawn as given; the caller has made names readable
/// (`consent::readable_name`).
#[cfg_attr(not(feature = "desktop"), allow(dead_code))]
#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// The window's title (what window lists and screen readers name it), also its first line.
    pub title: String,
    pub lines: Vec<String>,
}

/// Asks the person at `display` to accept; the prompt closes itself after `secs` seconds.
pub(crate) async fn ask(
    display: Option<&str>,
    message: Message,
    secs: u16,
) -> Result<Answer, ScreenError> {
    let display = display.ok_or(ScreenError::NoDisplay)?;
    #[cfg(feature = "desktop")]
    {
        let (answer, answered) = oneshot::channel();
        let shown = window::open(display, message, window::Kind::Prompt { secs }, answer)?;
        let answer = answered
            .await
            .map_err(|_| ScreenError::Lost("the prompt ended without an answer".into()))?;
        drop(shown);
        answer
    }
    #[cfg(not(feature = "desktop"))]
    {
        let _ = (message, secs);
        Err(ScreenError::Unreachable {
            display: display.to_owned(),
            reason: "this agent was built without X11 support".into(),
        })
    }
}

/// A notice on the device's screen for as long as this value lives.
pub(crate) struct Notice {
    #[cfg(feature = "desktop")]
    _window: window::Shown,
    ended: oneshot::Receiver<Result<Answer, ScreenError>>,
}

impl Notice {
    /// Shows `message` at the top of `display` with a button that ends the session.
    pub(crate) fn show(display: Option<&str>, message: Message) -> Result<Notice, ScreenError> {
        let display = display.ok_or(ScreenError::NoDisplay)?;
        #[cfg(feature = "desktop")]
        {
            let (answer, ended) = oneshot::channel();
            let shown = window::open(display, message, window::Kind::Notice, answer)?;
            Ok(Notice {
                _window: shown,
                ended,
            })
        }
        #[cfg(not(feature = "desktop"))]
        {
            let _ = message;
            Err(ScreenError::Unreachable {
                display: display.to_owned(),
                reason: "this agent was built without X11 support".into(),
            })
        }
    }

    /// Resolves when the person at the device pressed "Disconnect"; pends forever if the window
    /// went away some other way (the session goes on: it was shown).
    pub(crate) async fn disconnected(&mut self) {
        match (&mut self.ended).await {
            Ok(Ok(Answer::Declined)) => {}
            Ok(Err(e)) => {
                tracing::warn!("consent: {e}");
                std::future::pending::<()>().await
            }
            _ => std::future::pending::<()>().await,
        }
    }
}
