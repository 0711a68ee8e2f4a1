//! The prompt and notice windows, drawn with core X11 requests (x11rb): a title, a few lines of
//! text in the server's own fixed-width font (every X server has `fixed` built in, so nothing
//! needs installing), and buttons that are child windows named after their label, which is also
//! how the tests' scripted "person" finds and clicks them.
//!
//! Two threads per window: one blocks in `wait_for_event` and forwards events; the other owns the
//! window, draws it, counts down a prompt's time and reports the answer. Closing destroys the
//! window, whose `DestroyNotify` ends the event thread.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    AtomEnum, ChangeGCAux, ConnectionExt as _, CreateGCAux, CreateWindowAux, EventMask, Font,
    Gcontext, PropMode, Rectangle, Window, WindowClass,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use super::{Answer, Message, ScreenError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Accept / Decline, declined by itself after `secs`.
    Prompt { secs: u16 },
    /// A banner with a Disconnect button; "Disconnect" answers `Declined`.
    Notice,
}

/// The window stays up while this lives.
pub(super) struct Shown {
    inputs: mpsc::Sender<Input>,
}

impl Drop for Shown {
    fn drop(&mut self) {
        let _ = self.inputs.send(Input::Close);
    }
}

enum Input {
    X(Event),
    /// The X connection failed.
    Lost(String),
    Close,
}

/// Opens the window on `display` (connects first, so an unreachable display is an error here and
/// not an answer); `answer` gets what the person did.
pub(super) fn open(
    display: &str,
    message: Message,
    kind: Kind,
    answer: oneshot::Sender<Result<Answer, ScreenError>>,
) -> Result<Shown, ScreenError> {
    let unreachable = |reason: String| ScreenError::Unreachable {
        display: display.to_owned(),
        reason,
    };
    let (conn, screen) =
        crate::seat::x11_connect(display).map_err(|e| unreachable(e.to_string()))?;
    let conn = Arc::new(conn);
    let window =
        Dialog::create(&conn, screen, &message, kind).map_err(|e| unreachable(e.to_string()))?;
    let (inputs, received) = mpsc::channel();
    let events = inputs.clone();
    let reader = Arc::clone(&conn);
    let main = window.window;
    std::thread::Builder::new()
        .name("consent-x-events".into())
        .spawn(move || forward_events(&reader, main, &events))
        .map_err(|e| unreachable(e.to_string()))?;
    std::thread::Builder::new()
        .name("consent-window".into())
        .spawn(move || {
            let outcome = window.run(&received, kind);
            window.destroy();
            let _ = answer.send(outcome);
        })
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(Shown { inputs })
}

fn forward_events(conn: &RustConnection, main: Window, inputs: &mpsc::Sender<Input>) {
    loop {
        match conn.wait_for_event() {
            Ok(Event::DestroyNotify(e)) if e.window == main => return,
            Ok(event) => {
                if inputs.send(Input::X(event)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = inputs.send(Input::Lost(e.to_string()));
                return;
            }
        }
    }
}

const WIDTH: u16 = 560;
const MARGIN: i16 = 18;
const BUTTON_WIDTH: u16 = 120;
const BUTTON_HEIGHT: u16 = 32;
const BACKGROUND: u32 = 0x00_fa_fa_fa;
const TEXT: u32 = 0x00_18_18_1b;
const MUTED: u32 = 0x00_52_52_5b;
const BORDER: u32 = 0x00_71_71_7a;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Accept,
    Decline,
}

struct Button {
    window: Window,
    role: Role,
    label: &'static str,
    fill: u32,
    ink: u32,
}

struct Dialog {
    conn: Arc<RustConnection>,
    window: Window,
    gc: Gcontext,
    font_ascent: i16,
    line_height: i16,
    char_width: i16,
    title: String,
    lines: Vec<String>,
    buttons: Vec<Button>,
    /// Where the countdown line is drawn (prompts).
    countdown_y: i16,
    delete_window: u32,
}

type XResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

