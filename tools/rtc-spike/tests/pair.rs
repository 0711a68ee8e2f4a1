//! Two str0m peers in memory, over the simulated link of `sim`, on a virtual clock.
//!
//! The tests assert behaviour only (hashes, frame delivery, where the estimate goes);
//! the figures they print are in virtual time, with wall-clock CPU time for reference.
//! Run with `cargo test --release -- --nocapture --test-threads 1` to see them.

mod sim;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Pt};
use str0m::{Event, Rtc};

use sim::{LinkConfig, Pair, Rng};

const MIB: usize = 1 << 20;

/// Offer from `a`, answer from `b`, both through their SDP text form.
fn negotiate(pair: &mut Pair, video: bool, channel: bool) -> (Option<Mid>, Option<ChannelId>) {
    let mut api = pair.a.rtc.sdp_api();
    let mid = video.then(|| api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None));
    let cid = channel.then(|| api.add_channel("bulk".into()));
    let (offer, pending) = api.apply().expect("a change to offer");
    let offer = SdpOffer::from_sdp_string(&offer.to_sdp_string()).expect("offer parses");
    let answer = pair.b.rtc.sdp_api().accept_offer(offer).expect("b accepts the offer");
    let answer = SdpAnswer::from_sdp_string(&answer.to_sdp_string()).expect("answer parses");
    pair.a.rtc.sdp_api().accept_answer(pending, answer).expect("a accepts the answer");
    (mid, cid)
}

fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// One direction of the bulk transfer: seeded random bytes in 64 KiB messages, written
/// while the channel's buffered amount is under 1 MiB.
struct Bulk {
    rng: Rng,
    total: usize,
    sent: usize,
    pending: Option<Vec<u8>>,
    tx_hash: Sha256,
    received: usize,
    rx_hash: Sha256,
    rx_done_at: Option<Instant>,
}

impl Bulk {
    fn new(seed: u64, total: usize) -> Self {
        Bulk {
            rng: Rng::new(seed),
            total,
            sent: 0,
            pending: None,
            tx_hash: Sha256::new(),
            received: 0,
            rx_hash: Sha256::new(),
            rx_done_at: None,
        }
    }

    fn pump(&mut self, rtc: &mut Rtc, id: ChannelId) {
        let Some(mut ch) = rtc.channel(id) else { return };
        // Write until str0m refuses (its own limit, `sctp_max_buffered_amount`) or 8 MiB.
        while self.sent < self.total && ch.buffered_amount() < 8 * MIB {
            let msg = self.pending.take().unwrap_or_else(|| {
                let msg_size: usize = std::env::var("SPIKE_MSG").ok().and_then(|v| v.parse().ok()).unwrap_or(64 * 1024);
                let mut m = vec![0; msg_size.min(self.total - self.sent)];
                self.rng.fill(&mut m);
                m
            });
            if !ch.write(true, &msg).expect("channel write") {
                self.pending = Some(msg);
                return;
            }
            self.tx_hash.update(&msg);
            self.sent += msg.len();
        }
    }
}

#[test]
fn data_channel_16mib_each_way_with_loss_and_delay() {
    run_bulk(LinkConfig::new(50, 0.02), 16 * MIB, 7, None);
}

/// Figures only: throughput at other delays and loss rates, with str0m's default send
/// buffer (128 KiB, which also caps the data in flight) and with 4 MiB.
#[test]
#[ignore = "figures only (slow in debug builds); cargo test --release -- --include-ignored"]
fn data_channel_throughput_table() {
    for buffer in [None, Some(4 * MIB)] {
        for (delay, loss) in [(5, 0.0), (50, 0.0), (5, 0.005), (50, 0.005), (5, 0.02), (50, 0.02)] {
            let label = buffer.map_or("default".to_string(), |b| format!("{} KiB", b / 1024));
            println!("-- one-way delay {delay} ms, loss {:.1}%, sctp_max_buffered_amount {label}", loss * 100.0);
            run_bulk(LinkConfig::new(delay, loss), 8 * MIB, 17, buffer);
        }
    }
}

