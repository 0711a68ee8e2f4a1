//! The server the agents dial, from the `.msh`: its first `MeshServer` URL, resolved once.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use rustls::pki_types::ServerName;
use tether_common::msh::Msh;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::http::Uri;

use crate::sim::Target;

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The parts of a `wss://host[:port]/path` URL the agents need.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct WssUrl {
    /// Without IPv6 brackets.
    pub host: String,
    pub port: u16,
}

pub(crate) fn parse_wss_url(url: &str) -> anyhow::Result<WssUrl> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("MeshServer {url:?} is not a URL"))?;
    if uri.scheme_str() != Some("wss") {
        // The handshake hashes the server's TLS certificate: there is none without TLS.
        bail!("MeshServer {url:?} must be a wss:// URL");
    }
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("MeshServer {url:?} has no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok(WssUrl {
        host,
        port: uri.port_u16().unwrap_or(443),
    })
}

pub(crate) async fn resolve(msh: &Msh) -> anyhow::Result<Target> {
    let url = msh
        .servers()
        .next()
        .context("the .msh names no MeshServer")?
        .to_owned();
    let parts = parse_wss_url(&url)?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((parts.host.as_str(), parts.port))
        .await
        .with_context(|| format!("cannot resolve {}", parts.host))?
        .collect();
    let addr = reachable(&addrs)
        .await
        .with_context(|| format!("{} has no address", parts.host))?;
    let server_name = ServerName::try_from(parts.host.clone())
        .with_context(|| format!("{} is not a host name", parts.host))?;
    Ok(Target {
        url,
        addr,
        server_name,
        server_id: msh.server_id,
        mesh_id: msh.mesh_id,
    })
}

/// The first address that accepts a TCP connection, as an agent trying them in turn would settle
/// on (`localhost` may resolve to `::1` first while the server listens on 127.0.0.1 only); the
/// first address if none does, so the agents report the failure themselves.
async fn reachable(addrs: &[SocketAddr]) -> Option<SocketAddr> {
    for addr in addrs {
        if let Ok(Ok(_probe)) = timeout(PROBE_TIMEOUT, TcpStream::connect(addr)).await {
            return Some(*addr);
        }
    }
    addrs.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_host_and_port() {
        let parsed = parse_wss_url("wss://tether.example:8443/agent.ashx").unwrap();
        assert_eq!(
            parsed,
            WssUrl {
                host: "tether.example".into(),
                port: 8443
            }
        );
        assert_eq!(
            parse_wss_url("wss://10.0.0.1/agent.ashx").unwrap().port,
            443
        );
        assert_eq!(
            parse_wss_url("wss://[::1]:9/agent.ashx").unwrap().host,
            "::1"
        );
    }

    #[test]
    fn refuses_what_cannot_carry_the_handshake() {
        assert!(parse_wss_url("ws://tether.example/agent.ashx").is_err());
        assert!(parse_wss_url("https://tether.example/agent.ashx").is_err());
        assert!(parse_wss_url("not a url").is_err());
    }
}
