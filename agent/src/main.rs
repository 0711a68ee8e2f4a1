//! tether-agent: runs on a managed machine and keeps a control channel open to the server.

// Kept here, not in the workspace [lints], because they must not reach the integration tests
// (see CONTRIBUTING.md, "Lints").
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod agent;
mod chat_open;
#[cfg(feature = "desktop")]
mod desktop;
mod files;
mod handshake;
mod identity;
mod memory;
mod pin;
mod relay;
mod screen_notice;
mod seat;
mod service;
mod session;
mod sysinfo;
mod tls;
mod uninstall;
mod update;
mod version;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tether_common::msh::Msh;

#[derive(Parser)]
#[command(name = "tether-agent", version = version::VERSION, about = "Tether agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to the server named in the .msh file and stay connected (foreground).
    Run(RunArgs),
    /// Stop the agent and remove what its install script installed (service, files, identity).
    Uninstall {
        /// The install folder (default: the folder this program is in).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Install policy (MeshCentral .msh format): server URL, ServerID, device group.
    #[arg(long, value_name = "FILE.msh")]
    config: PathBuf,
    /// Folder for the agent's identity and pinned server certificate (made 0700).
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// Make an RSA-2048 identity instead of RSA-3072 on first start (for slow devices).
    #[arg(long)]
    small_key: bool,
    /// Seconds to connect and authenticate before retrying.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    handshake_timeout: u64,
    /// Seconds between keepalive pings.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    ping_interval: u64,
    /// Reconnect after this many seconds without hearing from the server.
    #[arg(long, value_name = "SECS", default_value_t = 150)]
    idle_timeout: u64,
    /// File sessions may only use this folder and what is below it.
    #[arg(long, value_name = "DIR", default_value = "/")]
    files_root: PathBuf,
    /// The X display remote-desktop sessions show (XAUTHORITY is read from the environment).
    #[arg(long, value_name = "DISPLAY", env = "DISPLAY")]
    x_display: Option<String>,
    /// The program that opens the messenger page in the logged-in user's session, given the
    /// page's URL (run as that user).
    #[arg(long, value_name = "PROGRAM", default_value = "xdg-open")]
    chat_opener: PathBuf,
    /// An update's trial run: connect and authenticate once, then exit (0 on success).
    #[arg(long = "update-trial", hide = true)]
    update_trial: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match Cli::parse().command {
        Command::Run(args) => args,
        Command::Uninstall { dir } => return uninstall::run(dir),
    };
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let msh = Msh::parse(&text).with_context(|| format!("reading {}", args.config.display()))?;
    let timing = agent::Timing {
        handshake_timeout: Duration::from_secs(args.handshake_timeout.max(1)),
        ping_interval: Duration::from_secs(args.ping_interval.max(1)),
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
    };
    let mut agent = agent::Agent::new(msh, args.state, args.small_key, timing)?;
    agent.files_root = args.files_root;
    agent.chat_opener = args.chat_opener;
    agent.install_dir = args.config.parent().map(std::path::Path::to_path_buf);
    agent.updater =
        update::Updater::of_this_process(agent.install_dir.clone(), agent.state_dir.clone());
    agent.x_display = args.x_display.filter(|display| usable_x_display(display));
    if args.update_trial {
        return agent.trial().await;
    }
    agent.updater.watch_probation();
    agent.run().await
}

/// Whether an X display name is one the agent should try: `[host]:N[.S]` with N a display number
/// whose TCP port (6000 + N) exists. Others are logged and ignored, so a stray `$DISPLAY` cannot
/// stop the agent, and the X library never sees a number it would overflow on.
fn usable_x_display(name: &str) -> bool {
    let name = name.trim();
    if name.is_empty() {
        return false;
    }
    let number = name
        .rsplit_once(':')
        .map(|(_, rest)| rest.split('.').next().unwrap_or_default());
    let usable = number
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n <= u32::from(u16::MAX) - 6000);
    if !usable {
        tracing::warn!(
            display = name,
            "ignoring an unusable X display name; desktop sessions are off"
        );
    }
    usable
}

#[cfg(test)]
mod tests {
    use super::usable_x_display;

    #[test]
    fn x_display_names_are_checked() {
        for good in [
            ":0",
            ":12.0",
            "localhost:3",
            "/tmp/.X11-unix/X0:0",
            ":59535",
        ] {
            assert!(usable_x_display(good), "{good}");
        }
        for bad in ["", "  ", "0", ":", ":x", ":59536", ":99999", "host"] {
            assert!(!usable_x_display(bad), "{bad}");
        }
    }
}
