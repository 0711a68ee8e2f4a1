//! What crosses the agent channel after the handshake, in both directions, and what an agent
//! reads from disk or the server: JSON commands, relay tunnel requests and `.msh` files. Any input
//! must be refused or parsed, never panic. Run with `cargo fuzz run agent` from `common/`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_common::agent_proto::{parse_from_agent, parse_from_server};
use tether_common::msh::Msh;
use tether_common::relay::parse_tunnel;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_from_agent(text);
    let _ = parse_from_server(text);
    let _ = parse_tunnel(text);
    if let Ok(msh) = Msh::parse(text) {
        // A parsed `.msh` writes out to text that parses to the same file.
        let again = Msh::parse(&msh.to_string()).expect("a written .msh parses");
        assert_eq!(again.mesh_id, msh.mesh_id);
        assert_eq!(again.server_id, msh.server_id);
    }
});
