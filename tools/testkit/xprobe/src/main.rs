//! xprobe: the X client Tether's remote-desktop tests look at.
//!
//! `xprobe [--display :N] [--mode colour|motion|scroll]` opens one window covering the screen,
//! takes the keyboard focus and prints `ready` once it is shown. Then, one line per event on
//! stdout (flushed each time):
//! - a left click cycles the window's colour red → green → blue → red and prints
//!   `click <x> <y> <colour>`; other buttons (wheel included) print `button <n>`;
//! - a key press prints `key <character>` as the current layout types it, or
//!   `key <keysym name or 0xHEX>` for keys that type no character.
//!
//! `--mode motion` repaints the whole window with a moving pattern and `--mode scroll` scrolls
//! text-like lines up, about 30 times a second; `--mode typing` types ten characters a second on
//! a light page, as a terminal draws them (the glyph, then a millisecond later the caret in the
//! next cell): the pictures the encoder figures and the desktop bench are taken on.
//!
//! `xprobe [--display :N] --close WINDOW` asks another client's window to close, as a window
//! manager's close button does (`WM_DELETE_WINDOW`), and exits: Xvfb has no window manager.

// Kept here, not in the workspace [lints], because they must not reach the integration tests
// (see CONTRIBUTING.md, "Lints").
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod keys;
#[allow(dead_code)]
#[path = "../../../../agent/src/desktop/keysyms.rs"]
mod keysyms;

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::errors::ReplyOrIdError;
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    ChangeGCAux, ChangeWindowAttributesAux, ConnectionExt as _, CreateGCAux, CreateWindowAux,
    EventMask, Gcontext, InputFocus, Mapping, Rectangle, Screen, Window, WindowClass,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use keys::Keyboard;

const FRAME: Duration = Duration::from_millis(33);
const COLOURS: [(&str, (u8, u8, u8)); 3] = [
    ("red", (255, 0, 0)),
    ("green", (0, 255, 0)),
    ("blue", (0, 0, 255)),
];
const LINE_HEIGHT: u16 = 16;
/// Typing mode: one character per this long, and its page colour.
const TYPING: Duration = Duration::from_millis(100);
const PAGE: u32 = 0x00fa_faf5;
/// A character cell and the line pitch in typing mode.
const CELL: (u16, u16) = (9, 18);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Colour,
    Motion,
    Scroll,
    Typing,
    /// Ask this window to close, then exit.
    Close(Window),
}

