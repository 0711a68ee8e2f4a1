//! Peer input never panics either machine, whatever it is, and never buys a wrong identity.

mod support;

use proptest::prelude::*;
use tether_common::handshake::ServerEvent;
use tether_common::handshake::rsa::rsa_public_key_of_cert;

use support::*;

fn frame_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Anything at all.
        prop::collection::vec(any::<u8>(), 0..300),
        // A plausible command id followed by anything, to get past the dispatch.
        (0u16..40, prop::collection::vec(any::<u8>(), 0..1200)).prop_map(|(command, body)| [
            &command.to_be_bytes()[..],
            &body
        ]
        .concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_frames_never_panic(frames in prop::collection::vec(frame_strategy(), 1..12)) {
        let (mut agent, mut server) = (agent(None, AGENT_NONCE), server(SERVER_NONCE));
        for frame in &frames {
            let _ = agent.handle_input(frame);
            let _ = server.handle_input(frame);
            while agent.poll_transmit().is_some() {}
            while server.poll_transmit().is_some() {}
            if let Some(ServerEvent::AgentVerified) = server.poll_event() {
                let _ = server.accept();
            }
        }
        prop_assert!(!agent.is_authenticated(), "random bytes cannot forge the server's proof");
        prop_assert!(server.verified_agent().is_none(), "random bytes cannot forge an agent's proof");
    }

    #[test]
    fn truncated_or_mutated_honest_frames_never_panic_or_change_identity(
        cut in prop::collection::vec(0usize..1200, 8),
        flips in prop::collection::vec((0usize..8, 0usize..1200, 1u8..=255), 0..3),
    ) {
        let honest = pump(&mut agent(None, AGENT_NONCE), &mut server(SERVER_NONCE)).unwrap();
        let mut frames: Vec<Vec<u8>> = honest.to_server.iter().chain(&honest.to_agent).cloned().collect();
        for (frame, at) in frames.iter_mut().zip(&cut) {
            if *at < frame.len() {
                frame.truncate(*at);
            }
        }
        for (which, at, mask) in flips {
            let count = frames.len();
            let frame = &mut frames[which % count];
            if !frame.is_empty() {
                let at = at % frame.len();
                frame[at] ^= mask;
            }
        }
        let (to_server, to_agent) = frames.split_at(honest.to_server.len());
        let mut server = server(SERVER_NONCE);
        for frame in to_server {
            if server.handle_input(frame).is_err() {
                break;
            }
        }
        if let Some(verified) = server.verified_agent() {
            // Only bytes outside the key and the signed values can change without failing.
            prop_assert_eq!(&verified.public_key, &rsa_public_key_of_cert(&agent_cert()).unwrap());
        }
        let mut agent = agent(None, AGENT_NONCE);
        while agent.poll_transmit().is_some() {}
        for frame in to_agent {
            if agent.handle_input(frame).is_err() {
                break;
            }
        }
    }
}
