//! The monitors of the X screen (RandR 1.5 GetMonitors) and which rectangle a
//! [`DisplaySelection`] captures.
//!
//! Display ids are the monitors' positions in RandR's list: stable while the layout is, and what a
//! viewer picks from the `displays` event it was just sent. Without RandR 1.5 the whole screen is
//! one display.

use tether_common::relay::desktop::{DisplayInfo, DisplaySelection};
use x11rb::connection::Connection;
use x11rb::errors::ReplyError;
use x11rb::protocol::randr::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{ConnectionExt as _, Window};

use super::frame::Rect;

/// The monitors of the screen whose root is `root` and whose size is `root_size`.
pub(super) fn read_displays(
    conn: &impl Connection,
    root: Window,
    root_size: (u32, u32),
    has_monitors: bool,
) -> Result<Vec<DisplayInfo>, ReplyError> {
    let whole = DisplayInfo {
        id: 0,
        name: "screen".into(),
        x: 0,
        y: 0,
        width: root_size.0,
        height: root_size.1,
        primary: true,
    };
    if !has_monitors {
        return Ok(vec![whole]);
    }
    let monitors = conn.randr_get_monitors(root, true)?.reply()?.monitors;
    let mut displays = Vec::with_capacity(monitors.len());
    for (index, monitor) in monitors.iter().enumerate() {
        let name = conn.get_atom_name(monitor.name)?.reply()?.name;
        displays.push(DisplayInfo {
            id: index as u32,
            name: String::from_utf8_lossy(&name).into_owned(),
            x: monitor.x.into(),
            y: monitor.y.into(),
            width: monitor.width.into(),
            height: monitor.height.into(),
            primary: monitor.primary,
        });
    }
    if displays.is_empty() {
        displays.push(whole);
    }
    Ok(displays)
}

/// Whether the server has RandR ≥ 1.5 (GetMonitors).
pub(super) fn has_monitors(conn: &impl Connection) -> bool {
    let present = conn
        .extension_information(randr::X11_EXTENSION_NAME)
        .ok()
        .flatten()
        .is_some();
    present
        && conn
            .randr_query_version(1, 5)
            .ok()
            .and_then(|cookie| cookie.reply().ok())
            .is_some_and(|v| (v.major_version, v.minor_version) >= (1, 5))
}

/// The screen rectangle `selection` shows, and the selection as it applies: an id that names no
/// monitor (any more) shows everything.
pub(super) fn region_for(
    selection: DisplaySelection,
    displays: &[DisplayInfo],
    root_size: (u32, u32),
) -> (Rect, DisplaySelection) {
    let root = Rect::new(0, 0, root_size.0, root_size.1);
    if let DisplaySelection::One(id) = selection
        && let Some(display) = displays.iter().find(|d| d.id == id)
    {
        let rect = Rect::new(display.x, display.y, display.width, display.height).clipped_to(root);
        if !rect.is_empty() {
            return (rect, selection);
        }
    }
    (root, DisplaySelection::All)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn display(id: u32, x: i32, width: u32) -> DisplayInfo {
        DisplayInfo {
            id,
            name: format!("M{id}"),
            x,
            y: 0,
            width,
            height: 768,
            primary: id == 0,
        }
    }

    #[test]
    fn a_selection_picks_its_monitor_or_everything() {
        let displays = [display(0, 0, 1024), display(1, 1024, 1280)];
        let root = (2304, 1024);
        assert_eq!(
            region_for(DisplaySelection::One(1), &displays, root),
            (Rect::new(1024, 0, 1280, 768), DisplaySelection::One(1))
        );
        assert_eq!(
            region_for(DisplaySelection::All, &displays, root),
            (Rect::new(0, 0, 2304, 1024), DisplaySelection::All)
        );
        assert_eq!(
            region_for(DisplaySelection::One(7), &displays, root),
            (Rect::new(0, 0, 2304, 1024), DisplaySelection::All),
            "an unknown id shows everything"
        );
        // A monitor partly off the screen is clipped to it.
        let off = [display(0, 2000, 1280)];
        assert_eq!(
            region_for(DisplaySelection::One(0), &off, root).0,
            Rect::new(2000, 0, 304, 768)
        );
    }
}
