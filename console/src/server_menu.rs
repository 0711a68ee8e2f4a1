//! The windows' "Servers" menu: every trusted server, to switch the window to it (its certificate
//! checked again against the one remembered, as the picker does), the picker for another one, and
//! a new window, so that several servers can be open side by side. Rebuilt whenever the list of
//! trusted servers changes.

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::{AppHandle, Manager, Runtime, WebviewUrl, WebviewWindow, WebviewWindowBuilder, Window};
use url::Url;

use crate::app::ConsoleState;
use crate::probe::{parse_server_url, probe, same_fingerprint};
use crate::{remote_access, webview_trust};

/// Labels of the windows opened from the menu (the first is "main"); capabilities name this
/// pattern too (capabilities/default.json, remote_access.rs).
pub(crate) const EXTRA_WINDOWS: &str = "console-*";
const OPEN_PREFIX: &str = "open ";
const PICKER: &str = "picker";
const NEW_WINDOW: &str = "new-window";

static NEXT_WINDOW: AtomicU32 = AtomicU32::new(1);

/// Gives `window` the menu and handles its choices.
pub(crate) fn attach<R: Runtime>(window: &WebviewWindow<R>) -> tauri::Result<()> {
    window.set_menu(build(window.app_handle())?)?;
    window.on_menu_event(|window, event| choose(window, event.id().as_ref()));
    Ok(())
}

/// Rebuilds every window's menu (a server was trusted or forgotten).
pub(crate) fn refresh<R: Runtime>(app: &AppHandle<R>) {
    for window in app.webview_windows().values() {
        match build(app) {
            Ok(menu) => {
                let _ = window.set_menu(menu);
            }
            Err(error) => eprintln!("tether-console: cannot rebuild the Servers menu: {error}"),
        }
    }
}

fn build<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<Menu<R>> {
    let origins: Vec<String> = app
        .state::<ConsoleState>()
        .servers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .all()
        .map(|(origin, _)| origin.clone())
        .collect();
    let servers = Submenu::with_id(app, "servers", "Servers", true)?;
    for origin in &origins {
        servers.append(&MenuItem::with_id(
            app,
            format!("{OPEN_PREFIX}{origin}"),
            origin,
            true,
            None::<&str>,
        )?)?;
    }
    if !origins.is_empty() {
        servers.append(&PredefinedMenuItem::separator(app)?)?;
    }
    servers.append(&MenuItem::with_id(
        app,
        PICKER,
        "Connect to another server…",
        true,
        None::<&str>,
    )?)?;
    servers.append(&MenuItem::with_id(
        app,
        NEW_WINDOW,
        "New window",
        true,
        None::<&str>,
    )?)?;
    Menu::with_items(app, &[&servers])
}

fn choose<R: Runtime>(window: &Window<R>, id: &str) {
    let app = window.app_handle().clone();
    let Some(webview) = app.get_webview_window(window.label()) else {
        return;
    };
    if id == PICKER {
        open_picker(&webview);
    } else if id == NEW_WINDOW {
        if let Err(error) = new_window(&app) {
            eprintln!("tether-console: cannot open a window: {error:#}");
        }
    } else if let Some(origin) = id.strip_prefix(OPEN_PREFIX) {
        let origin = origin.to_owned();
        // Probing blocks on the network; keep it off the UI thread.
        std::thread::spawn(move || {
            if let Err(error) = switch_to(&webview, &origin) {
                eprintln!("tether-console: {error:#}");
                open_picker(&webview);
            }
        });
    }
}

/// Opens a remembered server in `webview` if it still shows the certificate the user accepted.
fn switch_to<R: Runtime>(webview: &WebviewWindow<R>, origin: &str) -> anyhow::Result<()> {
    let known = webview
        .state::<ConsoleState>()
        .servers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(origin)
        .cloned()
        .with_context(|| format!("{origin} is no longer a trusted server"))?;
    let url = parse_server_url(&known.url)?;
    let probed = probe(&url)?;
    anyhow::ensure!(
        same_fingerprint(&probed.fingerprint, &known.fingerprint),
        "{origin} now presents certificate {}, not the one you trusted; connect through the picker to review it",
        probed.fingerprint
    );
    remote_access::grant(webview, &probed.origin)?;
    webview_trust::trust_and_open(webview, &probed, url)?;
    Ok(())
}

fn open_picker<R: Runtime>(webview: &WebviewWindow<R>) {
    let picker = if cfg!(any(windows, target_os = "android")) {
        "http://tauri.localhost/index.html"
    } else {
        "tauri://localhost/index.html"
    };
    if let Ok(url) = Url::parse(picker) {
        let _ = webview.navigate(url);
    }
}

fn new_window<R: Runtime>(app: &AppHandle<R>) -> anyhow::Result<()> {
    let label = format!("console-{}", NEXT_WINDOW.fetch_add(1, Ordering::Relaxed));
    let window = WebviewWindowBuilder::new(app, label, WebviewUrl::App("index.html".into()))
        .title("Tether")
        .inner_size(1200.0, 800.0)
        .min_inner_size(640.0, 480.0)
        .build()?;
    attach(&window)?;
    Ok(())
}