fn main() -> ExitCode {
    let (display, mode) = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!(
                "xprobe: {message}\nusage: xprobe [--display :N] [--mode colour|motion|scroll|typing | --close WINDOW]"
            );
            return ExitCode::from(2);
        }
    };
    let result = match mode {
        Mode::Close(window) => close(display.as_deref(), window),
        mode => run(display.as_deref(), mode),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xprobe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(Option<String>, Mode), String> {
    let (mut display, mut mode) = (None, Mode::Colour);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--display" => display = Some(value()?),
            "--mode" => {
                mode = match value()?.as_str() {
                    "colour" | "color" => Mode::Colour,
                    "motion" => Mode::Motion,
                    "scroll" => Mode::Scroll,
                    "typing" => Mode::Typing,
                    other => return Err(format!("unknown mode {other:?}")),
                }
            }
            "--close" => {
                let window = value()?;
                let parsed = match window.strip_prefix("0x") {
                    Some(hex) => u32::from_str_radix(hex, 16),
                    None => window.parse(),
                };
                mode = Mode::Close(parsed.map_err(|_| format!("{window:?} is not a window id"))?);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((display, mode))
}

/// Sends `window` the `WM_DELETE_WINDOW` message a window manager sends for its close button.
fn close(display: Option<&str>, window: Window) -> Result<(), Box<dyn std::error::Error>> {
    use x11rb::protocol::xproto::{ClientMessageEvent, EventMask};
    let (conn, _) = x11rb::connect(display)?;
    let protocols = conn.intern_atom(false, b"WM_PROTOCOLS")?.reply()?.atom;
    let delete = conn.intern_atom(false, b"WM_DELETE_WINDOW")?.reply()?.atom;
    let message = ClientMessageEvent::new(
        32,
        window,
        protocols,
        [delete, x11rb::CURRENT_TIME, 0, 0, 0],
    );
    conn.send_event(false, window, EventMask::NO_EVENT, message)?;
    conn.sync()?;
    Ok(())
}

/// Prints one line and flushes; a closed stdout (the test is over) ends xprobe.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

struct Probe {
    conn: RustConnection,
    window: Window,
    gc: Gcontext,
    width: u16,
    height: u16,
    /// Pixel values of red, green, blue in the root visual.
    pixels: [u32; 3],
    colour: usize,
    keyboard: Keyboard,
    frame: u32,
}

fn run(display: Option<&str>, mode: Mode) -> Result<(), Box<dyn std::error::Error>> {
    let (conn, screen_number) = x11rb::connect(display)?;
    let screen = conn.setup().roots[screen_number].clone();
    let pixels = COLOURS.map(|(_, (r, g, b))| pixel(&screen, r, g, b));
    let (window, gc) = create_window(&conn, &screen, pixels[0])?;
    let keyboard = Keyboard::fetch(&conn)?;
    let mut probe = Probe {
        conn,
        window,
        gc,
        width: screen.width_in_pixels,
        height: screen.height_in_pixels,
        pixels,
        colour: 0,
        keyboard,
        frame: 0,
    };
    probe.conn.map_window(window)?;
    probe.conn.flush()?;
    loop {
        if let Event::MapNotify(_) = probe.conn.wait_for_event()? {
            break;
        }
    }
    // XTest keys go to the focus window; no window manager gives it to us.
    probe
        .conn
        .set_input_focus(InputFocus::POINTER_ROOT, window, x11rb::CURRENT_TIME)?;
    probe.conn.sync()?;
    say("ready");
    if mode == Mode::Colour {
        loop {
            let event = probe.conn.wait_for_event()?;
            probe.handle(event)?;
        }
    }
    if mode == Mode::Typing {
        probe.fill(PAGE, &[probe.whole()])?;
        probe.conn.sync()?;
    }
    let pace = if mode == Mode::Typing { TYPING } else { FRAME };
    let mut next_frame = Instant::now();
    loop {
        while let Some(event) = probe.conn.poll_for_event()? {
            probe.handle(event)?;
        }
        match mode {
            Mode::Motion => probe.draw_motion()?,
            Mode::Typing => probe.draw_typing()?,
            _ => probe.draw_scroll()?,
        }
        probe.conn.flush()?;
        probe.frame = probe.frame.wrapping_add(1);
        next_frame += pace;
        let now = Instant::now();
        if next_frame > now {
            std::thread::sleep(next_frame - now);
        } else {
            next_frame = now;
        }
    }
}

/// The pixel value of an 8-bit colour in the screen's (TrueColor) root visual.
fn pixel(screen: &Screen, r: u8, g: u8, b: u8) -> u32 {
    let visual = screen
        .allowed_depths
        .iter()
        .flat_map(|depth| &depth.visuals)
        .find(|visual| visual.visual_id == screen.root_visual);
    let Some(visual) = visual else {
        return u32::from(r) << 16 | u32::from(g) << 8 | u32::from(b);
    };
    let scale = |value: u8, mask: u32| {
        if mask == 0 {
            return 0;
        }
        let shift = mask.trailing_zeros();
        let max = mask >> shift;
        ((u32::from(value) * max / 255) << shift) & mask
    };
    scale(r, visual.red_mask) | scale(g, visual.green_mask) | scale(b, visual.blue_mask)
}

fn create_window(
    conn: &RustConnection,
    screen: &Screen,
    background: u32,
) -> Result<(Window, Gcontext), ReplyOrIdError> {
    let window = conn.generate_id()?;
    let events = EventMask::EXPOSURE
        | EventMask::BUTTON_PRESS
        | EventMask::KEY_PRESS
        | EventMask::STRUCTURE_NOTIFY;
    conn.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        window,
        screen.root,
        0,
        0,
        screen.width_in_pixels,
        screen.height_in_pixels,
        0,
        WindowClass::INPUT_OUTPUT,
        screen.root_visual,
        &CreateWindowAux::new()
            .background_pixel(background)
            .override_redirect(1)
            .event_mask(events),
    )?;
    let gc = conn.generate_id()?;
    conn.create_gc(
        gc,
        window,
        &CreateGCAux::new()
            .foreground(screen.black_pixel)
            .graphics_exposures(0),
    )?;
    Ok((window, gc))
}

impl Probe {
    fn handle(&mut self, event: Event) -> Result<(), ReplyOrIdError> {
        match event {
            Event::ButtonPress(press) if press.detail == 1 => {
                self.colour = (self.colour + 1) % COLOURS.len();
                let background =
                    ChangeWindowAttributesAux::new().background_pixel(self.pixels[self.colour]);
                self.conn
                    .change_window_attributes(self.window, &background)?;
                self.conn.clear_area(false, self.window, 0, 0, 0, 0)?;
                self.conn.flush()?;
                let name = COLOURS[self.colour].0;
                say(&format!("click {} {} {name}", press.event_x, press.event_y));
            }
            Event::ButtonPress(press) => say(&format!("button {}", press.detail)),
            Event::KeyPress(press) => {
                let keysym = self.keyboard.keysym(press.detail, u16::from(press.state));
                say(&format!("key {}", keys::describe(keysym)));
            }
            Event::MappingNotify(notify) if notify.request != Mapping::POINTER => {
                // At once: a borrowed key's binding lasts only a moment after its press.
                self.keyboard = Keyboard::fetch(&self.conn)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn fill(&self, colour: u32, rectangles: &[Rectangle]) -> Result<(), ReplyOrIdError> {
        self.conn
            .change_gc(self.gc, &ChangeGCAux::new().foreground(colour))?;
        self.conn
            .poly_fill_rectangle(self.window, self.gc, rectangles)?;
        Ok(())
    }

    /// A checkerboard sliding right and changing colour every frame: every pixel changes.
    fn draw_motion(&self) -> Result<(), ReplyOrIdError> {
        const CELL: i32 = 64;
        const SHADES: u32 = 6;
        let offset = (self.frame as i32 * 8) % (CELL * 2);
        let mut by_shade: Vec<Vec<Rectangle>> = vec![Vec::new(); SHADES as usize];
        let (columns, rows) = (
            i32::from(self.width) / CELL + 3,
            i32::from(self.height) / CELL + 1,
        );
        for row in 0..rows {
            for column in 0..columns {
                let shade = (row + column) as u32 % SHADES;
                by_shade[shade as usize].push(Rectangle {
                    x: (column * CELL - CELL * 2 + offset) as i16,
                    y: (row * CELL) as i16,
                    width: CELL as u16,
                    height: CELL as u16,
                });
            }
        }
        for (shade, rectangles) in by_shade.iter().enumerate() {
            let level = ((shade as u32 * 40 + self.frame * 5) % 256) as u8;
            let colour = pixel_rgb(level, 255 - level, (level / 2).wrapping_add(64));
            self.fill(colour, rectangles)?;
        }
        Ok(())
    }

    fn whole(&self) -> Rectangle {
        Rectangle {
            x: 0,
            y: 0,
            width: self.width,
            height: self.height,
        }
    }

    /// Cell `n` of the page (left to right, top to bottom, starting over at the end).
    fn cell(&self, n: u32) -> (i16, i16) {
        let per_line = u32::from(self.width / CELL.0).saturating_sub(4).max(1);
        let lines = u32::from(self.height / CELL.1).saturating_sub(4).max(1);
        let column = n % per_line;
        let line = n / per_line % lines;
        (
            (CELL.0 as u32 * (column + 2)) as i16,
            (CELL.1 as u32 * (line + 2)) as i16,
        )
    }

    /// One typed character: a glyph-like shape of strokes in the caret's cell, flushed; a
    /// millisecond later the caret in the next cell (two draws, as a terminal makes them).
    fn draw_typing(&self) -> Result<(), ReplyOrIdError> {
        let (x, y) = self.cell(self.frame);
        let (width, height) = (CELL.0 - 2, CELL.1 - 4);
        // Offsets inside the cell, as coordinates.
        let (w, h) = (width as i16, height as i16);
        self.fill(
            PAGE,
            &[Rectangle {
                x,
                y,
                width: CELL.0,
                height: CELL.1,
            }],
        )?;
        let shape = self.frame.wrapping_mul(2_654_435_761) >> 24;
        let mut strokes = vec![Rectangle {
            x: x + 1,
            y: y + 3,
            width: 2,
            height: height - 2,
        }];
        if shape & 1 != 0 {
            strokes.push(Rectangle {
                x: x + 1,
                y: y + 3,
                width,
                height: 2,
            });
        }
        if shape & 2 != 0 {
            strokes.push(Rectangle {
                x: x + 1,
                y: y + 1 + h / 2,
                width,
                height: 2,
            });
        }
        if shape & 4 != 0 {
            strokes.push(Rectangle {
                x: x + w - 1,
                y: y + 3,
                width: 2,
                height: height - 2,
            });
        }
        if shape & 8 != 0 {
            strokes.push(Rectangle {
                x: x + 1,
                y: y + h,
                width,
                height: 2,
            });
        }
        self.fill(pixel_rgb(30, 30, 40), &strokes)?;
        self.conn.flush()?;
        std::thread::sleep(Duration::from_millis(1));
        let (x, y) = self.cell(self.frame.wrapping_add(1));
        if (x, y) == (CELL.0 as i16 * 2, CELL.1 as i16 * 2) {
            // Back at the top: a fresh page.
            self.fill(PAGE, &[self.whole()])?;
        }
        self.fill(
            pixel_rgb(0, 120, 0),
            &[Rectangle {
                x,
                y,
                width: 2,
                height: CELL.1,
            }],
        )
    }

    /// Moves everything up one line and writes a new line of "words" at the bottom.
    fn draw_scroll(&self) -> Result<(), ReplyOrIdError> {
        let (width, height) = (self.width, self.height);
        let bottom = height.saturating_sub(LINE_HEIGHT);
        self.conn.copy_area(
            self.window,
            self.window,
            self.gc,
            0,
            LINE_HEIGHT as i16,
            0,
            0,
            width,
            bottom,
        )?;
        let strip = Rectangle {
            x: 0,
            y: bottom as i16,
            width,
            height: LINE_HEIGHT,
        };
        self.fill(pixel_rgb(250, 250, 245), &[strip])?;
        let mut words = Vec::new();
        let mut seed = self.frame.wrapping_mul(2_654_435_761).wrapping_add(12345);
        let mut x: u32 = 8;
        while x < u32::from(width).saturating_sub(16) {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let length = 12 + (seed >> 16) % 60;
            words.push(Rectangle {
                x: x as i16,
                y: (bottom + 3) as i16,
                width: length.min(u32::from(width) - x) as u16,
                height: LINE_HEIGHT - 6,
            });
            x += length + 7;
        }
        self.fill(pixel_rgb(30, 30, 40), &words)
    }
}

/// 24-bit TrueColor pixels (what Xvfb's `WxHx24` screens use) for the animations.
fn pixel_rgb(r: u8, g: u8, b: u8) -> u32 {
    u32::from(r) << 16 | u32::from(g) << 8 | u32::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_choose_display_and_mode() {
        let parse = |args: &[&str]| parse_args(args.iter().map(|a| a.to_string()));
        assert_eq!(parse(&[]), Ok((None, Mode::Colour)));
        assert_eq!(
            parse(&["--display", ":7", "--mode", "scroll"]),
            Ok((Some(":7".to_owned()), Mode::Scroll))
        );
        assert_eq!(parse(&["--mode", "typing"]), Ok((None, Mode::Typing)));
        assert!(parse(&["--mode", "spin"]).is_err());
        assert!(parse(&["--display"]).is_err());
        assert_eq!(
            parse(&["--close", "0x1a00003"]),
            Ok((None, Mode::Close(0x1a0_0003)))
        );
        assert_eq!(
            parse(&["--close", "27262979"]),
            Ok((None, Mode::Close(27_262_979)))
        );
        assert!(parse(&["--close", "tether"]).is_err());
    }
}
