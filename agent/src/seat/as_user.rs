//! Programs run for the person at the screen, as that person: the messenger's browser
//! (`chat_open.rs`) and the desktop's sound capture (`desktop/audio`). The account is the one
//! logged in to the display ([`super::graphical_user`]); a root agent enters it through `runuser`,
//! as terminal sessions do (`relay/run_as.rs` says why); the program gets the environment a
//! program of that graphical session expects, and nothing of the agent's own.

use std::path::{Path, PathBuf};

use nix::unistd::{Uid, User, geteuid};

use crate::relay::run_as::{PLAIN_PATH, check_name, runuser};

/// Why nothing can run for the person at the screen: sentences for the administrator.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AsUserError {
    #[error("no one is logged in to a graphical session on this device")]
    NobodyLoggedIn,
    #[error("the user with id {0} who is logged in has no usable account entry")]
    UnknownUser(u32),
    #[error("the agent runs as {agent}, not as root, so it cannot act for {wanted}")]
    NotRoot { agent: String, wanted: String },
    #[error("runuser (util-linux) is not installed, so the agent cannot act as {0}")]
    NoRunuser(String),
}

/// The person at the screen: their account, display and X cookie file.
pub(crate) struct SeatUser {
    pub user: User,
    pub display: String,
    cookie: Option<PathBuf>,
}

impl SeatUser {
    /// Whoever uses `configured` (or, without one, the local X11 session). Blocking (`loginctl`,
    /// the user database).
    pub(crate) fn find(configured: Option<&str>) -> Result<SeatUser, AsUserError> {
        let session = super::graphical_user(configured).ok_or(AsUserError::NobodyLoggedIn)?;
        let user = User::from_uid(Uid::from_raw(session.uid))
            .ok()
            .flatten()
            .ok_or(AsUserError::UnknownUser(session.uid))?;
        let cookie = super::cookie_file(&session.display);
        Ok(SeatUser {
            user,
            display: session.display,
            cookie,
        })
    }

    /// `program` as this user, in their session's environment (arguments are the caller's).
    pub(crate) fn command(&self, program: &Path) -> Result<tokio::process::Command, AsUserError> {
        let me = geteuid();
        let mut command = if self.user.uid == me {
            tokio::process::Command::new(program)
        } else if !me.is_root() {
            let agent = User::from_uid(me)
                .ok()
                .flatten()
                .map_or_else(|| me.to_string(), |u| u.name);
            return Err(AsUserError::NotRoot {
                agent,
                wanted: self.user.name.clone(),
            });
        } else {
            if check_name(&self.user.name).is_err() {
                return Err(AsUserError::UnknownUser(self.user.uid.as_raw()));
            }
            let runuser =
                runuser().ok_or_else(|| AsUserError::NoRunuser(self.user.name.clone()))?;
            let mut command = tokio::process::Command::new(runuser);
            command.args(["-u", &self.user.name, "--"]).arg(program);
            command
        };
        command
            .env_clear()
            .envs(self.environment(self.user.uid == me));
        Ok(command)
    }

    /// What a program of this graphical session expects to find in its environment. `own`: the
    /// agent runs as this user (by hand, or in tests), so its sound server address comes along.
    fn environment(&self, own: bool) -> Vec<(&'static str, String)> {
        let user = &self.user;
        let runtime = PathBuf::from(format!("/run/user/{}", user.uid));
        let mut env = vec![
            ("DISPLAY", self.display.clone()),
            ("HOME", user.dir.display().to_string()),
            ("USER", user.name.clone()),
            ("LOGNAME", user.name.clone()),
            ("PATH", PLAIN_PATH.to_owned()),
        ];
        // The configured display of an agent run by hand: its own cookie file, if it has one.
        let cookie = self
            .cookie
            .clone()
            .or_else(|| std::env::var_os("XAUTHORITY").map(PathBuf::from));
        if let Some(cookie) = cookie {
            env.push(("XAUTHORITY", cookie.display().to_string()));
        }
        let inherited = |name: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|_| own)
                .map(|value| (name, value))
        };
        match inherited("XDG_RUNTIME_DIR") {
            Some(own_runtime) => env.push(own_runtime),
            None if runtime.is_dir() => {
                let bus = runtime.join("bus");
                if bus.exists() {
                    env.push((
                        "DBUS_SESSION_BUS_ADDRESS",
                        format!("unix:path={}", bus.display()),
                    ));
                }
                env.push(("XDG_RUNTIME_DIR", runtime.display().to_string()));
            }
            None => {}
        }
        env.extend(inherited("PULSE_SERVER"));
        env.extend(inherited("DBUS_SESSION_BUS_ADDRESS"));
        if let Some(lang) = std::env::var_os("LANG") {
            env.push(("LANG", lang.to_string_lossy().into_owned()));
        }
        env
    }
}