impl Dialog {
    fn create(
        conn: &Arc<RustConnection>,
        screen_num: usize,
        message: &Message,
        kind: Kind,
    ) -> XResult<Dialog> {
        let screen = &conn.setup().roots[screen_num];
        let root = screen.root;
        let font = open_font(conn)?;
        let metrics = conn.query_font(font)?.reply()?;
        let font_ascent = metrics.font_ascent;
        let line_height = metrics.font_ascent + metrics.font_descent + 4;
        let char_width = metrics.max_bounds.character_width.max(1);
        let columns = ((i32::from(WIDTH) - 2 * i32::from(MARGIN)) / i32::from(char_width)).max(20);
        let lines: Vec<String> = message
            .lines
            .iter()
            .flat_map(|line| wrap(line, columns as usize))
            .collect();
        let text_lines = 1 + lines.len() as i16 + i16::from(matches!(kind, Kind::Prompt { .. }));
        let countdown_y = MARGIN + line_height * (lines.len() as i16 + 2);
        let height = (MARGIN * 3 + line_height * (text_lines + 1)) as u16 + BUTTON_HEIGHT;
        let x = (screen.width_in_pixels.saturating_sub(WIDTH) / 2) as i16;
        let y = match kind {
            Kind::Prompt { .. } => (screen.height_in_pixels.saturating_sub(height) / 2) as i16,
            Kind::Notice => 8,
        };
        let window = conn.generate_id()?;
        let aux = CreateWindowAux::new()
            .background_pixel(BACKGROUND)
            .border_pixel(BORDER)
            .event_mask(EventMask::EXPOSURE | EventMask::STRUCTURE_NOTIFY);
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            window,
            root,
            x,
            y,
            WIDTH,
            height,
            1,
            WindowClass::INPUT_OUTPUT,
            x11rb::COPY_FROM_PARENT,
            &aux,
        )?;
        let atom = |name: &str| -> XResult<u32> {
            Ok(conn.intern_atom(false, name.as_bytes())?.reply()?.atom)
        };
        let (utf8, net_wm_name) = (atom("UTF8_STRING")?, atom("_NET_WM_NAME")?);
        set_title(conn, window, &message.title, utf8, net_wm_name)?;
        conn.change_property8(
            PropMode::REPLACE,
            window,
            AtomEnum::WM_CLASS,
            AtomEnum::STRING,
            b"tether-agent\0Tether\0",
        )?;
        // Above other windows, as a dialog (window managers read these before the first map).
        let (state, above) = (atom("_NET_WM_STATE")?, atom("_NET_WM_STATE_ABOVE")?);
        conn.change_property32(PropMode::REPLACE, window, state, AtomEnum::ATOM, &[above])?;
        let (window_type, dialog) = (
            atom("_NET_WM_WINDOW_TYPE")?,
            atom("_NET_WM_WINDOW_TYPE_DIALOG")?,
        );
        conn.change_property32(
            PropMode::REPLACE,
            window,
            window_type,
            AtomEnum::ATOM,
            &[dialog],
        )?;
        let (protocols, delete_window) = (atom("WM_PROTOCOLS")?, atom("WM_DELETE_WINDOW")?);
        conn.change_property32(
            PropMode::REPLACE,
            window,
            protocols,
            AtomEnum::ATOM,
            &[delete_window],
        )?;

