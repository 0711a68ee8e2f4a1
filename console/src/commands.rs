//! Commands the bundled server-picker page (console/src-ui) may call; see capabilities/default.json.
//! Errors reach the page as plain messages.

use serde::Serialize;
use tauri::{Manager, State, WebviewWindow};

use crate::app::ConsoleState;
use crate::probe::{Probe, parse_server_url, probe, same_fingerprint};
use crate::servers::{KnownServer, ServerList, Trust};
use crate::{remote_access, server_menu, webview_trust};

#[derive(Debug, Serialize)]
pub(crate) struct ServerEntry {
    origin: String,
    url: String,
    fingerprint: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct ProbeReport {
    origin: String,
    url: String,
    fingerprint: String,
    trust: Trust,
    /// The fingerprint remembered for this origin, when it differs from the one just seen.
    previous_fingerprint: Option<String>,
}

fn lock_servers<'a>(state: &'a State<'_, ConsoleState>) -> std::sync::MutexGuard<'a, ServerList> {
    state.servers.lock().unwrap_or_else(|p| p.into_inner())
}

async fn probe_off_thread(url: &str) -> Result<(url::Url, Probe), String> {
    let url = parse_server_url(url).map_err(|e| e.to_string())?;
    let target = url.clone();
    let probed = tauri::async_runtime::spawn_blocking(move || probe(&target))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok((url, probed))
}

#[tauri::command]
pub(crate) fn list_servers(state: State<'_, ConsoleState>) -> Vec<ServerEntry> {
    lock_servers(&state)
        .all()
        .map(|(origin, server)| ServerEntry {
            origin: origin.clone(),
            url: server.url.clone(),
            fingerprint: server.fingerprint.clone(),
        })
        .collect()
}

/// Connects and reports the certificate's fingerprint and whether it is new, known or changed.
#[tauri::command]
pub(crate) async fn probe_server(
    state: State<'_, ConsoleState>,
    url: String,
) -> Result<ProbeReport, String> {
    let (url, probed) = probe_off_thread(&url).await?;
    let servers = lock_servers(&state);
    let trust = servers.trust_of(&probed.origin, &probed.fingerprint);
    let previous_fingerprint = match trust {
        Trust::Changed => servers.get(&probed.origin).map(|s| s.fingerprint.clone()),
        Trust::New | Trust::Known => None,
    };
    Ok(ProbeReport {
        origin: probed.origin,
        url: url.to_string(),
        fingerprint: probed.fingerprint,
        trust,
        previous_fingerprint,
    })
}

/// Opens the server if it still presents the certificate the user accepted (`fingerprint`).
/// Replacing a remembered certificate needs `replace_changed`, which the page sets only after
/// its explicit warning.
#[tauri::command]
pub(crate) async fn trust_server(
    window: WebviewWindow,
    state: State<'_, ConsoleState>,
    url: String,
    fingerprint: String,
    replace_changed: bool,
) -> Result<(), String> {
    // Probe again: the page showed the fingerprint some time ago, and what we open must be
    // exactly what the user saw.
    let (url, probed) = probe_off_thread(&url).await?;
    if !same_fingerprint(&probed.fingerprint, &fingerprint) {
        return Err(format!(
            "The server's certificate changed since it was shown (now {}). Not connecting.",
            probed.fingerprint
        ));
    }
    {
        let mut servers = lock_servers(&state);
        if servers.trust_of(&probed.origin, &probed.fingerprint) == Trust::Changed
            && !replace_changed
        {
            return Err("This server's certificate is not the one you trusted before.".into());
        }
        servers
            .remember(
                probed.origin.clone(),
                KnownServer {
                    url: url.to_string(),
                    fingerprint: probed.fingerprint.clone(),
                },
            )
            .map_err(|e| e.to_string())?;
    }
    remote_access::grant(&window, &probed.origin).map_err(|e| e.to_string())?;
    server_menu::refresh(window.app_handle());
    webview_trust::trust_and_open(&window, &probed, url).map_err(|e| e.to_string())
}

#[tauri::command]
pub(crate) fn forget_server(
    window: WebviewWindow,
    state: State<'_, ConsoleState>,
    origin: String,
) -> Result<(), String> {
    lock_servers(&state)
        .forget(&origin)
        .map_err(|e| e.to_string())?;
    server_menu::refresh(window.app_handle());
    Ok(())
}
