//! A call's sound between two `DirectPeer`s over real UDP on this machine, as the desktop app
//! makes calls (`voice.rs`): one side offers an audio m-line and no data channel, the other
//! answers; both report open once connected, and packets written on either side arrive on the
//! other in order. A side that offered to listen only still hears the other.

use std::time::Duration;

use tether_rtc::{DirectPeer, Gathering, PeerEvent, VoiceTrack};

const LOOPBACK: Gathering = Gathering {
    allow_loopback: true,
    ice_servers: Vec::new(),
};

const WAIT: Duration = Duration::from_secs(10);
/// 20 ms of Opus at 48 kHz.
const PACKET_SAMPLES: u32 = 960;

async fn wait_open(peer: &mut DirectPeer) {
    match tokio::time::timeout(WAIT, peer.next_event()).await {
        Ok(Some(PeerEvent::Open)) => {}
        other => panic!("expected the call to connect, got {other:?}"),
    }
}

/// Stand-ins for Opus packets: str0m carries an Opus payload as it is, one packet per RTP packet.
fn packet(n: u8) -> Vec<u8> {
    (0..40).map(|i| n.wrapping_add(i)).collect()
}

/// Sends `count` packets from `from` and returns what `to` received of them, in arrival order.
async fn carry(from: &VoiceTrack, to: &mut VoiceTrack, count: u8) -> Vec<Vec<u8>> {
    let sender = from.sender();
    let mut received = Vec::new();
    // The first packets may go before the other side's SRTP is ready: send until some arrive.
    for n in 0..count {
        sender
            .send(packet(n), PACKET_SAMPLES)
            .expect("the call is up");
        tokio::time::sleep(Duration::from_millis(20)).await;
        while let Some(p) = to.try_packet() {
            received.push(p);
        }
    }
    while let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(500), to.next_packet()).await
    {
        received.push(p);
    }
    received
}

/// A call connected over loopback: the caller offers (sending sound when `send_voice`), the
/// callee answers; both report open. Returns both peers (kept, or the call ends) and their sound.
async fn connected_call(send_voice: bool) -> (DirectPeer, DirectPeer, VoiceTrack, VoiceTrack) {
    let (mut caller, offer) = DirectPeer::call_offer(&LOOPBACK, send_voice)
        .await
        .expect("offer");
    assert!(
        offer.contains("m=audio"),
        "the offer has an audio m-line:\n{offer}"
    );
    assert!(
        !offer.contains("m=application"),
        "and no data channel:\n{offer}"
    );
    let direction = if send_voice {
        "a=sendrecv"
    } else {
        "a=recvonly"
    };
    assert!(offer.contains(direction), "{direction}:\n{offer}");
    let (mut callee, answer) = DirectPeer::call_answer(&offer, &LOOPBACK)
        .await
        .expect("answer");
    assert!(answer.contains("opus"), "the answer takes Opus:\n{answer}");
    caller
        .accept_answer(&answer)
        .await
        .expect("the answer is accepted");
    wait_open(&mut caller).await;
    wait_open(&mut callee).await;
    let caller_voice = caller.take_voice().expect("the caller's sound");
    let callee_voice = callee.take_voice().expect("the callee's sound");
    assert!(caller.take_video().is_none(), "a call has no video half");
    (caller, callee, caller_voice, callee_voice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_carries_opus_packets_both_ways_in_order() {
    let (_caller, _callee, mut caller_voice, mut callee_voice) = connected_call(true).await;
    assert_the_tail_arrived(&carry(&caller_voice, &mut callee_voice, 50).await, 50);
    assert_the_tail_arrived(&carry(&callee_voice, &mut caller_voice, 50).await, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_that_only_listens_still_hears_the_other_side() {
    let (_caller, _callee, mut caller_voice, mut callee_voice) = connected_call(false).await;
    assert_the_tail_arrived(&carry(&callee_voice, &mut caller_voice, 30).await, 30);
    // What the listener writes goes nowhere: its m-line does not send.
    let nothing = carry(&caller_voice, &mut callee_voice, 10).await;
    assert!(
        nothing.is_empty(),
        "a listening side sent {} packets",
        nothing.len()
    );
}

/// Every packet from the first that arrived to the last sent, in order, none missing (loopback
/// loses nothing once both sides are up).
fn assert_the_tail_arrived(got: &[Vec<u8>], count: u8) {
    let first = got.first().expect("some packets arrived")[0];
    let expected: Vec<Vec<u8>> = (first..count).map(packet).collect();
    assert_eq!(
        got,
        expected.as_slice(),
        "packets {first}..{count} in order"
    );
    assert!(
        count - first >= count / 2,
        "only {} of {count} packets arrived",
        count - first
    );
}
