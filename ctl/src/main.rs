//! `tetherctl`: log in to a Tether server and run one command over its control channel.
//!
//! Every failure ends with exit status 1 and exactly one line `tetherctl: <reason>` on stderr, so
//! scripts can test `$?` and show the line.

// Kept here, not in the workspace [lints], because they must not reach the integration tests
// (see CONTRIBUTING.md, "Lints").
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod amt;
mod chat;
mod cli;
mod commands;
mod connection;
mod direct;
mod enrolment;
mod exec;
mod files;
mod install;
mod login;
mod output;
mod password;
mod relay;
mod screenshot;
mod shares;
mod shell;
mod target;
mod trust;
mod updates;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // `TETHER_LOG=debug` (any tracing filter) shows what the direct path and the relay do; by
    // default tetherctl prints only the command's own output and its errors.
    if let Some(filter) = std::env::var_os("TETHER_LOG").and_then(|f| f.into_string().ok()) {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&anyhow::anyhow!("cannot start: {e}")),
    };
    let result = runtime.block_on(async {
        let result = commands::run(cli).await;
        direct::wait_for_ends().await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `exec` and `shell` exit with the remote program's status, silently.
        Err(e) if e.downcast_ref::<relay::RemoteExit>().is_some() => {
            let status = e.downcast_ref::<relay::RemoteExit>().map_or(1, |r| r.0);
            ExitCode::from(u8::try_from(status).unwrap_or(255))
        }
        Err(e) => fail(&e),
    }
}

fn fail(error: &anyhow::Error) -> ExitCode {
    // `{:#}` joins the context chain with ": "; messages never span lines. They may quote the
    // server, an agent or a file name, so control characters are shown escaped.
    let line = format!("{error:#}").replace(['\n', '\r'], " ");
    eprintln!("tetherctl: {}", output::printable(&line));
    ExitCode::FAILURE
}
