//! The person at the device in the desktop tests: watches the screen's top-level windows on an
//! Xvfb (by title) and presses their buttons with XTest, as someone at the machine would.

use std::time::Duration;

use x11rb::connection::Connection;
use x11rb::protocol::Event as XEvent;
use x11rb::protocol::xproto::{AtomEnum, ConnectionExt as _, EventMask, Window};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

/// Longest the scripted person waits for a window to appear or go.
pub const PERSON_WAIT: Duration = Duration::from_secs(30);

/// The person at the device: watches the screen's top-level windows and presses buttons.
pub struct Person {
    conn: RustConnection,
    root: Window,
}

impl Person {
    /// Starts watching `display` (before the session starts, so no window is missed).
    pub fn at(display: &str) -> Person {
        let (conn, screen) = x11rb::connect(Some(display)).expect("the person's X connection");
        let root = conn.setup().roots[screen].root;
        let mask = x11rb::protocol::xproto::ChangeWindowAttributesAux::new()
            .event_mask(EventMask::SUBSTRUCTURE_NOTIFY);
        conn.change_window_attributes(root, &mask).unwrap();
        conn.flush().unwrap();
        Person { conn, root }
    }

    pub fn title(&self, window: Window) -> String {
        let reply = self
            .conn
            .get_property(false, window, AtomEnum::WM_NAME, AtomEnum::STRING, 0, 256)
            .unwrap()
            .reply();
        reply
            .map(|r| String::from_utf8_lossy(&r.value).into_owned())
            .unwrap_or_default()
    }

    /// Waits until a window whose title starts with `prefix` is shown; its id and title.
    pub fn sees(&self, prefix: &str) -> (Window, String) {
        loop {
            match self.conn.wait_for_event().expect("X events") {
                XEvent::MapNotify(e) => {
                    let title = self.title(e.window);
                    if title.starts_with(prefix) {
                        return (e.window, title);
                    }
                }
                _ => continue,
            }
        }
    }

    /// Presses the button labelled `label` in `window`, as a mouse click would.
    pub fn presses(&self, window: Window, label: &str) {
        let children = self
            .conn
            .query_tree(window)
            .unwrap()
            .reply()
            .unwrap()
            .children;
        let button = children
            .into_iter()
            .find(|child| self.title(*child) == label)
            .unwrap_or_else(|| panic!("no {label} button"));
        let geometry = self.conn.get_geometry(button).unwrap().reply().unwrap();
        let at = self
            .conn
            .translate_coordinates(button, self.root, 0, 0)
            .unwrap()
            .reply()
            .unwrap();
        let (x, y) = (
            at.dst_x + geometry.width as i16 / 2,
            at.dst_y + geometry.height as i16 / 2,
        );
        const MOTION: u8 = 6;
        const PRESS: u8 = 4;
        const RELEASE: u8 = 5;
        self.conn
            .xtest_fake_input(MOTION, 0, 0, self.root, x, y, 0)
            .unwrap();
        self.conn
            .xtest_fake_input(PRESS, 1, 0, self.root, 0, 0, 0)
            .unwrap();
        self.conn
            .xtest_fake_input(RELEASE, 1, 0, self.root, 0, 0, 0)
            .unwrap();
        self.conn.flush().unwrap();
    }

    /// Waits until `window` is gone.
    pub fn sees_gone(&self, window: Window) {
        loop {
            if let XEvent::DestroyNotify(e) = self.conn.wait_for_event().expect("X events")
                && e.window == window
            {
                return;
            }
        }
    }
}

/// Runs the person's script on a thread of its own (X calls block), failing after PERSON_WAIT.
pub async fn at_the_device<T: Send + 'static>(
    person: Person,
    script: impl FnOnce(&Person) -> T + Send + 'static,
) -> T {
    let task = tokio::task::spawn_blocking(move || script(&person));
    tokio::time::timeout(PERSON_WAIT, task)
        .await
        .expect("the person's windows came in time")
        .expect("the person's script")
}
