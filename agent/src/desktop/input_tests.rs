//! Input through XTest into a real X server (a private Xvfb) and the xprobe test client, which
//! prints what it received. Skipped, saying so, where Xvfb is not installed (but not under CI).

use std::time::Instant;

use tether_common::relay::desktop::MouseButton;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::ConnectionExt as _;
use xprobe::{DEADLINE, XProbe, Xvfb};

use super::input::{self, InputCommand, InputHandle};
use super::typing::RESTORE_AFTER;

struct Session {
    probe: XProbe,
    input: InputHandle,
    notices: tokio::sync::mpsc::UnboundedReceiver<String>,
    xvfb: Xvfb,
}

fn session() -> Option<Session> {
    let xvfb = Xvfb::start(640, 480)?;
    let probe = XProbe::start(&xvfb.display, "colour");
    let (input, notices) = input::spawn(&xvfb.display).expect("input thread");
    Some(Session {
        probe,
        input,
        notices,
        xvfb,
    })
}

impl Session {
    fn key(&self, code: &str) {
        for down in [true, false] {
            self.input.send(InputCommand::Key {
                code: code.into(),
                down,
            });
        }
    }

    fn click(&self, button: MouseButton) {
        for down in [true, false] {
            self.input.send(InputCommand::MouseButton { button, down });
        }
    }

    fn text(&self, text: &str) {
        self.input.send(InputCommand::Text(text.into()));
    }

    fn next_notice(&mut self) -> String {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Ok(notice) = self.notices.try_recv() {
                return notice;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("no notice within {DEADLINE:?}");
    }
}

/// The keyboard mapping as a client sees it, to check that borrowed keys were given back.
fn keyboard_mapping(display: &str) -> Vec<u32> {
    let (conn, _) = x11rb::connect(Some(display)).expect("connect");
    let (min, max) = (conn.setup().min_keycode, conn.setup().max_keycode);
    conn.get_keyboard_mapping(min, max - min + 1)
        .expect("request")
        .reply()
        .expect("reply")
        .keysyms
}

#[test]
fn a_click_at_a_position_cycles_xprobes_colour() {
    let Some(mut s) = session() else { return };
    s.input.send(InputCommand::MouseMove { x: 100, y: 50 });
    s.click(MouseButton::Left);
    s.probe.expect_line("click 100 50 green");
    s.input.send(InputCommand::MouseMove { x: 7, y: 300 });
    s.click(MouseButton::Left);
    s.probe.expect_line("click 7 300 blue");
    s.click(MouseButton::Right);
    s.probe.expect_line("button 3");
}

#[test]
fn the_wheel_clicks_one_button_per_step() {
    let Some(mut s) = session() else { return };
    s.input.send(InputCommand::Wheel { dx: 0, dy: 2 });
    s.input.send(InputCommand::Wheel { dx: -1, dy: -1 });
    for expected in ["button 5", "button 5", "button 4", "button 6"] {
        let line = s.probe.expect(|line| line.starts_with("button "), expected);
        assert_eq!(line, expected);
    }
}

#[test]
fn keys_by_code_type_what_the_remote_layout_says() {
    let Some(mut s) = session() else { return };
    s.key("KeyA");
    s.probe.expect_line("key a");
    s.key("KeyY");
    s.probe.expect_line("key y");

    s.xvfb.set_layout("de");
    // The German layout swaps Y and Z: the same physical key now types z.
    s.key("KeyY");
    s.probe.expect_line("key z");
    s.text("ä");
    s.probe.expect_line("key ä");

    s.key("Teleport");
    assert!(s.next_notice().contains("Teleport"));
}

#[test]
fn release_all_lets_go_of_a_held_shift() {
    let Some(mut s) = session() else { return };
    s.input.send(InputCommand::Key {
        code: "ShiftLeft".into(),
        down: true,
    });
    s.key("KeyA");
    s.probe.expect_line("key A");
    s.input.send(InputCommand::ReleaseAll);
    s.key("KeyA");
    s.probe.expect_line("key a");
}

#[test]
fn text_types_each_character_whatever_is_held_or_locked() {
    let Some(mut s) = session() else { return };
    let before = keyboard_mapping(&s.xvfb.display);
    let text = "Hello, wörld €";
    s.text(text);
    assert_eq!(s.probe.typed(text.chars().count()), text);

    // Caps Lock on and Shift held by the viewer change nothing.
    s.key("CapsLock");
    s.input.send(InputCommand::Key {
        code: "ShiftLeft".into(),
        down: true,
    });
    s.text("aB1!жЖ");
    assert_eq!(s.probe.typed(6), "aB1!жЖ");
    s.input.send(InputCommand::ReleaseAll);
    s.key("CapsLock");

    // The keys borrowed for ö, € and ж are given back once typing pauses.
    let deadline = Instant::now() + DEADLINE;
    loop {
        std::thread::sleep(RESTORE_AFTER);
        if keyboard_mapping(&s.xvfb.display) == before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the borrowed keys were not given back"
        );
    }
}

#[test]
fn combos_press_in_order_and_release_in_reverse() {
    let Some(mut s) = session() else { return };
    s.input
        .send(InputCommand::Combo(vec!["ShiftLeft".into(), "KeyQ".into()]));
    s.probe.expect_line("key Shift_L");
    s.probe.expect_line("key Q");
    // Shift was released after Q: the next key is lower case.
    s.key("KeyQ");
    s.probe.expect_line("key q");
    s.input
        .send(InputCommand::Combo(vec!["ShiftLeft".into(), "Warp".into()]));
    assert!(s.next_notice().contains("Warp"));
}
