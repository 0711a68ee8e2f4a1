//! The command line. Connection options go before the command
//! (`tetherctl --url wss://host:443 --user admin listgroups`); `--json` may go anywhere.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tether_common::relay::consent::{ConsentMode, ConsentPolicy, WhenNobody};

#[derive(Debug, Parser)]
#[command(
    name = "tetherctl",
    version,
    about = "Administer a Tether server from scripts"
)]
pub(crate) struct Cli {
    /// Server address, e.g. wss://tether.example:443 (https:// works too).
    #[arg(long, env = "TETHER_URL", value_name = "URL")]
    pub url: String,
    /// Account to log in as.
    #[arg(long, env = "TETHER_USER", value_name = "NAME")]
    pub user: String,
    /// Its password (prefer the TETHER_PASS environment variable: command lines are visible to
    /// other local users).
    #[arg(long, env = "TETHER_PASS", value_name = "PW", hide_env_values = true)]
    pub pass: String,
    /// The second factor for an account that signs in with one: the authenticator app's current
    /// code, or a backup code.
    #[arg(long, env = "TETHER_OTP", value_name = "CODE", hide_env_values = true)]
    pub otp: Option<String>,
    /// Trust server certificates issued by this PEM root (the server's root-cert-public.crt).
    #[arg(long, value_name = "FILE", conflicts_with = "fingerprint")]
    pub trust_root: Option<PathBuf>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint (hex, colons allowed).
    #[arg(long, value_name = "SHA256HEX")]
    pub fingerprint: Option<String>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The new password of `adduser` and `resetpassword` (see `password.rs`); with neither option,
/// tetherctl asks on the terminal.
#[derive(Debug, clap::Args)]
pub(crate) struct NewPassword {
    /// The password, or `-` to read one line from standard input (not echoed on a terminal).
    /// A password written here is visible to other local users (`ps`) and kept in shell
    /// history: prefer `-` or --pass-env.
    #[arg(long = "pass", value_name = "PW|-", conflicts_with = "pass_env")]
    pub pass: Option<String>,
    /// Read the password from this environment variable.
    #[arg(long = "pass-env", value_name = "VAR")]
    pub pass_env: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Server version, certificate hashes and port.
    Serverinfo,
    /// The account you are logged in as.
    Whoami,
    /// Device groups you can see.
    Listgroups,
    /// Create a device group (site administrators).
    Addgroup {
        name: String,
        #[arg(long = "desc", value_name = "D", default_value = "")]
        description: String,
    },
    /// Change a device group's name, description or session policy.
    Editgroup {
        /// Group id, or a name only one group has.
        group: String,
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        #[arg(long = "desc", value_name = "D")]
        description: Option<String>,
        /// Whether sessions to its devices may leave the relay for a direct path.
        #[arg(long, value_name = "on|off")]
        direct: Option<Switch>,
        /// Whether terminal and desktop sessions are recorded on the server (they then stay
        /// relayed).
        #[arg(long, value_name = "on|off")]
        record: Option<Switch>,
        /// Whether chat messages with its devices' users are kept in the audit log (chats then
        /// stay relayed).
        #[arg(long, value_name = "on|off")]
        transcripts: Option<Switch>,
        /// Whether desktop viewers may listen to its devices' microphones (the person at the
        /// device is shown a notice while they do).
        #[arg(long, value_name = "on|off")]
        microphone: Option<Switch>,
        #[command(flatten)]
        consent: ConsentFlags,
    },
    /// Delete a device group and its devices.
    Removegroup {
        /// Group id, or a name only one group has.
        group: String,
    },
    /// Every account (site administrators).
    Listusers,
    /// Create an account.
    Adduser {
        name: String,
        #[command(flatten)]
        password: NewPassword,
        #[arg(long, value_name = "E")]
        email: Option<String>,
        /// Make the account a site administrator.
        #[arg(long)]
        siteadmin: bool,
    },
    /// Delete an account.
    Removeuser { name: String },
    /// Set a new password for an account.
    Resetpassword {
        name: String,
        #[command(flatten)]
        password: NewPassword,
    },
    /// Change an account's e-mail address or site-administrator flag.
    Edituser {
        name: String,
        #[arg(long, value_name = "E")]
        email: Option<String>,
        #[arg(long, value_name = "true|false")]
        siteadmin: Option<bool>,
    },
    /// Set a user's rights on a device group ("none" removes them).
    Grouprights {
        #[arg(long, value_name = "G")]
        group: String,
        #[arg(long, value_name = "U")]
        user: String,
        /// full, none, a number, or names: view,manage,devices,desktop,viewonly,terminal,files,chat,power,events,uninstall
        #[arg(long, value_name = "LIST")]
        rights: String,
    },
    /// Devices you can see, optionally of one group.
    Listdevices {
        #[arg(long, value_name = "G")]
        group: Option<String>,
    },
    /// Make a device group's Intel AMT (CIRA) login: the MPS address, user, password (shown
    /// once) and the root certificate AMT must trust. A new login replaces the old one.
    Amtlogin {
        /// Group id, or a name only one group has.
        group: String,
    },
    /// Set the Intel AMT administrator account the server uses on a machine (its password as
    /// for adduser: --pass-env VAR, --pass -, or a prompt).
    Amtadmin {
        device: String,
        #[arg(long, value_name = "NAME")]
        user: String,
        #[command(flatten)]
        password: NewPassword,
    },
    /// Read or change an Intel AMT machine's power through its CIRA tunnel.
    Amtpower {
        device: String,
        /// state, on, off, reset or cycle.
        #[arg(value_parser = crate::amt::parse_power)]
        power: tether_common::control::AmtPowerAction,
    },
    /// A link to an Intel AMT machine's own web UI, proxied by the server through its CIRA
    /// tunnel and logged in with its AMT administrator; it works for 30 minutes, for you only.
    Amtweb { device: String },
    /// Give a device a new display name.
    Renamedevice {
        /// Device id, or a name only one device has.
        device: String,
        name: String,
    },
    /// Remove a device.
    Removedevice {
        device: String,
        /// Also refuse its id if its agent tries to enrol again (undo with unblockdevice).
        #[arg(long)]
        block: bool,
    },
    /// Have a device's agent remove itself (its service, files and identity); the device stays
    /// listed, offline, until removedevice.
    Uninstallagent { device: String },
    /// An interactive shell on a device (the local terminal goes into raw mode).
    Shell {
        /// Device id, or a name only one device has.
        #[arg(long, value_name = "D")]
        device: String,
        #[command(flatten)]
        direct: DirectArg,
        /// A login shell of this local account instead of the agent's own (needs a root agent).
        #[arg(long, value_name = "NAME")]
        as_user: Option<String>,
    },
    /// Run a command on a device; prints its output and exits with its exit status.
    Exec {
        /// Device id, or a name only one device has.
        #[arg(long, value_name = "D")]
        device: String,
        #[command(flatten)]
        direct: DirectArg,
        /// Run as this local account instead of the agent's own (needs a root agent).
        #[arg(long, value_name = "NAME")]
        as_user: Option<String>,
        /// The program and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Open a chat window for the person at a device's screen and say whether it opened. With
    /// --text, send that message and leave; else each line of standard input is a message, and
    /// theirs are printed, until input ends or they leave.
    Chat {
        /// Device id, or a name only one device has.
        #[arg(long, value_name = "D")]
        device: String,
        /// One message to send once the page has joined.
        #[arg(long, value_name = "T", allow_hyphen_values = true)]
        text: Option<String>,
    },
    /// Save a lossless PNG of a device's screen (through a desktop session, as the viewer does).
    Screenshot {
        /// Device id, or a name only one device has.
        #[arg(long, value_name = "D")]
        device: String,
        /// The PNG file to write (replaced atomically).
        #[arg(long, value_name = "FILE.png")]
        out: PathBuf,
        /// One monitor by its id (0 is the first); the whole screen when absent.
        #[arg(long, value_name = "N")]
        display: Option<u32>,
    },
    /// List a folder on a device (kind, size, modification time, permissions, name).
    Ls {
        /// Device id, or a name only one device has.
        #[arg(long, value_name = "D")]
        device: String,
        #[command(flatten)]
        direct: DirectArg,
        /// Absolute path on the device.
        path: String,
    },
    /// Send a local file to a device (REMOTE ending in / keeps the local name).
    Upload {
        #[arg(long, value_name = "D")]
        device: String,
        #[command(flatten)]
        direct: DirectArg,
        local: PathBuf,
        remote: String,
        /// Replace an existing file on the device.
        #[arg(long)]
        overwrite: bool,
        /// Resumable: if the upload breaks, the device keeps what arrived (for a day), and the
        /// same command with --resume again continues from there (the upload's resume id is
        /// kept in ~/.local/state/tether/uploads).
        #[arg(long)]
        resume: bool,
    },
    /// Fetch a file from a device: REMOTE LOCAL; or several files and folders as one zip:
    /// --zip OUT.zip PATH…
    Download {
        #[arg(long, value_name = "D")]
        device: String,
        #[command(flatten)]
        direct: DirectArg,
        /// Continue a partial download from the local file's length.
        #[arg(long, conflicts_with = "zip")]
        resume: bool,
        /// Fetch the PATHs (files or folders, recursively) as one zip file OUT.zip.
        #[arg(long, value_name = "OUT.zip")]
        zip: Option<PathBuf>,
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
    },
    /// Remove a file, link or empty folder on a device (a folder's contents only with --recursive).
    Rm {
        #[arg(long, value_name = "D")]
        device: String,
        #[command(flatten)]
        direct: DirectArg,
        path: String,
        #[arg(long, short = 'r')]
        recursive: bool,
    },
    /// Create a folder on a device.
    Mkdir {
        #[arg(long, value_name = "D")]
        device: String,
        #[command(flatten)]
        direct: DirectArg,
        path: String,
    },
    /// Move or rename a file or folder on a device (TO must not exist).
    Mv {
        #[arg(long, value_name = "D")]
        device: String,
        #[command(flatten)]
        direct: DirectArg,
        from: String,
        to: String,
    },
    /// Print a device group's .msh install file (MeshCentral format), or save it with --out.
    Agentconfig {
        /// Group id, or a name only one group has.
        #[arg(long, value_name = "G")]
        group: String,
        /// Write the file here (mode 0600) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Create a short-lived invite to a device group and print the command that installs an agent
    /// with it (it checks the server's root certificate against a fingerprint first).
    Invite {
        /// Group id, or a name only one group has.
        #[arg(long, value_name = "G")]
        group: String,
        /// Minutes the invite stays valid (1 to 10080, i.e. 7 days).
        #[arg(
            long,
            value_name = "N",
            default_value_t = tether_common::install::DEFAULT_INVITE_MINUTES,
            value_parser = clap::value_parser!(u32).range(1..=i64::from(tether_common::install::MAX_INVITE_MINUTES))
        )]
        minutes: u32,
        /// At most this many new devices may enrol with it (no limit but the expiry otherwise).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_devices: Option<u32>,
    },
    /// Replace a device group's enrolment key: .msh files handed out before admit no new device
    /// (enrolled devices keep connecting). Prints the new .msh, or saves it with --out.
    Rotatekey {
        #[arg(long, value_name = "G")]
        group: String,
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Move MeshCentral agents over: make a MeshCentral group's MeshID (from its .msh) this
    /// group's enrolment key, so its MeshAgents enrol here once they reach this server. Prints the
    /// group's new .msh (or writes it to --out).
    Importmeshid {
        #[arg(long, value_name = "G")]
        group: String,
        /// The MeshID: 0x and 96 hex digits.
        #[arg(
            long,
            value_name = "HEX",
            conflicts_with = "msh",
            required_unless_present = "msh"
        )]
        mesh_id: Option<String>,
        /// Or a MeshCentral .msh file to read it from.
        #[arg(long, value_name = "FILE")]
        msh: Option<PathBuf>,
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// A device group's invites (also revoked and expired ones).
    Listinvites {
        #[arg(long, value_name = "G")]
        group: String,
    },
    /// End an invite at once: its links and the .msh it served stop working.
    Revokeinvite {
        /// The invite id (see listinvites). Ids are base64url, so one may begin with `-`.
        #[arg(allow_hyphen_values = true)]
        invite: String,
    },
    /// Devices of a group kept from enrolling again (removedevice --block).
    Listblocked {
        #[arg(long, value_name = "G")]
        group: String,
    },
    /// Let a blocked device enrol again.
    Unblockdevice {
        /// The device id (see listblocked).
        #[arg(allow_hyphen_values = true)]
        device: String,
    },
    /// Make a guest link to one device: whoever has it opens that session without an account,
    /// until it expires or is revoked (unshare). Prints the link, shown this once.
    Share {
        #[arg(long, value_name = "D")]
        device: String,
        #[arg(long, value_name = "desktop-view|desktop-control|terminal|files")]
        kind: ShareChoice,
        /// How long the link lasts (1 to 10080 minutes, a week).
        #[arg(long, value_name = "N", default_value_t = 60)]
        minutes: u32,
        /// The link opens one session, then no more.
        #[arg(long)]
        single_use: bool,
        /// Who it is for (shown to you in lists, and to the person at the device).
        #[arg(long, value_name = "TEXT", default_value = "")]
        label: String,
    },
    /// Guest links you may see (those of one device with --device), newest first.
    Shares {
        #[arg(long, value_name = "D")]
        device: Option<String>,
    },
    /// End a guest link and every session opened with it.
    Unshare {
        /// The link's id (see shares); base64url, so it may begin with `-`.
        #[arg(allow_hyphen_values = true)]
        share: String,
    },
    /// Agent self-update in waves (site admins): what the server ships, and the campaign.
    Update {
        #[command(subcommand)]
        step: UpdateStep,
    },
    /// Recorded sessions you may see (those of one device with --device), newest first.
    Recordings {
        #[arg(long, value_name = "D")]
        device: Option<String>,
    },
    /// Save one recorded session to a file: as recorded, or with --asciicast (terminal sessions)
    /// as asciicast v2 for asciinema and other players.
    Recording {
        /// The recording id (see recordings); base64url, so it may begin with `-`.
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
        #[arg(long)]
        asciicast: bool,
    },
    /// The audit log, newest first (--json for every field, to keep or feed elsewhere).
    Events {
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        #[arg(long, value_name = "G")]
        group: Option<String>,
        /// Only records about this device.
        #[arg(long, value_name = "D")]
        device: Option<String>,
        /// Only records about this account.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Only this kind (login, login_failed, session_ended, …).
        #[arg(long, value_name = "KIND")]
        kind: Option<String>,
        /// Only records whose message contains this, ignoring case.
        #[arg(long, value_name = "TEXT")]
        text: Option<String>,
        /// Only the last this many hours.
        #[arg(long, value_name = "H")]
        hours: Option<u32>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        let mut argv = vec![
            "tetherctl",
            "--url",
            "wss://h:1",
            "--user",
            "u",
            "--pass",
            "p",
        ];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().command
    }

