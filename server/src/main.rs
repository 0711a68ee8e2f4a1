mod password_input;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tether_server::auth::accounts;
use tether_server::config::{Cli, Config};
use tether_server::store::StoreError;
use tether_server::store::redb::RedbStore;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
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
    let config = Config::load(&cli)?;
    let account = cli.createaccount.as_ref().or(cli.resetaccount.as_ref());
    let Some(name) = account else {
        return tether_server::run(config).await;
    };
    let password = password_input::account_password(cli.pass.as_deref(), name)?;
    let password = password.as_str();
    tether_server::certs::ensure_private_dir(config.datapath())?;
    let store = match RedbStore::open(&config.data_file("tether.redb")) {
        Err(StoreError::Locked) => anyhow::bail!(
            "the database is in use by a running tether-server; stop it first, or use tetherctl adduser against it"
        ),
        opened => opened.context("opening the database")?,
    };
    if cli.createaccount.is_some() {
        let user = accounts::create_account(&store, name, password, cli.email.clone()).await?;
        let role = if user.site_admin {
            " (site administrator)"
        } else {
            ""
        };
        println!("created account {}{role}", user.name);
    } else {
        let user = accounts::reset_password(&store, name, password).await?;
        println!("password of {} reset; their sessions have ended", user.name);
    }
    Ok(())
}
