//! The Origin check of the WebSocket upgrade.
//!
//! Browsers attach cookies to cross-site WebSocket requests (SameSite does not cover every case,
//! e.g. a sibling subdomain), and a WebSocket is not subject to CORS; so a page elsewhere could open
//! `/control` as the logged-in user. Browsers always send `Origin`; tools usually do not, and a
//! tool holding the cookie needs no trickery, so an absent Origin is fine.

/// True when there is no Origin, or when its host (and port) is the one the request was sent to.
pub(crate) fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Some(host) = host else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        // Includes the opaque origin "null" (sandboxed frames, file://).
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return false,
    };
    let normalize = |authority: &str| -> String {
        let authority = authority.trim_end_matches('/').to_ascii_lowercase();
        match authority.rsplit_once(':') {
            // "[::1]:443" splits at the port; a bare "[::1]" ends with ']' and keeps its colons.
            Some((name, port)) if port == default_port && !name.is_empty() => name.to_owned(),
            _ => authority,
        }
    };
    normalize(authority) == normalize(host)
}

#[cfg(test)]
mod tests {
    use super::same_origin;

    #[test]
    fn tools_without_origin_are_fine() {
        assert!(same_origin(None, Some("localhost:8443")));
        assert!(same_origin(None, None));
    }

    #[test]
    fn the_same_host_and_port_match_ignoring_case_and_default_ports() {
        assert!(same_origin(
            Some("https://LocalHost:8443"),
            Some("localhost:8443")
        ));
        assert!(same_origin(
            Some("https://example.com"),
            Some("example.com:443")
        ));
        assert!(same_origin(Some("https://[::1]:8443"), Some("[::1]:8443")));
    }

    #[test]
    fn other_sites_ports_and_opaque_origins_are_refused() {
        assert!(!same_origin(
            Some("https://evil.example"),
            Some("localhost:8443")
        ));
        assert!(!same_origin(
            Some("https://localhost:9999"),
            Some("localhost:8443")
        ));
        assert!(!same_origin(Some("null"), Some("localhost:8443")));
        assert!(!same_origin(Some("https://localhost:8443"), None));
        assert!(!same_origin(
            Some("ftp://localhost:8443"),
            Some("localhost:8443")
        ));
    }
}