/// `total` bytes each way at once over `link` (both directions alike); asserts integrity.
/// `buffer`: `RtcConfig::set_sctp_max_buffered_amount` on both peers.
fn run_bulk(link: LinkConfig, total: usize, seed: u64, buffer: Option<usize>) {
    let t0 = Instant::now();
    let wall = Instant::now();
    let rtc = || match buffer {
        Some(b) => Rtc::builder().set_sctp_max_buffered_amount(b).build(t0),
        None => Rtc::new(t0),
    };
    let mut pair = Pair::new(t0, rtc(), rtc(), link, link, seed);
    let (_, a_ch) = negotiate(&mut pair, false, true);
    let a_ch = a_ch.unwrap();
    // `up`: a writes, b reads. `down`: b writes, a reads.
    let mut up = Bulk::new(1, total);
    let mut down = Bulk::new(2, total);
    let mut b_ch: Option<ChannelId> = None;
    let mut a_open = false;
    let mut opened_at = None;

    pair.run_until(Duration::from_secs(900), |p| {
        while let Some(e) = p.a.events.pop_front() {
            match e {
                Event::ChannelOpen(id, _) => {
                    assert_eq!(id, a_ch);
                    a_open = true;
                    opened_at.get_or_insert(p.now);
                }
                Event::ChannelData(d) => {
                    down.received += d.data.len();
                    down.rx_hash.update(&d.data);
                    if down.received == total {
                        down.rx_done_at = Some(p.now);
                    }
                }
                _ => {}
            }
        }
        while let Some(e) = p.b.events.pop_front() {
            match e {
                Event::ChannelOpen(id, label) => {
                    assert_eq!(label, "bulk");
                    b_ch = Some(id);
                }
                Event::ChannelData(d) => {
                    up.received += d.data.len();
                    up.rx_hash.update(&d.data);
                    if up.received == total {
                        up.rx_done_at = Some(p.now);
                    }
                }
                _ => {}
            }
        }
        if a_open {
            up.pump(&mut p.a.rtc, a_ch);
        }
        if let Some(id) = b_ch {
            down.pump(&mut p.b.rtc, id);
        }
        up.rx_done_at.is_some() && down.rx_done_at.is_some()
    });

    let opened = opened_at.unwrap();
    for (name, dir, link) in [("a->b", &up, &pair.ab.stats), ("b->a", &down, &pair.ba.stats)] {
        let tx = hex(dir.tx_hash.clone().finalize());
        let rx = hex(dir.rx_hash.clone().finalize());
        let secs = dir.rx_done_at.unwrap().duration_since(opened).as_secs_f64();
        println!(
            "dc {name}: {} MiB in {secs:.1} s virtual ({:.2} MB/s), sha256 {}..., link sent {} lost {} ({:.1}%)",
            total / MIB,
            total as f64 / 1e6 / secs,
            &rx[..16],
            link.sent,
            link.lost_random,
            100.0 * link.lost_random as f64 / link.sent as f64
        );
        assert_eq!(dir.received, total, "{name}: every byte arrives");
        assert_eq!(tx, rx, "{name}: SHA-256 on arrival matches");
    }
    println!(
        "dc: channel open {} ms after start (virtual); wall clock {:.1} s",
        opened.duration_since(t0).as_millis(),
        wall.elapsed().as_secs_f64()
    );
}

/// The send payload type for packetization-mode=1 H.264 on `mid`.
fn h264_pt(rtc: &mut Rtc, mid: Mid) -> Pt {
    let writer = rtc.writer(mid).expect("writer");
    let pt = writer
        .payload_params()
        .find(|p| p.spec().codec == Codec::H264 && p.spec().format.packetization_mode == Some(1))
        .map(|p| p.pt());
    pt.expect("H.264 negotiated")
}

