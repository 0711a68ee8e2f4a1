//! Builds the Tauri app: state, commands, page-load reporting and the optional pre-accepted server.

use std::io::Write;
use std::sync::Mutex;

use anyhow::Context;
use tauri::webview::{PageLoadEvent, PageLoadPayload};
use tauri::{AppHandle, Manager, Runtime, Webview};

use crate::probe::{parse_server_url, probe, same_fingerprint};
use crate::servers::{KnownServer, ServerList};
use crate::{
    Cli, call, commands, direct, navigation, notify, remote_access, server_menu, sound, tray,
    webview_trust,
};

/// Exit status when `--accept-fingerprint` does not match what the server presents.
const EXIT_FINGERPRINT_MISMATCH: i32 = 3;

pub(crate) struct ConsoleState {
    pub servers: Mutex<ServerList>,
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![
            commands::list_servers,
            commands::probe_server,
            commands::trust_server,
            commands::forget_server,
            direct::rtc_open,
            direct::rtc_take,
            direct::rtc_answer,
            direct::rtc_candidate,
            direct::rtc_send,
            direct::rtc_close,
            sound::sound_outputs,
            sound::sound_inputs,
            sound::sound_open,
            sound::sound_push,
            sound::sound_close,
            notify::notify_settings,
            notify::notify_configure,
            notify::notify,
            call::call_start,
            call::call_take,
            call::call_answer,
            call::call_candidate,
            call::call_mute,
            call::call_end,
        ])
        // Closing the window hides it while the tray icon can bring it back (tray.rs).
        .on_window_event(|window, event| {
            if let tauri::WindowEvent::CloseRequested { api, .. } = event
                && window.label() == "main"
                && window.state::<tray::HasTray>().0
            {
                api.prevent_close();
                let _ = window.hide();
                eprintln!("tether-console: the window is hidden; the app goes on in the tray");
            }
        })
        .plugin(navigation::plugin())
        .on_page_load(report_page_load)
        .setup(move |app| {
            let config_dir = app.path().app_config_dir()?;
            let servers = ServerList::load(&config_dir)?;
            app.manage(direct::Peers::default());
            app.manage(sound::Players::default());
            app.manage(call::Calls::default());
            app.manage(notify::Notifications::load(&config_dir));
            let has_tray = tray::install(app.handle())?;
            app.manage(tray::HasTray(has_tray));
            app.manage(remote_access::Granted::default());
            for (origin, _) in servers.all() {
                remote_access::grant(&*app, origin)?;
            }
            app.manage(ConsoleState {
                servers: Mutex::new(servers),
            });
            let window = app
                .get_webview_window("main")
                .context("tauri.conf.json defines no \"main\" window")?;
            webview_trust::log_refused_certificates(&window)?;
            server_menu::attach(&window)?;
            if let (Some(url), Some(fingerprint)) = (cli.server, cli.accept_fingerprint) {
                let handle = app.handle().clone();
                // Probing blocks on the network; keep it off the UI thread.
                std::thread::spawn(move || open_preaccepted(&handle, &url, &fingerprint));
            }
            Ok(())
        })
        .run(tauri::generate_context!())
        .context("the Tauri app failed")
}

/// One stdout line per finished page, so scripts (and the Xvfb test) can wait for a page
/// instead of sleeping.
fn report_page_load<R: Runtime>(_webview: &Webview<R>, payload: &PageLoadPayload<'_>) {
    if payload.event() == PageLoadEvent::Finished {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "tether-console loaded {}", payload.url());
        let _ = stdout.flush();
    }
}

fn open_preaccepted<R: Runtime>(app: &AppHandle<R>, url: &str, fingerprint: &str) {
    if let Err(error) = try_open_preaccepted(app, url, fingerprint) {
        eprintln!("tether-console: {error:#}");
        app.exit(EXIT_FINGERPRINT_MISMATCH);
    }
}

fn try_open_preaccepted<R: Runtime>(
    app: &AppHandle<R>,
    url: &str,
    fingerprint: &str,
) -> anyhow::Result<()> {
    let url = parse_server_url(url)?;
    let probed = probe(&url)?;
    anyhow::ensure!(
        same_fingerprint(&probed.fingerprint, fingerprint),
        "{} presents certificate {} but {fingerprint} was expected; not connecting",
        probed.origin,
        probed.fingerprint
    );
    let state = app.state::<ConsoleState>();
    state
        .servers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remember(
            probed.origin.clone(),
            KnownServer {
                url: url.to_string(),
                fingerprint: probed.fingerprint.clone(),
            },
        )?;
    remote_access::grant(app, &probed.origin)?;
    server_menu::refresh(app);
    let window = app
        .get_webview_window("main")
        .context("the main window is gone")?;
    webview_trust::trust_and_open(&window, &probed, url)?;
    Ok(())
}
