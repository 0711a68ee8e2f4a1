//! The remote clipboard (the X `CLIPBOARD` selection), as text.
//!
//! A thread owns a hidden window on its own X connection. [`ClipboardHandle::set`] makes that
//! window the owner of `CLIPBOARD` and the thread answers other clients' requests for
//! `UTF8_STRING`, `STRING`, `TEXT` and `TARGETS`; [`ClipboardHandle::get`] asks the current owner
//! for `UTF8_STRING` (then `STRING`). With XFixes the thread also hears when another client takes
//! `CLIPBOARD`, reads the new text and passes it on the change channel (not when we set it).
//!
//! Only `CLIPBOARD` is used, not `PRIMARY`: `PRIMARY` follows every mouse selection, which
//! would flood the viewer. Texts are capped at [`MAX_TEXT`] (1 MiB) both ways and sent in one
//! property (the X server's BIG-REQUESTS allows that). The incremental (`INCR`) protocol is not
//! spoken: a text another client sends that way (toolkits do above ~256 KiB) reads as nothing. When the session ends the
//! window goes, and with it a text we set, as X selections do without a clipboard manager.

mod owner;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::oneshot;
use x11rb::connection::Connection;
use x11rb::errors::{ConnectError, ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::xfixes::{ConnectionExt as _, SelectionEventMask};
use x11rb::protocol::xproto::{
    ClientMessageEvent, ConnectionExt as _, CreateWindowAux, EventMask, Window, WindowClass,
};
use x11rb::rust_connection::RustConnection;

use owner::Owner;

/// The most clipboard text passed either way, in bytes.
pub(super) const MAX_TEXT: usize = 1 << 20;
/// How long [`ClipboardHandle::get`] waits for the owner's answer.
pub(super) const GET_TIMEOUT: Duration = Duration::from_secs(3);
/// Remote changes queued for the session before older ones are dropped.
const CHANGES_QUEUED: usize = 8;

#[derive(Debug, thiserror::Error)]
pub(super) enum ClipboardError {
    #[error("cannot open the X display: {0}")]
    Connect(#[from] ConnectError),
    #[error("X connection failed: {0}")]
    Connection(#[from] ConnectionError),
    #[error("X request failed: {0}")]
    Reply(#[from] ReplyError),
    #[error("X request failed: {0}")]
    ReplyOrId(#[from] ReplyOrIdError),
    #[error("cannot start the clipboard thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Sets and reads the remote clipboard; cheap to clone. The thread ends when every handle drops.
#[derive(Clone)]
pub(super) struct ClipboardHandle {
    inner: Arc<Shared>,
}

/// What the handles share; dropping the last one stops the thread.
struct Shared {
    conn: Arc<RustConnection>,
    window: Window,
    atoms: Atoms,
    commands: mpsc::Sender<Command>,
}

enum Command {
    Set(String),
    Get(oneshot::Sender<Option<String>>),
    Quit,
}

#[derive(Debug, Clone, Copy)]
struct Atoms {
    clipboard: u32,
    utf8_string: u32,
    text: u32,
    targets: u32,
    incr: u32,
    /// Where answers to `get` land.
    get_property: u32,
    /// Where the text of a remote change lands.
    watch_property: u32,
    /// The client message that wakes the thread for a command.
    wake: u32,
}

impl ClipboardHandle {
    /// Puts `text` on the remote clipboard (cut at [`MAX_TEXT`] bytes).
    pub(super) fn set(&self, text: String) {
        self.inner.command(Command::Set(text));
    }

    /// The remote clipboard's text; `None` if it is empty, not text, or its owner does not
    /// answer within [`GET_TIMEOUT`].
    pub(super) async fn get(&self) -> Option<String> {
        let (answer, answered) = oneshot::channel();
        self.inner.command(Command::Get(answer));
        tokio::time::timeout(GET_TIMEOUT, answered)
            .await
            .ok()?
            .ok()?
    }
}

impl Shared {
    fn command(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            self.wake();
        }
    }

    /// The thread sleeps in `wait_for_event`: a client message to its own window wakes it.
    fn wake(&self) {
        let message = ClientMessageEvent::new(32, self.window, self.atoms.wake, [0u32; 5]);
        let sent = self
            .conn
            .send_event(false, self.window, EventMask::NO_EVENT, message)
            .and_then(|_| self.conn.flush());
        if let Err(e) = sent {
            tracing::debug!("desktop clipboard: cannot wake the thread: {e}");
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.command(Command::Quit);
    }
}

/// Connects to `display`, makes the hidden window and starts the clipboard thread. The receiver
/// gets the text of each change another client makes.
pub(super) fn spawn(
    display: &str,
) -> Result<(ClipboardHandle, tokio::sync::mpsc::Receiver<String>), ClipboardError> {
    let (conn, screen) = x11rb::connect(Some(display))?;
    let root = conn.setup().roots[screen].root;
    let atoms = intern_atoms(&conn)?;
    let window = conn.generate_id()?;
    conn.create_window(
        0,
        window,
        root,
        -10,
        -10,
        1,
        1,
        0,
        WindowClass::INPUT_ONLY,
        x11rb::COPY_FROM_PARENT,
        &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
    )?;
    let watching = watch_owner_changes(&conn, window, atoms.clipboard);
    if let Err(e) = &watching {
        tracing::info!("desktop clipboard: no XFixes ({e}): remote changes are not announced");
    }
    conn.flush()?;
    let conn = Arc::new(conn);
    let (commands, command_receiver) = mpsc::channel();
    let (changes, change_receiver) = tokio::sync::mpsc::channel(CHANGES_QUEUED);
    let owner = Owner::new(conn.clone(), window, atoms, changes);
    std::thread::Builder::new()
        .name("desktop-clipboard".into())
        .spawn(move || owner.run(command_receiver))?;
    let shared = Shared {
        conn,
        window,
        atoms,
        commands,
    };
    Ok((
        ClipboardHandle {
            inner: Arc::new(shared),
        },
        change_receiver,
    ))
}

fn intern_atoms(conn: &RustConnection) -> Result<Atoms, ReplyError> {
    let names: [&[u8]; 8] = [
        b"CLIPBOARD",
        b"UTF8_STRING",
        b"TEXT",
        b"TARGETS",
        b"INCR",
        b"TETHER_CLIPBOARD_GET",
        b"TETHER_CLIPBOARD_WATCH",
        b"TETHER_CLIPBOARD_WAKE",
    ];
    let cookies = names
        .iter()
        .map(|name| conn.intern_atom(false, name))
        .collect::<Result<Vec<_>, _>>()?;
    let mut atoms = Vec::with_capacity(names.len());
    for cookie in cookies {
        atoms.push(cookie.reply()?.atom);
    }
    Ok(Atoms {
        clipboard: atoms[0],
        utf8_string: atoms[1],
        text: atoms[2],
        targets: atoms[3],
        incr: atoms[4],
        get_property: atoms[5],
        watch_property: atoms[6],
        wake: atoms[7],
    })
}

fn watch_owner_changes(
    conn: &RustConnection,
    window: Window,
    clipboard: u32,
) -> Result<(), ReplyError> {
    conn.xfixes_query_version(5, 0)?.reply()?;
    let events = SelectionEventMask::SET_SELECTION_OWNER
        | SelectionEventMask::SELECTION_WINDOW_DESTROY
        | SelectionEventMask::SELECTION_CLIENT_CLOSE;
    conn.xfixes_select_selection_input(window, clipboard, events)?
        .check()?;
    Ok(())
}
