use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = tether_server::config::Cli::parse();
    let config = tether_server::config::Config::load(&cli)?;
    tether_server::run(config).await
}
