//! Figures, not a test: the desktop's video track over a simulated path whose rate cap changes,
//! on the virtual clock of `tests/support/sim.rs` (the same `PeerCore`s as the product, a
//! stand-in encoder capped the way the agent caps x264).
//!
//! `cargo run --release -p tether-rtc --example throttled_track -- [delay_ms] [content_mbit] [queue_kb] [caps...]`
//! Defaults: 30 ms one way, 8 Mbit/s of content, a 64 KB queue, caps 20 5 2 20 Mbit/s of 40 s.
//! Printed per phase: the median of the per-second received rate and of the estimate over the
//! phase's last 10 s; when the received rate settled (within 50-105% of the cap, or of the
//! content's rate when that is lower, for 5 s in a row); and when the estimate followed the
//! change (rose to that rate, or fell to within 25% of a lower cap).

#[path = "../tests/support/sim.rs"]
mod sim;
#[path = "../tests/support/source.rs"]
mod source;

use std::time::Duration;

use sim::{LinkShape, Sim};
use source::{Encoder, annex_b_frame};
use tether_rtc::TrackEvent;

const PHASE: Duration = Duration::from_secs(40);

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers only"))
        .collect();
    let delay = Duration::from_millis(args.first().copied().unwrap_or(30));
    let content = args.get(1).copied().unwrap_or(8) * 1_000_000;
    let queue = args.get(2).copied().unwrap_or(64) as usize * 1024;
    let caps: Vec<u64> = match args.get(3..) {
        Some(caps) if !caps.is_empty() => caps.to_vec(),
        _ => vec![20, 5, 2, 20],
    };
    let shape = |mbit: Option<u64>| LinkShape {
        queue_bytes: queue,
        ..LinkShape::new(mbit.map(|m| m * 1_000_000), delay, 0.0)
    };
    let mut sim = Sim::new(true, shape(None), shape(Some(caps[0])));
    sim.open();
    println!(
        "one-way delay {} ms, content {} kbit/s, queue {} KB",
        delay.as_millis(),
        content / 1000,
        queue / 1024
    );
    println!(
        "cap Mbit/s | received kbit/s | estimate kbit/s | settled after | estimate followed after"
    );

    let mut encoder = Encoder::new(content);
    let mut ready = false;
    let mut next_frame = Duration::ZERO;
    let mut estimate = 0u64;
    for cap in caps {
        sim.reshape(shape(None), shape(Some(cap)));
        let phase_start = sim.elapsed();
        let target = (cap * 1_000_000).min(content);
        // Per second of the phase: bits received and the last estimate.
        let mut seconds = vec![(0u64, 0u64); PHASE.as_secs() as usize];
        let cap_bps = cap * 1_000_000;
        // A cap under the estimate: the estimate must fall; otherwise rise to the target.
        let falling = estimate > cap_bps;
        let mut followed: Option<Duration> = None;
        sim.run_until(PHASE, |sim| {
            let into_phase = sim.elapsed() - phase_start;
            let second = (into_phase.as_secs() as usize).min(seconds.len() - 1);
            while let Some(event) = sim.agent.video.try_event() {
                match event {
                    TrackEvent::Ready => ready = true,
                    TrackEvent::KeyframeWanted => encoder.request_key(),
                    TrackEvent::Bitrate(bps) => {
                        estimate = bps;
                        encoder.cap(bps);
                    }
                    TrackEvent::Received { .. } => {}
                }
            }
            let there = if falling {
                estimate <= cap_bps / 4 * 5
            } else {
                estimate >= target
            };
            if followed.is_none() && there {
                followed = Some(into_phase);
            }
            seconds[second].1 = estimate;
            while let Some(event) = sim.viewer.video.try_event() {
                if let TrackEvent::Received { data, contiguous } = event {
                    if !contiguous {
                        let _ = sim.viewer.video.request_keyframe();
                    }
                    seconds[second].0 += data.len() as u64 * 8;
                }
            }
            while ready && sim.elapsed() >= next_frame {
                let picture = encoder.next_picture();
                let captured = sim.start + next_frame;
                let _ = sim.agent.video.send(annex_b_frame(&picture), captured);
                next_frame += Encoder::FRAME_INTERVAL;
            }
            false
        });
        let settled = seconds.windows(5).position(|w| {
            w.iter()
                .all(|(bits, _)| *bits >= target / 2 && *bits <= target / 20 * 21)
        });
        let last: Vec<_> = seconds[seconds.len() - 10..].to_vec();
        let median = |mut v: Vec<u64>| {
            v.sort_unstable();
            v[v.len() / 2]
        };
        println!(
            "{cap:>10} | {:>15} | {:>15} | {:>13} | {}",
            median(last.iter().map(|(bits, _)| *bits).collect()) / 1000,
            median(last.iter().map(|(_, est)| *est).collect()) / 1000,
            settled.map_or("never".to_owned(), |s| format!("{s} s")),
            followed.map_or("never".to_owned(), |r| format!("{:.1} s", r.as_secs_f64())),
        );
        if sim.viewer.ended.is_some() || sim.agent.ended.is_some() {
            println!(
                "the path ended: {:?} {:?}",
                sim.viewer.ended, sim.agent.ended
            );
            return;
        }
    }
}
