//! The server's side of a CIRA connection against a scripted AMT: the login in AMT's order,
//! refusals, order violations, and channels whose data keeps within the windows both ways.

use super::*;

const UUID: AmtUuid = AmtUuid([7; 16]);

fn out(session: &mut MpsSession) -> Vec<ApfMessage> {
    std::iter::from_fn(|| session.poll_transmit()).collect()
}

fn events(session: &mut MpsSession) -> Vec<MpsEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

fn version() -> ApfMessage {
    ApfMessage::ProtocolVersion {
        major: 1,
        minor: 0,
        trigger: 0,
        uuid: UUID,
    }
}

fn service(name: &str) -> ApfMessage {
    ApfMessage::ServiceRequest {
        service: name.into(),
    }
}

fn login(password: &str) -> ApfMessage {
    ApfMessage::UserauthRequest {
        user: "cira".into(),
        service: PFWD_SERVICE.into(),
        method: PASSWORD_METHOD.into(),
        password: Password(password.into()),
    }
}

fn forward(port: u32) -> ApfMessage {
    ApfMessage::GlobalRequest {
        request: TCPIP_FORWARD.into(),
        want_reply: true,
        address: String::new(),
        port,
    }
}

/// A session through the login and the forwarding of `ports`, its output read.
fn forwarding(ports: &[u32]) -> MpsSession {
    let mut session = MpsSession::new();
    for message in [version(), service(AUTH_SERVICE), login("pw")] {
        session.handle(message).expect("in order");
    }
    session.login_result(true).expect("accepted");
    session.handle(service(PFWD_SERVICE)).expect("in order");
    for port in ports {
        session.handle(forward(*port)).expect("forwarded");
    }
    out(&mut session);
    events(&mut session);
    session
}

/// Opens a channel to 16992 that AMT confirms with `window` and `max_packet`.
fn open(session: &mut MpsSession, window: u32, max_packet: u32) -> u32 {
    let channel = session.open_channel(port::WSMAN).expect("forwarded");
    let sent = out(session);
    assert!(
        matches!(
            &sent[..],
            [ApfMessage::ChannelOpen { channel_type, sender, target_port: 16992, window: RECEIVE_WINDOW, .. }]
                if channel_type == FORWARDED_TCPIP && *sender == channel
        ),
        "{sent:?}"
    );
    session
        .handle(ApfMessage::ChannelOpenConfirmation {
            recipient: channel,
            sender: 900,
            window,
            max_packet,
        })
        .expect("confirmed");
    assert_eq!(events(session), [MpsEvent::ChannelOpened(channel)]);
    channel
}

fn data_lengths(messages: &[ApfMessage]) -> Vec<usize> {
    messages
        .iter()
        .map(|m| match m {
            ApfMessage::ChannelData {
                recipient: 900,
                data,
            } => data.len(),
            other => panic!("expected data to AMT's channel 900, got {other:?}"),
        })
        .collect()
}

#[test]
fn amt_logs_in_forwards_its_ports_and_gets_keepalive_options() {
    let mut session = MpsSession::new();
    session.handle(version()).unwrap();
    assert_eq!(session.uuid(), Some(UUID));
    assert!(
        out(&mut session).is_empty(),
        "the server says nothing to the version"
    );
    session.handle(service(AUTH_SERVICE)).unwrap();
    assert_eq!(
        out(&mut session),
        [ApfMessage::ServiceAccept {
            service: AUTH_SERVICE.into()
        }]
    );
    session.handle(login("secret")).unwrap();
    assert_eq!(
        events(&mut session),
        [MpsEvent::Login {
            uuid: UUID,
            user: "cira".into(),
            password: Password("secret".into()),
        }]
    );
    assert!(
        out(&mut session).is_empty(),
        "no answer before the server decides"
    );
    assert!(!session.is_authenticated());
    session.login_result(true).unwrap();
    assert_eq!(out(&mut session), [ApfMessage::UserauthSuccess]);
    assert!(session.is_authenticated());
    session.handle(service(PFWD_SERVICE)).unwrap();
    out(&mut session);
    session.handle(forward(port::WSMAN_TLS)).unwrap();
    session.handle(forward(port::WSMAN)).unwrap();
    assert_eq!(
        out(&mut session),
        [
            ApfMessage::RequestSuccess { port: Some(16993) },
            ApfMessage::KeepaliveOptionsRequest {
                interval: KEEPALIVE_INTERVAL_S,
                timeout: 0
            },
            ApfMessage::RequestSuccess { port: Some(16992) },
        ]
    );
    assert_eq!(
        events(&mut session),
        [
            MpsEvent::PortForwarded(16993),
            MpsEvent::PortForwarded(16992)
        ]
    );
    assert_eq!(
        session.forwarded_ports().collect::<Vec<_>>(),
        [16992, 16993]
    );
    session
        .handle(ApfMessage::KeepaliveRequest { cookie: 42 })
        .unwrap();
    assert_eq!(
        out(&mut session),
        [ApfMessage::KeepaliveReply { cookie: 42 }]
    );
}

