//! The address a request comes from, as the rate limits and the audit log should see it.
//!
//! Directly connected, that is the socket's peer. Behind a reverse proxy (`--tlsoffload`) every
//! request comes from the proxy, so all clients would share one login budget and the audit log
//! would name the proxy. The proxy's `X-Forwarded-For` is believed only when the connection comes
//! from a configured trusted proxy (`trusted_proxies`); then the client is the right-most entry
//! that is not itself a trusted proxy (entries to its left were written by the client and prove
//! nothing). A header from anyone else is ignored, so it cannot be used to dodge the limits.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::state::AppState;

const FORWARDED_FOR: &str = "x-forwarded-for";

/// Extractor: the request's client address (see the module notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Every connection is served with its peer address (see `serve`); a missing one is a
        // router used without it (unit tests), where the unspecified address is the honest answer.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        Ok(ClientIp(client_ip(
            peer,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

/// The client behind `peer`, given the proxies whose headers are believed.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(&ip.to_canonical()));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Option<Vec<IpAddr>> = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .map(|value| value.to_str().ok())
        .collect::<Option<Vec<&str>>>()
        .and_then(|values| {
            values
                .iter()
                .flat_map(|v| v.split(','))
                .map(|hop| hop.trim().parse::<IpAddr>().ok())
                .collect()
        });
    match hops {
        // Walk back from the proxy that connected to us; the first untrusted hop is the client.
        Some(hops) => hops
            .iter()
            .rev()
            .find(|hop| !is_trusted(hop))
            .or(hops.first())
            .copied()
            .unwrap_or(peer),
        None => {
            tracing::warn!(%peer, "a trusted proxy sent an unreadable X-Forwarded-For; using its address");
            peer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let headers = forwarded(&["203.0.113.9"]);
        assert_eq!(
            client_ip(ip("198.51.100.1"), &headers, &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &headers, &[]), ip("10.0.0.1"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
        let trusted = [
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        // The client forged the first entry; the proxies appended the real one and themselves.
        let headers = forwarded(&["1.2.3.4, 203.0.113.9", "10.1.1.1"]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &headers, &trusted),
            ip("203.0.113.9")
        );
        let v6 = forwarded(&["2001:db8::7"]);
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &v6, &trusted),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn no_or_bad_header_from_a_trusted_proxy_falls_back_to_the_proxy() {
        let trusted = ["127.0.0.1/32".parse().unwrap()];
        assert_eq!(
            client_ip(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), &forwarded(&["not-an-ip"]), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), &forwarded(&["127.0.0.1"]), &trusted),
            ip("127.0.0.1"),
            "all hops trusted: the first is the client"
        );
    }
}
