//! Terminal sessions run as another local account (`asUser` in the start frame).
//!
//! A root agent switches accounts through util-linux's `runuser` rather than calling
//! setuid/setgid in a `pre_exec` hook of its own: `runuser` opens a PAM session (limits, logind,
//! pam_env), sets the account's supplementary groups, and gives a login shell that account's own
//! environment and home folder — details that are easy to get subtly wrong by hand — and the agent
//! stays free of `unsafe` code (`pre_exec` is unsafe).
//!
//! Rights: the TERMINAL right (checked in `relay.rs`) covers this. A console user with a root
//! shell on the device can become any account anyway, so a separate right would protect nothing.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use nix::unistd::{User, geteuid};
use tether_common::relay::terminal::StartTerminal;

/// useradd's limit on Linux; longer names are not plain user names.
const MAX_NAME_LEN: usize = 32;
/// Where `runuser` may live. An absolute path, so no PATH can substitute another program.
const RUNUSER_PATHS: [&str; 4] = [
    "/usr/sbin/runuser",
    "/sbin/runuser",
    "/usr/bin/runuser",
    "/bin/runuser",
];
/// The PATH a piped command run as another account starts with: the agent's own PATH (and the
/// rest of its environment) belongs to the agent, not to that account.
pub(crate) const PLAIN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub(crate) enum RunAsError {
    #[error(
        "{0:?} is not a plain user name (letters, digits, '.', '_' and '-', not starting with '-', at most 32 characters)"
    )]
    BadName(String),
    #[error("the agent runs as {agent}, not as root, so it cannot run programs as {wanted}")]
    NotRoot { agent: String, wanted: String },
    #[error("there is no user {0} on this device")]
    NoSuchUser(String),
    #[error(
        "{name} cannot log in: the account's shell is {}, which refuses interactive sessions",
        .shell.display()
    )]
    NoLogin { name: String, shell: PathBuf },
    #[error("runuser (util-linux) is not installed, so the agent cannot switch accounts")]
    NoRunuser,
    #[error("cannot read the user database: {0}")]
    Lookup(String),
}

/// Whose account a session's program runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Account {
    /// The agent's own: no switch.
    Agent,
    /// Another local account, entered through `runuser`.
    Other(OtherAccount),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OtherAccount {
    pub name: String,
    home: PathBuf,
    runuser: PathBuf,
}

/// The account `start` asks for, checked; looks the names up on a blocking thread (NSS may ask
/// a directory server).
pub(super) async fn account_for(start: &StartTerminal) -> Result<Account, RunAsError> {
    let wanted = start.as_user.clone();
    let login = start.pty;
    tokio::task::spawn_blocking(move || resolve(wanted.as_deref(), login))
        .await
        .map_err(|e| RunAsError::Lookup(e.to_string()))?
}

/// Blocking. `login`: the session will be a login shell (PTY), which the account's shell must
/// allow; a piped command runs without the account's shell.
pub(super) fn resolve(wanted: Option<&str>, login: bool) -> Result<Account, RunAsError> {
    let Some(name) = wanted else {
        return Ok(Account::Agent);
    };
    check_name(name)?;
    let uid = geteuid();
    let agent = User::from_uid(uid)
        .map_err(|e| RunAsError::Lookup(e.to_string()))?
        .map_or_else(|| format!("uid {uid}"), |user| user.name);
    if agent == name {
        return Ok(Account::Agent);
    }
    if !uid.is_root() {
        return Err(RunAsError::NotRoot {
            agent,
            wanted: name.to_owned(),
        });
    }
    let user = User::from_name(name)
        .map_err(|e| RunAsError::Lookup(e.to_string()))?
        .ok_or_else(|| RunAsError::NoSuchUser(name.to_owned()))?;
    if login && refuses_logins(&user.shell) {
        return Err(RunAsError::NoLogin {
            name: user.name,
            shell: user.shell,
        });
    }
    let runuser = runuser().ok_or(RunAsError::NoRunuser)?;
    Ok(Account::Other(OtherAccount {
        name: user.name,
        home: user.dir,
        runuser: runuser.to_owned(),
    }))
}

/// Where `runuser` is installed, if it is.
pub(crate) fn runuser() -> Option<&'static Path> {
    RUNUSER_PATHS
        .iter()
        .map(Path::new)
        .find(|path| path.is_file())
}

/// Plain user names only: nothing `runuser` could take for an option, no shell or path syntax.
pub(crate) fn check_name(name: &str) -> Result<(), RunAsError> {
    let plain = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if plain {
        Ok(())
    } else {
        Err(RunAsError::BadName(name.to_owned()))
    }
}

/// Shells that exist to say "this account does not log in" (`nologin`, `false`).
fn refuses_logins(shell: &Path) -> bool {
    matches!(
        shell.file_name().and_then(|name| name.to_str()),
        Some("nologin" | "false")
    )
}

