//! The app's desktop notifications: a device of a watched group going offline or coming online,
//! a chat invitation, a session opened to a device of a watched group. The server's page sees
//! these events on its control channel and asks the app to notify (`notify`); the app decides
//! from the user's settings (`notifications.json`, one switch per kind, and per server the groups
//! watched) and shows them through the desktop's notification service. Everything shown is the
//! page's text, escaped: notification bodies may carry markup on Linux, and a device or user name
//! is data. Clicking a notification brings its window forward (out of the tray if need be) and
//! tells the page, which opens what it was about: the device, or the chat invitations.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tauri::ipc::Channel;
use tauri::{Runtime, State, Webview};

use crate::remote_access;
use crate::servers::save_private;

/// Longest title and body shown; longer ones are cut (a page cannot flood the desktop with text).
const MAX_TITLE: usize = 120;
const MAX_BODY: usize = 400;

/// Notifications whose click is still awaited. Each holds a thread and a bus connection until it
/// is clicked or closed, and a desktop may keep them for as long as it likes; past this many, a
/// new notification is shown without a click action.
const MAX_AWAITING_CLICK: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Kind {
    /// A device of a watched group went offline or came online.
    Devices,
    /// Another user invites this one to chat.
    Chat,
    /// Someone opened a session to a device of a watched group.
    Sessions,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Settings {
    pub devices: bool,
    pub chat: bool,
    pub sessions: bool,
    /// Watched group ids, per server origin.
    pub watched: BTreeMap<String, BTreeSet<String>>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            devices: true,
            chat: true,
            sessions: false,
            watched: BTreeMap::new(),
        }
    }
}

impl Settings {
    fn enabled(&self, kind: Kind) -> bool {
        match kind {
            Kind::Devices => self.devices,
            Kind::Chat => self.chat,
            Kind::Sessions => self.sessions,
        }
    }

    /// Whether a notification of `kind` about `group` (on `origin`'s server) is shown.
    pub(crate) fn wants(&self, origin: &str, kind: Kind, group: Option<&str>) -> bool {
        if !self.enabled(kind) {
            return false;
        }
        match (kind, group) {
            (Kind::Chat, _) => true,
            (Kind::Devices | Kind::Sessions, Some(group)) => self
                .watched
                .get(origin)
                .is_some_and(|groups| groups.contains(group)),
            (Kind::Devices | Kind::Sessions, None) => false,
        }
    }
}

/// What one server's page sees of the settings: the switches and its own watched groups.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PageSettings {
    devices: bool,
    chat: bool,
    sessions: bool,
    watched: BTreeSet<String>,
}

pub(crate) struct Notifications {
    path: PathBuf,
    settings: Mutex<Settings>,
    awaiting_click: Arc<AtomicUsize>,
}

impl Notifications {
    /// Loads `notifications.json` from `config_dir`; a missing or unreadable file gives the defaults
    /// (and says so, for the unreadable one).
    pub(crate) fn load(config_dir: &std::path::Path) -> Notifications {
        let path = config_dir.join("notifications.json");
        let settings = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                eprintln!(
                    "tether-console: {} is not valid ({e}); using the defaults",
                    path.display()
                );
                Settings::default()
            }),
            Err(_) => Settings::default(),
        };
        Notifications {
            path,
            settings: Mutex::new(settings),
            awaiting_click: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[tauri::command]
pub(crate) fn notify_settings<R: Runtime>(
    webview: Webview<R>,
    notifications: State<'_, Notifications>,
) -> Result<PageSettings, String> {
    let origin = remote_access::trusted_caller(&webview)?;
    let settings = notifications.lock();
    Ok(PageSettings {
        devices: settings.devices,
        chat: settings.chat,
        sessions: settings.sessions,
        watched: settings.watched.get(&origin).cloned().unwrap_or_default(),
    })
}

#[tauri::command]
pub(crate) fn notify_configure<R: Runtime>(
    webview: Webview<R>,
    notifications: State<'_, Notifications>,
    settings: PageSettings,
) -> Result<(), String> {
    let origin = remote_access::trusted_caller(&webview)?;
    if settings.watched.len() > 10_000 || settings.watched.iter().any(|g| g.len() > 256) {
        return Err("too many or too long group ids".into());
    }
    let mut all = notifications.lock();
    all.devices = settings.devices;
    all.chat = settings.chat;
    all.sessions = settings.sessions;
    if settings.watched.is_empty() {
        all.watched.remove(&origin);
    } else {
        all.watched.insert(origin, settings.watched);
    }
    let json = serde_json::to_vec_pretty(&*all).map_err(|e| e.to_string())?;
    save_private(&notifications.path, &json)
        .map_err(|e| format!("cannot save {}: {e}", notifications.path.display()))
}

/// Shows a notification if the user's settings want it; says whether it was shown. When the user
/// clicks it, its window comes forward and `on_click` hears of it.
#[tauri::command]
pub(crate) async fn notify<R: Runtime>(
    webview: Webview<R>,
    notifications: State<'_, Notifications>,
    kind: Kind,
    group: Option<String>,
    title: String,
    body: String,
    on_click: Channel<()>,
) -> Result<bool, String> {
    let origin = remote_access::trusted_caller(&webview)?;
    if !notifications.lock().wants(&origin, kind, group.as_deref()) {
        return Ok(false);
    }
    let title = plain(&title, MAX_TITLE);
    let body = plain(&body, MAX_BODY);
    let click = ClickSlot::take(&notifications.awaiting_click).map(|slot| {
        let window = webview.window();
        (slot, move || {
            crate::tray::bring_forward(&window);
            // The page may be gone (the window navigated away); nothing then to open.
            let _ = on_click.send(());
        })
    });
    tauri::async_runtime::spawn_blocking(move || show(&title, &body, click))
        .await
        .map_err(|e| e.to_string())??;
    Ok(true)
}

/// One of the `MAX_AWAITING_CLICK` places, given back when dropped.
struct ClickSlot(Arc<AtomicUsize>);

impl ClickSlot {
    fn take(count: &Arc<AtomicUsize>) -> Option<ClickSlot> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_AWAITING_CLICK).then_some(n + 1)
            })
            .ok()
            .map(|_| ClickSlot(Arc::clone(count)))
    }
}

