//! `/control` text frames, as a console or tetherctl sends them to the server: any bytes must be
//! refused with an error or parsed, never panic. Run with `cargo fuzz run control` from `common/`
//! (nightly, or `RUSTC_BOOTSTRAP=1` with stable).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_common::control::parse_request;
use tether_common::rights::Rights;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = parse_request(text) {
        // What parsed must write back out and parse again to the same request.
        let json = serde_json::to_string(&request).expect("a parsed request serializes");
        let again = parse_request(&json).unwrap_or_else(|_| panic!("re-parse of {json}"));
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::to_value(&request).unwrap()
        );
    }
    let _ = Rights::parse(text);
});
