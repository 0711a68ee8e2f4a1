// Kept here, not in the workspace [lints], because they must not reach the integration tests
// (see CONTRIBUTING.md, "Lints").
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
mod password_input;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tether_server::accounts;
use tether_server::config::{Cli, Command, Config, StoreLocation};
use tether_server::serve::Listeners;
use tether_server::store::StoreError;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            // PostgreSQL's notices ("relation … already exists, skipping") are not news.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx::postgres::notice=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match start(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tether-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn start(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Migrate { from, to }) = &cli.command {
        return migrate(from, to).await;
    }
    let config = Config::load(&cli)?;
    let account = cli.createaccount.as_ref().or(cli.resetaccount.as_ref());
    let Some(name) = account else {
        return serve(config).await;
    };
    let password = password_input::account_password(cli.pass.as_deref(), name)?;
    let password = password.as_str();
    tether_server::ensure_private_dir(config.datapath())?;
    let store = match tether_server::store::open(&config).await {
        Err(StoreError::Locked) => anyhow::bail!(
            "the database is in use by a running tether-server; stop it first, or use tetherctl adduser against it"
        ),
        opened => opened.context("opening the database")?,
    };
    if cli.createaccount.is_some() {
        let user =
            accounts::create_account(store.as_ref(), name, password, cli.email.clone()).await?;
        let role = if user.site_admin {
            " (site administrator)"
        } else {
            ""
        };
        println!("created account {}{role}", user.name);
    } else {
        let user = accounts::reset_password(store.as_ref(), name, password).await?;
        println!("password of {} reset; their sessions have ended", user.name);
    }
    Ok(())
}

/// `tether-server migrate`: copies one database into another and prints what was verified.
async fn migrate(from: &StoreLocation, to: &StoreLocation) -> anyhow::Result<()> {
    let open = |location, role| async move {
        match tether_server::store::open_location(location, 4).await {
            Err(StoreError::Locked) => anyhow::bail!(
                "the {role} database is in use by a running tether-server; stop it first"
            ),
            opened => opened.with_context(|| format!("opening the {role} database")),
        }
    };
    let source = open(from, "source").await?;
    let target = open(to, "target").await?;
    let counts = tether_server::store::snapshot::copy(source.as_ref(), target.as_ref())
        .await
        .context("copying")?;
    for count in counts {
        let extra = count.target - count.source.min(count.target);
        let note = if extra > 0 {
            format!(" ({extra} more were already in the target)")
        } else {
            String::new()
        };
        println!(
            "{:>22}: {} copied and verified{note}",
            count.table, count.source
        );
    }
    Ok(())
}

/// The process-wide set-up a library caller of [`tether_server::run`] does not want: the crypto
/// provider, the open-file limit and the signals that stop the server.
async fn serve(config: Config) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    raise_open_file_limit();
    // Bound before the (slow, first-run) certificate generation, so a busy port fails at once.
    let listeners = Listeners::bind(&config).await?;
    tether_server::run(config, listeners, shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when it is
/// first polled, so a signal that arrives right after the "listening" line is not missed.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot listen for SIGINT/SIGTERM; stop the server with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Every connected agent holds a socket, so the soft open-file limit (often 1,024 from a login
/// shell or systemd) would cap the server at about that many agents: lift it to the hard limit,
/// and say what the cap is.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!(from = soft, to = hard, "open-file limit raised"),
            Err(e) => tracing::warn!(
                limit = soft,
                "cannot raise the open-file limit ({e}); at most about that many agents can connect"
            ),
        },
        Ok((soft, _)) => tracing::debug!(limit = soft, "open-file limit"),
        Err(e) => tracing::warn!("cannot read the open-file limit: {e}"),
    }
}