#[test]
fn a_refused_login_fails_and_disconnects() {
    let mut session = MpsSession::new();
    for message in [version(), service(AUTH_SERVICE), login("wrong")] {
        session.handle(message).unwrap();
    }
    out(&mut session);
    assert_eq!(session.login_result(false), Err(MpsError::LoginRefused));
    assert_eq!(
        out(&mut session),
        [
            ApfMessage::UserauthFailure,
            ApfMessage::Disconnect { reason: 14 }
        ]
    );
    assert!(!session.is_authenticated());
    // Nothing after that is served.
    assert!(session.handle(service(PFWD_SERVICE)).is_err());
    assert!(out(&mut session).is_empty(), "one DISCONNECT only");
}

#[test]
fn messages_out_of_order_end_the_connection() {
    // Logging in before asking for the auth service.
    let mut session = MpsSession::new();
    session.handle(version()).unwrap();
    assert_eq!(
        session.handle(login("pw")),
        Err(MpsError::OutOfOrder {
            got: "USERAUTH_REQUEST",
            expected: "the auth service request"
        })
    );
    assert_eq!(out(&mut session), [ApfMessage::Disconnect { reason: 2 }]);
    // Forwarding before the login.
    let mut session = MpsSession::new();
    session.handle(version()).unwrap();
    assert!(session.handle(forward(16992)).is_err());
    // Another protocol version, another service, another login method.
    let mut session = MpsSession::new();
    let v2 = ApfMessage::ProtocolVersion {
        major: 2,
        minor: 0,
        trigger: 0,
        uuid: UUID,
    };
    assert_eq!(session.handle(v2), Err(MpsError::Version(2, 0)));
    let mut session = MpsSession::new();
    session.handle(version()).unwrap();
    assert_eq!(
        session.handle(service("ssh-connection")),
        Err(MpsError::Service("ssh-connection".into()))
    );
    let mut session = MpsSession::new();
    session.handle(version()).unwrap();
    session.handle(service(AUTH_SERVICE)).unwrap();
    let certificate = ApfMessage::UserauthRequest {
        user: "u".into(),
        service: PFWD_SERVICE.into(),
        method: "publickey".into(),
        password: Password(String::new()),
    };
    assert_eq!(
        session.handle(certificate),
        Err(MpsError::Method("publickey".into()))
    );
}

#[test]
fn data_to_amt_keeps_within_its_window_and_packet_size() {
    let mut session = forwarding(&[port::WSMAN]);
    let channel = open(&mut session, 1000, 400);
    session.send(channel, vec![1; 2500]).unwrap();
    assert_eq!(data_lengths(&out(&mut session)), [400, 400, 200]);
    assert_eq!(session.queued(channel), 1500);
    session
        .handle(ApfMessage::ChannelWindowAdjust {
            recipient: channel,
            bytes: 5000,
        })
        .unwrap();
    assert_eq!(data_lengths(&out(&mut session)), [400, 400, 400, 300]);
    assert_eq!(session.queued(channel), 0);
    // Sent before AMT confirms: held until it does.
    session.handle(forward(port::WSMAN_TLS)).unwrap();
    out(&mut session);
    let early = session.open_channel(port::WSMAN_TLS).unwrap();
    session.send(early, b"GET / HTTP/1.1\r\n".to_vec()).unwrap();
    assert!(matches!(
        &out(&mut session)[..],
        [ApfMessage::ChannelOpen { .. }]
    ));
    session
        .handle(ApfMessage::ChannelOpenConfirmation {
            recipient: early,
            sender: 901,
            window: 100,
            max_packet: 0xFFFF_FFFF,
        })
        .unwrap();
    assert_eq!(
        out(&mut session),
        [ApfMessage::ChannelData {
            recipient: 901,
            data: b"GET / HTTP/1.1\r\n".to_vec()
        }]
    );
}

