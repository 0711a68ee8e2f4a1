//! Draws on an X display's root window for the desktop tests: solid fills, a scrolled text area,
//! "typed" characters, and any of them over and over in the background.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ChangeGCAux, ConnectionExt as _, CreateGCAux, Gcontext, Rectangle, SubwindowMode,
};
use x11rb::rust_connection::RustConnection;

pub const RED: [u8; 3] = [255, 0, 0];
pub const GREEN: [u8; 3] = [0, 255, 0];
pub const BLUE: [u8; 3] = [0, 0, 255];

pub struct Painter {
    conn: RustConnection,
    root: u32,
    gc: Gcontext,
    pub width: u16,
    pub height: u16,
}

impl Painter {
    pub fn new(display: &str) -> Painter {
        let (conn, screen) = x11rb::connect(Some(display)).expect("connect the painter");
        let screen = &conn.setup().roots[screen];
        let (root, width, height) = (screen.root, screen.width_in_pixels, screen.height_in_pixels);
        let gc = conn.generate_id().unwrap();
        let aux = CreateGCAux::new().subwindow_mode(SubwindowMode::INCLUDE_INFERIORS);
        conn.create_gc(gc, root, &aux).unwrap();
        Painter {
            conn,
            root,
            gc,
            width,
            height,
        }
    }

    fn colour(&self, [r, g, b]: [u8; 3]) {
        let pixel = (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(b);
        self.conn
            .change_gc(self.gc, &ChangeGCAux::new().foreground(pixel))
            .unwrap();
    }

    fn rectangle(&self, x: i16, y: i16, width: u16, height: u16) {
        let rectangle = Rectangle {
            x,
            y,
            width,
            height,
        };
        self.conn
            .poly_fill_rectangle(self.root, self.gc, &[rectangle])
            .unwrap();
    }

    /// Waits until the X server has drawn everything asked so far.
    pub fn sync(&self) {
        self.conn.get_input_focus().unwrap().reply().unwrap();
    }

    /// Fills a rectangle and waits until it is drawn.
    pub fn fill(&self, x: i16, y: i16, width: u16, height: u16, rgb: [u8; 3]) {
        self.colour(rgb);
        self.rectangle(x, y, width, height);
        self.sync();
    }

    pub fn fill_screen(&self, rgb: [u8; 3]) {
        self.fill(0, 0, self.width, self.height, rgb);
    }

    /// Full-screen motion: a new gradient-like pattern of bands each call (every pixel changes).
    pub fn motion_step(&self, step: u32) {
        let bands = 16u16;
        let band = self.height.div_ceil(bands);
        for index in 0..bands {
            let shade = (step * 7 + u32::from(index) * 16) as u8;
            self.colour([shade, 255 - shade, shade / 2]);
            self.rectangle(0, (index * band) as i16, self.width, band);
        }
        self.sync();
    }

    /// Scrolling text: moves the screen up by one line (CopyArea) and draws a new line of
    /// "words" at the bottom.
    pub fn scroll_step(&self, step: u32) {
        const LINE: u16 = 18;
        let (width, height) = (self.width, self.height);
        self.conn
            .copy_area(
                self.root,
                self.root,
                self.gc,
                0,
                LINE as i16,
                0,
                0,
                width,
                height - LINE,
            )
            .unwrap();
        self.colour([255, 255, 255]);
        self.rectangle(0, (height - LINE) as i16, width, LINE);
        self.colour([20, 20, 20]);
        let mut x = 8u32;
        let mut word = step;
        while x + 60 < u32::from(width) {
            let length = 20 + (word * 13) % 60;
            self.rectangle(x as i16, (height - LINE + 4) as i16, length as u16, 10);
            x += length + 8;
            word = word.wrapping_mul(1_103_515_245).wrapping_add(12345) >> 8;
        }
        self.sync();
    }

    /// Typing, as a terminal draws it: one character cell more on a line (8×16 pixels, over the
    /// caret that stood there), then, as a separate draw a moment later, the caret (2×16) in the
    /// next cell; wrapping at the right edge. Returns when the glyph was drawn.
    pub fn typing_step(&self, step: u32) -> std::time::Instant {
        let per_line = u32::from(self.width) / 10 - 2;
        let cell = |n: u32| (10 + (n % per_line) * 10, 40 + (n / per_line % 40) * 20);
        let (x, y) = cell(step);
        self.colour(if step.is_multiple_of(2) {
            [30, 30, 30]
        } else {
            [60, 20, 90]
        });
        self.rectangle(x as i16, y as i16, 8, 16);
        self.sync();
        let drawn = std::time::Instant::now();
        // xterm draws the glyph and moves the caret in two requests; a millisecond apart here.
        std::thread::sleep(std::time::Duration::from_millis(1));
        let (x, y) = cell(step + 1);
        self.colour([0, 120, 0]);
        self.rectangle(x as i16, y as i16, 2, 16);
        self.sync();
        drawn
    }
}

/// Paints on `display` from a thread of its own (and its own connection): `step(painter, 0)`,
/// `step(painter, 1)`, … with `pace` between, until the returned flag is cleared.
pub fn paint_in_background(
    display: &str,
    pace: Duration,
    step: impl Fn(&Painter, u32) + Send + 'static,
) -> Arc<AtomicBool> {
    let running = Arc::new(AtomicBool::new(true));
    let flag = running.clone();
    let display = display.to_owned();
    std::thread::spawn(move || {
        let painter = Painter::new(&display);
        let mut count = 0;
        while flag.load(Ordering::Relaxed) {
            step(&painter, count);
            count += 1;
            std::thread::sleep(pace);
        }
    });
    running
}
