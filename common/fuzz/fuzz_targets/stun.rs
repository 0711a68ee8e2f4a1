//! Datagrams on the server's STUN port: any bytes are refused or read as a Binding request, never
//! panic, and an answered request's response reads back as the address it was sent from. Run with
//! `cargo fuzz run stun` from `common/` (nightly, or `RUSTC_BOOTSTRAP=1` with stable).

#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use tether_common::stun::{binding_success, parse_binding_request, parse_binding_success};

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = parse_binding_request(data) {
        let from: SocketAddr = "[2001:db8::7]:3478".parse().expect("a literal address");
        let response = binding_success(id, from);
        assert!(response.len() <= 44, "the answer stays small");
        assert_eq!(parse_binding_success(&response, id), Some(from));
    }
    let _ = parse_binding_success(data, tether_common::stun::TransactionId([0; 12]));
});
