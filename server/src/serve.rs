//! Listeners and start-up. STUB: being written.

pub async fn run(_config: crate::config::Config) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
