//! The tray icon: the app keeps running there when its window is closed (sessions, chat and
//! notifications go on), its menu shows the window again or quits. Without a tray (a Linux
//! desktop lacking libayatana-appindicator, which tray-icon loads at run time and panics
//! without), closing the window quits, as it would have to.

use tauri::menu::{Menu, MenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Runtime};

/// Whether the app has a tray icon (so closing the window hides it instead of quitting).
pub(crate) struct HasTray(pub bool);

pub(crate) fn install<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<bool> {
    if !tray_supported() {
        eprintln!(
            "tether-console: no tray icon (libayatana-appindicator3 is not installed); closing the window quits"
        );
        return Ok(false);
    }
    let show = MenuItem::with_id(app, "show", "Show Tether", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&show, &quit])?;
    let mut tray = TrayIconBuilder::with_id("tether")
        .tooltip("Tether")
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| match event.id().as_ref() {
            "show" => show_window(app),
            "quit" => app.exit(0),
            _ => {}
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                show_window(tray.app_handle());
            }
        });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    eprintln!("tether-console: tray icon ready");
    Ok(true)
}

pub(crate) fn show_window<R: Runtime>(app: &AppHandle<R>) {
    if let Some(window) = app.get_webview_window("main") {
        bring_forward(&window.as_ref().window());
    }
}

/// Shows `window` if it was closed into the tray or minimised, and gives it the focus.
pub(crate) fn bring_forward<R: Runtime>(window: &tauri::Window<R>) {
    let _ = window.show();
    let _ = window.unminimize();
    let _ = window.set_focus();
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn tray_supported() -> bool {
    // The names tray-icon's libappindicator-sys tries, in its order.
    [
        "libayatana-appindicator3.so.1",
        "libappindicator3.so.1",
        "libayatana-appindicator3.so",
        "libappindicator3.so",
    ]
    .iter()
    // SAFETY: loading a system library runs its initialisers; these are the very libraries
    // tray-icon would load next, and the handle is dropped at once.
    .any(|name| unsafe { libloading::Library::new(name) }.is_ok())
}

#[cfg(not(target_os = "linux"))]
fn tray_supported() -> bool {
    true
}