        let specs: &[(Role, &'static str, u32, u32)] = match kind {
            Kind::Prompt { .. } => &[
                (Role::Decline, "Decline", 0x00_e4_e4_e7, TEXT),
                (Role::Accept, "Accept", 0x00_1d_4e_d8, 0x00_ff_ff_ff),
            ],
            Kind::Notice => &[(Role::Decline, "Disconnect", 0x00_b9_1c_1c, 0x00_ff_ff_ff)],
        };
        let mut buttons = Vec::new();
        let button_y = height as i16 - MARGIN - BUTTON_HEIGHT as i16;
        let mut button_x = WIDTH as i16 - MARGIN;
        for &(role, label, fill, ink) in specs.iter().rev() {
            button_x -= BUTTON_WIDTH as i16;
            let button = conn.generate_id()?;
            let aux = CreateWindowAux::new()
                .background_pixel(fill)
                .event_mask(EventMask::EXPOSURE | EventMask::BUTTON_RELEASE);
            conn.create_window(
                x11rb::COPY_DEPTH_FROM_PARENT,
                button,
                window,
                button_x,
                button_y,
                BUTTON_WIDTH,
                BUTTON_HEIGHT,
                0,
                WindowClass::INPUT_OUTPUT,
                x11rb::COPY_FROM_PARENT,
                &aux,
            )?;
            set_title(conn, button, label, utf8, net_wm_name)?;
            buttons.push(Button {
                window: button,
                role,
                label,
                fill,
                ink,
            });
            button_x -= MARGIN / 2;
        }
        let gc = conn.generate_id()?;
        conn.create_gc(
            gc,
            window,
            &CreateGCAux::new()
                .font(font)
                .foreground(TEXT)
                .background(BACKGROUND),
        )?;
        conn.close_font(font)?;
        conn.map_subwindows(window)?;
        conn.map_window(window)?;
        conn.flush()?;
        Ok(Dialog {
            conn: Arc::clone(conn),
            window,
            gc,
            font_ascent,
            line_height,
            char_width,
            title: message.title.clone(),
            lines,
            buttons,
            countdown_y,
            delete_window,
        })
    }

    /// Draws, counts down and waits for a button, the window manager's close or `Close`.
    fn run(&self, inputs: &mpsc::Receiver<Input>, kind: Kind) -> Result<Answer, ScreenError> {
        let deadline = match kind {
            Kind::Prompt { secs } => Some(Instant::now() + Duration::from_secs(u64::from(secs))),
            Kind::Notice => None,
        };
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Ok(Answer::Unanswered);
            }
            // Wake each second to redraw the countdown; a notice has nothing to count.
            let wait = left.map_or(Duration::from_secs(3600), |left| {
                Duration::from_millis((left.as_millis() % 1000) as u64 + 1).min(left)
            });
            let input = match inputs.recv_timeout(wait) {
                Ok(input) => input,
                Err(RecvTimeoutError::Timeout) => {
                    self.draw_countdown(left);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(Answer::Declined),
            };
            match input {
                Input::Close => return Ok(Answer::Unanswered),
                Input::Lost(reason) => return Err(ScreenError::Lost(reason)),
                Input::X(Event::Expose(e)) if e.count == 0 => {
                    if e.window == self.window {
                        self.draw_text();
                        self.draw_countdown(
                            deadline.map(|d| d.saturating_duration_since(Instant::now())),
                        );
                    } else if let Some(button) = self.buttons.iter().find(|b| b.window == e.window)
                    {
                        self.draw_button(button);
                    }
                }
                Input::X(Event::ButtonRelease(e)) => {
                    if let Some(button) = self.buttons.iter().find(|b| b.window == e.event) {
                        tracing::info!(button = button.label, "consent: pressed at the device");
                        return Ok(match button.role {
                            Role::Accept => Answer::Accepted,
                            Role::Decline => Answer::Declined,
                        });
                    }
                }
                Input::X(Event::ClientMessage(e))
                    if e.data.as_data32()[0] == self.delete_window =>
                {
                    // Closing a prompt says no; a notice stays while the session lasts.
                    if matches!(kind, Kind::Prompt { .. }) {
                        return Ok(Answer::Declined);
                    }
                }
                Input::X(_) => {}
            }
        }
    }

    fn draw_text(&self) {
        let conn = &self.conn;
        let x = MARGIN;
        let mut y = MARGIN + self.font_ascent;
        let _ = self.ink(TEXT, BACKGROUND);
        let _ = draw_string(conn, self.window, self.gc, x, y, &self.title);
        // A rule under the title.
        let rule = Rectangle {
            x,
            y: y + self.line_height / 2,
            width: WIDTH - 2 * MARGIN as u16,
            height: 1,
        };
        let _ = conn.poly_fill_rectangle(self.window, self.gc, &[rule]);
        y += self.line_height;
        for line in &self.lines {
            y += self.line_height;
            let _ = draw_string(conn, self.window, self.gc, x, y, line);
        }
        let _ = conn.flush();
    }

    fn draw_countdown(&self, left: Option<Duration>) {
        let Some(left) = left else { return };
        let secs = left.as_secs() + u64::from(left.subsec_millis() > 0);
        let text = format!("Declined by itself in {secs} s.");
        let padded = format!("{text:<40}");
        let _ = self.ink(MUTED, BACKGROUND);
        let y = self.countdown_y + self.line_height + self.font_ascent;
        let _ = draw_string(&self.conn, self.window, self.gc, MARGIN, y, &padded);
        let _ = self.conn.flush();
    }

    fn draw_button(&self, button: &Button) {
        let _ = self.ink(button.ink, button.fill);
        let width = self.char_width * button.label.len() as i16;
        let x = (BUTTON_WIDTH as i16 - width) / 2;
        let y = (BUTTON_HEIGHT as i16 + self.font_ascent) / 2 - 1;
        let _ = draw_string(&self.conn, button.window, self.gc, x, y, button.label);
        let _ = self.conn.flush();
    }

    fn ink(&self, foreground: u32, background: u32) -> XResult<()> {
        let aux = ChangeGCAux::new()
            .foreground(foreground)
            .background(background);
        self.conn.change_gc(self.gc, &aux)?;
        Ok(())
    }

    fn destroy(&self) {
        let _ = self.conn.destroy_window(self.window);
        let _ = self.conn.flush();
    }
}

