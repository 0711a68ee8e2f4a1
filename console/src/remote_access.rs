//! What a trusted server's page may call in the app: the direct-path commands (`direct.rs`), the
//! sound player's (`sound.rs`), the calls' (`call.rs`) and the notifications' (`notify.rs`),
//! nothing else. Tauri gives remote pages no IPC unless a capability names their URL, so each
//! server the user trusted gets a runtime capability for its origin alone, not for local pages
//! (the picker keeps its own, `capabilities/default.json`). Each command checks the caller's
//! origin again, so a server forgotten since its grant (capabilities cannot be taken back at run
//! time) is refused too.

use std::collections::HashSet;
use std::sync::Mutex;

use tauri::ipc::CapabilityBuilder;
use tauri::{Manager, Runtime, Webview};

use crate::app::ConsoleState;

/// The permissions a trusted server's page gets (build.rs lists the commands).
const SERVER_PAGE_PERMISSIONS: [&str; 20] = [
    "allow-rtc-open",
    "allow-rtc-take",
    "allow-rtc-answer",
    "allow-rtc-candidate",
    "allow-rtc-send",
    "allow-rtc-close",
    "allow-sound-outputs",
    "allow-sound-inputs",
    "allow-sound-open",
    "allow-sound-push",
    "allow-sound-close",
    "allow-notify-settings",
    "allow-notify-configure",
    "allow-notify",
    "allow-call-start",
    "allow-call-take",
    "allow-call-answer",
    "allow-call-candidate",
    "allow-call-mute",
    "allow-call-end",
];

/// Origins granted so far (a capability is added once per origin).
#[derive(Default)]
pub(crate) struct Granted(Mutex<HashSet<String>>);

/// Lets pages of `origin` (`https://host[:port]`, a trusted server) call the commands above.
pub(crate) fn grant<R: Runtime, M: Manager<R>>(app: &M, origin: &str) -> tauri::Result<()> {
    let granted = app.state::<Granted>();
    let mut granted = granted.0.lock().unwrap_or_else(|p| p.into_inner());
    if granted.contains(origin) {
        return Ok(());
    }
    let mut capability = CapabilityBuilder::new(format!("server-page-{}", granted.len()))
        .remote(url_pattern(origin))
        .local(false)
        .windows(["main", crate::server_menu::EXTRA_WINDOWS]);
    for permission in SERVER_PAGE_PERMISSIONS {
        capability = capability.permission(permission);
    }
    app.add_capability(capability)?;
    granted.insert(origin.to_owned());
    Ok(())
}

/// The URL pattern matching every page of `origin` and nothing else. An origin holds no pattern
/// syntax but the colons of an IPv6 literal, which would start a named group and so are escaped
/// (the tests check the patterns against Tauri's own matcher).
fn url_pattern(origin: &str) -> String {
    let (head, rest) = match origin.split_once('[') {
        Some((head, rest)) => (head, rest),
        None => return format!("{origin}/*"),
    };
    let (literal, tail) = rest.split_once(']').unwrap_or((rest, ""));
    format!("{head}[{}]{tail}/*", literal.replace(':', "\\:"))
}

/// The calling page's origin if it is a server the user trusted, else why not.
pub(crate) fn trusted_caller<R: Runtime>(webview: &Webview<R>) -> Result<String, String> {
    let url = webview.url().map_err(|e| e.to_string())?;
    let origin = url.origin();
    let trusted = url.scheme() == "https"
        && origin.is_tuple()
        && webview
            .state::<ConsoleState>()
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&origin.ascii_serialization())
            .is_some();
    if trusted {
        Ok(origin.ascii_serialization())
    } else {
        eprintln!("tether-console: refused a direct-path command from {url}");
        Err("only a trusted server's page may open direct paths".into())
    }
}

#[cfg(test)]
mod tests {
    use tauri::utils::acl::RemoteUrlPattern;
    use url::Url;

    use super::url_pattern;

    fn matches(origin: &str, url: &str) -> bool {
        let pattern: RemoteUrlPattern = url_pattern(origin)
            .parse()
            .unwrap_or_else(|e| panic!("{origin}: {e:?}"));
        pattern.test(&Url::parse(url).expect("a URL"))
    }

    #[test]
    fn a_pattern_matches_its_origin_and_nothing_else() {
        for (origin, inside, outside) in [
            (
                "https://tether.example:8443",
                "https://tether.example:8443/devices/x/desktop?y=1#z",
                [
                    "https://tether.example/",
                    "https://tether.example:8444/",
                    "http://tether.example:8443/",
                    "https://tether.example.evil.example:8443/",
                    "https://evil.example/?https://tether.example:8443/",
                ],
            ),
            (
                "https://10.0.0.5",
                "https://10.0.0.5/",
                [
                    "https://10.0.0.50/",
                    "https://10.0.0.5:8443/",
                    "https://110.0.0.5/",
                    "http://10.0.0.5/",
                    "https://evil.example/10.0.0.5",
                ],
            ),
            (
                "https://[::1]:8443",
                "https://[::1]:8443/devices",
                [
                    "https://[::1]/",
                    "https://[::2]:8443/",
                    "https://127.0.0.1:8443/",
                    "http://[::1]:8443/",
                    "https://[::1]:8444/",
                ],
            ),
        ] {
            assert!(matches(origin, inside), "{origin} should match {inside}");
            for url in outside {
                assert!(!matches(origin, url), "{origin} must not match {url}");
            }
        }
    }
}
