//! Which X display the person at this machine is using, when the agent was not told
//! (`--x-display`): an agent running as a system service has no `$DISPLAY` of its own. Desktop
//! sessions show that display, and consent prompts and notices appear on it.
//!
//! logind knows the login sessions (`loginctl`): the agent takes the local X11 session, the active
//! one first. The X server admits only clients with the session's cookie, which sits in the
//! `XAUTHORITY` file of the user's processes (read from `/proc/PID/environ`, as root may), else in
//! `~/.Xauthority`. The file is remembered per display, and every X connection the agent makes
//! goes through [`x11_connect`], which shows that cookie. Wayland sessions are not covered.

mod as_user;
#[cfg(feature = "desktop")]
mod xauth;

pub(crate) use as_user::{AsUserError, SeatUser};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// A local graphical login session logind reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GraphicalSession {
    pub display: String,
    pub uid: u32,
    pub active: bool,
}

/// The display to use: the configured one, else the local X11 session of whoever is logged in
/// (its cookie file remembered for [`x11_connect`]). Blocking: runs `loginctl`.
pub(crate) fn display(configured: Option<&str>) -> Option<String> {
    if let Some(display) = configured {
        return Some(display.to_owned());
    }
    let session = logged_in()?;
    match xauthority_of(&session) {
        Some(file) => {
            tracing::debug!(display = %session.display, file = %file.display(), "seat: using the session's X cookie");
            cookie_files().insert(session.display.clone(), file);
        }
        None => {
            tracing::info!(display = %session.display, "seat: no X cookie file found for the session; trying without")
        }
    }
    Some(session.display)
}

/// Who sits at the screen and on which display: the local X11 session logind knows (on the
/// configured display, when one is configured), else, with a configured display that logind does
/// not know (a test's Xvfb, a display started by hand), the agent's own account on it. Blocking.
pub(crate) fn graphical_user(configured: Option<&str>) -> Option<GraphicalSession> {
    let from_logind = logged_in().filter(|s| configured.is_none_or(|d| d == s.display));
    if let Some(session) = from_logind {
        if let Some(file) = xauthority_of(&session) {
            cookie_files().insert(session.display.clone(), file);
        }
        return Some(session);
    }
    configured.map(|display| GraphicalSession {
        display: display.to_owned(),
        uid: nix::unistd::geteuid().as_raw(),
        active: true,
    })
}

/// The X cookie file found for `display`, if any.
pub(crate) fn cookie_file(display: &str) -> Option<PathBuf> {
    cookie_files().get(display).cloned()
}

/// The X cookie files found for displays, by display name.
fn cookie_files() -> std::sync::MutexGuard<'static, HashMap<String, PathBuf>> {
    static FILES: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    FILES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Connects to `display`, showing the cookie of the session found there (else as x11rb does:
/// `$XAUTHORITY` or `~/.Xauthority`).
#[cfg(feature = "desktop")]
pub(crate) fn x11_connect(
    display: &str,
) -> Result<(x11rb::rust_connection::RustConnection, usize), x11rb::errors::ConnectError> {
    let file = cookie_files().get(display).cloned();
    match file {
        Some(file) => xauth::connect_with_file(display, &file),
        None => x11rb::connect(Some(display)),
    }
}

/// The local X11 session logind knows, the active one first.
fn logged_in() -> Option<GraphicalSession> {
    let listed = run_loginctl(&["list-sessions", "--no-legend"])?;
    let mut sessions: Vec<GraphicalSession> = session_ids(&listed)
        .into_iter()
        .filter_map(|id| {
            let shown = run_loginctl(&[
                "show-session",
                &id,
                "-p",
                "Type",
                "-p",
                "Display",
                "-p",
                "Remote",
                "-p",
                "Active",
                "-p",
                "User",
            ])?;
            graphical(&properties(&shown))
        })
        .collect();
    sessions.sort_by_key(|s| !s.active);
    sessions.into_iter().next()
}

fn run_loginctl(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("loginctl")
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The session ids of `loginctl list-sessions --no-legend` (the first column).
fn session_ids(listed: &str) -> Vec<String> {
    listed
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|id| id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_owned)
        .collect()
}

/// `Key=value` lines.
fn properties(shown: &str) -> HashMap<&str, &str> {
    shown
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect()
}

/// A local X11 session with a display, from `loginctl show-session` properties.
fn graphical(props: &HashMap<&str, &str>) -> Option<GraphicalSession> {
    let display = props.get("Display").copied().unwrap_or_default();
    let local = props.get("Remote").copied() == Some("no");
    if props.get("Type").copied() != Some("x11") || display.is_empty() || !local {
        return None;
    }
    Some(GraphicalSession {
        display: display.to_owned(),
        uid: props.get("User")?.parse().ok()?,
        active: props.get("Active").copied() == Some("yes"),
    })
}

/// The cookie file of `session`: the `XAUTHORITY` of one of its user's processes on that display,
/// else the user's `~/.Xauthority`.
fn xauthority_of(session: &GraphicalSession) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let from_processes = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid_dir = entry.path();
            let owner = std::fs::metadata(&pid_dir).ok()?.uid();
            if owner != session.uid {
                return None;
            }
            let environ = std::fs::read(pid_dir.join("environ")).ok()?;
            cookie_in_environment(&environ, &session.display)
        });
    from_processes.or_else(|| {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(session.uid)).ok()??;
        Some(user.dir.join(".Xauthority")).filter(|file| file.exists())
    })
}

/// `XAUTHORITY` from a process's environment block, if that process runs on `display`.
fn cookie_in_environment(environ: &[u8], display: &str) -> Option<PathBuf> {
    let mut on_display = false;
    let mut file = None;
    for variable in environ.split(|b| *b == 0) {
        let text = String::from_utf8_lossy(variable);
        if let Some(value) = text.strip_prefix("DISPLAY=") {
            on_display = value == display;
        } else if let Some(value) = text.strip_prefix("XAUTHORITY=") {
            file = Some(PathBuf::from(value));
        }
    }
    file.filter(|_| on_display)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_x11_session_is_found_among_loginctls_answers() {
        let listed = "      3 1000 alice seat0 tty2\n     c1  120 gdm   seat0 tty1\n";
        assert_eq!(session_ids(listed), ["3", "c1"]);
        let x11 = "Type=x11\nDisplay=:0\nRemote=no\nActive=yes\nUser=1000\n";
        assert_eq!(
            graphical(&properties(x11)),
            Some(GraphicalSession {
                display: ":0".into(),
                uid: 1000,
                active: true
            })
        );
        for other in [
            "Type=tty\nDisplay=\nRemote=no\nActive=yes\nUser=1000\n",
            "Type=wayland\nDisplay=\nRemote=no\nActive=yes\nUser=1000\n",
            "Type=x11\nDisplay=:10\nRemote=yes\nActive=yes\nUser=1000\n",
        ] {
            assert_eq!(graphical(&properties(other)), None, "{other}");
        }
    }

    #[test]
    fn the_cookie_file_is_taken_only_from_a_process_on_that_display() {
        let env = b"HOME=/home/alice\0DISPLAY=:0\0XAUTHORITY=/run/user/1000/gdm/Xauthority\0";
        assert_eq!(
            cookie_in_environment(env, ":0"),
            Some(PathBuf::from("/run/user/1000/gdm/Xauthority"))
        );
        assert_eq!(cookie_in_environment(env, ":1"), None);
        assert_eq!(cookie_in_environment(b"DISPLAY=:0\0", ":0"), None);
    }

    #[test]
    fn a_configured_display_wins() {
        assert_eq!(display(Some(":7")), Some(":7".to_owned()));
    }
}