/// The first of a few common fonts the server has; `fixed` is built into every X server.
fn open_font(conn: &RustConnection) -> XResult<Font> {
    let font = conn.generate_id()?;
    for name in [
        "-misc-fixed-medium-r-normal--15-*-*-*-*-*-iso8859-1",
        "9x15",
        "fixed",
    ] {
        if conn.open_font(font, name.as_bytes())?.check().is_ok() {
            return Ok(font);
        }
    }
    Err("the X server has no usable font".into())
}

fn set_title(
    conn: &RustConnection,
    window: Window,
    title: &str,
    utf8: u32,
    net_wm_name: u32,
) -> XResult<()> {
    conn.change_property8(
        PropMode::REPLACE,
        window,
        net_wm_name,
        utf8,
        title.as_bytes(),
    )?;
    conn.change_property8(
        PropMode::REPLACE,
        window,
        AtomEnum::WM_NAME,
        AtomEnum::STRING,
        &latin1(title),
    )?;
    Ok(())
}

/// Core fonts draw Latin-1: anything else shows as `?` (the text is drawn, never interpreted).
fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| {
            u8::try_from(u32::from(c))
                .ok()
                .filter(|b| *b >= 0x20)
                .unwrap_or(b'?')
        })
        .collect()
}

fn draw_string(
    conn: &RustConnection,
    drawable: Window,
    gc: Gcontext,
    x: i16,
    y: i16,
    text: &str,
) -> XResult<()> {
    let bytes = latin1(text);
    // ImageText8 takes at most 255 bytes.
    conn.image_text8(drawable, gc, x, y, &bytes[..bytes.len().min(255)])?;
    Ok(())
}

/// Breaks `text` into lines of at most `columns` characters, at spaces where it can.
fn wrap(text: &str, columns: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word = word.to_owned();
        while word.chars().count() > columns {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            let head: String = word.chars().take(columns).collect();
            word = word.chars().skip(columns).collect();
            lines.push(head);
        }
        let needed = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if needed > columns && !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_wraps_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("one two three", 7), ["one two", "three"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 10), [""]);
    }

    #[test]
    fn only_latin1_reaches_the_core_font() {
        assert_eq!(latin1("Zoë 张\u{1b}"), b"Zo\xeb ??");
    }
}