/// A synthetic access unit: Annex-B NAL units with payload bytes that never form a start
/// code, so the packetizer splits exactly where we put start codes.
fn synthetic_frame(rng: &mut Rng, key: bool, size: usize) -> Vec<u8> {
    let mut nal = |header: u8, len: usize| {
        let mut v = vec![0, 0, 0, 1, header];
        let mut body = vec![0; len];
        rng.fill(&mut body);
        v.extend(body.iter().map(|b| b | 1));
        v
    };
    if key {
        let mut f = nal(0x67, 12); // SPS
        f.extend(nal(0x68, 4)); // PPS
        f.extend(nal(0x65, size.saturating_sub(f.len() + 5))); // IDR slice
        f
    } else {
        nal(0x41, size - 5) // non-IDR slice
    }
}

#[test]
fn h264_track_delivers_frames_with_bwe_on() {
    let t0 = Instant::now();
    let wall = Instant::now();
    let a = Rtc::builder().enable_bwe(Some(Bitrate::mbps(1))).build(t0);
    let b = Rtc::new(t0);
    let link = LinkConfig::new(50, 0.02);
    let mut pair = Pair::new(t0, a, b, link, link, 11);
    let (mid, _) = negotiate(&mut pair, true, false);
    let mid = mid.unwrap();
    pair.run_until(Duration::from_secs(10), |p| {
        p.a.events.drain(..).any(|e| matches!(e, Event::Connected))
    });
    let pt = h264_pt(&mut pair.a.rtc, mid);
    let connected = pair.now;

    let frame_interval = Duration::from_micros(33_333);
    let frames_to_send = 300u64; // 10 s at 30 fps
    let mut rng = Rng::new(3);
    let mut sent: Vec<Vec<u8>> = Vec::new();
    // Frames are recognised on arrival by content (the receiver's RTP time has its own origin).
    let mut by_hash: HashMap<[u8; 32], usize> = HashMap::new();
    let mut next_frame = pair.now;
    let mut received = Vec::new(); // (frame index, contiguous, bytes equal, arrival)
    let mut keyframe_requests = 0;

    let end = connected + frame_interval * frames_to_send as u32 + Duration::from_secs(2);
    while pair.now < end {
        if (sent.len() as u64) < frames_to_send && pair.now >= next_frame {
            let n = sent.len() as u64;
            let frame = if n == 0 { synthetic_frame(&mut rng, true, 60_000) } else { synthetic_frame(&mut rng, false, 8_000) };
            let writer = pair.a.rtc.writer(mid).expect("writer");
            writer.write(pt, pair.now, MediaTime::from_90khz(n * 3000), frame.clone()).expect("write frame");
            by_hash.insert(Sha256::digest(&frame).into(), sent.len());
            sent.push(frame);
            next_frame += frame_interval;
        }
        let deadline = if (sent.len() as u64) < frames_to_send { next_frame.min(end) } else { end };
        pair.step(deadline);
        for e in pair.a.events.drain(..) {
            if let Event::KeyframeRequest(_) = e {
                keyframe_requests += 1;
            }
        }
        for e in pair.b.events.drain(..) {
            if let Event::MediaData(d) = e {
                let found = by_hash.get(&<[u8; 32]>::from(Sha256::digest(&d.data))).copied();
                received.push((found.unwrap_or(usize::MAX), d.contiguous, found.is_some(), pair.now));
            }
        }
    }

    let intact = received.iter().filter(|r| r.2).count();
    let first = received.first().expect("at least one frame");
    println!(
        "h264: sent {} frames ({} bytes), received {} ({} byte-identical, {} contiguous); first frame #{} {} ms after connect; keyframe requests {}; ab lost {} of {} datagrams; wall {:.1} s",
        sent.len(),
        sent.iter().map(Vec::len).sum::<usize>(),
        received.len(),
        intact,
        received.iter().filter(|r| r.1).count(),
        first.0,
        first.3.duration_since(connected).as_millis(),
        keyframe_requests,
        pair.ab.stats.lost_random,
        pair.ab.stats.sent,
        wall.elapsed().as_secs_f64()
    );
    assert_eq!(first.0, 0, "the 60 KB key frame arrives first");
    assert!(first.2, "the key frame arrives byte for byte");
    assert!(intact as u64 >= frames_to_send * 95 / 100, "at least 95% of the frames arrive intact");
}