impl OtherAccount {
    /// A login session for a PTY: `runuser --login`, which resets the environment (keeping TERM
    /// and the locale we pass), changes to the home folder and starts the account's shell — with
    /// `-c` and the command, when the console named one.
    pub(super) fn login_argv(&self, command: &[String]) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec![
            self.runuser.clone().into(),
            "--login".into(),
            "--whitelist-environment=LANG,LC_ALL".into(),
        ];
        if !command.is_empty() {
            argv.push("--command".into());
            argv.push(shell_words(command).into());
        }
        argv.push("--".into());
        argv.push(self.name.clone().into());
        argv
    }

    /// A piped command: `runuser -u NAME -- PROGRAM ARGS…`, the arguments passed as they are
    /// (no shell, so nothing to quote).
    pub(super) fn exec_argv(&self, command: &[String]) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec![
            self.runuser.clone().into(),
            "--user".into(),
            self.name.clone().into(),
            "--".into(),
        ];
        argv.extend(command.iter().map(OsString::from));
        argv
    }

    /// Where the program starts: the account's home folder, or `/` when it has none (the agent's
    /// own folder may be closed to that account).
    pub(super) fn start_dir(&self) -> &Path {
        if self.home.is_dir() {
            &self.home
        } else {
            Path::new("/")
        }
    }
}

/// One POSIX shell command line running exactly `argv` (each word single-quoted).
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|word| format!("'{}'", word.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The locale a session gets: the agent's, or UTF-8 when the agent has none (services often
/// start without one; the console expects UTF-8).
pub(super) fn locale_env() -> Vec<(&'static str, OsString)> {
    let set: Vec<_> = ["LANG", "LC_ALL"]
        .into_iter()
        .filter_map(|key| std::env::var_os(key).map(|value| (key, value)))
        .collect();
    if set.is_empty() {
        vec![("LANG", "C.UTF-8".into())]
    } else {
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_user_names_pass() {
        let longest = "a".repeat(MAX_NAME_LEN);
        let too_long = "a".repeat(MAX_NAME_LEN + 1);
        for good in [
            "alice",
            "nobody",
            "www-data",
            "first.last",
            "_apt",
            "u1",
            longest.as_str(),
        ] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-x",
            "--help",
            "a;b",
            "a b",
            "a/b",
            "../root",
            "$(id)",
            "ä",
            "a\nb",
            too_long.as_str(),
        ] {
            assert!(
                matches!(check_name(bad), Err(RunAsError::BadName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn nologin_shells_are_recognised() {
        assert!(refuses_logins(Path::new("/usr/sbin/nologin")));
        assert!(refuses_logins(Path::new("/sbin/nologin")));
        assert!(refuses_logins(Path::new("/bin/false")));
        assert!(!refuses_logins(Path::new("/bin/bash")));
        assert!(!refuses_logins(Path::new("/bin/sh")));
    }

    fn alice() -> OtherAccount {
        OtherAccount {
            name: "alice".into(),
            home: "/no/such/home".into(),
            runuser: "/usr/sbin/runuser".into(),
        }
    }

    #[test]
    fn runuser_command_lines() {
        let words = |argv: Vec<OsString>| -> Vec<String> {
            argv.into_iter().map(|w| w.into_string().unwrap()).collect()
        };
        assert_eq!(
            words(alice().login_argv(&[])),
            [
                "/usr/sbin/runuser",
                "--login",
                "--whitelist-environment=LANG,LC_ALL",
                "--",
                "alice"
            ]
        );
        let command = [
            "printf".to_owned(),
            "%s\\n".to_owned(),
            "it's $HOME".to_owned(),
        ];
        assert_eq!(
            words(alice().login_argv(&command)),
            [
                "/usr/sbin/runuser",
                "--login",
                "--whitelist-environment=LANG,LC_ALL",
                "--command",
                r"'printf' '%s\n' 'it'\''s $HOME'",
                "--",
                "alice"
            ]
        );
        assert_eq!(
            words(alice().exec_argv(&command)),
            [
                "/usr/sbin/runuser",
                "--user",
                "alice",
                "--",
                "printf",
                "%s\\n",
                "it's $HOME"
            ]
        );
        assert_eq!(alice().start_dir(), Path::new("/"));
    }

    #[test]
    fn quoted_words_survive_a_real_shell() {
        let argv = [
            "it's".to_owned(),
            "a b".to_owned(),
            "$(x) `y` \\".to_owned(),
            String::new(),
        ];
        let script = format!("printf '<%s>' {}", shell_words(&argv));
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "<it's><a b><$(x) `y` \\><>"
        );
    }

    #[test]
    fn accounts_resolve_by_the_agents_own_rights() {
        assert_eq!(resolve(None, true).unwrap(), Account::Agent);
        let me = User::from_uid(geteuid()).unwrap().unwrap().name;
        assert_eq!(resolve(Some(&me), true).unwrap(), Account::Agent);
        assert!(matches!(
            resolve(Some("-x"), false),
            Err(RunAsError::BadName(_))
        ));
        if !geteuid().is_root() {
            println!("not root: only the refusal of other accounts is checked");
            assert!(matches!(
                resolve(Some("nobody"), false),
                Err(RunAsError::NotRoot { .. })
            ));
            return;
        }
        assert!(matches!(
            resolve(Some("no-such-user-tether"), false),
            Err(RunAsError::NoSuchUser(_))
        ));
        // nobody's shell is nologin on Debian: a command may run as nobody, a login may not.
        let nobody = User::from_name("nobody").unwrap().unwrap();
        if refuses_logins(&nobody.shell) {
            let refused = resolve(Some("nobody"), true).unwrap_err();
            assert!(refused.to_string().contains("cannot log in"), "{refused}");
        }
        match resolve(Some("nobody"), false) {
            Ok(Account::Other(other)) => assert_eq!(other.name, "nobody"),
            Err(RunAsError::NoRunuser) => println!("runuser is not installed"),
            other => panic!("{other:?}"),
        }
    }
}