impl Drop for ClickSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn show(
    title: &str,
    body: &str,
    click: Option<(ClickSlot, impl FnOnce() + Send + 'static)>,
) -> Result<(), String> {
    let mut notification = notify_rust::Notification::new();
    notification
        .appname("Tether")
        .summary(title)
        .body(body)
        .icon("tether-console");
    if click.is_some() {
        // "default" is the freedesktop name of a click on the notification itself.
        notification.action("default", "Open");
    }
    let handle = notification.show().map_err(|e| {
        eprintln!("tether-console: cannot show a notification: {e}");
        format!("the desktop did not take the notification: {e}")
    })?;
    if let Some((slot, on_click)) = click {
        await_click(handle, slot, on_click);
    }
    Ok(())
}

/// Waits on a thread of its own for the notification to be clicked or closed (notify-rust's wait
/// blocks), holding `slot` until then.
#[cfg(all(unix, not(target_os = "macos")))]
fn await_click(
    handle: notify_rust::NotificationHandle,
    slot: ClickSlot,
    on_click: impl FnOnce() + Send + 'static,
) {
    let spawned = std::thread::Builder::new()
        .name("notification-click".into())
        .spawn(move || {
            let _slot = slot;
            handle.wait_for_action(|action| {
                if action == "default" {
                    on_click();
                }
            });
        });
    if let Err(e) = spawned {
        eprintln!("tether-console: a notification's click will not be heard: {e}");
    }
}

/// Elsewhere notify-rust reports no clicks: the notification is shown without one.
#[cfg(not(all(unix, not(target_os = "macos"))))]
fn await_click(
    _handle: notify_rust::NotificationHandle,
    _slot: ClickSlot,
    _on_click: impl FnOnce() + Send + 'static,
) {
}

/// `text` as plain text for a notification: markup characters escaped (the freedesktop body may
/// hold `<b>`, `<a href>` and entities), control characters dropped, at most `max` characters.
pub(crate) fn plain(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 2));
    for c in text.chars().filter(|c| !c.is_control()).take(max) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_text_not_markup() {
        assert_eq!(
            plain("<a href=\"https://evil\">vm</a> & \u{1b}[31mco", 100),
            "&lt;a href=&quot;https://evil&quot;&gt;vm&lt;/a&gt; &amp; [31mco"
        );
        assert_eq!(plain(&"x".repeat(1000), 120).len(), 120);
    }

    #[test]
    fn device_and_session_news_only_for_watched_groups_of_that_server() {
        let mut settings = Settings {
            sessions: true,
            ..Settings::default()
        };
        settings
            .watched
            .insert("https://a.example".into(), ["g1".to_owned()].into());
        assert!(settings.wants("https://a.example", Kind::Devices, Some("g1")));
        assert!(settings.wants("https://a.example", Kind::Sessions, Some("g1")));
        assert!(!settings.wants("https://a.example", Kind::Devices, Some("g2")));
        assert!(!settings.wants("https://b.example", Kind::Devices, Some("g1")));
        assert!(!settings.wants("https://a.example", Kind::Devices, None));
        assert!(settings.wants("https://b.example", Kind::Chat, None));
        settings.chat = false;
        settings.devices = false;
        assert!(!settings.wants("https://b.example", Kind::Chat, None));
        assert!(!settings.wants("https://a.example", Kind::Devices, Some("g1")));
    }

    #[test]
    fn at_most_so_many_notifications_await_a_click() {
        let count = Arc::new(AtomicUsize::new(0));
        let slots: Vec<ClickSlot> = std::iter::from_fn(|| ClickSlot::take(&count))
            .take(MAX_AWAITING_CLICK + 5)
            .collect();
        assert_eq!(slots.len(), MAX_AWAITING_CLICK);
        drop(slots);
        assert_eq!(count.load(Ordering::Acquire), 0);
        assert!(ClickSlot::take(&count).is_some());
    }

    #[test]
    fn settings_files_of_older_versions_read_with_defaults() {
        let settings: Settings = serde_json::from_str(r#"{"chat": false}"#).expect("valid");
        assert!(!settings.chat);
        assert!(settings.devices);
        assert!(settings.watched.is_empty());
    }
}