/// What one BWE run showed, per phase.
struct BweRun {
    /// Estimate at the end of each phase, bit/s.
    phase_end: Vec<u64>,
    /// Seconds from the phase start until the estimate stayed within 50-125% of the cap.
    settle: Vec<Option<f64>>,
    /// Seconds from the cap being raised until the estimate first reached half of it.
    rise_to_half: Option<f64>,
    /// Highest estimate after the cap was raised again, bit/s.
    last_phase_max: u64,
}

const BWE_PHASES: [(u64, u64); 3] = [(0, 20_000_000), (20, 2_000_000), (60, 20_000_000)];
const BWE_END_S: u64 = 100;

/// Video whose "encoder" spends 90% of the estimate, over a link whose cap follows
/// `BWE_PHASES` (start second, bit/s): 20 Mbit/s, then 2, then 20 again.
fn run_bwe(seed: u64, delay_ms: u64, print_series: bool) -> BweRun {
    let t0 = Instant::now();
    let a = Rtc::builder().enable_bwe(Some(Bitrate::kbps(500))).build(t0);
    let b = Rtc::new(t0);
    let capped = LinkConfig { rate_bps: Some(BWE_PHASES[0].1), ..LinkConfig::new(delay_ms, 0.0) };
    let mut pair = Pair::new(t0, a, b, capped, LinkConfig::new(delay_ms, 0.0), seed);
    let (mid, _) = negotiate(&mut pair, true, false);
    let mid = mid.unwrap();
    pair.run_until(Duration::from_secs(10), |p| {
        p.a.events.drain(..).any(|e| matches!(e, Event::Connected))
    });
    let pt = h264_pt(&mut pair.a.rtc, mid);
    // Ask BWE to look for up to 30 Mbit/s.
    pair.a.rtc.bwe().set_bitrate(Bitrate::kbps(300), Bitrate::mbps(30));

    let phases = BWE_PHASES;
    let end_s = BWE_END_S;
    let start = pair.now;
    let mut phase = 0;
    let mut estimate = 500_000u64;
    let mut series: Vec<(f64, u64)> = Vec::new();
    let mut rng = Rng::new(seed);
    let mut n = 0u64;
    let mut next_frame = start;
    let interval = Duration::from_micros(33_333);

    while pair.now < start + Duration::from_secs(end_s) {
        let t = pair.now.duration_since(start);
        if phase + 1 < phases.len() && t >= Duration::from_secs(phases[phase + 1].0) {
            phase += 1;
            pair.ab.set_rate(pair.now, Some(phases[phase].1));
        }
        if pair.now >= next_frame {
            // One key frame, then P-frames sized to 90% of the latest estimate.
            let size = if n == 0 { 60_000 } else { (estimate * 9 / 10 / 30 / 8).clamp(1_000, 200_000) as usize };
            let frame = synthetic_frame(&mut rng, n == 0, size);
            let writer = pair.a.rtc.writer(mid).expect("writer");
            writer.write(pt, pair.now, MediaTime::from_90khz(n * 3000), frame).expect("write frame");
            n += 1;
            next_frame += interval;
        }
        let next_phase = phases.get(phase + 1).map(|p| start + Duration::from_secs(p.0));
        let deadline = next_phase.map_or(next_frame, |p| p.min(next_frame));
        pair.step(deadline);
        for e in pair.a.events.drain(..) {
            if let Event::EgressBitrateEstimate(BweKind::Twcc { estimate: e, .. }) = e {
                estimate = e.as_u64();
                series.push((pair.now.duration_since(start).as_secs_f64(), estimate));
            }
        }
        pair.b.events.clear();
    }

    let at = |s: f64| series.iter().rev().find(|x| x.0 <= s).map_or(500_000, |x| x.1);
    if print_series {
        let line: Vec<String> = (1..=end_s).map(|s| format!("{:.1}", at(s as f64) as f64 / 1e6)).collect();
        println!("bwe estimate (one-way delay {delay_ms} ms), Mbit/s at 1 s steps; cap 20 until 20 s, 2 until 60 s, then 20:");
        for (i, chunk) in line.chunks(20).enumerate() {
            println!("  {:>3}-{:>3} s: {}", i * 20 + 1, i * 20 + 20, chunk.join(" "));
        }
    }
    let mut run = BweRun { phase_end: Vec::new(), settle: Vec::new(), rise_to_half: None, last_phase_max: 0 };
    for (i, &(from, cap)) in phases.iter().enumerate() {
        let to = phases.get(i + 1).map_or(end_s, |p| p.0) as f64;
        let inside: Vec<_> = series.iter().filter(|x| x.0 >= from as f64 && x.0 < to).collect();
        let ok = |b: u64| b as f64 >= 0.5 * cap as f64 && b as f64 <= 1.25 * cap as f64;
        let mut since = ok(at(from as f64)).then_some(from as f64);
        for x in &inside {
            if ok(x.1) { since.get_or_insert(x.0); } else { since = None; }
        }
        run.settle.push(since.map(|s| s - from as f64));
        run.phase_end.push(at(to - 0.001));
        if i == 2 {
            run.rise_to_half = inside.iter().find(|x| x.1 * 2 >= cap).map(|x| x.0 - from as f64);
            run.last_phase_max = inside.iter().map(|x| x.1).max().unwrap_or(0);
        }
    }
    println!(
        "bwe delay {delay_ms:>2} ms: end of phase {:.2} / {:.2} / {:.2} Mbit/s (max after raise {:.2}); settled after {} / {} / {}; 20 Mbit/s again: half of it after {}; queue drops {} of {}",
        run.phase_end[0] as f64 / 1e6,
        run.phase_end[1] as f64 / 1e6,
        run.phase_end[2] as f64 / 1e6,
        run.last_phase_max as f64 / 1e6,
        secs(run.settle[0]),
        secs(run.settle[1]),
        secs(run.settle[2]),
        secs(run.rise_to_half),
        pair.ab.stats.dropped_queue,
        pair.ab.stats.sent,
    );
    run
}

