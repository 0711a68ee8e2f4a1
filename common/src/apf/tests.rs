//! APF's bytes written out by hand from the layout table (design notes §5.1), so the layout is
//! checked apart from the encoder, plus the decoder's handling of pieces, bounds and garbage.

use super::*;

fn str_field(text: &str) -> Vec<u8> {
    let mut out = (text.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn decode_all(side: Side, bytes: &[u8]) -> Result<Vec<ApfMessage>, ApfError> {
    let mut decoder = Decoder::new(side);
    decoder.push(bytes);
    let mut out = Vec::new();
    while let Some(message) = decoder.next_message()? {
        out.push(message);
    }
    assert_eq!(decoder.buffered(), 0, "bytes left over");
    Ok(out)
}

/// (side that reads it, message, its bytes as the table lays them out)
fn vectors() -> Vec<(Side, ApfMessage, Vec<u8>)> {
    let uuid: [u8; 16] = std::array::from_fn(|i| i as u8 + 1);
    vec![
        (
            Side::Mps,
            ApfMessage::ProtocolVersion {
                major: 1,
                minor: 0,
                trigger: 7,
                uuid: AmtUuid(uuid),
            },
            cat(&[
                &[192],
                &[0, 0, 0, 1],
                &[0, 0, 0, 0],
                &[0, 0, 0, 7],
                &uuid,
                &[0; 64],
            ]),
        ),
        (
            Side::Mps,
            ApfMessage::ServiceRequest {
                service: AUTH_SERVICE.into(),
            },
            cat(&[&[5], &str_field("auth@amt.intel.com")]),
        ),
        (
            Side::Amt,
            ApfMessage::ServiceAccept {
                service: PFWD_SERVICE.into(),
            },
            cat(&[&[6], &str_field("pfwd@amt.intel.com")]),
        ),
        (
            Side::Mps,
            ApfMessage::UserauthRequest {
                user: "cira-user".into(),
                service: PFWD_SERVICE.into(),
                method: "password".into(),
                password: Password("P@ssw0rd!".into()),
            },
            cat(&[
                &[50],
                &str_field("cira-user"),
                &str_field("pfwd@amt.intel.com"),
                &str_field("password"),
                &[0],
                &str_field("P@ssw0rd!"),
            ]),
        ),
        (
            Side::Amt,
            ApfMessage::UserauthFailure,
            cat(&[&[51], &str_field("password"), &[0, 0]]),
        ),
        (Side::Amt, ApfMessage::UserauthSuccess, vec![52]),
        (
            Side::Mps,
            ApfMessage::GlobalRequest {
                request: "tcpip-forward".into(),
                want_reply: true,
                address: "".into(),
                port: 16993,
            },
            cat(&[
                &[80],
                &str_field("tcpip-forward"),
                &[1],
                &str_field(""),
                &16993u32.to_be_bytes(),
            ]),
        ),
        (
            Side::Mps,
            ApfMessage::UdpSendTo {
                address: "10.0.0.9".into(),
                port: 623,
                origin_address: "10.0.0.5".into(),
                origin_port: 40000,
                data: vec![9, 8, 7],
            },
            cat(&[
                &[80],
                &str_field("udp-send-to@amt.intel.com"),
                &[0],
                &str_field("10.0.0.9"),
                &623u32.to_be_bytes(),
                &str_field("10.0.0.5"),
                &40000u32.to_be_bytes(),
                &[0, 0, 0, 3, 9, 8, 7],
            ]),
        ),
        (
            Side::Amt,
            ApfMessage::RequestSuccess { port: Some(16993) },
            cat(&[&[81], &16993u32.to_be_bytes()]),
        ),
        (
            Side::Mps,
            ApfMessage::RequestSuccess { port: None },
            vec![81],
        ),
        (Side::Mps, ApfMessage::RequestFailure, vec![82]),
        (
            Side::Amt,
            ApfMessage::ChannelOpen {
                channel_type: "forwarded-tcpip".into(),
                sender: 3,
                window: 32768,
                max_packet: 0xFFFF_FFFF,
                target_address: "".into(),
                target_port: 16992,
                origin_address: "127.0.0.1".into(),
                origin_port: 1234,
            },
            cat(&[
                &[90],
                &str_field("forwarded-tcpip"),
                &[0, 0, 0, 3, 0, 0, 0x80, 0, 0xFF, 0xFF, 0xFF, 0xFF],
                &str_field(""),
                &16992u32.to_be_bytes(),
                &str_field("127.0.0.1"),
                &1234u32.to_be_bytes(),
            ]),
        ),
        (
            Side::Mps,
            ApfMessage::ChannelOpenConfirmation {
                recipient: 3,
                sender: 77,
                window: 4096,
                max_packet: 1500,
            },
            vec![91, 0, 0, 0, 3, 0, 0, 0, 77, 0, 0, 16, 0, 0, 0, 5, 220],
        ),
        (
            Side::Mps,
            ApfMessage::ChannelOpenFailure {
                recipient: 3,
                reason: 2,
            },
            vec![92, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        (
            Side::Mps,
            ApfMessage::ChannelWindowAdjust {
                recipient: 3,
                bytes: 65536,
            },
            vec![93, 0, 0, 0, 3, 0, 1, 0, 0],
        ),
        (
            Side::Amt,
            ApfMessage::ChannelData {
                recipient: 77,
                data: b"GET /".to_vec(),
            },
            cat(&[&[94, 0, 0, 0, 77, 0, 0, 0, 5], b"GET /"]),
        ),
        (
            Side::Mps,
            ApfMessage::ChannelClose { recipient: 3 },
            vec![97, 0, 0, 0, 3],
        ),
        (
            Side::Amt,
            ApfMessage::Disconnect { reason: 11 },
            vec![1, 0, 0, 0, 11, 0, 0],
        ),
        (
            Side::Mps,
            ApfMessage::KeepaliveRequest {
                cookie: 0xDEAD_BEEF,
            },
            vec![208, 0xDE, 0xAD, 0xBE, 0xEF],
        ),
        (
            Side::Amt,
            ApfMessage::KeepaliveReply { cookie: 5 },
            vec![209, 0, 0, 0, 5],
        ),
        (
            Side::Amt,
            ApfMessage::KeepaliveOptionsRequest {
                interval: 30,
                timeout: 0,
            },
            vec![210, 0, 0, 0, 30, 0, 0, 0, 0],
        ),
        (
            Side::Mps,
            ApfMessage::KeepaliveOptionsReply {
                interval: 30,
                timeout: 0,
            },
            vec![211, 0, 0, 0, 30, 0, 0, 0, 0],
        ),
    ]
}

#[test]
fn every_message_has_the_table_s_bytes_both_ways() {
    for (side, message, bytes) in vectors() {
        assert_eq!(message.to_bytes(), bytes, "encoding {message:?}");
        assert_eq!(
            decode_all(side, &bytes),
            Ok(vec![message.clone()]),
            "decoding {bytes:?}"
        );
    }
    // The sizes the table gives.
    let size = |i: usize| vectors()[i].2.len();
    assert_eq!(size(0), 93, "PROTOCOLVERSION");
    assert_eq!(size(4), 15, "USERAUTH_FAILURE");
    assert_eq!(size(13), 17, "CHANNEL_OPEN_FAILURE");
}

#[test]
fn messages_split_anywhere_or_run_together_come_out_whole() {
    let stream: Vec<u8> = vectors()
        .into_iter()
        .filter(|(side, ..)| *side == Side::Mps)
        .flat_map(|(_, _, bytes)| bytes)
        .collect();
    let expected = decode_all(Side::Mps, &stream).expect("the whole stream");
    for cut in 0..=stream.len() {
        let mut decoder = Decoder::new(Side::Mps);
        let mut got = Vec::new();
        for piece in [&stream[..cut], &stream[cut..]] {
            decoder.push(piece);
            while let Some(message) = decoder.next_message().expect("valid") {
                got.push(message);
            }
        }
        assert_eq!(got, expected, "cut at {cut}");
    }
    // One byte at a time.
    let mut decoder = Decoder::new(Side::Mps);
    let mut got = Vec::new();
    for byte in &stream {
        decoder.push(std::slice::from_ref(byte));
        while let Some(message) = decoder.next_message().expect("valid") {
            got.push(message);
        }
    }
    assert_eq!(got, expected);
}

#[test]
fn lengths_over_their_bounds_are_refused_before_the_bytes_come() {
    // A CHANNEL_DATA announcing 1 MiB + 1: refused on its header alone, nothing else sent.
    let mut decoder = Decoder::new(Side::Mps);
    decoder.push(&cat(&[
        &[94, 0, 0, 0, 1],
        &((MAX_CHANNEL_DATA + 1) as u32).to_be_bytes(),
    ]));
    assert_eq!(
        decoder.next_message(),
        Err(ApfError::TooLong {
            message: "CHANNEL_DATA",
            field: "data",
            len: MAX_CHANNEL_DATA + 1,
            max: MAX_CHANNEL_DATA,
        })
    );
    // Exactly 1 MiB is fine.
    let full = ApfMessage::ChannelData {
        recipient: 1,
        data: vec![0xAB; MAX_CHANNEL_DATA],
    };
    assert_eq!(decode_all(Side::Mps, &full.to_bytes()), Ok(vec![full]));
    // A 2049-byte user name.
    let mut decoder = Decoder::new(Side::Mps);
    decoder.push(&cat(&[&[50], &((MAX_STRING + 1) as u32).to_be_bytes()]));
    assert!(matches!(
        decoder.next_message(),
        Err(ApfError::TooLong {
            field: "user name",
            len: 2049,
            ..
        })
    ));
    // A length of 4 GiB - 1 does not make anything wait for it.
    let mut decoder = Decoder::new(Side::Mps);
    decoder.push(&[5, 0xFF, 0xFF, 0xFF, 0xFF]);
    assert!(matches!(
        decoder.next_message(),
        Err(ApfError::TooLong { .. })
    ));
}

#[test]
fn garbage_ends_the_stream_with_a_reason() {
    assert_eq!(
        decode_all(Side::Mps, &[0x42]),
        Err(ApfError::UnknownType(0x42))
    );
    let unknown = cat(&[&[80], &str_field("keepalive@openssh.com"), &[1]]);
    assert_eq!(
        decode_all(Side::Mps, &unknown),
        Err(ApfError::UnknownRequest("keepalive@openssh.com".into()))
    );
    let not_utf8 = cat(&[&[5, 0, 0, 0, 2], &[0xFF, 0xFE]]);
    assert_eq!(
        decode_all(Side::Mps, &not_utf8),
        Err(ApfError::NotUtf8 {
            message: "SERVICE_REQUEST",
            field: "service",
        })
    );
}

#[test]
fn a_truncated_message_waits_and_holds_only_its_bytes() {
    let message = ApfMessage::KeepaliveOptionsRequest {
        interval: 30,
        timeout: 0,
    }
    .to_bytes();
    let mut decoder = Decoder::new(Side::Amt);
    decoder.push(&message[..5]);
    assert_eq!(decoder.next_message(), Ok(None));
    assert_eq!(decoder.buffered(), 5);
    decoder.push(&message[5..]);
    assert!(decoder.next_message().expect("valid").is_some());
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn passwords_stay_out_of_debug_output_and_uuids_print_as_amt_does() {
    let message = ApfMessage::UserauthRequest {
        user: "u".into(),
        service: PFWD_SERVICE.into(),
        method: PASSWORD_METHOD.into(),
        password: Password("hunter2-secret".into()),
    };
    assert!(!format!("{message:?}").contains("hunter2"));
    // The first three fields are little-endian, the rest as they come.
    let uuid = AmtUuid([
        0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ]);
    assert_eq!(uuid.to_string(), "00112233-4455-6677-8899-aabbccddeeff");
    // And back, in either case; anything but the printed shape is no UUID.
    assert_eq!(
        AmtUuid::parse("00112233-4455-6677-8899-AABBCCDDEEFF"),
        Some(uuid)
    );
    for bad in [
        "",
        "00112233-4455-6677-8899-aabbccddeef",
        "0011223344556677-8899-aabbccddeeff",
        "0011223g-4455-6677-8899-aabbccddeeff",
        "+0112233-4455-6677-8899-aabbccddeeff",
    ] {
        assert_eq!(AmtUuid::parse(bad), None, "{bad:?}");
    }
}