#[test]
fn data_from_amt_is_granted_more_window_only_as_it_is_consumed() {
    let mut session = forwarding(&[port::WSMAN]);
    let channel = open(&mut session, 1000, 1000);
    let chunk = (RECEIVE_WINDOW / 4) as usize;
    for _ in 0..4 {
        session
            .handle(ApfMessage::ChannelData {
                recipient: channel,
                data: vec![2; chunk],
            })
            .unwrap();
    }
    assert_eq!(events(&mut session).len(), 4);
    assert!(
        out(&mut session).is_empty(),
        "nothing consumed, nothing granted"
    );
    // The window is spent: one byte more is a protocol violation.
    let over = ApfMessage::ChannelData {
        recipient: channel,
        data: vec![3],
    };
    let mut overrun = forwarding(&[port::WSMAN]);
    let overrun_channel = open(&mut overrun, 1000, 1000);
    overrun
        .handle(ApfMessage::ChannelData {
            recipient: overrun_channel,
            data: vec![2; RECEIVE_WINDOW as usize],
        })
        .unwrap();
    assert_eq!(
        overrun.handle(over),
        Err(MpsError::WindowOverrun {
            channel: overrun_channel,
            len: 1,
            window: 0
        })
    );
    // Consumed in halves: a grant per half window.
    session.consumed(channel, chunk);
    assert!(
        out(&mut session).is_empty(),
        "a quarter is not worth a message"
    );
    session.consumed(channel, chunk);
    assert_eq!(
        out(&mut session),
        [ApfMessage::ChannelWindowAdjust {
            recipient: 900,
            bytes: RECEIVE_WINDOW / 2
        }]
    );
    session
        .handle(ApfMessage::ChannelData {
            recipient: channel,
            data: vec![4; (RECEIVE_WINDOW / 2) as usize],
        })
        .expect("within the new grant");
}

#[test]
fn channels_close_after_their_data_and_amt_may_not_open_its_own() {
    let mut session = forwarding(&[port::WSMAN]);
    let channel = open(&mut session, 10, 1000);
    session.send(channel, vec![5; 15]).unwrap();
    session.close_channel(channel);
    assert_eq!(data_lengths(&out(&mut session)), [10]);
    session
        .handle(ApfMessage::ChannelWindowAdjust {
            recipient: channel,
            bytes: 10,
        })
        .unwrap();
    let sent = out(&mut session);
    assert_eq!(data_lengths(&sent[..1]), [5]);
    assert_eq!(sent[1], ApfMessage::ChannelClose { recipient: 900 });
    session
        .handle(ApfMessage::ChannelClose { recipient: channel })
        .unwrap();
    assert_eq!(events(&mut session), [MpsEvent::ChannelClosed(channel)]);
    assert!(out(&mut session).is_empty(), "our close went already");
    assert_eq!(
        session.handle(ApfMessage::ChannelClose { recipient: channel }),
        Err(MpsError::UnknownChannel(channel))
    );

    let mut session = forwarding(&[port::WSMAN]);
    session
        .handle(ApfMessage::ChannelOpen {
            channel_type: "direct-tcpip".into(),
            sender: 5,
            window: 100,
            max_packet: 100,
            target_address: "10.0.0.1".into(),
            target_port: 22,
            origin_address: String::new(),
            origin_port: 0,
        })
        .unwrap();
    assert_eq!(
        out(&mut session),
        [ApfMessage::ChannelOpenFailure {
            recipient: 5,
            reason: 1
        }]
    );
    assert_eq!(
        session.open_channel(port::REDIRECTION),
        Err(MpsError::NotForwarded(16994))
    );
}

#[test]
fn a_disconnect_closes_every_channel() {
    let mut session = forwarding(&[port::WSMAN]);
    let channel = open(&mut session, 100, 100);
    assert_eq!(
        session.handle(ApfMessage::Disconnect { reason: 11 }),
        Err(MpsError::Disconnected(11))
    );
    assert_eq!(events(&mut session), [MpsEvent::ChannelClosed(channel)]);
    assert!(
        out(&mut session).is_empty(),
        "no DISCONNECT back to a closed connection"
    );
}
