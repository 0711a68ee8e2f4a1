//! The server address from `--url`.

use anyhow::{Context, bail};
use rustls_pki_types::ServerName;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// As written, without brackets around an IPv6 address.
    pub host: String,
    pub port: u16,
}

impl Target {
    /// Accepts `wss://host[:port][/…]` and `https://…` (the port defaults to 443).
    pub(crate) fn parse(url: &str) -> anyhow::Result<Target> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            bail!("--url must look like wss://HOST:PORT, not {url:?}");
        };
        if !matches!(scheme.to_ascii_lowercase().as_str(), "wss" | "https") {
            bail!("--url must start with wss:// or https:// (tetherctl only speaks TLS)");
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6
                    .split_once(']')
                    .context("--url has an unclosed '[' in its host")?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            bail!("--url has no host name");
        }
        let port = match port {
            Some(port) => port
                .parse()
                .with_context(|| format!("--url has a bad port {port:?}"))?,
            None => 443,
        };
        Ok(Target {
            host: host.to_owned(),
            port,
        })
    }

    /// `host:port` as it goes into a Host header and the known-servers file.
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub(crate) fn server_name(&self) -> anyhow::Result<ServerName<'static>> {
        ServerName::try_from(self.host.clone())
            .with_context(|| format!("{:?} is not a valid host name", self.host))
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn parses_hosts_ports_and_ipv6() {
        let t = Target::parse("wss://LocalHost:8443/control").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("LocalHost", 8443));
        assert_eq!(Target::parse("https://tether.example").unwrap().port, 443);
        let v6 = Target::parse("wss://[::1]:9000").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 9000));
        assert_eq!(v6.authority(), "[::1]:9000");
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        assert!(Target::parse("ws://localhost:80").is_err());
        assert!(Target::parse("localhost:443").is_err());
        assert!(Target::parse("wss://:443").is_err());
        assert!(Target::parse("wss://host:http").is_err());
    }
}
