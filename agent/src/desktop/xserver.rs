//! A hub's connection to the X server: the extensions it needs (MIT-SHM, XDamage, XFixes, RandR),
//! and a thread that waits for X events and turns them into [`XEvent`]s for the hub.
//!
//! x11rb's `RustConnection` is safe to share between threads, so the event thread blocks in
//! `wait_for_event` while the hub thread makes requests on the same connection. To end the event
//! thread, the hub sends a ClientMessage to a small unmapped window of its own (an event sent with
//! an empty mask goes to the window's creator: us), which wakes `wait_for_event`.

use std::sync::Arc;

use x11rb::connection::{Connection, RequestConnection as _};
use x11rb::errors::{ConnectError, ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::Event;
use x11rb::protocol::damage::{self, ConnectionExt as _, ReportLevel};
use x11rb::protocol::randr::{self, ConnectionExt as _, NotifyMask};
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::{self, ConnectionExt as _, CursorNotifyMask};
use x11rb::protocol::xproto::{
    ClientMessageEvent, ConnectionExt as _, CreateWindowAux, EventMask, ImageOrder, Window,
    WindowClass,
};
use x11rb::rust_connection::RustConnection;

use super::cursor::{CursorImage, cursor_frame};
use super::displays;

#[derive(Debug, thiserror::Error)]
pub(super) enum XError {
    #[error("cannot open X display {display}: {source}")]
    Connect {
        display: String,
        source: ConnectError,
    },
    #[error("the X connection failed: {0}")]
    Connection(#[from] ConnectionError),
    #[error("an X request failed: {0}")]
    Reply(#[from] ReplyError),
    #[error("an X request failed: {0}")]
    ReplyOrId(#[from] ReplyOrIdError),
    #[error("this X screen cannot be captured: {0}")]
    Format(String),
    #[error("cannot map the capture's shared memory: {0}")]
    Map(std::io::Error),
    /// The X server went away or reported an error.
    #[error("{0}")]
    Lost(String),
}

/// What the hub hears from the X server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum XEvent {
    /// Something was drawn since the damage was last reset.
    Damage,
    /// The screen's size or monitors changed.
    ScreenChanged,
    /// The pointer's shape changed.
    CursorChanged,
    /// The connection broke or the server reported an error: the hub cannot go on.
    Failed(String),
}

pub(super) struct XServer {
    pub conn: Arc<RustConnection>,
    pub root: Window,
    /// RandR ≥ 1.5: monitors can be listed.
    pub has_monitors: bool,
    /// MIT-SHM ≥ 1.2: the server can make a segment and hand us its descriptor.
    pub has_shm: bool,
    has_cursor: bool,
    damage: Option<damage::Damage>,
    waker: Window,
}

impl XServer {
    pub(super) fn connect(x_display: &str) -> Result<XServer, XError> {
        let (conn, screen_num) =
            crate::seat::x11_connect(x_display).map_err(|source| XError::Connect {
                display: x_display.to_owned(),
                source,
            })?;
        check_pixel_format(&conn, screen_num)?;
        let root = conn.setup().roots[screen_num].root;
        let has = |name: &'static str| conn.extension_information(name).ok().flatten().is_some();
        let has_xfixes = has(xfixes::X11_EXTENSION_NAME)
            && conn.xfixes_query_version(5, 0)?.reply()?.major_version >= 2;
        let has_damage = has_xfixes
            && has(damage::X11_EXTENSION_NAME)
            && conn.damage_query_version(1, 1)?.reply().is_ok();
        let has_shm = has(shm::X11_EXTENSION_NAME) && {
            let version = conn.shm_query_version()?.reply()?;
            (version.major_version, version.minor_version) >= (1, 2)
        };
        let has_monitors = displays::has_monitors(&conn);
        if has(randr::X11_EXTENSION_NAME) {
            let mask =
                NotifyMask::SCREEN_CHANGE | NotifyMask::CRTC_CHANGE | NotifyMask::OUTPUT_CHANGE;
            conn.randr_select_input(root, mask)?;
        }
        if has_xfixes {
            conn.xfixes_select_cursor_input(root, CursorNotifyMask::DISPLAY_CURSOR)?;
        }
        let damage = if has_damage {
            let id = conn.generate_id()?;
            // One event when the damage goes from empty to not empty; the hub resets it before
            // each capture, so an idle screen sends nothing at all.
            conn.damage_create(id, root, ReportLevel::NON_EMPTY)?;
            Some(id)
        } else {
            tracing::warn!(
                "desktop: no XDamage on {x_display}; comparing frames at the frame rate"
            );
            None
        };
        let waker = conn.generate_id()?;
        conn.create_window(
            0,
            waker,
            root,
            -1,
            -1,
            1,
            1,
            0,
            WindowClass::INPUT_ONLY,
            0,
            &CreateWindowAux::new(),
        )?;
        conn.flush()?;
        Ok(XServer {
            conn: Arc::new(conn),
            root,
            has_monitors,
            has_shm,
            has_cursor: has_xfixes,
            damage,
            waker,
        })
    }

    /// Whether XDamage tells us when something is drawn (otherwise: assume always).
    pub(super) fn tracks_damage(&self) -> bool {
        self.damage.is_some()
    }

    /// Forgets the damage so far; the next drawing sends a new [`XEvent::Damage`].
    pub(super) fn reset_damage(&self) -> Result<(), XError> {
        if let Some(damage) = self.damage {
            self.conn
                .damage_subtract(damage, x11rb::NONE, x11rb::NONE)?;
            self.conn.flush()?;
        }
        Ok(())
    }

    pub(super) fn root_size(&self) -> Result<(u32, u32), XError> {
        let geometry = self.conn.get_geometry(self.root)?.reply()?;
        Ok((geometry.width.into(), geometry.height.into()))
    }

    /// The pointer's position on the screen.
    pub(super) fn pointer(&self) -> Result<(i32, i32), XError> {
        let reply = self.conn.query_pointer(self.root)?.reply()?;
        Ok((reply.root_x.into(), reply.root_y.into()))
    }

    /// The pointer's shape as a cursor frame (`None` without XFixes).
    pub(super) fn cursor(&self) -> Result<Option<Vec<u8>>, XError> {
        if !self.has_cursor {
            return Ok(None);
        }
        let reply = self.conn.xfixes_get_cursor_image()?.reply()?;
        Ok(cursor_frame(&CursorImage {
            width: reply.width,
            height: reply.height,
            hot_x: reply.xhot,
            hot_y: reply.yhot,
            argb: &reply.cursor_image,
        }))
    }

    /// Starts the thread that forwards X events; it ends when `forward` returns false, when the
    /// connection fails, or at [`stop_events`](Self::stop_events).
    pub(super) fn spawn_events(
        &self,
        mut forward: impl FnMut(XEvent) -> bool + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let conn = self.conn.clone();
        let waker = self.waker;
        std::thread::Builder::new()
            .name("desktop-x-events".into())
            .spawn(move || {
                loop {
                    let event = match conn.wait_for_event() {
                        Ok(Event::ClientMessage(message)) if message.window == waker => return,
                        Ok(event) => translate(event),
                        Err(e) => Some(XEvent::Failed(format!("the X connection failed: {e}"))),
                    };
                    let Some(event) = event else { continue };
                    let failed = matches!(event, XEvent::Failed(_));
                    if !forward(event) || failed {
                        return;
                    }
                }
            })
    }

    /// Wakes the event thread so that it ends.
    pub(super) fn stop_events(&self) {
        let message = ClientMessageEvent::new(32, self.waker, x11rb::NONE, [0u32; 5]);
        let sent = self
            .conn
            .send_event(false, self.waker, EventMask::NO_EVENT, message)
            .and_then(|_| self.conn.flush());
        if let Err(e) = sent {
            tracing::debug!("desktop: cannot wake the X event thread: {e}");
        }
    }
}

fn translate(event: Event) -> Option<XEvent> {
    match event {
        Event::DamageNotify(_) => Some(XEvent::Damage),
        Event::RandrScreenChangeNotify(_) | Event::RandrNotify(_) => Some(XEvent::ScreenChanged),
        Event::XfixesCursorNotify(_) => Some(XEvent::CursorChanged),
        Event::Error(error) => Some(XEvent::Failed(format!(
            "the X server reported an error: {:?} in {}",
            error.error_kind,
            error.request_name.unwrap_or("a request")
        ))),
        _ => None,
    }
}

/// Captures are handled as BGRX bytes: 32 bits per pixel, blue in the low byte, least significant
/// byte first. That is every depth-24/32 TrueColor screen on little-endian hardware, Xvfb and
/// Xorg alike; anything else is refused with a clear message rather than shown in wrong colours.
fn check_pixel_format(conn: &RustConnection, screen_num: usize) -> Result<(), XError> {
    let setup = conn.setup();
    let screen = &setup.roots[screen_num];
    let depth = screen.root_depth;
    let bits = setup
        .pixmap_formats
        .iter()
        .find(|format| format.depth == depth)
        .map(|format| format.bits_per_pixel);
    let visual = screen
        .allowed_depths
        .iter()
        .flat_map(|d| d.visuals.iter())
        .find(|v| v.visual_id == screen.root_visual);
    let masks = visual.map(|v| (v.red_mask, v.green_mask, v.blue_mask));
    if setup.image_byte_order != ImageOrder::LSB_FIRST
        || bits != Some(32)
        || masks != Some((0xff_0000, 0xff00, 0xff))
    {
        return Err(XError::Format(format!(
            "depth {depth}, {bits:?} bits per pixel, masks {masks:x?}; only 24-bit colour with \
             32-bit pixels is supported"
        )));
    }
    Ok(())
}
