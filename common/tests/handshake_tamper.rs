//! Every way a peer can cheat or break the handshake ends it with the right error.

mod support;

use std::sync::Arc;

use tether_common::handshake::rsa::{RsaSigner, RsaVerifier};
use tether_common::handshake::wire::{self, cmd};
use tether_common::handshake::{
    AgentHandshake, HandshakeError, ServerConfig, ServerHandshake, sha384,
};

use support::*;

/// Drains a machine's queue.
fn drain(mut next: impl FnMut() -> Option<Vec<u8>>) -> Vec<Vec<u8>> {
    std::iter::from_fn(&mut next).collect()
}

fn flip_last_byte(mut frame: Vec<u8>) -> Vec<u8> {
    *frame.last_mut().unwrap() ^= 0x01;
    frame
}

/// Frames of one honest run, to replay or tamper with.
fn honest_run(agent_nonce: [u8; 48], server_nonce: [u8; 48]) -> Transcript {
    pump(&mut agent(None, agent_nonce), &mut server(server_nonce)).unwrap()
}

#[test]
fn agent_refuses_a_flipped_server_signature() {
    let t = honest_run(AGENT_NONCE, SERVER_NONCE);
    let mut agent = agent(None, AGENT_NONCE);
    drain(|| agent.poll_transmit());
    agent.handle_input(&t.to_agent[0]).unwrap();
    assert_eq!(
        agent.handle_input(&flip_last_byte(t.to_agent[1].clone())),
        Err(HandshakeError::BadServerSignature)
    );
    assert_eq!(
        agent.handle_input(&t.to_agent[2]),
        Err(HandshakeError::Failed),
        "a failed handshake stays failed"
    );
    assert!(!agent.is_authenticated());
}

#[test]
fn server_refuses_a_flipped_agent_signature() {
    let t = honest_run(AGENT_NONCE, SERVER_NONCE);
    let mut server = server(SERVER_NONCE);
    server.handle_input(&t.to_server[0]).unwrap();
    server.handle_input(&t.to_server[1]).unwrap();
    assert_eq!(
        server.handle_input(&flip_last_byte(t.to_server[2].clone())),
        Err(HandshakeError::BadAgentSignature)
    );
    assert!(server.verified_agent().is_none());
    assert!(server.accept().is_err());
}

#[test]
fn agent_refuses_a_server_with_another_agent_server_key() {
    // An impostor with its own key signs correctly, but its key is not the pinned ServerID.
    let impostor_key =
        Arc::new(RsaSigner::from_pkcs8(&pem_to_der(fixtures::AGENT_KEY_PEM)).unwrap());
    let impostor_config = Arc::new(ServerConfig {
        accepted_web_hashes: vec![web_hash()],
        agent_server_cert_der: agent_cert(),
    });
    let mut impostor = ServerHandshake::new(
        impostor_config,
        SERVER_NONCE,
        impostor_key,
        Arc::new(RsaVerifier),
    );
    let mut agent = agent(None, AGENT_NONCE);
    assert_eq!(
        pump(&mut agent, &mut impostor).unwrap_err(),
        HandshakeError::ServerIdMismatch
    );
}

#[test]
fn agent_refuses_an_echo_of_another_web_certificate() {
    // A man in the middle relays to the real server: the server echoes the hash the relay's
    // client reported, which is not the certificate our agent saw.
    let mut agent = agent(None, AGENT_NONCE);
    drain(|| agent.poll_transmit());
    let echo = wire::encode_auth_request(&sha384(b"the real server's certificate"), &SERVER_NONCE);
    assert_eq!(
        agent.handle_input(&echo),
        Err(HandshakeError::WebCertHashMismatch)
    );
}

#[test]
fn server_refuses_an_agent_that_saw_another_certificate() {
    let mut mitm_victim = AgentHandshake::new(
        agent_config(None),
        sha384(b"the man in the middle's certificate"),
        AGENT_NONCE,
        agent_signer(),
        Arc::new(RsaVerifier),
    );
    let mut server = server(SERVER_NONCE);
    assert_eq!(
        pump(&mut mitm_victim, &mut server).unwrap_err(),
        HandshakeError::UnknownWebCertHash
    );
    assert_eq!(
        server.poll_transmit(),
        None,
        "nothing signed for a stranger's certificate"
    );
}

#[test]
fn server_accepts_the_older_public_key_hash() {
    let key_hash = sha384(b"stand-in for the web certificate's public key");
    let config = Arc::new(ServerConfig {
        accepted_web_hashes: vec![web_hash(), key_hash],
        agent_server_cert_der: agent_server_cert(),
    });
    let mut server =
        ServerHandshake::new(config, SERVER_NONCE, server_signer(), Arc::new(RsaVerifier));
    let mut agent = AgentHandshake::new(
        agent_config(None),
        key_hash,
        AGENT_NONCE,
        agent_signer(),
        Arc::new(RsaVerifier),
    );
    // Older agents report the key hash; the server echoes and signs exactly what the agent reported.
    pump(&mut agent, &mut server).unwrap();
    assert!(agent.is_authenticated());
}

#[test]
fn server_refuses_an_agent_proof_replayed_from_another_session() {
    let recorded = honest_run(AGENT_NONCE, SERVER_NONCE);
    let mut server = server([0x44; 48]);
    server.handle_input(&recorded.to_server[0]).unwrap();
    server.handle_input(&recorded.to_server[1]).unwrap();
    assert_eq!(
        server.handle_input(&recorded.to_server[2]),
        Err(HandshakeError::BadAgentSignature)
    );
}

