//! Remote input: pointer, wheel and keys injected with XTest.
//!
//! One thread per [`spawn`] owns its own X connection; [`InputHandle::send`] only queues, so the
//! session's async loop never waits on X. The thread remembers which keys and buttons it pressed,
//! and releases them on [`InputCommand::ReleaseAll`] and when the last handle drops, so a viewer
//! that vanishes mid-keystroke leaves no key stuck down on the remote machine.

use std::collections::{BTreeSet, HashSet};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Instant;

use tether_common::relay::desktop::MouseButton;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use x11rb::connection::{Connection, RequestConnection as _};
use x11rb::errors::{ConnectError, ConnectionError, ReplyError};
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, KEY_PRESS_EVENT, KEY_RELEASE_EVENT, Keycode,
    MOTION_NOTIFY_EVENT, Mapping, Window,
};
use x11rb::protocol::xtest::{self, ConnectionExt as _};
use x11rb::rust_connection::RustConnection;

use super::keymap;
use super::typing::Typist;

/// Most wheel steps one message may ask for (a runaway viewer cannot queue minutes of clicks).
const MAX_WHEEL_STEPS: i32 = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum InputCommand {
    /// Move the pointer to these screen pixels.
    MouseMove {
        x: i32,
        y: i32,
    },
    MouseButton {
        button: MouseButton,
        down: bool,
    },
    /// Wheel steps: positive `dy` scrolls down, positive `dx` right; one click per step.
    Wheel {
        dx: i32,
        dy: i32,
    },
    /// A physical key by its DOM `KeyboardEvent.code`.
    Key {
        code: String,
        down: bool,
    },
    /// Characters to type, whatever the remote layout.
    Text(String),
    /// Press these DOM codes in order, release them in reverse.
    Combo(Vec<String>),
    /// Release every key and button pressed through this thread and not yet released.
    ReleaseAll,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum InputError {
    #[error("cannot open the X display: {0}")]
    Connect(#[from] ConnectError),
    #[error("the X server has no XTEST extension, so input cannot be injected")]
    NoXTest,
    #[error("X connection failed: {0}")]
    Connection(#[from] ConnectionError),
    #[error("X request failed: {0}")]
    Reply(#[from] ReplyError),
    #[error("cannot start the input thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Queues input for the thread; cheap to clone. The thread ends when every handle is dropped.
#[derive(Clone)]
pub(super) struct InputHandle {
    commands: mpsc::Sender<InputCommand>,
}

impl InputHandle {
    /// Never blocks; input sent after the thread stopped (X went away) is dropped.
    pub(super) fn send(&self, command: InputCommand) {
        let _ = self.commands.send(command);
    }
}

/// Connects to `display` (e.g. ":0"), checks XTEST, and starts the input thread. The receiver
/// gets notices for the viewer (an unknown key, a character that cannot be typed).
pub(super) fn spawn(display: &str) -> Result<(InputHandle, UnboundedReceiver<String>), InputError> {
    let (conn, screen) = crate::seat::x11_connect(display)?;
    if conn
        .extension_information(xtest::X11_EXTENSION_NAME)?
        .is_none()
    {
        return Err(InputError::NoXTest);
    }
    conn.xtest_get_version(2, 2)?.reply()?;
    let root = conn.setup().roots[screen].root;
    let typist = Typist::new(&conn)?;
    let (commands, receiver) = mpsc::channel();
    let (notices, notice_receiver) = unbounded_channel();
    let injector = Injector {
        conn,
        root,
        typist,
        held_keys: BTreeSet::new(),
        held_buttons: BTreeSet::new(),
        notices,
        unknown_codes: HashSet::new(),
    };
    std::thread::Builder::new()
        .name("desktop-input".into())
        .spawn(move || injector.run(receiver))?;
    Ok((InputHandle { commands }, notice_receiver))
}

/// Presses or releases one key through XTest.
pub(super) fn fake_key(
    conn: &impl Connection,
    root: Window,
    keycode: Keycode,
    down: bool,
) -> Result<(), ConnectionError> {
    let kind = if down {
        KEY_PRESS_EVENT
    } else {
        KEY_RELEASE_EVENT
    };
    conn.xtest_fake_input(kind, keycode, x11rb::CURRENT_TIME, root, 0, 0, 0)?;
    Ok(())
}

fn button_number(button: MouseButton) -> u8 {
    match button {
        MouseButton::Left => 1,
        MouseButton::Middle => 2,
        MouseButton::Right => 3,
        MouseButton::Back => 8,
        MouseButton::Forward => 9,
    }
}

/// The wheel buttons and how many clicks: 4/5 up/down, 6/7 left/right.
fn wheel_clicks(dx: i32, dy: i32) -> Vec<(u8, i32)> {
    let mut clicks = Vec::new();
    let steps = |n: i32| n.unsigned_abs().min(MAX_WHEEL_STEPS as u32) as i32;
    if dy != 0 {
        clicks.push((if dy < 0 { 4 } else { 5 }, steps(dy)));
    }
    if dx != 0 {
        clicks.push((if dx < 0 { 6 } else { 7 }, steps(dx)));
    }
    clicks
}

struct Injector {
    conn: RustConnection,
    root: Window,
    typist: Typist,
    held_keys: BTreeSet<Keycode>,
    held_buttons: BTreeSet<u8>,
    notices: UnboundedSender<String>,
    /// Unknown DOM codes already reported (one notice each, not one per key repeat).
    unknown_codes: HashSet<String>,
}

impl Injector {
    fn run(mut self, commands: mpsc::Receiver<InputCommand>) {
        loop {
            let next = match self.typist.restore_at() {
                Some(at) => commands.recv_timeout(at.saturating_duration_since(Instant::now())),
                None => commands.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let result = match next {
                Ok(command) => self.handle_events().and_then(|()| self.apply(command)),
                Err(RecvTimeoutError::Timeout) => self.typist.restore(&self.conn),
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Err(e) = result {
                tracing::warn!("desktop input: {e}; input stops");
                self.notice(format!("remote input stopped: {e}"));
                return;
            }
        }
        if let Err(e) = self
            .release_all()
            .and_then(|()| self.typist.restore(&self.conn))
        {
            tracing::debug!("desktop input: cleaning up at the end: {e}");
        }
    }

    /// Reads what X sent us: keyboard mapping changes (a new layout) and errors.
    fn handle_events(&mut self) -> Result<(), ReplyError> {
        while let Some(event) = self.conn.poll_for_event()? {
            match event {
                Event::MappingNotify(notify) if notify.request != Mapping::POINTER => {
                    self.typist.mapping_changed();
                }
                Event::Error(error) => tracing::debug!("desktop input: X error {error:?}"),
                _ => {}
            }
        }
        Ok(())
    }

    fn apply(&mut self, command: InputCommand) -> Result<(), ReplyError> {
        match command {
            InputCommand::MouseMove { x, y } => {
                let clamp = |v: i32| v.clamp(0, i32::from(i16::MAX)) as i16;
                self.conn.xtest_fake_input(
                    MOTION_NOTIFY_EVENT,
                    0, // absolute
                    x11rb::CURRENT_TIME,
                    self.root,
                    clamp(x),
                    clamp(y),
                    0,
                )?;
            }
            InputCommand::MouseButton { button, down } => {
                self.button(button_number(button), down)?;
            }
            InputCommand::Wheel { dx, dy } => {
                for (button, clicks) in wheel_clicks(dx, dy) {
                    for _ in 0..clicks {
                        self.button(button, true)?;
                        self.button(button, false)?;
                    }
                }
            }
            InputCommand::Key { code, down } => {
                if let Some(keycode) = self.keycode(&code) {
                    self.key(keycode, down)?;
                }
            }
            InputCommand::Combo(codes) => {
                let keycodes: Option<Vec<Keycode>> =
                    codes.iter().map(|code| self.keycode(code)).collect();
                if let Some(keycodes) = keycodes {
                    for &keycode in &keycodes {
                        self.key(keycode, true)?;
                    }
                    for &keycode in keycodes.iter().rev() {
                        self.key(keycode, false)?;
                    }
                }
            }
            InputCommand::Text(text) => {
                for notice in self.typist.type_text(&self.conn, self.root, &text)? {
                    self.notice(notice);
                }
            }
            InputCommand::ReleaseAll => self.release_all()?,
        }
        self.conn.flush()?;
        Ok(())
    }

    /// The X keycode of a DOM code, or a notice (once per code) and `None`.
    fn keycode(&mut self, code: &str) -> Option<Keycode> {
        let keycode = keymap::x_keycode(code);
        if keycode.is_none() && self.unknown_codes.insert(code.to_owned()) {
            self.notice(format!("unknown key code {code:?} ignored"));
        }
        keycode
    }

    fn key(&mut self, keycode: Keycode, down: bool) -> Result<(), ConnectionError> {
        fake_key(&self.conn, self.root, keycode, down)?;
        if down {
            self.held_keys.insert(keycode);
        } else {
            self.held_keys.remove(&keycode);
        }
        Ok(())
    }

    fn button(&mut self, button: u8, down: bool) -> Result<(), ConnectionError> {
        let kind = if down {
            BUTTON_PRESS_EVENT
        } else {
            BUTTON_RELEASE_EVENT
        };
        self.conn
            .xtest_fake_input(kind, button, x11rb::CURRENT_TIME, self.root, 0, 0, 0)?;
        if down {
            self.held_buttons.insert(button);
        } else {
            self.held_buttons.remove(&button);
        }
        Ok(())
    }

    fn release_all(&mut self) -> Result<(), ReplyError> {
        for keycode in std::mem::take(&mut self.held_keys).into_iter().rev() {
            fake_key(&self.conn, self.root, keycode, false)?;
        }
        for button in std::mem::take(&mut self.held_buttons) {
            self.button(button, false)?;
        }
        self.conn.flush()?;
        Ok(())
    }

    fn notice(&self, message: String) {
        let _ = self.notices.send(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_and_wheel_steps_use_the_x_numbers() {
        assert_eq!(button_number(MouseButton::Left), 1);
        assert_eq!(button_number(MouseButton::Middle), 2);
        assert_eq!(button_number(MouseButton::Right), 3);
        assert_eq!(button_number(MouseButton::Back), 8);
        assert_eq!(button_number(MouseButton::Forward), 9);
        assert_eq!(wheel_clicks(0, -3), vec![(4, 3)]);
        assert_eq!(wheel_clicks(0, 2), vec![(5, 2)]);
        assert_eq!(wheel_clicks(-1, 1), vec![(5, 1), (6, 1)]);
        assert_eq!(wheel_clicks(4, 0), vec![(7, 4)]);
        assert_eq!(wheel_clicks(0, 0), vec![]);
        assert_eq!(wheel_clicks(0, 10_000), vec![(5, MAX_WHEEL_STEPS)]);
    }
}
