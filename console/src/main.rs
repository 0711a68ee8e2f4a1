// Kept here, not in the workspace [lints], because they must not reach the integration tests
// (see CONTRIBUTING.md, "Lints").
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
// No console window behind the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod app;
mod call;
mod commands;
mod direct;
mod microphone;
mod navigation;
mod notify;
mod probe;
mod raw_invoke;
mod remote_access;
mod server_menu;
mod servers;
mod sound;
mod tray;
mod webview_trust;

use clap::Parser;

/// Tether's desktop console.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// Open this server (https://…) at start, skipping the server picker.
    #[arg(long, requires = "accept_fingerprint")]
    server: Option<String>,
    /// The SHA-256 fingerprint the server's certificate must have (accepted and remembered);
    /// the console exits with status 3 if the server presents another one.
    #[arg(long, requires = "server")]
    accept_fingerprint: Option<String>,
}

fn main() -> anyhow::Result<()> {
    app::run(Cli::parse())
}