#[test]
fn agent_refuses_a_server_proof_replayed_from_another_session() {
    let recorded = honest_run(AGENT_NONCE, SERVER_NONCE);
    let mut agent = agent(None, [0x55; 48]);
    drain(|| agent.poll_transmit());
    agent.handle_input(&recorded.to_agent[0]).unwrap();
    assert_eq!(
        agent.handle_input(&recorded.to_agent[1]),
        Err(HandshakeError::BadServerSignature)
    );
}

#[test]
fn server_refuses_every_repeated_command() {
    let t = honest_run(AGENT_NONCE, SERVER_NONCE);
    let pinned = pump(
        &mut agent(Some(web_hash()), AGENT_NONCE),
        &mut server(SERVER_NONCE),
    )
    .unwrap();
    // Frames by command: 5, 1, 2, 3 from the full run and 4 from the pinned one.
    let frame_of = |command: u16| {
        t.to_server
            .iter()
            .chain(&pinned.to_server)
            .find(|f| command_of(f) == command)
            .unwrap()
            .clone()
    };
    for repeated in [
        cmd::SERVER_ID,
        cmd::AUTH_REQUEST,
        cmd::AUTH_VERIFY,
        cmd::AUTH_INFO,
        cmd::AUTH_CONFIRM,
    ] {
        let mut server = server(SERVER_NONCE);
        let mut result = Ok(());
        for command in [
            cmd::SERVER_ID,
            cmd::AUTH_CONFIRM,
            cmd::AUTH_REQUEST,
            cmd::AUTH_VERIFY,
            cmd::AUTH_INFO,
            repeated,
        ] {
            result = result.and_then(|_| server.handle_input(&frame_of(command)));
        }
        assert_eq!(
            result,
            Err(HandshakeError::Repeated(repeated)),
            "command {repeated}"
        );
    }
}

#[test]
fn agent_refuses_every_repeated_command() {
    let t = honest_run(AGENT_NONCE, SERVER_NONCE);
    let mut agent = agent(None, AGENT_NONCE);
    agent.handle_input(&t.to_agent[0]).unwrap();
    assert_eq!(
        agent.handle_input(&t.to_agent[0]),
        Err(HandshakeError::Repeated(1))
    );

    let mut agent = support::agent(None, AGENT_NONCE);
    agent.handle_input(&t.to_agent[0]).unwrap();
    agent.handle_input(&t.to_agent[1]).unwrap();
    assert_eq!(
        agent.handle_input(&t.to_agent[1]),
        Err(HandshakeError::Repeated(2))
    );

    let mut agent = support::agent(Some(web_hash()), AGENT_NONCE);
    agent.handle_input(&[0, 4]).unwrap();
    assert_eq!(
        agent.handle_input(&[0, 4]),
        Err(HandshakeError::AlreadyAuthenticated(4))
    );
}

#[test]
fn agent_takes_no_management_command_before_the_server_is_verified() {
    let t = honest_run(AGENT_NONCE, SERVER_NONCE);
    for early in [
        wire::encode_command(cmd::CORE_MODULE, 0, b""),
        br#"{"action":"msg","type":"console"}"#.to_vec(),
    ] {
        let mut agent = agent(None, AGENT_NONCE);
        agent.handle_input(&t.to_agent[0]).unwrap();
        assert!(matches!(
            agent.handle_input(&early),
            Err(HandshakeError::NotAuthenticated(_))
        ));
    }
    // A confirm without the server's proof is a server skipping the secondary check.
    let mut agent = agent(None, AGENT_NONCE);
    agent.handle_input(&t.to_agent[0]).unwrap();
    assert_eq!(
        agent.handle_input(&[0, 4]),
        Err(HandshakeError::ConfirmBeforeVerified)
    );
    // The server never sends 3 or 5, and a signature needs the nonce first.
    let mut agent = support::agent(None, AGENT_NONCE);
    assert_eq!(
        agent.handle_input(&auth_info().encode()),
        Err(HandshakeError::Unexpected(3))
    );
    let mut agent = support::agent(None, AGENT_NONCE);
    assert_eq!(
        agent.handle_input(&t.to_agent[1]),
        Err(HandshakeError::VerifyBeforeRequest)
    );
}

#[test]
fn server_takes_a_signature_that_overtook_the_request_and_stock_agent_extras() {
    let t = honest_run(AGENT_NONCE, SERVER_NONCE);
    let mut server = server(SERVER_NONCE);
    let commit_date = [&[0u8, 30][..], b"2024-01-01"].concat();
    for frame in [
        &t.to_server[0],
        &commit_date,
        &t.to_server[2],
        &t.to_server[1],
        &t.to_server[3],
    ] {
        server.handle_input(frame).unwrap();
    }
    assert!(server.verified_agent().is_some());
    // But nothing outside the handshake before it completes.
    let mut server = support::server(SERVER_NONCE);
    assert_eq!(
        server.handle_input(&[0, 11, 0, 0]),
        Err(HandshakeError::NotAuthenticated(11))
    );
    let mut server = support::server(SERVER_NONCE);
    assert_eq!(server.handle_input(&[0]), Err(HandshakeError::Truncated));
}

#[test]
fn a_flood_of_harmless_frames_is_cut_off() {
    let mut server = server(SERVER_NONCE);
    let result = (0..100).try_for_each(|_| server.handle_input(&[0, 30]));
    assert_eq!(result, Err(HandshakeError::TooManyFrames));
}