fn secs(s: Option<f64>) -> String {
    s.map_or("never".into(), |s| format!("{s:.1} s"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[test]
fn bwe_follows_a_rate_cap_down_and_back_up() {
    let wall = Instant::now();
    // Without random loss the run is deterministic, so the five runs differ in path delay.
    let runs: Vec<BweRun> = [10, 20, 30, 40, 50].iter().map(|&d| run_bwe(d, d, d == 20)).collect();
    let med = |f: &dyn Fn(&BweRun) -> f64| median(runs.iter().map(f).collect());
    println!(
        "bwe median of {} runs: end of phase {:.2} / {:.2} / {:.2} Mbit/s; 2 Mbit/s phase settled after {:.1} s; \
         half of 20 Mbit/s regained after {:.1} s (never = 999); wall {:.1} s",
        runs.len(),
        med(&|r| r.phase_end[0] as f64 / 1e6),
        med(&|r| r.phase_end[1] as f64 / 1e6),
        med(&|r| r.phase_end[2] as f64 / 1e6),
        med(&|r| r.settle[1].unwrap_or(999.0)),
        med(&|r| r.rise_to_half.unwrap_or(999.0)),
        wall.elapsed().as_secs_f64()
    );
    for r in &runs {
        assert!(r.phase_end[1] < 2_500_000, "capped at 2 Mbit/s, the estimate ends below 2.5 Mbit/s");
        // It does rise; where it ends depends on the sawtooth (see README), so the peak is asserted.
        assert!(r.last_phase_max > 2 * r.phase_end[1], "after the cap is raised, the estimate rises again");
    }
}
