//! The HTTP surface: every feature's routes merged into one router, the console page, a health
//! check, security headers on every response, and the plain-HTTP redirect port. The console
//! (TypeScript, built by build.rs and embedded) is served from [`console`].

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

pub(crate) mod client_ip;
mod console;
pub(crate) mod error;

/// Largest request body any handler reads (JSON API calls are tiny).
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// No inline script anywhere (`script-src 'self'`), so scripts injected into a page cannot run.
///
/// Why styles alone allow `'unsafe-inline'`: the terminal (xterm.js) measures the font at run time
/// and writes its cell sizes, cursor and colour rules into `<style>` elements it creates; no nonce
/// or hash can cover CSS generated in the browser, and xterm.js has no option to do without it.
/// Injected CSS cannot run code; what it can do (restyle or overlay parts of the page, or leak
/// attribute values through `url()` requests) is bounded by `default-src`/`img-src 'self'`, which
/// keep such requests on this origin, and by `frame-ancestors 'none'`. Scripts, objects, frames
/// and connections stay as strict as before.
///
/// Connections: `connect-src 'self'` alone. Under CSP Level 3, `'self'` on an https page also
/// matches `wss://` to the same host and port (and `ws://` on an http page, behind
/// `--tlsoffload`), which is all the console opens (`/control`, the relay); the old `wss: ws:`
/// let an injected script send data to any host. `base-uri 'none'` stops an injected `<base>` from
/// moving the page's relative URLs elsewhere, `form-action 'self'` keeps form posts here, and
/// `object-src 'none'` forbids plugins (`default-src` would allow same-origin ones).
///
/// The two further connect sources are the desktop app's IPC (Tauri: `ipc://localhost` on Linux
/// and macOS, `http://ipc.localhost` on Windows), through which the app's page hands its direct
/// paths to the app (`console/src/direct.rs`). Without them Tauri falls back to a JSON IPC that
/// turns every picture into an array of numbers. Neither reaches beyond the viewer's own machine:
/// a browser has no `ipc:` scheme and refuses plain http from this https page.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ipc: http://ipc.localhost; img-src 'self' data:; \
     style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

pub(crate) fn router(state: AppState) -> Router {
    let hsts = !state.config.tlsoffload;
    Router::new()
        .route("/health", get(get_health))
        .merge(crate::auth::routes())
        .merge(crate::control::routes())
        .merge(crate::agents::routes())
        .merge(crate::install::routes())
        .merge(crate::relay::routes())
        .merge(crate::updates::routes())
        .merge(crate::amt::web::routes())
        // The web console: its files, and index.html for its own routes (see `console`).
        .fallback(console::serve)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::map_response_with_state(
            hsts,
            add_security_headers,
        ))
        .with_state(state)
}

async fn get_health() -> &'static str {
    "ok"
}

/// Adds the headers a handler did not set itself.
async fn add_security_headers(State(hsts): State<bool>, mut response: Response) -> Response {
    let headers = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_FRAME_OPTIONS, "DENY");
    if hsts {
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    response
}

/// Where the redirect port sends browsers.
#[derive(Clone)]
struct RedirectTarget {
    https_port: u16,
    /// Used when the request's Host header is missing or not a plain host name.
    default_host: String,
}

/// The plain-HTTP port: every request gets a 301 to the same path on the HTTPS port.
pub(crate) fn redirect_router(https_port: u16, default_host: String) -> Router {
    Router::new()
        .fallback(redirect_to_https)
        .with_state(RedirectTarget {
            https_port,
            default_host,
        })
}

async fn redirect_to_https(
    State(target): State<RedirectTarget>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .and_then(host_without_port)
        .unwrap_or(&target.default_host);
    let port = match target.https_port {
        443 => String::new(),
        port => format!(":{port}"),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}{port}{path}");
    match HeaderValue::try_from(location) {
        Ok(location) => (
            StatusCode::MOVED_PERMANENTLY,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// `example.com:80` → `example.com`, `[::1]:80` → `[::1]`; `None` for anything that is not a
/// plain host, so a crafted Host header cannot smuggle a path or user info into the Location.
fn host_without_port(host: &str) -> Option<&str> {
    let host = match host.strip_prefix('[') {
        Some(rest) => &host[..rest.find(']')? + 2],
        None => host.split(':').next()?,
    };
    let plain = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c));
    (plain && !host.is_empty() && host.len() <= 255).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::{CONTENT_SECURITY_POLICY, host_without_port};

    fn directive(name: &str) -> Vec<&'static str> {
        CONTENT_SECURITY_POLICY
            .split(';')
            .map(str::trim)
            .find_map(|d| d.strip_prefix(name).filter(|rest| rest.starts_with(' ')))
            .map(|rest| rest.split_whitespace().collect())
            .unwrap_or_default()
    }

    #[test]
    fn only_styles_may_be_inline() {
        // xterm.js needs inline styles (see CONTENT_SECURITY_POLICY); scripts never.
        assert_eq!(directive("style-src"), ["'self'", "'unsafe-inline'"]);
        assert_eq!(directive("script-src"), ["'self'"]);
        assert_eq!(directive("default-src"), ["'self'"]);
        assert_eq!(directive("frame-ancestors"), ["'none'"]);
        assert_eq!(
            CONTENT_SECURITY_POLICY.matches("'unsafe-inline'").count(),
            1,
            "{CONTENT_SECURITY_POLICY}"
        );
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-eval"));
    }

    #[test]
    fn connections_forms_and_base_stay_on_this_origin() {
        // No scheme sources (`wss:`, `ws:`, `https:`) that would reach any host; the desktop
        // app's IPC alone besides this origin.
        assert_eq!(
            directive("connect-src"),
            ["'self'", "ipc:", "http://ipc.localhost"]
        );
        assert_eq!(directive("form-action"), ["'self'"]);
        assert_eq!(directive("base-uri"), ["'none'"]);
        assert_eq!(directive("object-src"), ["'none'"]);
        for directive in CONTENT_SECURITY_POLICY.split(';') {
            for source in directive.split_whitespace().skip(1) {
                assert!(
                    source.starts_with('\'')
                        || source == "data:"
                        || (directive.trim().starts_with("connect-src")
                            && ["ipc:", "http://ipc.localhost"].contains(&source)),
                    "{source} in {directive:?} allows more than this origin"
                );
            }
        }
    }

    #[test]
    fn host_header_is_reduced_to_a_plain_host() {
        assert_eq!(host_without_port("example.com:8080"), Some("example.com"));
        assert_eq!(host_without_port("example.com"), Some("example.com"));
        assert_eq!(host_without_port("[::1]:80"), Some("[::1]"));
        assert_eq!(host_without_port("evil.com/path"), None);
        assert_eq!(host_without_port("user@evil.com"), None);
        assert_eq!(host_without_port("[::1"), None);
        assert_eq!(host_without_port(""), None);
    }
}
