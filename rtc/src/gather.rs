//! Server-reflexive candidates: each local socket asks the STUN servers the session's ticket names
//! (the Tether server's own STUN port, `server/src/stun.rs`) where it is seen from. Behind a NAT
//! that is the public address and port the NAT mapped; offered beside the host candidates, it lets
//! a peer outside the NAT reach us. Bounded: no answer within [`STUN_WAIT`] (a server that does
//! not answer, a network that drops UDP) just means host candidates only.

use std::net::SocketAddr;
use std::time::Duration;

use tether_common::stun::{TransactionId, binding_request, parse_binding_success};
use tokio::net::UdpSocket;

/// How long gathering may delay an offer or an answer.
pub(crate) const STUN_WAIT: Duration = Duration::from_millis(800);
/// At most this many STUN servers are asked (a ticket names one today).
const MAX_SERVERS: usize = 4;

/// `stun:host:port` (RFC 7064; `[v6]` in brackets, port 3478 when absent) → host and port.
/// Anything else (`turn:`, `stuns:`, a malformed URL) is not ours to ask: `None`.
pub(crate) fn parse_stun_url(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("stun:")?;
    let rest = rest.split(['?', '/']).next()?;
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(port) => port.parse().ok()?,
                None if after.is_empty() => 3478,
                None => return None,
            };
            (host, port)
        }
        None => match rest.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (rest, 3478),
        },
    };
    (!host.is_empty() && (!host.contains(':') || url.contains('[')))
        .then(|| (host.to_owned(), port))
}

/// The STUN servers' addresses, resolved (names through the system resolver, within the wait).
pub(crate) async fn stun_servers(urls: &[String]) -> Vec<SocketAddr> {
    let mut servers = Vec::new();
    for (host, port) in urls
        .iter()
        .filter_map(|url| parse_stun_url(url))
        .take(MAX_SERVERS)
    {
        match tokio::time::timeout(STUN_WAIT, tokio::net::lookup_host((host.as_str(), port))).await
        {
            Ok(Ok(addresses)) => servers.extend(addresses),
            Ok(Err(e)) => tracing::debug!("direct: cannot resolve STUN server {host}: {e}"),
            Err(_) => tracing::debug!("direct: resolving STUN server {host} took too long"),
        }
    }
    servers
}

/// Where `socket` is seen from by the first of `servers` (of its address family) to answer,
/// within [`STUN_WAIT`]; `None` when none does.
pub(crate) async fn reflexive(socket: &UdpSocket, servers: &[SocketAddr]) -> Option<SocketAddr> {
    let local = socket.local_addr().ok()?;
    let id = TransactionId(rand::random());
    let request = binding_request(id);
    let mut asked = false;
    for server in servers.iter().filter(|s| s.is_ipv4() == local.is_ipv4()) {
        asked |= socket.send_to(&request, server).await.is_ok();
    }
    if !asked {
        return None;
    }
    let answer = async {
        let mut buffer = [0u8; 576];
        loop {
            let (n, from) = socket.recv_from(&mut buffer).await.ok()?;
            if !servers.contains(&from) {
                continue;
            }
            if let Some(seen) = parse_binding_success(&buffer[..n], id) {
                return Some(seen);
            }
        }
    };
    tokio::time::timeout(STUN_WAIT, answer).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stun_urls_and_skips_the_rest() {
        let parsed = |url: &str| parse_stun_url(url);
        assert_eq!(
            parsed("stun:tether.example:8443"),
            Some(("tether.example".into(), 8443))
        );
        assert_eq!(parsed("stun:192.0.2.1"), Some(("192.0.2.1".into(), 3478)));
        assert_eq!(
            parsed("stun:[2001:db8::1]:5000"),
            Some(("2001:db8::1".into(), 5000))
        );
        assert_eq!(
            parsed("stun:[2001:db8::1]"),
            Some(("2001:db8::1".into(), 3478))
        );
        assert_eq!(
            parsed("stun:h:8443?transport=udp"),
            Some(("h".into(), 8443))
        );
        for other in [
            "turn:h:3478",
            "stuns:h:5349",
            "stun:",
            "stun:h:notaport",
            "stun:[::1",
            "stun:2001:db8::1",
        ] {
            assert_eq!(parsed(other), None, "{other}");
        }
    }
}
