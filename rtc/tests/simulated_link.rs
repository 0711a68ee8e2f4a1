//! Two `PeerCore`s over a simulated path on a virtual clock (`support/sim.rs`): the data channel
//! stays whole under loss and delay, H.264 pictures cross a lossy link and a lost one brings a
//! key frame, and the congestion controller's estimate falls under a throttle and climbs back
//! when it lifts. The same cores `DirectPeer` drives over UDP; only the network is simulated.

mod support;

use std::collections::VecDeque;
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::sim::{LinkShape, Sim};
use support::source::{Encoder, annex_b_frame};
use tether_common::relay::switch::Payload;
use tether_rtc::{PeerEvent, TrackEvent};

const MBIT: u64 = 1_000_000;

/// Messages of 1 byte to 48 KiB whose bytes come from a seeded generator.
struct Messages {
    state: u64,
    left: usize,
}

impl Messages {
    fn new(seed: u64, total: usize) -> Messages {
        Messages {
            state: seed,
            left: total,
        }
    }

    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Iterator for Messages {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if self.left == 0 {
            return None;
        }
        let len = (1 + self.next_u64() as usize % (48 * 1024)).min(self.left);
        self.left -= len;
        Some((0..len).map(|_| self.next_u64() as u8).collect())
    }
}

/// What one end received: a digest of the bytes and the message lengths, in order.
#[derive(Default, Debug, PartialEq)]
struct Received {
    digest: Vec<u8>,
    lengths: Vec<usize>,
}

fn expected(seed: u64, total: usize) -> Received {
    let mut hash = Sha256::new();
    let mut lengths = Vec::new();
    for message in Messages::new(seed, total) {
        hash.update(&message);
        lengths.push(message.len());
    }
    Received {
        digest: hash.finalize().to_vec(),
        lengths,
    }
}

