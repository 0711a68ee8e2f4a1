//! APF messages within their bounds survive encoding and decoding, whatever pieces the bytes
//! arrive in, and arbitrary bytes never panic the decoder.

use proptest::prelude::*;
use tether_common::apf::{AmtUuid, ApfMessage, Decoder, Password, Side};

fn text() -> impl Strategy<Value = String> {
    // Up to 300 characters of any kind, so multi-byte UTF-8 stays well inside the 2 KiB bound.
    proptest::collection::vec(any::<char>(), 0..300).prop_map(|chars| chars.into_iter().collect())
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// A message and the side that reads it (only REQUEST_SUCCESS differs between the two).
fn message() -> impl Strategy<Value = (ApfMessage, Side)> {
    use ApfMessage as M;
    let either = prop_oneof![Just(Side::Mps), Just(Side::Amt)];
    let either_side = prop_oneof![
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<[u8; 16]>()).prop_map(
            |(major, minor, trigger, uuid)| M::ProtocolVersion {
                major,
                minor,
                trigger,
                uuid: AmtUuid(uuid),
            }
        ),
        text().prop_map(|service| M::ServiceRequest { service }),
        text().prop_map(|service| M::ServiceAccept { service }),
        (text(), text(), text(), text()).prop_map(|(user, service, method, password)| {
            M::UserauthRequest {
                user,
                service,
                method,
                password: Password(password),
            }
        }),
        Just(M::UserauthFailure),
        Just(M::UserauthSuccess),
        (any::<bool>(), any::<bool>(), text(), any::<u32>()).prop_map(
            |(cancel, want_reply, address, port)| M::GlobalRequest {
                request: if cancel {
                    "cancel-tcpip-forward"
                } else {
                    "tcpip-forward"
                }
                .into(),
                want_reply,
                address,
                port,
            }
        ),
        (text(), any::<u32>(), text(), any::<u32>(), bytes(2000)).prop_map(
            |(address, port, origin_address, origin_port, data)| M::UdpSendTo {
                address,
                port,
                origin_address,
                origin_port,
                data,
            }
        ),
        Just(M::RequestFailure),
        (text(), any::<[u32; 5]>(), text(), text()).prop_map(
            |(channel_type, n, target, origin)| {
                M::ChannelOpen {
                    channel_type,
                    sender: n[0],
                    window: n[1],
                    max_packet: n[2],
                    target_address: target,
                    target_port: n[3],
                    origin_address: origin,
                    origin_port: n[4],
                }
            }
        ),
        any::<[u32; 4]>().prop_map(|n| M::ChannelOpenConfirmation {
            recipient: n[0],
            sender: n[1],
            window: n[2],
            max_packet: n[3],
        }),
        any::<(u32, u32)>()
            .prop_map(|(recipient, reason)| M::ChannelOpenFailure { recipient, reason }),
        any::<(u32, u32)>()
            .prop_map(|(recipient, bytes)| M::ChannelWindowAdjust { recipient, bytes }),
        (any::<u32>(), bytes(5000))
            .prop_map(|(recipient, data)| M::ChannelData { recipient, data }),
        any::<u32>().prop_map(|recipient| M::ChannelClose { recipient }),
        any::<u32>().prop_map(|reason| M::Disconnect { reason }),
        any::<u32>().prop_map(|cookie| M::KeepaliveRequest { cookie }),
        any::<u32>().prop_map(|cookie| M::KeepaliveReply { cookie }),
        any::<(u32, u32)>()
            .prop_map(|(interval, timeout)| M::KeepaliveOptionsRequest { interval, timeout }),
        any::<(u32, u32)>()
            .prop_map(|(interval, timeout)| M::KeepaliveOptionsReply { interval, timeout }),
    ]
    .prop_flat_map(move |message| (Just(message), either.clone()));
    let success_at_amt =
        any::<u32>().prop_map(|port| (M::RequestSuccess { port: Some(port) }, Side::Amt));
    let success_at_mps = Just((M::RequestSuccess { port: None }, Side::Mps));
    prop_oneof![18 => either_side, 1 => success_at_amt, 1 => success_at_mps]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn messages_round_trip_in_any_pieces(
        messages in proptest::collection::vec(message(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        // One side's stream: the messages that side reads.
        for side in [Side::Mps, Side::Amt] {
            let ours: Vec<ApfMessage> = messages
                .iter()
                .filter(|(_, reads)| *reads == side)
                .map(|(message, _)| message.clone())
                .collect();
            let mut stream = Vec::new();
            for message in &ours {
                message.encode(&mut stream);
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
            points.push(stream.len());
            points.sort_unstable();
            let mut decoder = Decoder::new(side);
            let mut got = Vec::new();
            let mut from = 0;
            for to in points {
                decoder.push(&stream[from..to]);
                from = to;
                while let Some(message) = decoder.next_message().expect("a valid stream") {
                    got.push(message);
                }
            }
            prop_assert_eq!(got, ours);
            prop_assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_pile_up(bytes in bytes(4096), side in prop_oneof![Just(Side::Mps), Just(Side::Amt)]) {
        let mut decoder = Decoder::new(side);
        decoder.push(&bytes);
        while let Ok(Some(_)) = decoder.next_message() {}
        prop_assert!(decoder.buffered() <= bytes.len());
    }
}
