//! Where the console's one window may go. The window shows the app's own server picker (which
//! may call the app's commands) and then a trusted server's web UI; without a policy, that page
//! (or a script injected into it) could send the trusted window to any site, which would then
//! look like part of the app. So a navigation stays in the window only to the app's own pages or
//! to a server the user trusted; other web addresses open in the system browser, and anything
//! else (file:, data:, javascript:, other schemes) is refused.
//!
//! `window.open` needs no rule here: the window is made from tauri.conf.json with no new-window
//! handler, and WebKitGTK then opens no window. Framing the picker from a remote page is stopped
//! by the picker's own CSP (`frame-ancestors 'none'` in tauri.conf.json).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tauri::plugin::TauriPlugin;
use tauri::{Manager, Runtime};
use url::Url;

use crate::app::ConsoleState;

/// At most one page handed to the system browser per this interval, so a page that navigates in
/// a loop cannot flood the desktop with browser tabs.
const EXTERNAL_OPEN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Navigation {
    /// Load it in the console's window.
    Allow,
    /// Not here; hand it to the system browser.
    OpenExternally,
    Deny,
}

/// The policy: `trusted` says whether an origin (`https://host[:port]`) is a server the user
/// accepted (see servers.rs).
pub(crate) fn decide(url: &Url, trusted: impl Fn(&str) -> bool) -> Navigation {
    if is_app_page(url) {
        return Navigation::Allow;
    }
    match url.scheme() {
        // A `blob:` URL has its creator's origin: the console's downloads.
        "https" | "blob" => {
            let origin = url.origin();
            if origin.is_tuple() && trusted(&origin.ascii_serialization()) {
                Navigation::Allow
            } else if url.scheme() == "https" {
                Navigation::OpenExternally
            } else {
                Navigation::Deny
            }
        }
        // The console opens servers over https only.
        "http" | "mailto" => Navigation::OpenExternally,
        _ => Navigation::Deny,
    }
}

/// The bundled picker page: `tauri://localhost` here, `http(s)://tauri.localhost` where Tauri
/// serves it that way (Windows, Android). Elsewhere that name is a real (loopback) web address.
fn is_app_page(url: &Url) -> bool {
    if cfg!(any(windows, target_os = "android")) {
        matches!(url.scheme(), "http" | "https") && url.host_str() == Some("tauri.localhost")
    } else {
        url.scheme() == "tauri" && url.host_str() == Some("localhost")
    }
}

/// Applies [`decide`] to every navigation of every webview of the app.
pub(crate) fn plugin<R: Runtime>() -> TauriPlugin<R> {
    let last_external = Mutex::new(None::<Instant>);
    tauri::plugin::Builder::new("navigation-policy")
        .on_navigation(move |webview, url| {
            let state = webview.try_state::<ConsoleState>();
            let trusted = |origin: &str| {
                state.as_ref().is_some_and(|state| {
                    state
                        .servers
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(origin)
                        .is_some()
                })
            };
            match decide(url, trusted) {
                Navigation::Allow => true,
                Navigation::OpenExternally => {
                    let mut last = last_external.lock().unwrap_or_else(|p| p.into_inner());
                    if last.is_some_and(|at| at.elapsed() < EXTERNAL_OPEN_INTERVAL) {
                        eprintln!("tether-console: not opening {url} (too many pages opened)");
                    } else {
                        *last = Some(Instant::now());
                        open_in_system_browser(url);
                    }
                    false
                }
                Navigation::Deny => {
                    eprintln!("tether-console: refused to navigate to {url}");
                    false
                }
            }
        })
        .build()
}

/// Hands `url` (http, https or mailto: it starts with its scheme, never with `-`) to the
/// desktop's handler, without waiting for it.
fn open_in_system_browser(url: &Url) {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(program)
        .arg(url.as_str())
        .spawn()
    {
        // Reaped off the UI thread.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(error) => eprintln!("tether-console: cannot open {url} with {program}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide_for(url: &str) -> Navigation {
        let url = Url::parse(url).expect("a URL");
        decide(&url, |origin| {
            matches!(
                origin,
                "https://tether.example:8443" | "https://[::1]" | "https://10.0.0.5"
            )
        })
    }

    #[test]
    fn a_trusted_server_and_the_app_page_stay_in_the_window() {
        assert_eq!(
            decide_for("https://tether.example:8443/devices"),
            Navigation::Allow
        );
        assert_eq!(decide_for("https://[::1]:443/login"), Navigation::Allow);
        assert_eq!(decide_for("https://10.0.0.5/"), Navigation::Allow);
        assert_eq!(
            decide_for("blob:https://tether.example:8443/0d4c6f0e-5a57-4f4e-9a1e-3b4c5d6e7f80"),
            Navigation::Allow
        );
        #[cfg(not(any(windows, target_os = "android")))]
        assert_eq!(
            decide_for("tauri://localhost/index.html"),
            Navigation::Allow
        );
    }

    #[test]
    fn other_web_pages_go_to_the_system_browser() {
        // Same host, other port or scheme: another origin.
        assert_eq!(
            decide_for("https://tether.example/"),
            Navigation::OpenExternally
        );
        assert_eq!(
            decide_for("https://tether.example:8444/"),
            Navigation::OpenExternally
        );
        assert_eq!(
            decide_for("https://evil.example/login"),
            Navigation::OpenExternally
        );
        assert_eq!(
            decide_for("http://tether.example:8443/"),
            Navigation::OpenExternally
        );
        assert_eq!(
            decide_for("mailto:admin@example.org"),
            Navigation::OpenExternally
        );
        // Look-alikes of the trusted name are other hosts.
        assert_eq!(
            decide_for("https://tether.example.evil.example:8443/"),
            Navigation::OpenExternally
        );
        #[cfg(not(any(windows, target_os = "android")))]
        assert_eq!(
            decide_for("http://tauri.localhost/"),
            Navigation::OpenExternally
        );
    }

    #[test]
    fn other_schemes_are_refused() {
        for url in [
            "file:///etc/passwd",
            "data:text/html,<script>alert(1)</script>",
            "javascript:alert(1)",
            "blob:https://evil.example/0d4c6f0e-5a57-4f4e-9a1e-3b4c5d6e7f80",
            "about:blank",
            "ftp://tether.example/",
            "tauri://evil/index.html",
            "ipc://localhost/list_servers",
        ] {
            assert_eq!(decide_for(url), Navigation::Deny, "{url}");
        }
    }
}
