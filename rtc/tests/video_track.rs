//! The desktop's video track between two `DirectPeer`s over real UDP on this machine: the
//! viewer offers a receive-only video m-line beside its data channel, the agent's answer sends
//! H.264 on it, and every access unit written arrives whole and in order (str0m packetises it
//! into RTP, FU-A for the big ones, and the receiver joins it back), while the congestion
//! controller reports estimates to the sender, and the viewer's PLI reaches the agent as a
//! key-frame request.

use std::time::{Duration, Instant};

use tether_rtc::{DirectPeer, Gathering, PeerEvent, TrackEvent, VideoTrack};

/// Host candidates, loopback included: both peers run on this machine.
const LOOPBACK: Gathering = Gathering {
    allow_loopback: true,
    ice_servers: Vec::new(),
};

const WAIT: Duration = Duration::from_secs(10);

async fn wait_open(peer: &mut DirectPeer) {
    match tokio::time::timeout(WAIT, peer.next_event()).await {
        Ok(Some(PeerEvent::Open)) => {}
        other => panic!("expected the channel to open, got {other:?}"),
    }
}

async fn next_event(track: &mut VideoTrack) -> TrackEvent {
    tokio::time::timeout(WAIT, track.next_event())
        .await
        .expect("a track event in time")
        .expect("the peer still up")
}

/// One NAL unit: its header byte, then `len` bytes that never make a start code (no zero bytes).
fn nal(header: u8, len: usize, seed: u8) -> Vec<u8> {
    let mut unit = vec![header];
    unit.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1));
    unit
}

fn annex_b(units: &[Vec<u8>]) -> Vec<u8> {
    units
        .iter()
        .flat_map(|u| [0, 0, 0, 1].iter().copied().chain(u.iter().copied()))
        .collect()
}

/// The NAL units of an Annex B stream (3- or 4-byte start codes).
fn nal_units(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut units = Vec::new();
    let mut start = None;
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            if let Some(s) = start {
                let mut end = i;
                if end > s && stream[end - 1] == 0 {
                    end -= 1;
                }
                units.push(stream[s..end].to_vec());
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        units.push(stream[s..].to_vec());
    }
    units
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h264_access_units_cross_the_video_track_whole_and_in_order() {
    let (mut viewer, offer) = DirectPeer::offer_with(&LOOPBACK, true)
        .await
        .expect("offer");
    assert!(offer.contains("m=video"), "the offer has a video m-line");
    assert!(offer.contains("a=recvonly"), "receive-only:\n{offer}");
    let (mut agent, answer) = DirectPeer::answer(&offer, &LOOPBACK).await.expect("answer");
    assert!(answer.contains("a=sendonly"), "the agent sends:\n{answer}");
    assert!(answer.contains("H264/90000"), "H.264 negotiated:\n{answer}");
    viewer.accept_answer(&answer).await.expect("accept answer");
    wait_open(&mut viewer).await;
    wait_open(&mut agent).await;
    let mut sending = agent.take_video().expect("the agent's track");
    let mut receiving = viewer.take_video().expect("the viewer's track");
    let mut estimates = 0;
    loop {
        match next_event(&mut sending).await {
            TrackEvent::Ready => break,
            // The controller's starting estimate may come first.
            TrackEvent::Bitrate(_) => estimates += 1,
            other => panic!("unexpected {other:?} before Ready"),
        }
    }

    // A key frame (SPS, PPS, a 40 KB IDR slice: ~30 RTP packets) and small P frames.
    let mut sent = vec![vec![
        nal(0x67, 12, 1),
        nal(0x68, 4, 2),
        nal(0x65, 40_000, 3),
    ]];
    for n in 0..20u8 {
        sent.push(vec![nal(0x41, 1_500 + usize::from(n) * 100, n)]);
    }
    let start = Instant::now();
    for (n, units) in sent.iter().enumerate() {
        let captured = start + Duration::from_millis(33 * n as u64);
        sending.send(annex_b(units), captured).expect("send");
    }

    let mut received = Vec::new();
    // The receiving side is ready with the first access unit.
    assert_eq!(next_event(&mut receiving).await, TrackEvent::Ready);
    while received.len() < sent.len() {
        tokio::select! {
            event = next_event(&mut receiving) => match event {
                TrackEvent::Received { data, contiguous } => {
                    assert!(contiguous, "no packet lost on loopback");
                    received.push(nal_units(&data));
                }
                other => panic!("unexpected {other:?} on the receiving side"),
            },
            event = sending.next_event() => match event {
                Some(TrackEvent::Bitrate(bps)) => {
                    assert!(bps > 0);
                    estimates += 1;
                }
                Some(TrackEvent::KeyframeWanted) => panic!("a key-frame request nobody made"),
                other => panic!("unexpected {other:?} on the sending side"),
            },
        }
    }
    assert_eq!(received, sent, "every access unit, whole and in order");
    // The viewer lost a picture: its PLI reaches the agent as a key-frame request.
    receiving.request_keyframe().expect("PLI queued");
    tokio::time::timeout(WAIT, async {
        loop {
            match sending.next_event().await {
                Some(TrackEvent::KeyframeWanted) => return,
                Some(TrackEvent::Bitrate(_)) => estimates += 1,
                other => panic!("unexpected {other:?} while waiting for the PLI"),
            }
        }
    })
    .await
    .expect("the PLI arrives");
    // The congestion controller runs for the sending side (its first estimate comes once it can
    // probe; more follow with feedback).
    if estimates == 0 {
        match tokio::time::timeout(WAIT, async {
            loop {
                if let Some(TrackEvent::Bitrate(bps)) = sending.next_event().await {
                    return bps;
                }
            }
        })
        .await
        {
            Ok(bps) => assert!(bps > 0),
            Err(_) => panic!("no bandwidth estimate for the sending side"),
        }
    }
}

#[tokio::test]
async fn a_viewer_without_video_gets_no_track_on_the_agent() {
    let (mut viewer, offer) = DirectPeer::offer(&LOOPBACK).await.expect("offer");
    assert!(!offer.contains("m=video"));
    let (mut agent, answer) = DirectPeer::answer(&offer, &LOOPBACK).await.expect("answer");
    viewer.accept_answer(&answer).await.expect("accept answer");
    wait_open(&mut viewer).await;
    wait_open(&mut agent).await;
    let mut track = agent.take_video().expect("a handle");
    // Never Ready: writes are dropped with one warning, and the session keeps its pictures on
    // the data channel.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), track.next_event())
            .await
            .is_err()
    );
    track
        .send(vec![0, 0, 0, 1, 0x65, 1], Instant::now())
        .expect("queued");
}
