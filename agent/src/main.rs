//! tether-agent: the endpoint side. Its control channel arrives with the agent issue.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("tether-agent: not implemented yet")
}