    #[test]
    fn ids_that_begin_with_a_hyphen_are_ids_not_options() {
        // base64url ids start with `-` one time in 64 (this once failed CI, on an invite).
        match parse(&["revokeinvite", "-X3AOj_v_cva_hSJ"]) {
            Command::Revokeinvite { invite } => assert_eq!(invite, "-X3AOj_v_cva_hSJ"),
            other => panic!("{other:?}"),
        }
        match parse(&["unshare", "-abc"]) {
            Command::Unshare { share } => assert_eq!(share, "-abc"),
            other => panic!("{other:?}"),
        }
        match parse(&["recording", "-r1", "--out", "f"]) {
            Command::Recording { id, .. } => assert_eq!(id, "-r1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_new_password_comes_from_one_place() {
        match parse(&["adduser", "bob", "--pass-env", "BOB_PW"]) {
            Command::Adduser { password, .. } => {
                assert_eq!(
                    (password.pass, password.pass_env.as_deref()),
                    (None, Some("BOB_PW"))
                );
            }
            other => panic!("{other:?}"),
        }
        match parse(&["resetpassword", "bob", "--pass", "-"]) {
            Command::Resetpassword { password, .. } => {
                assert_eq!(password.pass.as_deref(), Some("-"));
            }
            other => panic!("{other:?}"),
        }
        let both = Cli::try_parse_from([
            "tetherctl",
            "--url",
            "wss://h:1",
            "--user",
            "u",
            "--pass",
            "p",
            "adduser",
            "bob",
            "--pass",
            "x",
            "--pass-env",
            "V",
        ]);
        assert!(both.is_err(), "--pass and --pass-env together");
    }

    #[test]
    fn shell_and_exec_may_name_an_account() {
        match parse(&["shell", "--device", "d", "--as-user", "alice"]) {
            Command::Shell {
                device, as_user, ..
            } => {
                assert_eq!((device.as_str(), as_user.as_deref()), ("d", Some("alice")));
            }
            other => panic!("{other:?}"),
        }
        match parse(&[
            "exec",
            "--device",
            "d",
            "--as-user",
            "nobody",
            "--",
            "id",
            "-un",
        ]) {
            Command::Exec {
                as_user, command, ..
            } => {
                assert_eq!(as_user.as_deref(), Some("nobody"));
                assert_eq!(command, ["id", "-un"]);
            }
            other => panic!("{other:?}"),
        }
        // After `--`, `--as-user` belongs to the remote command.
        match parse(&["exec", "--device", "d", "--", "echo", "--as-user", "x"]) {
            Command::Exec {
                as_user, command, ..
            } => {
                assert_eq!(as_user, None);
                assert_eq!(command, ["echo", "--as-user", "x"]);
            }
            other => panic!("{other:?}"),
        }
    }
}

/// `--direct` on the session commands (shell, exec, file commands).
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct DirectArg {
    /// Move the session onto a direct WebRTC path to the device once one is up. auto (the
    /// default): try, and stay relayed quietly when none comes up; always: fail when none comes up
    /// within 10 s; never: stay on the relay (faster for bulk transfers on a LAN or loopback: the
    /// data channel tops out near 15-20 MB/s). TETHER_DEBUG=1 says which path was used.
    #[arg(long = "direct", value_enum, default_value_t = DirectMode::Auto, env = "TETHER_DIRECT", value_name = "auto|never|always")]
    pub mode: DirectMode,
}

impl Command {
    /// What `--direct` says for this command (`auto` for commands without sessions).
    pub(crate) fn direct_mode(&self) -> DirectMode {
        match self {
            Command::Shell { direct, .. }
            | Command::Exec { direct, .. }
            | Command::Ls { direct, .. }
            | Command::Upload { direct, .. }
            | Command::Download { direct, .. }
            | Command::Rm { direct, .. }
            | Command::Mkdir { direct, .. }
            | Command::Mv { direct, .. } => direct.mode,
            _ => DirectMode::Auto,
        }
    }
}

/// `--direct`: whether sessions try a direct path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DirectMode {
    Auto,
    Never,
    Always,
}

/// A group's consent policy, part by part: what the person at a device is shown or asked.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ConsentFlags {
    /// Desktop sessions: nothing shown, a notice while connected, or a prompt to accept first.
    #[arg(long, value_name = "none|notify|prompt")]
    pub consent_desktop: Option<ConsentChoice>,
    #[arg(long, value_name = "none|notify|prompt")]
    pub consent_terminal: Option<ConsentChoice>,
    #[arg(long, value_name = "none|notify|prompt")]
    pub consent_files: Option<ConsentChoice>,
    /// Seconds the person at the device has to accept (5 to 300).
    #[arg(long, value_name = "SECS")]
    pub consent_secs: Option<u16>,
    /// With nobody signed in at the device: start the session anyway, or refuse it.
    #[arg(long, value_name = "allow|refuse")]
    pub consent_nobody: Option<NobodyChoice>,
}

impl ConsentFlags {
    /// `current` with the parts given on the command line changed; `None` when none was.
    pub(crate) fn apply(&self, current: ConsentPolicy) -> Option<ConsentPolicy> {
        let mut policy = current;
        let mode = |choice: ConsentChoice| match choice {
            ConsentChoice::None => ConsentMode::None,
            ConsentChoice::Notify => ConsentMode::Notify,
            ConsentChoice::Prompt => ConsentMode::Prompt,
        };
        let mut changed = false;
        for (flag, field) in [
            (self.consent_desktop, &mut policy.desktop),
            (self.consent_terminal, &mut policy.terminal),
            (self.consent_files, &mut policy.files),
        ] {
            if let Some(choice) = flag {
                *field = mode(choice);
                changed = true;
            }
        }
        if let Some(secs) = self.consent_secs {
            policy.prompt_secs = secs;
            changed = true;
        }
        if let Some(nobody) = self.consent_nobody {
            policy.when_nobody = match nobody {
                NobodyChoice::Allow => WhenNobody::Allow,
                NobodyChoice::Refuse => WhenNobody::Refuse,
            };
            changed = true;
        }
        changed.then_some(policy)
    }
}

#[derive(Subcommand, Debug)]
pub(crate) enum UpdateStep {
    /// The agent version the server ships and how the campaign stands.
    Status,
    /// Update the agents (of one group with --group) to the version the server ships.
    Start {
        #[arg(long, value_name = "G")]
        group: Option<String>,
        /// Cumulative percentages, rising to 100.
        #[arg(
            long,
            value_name = "P,P,…",
            value_delimiter = ',',
            default_value = "1,10,50,100"
        )]
        waves: Vec<u8>,
        /// Seconds each device has to come back on the new version.
        #[arg(long, value_name = "SECS", default_value_t = 600)]
        wave_timeout: u64,
        /// More failures than this in one wave pause the campaign and roll those devices back.
        #[arg(long, value_name = "N", default_value_t = 0)]
        max_failures: usize,
    },
    /// Hold the campaign (offers already out still finish).
    Pause,
    /// Go on with a paused campaign.
    Resume,
    /// End the campaign; updated agents stay updated.
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ShareChoice {
    DesktopView,
    DesktopControl,
    Terminal,
    Files,
}

impl ShareChoice {
    pub(crate) fn kind(self) -> tether_common::share::ShareKind {
        use tether_common::share::ShareKind;
        match self {
            ShareChoice::DesktopView => ShareKind::DesktopView,
            ShareChoice::DesktopControl => ShareKind::DesktopControl,
            ShareChoice::Terminal => ShareKind::Terminal,
            ShareChoice::Files => ShareKind::Files,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ConsentChoice {
    None,
    Notify,
    Prompt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum NobodyChoice {
    Allow,
    Refuse,
}

/// An on/off setting on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Switch {
    On,
    Off,
}

impl Switch {
    pub(crate) fn is_on(self) -> bool {
        self == Switch::On
    }
}