#[test]
fn the_data_channel_stays_whole_under_loss_and_delay_both_ways_at_once() {
    const TOTAL: usize = 3 * 1024 * 1024;
    // 20 Mbit/s, 30 ms each way and 2% of datagrams lost, in both directions.
    let shape = LinkShape::new(Some(20 * MBIT), Duration::from_millis(30), 0.02);
    let mut sim = Sim::new(false, shape, shape);
    sim.open();

    let mut to_agent = Messages::new(1, TOTAL).peekable();
    let mut to_viewer = Messages::new(2, TOTAL).peekable();
    let (mut at_agent, mut at_viewer) = (Sha256::new(), Sha256::new());
    let (mut agent_lengths, mut viewer_lengths) = (Vec::new(), Vec::new());
    let mut bytes_in = (0, 0);
    let done = sim.run_until(Duration::from_secs(120), |sim| {
        while to_agent.peek().is_some() && sim.viewer.core.can_send() {
            let message = to_agent.next().expect("peeked");
            sim.viewer
                .core
                .send(Payload::Binary(message))
                .expect("send");
        }
        while to_viewer.peek().is_some() && sim.agent.core.can_send() {
            let message = to_viewer.next().expect("peeked");
            sim.agent.core.send(Payload::Binary(message)).expect("send");
        }
        for (end, hash, lengths, count) in [
            (
                &mut sim.agent,
                &mut at_agent,
                &mut agent_lengths,
                &mut bytes_in.0,
            ),
            (
                &mut sim.viewer,
                &mut at_viewer,
                &mut viewer_lengths,
                &mut bytes_in.1,
            ),
        ] {
            while let Some(event) = end.events.pop_front() {
                match event {
                    PeerEvent::Message(Payload::Binary(bytes)) => {
                        hash.update(&bytes);
                        lengths.push(bytes.len());
                        *count += bytes.len();
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        bytes_in.0 == TOTAL && bytes_in.1 == TOTAL
    });
    let (lost_to_agent, lost_to_viewer) = sim.dropped();
    assert!(
        done,
        "after {:?}: {} and {} of {TOTAL} bytes arrived (viewer {:?}, agent {:?})",
        sim.elapsed(),
        bytes_in.0,
        bytes_in.1,
        sim.viewer.ended,
        sim.agent.ended
    );
    // The loss really happened, and SCTP made up for every datagram of it.
    assert!(
        lost_to_agent > 20 && lost_to_viewer > 20,
        "{lost_to_agent} / {lost_to_viewer} lost"
    );
    let got = |hash: Sha256, lengths| Received {
        digest: hash.finalize().to_vec(),
        lengths,
    };
    assert_eq!(
        got(at_agent, agent_lengths),
        expected(1, TOTAL),
        "viewer to agent"
    );
    assert_eq!(
        got(at_viewer, viewer_lengths),
        expected(2, TOTAL),
        "agent to viewer"
    );
}

/// The agent's side of a desktop on the track: its encoder paced by the estimate.
struct Desktop {
    encoder: Encoder,
    sent: VecDeque<Vec<u8>>,
    keyframes_wanted: usize,
    keyframes_sent: usize,
    estimates: Vec<(Duration, u64)>,
    next_frame: Duration,
    ready: bool,
    /// The screen is still: no pictures (events are still taken).
    still: bool,
}

impl Desktop {
    fn new(demand_bps: u64) -> Desktop {
        Desktop {
            encoder: Encoder::new(demand_bps),
            sent: VecDeque::new(),
            keyframes_wanted: 0,
            keyframes_sent: 0,
            estimates: Vec::new(),
            next_frame: Duration::ZERO,
            ready: false,
            still: false,
        }
    }

    /// The screen stops changing, or starts again (the next picture goes at once).
    fn set_still(&mut self, still: bool, sim: &Sim) {
        self.still = still;
        self.next_frame = self.next_frame.max(sim.elapsed());
    }

    /// Reads the track's events and sends the pictures that are due.
    fn act(&mut self, sim: &mut Sim) {
        while let Some(event) = sim.agent.video.try_event() {
            match event {
                TrackEvent::Ready => self.ready = true,
                TrackEvent::KeyframeWanted => {
                    self.keyframes_wanted += 1;
                    self.encoder.request_key();
                }
                TrackEvent::Bitrate(bps) => {
                    self.estimates.push((sim.elapsed(), bps));
                    self.encoder.cap(bps);
                }
                TrackEvent::Received { .. } => panic!("the agent receives no pictures"),
            }
        }
        while self.ready && !self.still && sim.elapsed() >= self.next_frame {
            let picture = self.encoder.next_picture();
            self.keyframes_sent += usize::from(picture.key);
            let frame = annex_b_frame(&picture);
            let captured = sim.start + self.next_frame;
            sim.agent.video.send(frame.clone(), captured).expect("send");
            self.sent.push_back(frame);
            self.next_frame += Encoder::FRAME_INTERVAL;
        }
    }
}

/// The viewer's side: what arrived, and a PLI when a picture was lost (as a browser does).
#[derive(Default)]
struct Viewer {
    received: Vec<(Duration, Vec<u8>, bool)>,
}

impl Viewer {
    fn act(&mut self, sim: &mut Sim) {
        while let Some(event) = sim.viewer.video.try_event() {
            match event {
                TrackEvent::Received { data, contiguous } => {
                    if !contiguous {
                        sim.viewer.video.request_keyframe().expect("PLI");
                    }
                    self.received.push((sim.elapsed(), data, contiguous));
                }
                TrackEvent::Ready | TrackEvent::Bitrate(_) => {}
                TrackEvent::KeyframeWanted => panic!("the viewer sends no pictures"),
            }
        }
    }

    /// Bits per second of pictures that arrived between `from` and `to`.
    fn rate(&self, from: Duration, to: Duration) -> u64 {
        let bytes: usize = self
            .received
            .iter()
            .filter(|(at, _, _)| *at >= from && *at < to)
            .map(|(_, data, _)| data.len())
            .sum();
        (bytes as f64 * 8.0 / (to - from).as_secs_f64()) as u64
    }
}

#[test]
fn h264_pictures_cross_a_lossy_link_whole_and_in_order_and_a_pli_brings_a_key_frame() {
    // 5 Mbit/s to the viewer with 30 ms and 1% loss; the feedback path is clean.
    let to_viewer = LinkShape::new(Some(5 * MBIT), Duration::from_millis(30), 0.01);
    let to_agent = LinkShape::new(None, Duration::from_millis(30), 0.0);
    let mut sim = Sim::new(true, to_agent, to_viewer);
    sim.open();
    let mut desktop = Desktop::new(2 * MBIT);
    let mut viewer = Viewer::default();
    let asked_at = Duration::from_secs(5);
    let mut asked = false;
    sim.run_until(Duration::from_secs(10), |sim| {
        desktop.act(sim);
        viewer.act(sim);
        // The viewer's decoder wants a fresh start halfway (a browser sends a PLI).
        if !asked && sim.elapsed() >= asked_at {
            asked = true;
            sim.viewer.video.request_keyframe().expect("PLI");
        }
        false
    });
    assert!(sim.viewer.ended.is_none() && sim.agent.ended.is_none());
    assert!(sim.dropped().1 > 10, "the link lost datagrams");
    let sent = desktop.sent.len();
    assert!(sent >= 290, "30 pictures a second for 10 s: {sent}");
    // Retransmissions (NACK/RTX) made up for the loss: every picture arrived whole and in
    // order, but for the last few still on their way.
    let received: Vec<&Vec<u8>> = viewer.received.iter().map(|(_, data, _)| data).collect();
    assert!(
        viewer.received.iter().all(|(_, _, contiguous)| *contiguous),
        "a picture arrived with packets missing"
    );
    assert!(
        received.len() + 5 >= sent,
        "{} of {sent} arrived",
        received.len()
    );
    assert!(
        received
            .iter()
            .zip(&desktop.sent)
            .all(|(got, sent)| *got == sent),
        "pictures arrived changed or out of order"
    );
    // The PLI reached the agent, whose next picture was a key frame, and it arrived.
    assert_eq!(
        desktop.keyframes_wanted, 1,
        "the key-frame request reached the agent"
    );
    assert_eq!(
        desktop.keyframes_sent, 2,
        "the first picture and the requested one"
    );
    let is_key = |data: &[u8]| data.get(4) == Some(&0x67);
    assert!(
        viewer
            .received
            .iter()
            .any(|(at, data, _)| *at > asked_at && is_key(data)),
        "no key frame arrived after the request"
    );
}

#[test]
fn the_estimate_falls_under_a_throttle_and_climbs_back_when_it_lifts() {
    let delay = Duration::from_millis(30);
    let capped = |mbit| LinkShape::new(Some(mbit * MBIT), delay, 0.0);
    let back = LinkShape::new(None, delay, 0.0);
    let mut sim = Sim::new(true, back, capped(20));
    sim.open();
    // A busy desktop: the content would take 8 Mbit/s.
    let mut desktop = Desktop::new(8 * MBIT);
    let mut viewer = Viewer::default();
    let phases = [(20, 40), (5, 40), (2, 40), (20, 40)];
    let mut ends = Vec::new();
    for (mbit, seconds) in phases {
        sim.reshape(back, capped(mbit));
        sim.run_until(Duration::from_secs(seconds), |sim| {
            desktop.act(sim);
            viewer.act(sim);
            false
        });
        ends.push(sim.elapsed());
    }
    assert!(sim.viewer.ended.is_none() && sim.agent.ended.is_none());
    let estimate_at = |at: Duration| {
        desktop
            .estimates
            .iter()
            .take_while(|(t, _)| *t <= at)
            .last()
            .map_or(0, |(_, bps)| *bps)
    };
    let secs = Duration::from_secs;
    // Before the throttle the estimate climbed to what the content needs.
    assert!(estimate_at(ends[0]) >= 6 * MBIT, "{}", estimate_at(ends[0]));
    // Under 5 and then 2 Mbit/s it fell to the cap, and the pictures fit the link.
    for (end, cap) in [(ends[1], 5 * MBIT), (ends[2], 2 * MBIT)] {
        let throttled = estimate_at(end);
        assert!(
            throttled <= cap * 5 / 4,
            "estimate under a {cap} bit/s cap: {throttled}"
        );
        assert!(viewer.rate(end - secs(10), end) <= cap);
    }
    // Lifted, the estimate is back at the content's rate within 15 s (the controller's additive
    // increase alone took 26 s: the track asks for its desired rate again, which probes).
    let recovered = estimate_at(ends[2] + secs(15));
    assert!(
        recovered >= 6 * MBIT,
        "estimate 15 s after the cap lifted: {recovered}"
    );
    assert!(viewer.rate(ends[3] - secs(10), ends[3]) >= 6 * MBIT);
}

#[test]
fn a_still_desktop_costs_the_link_next_to_nothing_and_its_next_pictures_get_the_rate_back() {
    let delay = Duration::from_millis(30);
    let to_viewer = LinkShape::new(Some(20 * MBIT), delay, 0.0);
    let back = LinkShape::new(None, delay, 0.0);
    let mut sim = Sim::new(true, back, to_viewer);
    sim.open();
    let mut desktop = Desktop::new(8 * MBIT);
    let mut viewer = Viewer::default();
    let mut run = |sim: &mut Sim, desktop: &mut Desktop, seconds| {
        sim.run_until(Duration::from_secs(seconds), |sim| {
            desktop.act(sim);
            viewer.act(sim);
            false
        });
    };
    run(&mut sim, &mut desktop, 15);
    let busy = desktop.estimates.last().map_or(0, |(_, bps)| *bps);
    assert!(
        busy >= 6 * MBIT,
        "the estimate reached the content's rate: {busy}"
    );

    // Still for 30 s: what crosses the link is feedback, keep-alives and str0m's own padding
    // floor (50 kbit/s), not probes for a rate nobody sends.
    desktop.set_still(true, &sim);
    run(&mut sim, &mut desktop, 5);
    let (from, bytes_before) = (sim.elapsed(), sim.offered().1);
    run(&mut sim, &mut desktop, 30);
    let still_bps = (sim.offered().1 - bytes_before) * 8 / (sim.elapsed() - from).as_secs();
    assert!(
        still_bps <= 80_000,
        "a still desktop sent {still_bps} bit/s"
    );

    // Pictures again: they flow at the content's rate at once, on the estimate kept from
    // before (str0m reports an estimate only when it changes).
    desktop.set_still(false, &sim);
    let resumed = sim.elapsed();
    run(&mut sim, &mut desktop, 10);
    let estimate = desktop.estimates.last().map_or(0, |(_, bps)| *bps);
    assert!(
        estimate >= 6 * MBIT,
        "the estimate after the still spell: {estimate}"
    );
    let rate = viewer.rate(resumed + Duration::from_secs(2), sim.elapsed());
    assert!(
        rate >= 6 * MBIT,
        "pictures after the still spell: {rate} bit/s"
    );
}
