//! The app's desktop notifications: a device of a watched group going offline or coming online,
//! a chat invitation, a session opened to a device of a watched group. The server's page sees
//! these events on its control channel and asks the app to notify (`notify`); the app decides
//! from the user's settings (`notifications.json`, one switch per kind, and per server the groups
//! watched) and shows them through the desktop's notification service. Everything shown is the
//! page's text, escaped: notification bodies may carry markup on Linux, and a device or user name
//! is data.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tauri::{Runtime, State, Webview};

use crate::remote_access;
use crate::servers::save_private;

/// Longest title and body shown; longer ones are cut (a page cannot flood the desktop with text).
const MAX_TITLE: usize = 120;
const MAX_BODY: usize = 400;

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

/// Shows a notification if the user's settings want it; says whether it was shown.
#[tauri::command]
pub(crate) async fn notify<R: Runtime>(
    webview: Webview<R>,
    notifications: State<'_, Notifications>,
    kind: Kind,
    group: Option<String>,
    title: String,
    body: String,
) -> Result<bool, String> {
    let origin = remote_access::trusted_caller(&webview)?;
    if !notifications.lock().wants(&origin, kind, group.as_deref()) {
        return Ok(false);
    }
    let title = plain(&title, MAX_TITLE);
    let body = plain(&body, MAX_BODY);
    tauri::async_runtime::spawn_blocking(move || show(&title, &body))
        .await
        .map_err(|e| e.to_string())??;
    Ok(true)
}

fn show(title: &str, body: &str) -> Result<(), String> {
    notify_rust::Notification::new()
        .appname("Tether")
        .summary(title)
        .body(body)
        .icon("tether-console")
        .show()
        .map(|_| ())
        .map_err(|e| {
            eprintln!("tether-console: cannot show a notification: {e}");
            format!("the desktop did not take the notification: {e}")
        })
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
    fn settings_files_of_older_versions_read_with_defaults() {
        let settings: Settings = serde_json::from_str(r#"{"chat": false}"#).expect("valid");
        assert!(!settings.chat);
        assert!(settings.devices);
        assert!(settings.watched.is_empty());
    }
}
