//! Bytes on the MPS port after TLS: whatever they are and however they are cut, the decoder
//! refuses or reads them without panicking, holds no more than it was given, and whatever it reads
//! encodes into bytes that read back as the same message. Run with `cargo fuzz run apf` from `common/` (nightly,
//! or `RUSTC_BOOTSTRAP=1` with stable).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_common::apf::{Decoder, Side};

fuzz_target!(|input: &[u8]| {
    // The first byte picks the side and where the rest is cut in two (messages split across TLS
    // reads).
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let side = if first & 1 == 0 { Side::Mps } else { Side::Amt };
    let cut = usize::from(first >> 1).min(data.len());
    let mut decoder = Decoder::new(side);
    for piece in [&data[..cut], &data[cut..]] {
        decoder.push(piece);
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => {
                    let mut again = Decoder::new(side);
                    again.push(&message.to_bytes());
                    assert_eq!(again.next_message(), Ok(Some(message)));
                    assert_eq!(again.buffered(), 0);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    assert!(decoder.buffered() <= data.len());
});
