//! `openchat`: opens the messenger page for the person at the screen, as that person, and says
//! what happened (`chatopened`), so the administrator is never left waiting for a window that
//! did not appear.
//!
//! Who: the local X11 session logind reports (`seat::graphical_user`), or the agent's own account
//! on a configured display. How: the opener (`--chat-opener`, default `xdg-open`, which starts
//! that user's chosen browser) runs with the session's `DISPLAY`, X cookie, `XDG_RUNTIME_DIR` and
//! D-Bus address; a root agent enters another account through `runuser`, as terminal sessions do
//! (`relay/run_as.rs` says why). The URL is this server's address plus the path the server sent,
//! which must be the messenger's: a server cannot make the agent open anything else.
//!
//! The opener's verdict: a non-zero exit within [`VERDICT_WAIT`] is a failure with its reason;
//! exit 0, or still running then (a browser started in the foreground keeps `xdg-open` waiting),
//! means the page is opening. The opener then runs on unobserved, in its own process group.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tether_common::relay::chat::{ChatOpened, MESSENGER_PATH, OpenChat};
use tokio::io::AsyncReadExt;

use crate::seat::{AsUserError, SeatUser};

/// How long the opener has to fail before the page counts as opening.
const VERDICT_WAIT: Duration = Duration::from_secs(3);

/// Why the page did not open: sentences for the administrator.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error(transparent)]
    Seat(#[from] AsUserError),
    #[error("the server asked to open {0:?}, which is not the messenger page")]
    NotMessenger(String),
    #[error("{0} is not installed on this device, so no browser can be opened")]
    NoOpener(String),
    #[error("no web browser is set up for {user} ({opener} found nothing to open links with)")]
    NoBrowser { user: String, opener: String },
    #[error("the browser did not start for {user}: {opener} failed ({detail})")]
    OpenerFailed {
        user: String,
        opener: String,
        detail: String,
    },
    #[error("the opener could not be started: {0}")]
    Spawn(std::io::Error),
}

/// Opens the page and reports the outcome for the server.
pub(crate) async fn open(
    control_url: &str,
    x_display: Option<String>,
    opener: PathBuf,
    request: OpenChat,
) -> ChatOpened {
    let session = request.session.clone();
    match try_open(control_url, x_display, &opener, &request).await {
        Ok((user, screen)) => {
            tracing::info!(from = %request.from, %user, display = %screen, "chat: opened the messenger page");
            ChatOpened {
                session,
                user: Some(user),
                display: Some(screen),
                error: None,
            }
        }
        Err(e) => {
            tracing::warn!(from = %request.from, "chat: the messenger page did not open: {e}");
            ChatOpened {
                session,
                user: None,
                display: None,
                error: Some(e.to_string()),
            }
        }
    }
}

async fn try_open(
    control_url: &str,
    x_display: Option<String>,
    opener: &Path,
    request: &OpenChat,
) -> Result<(String, String), OpenError> {
    let url = page_url(control_url, &request.path)?;
    let seat = tokio::task::spawn_blocking(move || SeatUser::find(x_display.as_deref()))
        .await
        .map_err(|e| OpenError::Spawn(std::io::Error::other(e)))??;
    let mut command = seat.command(opener)?;
    command
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group: a signal to the agent's group does not close the browser.
        .process_group(0);
    let user = &seat.user;
    let opener_name = opener.display().to_string();
    let mut child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => OpenError::NoOpener(opener_name.clone()),
        _ => OpenError::Spawn(e),
    })?;
    let mut stderr = child.stderr.take();
    match tokio::time::timeout(VERDICT_WAIT, child.wait()).await {
        Ok(Ok(status)) if status.success() => {}
        Ok(Ok(status)) => {
            let mut said = String::new();
            if let Some(stderr) = stderr.as_mut() {
                let _ = stderr.take(2000).read_to_string(&mut said).await;
            }
            let said: String = said.chars().filter(|c| !c.is_control()).take(300).collect();
            // xdg-open's documented exit status 3: "a required tool could not be found".
            if status.code() == Some(3) {
                return Err(OpenError::NoBrowser {
                    user: user.name.clone(),
                    opener: opener_name,
                });
            }
            let detail = match (status.code(), said.trim()) {
                (Some(code), "") => format!("exit status {code}"),
                (Some(code), said) => format!("exit status {code}: {said}"),
                (None, _) => "killed by a signal".into(),
            };
            return Err(OpenError::OpenerFailed {
                user: user.name.clone(),
                opener: opener_name,
                detail,
            });
        }
        Ok(Err(e)) => return Err(OpenError::Spawn(e)),
        Err(_still_running) => {
            // The browser runs in the foreground of its opener: reap it whenever it ends.
            tokio::spawn(async move {
                drop(stderr);
                let _ = child.wait().await;
            });
        }
    }
    Ok((seat.user.name.clone(), seat.display.clone()))
}

/// `https://<the control channel's host>/messenger#t=…`, only for the messenger's own path.
fn page_url(control_url: &str, path: &str) -> Result<String, OpenError> {
    let not_messenger = || OpenError::NotMessenger(path.chars().take(100).collect());
    let token = path
        .strip_prefix(MESSENGER_PATH)
        .and_then(|rest| rest.strip_prefix("#t="))
        .ok_or_else(not_messenger)?;
    // Relay tokens are base64url with one '.'; anything else is not one.
    let token_like = !token.is_empty()
        && token.len() <= 2048
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !token_like {
        return Err(not_messenger());
    }
    let (scheme, rest) = control_url.split_once("://").ok_or_else(not_messenger)?;
    let scheme = if scheme == "ws" { "http" } else { "https" };
    let authority = rest.split('/').next().unwrap_or_default();
    Ok(format!("{scheme}://{authority}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_messenger_page_on_this_server_is_opened() {
        assert_eq!(
            page_url(
                "wss://srv.example:8443/agent.ashx",
                "/messenger#t=abc.DEF-_1"
            )
            .unwrap(),
            "https://srv.example:8443/messenger#t=abc.DEF-_1"
        );
        assert_eq!(
            page_url("ws://[::1]:9/agent.ashx", "/messenger#t=x").unwrap(),
            "http://[::1]:9/messenger#t=x"
        );
        for hostile in [
            "https://evil.example/messenger#t=x",
            "//evil.example/messenger#t=x",
            "/messenger#t=",
            "/messenger#t=a;rm -rf /",
            "/messenger#t=a'b",
            "/messenger?x#t=a",
            "/share#t=a",
            "/messenger#t=a b",
        ] {
            assert!(
                matches!(
                    page_url("wss://srv/agent.ashx", hostile),
                    Err(OpenError::NotMessenger(_))
                ),
                "{hostile}"
            );
        }
    }
}
