//! Relay session frames as either end receives them: the terminal's, the file manager's and the
//! remote desktop's JSON control messages (input, clipboard, settings) and binary frames (terminal
//! output, picture and cursor headers). The first byte picks the reader, the rest is the frame.
//! Any input must be refused or parsed, never panic. Run with `cargo fuzz run relay` from `common/`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_common::relay::{desktop, files, terminal};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            let _ = terminal::decode_output(frame);
            let _ = desktop::PictureHeader::read(frame);
            let _ = desktop::CursorHeader::read(frame);
            if let Some(byte) = frame.first() {
                let _ = desktop::BinaryKind::from_byte(*byte);
            }
        }
        kind => {
            let Ok(text) = std::str::from_utf8(frame) else {
                return;
            };
            match kind {
                1 => {
                    let _ = terminal::parse_request(text);
                    let _ = terminal::parse_event(text);
                }
                2 => {
                    let _ = files::parse_request(text);
                    let _ = files::parse_reply(text);
                }
                _ => {
                    let _ = desktop::parse_request(text);
                    let _ = desktop::parse_event(text);
                }
            }
        }
    }
});
